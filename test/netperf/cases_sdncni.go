package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// sdncniCase is sdncni through its CNI binary and controller, both pods on node 1, with
// the eBPF fast path on (sdncni-fast) or off (sdncni-ovs: every packet through OVS).
type sdncniCase struct {
	h    *harness
	env  *sdncniEnv
	fast bool
	rt   *cniRuntime
	v    *ovsVerifier
}

func sdncniConfList(socket string) string {
	return fmt.Sprintf(`{"cniVersion":"1.1.0","name":"sdncni","plugins":[{"type":"sdncni","socket":%q}]}`, socket)
}

// sdncniRuntime is a libcni runtime for the sdncni pods of case name on node n.
func sdncniRuntime(h *harness, name string, n *sdncniNode) (*cniRuntime, error) {
	args := func(pod string) [][2]string {
		return [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", pod}}
	}
	return newCNIRuntime(name, sdncniConfList(n.socket()), h.cniBin, filepath.Join(h.work, "cni-cache"), n.netnsPath(), args)
}

func (c *sdncniCase) Name() string {
	if c.fast {
		return caseSdncniFast
	}
	return caseSdncniOVS
}

func (c *sdncniCase) Setup(ctx context.Context) error {
	if err := c.env.ensureController(ctx, c.fast); err != nil {
		return err
	}
	rt, err := sdncniRuntime(c.h, c.Name(), c.env.nodes[0])
	if err != nil {
		return err
	}
	c.rt = rt
	c.v = c.env.nodes[0].ovs()
	c.v.fast = c.fast
	return nil
}

func (c *sdncniCase) AddPods(ctx context.Context, round int) (podPair, []time.Duration, error) {
	if err := c.env.ensureController(ctx, c.fast); err != nil {
		return podPair{}, nil, err
	}
	return c.rt.addPair(ctx, round)
}

func (c *sdncniCase) DelPods(ctx context.Context) error {
	if c.rt == nil {
		return nil
	}
	return c.rt.delAll(ctx)
}

func (c *sdncniCase) AddDel(ctx context.Context, i int) (time.Duration, time.Duration, error) {
	if err := c.env.ensureController(ctx, c.fast); err != nil {
		return 0, 0, err
	}
	return c.rt.addDel(ctx, i)
}

func (c *sdncniCase) Verifier() verifier {
	if c.v == nil {
		return nil
	}
	return c.v
}

func (c *sdncniCase) Teardown(ctx context.Context) error { return c.DelPods(ctx) }

func (c *sdncniCase) Info(ctx context.Context) map[string]string {
	return sdncniInfo(ctx, c.fast, c.v)
}

func sdncniInfo(ctx context.Context, fast bool, v *ovsVerifier) map[string]string {
	info := map[string]string{"fast_path": fmt.Sprint(fast)}
	if v != nil {
		dp, err := v.vsctl(ctx, "get", "Bridge", v.bridge, "datapath_type")
		if err == nil {
			info["datapath"] = "OVS " + v.bridge + " datapath_type=" + strings.TrimSpace(dp)
		}
		if tso, err := v.vsctl(ctx, "get", "Open_vSwitch", ".", "other_config:userspace-tso-enable"); err == nil {
			info["userspace_tso"] = strings.Trim(strings.TrimSpace(tso), `"`)
		}
	}
	return info
}

// sdncniCrossCase is sdncni with pod A on node 1 and pod B on node 2: with the fast path
// off (sdncni-geneve: OVN's Geneve tunnel through both nodes' userspace OVS) or on
// (sdncni-fast-cross: whatever path the fast path gives cross-node traffic; the
// verifier says which one carried it).
type sdncniCrossCase struct {
	h    *harness
	env  *sdncniEnv
	fast bool
	rts  [2]*cniRuntime
	v    *crossVerifier
}

func (c *sdncniCrossCase) Name() string {
	if c.fast {
		return caseSdncniFastCross
	}
	return caseSdncniGeneve
}

func (c *sdncniCrossCase) Setup(ctx context.Context) error {
	if err := c.env.ensureController(ctx, c.fast); err != nil {
		return err
	}
	if c.env.tunnelErr != nil {
		return c.env.tunnelErr
	}
	for i, n := range c.env.nodes {
		rt, err := sdncniRuntime(c.h, c.Name(), n)
		if err != nil {
			return err
		}
		c.rts[i] = rt
	}
	c.v = &crossVerifier{ovs: c.env.nodes[0].ovs(), excludeVXLAN: []string{vxlanDev}, want: c.wantPath()}
	return nil
}

// wantPath is the path the case claims: Geneve with the fast path off; with it on, the
// kernel's VXLAN when the controllers run the kernel cross-node path, and otherwise
// whatever known path the counters show (the fast path hands cross-node traffic to
// OVS), reported as such. A fall-back to Geneve with the kernel path on fails the case.
func (c *sdncniCrossCase) wantPath() string {
	switch {
	case !c.fast:
		return pathGeneve
	case c.env.kernelCross:
		return pathKernelVXLAN
	}
	return ""
}

func (c *sdncniCrossCase) AddPods(ctx context.Context, round int) (podPair, []time.Duration, error) {
	if err := c.env.ensureController(ctx, c.fast); err != nil {
		return podPair{}, nil, err
	}
	pair, took, err := crossPair(ctx, c.rts, round)
	if err == nil && c.v.want == pathKernelVXLAN {
		waitKernelPath(ctx, pair, c.v.excludeVXLAN)
	}
	return pair, took, err
}

// waitKernelPath pings from pod A to pod B until node 1's kernel VXLAN devices count
// the echoes, for at most 10 s: the kernel path takes a peer's block only once that node
// answers its probes (every second), which a freshly restarted controller may not have
// seen yet. It returns in any case; the verifier reports the path the measurement took.
func waitKernelPath(ctx context.Context, pair podPair, exclude []string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		before, err := vxlanCounters(nodeNetNS, exclude...)
		if err != nil {
			return
		}
		_ = inNetNS(ctx, pair.A.NetNS, "ping", "-q", "-c", "3", "-i", "0.2", "-W", "1", pair.B.IP.String()).Run()
		after, err := vxlanCounters(nodeNetNS, exclude...)
		if err != nil || after.TxPackets-before.TxPackets >= 3 {
			return
		}
	}
}

func (c *sdncniCrossCase) DelPods(ctx context.Context) error { return delCross(ctx, c.rts) }

// AddDel is not run: a pod's ADD does not depend on where its peer is, and the
// same-node cases time it.
func (c *sdncniCrossCase) AddDel(ctx context.Context, i int) (time.Duration, time.Duration, error) {
	return 0, 0, errors.ErrUnsupported
}

func (c *sdncniCrossCase) Verifier() verifier {
	if c.v == nil {
		return nil
	}
	return c.v
}

func (c *sdncniCrossCase) Teardown(ctx context.Context) error { return c.DelPods(ctx) }

func (c *sdncniCrossCase) Info(ctx context.Context) map[string]string {
	var v *ovsVerifier
	if c.v != nil {
		v = c.v.ovs
	}
	info := sdncniInfo(ctx, c.fast, v)
	info["nodes"] = "pod a on " + nodeNetNS + ", pod b on " + node2NetNS
	info["underlay"] = "Geneve: OVS netdev br-phy on " + ovsULLink + ", a veth to Linux bridge " + ulBridge + " in " + underlayNetNS
	if c.fast && c.env.kernelCross {
		info["kernel_cross_node"] = fmt.Sprintf("on: --cross-node-vxlan %s over %s (the kernel underlay link)", crossNodeVXLANDev, kernelULLink)
	} else if c.fast {
		info["kernel_cross_node"] = "off (sdncni-controller has no --cross-node-vxlan, or --cross-node-fast off)"
	}
	if c.v != nil {
		want := c.v.want
		if want == "" {
			want = "any known path (reported)"
		}
		info["path_required"] = want
	}
	return info
}

// crossPair adds pod "a" through rts[0] (node 1) and pod "b" through rts[1] (node 2).
func crossPair(ctx context.Context, rts [2]*cniRuntime, round int) (pair podPair, took []time.Duration, err error) {
	a, ta, err := rts[0].addPod(ctx, "a", round)
	if err != nil {
		return pair, nil, err
	}
	b, tb, err := rts[1].addPod(ctx, "b", round)
	if err != nil {
		_, _ = rts[0].delPod(context.WithoutCancel(ctx), podNetNSName(rts[0].caseName, "a"))
		return pair, nil, err
	}
	return podPair{A: a, B: b}, []time.Duration{ta, tb}, nil
}

// delCross deletes the pods of both nodes' runtimes, every DEL before any namespace
// the other runtime's pod may still be in; idempotent.
func delCross(ctx context.Context, rts [2]*cniRuntime) error {
	var errs []error
	for _, rt := range rts {
		if rt != nil {
			errs = append(errs, rt.delAttached(ctx))
		}
	}
	for _, rt := range rts {
		if rt != nil {
			errs = append(errs, rt.delFixedNetNS(ctx))
		}
	}
	return errors.Join(errs...)
}

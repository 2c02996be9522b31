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

// fastCrossWant is the path the sdncni-fast-cross case must take; "" accepts any known
// path and reports it. Until the kernel tunnel path exists the fast path hands
// cross-node traffic to OVS (Geneve); once it does, set this to pathKernelVXLAN so a
// silent fall-back to Geneve fails the case instead of passing as "fast".
const fastCrossWant = ""

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
	c.v = &crossVerifier{ovs: c.env.nodes[0].ovs(), excludeVXLAN: []string{vxlanDev}, want: pathGeneve}
	if c.fast {
		c.v.want = fastCrossWant
	}
	return nil
}

func (c *sdncniCrossCase) AddPods(ctx context.Context, round int) (podPair, []time.Duration, error) {
	if err := c.env.ensureController(ctx, c.fast); err != nil {
		return podPair{}, nil, err
	}
	return crossPair(ctx, c.rts, round)
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
	info["underlay"] = "OVS netdev br-phy on " + ovsULLink + ", a veth to Linux bridge " + ulBridge + " in " + underlayNetNS
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

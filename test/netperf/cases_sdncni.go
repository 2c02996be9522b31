package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// sdncniCase is sdncni through its CNI binary and controller, with the eBPF fast path
// on (sdncni-fast) or off (sdncni-ovs: every packet through OVS).
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
	args := func(pod string) [][2]string {
		return [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", pod}}
	}
	rt, err := newCNIRuntime(c.Name(), sdncniConfList(c.env.socket()), c.h.cniBin,
		filepath.Join(c.h.work, "cni-cache"), c.env.netnsPath(), args)
	if err != nil {
		return err
	}
	c.rt = rt
	c.v = &ovsVerifier{db: c.env.vars["SDNCNI_OVS_DB"], bridge: c.env.bridge(), mgmt: c.env.mgmtSocket(), fast: c.fast}
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
	info := map[string]string{"fast_path": fmt.Sprint(c.fast)}
	if c.v != nil {
		dp, err := c.v.vsctl(ctx, "get", "Bridge", c.v.bridge, "datapath_type")
		if err == nil {
			info["datapath"] = "OVS " + c.v.bridge + " datapath_type=" + strings.TrimSpace(dp)
		}
		if tso, err := c.v.vsctl(ctx, "get", "Open_vSwitch", ".", "other_config:userspace-tso-enable"); err == nil {
			info["userspace_tso"] = strings.Trim(strings.TrimSpace(tso), `"`)
		}
	}
	return info
}

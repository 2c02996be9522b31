package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// bridgeCase is the reference bridge plugin with host-local IPAM. isGateway is false:
// the two pods share one subnet on one bridge, so pod-to-pod traffic is switched at L2
// and a gateway address is not on the path; leaving it off also keeps the plugin from
// touching ip_forward (harmless inside the node namespace, but not needed). The pod MTU
// is the vxlan-bridge case's, underlay − 50: what flannel gives the bridge plugin on a
// node of a multi-node cluster.
type bridgeCase struct {
	h  *harness
	rt *cniRuntime
}

const bridgeName = namePrefix + "-br0"

func bridgeConfList(mtu int, dataDir string) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.1.0",
  "name": "%s-bridge",
  "plugins": [{
    "type": "bridge",
    "bridge": %q,
    "isGateway": false,
    "ipMasq": false,
    "mtu": %d,
    "ipam": {
      "type": "host-local",
      "ranges": [[{"subnet": "10.97.0.0/24"}]],
      "dataDir": %q
    }
  }]
}`, namePrefix, bridgeName, mtu, dataDir)
}

func (c *bridgeCase) Name() string       { return caseBridge }
func (c *bridgeCase) mtu() int           { return c.h.topo.mtu - vxlanOverhead }
func (c *bridgeCase) Verifier() verifier { return nil }

func (c *bridgeCase) Setup(ctx context.Context) error {
	conf := bridgeConfList(c.mtu(), filepath.Join(c.h.work, "host-local"))
	rt, err := newCNIRuntime(caseBridge, conf, c.h.cniBin, filepath.Join(c.h.work, "cni-cache"), c.h.nodePath, nil)
	if err != nil {
		return err
	}
	c.rt = rt
	return nil
}

func (c *bridgeCase) AddPods(ctx context.Context, round int) (podPair, []time.Duration, error) {
	return c.rt.addPair(ctx, round)
}

func (c *bridgeCase) DelPods(ctx context.Context) error {
	if c.rt == nil {
		return nil
	}
	return c.rt.delAll(ctx)
}

func (c *bridgeCase) AddDel(ctx context.Context, i int) (time.Duration, time.Duration, error) {
	return c.rt.addDel(ctx, i)
}

func (c *bridgeCase) Teardown(ctx context.Context) error { return c.DelPods(ctx) }

func (c *bridgeCase) Info(ctx context.Context) map[string]string {
	return map[string]string{
		"datapath": fmt.Sprintf("Linux bridge %s in node 1's namespace (containernetworking/plugins bridge + host-local, isGateway=false, MTU %d)", bridgeName, c.mtu()),
		"plugins":  "containernetworking/plugins " + c.h.pluginsVersion,
	}
}

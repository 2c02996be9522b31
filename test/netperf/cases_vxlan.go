package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// vxlanBridgeCase is what flannel's vxlan backend builds, set up by the harness: on each
// node a kernel VXLAN device (VNI 1, UDP 8472, learning off, over the kernel underlay
// link, MTU underlay − 50) with the node's subnet's .0/32, and the reference bridge
// plugin + host-local putting pods on a Linux bridge that is their gateway. The other
// node's subnet is routed onlink via its .0 on the VXLAN device, with a permanent
// neighbour entry (its VXLAN MAC) and an FDB entry (that MAC at its underlay address):
// flannel's route, ARP and FDB entries, written once as flanneld would on learning the
// other node's lease.
type vxlanBridgeCase struct {
	h   *harness
	rts [2]*cniRuntime
}

const (
	vxlanDev        = namePrefix + "-vx1" // flannel.1
	vxlanBridgeName = namePrefix + "-cni0"
	vxlanVNI        = 1
	vxlanPort       = 8472 // flannel's default: the kernel's VXLAN port
	// vxlanOverhead is what flannel takes off the underlay MTU for IPv4 VXLAN.
	vxlanOverhead = 50
)

var (
	vxlanSubnets = [2]string{"10.95.1.0/24", "10.95.2.0/24"}
	vxlanMACs    = [2]string{"02:6e:70:00:00:01", "02:6e:70:00:00:02"}
)

func vxlanConfList(node int, mtu int, dataDir string) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.1.0",
  "name": "%s-vxlan-node%d",
  "plugins": [{
    "type": "bridge",
    "bridge": %q,
    "isGateway": true,
    "isDefaultGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "mtu": %d,
    "ipam": {
      "type": "host-local",
      "ranges": [[{"subnet": %q}]],
      "dataDir": %q
    }
  }]
}`, namePrefix, node+1, vxlanBridgeName, mtu, vxlanSubnets[node], dataDir)
}

// subnetZero is the .0 of a node's subnet: its VXLAN device's address and next hop.
func subnetZero(cidr string) string { return strings.TrimSuffix(cidr, "/24") }

func (c *vxlanBridgeCase) Name() string { return caseVXLANBridge }

func (c *vxlanBridgeCase) mtu() int { return c.h.topo.mtu - vxlanOverhead }

func (c *vxlanBridgeCase) Setup(ctx context.Context) error {
	if !c.h.topo.up {
		return fmt.Errorf("%s: two-node topology not set up", caseVXLANBridge)
	}
	for i, node := range nodeNetNSes {
		steps := [][]string{
			{"link", "add", vxlanDev, "type", "vxlan", "id", fmt.Sprint(vxlanVNI), "local", kernelULIP(i).String(),
				"dev", kernelULLink, "dstport", fmt.Sprint(vxlanPort), "nolearning"},
			{"link", "set", vxlanDev, "mtu", fmt.Sprint(c.mtu()), "address", vxlanMACs[i]},
			{"addr", "add", subnetZero(vxlanSubnets[i]) + "/32", "dev", vxlanDev},
			{"link", "set", vxlanDev, "up"},
		}
		for _, s := range steps {
			if err := ipIn(ctx, node, s...); err != nil {
				return err
			}
		}
		if err := sysctlIn(ctx, node, "net.ipv4.ip_forward=1"); err != nil {
			return err
		}
	}
	for i, node := range nodeNetNSes {
		j := 1 - i
		via := subnetZero(vxlanSubnets[j])
		if err := ipIn(ctx, node, "route", "add", vxlanSubnets[j], "via", via, "dev", vxlanDev, "onlink"); err != nil {
			return err
		}
		if err := ipIn(ctx, node, "neigh", "replace", via, "lladdr", vxlanMACs[j], "dev", vxlanDev, "nud", "permanent"); err != nil {
			return err
		}
		out, err := inNetNS(ctx, netnsPath(node), "bridge", "fdb", "append", vxlanMACs[j], "dev", vxlanDev,
			"dst", kernelULIP(j).String(), "self", "permanent").CombinedOutput()
		if err != nil {
			return fmt.Errorf("bridge fdb append in %s: %w: %s", node, err, strings.TrimSpace(string(out)))
		}
	}
	for i, node := range nodeNetNSes {
		conf := vxlanConfList(i, c.mtu(), filepath.Join(c.h.work, fmt.Sprintf("host-local-vxlan-node%d", i+1)))
		rt, err := newCNIRuntime(caseVXLANBridge, conf, c.h.cniBin, filepath.Join(c.h.work, "cni-cache"), netnsPath(node), nil)
		if err != nil {
			return err
		}
		c.rts[i] = rt
	}
	return nil
}

func (c *vxlanBridgeCase) AddPods(ctx context.Context, round int) (podPair, []time.Duration, error) {
	return crossPair(ctx, c.rts, round)
}

func (c *vxlanBridgeCase) DelPods(ctx context.Context) error { return delCross(ctx, c.rts) }

// AddDel is not run: the bridge case times the same plugin's ADD.
func (c *vxlanBridgeCase) AddDel(ctx context.Context, i int) (time.Duration, time.Duration, error) {
	return 0, 0, errors.ErrUnsupported
}

func (c *vxlanBridgeCase) Verifier() verifier {
	return &linkVerifier{netns: nodeNetNS, link: vxlanDev, path: pathVXLANBridge}
}

// Teardown deletes the pods and the VXLAN devices; the bridges and routes go with the
// node namespaces.
func (c *vxlanBridgeCase) Teardown(ctx context.Context) error {
	errs := []error{c.DelPods(ctx)}
	for _, node := range nodeNetNSes {
		if netnsExists(node) {
			_ = ipIn(ctx, node, "link", "del", vxlanDev) // absent when Setup failed early
		}
	}
	return errors.Join(errs...)
}

func (c *vxlanBridgeCase) Info(ctx context.Context) map[string]string {
	return map[string]string{
		"datapath": fmt.Sprintf("flannel-style: kernel VXLAN %s (VNI %d, UDP %d, nolearning, MTU %d) over %s, static route/neigh/FDB to the other node; "+
			"pods on Linux bridge %s (bridge + host-local, isGateway, MTU %d), node subnets %s and %s",
			vxlanDev, vxlanVNI, vxlanPort, c.mtu(), kernelULLink, vxlanBridgeName, c.mtu(), vxlanSubnets[0], vxlanSubnets[1]),
		"plugins": "containernetworking/plugins " + c.h.pluginsVersion,
	}
}

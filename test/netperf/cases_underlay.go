package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// underlayCase runs iperf3 between the two node namespaces themselves over the kernel
// underlay link (a veth from each node to the Linux bridge in the underlay namespace):
// the limit of any cross-node path, which rides on this link.
type underlayCase struct{ h *harness }

func (c *underlayCase) Name() string { return caseUnderlay }

func (c *underlayCase) Setup(ctx context.Context) error {
	if !c.h.topo.up {
		return fmt.Errorf("%s: two-node topology not set up", caseUnderlay)
	}
	return nil
}

// AddPods creates nothing: the "pods" are the nodes.
func (c *underlayCase) AddPods(ctx context.Context, round int) (podPair, []time.Duration, error) {
	var pair podPair
	for i, p := range []*pod{&pair.A, &pair.B} {
		*p = pod{Name: nodeNetNSes[i], NetNS: netnsPath(nodeNetNSes[i]), IP: kernelULIP(i), IfName: kernelULLink}
	}
	return pair, nil, nil
}

func (c *underlayCase) DelPods(ctx context.Context) error  { return nil }
func (c *underlayCase) Teardown(ctx context.Context) error { return nil }

func (c *underlayCase) AddDel(ctx context.Context, i int) (time.Duration, time.Duration, error) {
	return 0, 0, errors.ErrUnsupported
}

func (c *underlayCase) Verifier() verifier {
	return &linkVerifier{netns: nodeNetNS, link: kernelULLink, path: pathUnderlay}
}

func (c *underlayCase) Info(ctx context.Context) map[string]string {
	return map[string]string{
		"datapath": fmt.Sprintf("%s (kernel veth, MTU %d) in each node namespace, to Linux bridge %s in %s; iperf3 between the node namespaces",
			kernelULLink, c.h.topo.mtu, ulBridge, underlayNetNS),
	}
}

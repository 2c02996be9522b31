package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
)

// counters scrapes sdncni_datapath_packets_total from the node's controller, inside the
// node netns (each node has its own loopback): reason → packets.
func (d *demo) counters(ctx context.Context, n *node) (map[string]int64, error) {
	nodeNS, err := ns.GetNS(n.ovn.NetNSPath)
	if err != nil {
		return nil, err
	}
	defer nodeNS.Close()
	// Dial on the locked thread inside the netns; the socket stays there.
	var c net.Conn
	if err := nodeNS.Do(func(ns.NetNS) error {
		var err error
		c, err = net.DialTimeout("tcp4", metricsAddr, 5*time.Second)
		return err
	}); err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", n.name, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.0\r\nHost: metrics\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", n.name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	counts := map[string]int64{}
	const prefix = `sdncni_datapath_packets_total{reason="`
	for _, line := range strings.Split(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		reason, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err == nil {
			counts[reason] = int64(v)
		}
	}
	if _, ok := counts["redirect_fast"]; !ok {
		return nil, fmt.Errorf("metrics of %s: no datapath counters", n.name)
	}
	return counts, nil
}

func (d *demo) showCounters(ctx context.Context) error {
	section("5. Fast-path counters and VPN status", "same-node traffic inside a VPN bypassed OVS (redirect_fast); cross-node and cross-VPN packets were handed to OVS/OVN (to_ovs_*), where no path between VPNs exists")
	for _, n := range d.nodes {
		c, err := d.counters(ctx, n)
		if err != nil {
			return err
		}
		say("%s: sdncni-controller /metrics at %s in netns %s, sdncni_datapath_packets_total (non-zero):", n.name, metricsAddr, n.ovn.NetNS)
		var reasons []string
		for r, v := range c {
			if v != 0 {
				reasons = append(reasons, r)
			}
		}
		sort.Strings(reasons)
		var rows [][]string
		for _, r := range reasons {
			rows = append(rows, []string{r, strconv.FormatInt(c[r], 10)})
		}
		table([]string{"reason", "packets"}, rows)
		if n == d.nodes[0] && c["redirect_fast"] == 0 {
			d.fail("%s: no packet took the fast path", n.name)
		}
	}
	t0 := time.Now()
	for _, v := range vpns {
		want := 0
		for _, p := range d.pods {
			if p.vpn == v.name {
				want++
			}
		}
		err := d.waitVPN(ctx, v.name, func(o *v1alpha1.VirtualPrivateNetwork) bool { return int(o.Status.Pods) == want })
		if err != nil {
			d.fail("%v", err)
		}
	}
	say("status.pods counted by the cluster role (it recounts on its resync, every 15 s): %s", time.Since(t0).Round(100*time.Millisecond))
	return d.kubectlGetVPN(ctx)
}

package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// SetShared makes exactly services reachable from every VPN through this node: it
// rewrites table sdncni with their ClusterIPs and endpoints (one atomic batch), keeps one
// "fwmark M lookup M" rule per VPN that owns one of them, and removes the conntrack
// entries of endpoints that left. A service that fails Validate is left out and
// reported; the others are still written.
func (g *Gateway) SetShared(ctx context.Context, services []SharedService) error {
	var errs []error
	ok := make([]SharedService, 0, len(services))
	for _, s := range services {
		if err := s.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		ok = append(ok, s)
	}
	ok = normalizeShared(ok)
	g.mu.Lock()
	defer g.mu.Unlock()
	// The rules are cheap to check and the table's existence too: both are repaired on
	// every call, the table is rewritten only when the set changed (or it is gone).
	if err := syncRules(ok); err != nil {
		return errors.Join(append(errs, err)...)
	}
	exists, err := tableExists()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if exists && g.sharedWritten && reflect.DeepEqual(ok, g.shared) {
		return errors.Join(errs...)
	}
	if err := writeNetfilter(ok, g.filter()); err != nil {
		return errors.Join(append(errs, err)...)
	}
	old := g.shared
	g.shared, g.sharedWritten = ok, true
	g.nodesWritten = true // g.filter() carried the node guard
	n, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, conntrackFilter{newStaleFlows(old, ok)})
	if err != nil {
		// Written, but not cleaned: the next call cleans again.
		g.sharedWritten = false
		errs = append(errs, fmt.Errorf("delete conntrack entries of gone shared endpoints: %w", err))
	} else if n > 0 {
		g.log.V(1).Info("removed conntrack entries of gone shared endpoints", "entries", n)
	}
	return errors.Join(errs...)
}

// SetNodes makes the cluster's node addresses (nodes) and the API server endpoints (api)
// those of table sdncni: pods open no connection to a node, and reach the API servers at
// their endpoints only (see writeNetfilter). The table is rewritten, shared Services
// kept, when either changed or the table is gone.
func (g *Gateway) SetNodes(ctx context.Context, nodes []netip.Addr, api []netip.AddrPort) error {
	nodes = slices.Clone(nodes)
	slices.SortFunc(nodes, func(a, b netip.Addr) int { return a.Compare(b) })
	nodes = slices.Compact(nodes)
	api = slices.Clone(api)
	slices.SortFunc(api, func(a, b netip.AddrPort) int { return a.Compare(b) })
	api = slices.Compact(api)
	g.mu.Lock()
	defer g.mu.Unlock()
	exists, err := tableExists()
	if err != nil {
		return err
	}
	if exists && g.nodesWritten && slices.Equal(nodes, g.nodes) && slices.Equal(api, g.apiServers) {
		return nil
	}
	old, oldAPI := g.nodes, g.apiServers
	g.nodes, g.apiServers = nodes, api
	if !g.sharedWritten {
		// The table may still hold the shared Services of the controller that ran
		// before (EnsureNetfilter keeps it, so a restart does not cut DNS): rewriting it
		// now would drop them. SetShared's first write, which follows at start, carries
		// the node guard too.
		return nil
	}
	if err := writeNetfilter(g.shared, g.filter()); err != nil {
		g.nodes, g.apiServers = old, oldAPI
		return err
	}
	g.nodesWritten = true
	g.log.V(1).Info("node guard written", "nodes", len(nodes), "apiServers", api)
	return nil
}

// filter is what table sdncni guards now; g.mu held.
func (g *Gateway) filter() Filter {
	return Filter{ServiceCIDRs: g.cfg.ServiceCIDRs, ControlPlane: g.cfg.ControlPlaneCIDRs,
		APIServers: g.apiServers, Nodes: g.nodes}
}

// syncRules keeps, in the node netns, one rule "fwmark M lookup M" (priority 1000) per
// VPN that owns a shared Service and one catch-all "fwmark 0x5dc00000/0xffff0000
// unreachable" (priority 1001): a marked packet whose table has no route (the
// management port is not up yet) is refused instead of routed by the main table, where
// its endpoint address may name a pod of another VPN.
func syncRules(shared []SharedService) error {
	want := map[uint32]bool{}
	for _, s := range shared {
		want[SharedMark(s.VPNID)] = true
	}
	have, err := netlink.RuleList(unix.AF_INET)
	if err != nil {
		return fmt.Errorf("list ip rules: %w", err)
	}
	catchAll := false
	for _, r := range have {
		if r.Mark&sharedMarkMask != sharedMarkBase {
			continue
		}
		switch {
		// RuleList does not report a rule's type (netlink v1.3.1): the catch-all is the
		// rule at its priority with its mark and mask and no table to look up.
		case r.Priority == rulePriority+1 && r.Table == 0 && maskIs(r, sharedMarkMask) && r.Mark == sharedMarkBase:
			catchAll = true
			continue
		case r.Priority == rulePriority && want[r.Mark] && uint32(r.Table) == r.Mark && maskIs(r, 0xffffffff):
			delete(want, r.Mark)
			continue
		}
		if err := netlink.RuleDel(&r); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("remove ip rule %v: %w", r, err)
		}
	}
	for m := range want {
		r := netlink.NewRule()
		r.Family = unix.AF_INET
		r.Priority = rulePriority
		r.Mark = m
		mask := uint32(0xffffffff)
		r.Mask = &mask
		r.Table = int(m)
		if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add ip rule fwmark %#x lookup %d: %w", m, m, err)
		}
	}
	if !catchAll {
		r := netlink.NewRule()
		r.Family = unix.AF_INET
		r.Priority = rulePriority + 1
		r.Mark = sharedMarkBase
		mask := sharedMarkMask
		r.Mask = &mask
		r.Type = unix.RTN_UNREACHABLE
		if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add ip rule fwmark %#x/%#x unreachable: %w", sharedMarkBase, sharedMarkMask, err)
		}
	}
	return nil
}

// maskIs reports whether r's fwmark mask is m (no mask means all ones).
func maskIs(r netlink.Rule, m uint32) bool {
	if r.Mask == nil {
		return m == 0xffffffff
	}
	return *r.Mask == m
}

// DeleteRules removes every ip rule of shared Services (for --teardown).
func DeleteRules() error {
	have, err := netlink.RuleList(unix.AF_INET)
	if err != nil {
		return fmt.Errorf("list ip rules: %w", err)
	}
	var errs []error
	for _, r := range have {
		if r.Mark&sharedMarkMask == sharedMarkBase && (r.Priority == rulePriority || r.Priority == rulePriority+1) {
			if err := netlink.RuleDel(&r); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("remove ip rule %v: %w", r, err))
			}
		}
	}
	return errors.Join(errs...)
}

// conntrackFilter applies staleFlows to kernel conntrack entries.
type conntrackFilter struct{ staleFlows }

// MatchConntrackFlow implements netlink.CustomConntrackFilter.
func (f conntrackFilter) MatchConntrackFlow(c *netlink.ConntrackFlow) bool {
	var proto string
	switch c.Forward.Protocol {
	case unix.IPPROTO_TCP:
		proto = "tcp"
	case unix.IPPROTO_UDP:
		proto = "udp"
	default:
		return false
	}
	dst, ok1 := netip.AddrFromSlice(c.Forward.DstIP.To4())
	src, ok2 := netip.AddrFromSlice(c.Reverse.SrcIP.To4())
	if !ok1 || !ok2 {
		return false
	}
	return f.match(proto, netip.AddrPortFrom(dst, c.Forward.DstPort), netip.AddrPortFrom(src, c.Reverse.SrcPort), c.Mark)
}

package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Marks and routing of shared Services (docs/services.md). A connection to a shared
// Service carries SharedMark(vpn) — vpn is the VPN of the Service's endpoints — as
// packet mark and conntrack mark. The packet mark selects routing table
// SharedMark(vpn), which holds only that VPN's CIDR through its management port; the
// conntrack mark lets the connection, and nothing else, cross from one VPN's management
// port to another's.
const (
	sharedMarkBase uint32 = 0x5dc00000
	sharedMarkMask uint32 = 0xffff0000
	// maxSharedVPNID is the largest VPN id a mark can carry.
	maxSharedVPNID = 0xffff
	// rulePriority is the priority of the "fwmark M lookup M" rules; rulePriority+1
	// holds the catch-all that makes a marked packet with no route unreachable instead
	// of falling through to the main table.
	rulePriority = 1000
)

// SharedMark is the packet mark, conntrack mark and routing table of connections to
// shared Services whose endpoints are in VPN id.
func SharedMark(id uint32) uint32 { return sharedMarkBase | id }

// SharedService is one Service that pods of every VPN reach through their node.
type SharedService struct {
	Name   string       // "namespace/name", for chain names and logs
	VPN    string       // the VPN whose pods are its endpoints
	VPNID  uint32       // that VPN's id: the mark and routing table
	Prefix netip.Prefix // that VPN's CIDR: endpoints inside it are reached through the VPN
	Ports  []SharedPort
}

// SharedPort is one ClusterIP, port and protocol of a shared Service and its ready
// endpoints. With no endpoints, packets to it are dropped.
type SharedPort struct {
	Protocol  string // "tcp" or "udp"
	VIP       netip.AddrPort
	Endpoints []netip.AddrPort
}

// Validate reports what makes s unusable.
func (s SharedService) Validate() error {
	if s.VPNID == 0 || s.VPNID > maxSharedVPNID {
		return fmt.Errorf("shared service %s: vpn %s id %d is not in 1..%d", s.Name, s.VPN, s.VPNID, maxSharedVPNID)
	}
	if !s.Prefix.IsValid() || !s.Prefix.Addr().Is4() {
		return fmt.Errorf("shared service %s: vpn %s cidr %v is not IPv4", s.Name, s.VPN, s.Prefix)
	}
	for _, p := range s.Ports {
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			return fmt.Errorf("shared service %s: protocol %q", s.Name, p.Protocol)
		}
		if !p.VIP.Addr().Is4() {
			return fmt.Errorf("shared service %s: cluster IP %s is not IPv4", s.Name, p.VIP)
		}
		for _, e := range p.Endpoints {
			if !e.Addr().Is4() {
				return fmt.Errorf("shared service %s: endpoint %s is not IPv4", s.Name, e)
			}
		}
	}
	return nil
}

// chainName names the nftables chain that picks an endpoint for one port of s.
func (s SharedService) chainName(p SharedPort) string {
	sum := sha256.Sum256([]byte(s.Name + "/" + p.Protocol + "/" + p.VIP.String()))
	return "svc-" + hex.EncodeToString(sum[:])[:16]
}

// normalizeShared sorts services, ports and endpoints so equal sets compare equal and
// the table is written in a stable order.
func normalizeShared(in []SharedService) []SharedService {
	out := make([]SharedService, 0, len(in))
	for _, s := range in {
		s.Ports = slices.Clone(s.Ports)
		for i := range s.Ports {
			s.Ports[i].Endpoints = slices.Clone(s.Ports[i].Endpoints)
			slices.SortFunc(s.Ports[i].Endpoints, func(a, b netip.AddrPort) int { return a.Compare(b) })
		}
		slices.SortFunc(s.Ports, func(a, b SharedPort) int {
			if c := a.VIP.Compare(b.VIP); c != 0 {
				return c
			}
			return strings.Compare(a.Protocol, b.Protocol)
		})
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b SharedService) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// staleFlows matches the conntrack entries that SetShared must delete: connections to a
// ClusterIP:port that was shared (in old or cur) or that carry a shared mark (those
// written before a controller restart), whose endpoint is no longer one of cur's for
// that ClusterIP:port. A UDP client that keeps its source port (a resolver) would
// otherwise keep talking to an endpoint that left, and a connection to a Service that
// is no longer shared would keep crossing VPNs.
type staleFlows struct {
	vips map[string]bool // "proto|ip:port" of every shared port, old and current
	keep map[string]bool // "proto|ip:port|endpoint" of the current ones
}

func newStaleFlows(old, cur []SharedService) staleFlows {
	f := staleFlows{vips: map[string]bool{}, keep: map[string]bool{}}
	for i, set := range [][]SharedService{old, cur} {
		for _, s := range set {
			for _, p := range s.Ports {
				vip := p.Protocol + "|" + p.VIP.String()
				f.vips[vip] = true
				for _, e := range p.Endpoints {
					if i == 1 {
						f.keep[vip+"|"+e.String()] = true
					}
				}
			}
		}
	}
	return f
}

// match reports whether a connection (protocol, original destination, reply source,
// conntrack mark) is stale.
func (f staleFlows) match(proto string, origDst, replySrc netip.AddrPort, mark uint32) bool {
	vip := proto + "|" + origDst.String()
	if mark&sharedMarkMask != sharedMarkBase && !f.vips[vip] {
		return false // not ours
	}
	return !f.keep[vip+"|"+replySrc.String()]
}

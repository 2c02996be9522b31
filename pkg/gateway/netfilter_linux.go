package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TableName is the nftables table (family ip) the gateway owns in the node netns.
const TableName = "sdncni"

// Filter is what table sdncni guards besides the shared Services.
type Filter struct {
	// ServiceCIDRs are the cluster's ClusterIP ranges: pods' packets to them that no
	// shared Service DNATed are dropped at the node instead of leaving it.
	ServiceCIDRs []netip.Prefix
	// ControlPlane are the API servers' addresses: connections from them, arriving from
	// the node network, may enter this node's pods.
	ControlPlane []netip.Prefix
	// APIServers are the API server endpoints (the default/kubernetes EndpointSlice):
	// the only node-side addresses a pod may open connections to.
	APIServers []netip.AddrPort
	// Nodes are the cluster's node addresses: pods open no connection to them (nor to
	// this node, whatever its addresses).
	Nodes []netip.Addr
}

// EnsureNetfilter turns on IPv4 forwarding in the node netns and writes table sdncni
// (with no shared Services) if it does not exist. An existing table is left alone: it
// may hold the shared Services of a controller that ran before, and Gateway.SetShared
// rewrites it whole once the node role has read them, so a restart does not cut DNS.
func EnsureNetfilter(f Filter) error {
	if err := setSysctl("net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	if ok, err := tableExists(); err != nil || ok {
		return err
	}
	return writeNetfilter(nil, f)
}

// tableExists reports whether table sdncni exists in the current netns.
func tableExists() (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, fmt.Errorf("nftables: %w", err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return false, fmt.Errorf("list nftables tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == TableName {
			return true, nil
		}
	}
	return false, nil
}

// writeNetfilter (re)writes table sdncni in one atomic batch, so no packet ever meets a
// half-written table:
//
//	chain mark (filter, hook prerouting, priority mangle)
//	  ct direction original ct mark & 0xffff0000 == 0x5dc00000 meta mark set ct mark
//	chain mark-out (filter, hook output, priority mangle)   # the node's own connections
//	  ct direction original ct mark & 0xffff0000 == 0x5dc00000 meta mark set ct mark
//	chain dnat (nat, hook prerouting, priority dstnat)
//	  iifname "sdnm*" ip daddr VIP meta l4proto P th dport PORT jump svc-…   # per shared port
//	chain dnat-out (nat, hook output, priority dstnat)      # host-network pods, the node
//	  ip daddr VIP meta l4proto P th dport PORT jump svc-…
//	chain svc-… (one per shared ClusterIP, port and protocol)
//	  numgen random mod n == 0 [mark set M] dnat to endpoint 1   # kube-proxy's choice:
//	  numgen random mod n-1 == 0 [mark set M] dnat to endpoint 2 # 1/n, 1/(n-1), …, 1
//	  [mark set M] dnat to endpoint n                            # (drop with none)
//	set nodes { type ipv4_addr }                          # Filter.Nodes
//	chain input (filter, hook input, policy accept)
//	  ct direction original ct mark & 0xffff0000 == 0x5dc00000 drop # an endpoint is never the node
//	  iifname "sdnm*" ct state established,related accept # replies to the node's connections
//	  iifname "sdnm*" ip daddr A tcp dport P accept        # per API server endpoint
//	  iifname "sdnm*" drop                                 # a pod opens nothing on its node
//	chain output (filter, hook output, policy accept)
//	  oifname "sdnm*" icmp type 3 icmp code != 4 drop      # no error of the node's reaches
//	  oifname "sdnm*" icmp type { 5, 11, 12 } drop         # a pod (frag-needed still does)
//	chain forward  (filter, hook forward, policy accept)
//	  ct mark & 0xffff0000 == 0x5dc00000 accept           # a shared-Service connection
//	  iifname "sdnm*" ip daddr <service CIDR> drop         # a ClusterIP nobody DNATed stays here
//	  iifname "sdnm*" oifname "sdnm*" drop                 # never from one VPN into another
//	  oifname "sdnm*" ct state established,related accept # replies to node and pod connections
//	  iifname "sdnm*" ip daddr A tcp dport P accept        # per API server endpoint
//	  iifname "sdnm*" ip daddr @nodes ct state != established,related drop # nor on other nodes
//	  iifname != "sdnm*" oifname "sdnm*" ct status dnat accept # a hostPort (portmap's DNAT)
//	  iifname != "sdnm*" ip saddr <control plane> oifname "sdnm*" accept # API server → pod
//	  oifname "sdnm*" drop                                 # nothing else enters a VPN via the node
//	chain postrouting (nat, hook postrouting)
//	  ct mark & 0xffff0000 == 0x5dc00000 oifname "sdnm*" masquerade # the endpoint sees the node
//	  iifname "sdnm*" oifname != "sdnm*" masquerade        # egress leaves with the node's address
//
// "mark set M" (M = SharedMark of the Service's VPN) sets packet and conntrack mark and
// is only written for endpoints inside that VPN's CIDR; the mark routes the connection
// through table M, which reaches that VPN only (see syncRules). The input rule keeps a
// marked connection from ever being delivered to the node itself (an endpoint address
// that is also one of the node's), and the service-CIDR rule keeps pods' packets to
// ClusterIPs that are not shared from leaving the node unanswered-but-masqueraded. The
// control-plane rule lets the API server (which is not a pod and, on a node of its own,
// not this node) open connections to this node's pods: the pods/proxy subresource,
// admission webhooks and aggregated API servers in pods need it. The control plane is
// the cluster's root of trust (it can exec into any pod), so this opens nothing to a
// tenant: a pod's packets never carry those source addresses (port security), and they
// arrive from the node network, never from a management port.
//
// Pods reach no node: not their own (input from a management port: replies only, and
// the API servers where one runs on this node) and not the others (Filter.Nodes), so no
// tenant talks to the kubelet, OVSDB or OVN's databases of any node; the API servers
// they reach at their endpoints only. Nor does any error the node generates reach a
// pod (ICMP unreachable, redirect, time exceeded, parameter problem would tell a tenant
// which addresses its node routes and the management addresses): the node is not a hop
// a tenant can see, except "fragmentation needed", which path MTU discovery needs.
func writeNetfilter(shared []SharedService, f Filter) error {
	serviceCIDRs, controlPlane := f.ServiceCIDRs, f.ControlPlane
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}
	// Add, delete, add: one batch that works whether or not the table exists.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	mark := c.AddChain(&nftables.Chain{Name: "mark", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle, Policy: &accept})
	dnat := c.AddChain(&nftables.Chain{Name: "dnat", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	// A filter chain, not a route chain: a route chain would reroute on the restored mark
	// while the destination is still the ClusterIP, which the mark's table cannot route.
	// NAT reroutes every DNATed packet of the node's own connections anyway, with the mark.
	markOut := c.AddChain(&nftables.Chain{Name: "mark-out", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityMangle, Policy: &accept})
	dnatOut := c.AddChain(&nftables.Chain{Name: "dnat-out", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	in := c.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	out := c.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	nodes := &nftables.Set{Table: t, Name: "nodes", KeyType: nftables.TypeIPAddr}
	var elems []nftables.SetElement
	for _, a := range f.Nodes {
		if a.Is4() {
			b := a.As4()
			elems = append(elems, nftables.SetElement{Key: b[:]})
		}
	}
	if err := c.AddSet(nodes, elems); err != nil {
		return fmt.Errorf("nftables set nodes: %w", err)
	}
	nat := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})
	rule := func(ch *nftables.Chain, exprs ...[]expr.Any) {
		var all []expr.Any
		for _, e := range exprs {
			all = append(all, e...)
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: all})
	}
	drop := []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
	acc := []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}

	restore := []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
	}
	rule(mark, ctOriginal(), ctMarkShared(), restore)
	rule(markOut, ctOriginal(), ctMarkShared(), restore)
	for _, s := range shared {
		m := SharedMark(s.VPNID)
		for _, p := range s.Ports {
			svc := c.AddChain(&nftables.Chain{Name: s.chainName(p), Table: t})
			rule(dnat, ifPrefix(expr.MetaKeyIIFNAME, true), matchPort(p), []expr.Any{
				&expr.Verdict{Kind: expr.VerdictJump, Chain: svc.Name}})
			rule(dnatOut, matchPort(p), []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: svc.Name}})
			n := len(p.Endpoints)
			if n == 0 {
				rule(svc, drop)
			}
			for i, e := range p.Endpoints {
				var pick, set []expr.Any
				if i < n-1 {
					pick = []expr.Any{
						&expr.Numgen{Register: 1, Modulus: uint32(n - i), Type: unix.NFT_NG_RANDOM},
						&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
					}
				}
				if s.Prefix.Contains(e.Addr()) {
					set = []expr.Any{
						&expr.Immediate{Register: 1, Data: binaryutil.NativeEndian.PutUint32(m)},
						&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
						&expr.Ct{Key: expr.CtKeyMARK, SourceRegister: true, Register: 1},
					}
				}
				ip := e.Addr().As4()
				rule(svc, pick, set, []expr.Any{
					&expr.Immediate{Register: 1, Data: ip[:]},
					&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(e.Port())},
					&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
				})
			}
		}
	}
	fromPod := ifPrefix(expr.MetaKeyIIFNAME, true)
	toAPI := func(ch *nftables.Chain) {
		for _, a := range f.APIServers {
			if a.Addr().Is4() {
				rule(ch, fromPod, daddrIn(netip.PrefixFrom(a.Addr(), 32)), tcpDport(a.Port()), acc)
			}
		}
	}
	rule(in, ctOriginal(), ctMarkShared(), drop)
	rule(in, fromPod, ctReply(), acc)
	toAPI(in)
	rule(in, fromPod, drop)
	toPod := ifPrefix(expr.MetaKeyOIFNAME, true)
	rule(out, toPod, icmpType(3), []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 1, Len: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{4}}, // fragmentation needed
	}, drop)
	for _, typ := range []byte{5, 11, 12} { // redirect, time exceeded, parameter problem
		rule(out, toPod, icmpType(typ), drop)
	}
	rule(fwd, ctMarkShared(), acc)
	for _, p := range serviceCIDRs {
		if p.IsValid() && p.Addr().Is4() {
			rule(fwd, ifPrefix(expr.MetaKeyIIFNAME, true), daddrIn(p.Masked()), drop)
		}
	}
	rule(fwd, ifPrefix(expr.MetaKeyIIFNAME, true), ifPrefix(expr.MetaKeyOIFNAME, true), drop)
	rule(fwd, ifPrefix(expr.MetaKeyOIFNAME, true), ctReply(), acc)
	toAPI(fwd)
	rule(fwd, fromPod, []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: nodes.Name, SetID: nodes.ID},
	}, ctNotReply(), drop)
	rule(fwd, ifPrefix(expr.MetaKeyIIFNAME, false), ifPrefix(expr.MetaKeyOIFNAME, true), ctDNAT(), acc)
	for _, p := range controlPlane {
		if p.IsValid() && p.Addr().Is4() {
			rule(fwd, ifPrefix(expr.MetaKeyIIFNAME, false), saddrIn(p.Masked()), ifPrefix(expr.MetaKeyOIFNAME, true), acc)
		}
	}
	rule(fwd, ifPrefix(expr.MetaKeyOIFNAME, true), drop)
	rule(nat, ctMarkShared(), ifPrefix(expr.MetaKeyOIFNAME, true), []expr.Any{&expr.Masq{}})
	rule(nat, ifPrefix(expr.MetaKeyIIFNAME, true), ifPrefix(expr.MetaKeyOIFNAME, false), []expr.Any{&expr.Masq{}})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("write nftables table %s: %w", TableName, err)
	}
	return nil
}

// DeleteNetfilter removes table sdncni; a missing table is not an error. Forwarding is
// left on (other software in the netns may rely on it).
func DeleteNetfilter() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName})
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete nftables table %s: %w", TableName, err)
	}
	return nil
}

// ifPrefix matches (eq) or not (!eq) an interface name starting with PortPrefix, as nft's
// "sdnm*": a compare of the first len(PortPrefix) bytes.
func ifPrefix(key expr.MetaKey, eq bool) []expr.Any {
	op := expr.CmpOpEq
	if !eq {
		op = expr.CmpOpNeq
	}
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: []byte(PortPrefix)},
	}
}

// ctReply matches ct state established,related.
func ctReply() []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

// ctNotReply matches ct state new, invalid and untracked: not established, not related.
func ctNotReply() []expr.Any {
	m := ctReply()
	m[len(m)-1] = &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)}
	return m
}

// icmpType matches ICMP packets of type typ.
func icmpType(typ byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{typ}},
	}
}

// tcpDport matches TCP packets to port.
func tcpDport(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

// ctDNAT matches packets of connections whose destination the node rewrote: a pod's
// hostPort, which the chained portmap plugin DNATs from the node's address. A hostPort
// is published on the node on purpose, so it may be entered from the node network.
func ctDNAT() []expr.Any {
	const ipsDstNAT = 1 << 5 // IPS_DST_NAT, linux/netfilter/nf_conntrack_common.h
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATUS, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

// ctOriginal matches packets of a connection's original direction.
func ctOriginal() []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyDIRECTION, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0}}, // IP_CT_DIR_ORIGINAL
	}
}

// ctMarkShared matches connections to a shared Service: ct mark & 0xffff0000 == 0x5dc00000.
func ctMarkShared() []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: 2},
		&expr.Bitwise{SourceRegister: 2, DestRegister: 2, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(sharedMarkMask), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 2, Data: binaryutil.NativeEndian.PutUint32(sharedMarkBase)},
	}
}

// daddrIn matches an IPv4 destination inside p.
func daddrIn(p netip.Prefix) []expr.Any { return addrIn(16, p) }

// saddrIn matches packets from addresses in p.
func saddrIn(p netip.Prefix) []expr.Any { return addrIn(12, p) }

// addrIn matches the IPv4 address at offset (12 source, 16 destination) against p.
func addrIn(offset uint32, p netip.Prefix) []expr.Any {
	addr := p.Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: net.CIDRMask(p.Bits(), 32), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr[:]},
	}
}

// matchPort matches packets to p's ClusterIP, protocol and port.
func matchPort(p SharedPort) []expr.Any {
	ip := p.VIP.Addr().As4()
	proto := byte(unix.IPPROTO_TCP)
	if p.Protocol == "udp" {
		proto = unix.IPPROTO_UDP
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ip[:]},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(p.VIP.Port())},
	}
}

package gateway

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TableName is the nftables table (family ip) the gateway owns in the node netns.
const TableName = "sdncni"

// EnsureNetfilter turns on IPv4 forwarding in the node netns and (re)writes table
// sdncni in one atomic batch:
//
//	chain forward  (filter, hook forward, policy accept)
//	  iifname "sdnm*" oifname "sdnm*" drop                 # never from one VPN into another
//	  oifname "sdnm*" ct state established,related accept # replies to node and pod connections
//	  oifname "sdnm*" drop                                 # nothing else enters a VPN via the node
//	chain postrouting (nat, hook postrouting)
//	  iifname "sdnm*" oifname != "sdnm*" masquerade        # egress leaves with the node's address
//
// Calling it again leaves the same table.
func EnsureNetfilter() error {
	if err := setSysctl("net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName})
	c.FlushTable(t)
	accept := nftables.ChainPolicyAccept
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
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
	rule(fwd, ifPrefix(expr.MetaKeyIIFNAME, true), ifPrefix(expr.MetaKeyOIFNAME, true), drop)
	rule(fwd, ifPrefix(expr.MetaKeyOIFNAME, true), ctReply(), []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}})
	rule(fwd, ifPrefix(expr.MetaKeyOIFNAME, true), drop)
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

package ovs

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/ovn-kubernetes/libovsdb/model"
	"github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/sdncni/sdncni/pkg/ovs/model/nb"
)

// external_ids of policy rows.
const (
	// RolePolicy marks the address sets and ACLs that realise a network's policies.
	RolePolicy = "policy"
	// KeyPolicy names the policy ("namespace/name") a row belongs to; empty for a
	// network's own policy rows (isolation, nodes).
	KeyPolicy = "sdncni.io/policy"
	// KeyACL identifies an ACL by its content (direction, priority, match, action).
	KeyACL = "sdncni.io/acl"
)

// PolicyAddressSet is an OVN address set of a network's policies.
type PolicyAddressSet struct {
	Name   string
	Addrs  []string
	Policy string
}

// PolicyACL is an ACL on a network's logical switch. Key must change whenever anything
// else does: rows are matched by it, never updated in place.
type PolicyACL struct {
	Key       string
	Direction string // "to-lport" or "from-lport"
	Priority  int
	Match     string
	Action    string
	// AfterLB sets options:apply-after-lb (from-lport only).
	AfterLB bool
	Policy  string
}

// SetPolicyRules makes network's policy address sets and ACLs exactly sets and acls, in
// one transaction: missing rows are created, changed address sets updated, rows no
// longer wanted deleted (ACLs by removal from the switch, which owns them). Rows of
// other networks are not read or touched. The network must exist (ErrNotFound).
func (n *Northbound) SetPolicyRules(ctx context.Context, network string, sets []PolicyAddressSet, acls []PolicyACL) error {
	if err := n.setPolicyRules(ctx, network, sets, acls); err != nil {
		return fmt.Errorf("set policy rules of %s: %w", network, err)
	}
	return nil
}

func (n *Northbound) setPolicyRules(ctx context.Context, network string, sets []PolicyAddressSet, acls []PolicyACL) error {
	ls := n.logicalSwitch(ctx, network)
	if ls == nil {
		if len(sets) == 0 && len(acls) == 0 {
			return n.deletePolicySets(ctx, network, nil)
		}
		return fmt.Errorf("network %s: %w", network, ErrNotFound)
	}
	var ops []ovsdb.Operation
	add := func(o []ovsdb.Operation, err error) error {
		if err != nil {
			return fmt.Errorf("ops: %w", err)
		}
		ops = append(ops, o...)
		return nil
	}
	curSets, err := n.policySets(ctx, network)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for i, s := range sets {
		want[s.Name] = true
		ids := policyIDs(network, s.Policy)
		addrs := slices.Sorted(slices.Values(s.Addrs))
		cur, ok := curSets[s.Name]
		switch {
		case !ok:
			row := &nb.AddressSet{UUID: fmt.Sprintf("new_as_%d", i), Name: s.Name, Addresses: addrs, ExternalIDs: ids}
			if err := add(n.c.Create(row)); err != nil {
				return err
			}
		case !slices.Equal(slices.Sorted(slices.Values(cur.Addresses)), addrs) || !maps.Equal(cur.ExternalIDs, ids):
			row := &nb.AddressSet{UUID: cur.UUID, Addresses: addrs, ExternalIDs: ids}
			if err := add(n.c.Where(row).Update(row, &row.Addresses, &row.ExternalIDs)); err != nil {
				return err
			}
		}
	}
	for name, cur := range curSets {
		if !want[name] {
			if err := add(n.c.Where(&nb.AddressSet{UUID: cur.UUID}).Delete()); err != nil {
				return err
			}
		}
	}
	curACLs, err := n.policyACLs(ctx, ls)
	if err != nil {
		return err
	}
	wantACL := map[string]bool{}
	var insert []string
	for i, a := range acls {
		wantACL[a.Key] = true
		if _, ok := curACLs[a.Key]; ok {
			continue
		}
		ids := policyIDs(network, a.Policy)
		ids[KeyACL] = a.Key
		row := &nb.ACL{UUID: fmt.Sprintf("new_acl_%d", i), Direction: a.Direction, Priority: a.Priority,
			Match: a.Match, Action: a.Action, ExternalIDs: ids}
		if a.AfterLB {
			row.Options = map[string]string{"apply-after-lb": "true"}
		}
		if err := add(n.c.Create(row)); err != nil {
			return err
		}
		insert = append(insert, row.UUID)
	}
	var remove []string
	for key, uuid := range curACLs {
		if !wantACL[key] {
			remove = append(remove, uuid)
		}
	}
	sw := &nb.LogicalSwitch{UUID: ls.UUID}
	if len(insert) > 0 {
		if err := add(n.c.Where(sw).Mutate(sw, model.Mutation{Field: &sw.ACLs, Mutator: ovsdb.MutateOperationInsert, Value: insert})); err != nil {
			return err
		}
	}
	if len(remove) > 0 {
		if err := add(n.c.Where(sw).Mutate(sw, model.Mutation{Field: &sw.ACLs, Mutator: ovsdb.MutateOperationDelete, Value: remove})); err != nil {
			return err
		}
	}
	if len(ops) == 0 {
		return nil
	}
	if _, err := transact(ctx, n.c, ops); err != nil {
		return err
	}
	return waitUntil(ctx, "policy rules of "+network+" in cache", func(ctx context.Context) bool {
		ls := n.logicalSwitch(ctx, network)
		if ls == nil {
			return false
		}
		cur, err := n.policyACLs(ctx, ls)
		if err != nil || len(cur) != len(wantACL) {
			return false
		}
		for k := range wantACL {
			if _, ok := cur[k]; !ok {
				return false
			}
		}
		s, err := n.policySets(ctx, network)
		return err == nil && len(s) == len(want)
	})
}

// deletePolicySets removes network's policy address sets not in keep (its switch, and
// with it its ACLs, is gone already).
func (n *Northbound) deletePolicySets(ctx context.Context, network string, keep map[string]bool) error {
	cur, err := n.policySets(ctx, network)
	if err != nil {
		return err
	}
	var ops []ovsdb.Operation
	for name, s := range cur {
		if keep[name] {
			continue
		}
		o, err := n.c.Where(&nb.AddressSet{UUID: s.UUID}).Delete()
		if err != nil {
			return fmt.Errorf("ops: %w", err)
		}
		ops = append(ops, o...)
	}
	if len(ops) == 0 {
		return nil
	}
	_, err = transact(ctx, n.c, ops)
	return err
}

func policyIDs(network, policy string) map[string]string {
	ids := map[string]string{KeyOwner: OwnerValue, KeyNetwork: network, KeyRole: RolePolicy}
	if policy != "" {
		ids[KeyPolicy] = policy
	}
	return ids
}

func isPolicyRow(ids map[string]string, network string) bool {
	return owned(ids) && ids[KeyRole] == RolePolicy && ids[KeyNetwork] == network
}

// policySets returns network's cached policy address sets by name.
func (n *Northbound) policySets(ctx context.Context, network string) (map[string]nb.AddressSet, error) {
	var rows []nb.AddressSet
	if err := n.c.WhereCache(func(a *nb.AddressSet) bool { return isPolicyRow(a.ExternalIDs, network) }).List(ctx, &rows); err != nil {
		return nil, fmt.Errorf("list address sets: %w", err)
	}
	out := make(map[string]nb.AddressSet, len(rows))
	for _, r := range rows {
		out[r.Name] = r
	}
	return out, nil
}

// policyACLs returns the UUIDs of the policy ACLs on ls by their key.
func (n *Northbound) policyACLs(ctx context.Context, ls *nb.LogicalSwitch) (map[string]string, error) {
	var rows []nb.ACL
	if err := n.c.WhereCache(func(a *nb.ACL) bool {
		return owned(a.ExternalIDs) && a.ExternalIDs[KeyRole] == RolePolicy && slices.Contains(ls.ACLs, a.UUID)
	}).List(ctx, &rows); err != nil {
		return nil, fmt.Errorf("list acls: %w", err)
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.ExternalIDs[KeyACL]] = r.UUID
	}
	return out, nil
}

package ovs

import (
	"context"
	"fmt"
	"strconv"

	"github.com/go-logr/logr"
	"github.com/ovn-kubernetes/libovsdb/client"
	"github.com/ovn-kubernetes/libovsdb/model"
	"github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/sdncni/sdncni/pkg/ovs/model/sb"
)

// aclStages are the logical pipeline stages in which ovn-northd 23.03 puts the flows it
// makes from ACLs (external_ids:stage-name of Logical_Flow).
var aclStages = []string{"ls_in_acl", "ls_out_acl", "ls_in_acl_after_lb"}

// Southbound is a read-only client of the OVN Southbound database. Its cache holds the
// external_ids of the logical flows of the ACL stages only (a conditional monitor), so
// its size follows the number of ACLs, not of all logical flows.
type Southbound struct {
	c client.Client
}

// NewSouthbound connects to the OVN Southbound database at endpoint (several remotes of a
// clustered database separated by commas; "ssl:" needs WithTLS). It only reads, so the
// ovn-controller RBAC role of a node's certificate is enough.
func NewSouthbound(ctx context.Context, endpoint string, log logr.Logger, opts ...ConnOption) (*Southbound, error) {
	lf := &sb.LogicalFlow{}
	dbModel, err := model.NewClientDBModel("OVN_Southbound", map[string]model.Model{sb.LogicalFlowTable: lf})
	if err != nil {
		return nil, fmt.Errorf("sb model: %w", err)
	}
	c, err := connect(ctx, endpoint, dbModel, log, func(c client.Client) []client.MonitorOption {
		conds := make([]model.Condition, 0, len(aclStages))
		for _, s := range aclStages {
			conds = append(conds, model.Condition{Field: &lf.ExternalIDs, Function: ovsdb.ConditionIncludes,
				Value: map[string]string{"stage-name": s}})
		}
		return []client.MonitorOption{client.WithConditionalTable(lf, conds, &lf.ExternalIDs)}
	}, opts...)
	if err != nil {
		return nil, err
	}
	return &Southbound{c: c}, nil
}

// Close disconnects; the Southbound must not be used afterwards.
func (s *Southbound) Close() { s.c.Close() }

// Connected reports whether the client is connected now.
func (s *Southbound) Connected() bool { return s.c.Connected() }

// ACLFlowCookies returns, for each of the given NB ACL UUIDs, the OpenFlow cookies of
// the logical flows ovn-northd made from that ACL. ovn-northd marks such a flow with
// external_ids:stage-hint, the first 8 hex digits of the ACL's UUID, and ovn-controller
// sets the cookie of every OpenFlow flow it installs for a logical flow to the first
// 32 bits of the logical flow's UUID. An ACL without flows yet is absent.
func (s *Southbound) ACLFlowCookies(ctx context.Context, acls []string) (map[string][]uint64, error) {
	byHint := make(map[string][]string, len(acls))
	for _, u := range acls {
		if len(u) >= 8 {
			byHint[u[:8]] = append(byHint[u[:8]], u)
		}
	}
	var rows []sb.LogicalFlow
	if err := s.c.WhereCache(func(f *sb.LogicalFlow) bool {
		_, ok := byHint[f.ExternalIDs["stage-hint"]]
		return ok
	}).List(ctx, &rows); err != nil {
		return nil, fmt.Errorf("list logical flows: %w", err)
	}
	out := make(map[string][]uint64)
	for _, f := range rows {
		ck, err := FlowCookie(f.UUID)
		if err != nil {
			return nil, err
		}
		// Two ACLs whose UUIDs share their first 32 bits cannot be told apart: each
		// gets the flows of both (one in 2^32 per pair).
		for _, acl := range byHint[f.ExternalIDs["stage-hint"]] {
			out[acl] = append(out[acl], ck)
		}
	}
	return out, nil
}

// FlowCookie is the OpenFlow cookie ovn-controller gives the flows of the logical flow
// with this UUID: its first 32 bits.
func FlowCookie(lflowUUID string) (uint64, error) {
	if len(lflowUUID) < 8 {
		return 0, fmt.Errorf("logical flow uuid %q: too short", lflowUUID)
	}
	ck, err := strconv.ParseUint(lflowUUID[:8], 16, 32)
	if err != nil {
		return 0, fmt.Errorf("logical flow uuid %q: %w", lflowUUID, err)
	}
	return ck, nil
}

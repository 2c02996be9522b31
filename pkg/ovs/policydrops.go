package ovs

import (
	"context"
	"fmt"

	"github.com/sdncni/sdncni/pkg/ovs/model/nb"
)

// DropACL is one of a network's policy ACLs whose action is drop: every packet its
// flows match is dropped for policy.
type DropACL struct {
	UUID    string
	Network string
	// Direction is the ACL's: "to-lport" guards the pods' ingress, "from-lport" their
	// egress.
	Direction string
}

// PolicyDropACLs returns the policy drop ACLs of every network, from the cache.
func (n *Northbound) PolicyDropACLs(ctx context.Context) ([]DropACL, error) {
	var rows []nb.ACL
	if err := n.c.WhereCache(func(a *nb.ACL) bool {
		return owned(a.ExternalIDs) && a.ExternalIDs[KeyRole] == RolePolicy && a.Action == nb.ACLActionDrop &&
			a.ExternalIDs[KeyNetwork] != ""
	}).List(ctx, &rows); err != nil {
		return nil, fmt.Errorf("list acls: %w", err)
	}
	out := make([]DropACL, 0, len(rows))
	for _, r := range rows {
		out = append(out, DropACL{UUID: r.UUID, Network: r.ExternalIDs[KeyNetwork], Direction: r.Direction})
	}
	return out, nil
}

package vpn

import (
	"context"
	"fmt"
	"sort"

	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
)

// IDRefusal is a VPN a node will not serve because another VPN carries its id.
type IDRefusal struct {
	VPN, Holder string
	ID          uint32
}

func (r IDRefusal) Error() string {
	if r.Holder == "" {
		return fmt.Sprintf("vpn %s: id %d is claimed by no vpn that carries it", r.VPN, r.ID)
	}
	return fmt.Sprintf("vpn %s: id %d is vpn %s's", r.VPN, r.ID, r.Holder)
}

// IDHolders decides, for each id that VPNs carry in status.vpnID, which one VPN may use
// it: the one the id's VPNID claim names (name and UID); when the claim is not known
// (a lagging cache, a cluster upgraded from before claims), the only VPN carrying the
// id, or of several the one created first (then by name). Every other VPN carrying the
// id is refused: a node must never key two VPNs' traffic alike. claims may be partial.
func IDHolders(vpns []v1alpha1.VirtualPrivateNetwork, claims []v1alpha1.VPNID) (map[string]bool, []IDRefusal) {
	claimOf := make(map[uint32]*v1alpha1.VPNID, len(claims))
	for i := range claims {
		claimOf[uint32(claims[i].Spec.ID)] = &claims[i]
	}
	byID := map[uint32][]*v1alpha1.VirtualPrivateNetwork{}
	for i := range vpns {
		if id := vpns[i].Status.VPNID; id != 0 {
			byID[id] = append(byID[id], &vpns[i])
		}
	}
	ok := map[string]bool{}
	var refused []IDRefusal
	for id, vs := range byID {
		sort.Slice(vs, func(i, j int) bool {
			a, b := vs[i].CreationTimestamp, vs[j].CreationTimestamp
			if !a.Equal(&b) {
				return a.Before(&b)
			}
			return vs[i].Name < vs[j].Name
		})
		holder := vs[0]
		if c := claimOf[id]; c != nil {
			holder = nil
			for _, v := range vs {
				if c.Holds(v) {
					holder = v
				}
			}
		}
		for _, v := range vs {
			if v == holder {
				ok[v.Name] = true
				continue
			}
			r := IDRefusal{VPN: v.Name, ID: id}
			if holder != nil {
				r.Holder = holder.Name
			} else if c := claimOf[id]; c != nil {
				r.Holder = c.Spec.VPN
			}
			refused = append(refused, r)
		}
	}
	sort.Slice(refused, func(i, j int) bool { return refused[i].VPN < refused[j].VPN })
	return ok, refused
}

// readIDHolders lists VPNs and VPNID claims through c and applies IDHolders.
func readIDHolders(ctx context.Context, c client.Reader) ([]v1alpha1.VirtualPrivateNetwork, map[string]bool, []IDRefusal, error) {
	var vpns v1alpha1.VirtualPrivateNetworkList
	if err := c.List(ctx, &vpns); err != nil {
		return nil, nil, nil, fmt.Errorf("list vpns: %w", err)
	}
	var claims v1alpha1.VPNIDList
	if err := c.List(ctx, &claims); err != nil {
		return nil, nil, nil, fmt.Errorf("list vpn ids: %w", err)
	}
	ok, refused := IDHolders(vpns.Items, claims.Items)
	return vpns.Items, ok, refused, nil
}

package vpn

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
)

// ErrNoIDs: every VPN id (1..v1alpha1.MaxVPNID) is claimed.
var ErrNoIDs = errors.New("no free vpn id")

// IDs hands out VPN ids. An id is claimed by creating the VPNID object named by it: the
// API server creates one object per name, so of two writers that want the same id exactly
// one gets it, whatever their caches (a second leader, a lagging informer, a restored
// backup) believed. Nothing here trusts a VPN's status.vpnID without the claim.
type IDs struct {
	// Cache serves the happy path (the claim of an id the VPN already holds); it may lag.
	Cache client.Reader
	// API is uncached: every decision to claim, adopt or refuse an id reads from it.
	API client.Client
}

// Ensure returns the id v holds, claiming one if it holds none. v's status.vpnID is
// honoured when the VPNID of that number names v, or when v holds no id and that number
// has no VPNID yet (an id assigned before claims existed: it is claimed now). When the
// number is another VPN's (a status edited by hand, or two VPNs given one id by an older
// version), v gets back the id it holds, or a new one; corrected is then true. Errors:
// ErrNoIDs, or the API server's.
func (a *IDs) Ensure(ctx context.Context, v *v1alpha1.VirtualPrivateNetwork) (id uint32, corrected bool, err error) {
	cur := v.Status.VPNID
	if cur != 0 {
		var c v1alpha1.VPNID
		if a.Cache.Get(ctx, client.ObjectKey{Name: v1alpha1.IDName(cur)}, &c) == nil && c.Holds(v) {
			return cur, false, nil
		}
	}
	var l v1alpha1.VPNIDList
	if err := a.API.List(ctx, &l); err != nil {
		return 0, false, fmt.Errorf("list vpn ids: %w", err)
	}
	used := make(map[uint32]bool, len(l.Items))
	var hi, held uint32
	for i := range l.Items {
		c := &l.Items[i]
		id := uint32(c.Spec.ID)
		if c.Holds(v) && (held == 0 || id == cur || (held != cur && id < held)) {
			held = id
		}
		used[id] = true
		hi = max(hi, id)
	}
	if held != 0 {
		return held, held != cur && cur != 0, nil // the claim is the truth; a lost status write or an edited one
	}
	if cur != 0 && cur <= v1alpha1.MaxVPNID {
		ok, err := a.claim(ctx, cur, v)
		if err != nil {
			return 0, false, err
		}
		if ok {
			return cur, false, nil
		}
	}
	// Counting up from the highest id in use keeps a released id out of use as long as
	// possible; wrapping round reuses released ones once the top is reached.
	for n := range uint32(v1alpha1.MaxVPNID) {
		id := (hi+n)%v1alpha1.MaxVPNID + 1
		if used[id] {
			continue
		}
		ok, err := a.claim(ctx, id, v)
		if err != nil {
			return 0, false, err
		}
		if ok {
			return id, cur != 0, nil
		}
	}
	return 0, false, ErrNoIDs
}

// claim creates the VPNID of id for v and reports whether v holds id now: true when the
// create succeeds or the existing VPNID names v, false when it names another VPN that
// exists. A VPNID whose VPN is gone (the garbage collector has not run yet, or its
// finalizer was removed by hand) is deleted and the claim tried again.
func (a *IDs) claim(ctx context.Context, id uint32, v *v1alpha1.VirtualPrivateNetwork) (bool, error) {
	for range 3 {
		err := a.API.Create(ctx, v1alpha1.NewVPNID(id, v))
		if err == nil {
			return true, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return false, fmt.Errorf("claim vpn id %d: %w", id, err)
		}
		var c v1alpha1.VPNID
		if err := a.API.Get(ctx, client.ObjectKey{Name: v1alpha1.IDName(id)}, &c); apierrors.IsNotFound(err) {
			continue // released meanwhile
		} else if err != nil {
			return false, fmt.Errorf("get vpn id %d: %w", id, err)
		}
		if c.Holds(v) {
			return true, nil
		}
		stale, err := a.orphan(ctx, &c)
		if err != nil || !stale {
			return false, err
		}
		err = a.API.Delete(ctx, &c, client.Preconditions{UID: &c.UID, ResourceVersion: &c.ResourceVersion})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return false, fmt.Errorf("delete orphaned vpn id %d: %w", id, err)
		}
	}
	return false, nil
}

// orphan reports whether the VPN a claim names no longer exists.
func (a *IDs) orphan(ctx context.Context, c *v1alpha1.VPNID) (bool, error) {
	var owner v1alpha1.VirtualPrivateNetwork
	err := a.API.Get(ctx, client.ObjectKey{Name: c.Spec.VPN}, &owner)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("get vpn %s: %w", c.Spec.VPN, err)
	}
	return string(owner.UID) != c.Spec.VPNUID, nil
}

// Release deletes every VPNID of the VPN named name (call once it is finalized).
func (a *IDs) Release(ctx context.Context, name string) error {
	if err := a.API.DeleteAllOf(ctx, &v1alpha1.VPNID{}, client.MatchingLabels{v1alpha1.LabelVPN: name}); err != nil {
		return fmt.Errorf("release ids of %s: %w", name, err)
	}
	return nil
}

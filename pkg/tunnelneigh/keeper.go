package tunnelneigh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/go-logr/logr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Remotes lists the current tunnel peers' endpoint addresses.
type Remotes func(ctx context.Context) ([]netip.Addr, error)

// Keeper keeps a managed neighbor entry for the next hop towards each tunnel peer, and
// removes the ones it made for peers that are gone. It works in the network namespace
// of the thread that calls Sync (the controller's: the node's).
type Keeper struct {
	remotes Remotes
	// mine are the entries this Keeper made (or found managed for a peer), by link
	// index and address: what it may remove.
	mine map[entry]bool
}

type entry struct {
	link int
	ip   netip.Addr
}

// New returns a Keeper for the peers remotes lists.
func New(remotes Remotes) *Keeper {
	return &Keeper{remotes: remotes, mine: map[entry]bool{}}
}

// Run calls Sync every interval until ctx ends, logging failures.
func (k *Keeper) Run(ctx context.Context, interval time.Duration, log logr.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := k.Sync(ctx); err != nil && ctx.Err() == nil {
			log.Error(err, "keep tunnel next hops resolved")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sync makes the entries of the current peers managed and deletes those of peers that
// are gone. A peer without a route is skipped (it may come later); the first error of
// the others is returned after all were tried.
func (k *Keeper) Sync(ctx context.Context) error {
	remotes, err := k.remotes(ctx)
	if err != nil {
		return fmt.Errorf("list tunnel peers: %w", err)
	}
	want := map[entry]bool{}
	var errs []error
	for _, r := range remotes {
		e, ok, err := nextHop(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			want[e] = true
		}
	}
	// One dump per link per Sync, not one per peer: a node has a peer per other node.
	tables := map[int]map[netip.Addr]*netlink.Neigh{}
	table := func(e entry) (*netlink.Neigh, error) {
		t, ok := tables[e.link]
		if !ok {
			var err error
			if t, err = neighbors(e.link); err != nil {
				return nil, err
			}
			tables[e.link] = t
		}
		return t[e.ip], nil
	}
	for e := range want {
		n, err := table(e)
		if err == nil {
			err = ensureManaged(e, n)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		k.mine[e] = true
	}
	for e := range k.mine {
		if want[e] {
			continue
		}
		n, err := table(e)
		if err == nil {
			err = deleteEntry(e, n)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		delete(k.mine, e)
	}
	return errors.Join(errs...)
}

// nextHop is the link and neighbor address the kernel uses towards remote (its gateway
// when it is routed). ok is false when there is no route, or it leaves through no link
// with neighbors (a loopback or point-to-point route).
func nextHop(remote netip.Addr) (entry, bool, error) {
	routes, err := netlink.RouteGet(net.IP(remote.AsSlice()))
	if err != nil {
		if errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EHOSTUNREACH) {
			return entry{}, false, nil
		}
		return entry{}, false, fmt.Errorf("route to %s: %w", remote, err)
	}
	if len(routes) == 0 || routes[0].LinkIndex == 0 || routes[0].Type == unix.RTN_LOCAL {
		return entry{}, false, nil
	}
	hop := remote
	if gw, ok := netip.AddrFromSlice(routes[0].Gw); ok && routes[0].Gw != nil {
		hop = gw.Unmap()
	}
	link, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return entry{}, false, fmt.Errorf("link %d of the route to %s: %w", routes[0].LinkIndex, remote, err)
	}
	if link.Attrs().Flags&(net.FlagLoopback|net.FlagPointToPoint) != 0 {
		return entry{}, false, nil
	}
	return entry{link: routes[0].LinkIndex, ip: hop}, true, nil
}

// ensureManaged makes e's neighbor entry (n, nil when there is none) managed, unless it
// already is.
func ensureManaged(e entry, n *netlink.Neigh) error {
	if n != nil && n.FlagsExt&netlink.NTF_EXT_MANAGED != 0 {
		return nil
	}
	m := netlink.Neigh{LinkIndex: e.link, Family: family(e.ip), IP: net.IP(e.ip.AsSlice()),
		State: netlink.NUD_NONE, FlagsExt: netlink.NTF_EXT_MANAGED}
	if err := netlink.NeighSet(&m); err != nil {
		return fmt.Errorf("make neighbor %s on link %d managed: %w", e.ip, e.link, err)
	}
	return nil
}

// deleteEntry removes e's neighbor entry n if it is still managed; gone is fine.
func deleteEntry(e entry, n *netlink.Neigh) error {
	if n == nil || n.FlagsExt&netlink.NTF_EXT_MANAGED == 0 {
		return nil
	}
	if err := netlink.NeighDel(n); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete neighbor %s on link %d: %w", e.ip, e.link, err)
	}
	return nil
}

// neighbors returns link's neighbor entries of both families by address; none when the
// link is gone.
func neighbors(link int) (map[netip.Addr]*netlink.Neigh, error) {
	ns, err := netlink.NeighList(link, netlink.FAMILY_ALL)
	if err != nil {
		if errors.Is(err, unix.ENODEV) {
			return nil, nil
		}
		return nil, fmt.Errorf("list neighbors of link %d: %w", link, err)
	}
	out := make(map[netip.Addr]*netlink.Neigh, len(ns))
	for i := range ns {
		if a, ok := netip.AddrFromSlice(ns[i].IP); ok {
			out[a.Unmap()] = &ns[i]
		}
	}
	return out, nil
}

func family(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

//go:build linux

package datapath

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
)

// The host veth must not be up without sdncni_from_pod on it: a pod's packets would
// enter the node's own stack, past OVN port security and the fast path's source checks
// (fail open); a veth that is down drops them instead. So Attach sets it up last, after
// both hooks are in place, a failed Attach and Teardown set it down, and callers set it
// down before they Detach a veth they keep.

// hostLink returns ep's host veth when it is still the interface ep describes (same
// name and, when known, the same index); nil when it is gone.
func hostLink(ep Endpoint) (netlink.Link, error) {
	if ep.HostIfName == "" {
		return nil, nil // Endpoints reports no name for a vanished interface
	}
	l, err := netlink.LinkByName(ep.HostIfName)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, nil
		}
		return nil, fmt.Errorf("find host veth %s: %w", ep.HostIfName, err)
	}
	if ep.HostIfIndex > 0 && l.Attrs().Index != ep.HostIfIndex {
		return nil, nil // another interface now has the name
	}
	return l, nil
}

// hostDown sets ep's host veth down; a missing one is not an error.
func hostDown(ep Endpoint) error {
	l, err := hostLink(ep)
	if err != nil || l == nil {
		return err
	}
	if err := netlink.LinkSetDown(l); err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("set host veth %s down: %w", ep.HostIfName, err)
	}
	return nil
}

// hostUp sets ep's host veth up.
func hostUp(ep Endpoint) error {
	l, err := hostLink(ep)
	if err != nil {
		return err
	}
	if l == nil {
		return fmt.Errorf("host veth %s (ifindex %d) is gone", ep.HostIfName, ep.HostIfIndex)
	}
	if l.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("set host veth %s up: %w", ep.HostIfName, err)
	}
	// Until the kernel has processed the carrier change (linkwatch, usually well under a
	// millisecond) the pod's side drops what it sends, an ARP request among it; return
	// once traffic can flow. A pod side that is down itself never gets there: don't wait
	// long for it.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		cur, err := netlink.LinkByIndex(l.Attrs().Index)
		if err != nil || cur.Attrs().OperState == netlink.OperUp {
			break
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// podLinksDown sets down every host veth sdncni_from_pod runs on (Teardown: the
// programs are about to go): those of pinned TCX links whose pin name and interface
// agree, and those with our tc filter. An interface index reused by some other link is
// never touched.
func (d *Datapath) podLinksDown() error {
	pins, err := d.linkPins()
	if err != nil {
		return err
	}
	var errs []error
	for path, hk := range pins {
		if hk != hookFromPod {
			continue
		}
		l, err := link.LoadPinnedLink(path, nil)
		if err != nil {
			continue
		}
		ifindex, err := tcxIfindex(l)
		_ = l.Close()
		if err != nil || ifindex == 0 {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(path), "-"+hookFromPod)
		if err := hostDown(Endpoint{HostIfName: name, HostIfIndex: ifindex}); err != nil {
			errs = append(errs, err)
		}
	}
	// tc mode: our from_pod filter on the interface is the proof.
	for _, h := range d.entryHooks() {
		if h.name != hookFromPod {
			continue
		}
		ours, err := ourFilters(h.ifindex)
		if err != nil || !slices.ContainsFunc(ours, func(f *netlink.BpfFilter) bool { return f.Name == tcPrefix+hookFromPod }) {
			continue
		}
		if l, err := netlink.LinkByIndex(h.ifindex); err == nil {
			if err := netlink.LinkSetDown(l); err != nil {
				errs = append(errs, fmt.Errorf("set %s down: %w", l.Attrs().Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

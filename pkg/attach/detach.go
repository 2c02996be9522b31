package attach

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"

	"github.com/sdncni/sdncni/pkg/datapath"
	"github.com/sdncni/sdncni/pkg/ipam"
	"github.com/sdncni/sdncni/pkg/ovs"
	"github.com/sdncni/sdncni/pkg/podnet"
)

// Del detaches a pod interface: best effort over every piece, succeeding when pieces
// (or all of them, or the pod's netns) are already gone. Errors of individual pieces are
// joined.
func (m *Manager) Del(ctx context.Context, r Request) error {
	defer m.locks.lock(r.ContainerID)()
	return m.remove(ctx, r.Key)
}

// remove deletes every piece of k; the caller holds k's lock.
func (m *Manager) remove(ctx context.Context, k Key) error {
	names := NamesFor(k)
	io := ipam.Owner{ContainerID: k.ContainerID, IfName: k.IfName}
	var errs []error
	// First cut the pod off: should a later step fail (or the process die), the veth
	// must not forward without its programs.
	if err := linkDown(names.HostIf); err != nil {
		errs = append(errs, err)
	}

	// A corrupt address store must not keep pods Terminating forever: DEL removes every
	// other piece and succeeds. Nothing can be handed out twice meanwhile, because every
	// ADD fails with 102 until the store is rebuilt (docs/ipam.md), and the rebuild takes
	// back only the addresses of pods that still exist.
	var corrupt error
	allocs, err := m.deps.IPAM.Get(ctx, io)
	if errors.Is(err, ipam.ErrCorrupt) {
		corrupt = err
	} else if err != nil {
		errs = append(errs, fmt.Errorf("look up address: %w", err))
	}
	if err := m.detachDatapath(ctx, names, allocs); err != nil {
		errs = append(errs, err)
	}
	if err := m.deps.VSwitch.DeletePort(ctx, m.cfg.Bridge, names.OVSIf); err != nil {
		errs = append(errs, fmt.Errorf("delete ovs port %s: %w", names.OVSIf, err))
	} else if err := m.waitLinkGone(ctx, names.OVSIf); err != nil {
		errs = append(errs, err)
	}
	if err := m.deleteLSP(ctx, names.LSP, allocs); err != nil {
		errs = append(errs, err)
	}
	if err := podnet.Teardown(ctx, names.HostIf); err != nil {
		errs = append(errs, fmt.Errorf("delete host veth: %w", err))
	}
	if corrupt == nil {
		if _, err := m.deps.IPAM.ReleaseOwner(ctx, io); errors.Is(err, ipam.ErrCorrupt) {
			corrupt = err
		} else if err != nil {
			errs = append(errs, fmt.Errorf("release address: %w", err))
		}
	}
	if corrupt != nil {
		m.log.Error(corrupt, "address store corrupt: pod removed, its address stays recorded until the store is rebuilt (docs/ipam.md)",
			"containerID", k.ContainerID, "ifname", k.IfName)
	}
	return errors.Join(errs...)
}

// detachDatapath removes the fast-path state of an attachment, found by its link names
// in the maps (the links themselves may be gone already).
func (m *Manager) detachDatapath(ctx context.Context, names Names, allocs []ipam.Allocation) error {
	eps, err := m.deps.Datapath.Endpoints(ctx)
	if err != nil {
		return fmt.Errorf("list datapath endpoints: %w", err)
	}
	var errs []error
	var ip netip.Addr
	var vpn uint32
	if len(allocs) > 0 {
		ip = allocs[0].Addr.Addr()
		if n, ok := m.deps.Networks.ByName(allocs[0].Pool); ok {
			vpn = n.ID
		}
	}
	found := false
	for _, ep := range eps {
		// Links may be gone already (the netns was deleted); the address still says
		// which entries are this attachment's.
		byAddr := ip.IsValid() && vpn != 0 && ep.VPN == vpn && ep.IP == ip
		if ep.HostIfName == names.HostIf || ep.OVSIfName == names.OVSIf || byAddr {
			found = true
			if err := m.deps.Datapath.Detach(ctx, ep); err != nil {
				errs = append(errs, fmt.Errorf("detach datapath: %w", err))
			}
		}
	}
	if !found {
		// Nothing in the maps; still remove attachments (pins) a crash may have left.
		ep := datapath.Endpoint{HostIfName: names.HostIf, OVSIfName: names.OVSIf, IP: ip, VPN: vpn}
		if err := m.deps.Datapath.Detach(ctx, ep); err != nil {
			errs = append(errs, fmt.Errorf("detach datapath: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) deleteLSP(ctx context.Context, lsp string, allocs []ipam.Allocation) error {
	network := ""
	if info, err := m.deps.Northbound.GetLogicalPort(ctx, lsp); err == nil {
		if info.Owner.Node != "" && info.Owner.Node != m.cfg.NodeName {
			// Another node's pod: a DEL (or a runtime's GC, which DELs every cached
			// attachment it was not told to keep) that reached this node by mistake
			// must not cut that pod off.
			return nil
		}
		network = info.Owner.Network
	} else if !errors.Is(err, ovs.ErrNotFound) {
		return fmt.Errorf("look up logical port %s: %w", lsp, err)
	} else if len(allocs) == 0 {
		return nil
	}
	if network == "" && len(allocs) > 0 {
		network = allocs[0].Pool
	}
	if err := m.deps.Northbound.DeleteLogicalPort(ctx, network, lsp); err != nil {
		return fmt.Errorf("delete logical port %s: %w", lsp, err)
	}
	return nil
}

// waitLinkGone waits until ovs-vswitchd has closed a deleted port's tap, so that DEL
// returns with nothing of the attachment left and a re-ADD under the same name cannot
// meet the old device.
func (m *Manager) waitLinkGone(ctx context.Context, name string) error {
	wctx, cancel := context.WithTimeout(ctx, m.cfg.LinkWait)
	defer cancel()
	for {
		if _, err := netlink.LinkByName(name); err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				return nil
			}
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("wait for ovs-vswitchd to remove %s: %w", name, wctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func setSysctl(name, value string) error {
	if _, err := sysctl.Sysctl(name, value); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", name, value, err)
	}
	return nil
}

// ourLinks lists the node's links created by this package.
func ourLinks() ([]netlink.Link, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []netlink.Link
	for _, l := range links {
		if IsOurLink(l.Attrs().Name) {
			out = append(out, l)
		}
	}
	return out, nil
}

//go:build linux

package datapath

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Our filter's place in the clsact ingress hook (fallback for kernels without TCX).
const (
	tcPriority = 1
	tcHandle   = 1
	tcPrefix   = "sdncni_"
)

func tcLink(ifindex int) netlink.Link {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}
}

func clsact(ifindex int) *netlink.GenericQdisc {
	return &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
}

func tcFilter(h hook) *netlink.BpfFilter {
	return &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: h.ifindex, Parent: netlink.HANDLE_MIN_INGRESS,
			Handle: tcHandle, Priority: tcPriority, Protocol: unix.ETH_P_ALL,
		},
		Fd: h.prog.FD(), Name: tcPrefix + h.name, DirectAction: true,
	}
}

// attachTC installs (or atomically replaces) our direct-action filter on clsact ingress.
func attachTC(h hook) error {
	if err := netlink.QdiscReplace(clsact(h.ifindex)); err != nil {
		return fmt.Errorf("add clsact on %d: %w", h.ifindex, err)
	}
	if err := netlink.FilterReplace(tcFilter(h)); err != nil {
		return fmt.Errorf("add tc filter %s on %d: %w", h.name, h.ifindex, err)
	}
	return nil
}

// ourFilters lists our bpf filters on the ingress of ifindex.
func ourFilters(ifindex int) ([]*netlink.BpfFilter, error) {
	filters, err := netlink.FilterList(tcLink(ifindex), netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		return nil, err
	}
	var out []*netlink.BpfFilter
	for _, f := range filters {
		if bf, ok := f.(*netlink.BpfFilter); ok && strings.HasPrefix(bf.Name, tcPrefix) {
			out = append(out, bf)
		}
	}
	return out, nil
}

// detachTC removes our filters from ifindex and the clsact qdisc when nothing else
// uses it. A missing interface or qdisc is not an error.
func detachTC(h hook) error {
	if _, err := netlink.LinkByIndex(h.ifindex); err != nil {
		return nil // gone, and its qdiscs with it
	}
	ours, err := ourFilters(h.ifindex)
	if err != nil {
		return nil // no clsact: nothing of ours
	}
	for _, f := range ours {
		if err := netlink.FilterDel(f); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete tc filter on %d: %w", h.ifindex, err)
		}
	}
	if len(ours) == 0 {
		return nil
	}
	in, _ := netlink.FilterList(tcLink(h.ifindex), netlink.HANDLE_MIN_INGRESS)
	out, _ := netlink.FilterList(tcLink(h.ifindex), netlink.HANDLE_MIN_EGRESS)
	if len(in) == 0 && len(out) == 0 {
		if err := netlink.QdiscDel(clsact(h.ifindex)); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("delete clsact on %d: %w", h.ifindex, err)
		}
	}
	return nil
}

// tcAttached checks that our filter on ifindex runs program id.
func tcAttached(h hook, id ebpf.ProgramID) error {
	ours, err := ourFilters(h.ifindex)
	if err != nil {
		return fmt.Errorf("%s on %s: list tc filters: %w", h.name, h.ifname, err)
	}
	for _, f := range ours {
		if f.Name == tcPrefix+h.name && ebpf.ProgramID(f.Id) == id {
			return nil
		}
	}
	return fmt.Errorf("%s on %s: program %d not attached", h.name, h.ifname, id)
}

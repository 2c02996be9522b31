//go:build linux

package datapath

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Hook names, used in pin names and tc filter names.
const (
	hookFromPod = "from_pod"
	hookFromOVS = "from_ovs"
)

// hook is one program on one interface's ingress.
type hook struct {
	name    string
	ifindex int
	ifname  string
	prog    *ebpf.Program
}

func (d *Datapath) progFor(name string) *ebpf.Program {
	switch name {
	case hookFromOVS:
		return d.objs.SdncniFromOvs
	case hookFromVXLAN:
		return d.objs.SdncniFromVxlan
	}
	return d.objs.SdncniFromPod
}

func (d *Datapath) hooks(ep Endpoint) []hook {
	return []hook{
		{name: hookFromPod, ifindex: ep.HostIfIndex, ifname: ep.HostIfName, prog: d.objs.SdncniFromPod},
		{name: hookFromOVS, ifindex: ep.OVSIfIndex, ifname: ep.OVSIfName, prog: d.objs.SdncniFromOvs},
	}
}

// probeMode resolves AttachAuto: TCX when the kernel has it, tc otherwise.
func probeMode(want AttachMode, prog *ebpf.Program) AttachMode {
	if want != AttachAuto {
		return want
	}
	// An ifindex that cannot exist: ENODEV means TCX is there.
	l, err := link.AttachTCX(link.TCXOptions{Interface: math.MaxUint32, Program: prog, Attach: ebpf.AttachTCXIngress})
	if err == nil {
		_ = l.Close()
		return AttachTCX
	}
	if errors.Is(err, ebpf.ErrNotSupported) {
		return AttachTC
	}
	return AttachTCX
}

// Attach writes ep's map entries, attaches sdncni_from_pod to the ingress of the host
// veth and sdncni_from_ovs to the ingress of the OVS port, and then sets the host veth
// up. It is idempotent: an attached hook gets its program replaced in place. On failure
// it undoes what it did and leaves the host veth down (fail closed: a pod's packets
// never reach the node unchecked). Returns ErrInvalidEndpoint for an incomplete ep.
func (d *Datapath) Attach(ctx context.Context, ep Endpoint) error {
	if err := ep.validate(); err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	undo, err := writeEntries(&d.objs.bpfMaps, ep)
	if err != nil {
		return errors.Join(fmt.Errorf("attach %s: %w", ep.HostIfName, err), hostDown(ep))
	}
	var attached []hook
	for _, h := range d.hooks(ep) {
		was := d.hookAttached(h) == nil
		if err := d.attachHook(h); err != nil {
			derr := hostDown(ep) // before its program may go
			for _, a := range attached {
				_ = d.detachHook(a)
			}
			undo()
			return errors.Join(fmt.Errorf("attach %s: %w", h.ifname, err), derr)
		}
		if !was {
			attached = append(attached, h)
		}
	}
	if err := d.hookAttached(d.hooks(ep)[0]); err != nil {
		return errors.Join(fmt.Errorf("attach %s: %w", ep.HostIfName, err), hostDown(ep))
	}
	if err := hostUp(ep); err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	return nil
}

// Detach detaches both programs and removes ep's map entries. It succeeds when the
// interfaces, links or entries are already gone. Without interface names (an Endpoint
// from Endpoints whose interfaces are gone) it removes every pinned link whose
// interface has vanished. It leaves the host veth's state alone: a caller that keeps
// the veth must set it down first (the attach package does, before it removes a pod).
func (d *Datapath) Detach(ctx context.Context, ep Endpoint) error {
	var errs []error
	for _, h := range d.hooks(ep) {
		if err := d.detachHook(h); err != nil {
			errs = append(errs, err)
		}
	}
	if err := deleteEntries(&d.objs.bpfMaps, ep); err != nil {
		errs = append(errs, err)
	}
	if ep.HostIfName == "" || ep.OVSIfName == "" {
		if err := d.sweepDefunctLinks(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("detach %s: %w", ep.HostIfName, err)
	}
	return nil
}

// Check returns nil when both programs (the ones this Datapath loaded) are attached
// and ep's entries are present and equal; otherwise an error wrapping ErrNotAttached
// that names every difference.
func (d *Datapath) Check(ctx context.Context, ep Endpoint) error {
	if err := ep.validate(); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	var errs []error
	for _, h := range d.hooks(ep) {
		if err := d.hookAttached(h); err != nil {
			errs = append(errs, err)
		}
	}
	if err := checkEntries(&d.objs.bpfMaps, ep); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("check %s: %w: %w", ep.HostIfName, ErrNotAttached, err)
	}
	return nil
}

func (d *Datapath) attachHook(h hook) error {
	if d.mode == AttachTC {
		return attachTC(h)
	}
	return d.attachTCX(h)
}

func (d *Datapath) detachHook(h hook) error {
	// Both kinds: a previous run may have used the other mode.
	return errors.Join(d.detachTCX(h), detachTC(h))
}

func (d *Datapath) hookAttached(h hook) error {
	id, err := progID(h.prog)
	if err != nil {
		return err
	}
	if d.mode == AttachTC {
		return tcAttached(h, id)
	}
	return d.tcxAttached(h, id)
}

func progID(p *ebpf.Program) (ebpf.ProgramID, error) {
	info, err := p.Info()
	if err != nil {
		return 0, fmt.Errorf("program info: %w", err)
	}
	id, ok := info.ID()
	if !ok {
		return 0, errors.New("program info: no id")
	}
	return id, nil
}

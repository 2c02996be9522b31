//go:build linux

package datapath

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf/link"
)

// adopt points every hook left by a previous run at the programs just loaded. TCX links
// and tc filters are replaced in place (BPF_LINK_UPDATE, tc filter replace), so traffic
// never meets an interface without a program. Pins of vanished interfaces are removed.
// Failures are logged: Check reports the hooks left behind.
func (d *Datapath) adopt(ctx context.Context) {
	pins, err := d.linkPins()
	if err != nil {
		d.log.Error(err, "adopt tcx links")
	}
	for path, hk := range pins {
		l, err := link.LoadPinnedLink(path, nil)
		if err != nil {
			d.log.Error(err, "adopt tcx link", "pin", path)
			continue
		}
		ifindex, err := tcxIfindex(l)
		switch {
		case err != nil:
			d.log.Error(err, "adopt tcx link", "pin", path)
		case ifindex == 0:
			_ = l.Close()
			if err := removeLinkPin(path); err != nil {
				d.log.Error(err, "remove defunct tcx link", "pin", path)
			}
			continue
		default:
			if err := l.Update(d.progFor(hk)); err != nil {
				d.log.Error(err, "adopt tcx link", "pin", path)
			} else {
				d.log.V(1).Info("adopted tcx link", "pin", path, "ifindex", ifindex)
			}
		}
		_ = l.Close()
	}
	for _, h := range d.entryHooks() {
		ours, err := ourFilters(h.ifindex)
		if err != nil || len(ours) == 0 {
			continue
		}
		if err := attachTC(h); err != nil {
			d.log.Error(err, "adopt tc filter", "ifindex", h.ifindex)
		}
	}
}

// entryHooks lists the hooks the ifindex map and the cross-node switch describe
// (pod interface names unknown).
func (d *Datapath) entryHooks() []hook {
	var (
		ifindex uint32
		v       bpfEndpoint
		out     []hook
	)
	it := d.objs.SdncniEp.Iterate()
	for it.Next(&ifindex, &v) {
		name := hookFromPod
		if v.Role == uint8(bpfRoleROLE_OVS) {
			name = hookFromOVS
		}
		out = append(out, hook{name: name, ifindex: int(ifindex), prog: d.progFor(name)})
	}
	if h, ok := d.vxlanHook(); ok {
		out = append(out, h)
	}
	return out
}

// Teardown detaches every program of ours, removes every map, pin and the PinDir, and
// closes d. Afterwards nothing of ours is left in bpftool prog/map/net. The host veths
// the programs ran on are set down first: their pods are cut off, not let into the
// node's stack unchecked.
func (d *Datapath) Teardown(ctx context.Context) error {
	var errs []error
	errs = append(errs, d.podLinksDown())
	pins, err := d.linkPins()
	errs = append(errs, err)
	for path := range pins {
		errs = append(errs, removeLinkPin(path))
	}
	for _, h := range d.entryHooks() {
		errs = append(errs, detachTC(h))
	}
	for _, m := range []interface{ Unpin() error }{
		d.objs.SdncniCfg, d.objs.SdncniCnt, d.objs.SdncniDst, d.objs.SdncniEp, d.objs.SdncniVpnOff, d.objs.SdncniSvc,
		d.objs.SdncniPol, d.objs.SdncniCt, d.objs.SdncniPolOvs, d.objs.SdncniRemote, d.objs.SdncniXnode, d.objs.SdncniXpeer,
		d.objs.SdncniXback,
	} {
		errs = append(errs, m.Unpin())
	}
	errs = append(errs, d.objs.Close())
	if err := os.RemoveAll(d.cfg.PinDir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("teardown datapath: %w", err)
	}
	return nil
}

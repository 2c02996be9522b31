//go:build linux

package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

func (d *Datapath) pinPath(h hook) string {
	return filepath.Join(linksDir(d.cfg.PinDir), h.ifname+"-"+h.name)
}

// tcxIfindex returns the interface a TCX link is attached to; 0 when the interface is
// gone (the link is defunct).
func tcxIfindex(l link.Link) (int, error) {
	info, err := l.Info()
	if err != nil {
		return 0, err
	}
	tcx := info.TCX()
	if tcx == nil {
		return 0, fmt.Errorf("link %d is not a tcx link", info.ID)
	}
	return int(tcx.Ifindex), nil
}

// attachTCX attaches h with a pinned TCX link; an existing pin on the same interface
// gets its program replaced atomically (no window without a program).
func (d *Datapath) attachTCX(h hook) error {
	path := d.pinPath(h)
	if l, err := link.LoadPinnedLink(path, nil); err == nil {
		ifindex, err := tcxIfindex(l)
		if err == nil && ifindex == h.ifindex {
			err = l.Update(h.prog)
			_ = l.Close()
			if err != nil {
				return fmt.Errorf("update tcx link %s: %w", path, err)
			}
			return nil
		}
		// A pin of an interface that is gone, or of another one with the same name.
		_ = l.Detach()
		_ = l.Unpin()
		_ = l.Close()
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("load tcx link %s: %w", path, err)
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: h.ifindex, Program: h.prog, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return fmt.Errorf("attach tcx %s ingress: %w", h.name, err)
	}
	defer l.Close() // the pin keeps it attached
	if err := l.Pin(path); err != nil {
		return fmt.Errorf("pin tcx link %s: %w", path, err)
	}
	return nil
}

// detachTCX removes h's pinned link, if any.
func (d *Datapath) detachTCX(h hook) error {
	if h.ifname == "" {
		return nil
	}
	return removeLinkPin(d.pinPath(h))
}

func removeLinkPin(path string) error {
	l, err := link.LoadPinnedLink(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load tcx link %s: %w", path, err)
	}
	defer l.Close()
	_ = l.Detach() // fails harmlessly when the interface is gone
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("unpin tcx link %s: %w", path, err)
	}
	return nil
}

// tcxAttached checks that h's pin exists, is on h's interface and runs program id,
// and that the kernel lists it on the interface's TCX ingress.
func (d *Datapath) tcxAttached(h hook, id ebpf.ProgramID) error {
	path := d.pinPath(h)
	l, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		return fmt.Errorf("%s on %s: no tcx link pin: %w", h.name, h.ifname, err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return fmt.Errorf("%s on %s: link info: %w", h.name, h.ifname, err)
	}
	if tcx := info.TCX(); tcx == nil || int(tcx.Ifindex) != h.ifindex {
		return fmt.Errorf("%s on %s: pinned link is not on ifindex %d", h.name, h.ifname, h.ifindex)
	}
	if info.Program != id {
		return fmt.Errorf("%s on %s: link runs program %d, not ours (%d)", h.name, h.ifname, info.Program, id)
	}
	res, err := link.QueryPrograms(link.QueryOptions{Target: h.ifindex, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return fmt.Errorf("%s on %s: query tcx: %w", h.name, h.ifname, err)
	}
	for _, p := range res.Programs {
		if p.ID == id {
			return nil
		}
	}
	return fmt.Errorf("%s on %s: program %d not attached", h.name, h.ifname, id)
}

// linkPins lists the pinned TCX links as path → hook name.
func (d *Datapath) linkPins() (map[string]string, error) {
	entries, err := os.ReadDir(linksDir(d.cfg.PinDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list link pins: %w", err)
	}
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		name := e.Name()
		for _, hk := range []string{hookFromPod, hookFromOVS, hookFromVXLAN} {
			if strings.HasSuffix(name, "-"+hk) {
				out[filepath.Join(linksDir(d.cfg.PinDir), name)] = hk
			}
		}
	}
	return out, nil
}

// sweepDefunctLinks removes pins of links whose interface is gone.
func (d *Datapath) sweepDefunctLinks() error {
	pins, err := d.linkPins()
	if err != nil {
		return err
	}
	var errs []error
	for path := range pins {
		l, err := link.LoadPinnedLink(path, nil)
		if err != nil {
			continue
		}
		ifindex, err := tcxIfindex(l)
		_ = l.Close()
		if err == nil && ifindex == 0 {
			errs = append(errs, removeLinkPin(path))
		}
	}
	return errors.Join(errs...)
}

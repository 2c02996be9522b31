//go:build linux

package datapath

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/go-logr/logr"
)

// Sentinel errors.
var (
	// ErrInvalidEndpoint is returned when an Endpoint lacks a field the datapath needs.
	ErrInvalidEndpoint = errors.New("invalid endpoint")
	// ErrNotAttached is returned by Check when a program or entry is missing or wrong.
	ErrNotAttached = errors.New("endpoint not attached")
	// ErrIncompatiblePins is returned by Open when pinned maps have another layout
	// (an upgrade changed a map): Teardown and Open again.
	ErrIncompatiblePins = errors.New("pinned maps incompatible with the programs")
)

// AttachMode selects how programs are attached to interfaces.
type AttachMode string

// Attach modes.
const (
	// AttachAuto uses TCX links when the kernel has them (≥ 6.6) and tc otherwise.
	AttachAuto AttachMode = ""
	// AttachTCX uses TCX links, pinned under <PinDir>/links.
	AttachTCX AttachMode = "tcx"
	// AttachTC uses a clsact qdisc and a direct-action bpf filter.
	AttachTC AttachMode = "tc"
)

// Config configures a Datapath.
type Config struct {
	// PinDir is our bpffs directory, e.g. /sys/fs/bpf/sdncni/<node>. Required.
	PinDir string
	// Mode forces an attach mode; the zero value probes the kernel.
	Mode AttachMode
}

// Datapath is the loaded fast path. Create it with Open.
type Datapath struct {
	cfg   Config
	mode  AttachMode
	log   logr.Logger
	objs  bpfObjects
	names []string // counter names by reason index
}

// Open mounts bpffs if needed, loads the programs, creates or adopts the pinned maps
// and replaces the program of every pinned link with the new one. New maps start with
// the fast path globally on. Returns ErrIncompatiblePins when the pins have another
// layout.
func Open(ctx context.Context, cfg Config, log logr.Logger) (*Datapath, error) {
	if cfg.PinDir == "" {
		return nil, errors.New("open datapath: empty PinDir")
	}
	switch cfg.Mode {
	case AttachAuto, AttachTCX, AttachTC:
	default:
		return nil, fmt.Errorf("open datapath: unknown attach mode %q", cfg.Mode)
	}
	if err := ensureBPFFS(cfg.PinDir); err != nil {
		return nil, fmt.Errorf("open datapath: %w", err)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		log.V(1).Info("cannot raise memlock rlimit; relying on memcg accounting", "error", err.Error())
	}
	for _, dir := range []string{mapsDir(cfg.PinDir), linksDir(cfg.PinDir)} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open datapath: %w", err)
		}
	}
	_, statErr := os.Stat(filepath.Join(mapsDir(cfg.PinDir), bpfMapSdncniCfg))
	fresh := errors.Is(statErr, os.ErrNotExist)

	objs, names, err := loadObjects(mapsDir(cfg.PinDir))
	if err != nil {
		return nil, fmt.Errorf("open datapath: %w", err)
	}
	d := &Datapath{cfg: cfg, log: log, objs: objs, names: names}
	success := false
	defer func() {
		if !success {
			_ = d.objs.Close()
		}
	}()
	if fresh {
		if err := d.SetFastPath(ctx, true); err != nil {
			return nil, fmt.Errorf("open datapath: %w", err)
		}
	}
	d.mode = probeMode(cfg.Mode, d.objs.SdncniFromPod)
	d.adopt(ctx)
	success = true
	return d, nil
}

// Mode reports the attach mode in use.
func (d *Datapath) Mode() AttachMode { return d.mode }

// Close releases the file descriptors and keeps every pin: links stay attached and the
// maps keep their contents for the next Open. d must not be used afterwards.
func (d *Datapath) Close() error {
	if err := d.objs.Close(); err != nil {
		return fmt.Errorf("close datapath: %w", err)
	}
	return nil
}

func mapsDir(pinDir string) string  { return filepath.Join(pinDir, "maps") }
func linksDir(pinDir string) string { return filepath.Join(pinDir, "links") }

// loadObjects loads the collection; maps are pinned by name under pinPath, or not
// pinned at all when pinPath is empty (tests).
func loadObjects(pinPath string) (bpfObjects, []string, error) {
	var objs bpfObjects
	spec, err := loadBpf()
	if err != nil {
		return objs, nil, fmt.Errorf("load spec: %w", err)
	}
	names, err := reasonNames(spec)
	if err != nil {
		return objs, nil, err
	}
	if pinPath == "" {
		for _, m := range spec.Maps {
			m.Pinning = ebpf.PinNone
		}
	}
	// Programs and maps only: the enum-anchoring .rodata is never loaded.
	var dst struct {
		bpfPrograms
		bpfMaps
	}
	err = spec.LoadAndAssign(&dst, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pinPath}})
	if errors.Is(err, ebpf.ErrMapIncompatible) && replaceDisposablePins(spec, pinPath) {
		err = spec.LoadAndAssign(&dst, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pinPath}})
	}
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		return objs, nil, fmt.Errorf("load objects: %w: %w", ErrIncompatiblePins, err)
	}
	if err != nil {
		return objs, nil, fmt.Errorf("load objects: %w", err)
	}
	objs.bpfPrograms, objs.bpfMaps = dst.bpfPrograms, dst.bpfMaps
	return objs, names, nil
}

// disposableMaps hold nothing that cannot be rebuilt: the counters (Prometheus handles a
// reset), the Service endpoints and the policy pair entries (the node role writes them
// again; meanwhile governed traffic goes to OVS), the admitted connections (their
// next packets are judged anew) and the cross-node path's state (the controller writes
// it at start; meanwhile cross-node traffic takes Geneve; a flow sent back before is
// sent once more). A pinned one whose layout an
// upgrade changed is replaced instead of failing Open; the others keep pods' state and
// make Open fail with ErrIncompatiblePins.
var disposableMaps = map[string]bool{bpfMapSdncniCnt: true, bpfMapSdncniPolOvs: true, bpfMapSdncniSvc: true, bpfMapSdncniPol: true, bpfMapSdncniCt: true,
	bpfMapSdncniRemote: true, bpfMapSdncniXnode: true, bpfMapSdncniXpeer: true, bpfMapSdncniXback: true}

// replaceDisposablePins removes the pins of disposable maps that no longer match spec and
// reports whether it removed any.
func replaceDisposablePins(spec *ebpf.CollectionSpec, pinPath string) bool {
	removed := false
	for name, ms := range spec.Maps {
		if !disposableMaps[name] {
			continue
		}
		path := filepath.Join(pinPath, name)
		m, err := ebpf.LoadPinnedMap(path, nil)
		if err != nil {
			continue
		}
		incompatible := ms.Compatible(m) != nil
		_ = m.Close()
		if incompatible && os.Remove(path) == nil {
			removed = true
		}
	}
	return removed
}

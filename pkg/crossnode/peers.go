//go:build linux

package crossnode

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/sdncni/sdncni/pkg/datapath"
)

// remoteMap is what Peers needs of the datapath.
type remoteMap interface {
	SetRemoteBlocks(ctx context.Context, blocks []datapath.RemoteBlock) error
	PeerAnswers(ctx context.Context) (map[netip.Addr]uint64, error)
}

// Config configures Peers.
type Config struct {
	// Local is this node's underlay IPv4: probes leave from it. Required.
	Local netip.Addr
	// Port is the peers' VXLAN port (DefaultPort if 0).
	Port int
	// Interval between probe rounds (1s if 0).
	Interval time.Duration
	// Timeout: a peer whose last answer is older is taken out (3.5 × Interval if 0).
	Timeout time.Duration
}

// Peers keeps the datapath's remote blocks to the candidates whose node answers.
type Peers struct {
	cfg Config
	dp  remoteMap
	log logr.Logger

	mu         sync.Mutex
	candidates []datapath.RemoteBlock
	alive      map[netip.Addr]bool // last round's verdicts, for logging changes
}

// New returns Peers for dp; nothing is written until Sync or Run.
func New(cfg Config, dp remoteMap, log logr.Logger) *Peers {
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = cfg.Interval * 7 / 2
	}
	return &Peers{cfg: cfg, dp: dp, log: log, alive: map[netip.Addr]bool{}}
}

// SetCandidates replaces the blocks the cross-node path may reach (other nodes' blocks
// of the VPNs it is on for); they take effect for answering nodes at the next Sync.
func (p *Peers) SetCandidates(blocks []datapath.RemoteBlock) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.candidates = slices.Clone(blocks)
}

// Run probes and syncs every Interval until ctx ends.
func (p *Peers) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		if err := p.Sync(ctx); err != nil {
			p.log.Error(err, "cross-node peers")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sync writes the candidates of the nodes that answered within Timeout into the
// datapath, then probes every candidate node for the next round.
func (p *Peers) Sync(ctx context.Context) error {
	p.mu.Lock()
	cands := slices.Clone(p.candidates)
	p.mu.Unlock()
	answers, err := p.dp.PeerAnswers(ctx)
	if err != nil {
		return err
	}
	now, err := monotonicNow()
	if err != nil {
		return err
	}
	var (
		nodes []netip.Addr
		use   []datapath.RemoteBlock
	)
	alive := map[netip.Addr]bool{}
	for _, b := range cands {
		if !slices.Contains(nodes, b.Node) {
			nodes = append(nodes, b.Node)
		}
		at, ok := answers[b.Node]
		up := ok && now-at <= uint64(p.cfg.Timeout)
		alive[b.Node] = up
		if up {
			use = append(use, b)
		}
	}
	if err := p.dp.SetRemoteBlocks(ctx, use); err != nil {
		return err
	}
	p.logChanges(alive)
	if len(nodes) == 0 {
		return nil
	}
	return sendProbes(p.cfg.Local, p.cfg.Port, nodes)
}

func (p *Peers) logChanges(alive map[netip.Addr]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n, up := range alive {
		if was, ok := p.alive[n]; !ok || was != up {
			if up {
				p.log.Info("cross-node peer answers: its blocks take the VXLAN path", "peer", n)
			} else if ok {
				p.log.Info("cross-node peer stopped answering: its blocks take Geneve", "peer", n)
			}
		}
	}
	p.alive = alive
}

// monotonicNow is CLOCK_MONOTONIC in nanoseconds, bpf_ktime_get_ns's clock.
func monotonicNow() (uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("read monotonic clock: %w", err)
	}
	return uint64(ts.Nano()), nil
}

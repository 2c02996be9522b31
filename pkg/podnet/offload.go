package podnet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/go-logr/logr"
	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DisableTxOffload turns off transmit checksum offload on ifname, and with it every
// segmentation offload that depends on it (the kernel drops TSO/USO without a checksum
// feature), as `ethtool -K ifname tx off` does: the pod's stack then hands the device only
// complete, checksummed, MTU-sized frames. It must run in the namespace of ifname (the
// ethtool socket belongs to the namespace it is created in).
//
// Why: OVS 3.1's userspace datapath cannot put TSO packets or packets with a pending
// checksum into a Geneve tunnel. The pods keep their offloads; the taps through which
// their traffic enters OVS (a pod's OVS port, a management port) get them off, so the
// kernel segments and checksums a packet when it is transmitted there (validate_xmit_skb)
// and OVS only ever reads complete frames.
func DisableTxOffload(ifname string) error {
	e, err := ethtool.NewEthtool()
	if err != nil {
		return fmt.Errorf("open ethtool socket: %w", err)
	}
	defer e.Close()
	states, err := e.FeaturesWithState(ifname)
	if err != nil {
		return fmt.Errorf("read features of %s: %w", ifname, err)
	}
	off := map[string]bool{}
	for name, st := range states {
		if strings.HasPrefix(name, "tx-checksum") && st.Available && st.Active {
			off[name] = false
		}
	}
	if len(off) == 0 {
		return nil
	}
	if err := e.Change(ifname, off); err != nil {
		return fmt.Errorf("turn tx offload off on %s: %w", ifname, err)
	}
	active, err := e.Features(ifname)
	if err != nil {
		return fmt.Errorf("read features of %s: %w", ifname, err)
	}
	for _, name := range []string{"tx-checksum-ip-generic", "tx-checksum-ipv4", "tx-checksum-ipv6", "tx-tcp-segmentation", "tx-tcp6-segmentation"} {
		if active[name] {
			return fmt.Errorf("turn tx offload off on %s: %s still on", ifname, name)
		}
	}
	return nil
}

// KeepTxOffloadOff holds tx offload off, until ctx ends, on every link of the calling
// thread's network namespace whose name matches: the existing ones at once, and any
// later one when the kernel announces a change of it. It returns once the first
// subscription is in place.
//
// Why a watch and not a one-off: the taps of OVS's userspace datapath are persistent
// and outlive ovs-vswitchd, but a restarted ovs-vswitchd sets their offloads again
// (TUNSETOFFLOAD replaces what ethtool asked for), which would let offloaded packets
// reach OVS's Geneve again; the change is announced (RTM_NEWLINK) and undone here.
func KeepTxOffloadOff(ctx context.Context, match func(name string) bool, log logr.Logger) error {
	here, err := ns.GetCurrentNS()
	if err != nil {
		return fmt.Errorf("current network namespace: %w", err)
	}
	ch, err := subscribeLinks(ctx, log)
	if err != nil {
		_ = here.Close()
		return err
	}
	go func() {
		defer here.Close()
		// Every ethtool call and resubscription must happen in that namespace, whatever
		// thread the goroutine runs on.
		_ = here.Do(func(ns.NetNS) error {
			keepTxOffloadOff(ctx, ch, match, log)
			return nil
		})
	}()
	return nil
}

// subscribeLinks subscribes to the link updates of the calling thread's namespace,
// existing links first; the channel closes when ctx ends or the subscription breaks.
func subscribeLinks(ctx context.Context, log logr.Logger) (chan netlink.LinkUpdate, error) {
	ch, done := make(chan netlink.LinkUpdate, 64), make(chan struct{})
	var once sync.Once
	stop := func() { once.Do(func() { close(done) }) }
	err := netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			if ctx.Err() == nil {
				log.Error(err, "link updates")
			}
		},
	})
	if err != nil {
		stop()
		return nil, fmt.Errorf("subscribe to link updates: %w", err)
	}
	// Closing done closes the socket, which ends the library's reader and closes ch.
	context.AfterFunc(ctx, stop)
	return ch, nil
}

// keepTxOffloadOff is KeepTxOffloadOff's loop, in its namespace.
func keepTxOffloadOff(ctx context.Context, ch chan netlink.LinkUpdate, match func(string) bool, log logr.Logger) {
	for {
		for u := range ch {
			if u.Header.Type != unix.RTM_NEWLINK || u.Link == nil || !match(u.Link.Attrs().Name) {
				continue
			}
			if err := DisableTxOffload(u.Link.Attrs().Name); err != nil && !isGone(u.Link.Attrs().Index) {
				log.Error(err, "keep tx offload off", "link", u.Link.Attrs().Name)
			}
		}
		// ctx ended, or the subscription broke (a socket error): take it up again;
		// ListExisting catches whatever changed meanwhile.
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			var err error
			if ch, err = subscribeLinks(ctx, log); err == nil {
				break
			}
			log.Error(err, "keep tx offload off")
		}
	}
}

// isGone reports whether no link has index any more (deleted while we looked at it).
func isGone(index int) bool {
	_, err := netlink.LinkByIndex(index)
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

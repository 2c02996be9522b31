//go:build linux

package crossnode

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/datapath"
)

// fakeRemote records what Peers writes and returns canned answers.
type fakeRemote struct {
	answers map[netip.Addr]uint64
	written []datapath.RemoteBlock
}

func (f *fakeRemote) SetRemoteBlocks(_ context.Context, b []datapath.RemoteBlock) error {
	f.written = b
	return nil
}

func (f *fakeRemote) PeerAnswers(context.Context) (map[netip.Addr]uint64, error) {
	return f.answers, nil
}

// TestPeersSync: only the blocks of nodes that answered within the timeout are written,
// and every candidate node, answering or not, gets a probe (real datagrams on loopback).
func TestPeersSync(t *testing.T) {
	l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero, Port: 0})
	require.NoError(t, err)
	defer l.Close()
	port := l.LocalAddr().(*net.UDPAddr).Port

	x, y := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	now, err := monotonicNow()
	require.NoError(t, err)
	f := &fakeRemote{answers: map[netip.Addr]uint64{x: now, y: now - uint64(10*time.Second)}}
	p := New(Config{Local: netip.MustParseAddr("127.0.0.1"), Port: port}, f, logr.Discard())
	a := datapath.RemoteBlock{VPN: 1, Block: netip.MustParsePrefix("10.1.0.0/26"), Node: x}
	b := datapath.RemoteBlock{VPN: 1, Block: netip.MustParsePrefix("10.1.0.64/26"), Node: y}
	c := datapath.RemoteBlock{VPN: 2, Block: netip.MustParsePrefix("10.1.0.0/26"), Node: x}
	p.SetCandidates([]datapath.RemoteBlock{a, b, c})
	require.NoError(t, p.Sync(t.Context()))
	require.ElementsMatch(t, []datapath.RemoteBlock{a, c}, f.written, "y answered 10 s ago: out")

	buf := make([]byte, 128)
	for range 2 { // one probe to x, one to y
		_ = l.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := l.ReadFromUDP(buf)
		require.NoError(t, err)
		require.Equal(t, probeDatagram(netip.MustParseAddr("127.0.0.1")), buf[:n])
	}

	// No candidates: nothing written, nothing probed.
	p.SetCandidates(nil)
	require.NoError(t, p.Sync(t.Context()))
	require.Empty(t, f.written)
}

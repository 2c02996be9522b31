package e2e

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/stretchr/testify/require"
)

// injectStaleEntries writes per-pod map entries that belong to no attachment, the way a
// crash between two map writes leaves them: a destination whose endpoint is gone, an OVS
// port's entry without its pod entry, and a pod entry on the node's loopback.
func injectStaleEntries(t *testing.T, n *node) {
	t.Helper()
	maps := filepath.Join(n.pinDir, "maps")
	dst, err := ebpf.LoadPinnedMap(filepath.Join(maps, "sdncni_dst"), nil)
	require.NoError(t, err)
	defer func() { _ = dst.Close() }()
	ep, err := ebpf.LoadPinnedMap(filepath.Join(maps, "sdncni_ep"), nil)
	require.NoError(t, err)
	defer func() { _ = ep.Close() }()

	const vpn = 1 // --network-id default
	mac := []byte{0x0a, 0x58, 0x0a, 0x4d, 0x00, 0xc8}
	dstKey := binary.NativeEndian.AppendUint32(nil, vpn)
	dstKey = append(dstKey, 10, 77, 0, 200)
	dstVal := binary.NativeEndian.AppendUint32(nil, 4242) // host ifindex: none
	dstVal = append(append(dstVal, mac...), 1, 0)         // flags fast path, pad
	require.NoError(t, dst.Update(dstKey, dstVal, ebpf.UpdateAny))

	endpoint := func(role byte, peer uint32) []byte {
		v := binary.NativeEndian.AppendUint32(nil, vpn)
		v = append(append(v, 10, 77, 0, 201), mac...)
		v = append(v, 1, role)
		return binary.NativeEndian.AppendUint32(v, peer)
	}
	require.NoError(t, ep.Update(binary.NativeEndian.AppendUint32(nil, 4243), endpoint(2, 4244), ebpf.UpdateAny)) // ROLE_OVS
	require.NoError(t, ep.Update(binary.NativeEndian.AppendUint32(nil, 1), endpoint(1, 4243), ebpf.UpdateAny))    // ROLE_POD on lo
}

func mapState(t *testing.T, n *node) []string {
	t.Helper()
	var out []string
	for _, m := range []string{"sdncni_ep", "sdncni_dst"} {
		out = append(out, mapEntries(t, filepath.Join(n.pinDir, "maps", m))...)
	}
	return out
}

// TestStaleDatapathEntriesSwept (issue 12, item 11): GC and restart reconciliation remove
// every per-pod map entry that has no attachment — not only pod entries of the endpoint
// map — and leave the live pod's entries as they were.
func TestStaleDatapathEntriesSwept(t *testing.T) {
	n := newNode(t)
	const v = "1.1.0"
	keep := newPod(t, "keep")
	n.mustAdd(t, v, keep)
	live := mapState(t, n)
	require.Len(t, live, 3, "the pod's two endpoint entries and its destination: %v", live)

	t.Run("GC", func(t *testing.T) {
		injectStaleEntries(t, n)
		require.Len(t, mapState(t, n), 6)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		require.NoError(t, n.cni().GCNetworkList(ctx, n.confList(t, v),
			&libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: keep.containerID, IfName: keep.ifname}}}))
		require.ElementsMatch(t, live, mapState(t, n))
		require.NoError(t, n.check(t, v, keep))
		require.Contains(t, n.controllerLog(), "swept stale datapath entries")
	})

	t.Run("restart", func(t *testing.T) {
		injectStaleEntries(t, n)
		require.Len(t, mapState(t, n), 6)
		n.restartController(n.extra...)
		require.ElementsMatch(t, live, mapState(t, n))
		require.NoError(t, n.check(t, v, keep))
	})

	// Item 10 against the real controller: a request naming the controller's (the
	// node's) own namespace by a pod-like path is refused, and DEL of it succeeds.
	t.Run("node netns refused", func(t *testing.T) {
		// Not newPod: its cleanup would delete the namespace it names.
		p := &pod{name: "hostns", netns: n.ovn.NetNSPath, containerID: "c" + randHex(12), ifname: "eth0", namespace: "default"}
		require.True(t, strings.HasPrefix(p.netns, "/run/netns/"), p.netns)
		_, err := n.add(t, v, p)
		require.Equal(t, uint(types.ErrInvalidEnvironmentVariables), cniCode(t, err), "%v", err)
		require.ErrorContains(t, err, "node's network namespace")
		require.NoError(t, n.del(t, v, p))
	})

	require.NoError(t, n.del(t, v, keep))
	require.Empty(t, n.leftovers(t))
}

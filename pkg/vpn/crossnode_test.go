package vpn_test

import (
	"net/netip"
	"testing"

	"github.com/go-logr/logr/testr"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/datapath"
	"github.com/sdncni/sdncni/pkg/vpn"
)

// candidates records what CrossNodeReconciler hands the cross-node path.
type candidates struct{ got []datapath.RemoteBlock }

func (c *candidates) SetCandidates(b []datapath.RemoteBlock) { c.got = b }

// TestCrossNodeCandidates: from the VPNBlocks, VPNs and Nodes in a real API server, node-1
// reaches on the cross-node path exactly the other nodes' valid IPv4 blocks of VPNs that
// hold their id and allow it, keyed by the VPN's id and sent to the holding node's
// underlay address (the annotation, else the first IPv4 InternalIP). Switching a VPN's
// crossNodeFastPath takes its blocks out and back.
func TestCrossNodeCandidates(t *testing.T) {
	api := testenv.StartAPIServer(t)
	ctx := testCtx(t)
	c := api.Client
	for _, name := range []string{"blue", "red", "grey"} { // all 10.77.0.0/24, /26 blocks
		createVPN(ctx, t, c, name)
	}
	setID(ctx, t, c, "blue", 5)
	setID(ctx, t, c, "red", 6)
	// grey carries blue's id: not programmed by any node (IDHolders), nor reached.
	require.NoError(t, c.Create(ctx, v1alpha1.NewVPNID(5, getVPN(ctx, t, c, "blue"))))
	setID(ctx, t, c, "grey", 5)

	node := func(name, internal, annotation string) {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if annotation != "" {
			n.Annotations = map[string]string{v1alpha1.AnnotationUnderlayIP: annotation}
		}
		if internal != "" {
			// Nodes take their status on create (as the kubelet registers them).
			n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name},
				{Type: corev1.NodeInternalIP, Address: "fd00::9"}, {Type: corev1.NodeInternalIP, Address: internal}}
		}
		require.NoError(t, c.Create(ctx, n))
	}
	node("node-1", "100.65.0.1", "")
	node("node-2", "100.65.0.2", "")
	node("node-3", "192.0.2.3", "100.65.0.3") // the annotation wins
	node("node-4", "", "")                    // no IPv4 yet
	node("node-5", "100.65.0.5", "not-an-ip") // an unusable annotation is not replaced by the InternalIP

	block := func(vpnName, p, on string) {
		require.NoError(t, c.Create(ctx, v1alpha1.NewVPNBlock(vpnName, netip.MustParsePrefix(p), on)))
	}
	block("blue", "10.77.0.0/26", "node-1")  // its own
	block("blue", "10.77.0.64/26", "node-2") // reached
	block("blue", "10.77.0.128/26", "node-3")
	block("blue", "10.77.0.192/26", "node-4")
	block("blue", "10.9.0.0/26", "node-2") // outside blue's CIDR
	block("red", "10.77.0.64/26", "node-2")
	block("red", "10.77.0.128/26", "node-5")
	block("grey", "10.77.0.64/26", "node-2")

	sink := &candidates{}
	r := &vpn.CrossNodeReconciler{Cache: c, Node: "node-1", Local: netip.MustParseAddr("100.65.0.1"), Peers: sink, Log: testr.New(t)}
	reconcile := func() []datapath.RemoteBlock {
		t.Helper()
		_, err := r.Reconcile(ctx, ctrl.Request{})
		require.NoError(t, err)
		return sink.got
	}
	rb := func(id uint32, p, node string) datapath.RemoteBlock {
		return datapath.RemoteBlock{VPN: id, Block: netip.MustParsePrefix(p), Node: netip.MustParseAddr(node)}
	}
	blueOnly := []datapath.RemoteBlock{rb(5, "10.77.0.64/26", "100.65.0.2"), rb(5, "10.77.0.128/26", "100.65.0.3")}
	require.Equal(t, append(blueOnly, rb(6, "10.77.0.64/26", "100.65.0.2")), reconcile())

	off := false
	v := getVPN(ctx, t, c, "red")
	v.Spec.CrossNodeFastPath = &off
	require.NoError(t, c.Update(ctx, v))
	require.Equal(t, blueOnly, reconcile(), "red's crossNodeFastPath is off")

	on := true
	v = getVPN(ctx, t, c, "red")
	v.Spec.CrossNodeFastPath = &on
	require.NoError(t, c.Update(ctx, v))
	require.Len(t, reconcile(), 3, "red's blocks are back")

	// From node-2's side: node-1's block is remote, its own are not.
	r2 := &vpn.CrossNodeReconciler{Cache: c, Node: "node-2", Local: netip.MustParseAddr("100.65.0.2"), Peers: sink, Log: testr.New(t)}
	_, err := r2.Reconcile(ctx, ctrl.Request{})
	require.NoError(t, err)
	require.Equal(t, []datapath.RemoteBlock{rb(5, "10.77.0.0/26", "100.65.0.1"), rb(5, "10.77.0.128/26", "100.65.0.3")}, sink.got)
}

// TestUnderlayIP: the annotation if it is a usable IPv4, nothing if it is set but not;
// else the first IPv4 InternalIP.
func TestUnderlayIP(t *testing.T) {
	addrs := func(a ...string) []corev1.NodeAddress {
		var out []corev1.NodeAddress
		for i := 0; i < len(a); i += 2 {
			out = append(out, corev1.NodeAddress{Type: corev1.NodeAddressType(a[i]), Address: a[i+1]})
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		annotation string
		addrs      []corev1.NodeAddress
		want       string
	}{
		{"internal ip", "", addrs("ExternalIP", "203.0.113.1", "InternalIP", "10.0.0.5"), "10.0.0.5"},
		{"first ipv4 internal ip", "", addrs("InternalIP", "fd00::5", "InternalIP", "10.0.0.5", "InternalIP", "10.0.0.6"), "10.0.0.5"},
		{"annotation", "100.65.0.7", addrs("InternalIP", "10.0.0.5"), "100.65.0.7"},
		{"bad annotation", "100.65.0", addrs("InternalIP", "10.0.0.5"), ""},
		{"ipv6 annotation", "fd00::7", addrs("InternalIP", "10.0.0.5"), ""},
		{"loopback", "", addrs("InternalIP", "127.0.0.1"), ""},
		{"nothing", "", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &corev1.Node{Status: corev1.NodeStatus{Addresses: tc.addrs}}
			if tc.annotation != "" {
				n.Annotations = map[string]string{v1alpha1.AnnotationUnderlayIP: tc.annotation}
			}
			ip, ok := vpn.UnderlayIP(n)
			if tc.want == "" {
				require.False(t, ok, ip)
				return
			}
			require.True(t, ok)
			require.Equal(t, netip.MustParseAddr(tc.want), ip)
		})
	}
}

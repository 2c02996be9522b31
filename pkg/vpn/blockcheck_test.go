package vpn_test

import (
	"net/netip"
	"testing"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/internal/testenv"
	"github.com/sdncni/sdncni/pkg/vpn"
)

// TestNodeIgnoresBlocksOutsideItsVPN: the API server accepts a VPNBlock of this node
// outside its VPN's CIDR, or of another size than the VPN's node blocks (a block is
// validated alone); the node hands out no address of it and reports no range of it, so
// the gateway routes none of it (docs/security.md, item 3).
func TestNodeIgnoresBlocksOutsideItsVPN(t *testing.T) {
	api := testenv.StartAPIServer(t)
	ctx := testCtx(t)
	require.NoError(t, api.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "nb"}}))
	createVPN(ctx, t, api.Client, "blue", "nb") // 10.77.0.0/24, /26 blocks
	setID(ctx, t, api.Client, "blue", 5)
	for _, p := range []string{"10.77.0.64/26", "10.9.0.0/26", "10.77.0.128/25", "0.0.0.0/26"} {
		require.NoError(t, api.Client.Create(ctx, v1alpha1.NewVPNBlock("blue", netip.MustParsePrefix(p), "node-1")),
			"the API server takes %s", p)
	}

	nodes := vpn.NewNodeNetworks(api.Client, api.Client, "node-1", 1400, logr.Discard())
	want := []netip.Prefix{netip.MustParsePrefix("10.77.0.64/26")}
	net, ok := nodes.ByName("blue")
	require.True(t, ok)
	require.Equal(t, want, net.Ranges)
	net, err := nodes.ForNamespace(ctx, "nb")
	require.NoError(t, err)
	require.Equal(t, want, net.Ranges, "pods get addresses of valid blocks only")
	all := nodes.All()
	require.Len(t, all, 1)
	require.Equal(t, want, all[0].Ranges)
}

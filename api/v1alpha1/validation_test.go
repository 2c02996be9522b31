package v1alpha1_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/internal/testenv"
)

func vpn(name string, mutate func(*v1alpha1.VirtualPrivateNetwork)) *v1alpha1.VirtualPrivateNetwork {
	v := &v1alpha1.VirtualPrivateNetwork{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.VirtualPrivateNetworkSpec{CIDR: "10.1.0.0/16", Namespaces: []string{"x", "y"}},
	}
	if mutate != nil {
		mutate(v)
	}
	return v
}

// TestAPIServer checks the CRDs' schema and CEL rules against a real API server: they are
// what keeps bad intent out, so they are tested where they run.
func TestAPIServer(t *testing.T) {
	api := testenv.StartAPIServer(t)
	c := api.Client
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("create", func(t *testing.T) { testCreate(ctx, t, c) })
	t.Run("immutable", func(t *testing.T) { testImmutable(ctx, t, c) })
	t.Run("blocks", func(t *testing.T) { testBlocks(ctx, t, c) })
	t.Run("kubectl", func(t *testing.T) { testKubectl(ctx, t, api) })
}

func testCreate(ctx context.Context, t *testing.T, c client.Client) {
	for _, tc := range []struct {
		name    string
		vpn     *v1alpha1.VirtualPrivateNetwork
		wantErr string // substring of the API server's message; "" = accepted
	}{
		{name: "minimal", vpn: vpn("ok-minimal", nil)},
		{name: "selector and mtu", vpn: vpn("ok-selector", func(v *v1alpha1.VirtualPrivateNetwork) {
			v.Spec.Namespaces = nil
			v.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{v1alpha1.LabelVPN: "a"}}
			v.Spec.MTU = ptr.To[int32](1400)
			v.Spec.FastPath = ptr.To(false)
			v.Spec.NodeBlockSize = 28
		})},
		{name: "block as large as the cidr", vpn: vpn("ok-oneblock", func(v *v1alpha1.VirtualPrivateNetwork) {
			v.Spec.CIDR, v.Spec.NodeBlockSize = "192.168.7.0/24", 24
		})},
		{name: "ipv6 accepted by the API", vpn: vpn("ok-v6", func(v *v1alpha1.VirtualPrivateNetwork) {
			v.Spec.CIDR, v.Spec.NodeBlockSize = "fd00:1::/64", 120
		})},
		{name: "not a cidr", vpn: vpn("bad-cidr", func(v *v1alpha1.VirtualPrivateNetwork) { v.Spec.CIDR = "10.1.0.0" }),
			wantErr: "cidr must be a CIDR"},
		{name: "prefix too long", vpn: vpn("bad-prefix", func(v *v1alpha1.VirtualPrivateNetwork) { v.Spec.CIDR = "10.1.0.0/33" }),
			wantErr: "cidr must be a CIDR"},
		{name: "host bits set", vpn: vpn("bad-hostbits", func(v *v1alpha1.VirtualPrivateNetwork) { v.Spec.CIDR = "10.1.2.3/16" }),
			wantErr: "host bits must be zero"},
		{name: "empty cidr", vpn: vpn("bad-empty", func(v *v1alpha1.VirtualPrivateNetwork) { v.Spec.CIDR = "" }),
			wantErr: "spec.cidr"},
		{name: "block larger than cidr", vpn: vpn("bad-block", func(v *v1alpha1.VirtualPrivateNetwork) { v.Spec.NodeBlockSize = 8 }),
			wantErr: "nodeBlockSize must be at least the cidr's prefix length"},
		{name: "default block larger than a /28", vpn: vpn("bad-defaultblock", func(v *v1alpha1.VirtualPrivateNetwork) { v.Spec.CIDR = "10.9.0.0/28" }),
			wantErr: "nodeBlockSize must be at least the cidr's prefix length"},
		{name: "ipv4 block too small", vpn: vpn("bad-block31", func(v *v1alpha1.VirtualPrivateNetwork) { v.Spec.NodeBlockSize = 31 }),
			wantErr: "at most 30 for an IPv4 cidr"},
		{name: "mtu too small", vpn: vpn("bad-mtu-low", func(v *v1alpha1.VirtualPrivateNetwork) { v.Spec.MTU = ptr.To[int32](575) }),
			wantErr: "spec.mtu"},
		{name: "mtu too large", vpn: vpn("bad-mtu-high", func(v *v1alpha1.VirtualPrivateNetwork) { v.Spec.MTU = ptr.To[int32](9001) }),
			wantErr: "spec.mtu"},
		{name: "bad namespace name", vpn: vpn("bad-ns", func(v *v1alpha1.VirtualPrivateNetwork) { v.Spec.Namespaces = []string{"Not_A_Namespace"} }),
			wantErr: "spec.namespaces"},
		{name: "name not a DNS label", vpn: vpn("bad.name", nil),
			wantErr: "metadata.name must be a DNS label"},
		{name: "shared services", vpn: vpn("ok-shared", func(v *v1alpha1.VirtualPrivateNetwork) {
			v.Spec.SharedServices = []string{"monitoring/push-gateway", "a/b"}
		})},
		{name: "shared service without namespace", vpn: vpn("bad-shared", func(v *v1alpha1.VirtualPrivateNetwork) {
			v.Spec.SharedServices = []string{"push-gateway"}
		}), wantErr: "spec.sharedServices"},
		{name: "shared service path", vpn: vpn("bad-shared2", func(v *v1alpha1.VirtualPrivateNetwork) {
			v.Spec.SharedServices = []string{"a/b/c"}
		}), wantErr: "spec.sharedServices"},
		{name: "shared service listed twice", vpn: vpn("bad-shared3", func(v *v1alpha1.VirtualPrivateNetwork) {
			v.Spec.SharedServices = []string{"a/b", "a/b"}
		}), wantErr: "spec.sharedServices"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Create(ctx, tc.vpn)
			if tc.wantErr != "" {
				require.Error(t, err)
				require.Truef(t, apierrors.IsInvalid(err), "want Invalid, got %v", err)
				require.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			t.Cleanup(func() { _ = c.Delete(context.Background(), tc.vpn) })
			var got v1alpha1.VirtualPrivateNetwork
			require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(tc.vpn), &got))
			require.NotNil(t, got.Spec.FastPath, "fastPath defaulted")
			require.NotZero(t, got.Spec.NodeBlockSize, "nodeBlockSize defaulted")
			if tc.vpn.Spec.FastPath == nil {
				require.True(t, *got.Spec.FastPath)
			}
			if tc.name == "minimal" {
				require.EqualValues(t, v1alpha1.DefaultNodeBlockSize, got.Spec.NodeBlockSize)
			}
		})
	}
}

func testImmutable(ctx context.Context, t *testing.T, c client.Client) {
	v := vpn("immutable", nil)
	require.NoError(t, c.Create(ctx, v))
	t.Cleanup(func() { _ = c.Delete(context.Background(), v) })

	for _, tc := range []struct {
		name    string
		mutate  func(*v1alpha1.VirtualPrivateNetwork)
		wantErr string
	}{
		{"cidr", func(v *v1alpha1.VirtualPrivateNetwork) { v.Spec.CIDR = "10.2.0.0/16" }, "cidr is immutable"},
		{"nodeBlockSize", func(v *v1alpha1.VirtualPrivateNetwork) { v.Spec.NodeBlockSize = 27 }, "nodeBlockSize is immutable"},
		{"namespaces may change", func(v *v1alpha1.VirtualPrivateNetwork) { v.Spec.Namespaces = []string{"z"} }, ""},
		{"mtu may change", func(v *v1alpha1.VirtualPrivateNetwork) { v.Spec.MTU = ptr.To[int32](9000) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cur v1alpha1.VirtualPrivateNetwork
			require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(v), &cur))
			tc.mutate(&cur)
			err := c.Update(ctx, &cur)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.True(t, apierrors.IsInvalid(err), err)
			require.Contains(t, err.Error(), tc.wantErr)
		})
	}

	// Status goes through its subresource; a spec change there is ignored.
	var cur v1alpha1.VirtualPrivateNetwork
	require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(v), &cur))
	cur.Status.Pods = 3
	cur.Status.OVN = &v1alpha1.OVNStatus{Router: "sdncni-immutable", Switch: "sdncni-immutable"}
	meta.SetStatusCondition(&cur.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonRealized,
		ObservedGeneration: cur.Generation,
	})
	require.NoError(t, c.Status().Update(ctx, &cur))
	require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(v), &cur))
	require.EqualValues(t, 3, cur.Status.Pods)
	require.True(t, meta.IsStatusConditionTrue(cur.Status.Conditions, v1alpha1.ConditionReady))
}

func testBlocks(ctx context.Context, t *testing.T, c client.Client) {
	block := netip.MustParsePrefix("10.1.0.64/26")
	a := v1alpha1.NewVPNBlock("blue", block, "node-a")
	require.NoError(t, c.Create(ctx, a))
	t.Cleanup(func() { _ = c.Delete(context.Background(), a) })

	// The same block for another node is the same name: exactly one claim wins.
	b := v1alpha1.NewVPNBlock("blue", block, "node-b")
	require.True(t, apierrors.IsAlreadyExists(c.Create(ctx, b)))

	// The same block of another VPN is another claim (VPNs may overlap).
	other := v1alpha1.NewVPNBlock("red", block, "node-b")
	require.NoError(t, c.Create(ctx, other))
	t.Cleanup(func() { _ = c.Delete(context.Background(), other) })

	// A name that does not follow BlockName would allow a second claim: rejected.
	alias := v1alpha1.NewVPNBlock("blue", block, "node-b")
	alias.Name = "blue.alias"
	err := c.Create(ctx, alias)
	require.True(t, apierrors.IsInvalid(err), err)
	require.Contains(t, err.Error(), "metadata.name must be")

	// Non-canonical text would break the name rule for IPv6: rejected.
	odd := v1alpha1.NewVPNBlock("blue", netip.MustParsePrefix("10.1.0.128/26"), "node-b")
	odd.Spec.CIDR = "10.1.0.129/26"
	require.True(t, apierrors.IsInvalid(c.Create(ctx, odd)))

	// Blocks are immutable: release by delete.
	var cur v1alpha1.VPNBlock
	require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(a), &cur))
	cur.Spec.Node = "node-b"
	err = c.Update(ctx, &cur)
	require.True(t, apierrors.IsInvalid(err), err)
	require.Contains(t, err.Error(), "immutable")

	// Nodes can watch only their own blocks: spec.node is a selectable field.
	var list v1alpha1.VPNBlockList
	require.NoError(t, c.List(ctx, &list, client.MatchingFields{"spec.node": "node-a"}))
	require.Len(t, list.Items, 1)
	require.Equal(t, a.Name, list.Items[0].Name)
}

func testKubectl(ctx context.Context, t *testing.T, api *testenv.APIServer) {
	c := api.Client
	v := vpn("shown", func(v *v1alpha1.VirtualPrivateNetwork) { v.Spec.CIDR = "10.77.0.0/16" })
	require.NoError(t, c.Create(ctx, v))
	t.Cleanup(func() { _ = c.Delete(context.Background(), v) })
	v.Status.Pods = 7
	meta.SetStatusCondition(&v.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonRealized,
	})
	require.NoError(t, c.Status().Update(ctx, v))

	out, err := api.Kubectl(ctx, nil, "get", "vpn", "shown")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, out)
	require.Equal(t, []string{"NAME", "CIDR", "NAMESPACES", "PODS", "READY", "AGE"}, strings.Fields(lines[0]))
	row := strings.Fields(lines[1])
	require.Equal(t, []string{"shown", "10.77.0.0/16", `["x","y"]`, "7", "True"}, row[:5], out)

	out, err = api.Kubectl(ctx, nil, "get", "vpn", "shown", "-o", "wide")
	require.NoError(t, err)
	require.Equal(t, []string{"NAME", "CIDR", "NAMESPACES", "PODS", "READY", "AGE", "SELECTOR", "BLOCK", "MTU", "ROUTER"},
		strings.Fields(strings.Split(out, "\n")[0]))
}

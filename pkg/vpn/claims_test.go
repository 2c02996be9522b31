package vpn

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
	"github.com/sdncni/sdncni/pkg/attach"
)

func vpnObj(name string, nss []string, sel map[string]string) v1alpha1.VirtualPrivateNetwork {
	v := v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: name}}
	v.Spec.Namespaces = nss
	if sel != nil {
		v.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: sel}
	}
	return v
}

func nsObj(name string, labels map[string]string) corev1.Namespace {
	return corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func TestClaims(t *testing.T) {
	deleting := vpnObj("gone", []string{"q"}, nil)
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	vpns := []v1alpha1.VirtualPrivateNetwork{
		vpnObj("default", nil, nil),
		vpnObj("red", []string{"x", "y"}, nil),
		vpnObj("blue", []string{"z"}, map[string]string{"tenant": "blue"}),
		vpnObj("green", []string{"y"}, nil), // y: conflict with red
		deleting,
	}
	nss := []corev1.Namespace{nsObj("x", nil), nsObj("y", nil), nsObj("z", nil),
		nsObj("b2", map[string]string{"tenant": "blue"}), nsObj("q", nil), nsObj("other", nil)}
	c, err := ComputeClaims(vpns, nss)
	require.NoError(t, err)

	for ns, want := range map[string]string{"x": "red", "z": "blue", "b2": "blue", "other": "default", "q": "default"} {
		got, err := c.Owner(ns)
		require.NoError(t, err, ns)
		require.Equal(t, want, got, ns)
	}
	_, err = c.Owner("y")
	require.True(t, errors.Is(err, ErrConflict))
	require.True(t, errors.Is(err, attach.ErrNetworkNotReady), "conflicts map to try-again-later")
	require.Equal(t, []string{"y"}, c.ConflictsOf("red"))
	require.Equal(t, []string{"y"}, c.ConflictsOf("green"))
	require.Empty(t, c.ConflictsOf("blue"))
	require.Equal(t, 1, c.Owned("red"))
	require.Equal(t, 2, c.Owned("blue"))
}

func TestBlocks(t *testing.T) {
	n, block, err := Blocks(netip.MustParsePrefix("10.1.0.0/24"), 26)
	require.NoError(t, err)
	require.Equal(t, 4, n)
	require.Equal(t, "10.1.0.0/26", block(0).String())
	require.Equal(t, "10.1.0.192/26", block(3).String())

	n, _, err = Blocks(netip.MustParsePrefix("10.1.0.0/24"), 24)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	_, _, err = Blocks(netip.MustParsePrefix("10.1.0.0/24"), 23)
	require.Error(t, err)
	_, _, err = Blocks(netip.MustParsePrefix("fd00::/64"), 80)
	require.ErrorIs(t, err, ErrNotReady)
	require.Equal(t, "10.1.0.1", Gateway(netip.MustParsePrefix("10.1.0.0/24")).String())
}

package vpn

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "github.com/sdncni/sdncni/api/v1alpha1"
)

// TestIDHolders is the pure rule; TestNodeRefusesSharedID runs it against the API server.
func TestIDHolders(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mk := func(name string, id uint32, age int) v1alpha1.VirtualPrivateNetwork {
		v := v1alpha1.VirtualPrivateNetwork{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name),
			CreationTimestamp: metav1.NewTime(t0.Add(time.Duration(age) * time.Second))}}
		v.Status.VPNID = id
		return v
	}
	a, b, c, d := mk("a", 1, 0), mk("b", 1, 1), mk("c", 2, 0), mk("d", 0, 0)
	claim := func(id uint32, v v1alpha1.VirtualPrivateNetwork) v1alpha1.VPNID { return *v1alpha1.NewVPNID(id, &v) }
	stale := claim(1, a)
	stale.Spec.VPNUID = "an-older-a"
	for _, tc := range []struct {
		name    string
		claims  []v1alpha1.VPNID
		ok      []string
		refused []IDRefusal
	}{
		{name: "no claims: the older keeps the id", ok: []string{"a", "c"},
			refused: []IDRefusal{{VPN: "b", Holder: "a", ID: 1}}},
		{name: "the claim decides", claims: []v1alpha1.VPNID{claim(1, b)}, ok: []string{"b", "c"},
			refused: []IDRefusal{{VPN: "a", Holder: "b", ID: 1}}},
		{name: "a claim of an absent VPN: nobody", claims: []v1alpha1.VPNID{claim(1, d)}, ok: []string{"c"},
			refused: []IDRefusal{{VPN: "a", Holder: "d", ID: 1}, {VPN: "b", Holder: "d", ID: 1}}},
		{name: "same name, other uid: nobody", claims: []v1alpha1.VPNID{stale}, ok: []string{"c"},
			refused: []IDRefusal{{VPN: "a", Holder: "a", ID: 1}, {VPN: "b", Holder: "a", ID: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, refused := IDHolders([]v1alpha1.VirtualPrivateNetwork{b, a, c, d}, tc.claims)
			var names []string
			for _, n := range []string{"a", "b", "c", "d"} {
				if ok[n] {
					names = append(names, n)
				}
			}
			require.Equal(t, tc.ok, names)
			require.Equal(t, tc.refused, refused)
		})
	}
}

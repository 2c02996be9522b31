package ipamtest_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdncni/sdncni/pkg/ipam"
	"github.com/sdncni/sdncni/pkg/ipam/ipamtest"
)

func TestNewStore(t *testing.T) {
	s := ipamtest.NewStore(t)
	p := ipam.Pool{Name: "net", Ranges: []ipam.Range{{Subnet: netip.MustParsePrefix("10.0.0.0/30")}}}
	a, err := s.Allocate(context.Background(), p, ipam.Owner{ContainerID: "c", IfName: "eth0"})
	require.NoError(t, err)
	require.Equal(t, "10.0.0.1/30", a.Addr.String())
	require.FileExists(t, s.Path())
}

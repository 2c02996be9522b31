//go:build linux

package crossnode

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestProbeDatagram: VXLAN header with the I flag and VNI 0, then the inner frame that
// bpf/datapath.c's xnode_probe reads: broadcast, a locally administered source MAC
// that is not the device's, type 0x88b5, "sdnx", request; padded to Ethernet's minimum.
func TestProbeDatagram(t *testing.T) {
	b := probeDatagram(netip.MustParseAddr("100.65.0.1"))
	require.Len(t, b, 8+60)
	require.Equal(t, []byte{0x08, 0, 0, 0, 0, 0, 0, 0}, b[:8])
	f := b[8:]
	require.Equal(t, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, f[0:6])
	require.Equal(t, []byte{0x02, 0x00, 100, 65, 0, 1}, f[6:12])
	require.Equal(t, []byte{0x88, 0xb5, 's', 'd', 'n', 'x', 1}, f[12:19])
}

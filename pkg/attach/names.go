package attach

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
)

// Name prefixes of the kernel links this package creates. GC finds leaked links by them.
const (
	HostIfPrefix = "sdnh"
	OVSIfPrefix  = "sdno"
	lspPrefix    = "sdncni-"
	// NodeOwnerPrefix starts the ContainerID of addresses the node itself holds (a
	// management port's "mgmt:<vpn>"); GC and Reconcile never treat them as pods'.
	NodeOwnerPrefix = "mgmt:"
)

// Key identifies one attachment, as the runtime does.
type Key struct {
	ContainerID string
	IfName      string
}

// Names are the deterministic names of an attachment's pieces, derived from its Key so
// that DEL and GC find them without stored state. Link names fit IFNAMSIZ (15 chars).
type Names struct {
	HostIf  string // host side of the veth
	OVSIf   string // OVS internal port (a tap device on the userspace datapath)
	LSP     string // OVN logical switch port, also the iface-id
	hashHex string
}

// NamesFor derives the names of k's pieces.
func NamesFor(k Key) Names {
	sum := sha256.Sum256([]byte(k.ContainerID + "/" + k.IfName))
	h := hex.EncodeToString(sum[:])
	return Names{HostIf: HostIfPrefix + h[:11], OVSIf: OVSIfPrefix + h[:11], LSP: lspPrefix + h[:16], hashHex: h}
}

// IsOurLink reports whether a link name is one of ours.
func IsOurLink(name string) bool {
	return len(name) == 15 && (strings.HasPrefix(name, HostIfPrefix) || strings.HasPrefix(name, OVSIfPrefix))
}

// MACFor derives a pod's MAC from its IPv4 address (0a:58:a.b.c.d), locally administered
// and unicast, so the same address always gets the same MAC and ARP caches stay right
// across a restart of the pod.
func MACFor(a netip.Addr) net.HardwareAddr {
	if a.Is4() {
		b := a.As4()
		return net.HardwareAddr{0x0a, 0x58, b[0], b[1], b[2], b[3]}
	}
	b := a.As16()
	return net.HardwareAddr{0x0a, 0x58, b[12], b[13], b[14], b[15]}
}

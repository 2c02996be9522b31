package gateway

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/sdncni/sdncni/pkg/attach"
	"github.com/sdncni/sdncni/pkg/ipam"
	"github.com/sdncni/sdncni/pkg/ovs"
)

const (
	// PortPrefix starts the name of every management port (an OVS internal port, a tap
	// in the node netns). attach.IsOurLink does not match it.
	PortPrefix = "sdnm"
	lspPrefix  = "sdncni-mp-"
	// Role is the sdncni.io/role mark of a management port's OVS and OVN rows and of its
	// VPN's source routes; pod GC and reconcile skip rows with a role.
	Role = "management-port"
	// ifName is the IfName of a management port's address in the address store.
	ifName = "mp"
)

// Names are the names of one VPN's management port on one node.
type Names struct {
	Port string // OVS internal port and its tap
	LSP  string // logical switch port, the port's iface-id
}

// NamesFor derives the names of vpn's management port on node.
func NamesFor(vpn, node string) Names {
	sum := sha256.Sum256([]byte(vpn + "/" + node))
	h := hex.EncodeToString(sum[:])
	return Names{Port: PortPrefix + h[:11], LSP: lspPrefix + h[:16]}
}

// addrOwner is who holds the management port's address in the address store.
func addrOwner(vpn string) ipam.Owner {
	return ipam.Owner{ContainerID: attach.NodeOwnerPrefix + vpn, IfName: ifName}
}

// rowOwner is the ownership mark of the port's OVS and OVN rows.
func rowOwner(vpn, node string) ovs.Owner {
	return ovs.Owner{ContainerID: attach.NodeOwnerPrefix + vpn, IfName: ifName, Network: vpn, Node: node, Role: Role}
}

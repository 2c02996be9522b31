package ovs

// external_ids keys sdncni writes. The pod keys are namespaced so they never collide with
// keys that OVN (iface-id, ovn-installed) or other integrations use.
const (
	KeyOwner        = "sdncni.io/owner"
	OwnerValue      = "sdncni"
	KeyPodNamespace = "sdncni.io/pod-namespace"
	KeyPodName      = "sdncni.io/pod-name"
	KeyContainerID  = "sdncni.io/container-id"
	KeyIfName       = "sdncni.io/ifname"
	// KeyNetwork holds the network (VPN) name on pod rows and on a network's OVN rows.
	KeyNetwork = "sdncni.io/network"
	// KeyNode names the node whose controller created the row; a node's GC touches only
	// its own rows of the shared Northbound database.
	KeyNode = "sdncni.io/node"
	// KeyRole marks rows that are not pod attachments (e.g. "management-port"); pod
	// rows have none.
	KeyRole = "sdncni.io/role"

	// KeyIfaceID binds an OVS Interface to the OVN logical switch port of that name.
	KeyIfaceID = "iface-id"
	// KeyOVNInstalled is set to "true" by ovn-controller once a bound port's flows exist.
	KeyOVNInstalled = "ovn-installed"
)

// Owner identifies the pod attachment a row belongs to.
type Owner struct {
	PodNamespace string
	PodName      string
	ContainerID  string
	IfName       string
	Network      string
	Node         string
	// Role is empty for a pod attachment and names the role of any other row.
	Role string
}

// ExternalIDs returns the owner mark and every non-empty Owner field as external_ids.
func (o Owner) ExternalIDs() map[string]string {
	m := map[string]string{KeyOwner: OwnerValue}
	for k, v := range map[string]string{
		KeyPodNamespace: o.PodNamespace,
		KeyPodName:      o.PodName,
		KeyContainerID:  o.ContainerID,
		KeyIfName:       o.IfName,
		KeyNetwork:      o.Network,
		KeyNode:         o.Node,
		KeyRole:         o.Role,
	} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// OwnerFromExternalIDs reads an Owner back from external_ids. The boolean is false when
// the row does not carry sdncni's owner mark.
func OwnerFromExternalIDs(ids map[string]string) (Owner, bool) {
	if ids[KeyOwner] != OwnerValue {
		return Owner{}, false
	}
	return Owner{
		PodNamespace: ids[KeyPodNamespace],
		PodName:      ids[KeyPodName],
		ContainerID:  ids[KeyContainerID],
		IfName:       ids[KeyIfName],
		Network:      ids[KeyNetwork],
		Node:         ids[KeyNode],
		Role:         ids[KeyRole],
	}, true
}

// owned reports whether external_ids carry sdncni's owner mark.
func owned(ids map[string]string) bool { return ids[KeyOwner] == OwnerValue }

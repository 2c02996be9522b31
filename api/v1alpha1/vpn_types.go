package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultVPNName names the VPN the controller creates from its own configuration
// (--cidr, --mtu, …) when it does not exist. Namespaces that no other VPN claims belong to
// it; it may also list or select namespaces explicitly, like any other VPN.
const DefaultVPNName = "default"

// DefaultNodeBlockSize is the prefix length of a node block when the spec leaves it out:
// 64 addresses per block.
const DefaultNodeBlockSize = 26

// VirtualPrivateNetworkSpec is what a platform team declares: an address space and the
// namespaces whose pods live in it.
//
// +kubebuilder:validation:XValidation:rule="!isCIDR(self.cidr) || self.nodeBlockSize >= cidr(self.cidr).prefixLength()",message="nodeBlockSize must be at least the cidr's prefix length: a node block must fit in the cidr"
// +kubebuilder:validation:XValidation:rule="!isCIDR(self.cidr) || cidr(self.cidr).ip().family() != 4 || self.nodeBlockSize <= 30",message="nodeBlockSize must be at most 30 for an IPv4 cidr"
// +kubebuilder:validation:XValidation:rule="!isCIDR(self.cidr) || cidr(self.cidr).ip().family() != 6 || self.nodeBlockSize <= 126",message="nodeBlockSize must be at most 126 for an IPv6 cidr"
type VirtualPrivateNetworkSpec struct {
	// CIDR is the VPN's address space, a network address such as 10.1.0.0/16. The API
	// accepts IPv6 as well; the controller reports an IPv6 VPN as not Ready
	// (UnsupportedFamily) until IPv6 is implemented. Different VPNs may overlap.
	// Dual stack will add an optional second CIDR of the other family next to this one.
	// Immutable: changing it would orphan the addresses of running pods.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="cidr must be a CIDR such as 10.1.0.0/16"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self) == cidr(self).masked()",message="cidr must be a network address: its host bits must be zero"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="cidr is immutable: running pods hold addresses from it"
	CIDR string `json:"cidr"`

	// Namespaces lists, by name, namespaces this VPN owns.
	//
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1024
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespaces []string `json:"namespaces,omitempty"`

	// NamespaceSelector selects, by label, further namespaces this VPN owns. A namespace
	// owned by two VPNs (by name or by selector) is a Conflict on both. It may only use
	// label keys under sdncni.io/ (NamespaceLabelPrefix, by convention sdncni.io/vpn): the
	// admission policy shipped in deploy/policy lets only VPN administrators set those on
	// namespaces, so whoever may label a namespace cannot move it into or out of a VPN.
	//
	// +optional
	// +kubebuilder:validation:XValidation:rule="!has(self.matchLabels) || self.matchLabels.all(k, k.startsWith('sdncni.io/'))",message="namespaceSelector may only use label keys under sdncni.io/ (such as sdncni.io/vpn): only VPN administrators may set those on namespaces"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.key.startsWith('sdncni.io/'))",message="namespaceSelector may only use label keys under sdncni.io/ (such as sdncni.io/vpn): only VPN administrators may set those on namespaces"
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// MTU of pod interfaces. Left out, the controller derives it from the underlay and
	// the tunnel overhead and reports it in status.mtu.
	//
	// +optional
	// +kubebuilder:validation:Minimum=576
	// +kubebuilder:validation:Maximum=9000
	MTU *int32 `json:"mtu,omitempty"`

	// FastPath allows the eBPF fast path for same-node traffic inside this VPN.
	//
	// +optional
	// +kubebuilder:default=true
	FastPath *bool `json:"fastPath,omitempty"`

	// CrossNodeFastPath allows the cross-node fast path (the kernel's VXLAN, VNI = the
	// VPN id) for traffic between this VPN's pods on different nodes, where both nodes
	// run it (controller flag --cross-node-vxlan) and fastPath is on; off, that traffic
	// takes OVN's Geneve. Switching takes effect for running pods within seconds.
	// +optional
	// +kubebuilder:default=true
	CrossNodeFastPath *bool `json:"crossNodeFastPath,omitempty"`

	// NodeBlockSize is the prefix length of the blocks of the CIDR that nodes claim
	// (VPNBlock objects); a node claims another when one fills. At least the CIDR's prefix
	// length, at most 30 for IPv4 (126 for IPv6). Immutable: running pods hold addresses
	// from blocks of this size.
	//
	// +optional
	// +kubebuilder:default=26
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=128
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="nodeBlockSize is immutable: running pods hold addresses from blocks of this size"
	NodeBlockSize int32 `json:"nodeBlockSize,omitempty"`

	// SharedServices lists Services, as "namespace/name", that pods of every other VPN
	// may reach by ClusterIP and port (for example a metrics or license server). Only
	// Services in namespaces this VPN owns count; other entries are ignored. Nothing else
	// of this VPN becomes reachable: the nodes DNAT exactly these ClusterIPs and ports
	// to the Service's ready endpoints (docs/services.md). The cluster DNS Service is
	// shared without being listed (controller flag --dns-service).
	//
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=317
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z]([-a-z0-9]*[a-z0-9])?$`
	SharedServices []string `json:"sharedServices,omitempty"`
}

// VirtualPrivateNetworkStatus is what the controller observed and realised.
type VirtualPrivateNetworkStatus struct {
	// ObservedGeneration is the spec generation this status describes.
	//
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Conflict, Degraded (see the Condition* constants).
	//
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// VPNID is the VPN's number, unique in the cluster and never reused while the VPN
	// exists: the fast path keys its maps by it (so overlapping CIDRs of different VPNs
	// never meet). Assigned by the cluster role, which claims it first by creating the
	// VPNID object of that number (named by the id, naming this VPN); a VPN without one
	// takes no pods yet. The VPNID, not this field, says whose id it is: a value edited
	// here to another VPN's id is put back by the cluster role and refused by the nodes.
	//
	// +optional
	VPNID uint32 `json:"vpnID,omitempty"`

	// Pods counts the pods attached to this VPN.
	//
	// +optional
	Pods int32 `json:"pods"`

	// PodsOnOldVPN counts pods in namespaces this VPN now owns that are still attached to
	// the VPN their namespace belonged to when they started. They keep that attachment
	// until they are restarted.
	//
	// +optional
	PodsOnOldVPN int32 `json:"podsOnOldVPN,omitempty"`

	// Namespaces counts the namespaces this VPN owns without conflict (for the default
	// VPN: including those no other VPN claims).
	//
	// +optional
	Namespaces int32 `json:"namespaces,omitempty"`

	// MTU is the pod interface MTU in force (spec.mtu, or the controller's default).
	//
	// +optional
	MTU int32 `json:"mtu,omitempty"`

	// OVN names the OVN Northbound objects realising this VPN.
	//
	// +optional
	OVN *OVNStatus `json:"ovn,omitempty"`
}

// OVNStatus names the OVN Northbound rows that realise a VPN. Every row the controller
// creates for a VPN also carries the VPN's name in its external_ids.
type OVNStatus struct {
	// Router is the name of the VPN's Logical_Router.
	//
	// +optional
	Router string `json:"router,omitempty"`

	// Switch is the name of the VPN's pod Logical_Switch.
	//
	// +optional
	Switch string `json:"switch,omitempty"`
}

// VirtualPrivateNetwork is an isolated tenant network: its own address space and OVN
// topology, holding the pods of the namespaces it owns. Traffic between VPNs has no path.
// The name must be a DNS label (it names OVN rows and VPNBlocks).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=vpn,categories=sdncni
// +kubebuilder:printcolumn:name="CIDR",type=string,JSONPath=`.spec.cidr`
// +kubebuilder:printcolumn:name="Namespaces",type=string,JSONPath=`.spec.namespaces`
// +kubebuilder:printcolumn:name="Pods",type=integer,JSONPath=`.status.pods`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Selector",type=string,JSONPath=`.spec.namespaceSelector`,priority=1
// +kubebuilder:printcolumn:name="Block",type=integer,JSONPath=`.spec.nodeBlockSize`,priority=1
// +kubebuilder:printcolumn:name="MTU",type=integer,JSONPath=`.status.mtu`,priority=1
// +kubebuilder:printcolumn:name="Router",type=string,JSONPath=`.status.ovn.router`,priority=1
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label (at most 63 characters of a-z, 0-9 and '-')"
type VirtualPrivateNetwork struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec VirtualPrivateNetworkSpec `json:"spec"`

	// +optional
	Status VirtualPrivateNetworkStatus `json:"status,omitempty"`
}

// VirtualPrivateNetworkList is a list of VirtualPrivateNetworks.
//
// +kubebuilder:object:root=true
type VirtualPrivateNetworkList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VirtualPrivateNetwork `json:"items"`
}

func init() {
	SchemeBuilder.Register(&VirtualPrivateNetwork{}, &VirtualPrivateNetworkList{})
}

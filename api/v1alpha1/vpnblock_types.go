package v1alpha1

import (
	"net/netip"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// VPNBlockSpec is one node's claim on a block of a VPN's CIDR. All of it is immutable: a
// block is released by deleting the VPNBlock.
//
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a VPNBlock is immutable: delete it to release the block"
type VPNBlockSpec struct {
	// VPN is the name of the VirtualPrivateNetwork whose CIDR the block belongs to.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	VPN string `json:"vpn"`

	// CIDR is the block, in canonical form (network address, lower-case, compressed
	// IPv6), for example 10.1.0.64/26.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="isCIDR(self) && self == string(cidr(self).masked())",message="cidr must be a canonical network address such as 10.1.0.64/26"
	CIDR string `json:"cidr"`

	// Node is the name of the node that holds the block.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Node string `json:"node"`
}

// VPNBlock records that a node holds a block of a VPN's CIDR. Its name is derived from
// the VPN and the block (BlockName), so creating it is an atomic claim: of two nodes that
// try the same block, the API server lets exactly one create it and answers the other
// AlreadyExists. It is owned by its VPN (garbage-collected with it).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=vpnb,categories=sdncni
// +kubebuilder:selectablefield:JSONPath=`.spec.vpn`
// +kubebuilder:selectablefield:JSONPath=`.spec.node`
// +kubebuilder:printcolumn:name="VPN",type=string,JSONPath=`.spec.vpn`
// +kubebuilder:printcolumn:name="CIDR",type=string,JSONPath=`.spec.cidr`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.node`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="!isCIDR(self.spec.cidr) || self.metadata.name == self.spec.vpn + '.' + self.spec.cidr.replace('.', '-').replace(':', '-').replace('/', '-')",message="metadata.name must be <spec.vpn>.<spec.cidr with '.', ':' and '/' replaced by '-'> (see BlockName), so that one block has one name"
type VPNBlock struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec VPNBlockSpec `json:"spec"`
}

// VPNBlockList is a list of VPNBlocks.
//
// +kubebuilder:object:root=true
type VPNBlockList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VPNBlock `json:"items"`
}

// BlockName is the name of the VPNBlock for block of VPN vpn: the VPN's name, a dot, and
// the block's canonical text with '.', ':' and '/' replaced by '-'
// ("blue" and 10.1.0.64/26 → "blue.10-1-0-64-26"). The API server enforces it.
func BlockName(vpn string, block netip.Prefix) string {
	return vpn + "." + strings.NewReplacer(".", "-", ":", "-", "/", "-").Replace(block.Masked().String())
}

// NewVPNBlock returns the VPNBlock that claims block of vpn for node, named by BlockName.
func NewVPNBlock(vpn string, block netip.Prefix, node string) *VPNBlock {
	block = block.Masked()
	return &VPNBlock{
		TypeMeta:   metav1.TypeMeta{APIVersion: GroupVersion.String(), Kind: "VPNBlock"},
		ObjectMeta: metav1.ObjectMeta{Name: BlockName(vpn, block), Labels: map[string]string{LabelVPN: vpn, LabelNode: node}},
		Spec:       VPNBlockSpec{VPN: vpn, CIDR: block.String(), Node: node},
	}
}

func init() {
	SchemeBuilder.Register(&VPNBlock{}, &VPNBlockList{})
}

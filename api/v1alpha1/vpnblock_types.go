package v1alpha1

import (
	"errors"
	"fmt"
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

// ErrInvalidBlock is returned (wrapped) by CheckBlock.
var ErrInvalidBlock = errors.New("invalid vpn block")

// CheckBlock returns b's block if b is a block of v that a node may route: it names v,
// its labels agree with its spec, and its CIDR lies inside v's CIDR with v's node block
// size. The API server cannot check this (a VPNBlock is validated alone, and admission
// only ties spec.node to the requesting node), so whoever turns blocks into addresses or
// routes must: a block outside its VPN would steer another network's addresses, on the
// node or beyond, into this VPN. Otherwise it returns (wrapped) ErrInvalidBlock.
func CheckBlock(v *VirtualPrivateNetwork, b *VPNBlock) (netip.Prefix, error) {
	invalid := func(format string, args ...any) (netip.Prefix, error) {
		return netip.Prefix{}, fmt.Errorf("%w %s: %s", ErrInvalidBlock, b.Name, fmt.Sprintf(format, args...))
	}
	if b.Spec.VPN != v.Name || b.Labels[LabelVPN] != v.Name {
		return invalid("spec.vpn %q, label %s %q: not vpn %s", b.Spec.VPN, LabelVPN, b.Labels[LabelVPN], v.Name)
	}
	if b.Labels[LabelNode] != b.Spec.Node {
		return invalid("label %s %q is not spec.node %q", LabelNode, b.Labels[LabelNode], b.Spec.Node)
	}
	p, err := netip.ParsePrefix(b.Spec.CIDR)
	if err != nil || p != p.Masked() {
		return invalid("cidr %q is not a network address", b.Spec.CIDR)
	}
	cidr, err := netip.ParsePrefix(v.Spec.CIDR)
	if err != nil {
		return invalid("vpn cidr %q: %v", v.Spec.CIDR, err)
	}
	size := int(v.Spec.NodeBlockSize)
	if size == 0 {
		size = DefaultNodeBlockSize
	}
	if p.Bits() != size {
		return invalid("%s is not a /%d, the node block size of vpn %s", p, size, v.Name)
	}
	if p.Addr().Is4() != cidr.Addr().Is4() || p.Bits() < cidr.Bits() || !cidr.Masked().Contains(p.Addr()) {
		return invalid("%s is outside vpn %s's cidr %s", p, v.Name, cidr.Masked())
	}
	return p, nil
}

func init() {
	SchemeBuilder.Register(&VPNBlock{}, &VPNBlockList{})
}

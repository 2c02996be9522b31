package v1alpha1

import (
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxVPNID is the largest VPN id: the node gateway carries the id in a 16-bit packet
// mark and routing table number (pkg/gateway), so ids are 1..MaxVPNID.
const MaxVPNID = 0xffff

// VPNIDSpec names the VPN that holds an id. All of it is immutable: an id is released by
// deleting its VPNID.
//
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a VPNID is immutable: delete it to release the id"
type VPNIDSpec struct {
	// ID is the id claimed.
	//
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	ID int32 `json:"id"`

	// VPN is the name of the VirtualPrivateNetwork that holds the id.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	VPN string `json:"vpn"`

	// VPNUID is that VirtualPrivateNetwork's metadata.uid: a VPN deleted and created
	// again under the same name is another VPN and does not inherit the id.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	VPNUID string `json:"vpnUID"`
}

// VPNID records that a VPN holds a numeric id (status.vpnID of the VPN, the fast path's
// VPN key). Its name is the id in decimal (IDName), so creating it is an atomic claim:
// of two writers that try the same id, the API server lets exactly one create it and
// answers the other AlreadyExists, whatever their caches said. It is owned by its VPN
// (garbage-collected with it) and deleted by the cluster role when the VPN is finalized.
// A VPN's status.vpnID counts only while the VPNID of that id names the VPN.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=vpnid,categories=sdncni
// +kubebuilder:printcolumn:name="VPN",type=string,JSONPath=`.spec.vpn`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name == string(self.spec.id)",message="metadata.name must be spec.id in decimal (see IDName), so that one id has one name"
type VPNID struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec VPNIDSpec `json:"spec"`
}

// VPNIDList is a list of VPNIDs.
//
// +kubebuilder:object:root=true
type VPNIDList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VPNID `json:"items"`
}

// IDName is the name of the VPNID of id: the id in decimal (7 → "7"). The API server
// enforces it.
func IDName(id uint32) string { return strconv.FormatUint(uint64(id), 10) }

// NewVPNID returns the VPNID that claims id for v, named by IDName, labelled with the
// VPN's name and owned by v.
func NewVPNID(id uint32, v *VirtualPrivateNetwork) *VPNID {
	return &VPNID{
		TypeMeta: metav1.TypeMeta{APIVersion: GroupVersion.String(), Kind: "VPNID"},
		ObjectMeta: metav1.ObjectMeta{Name: IDName(id), Labels: map[string]string{LabelVPN: v.Name},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: GroupVersion.String(), Kind: "VirtualPrivateNetwork",
				Name: v.Name, UID: v.UID}}},
		Spec: VPNIDSpec{ID: int32(id), VPN: v.Name, VPNUID: string(v.UID)},
	}
}

// Holds reports whether the claim names v (by name and UID).
func (c *VPNID) Holds(v *VirtualPrivateNetwork) bool {
	return c.Spec.VPN == v.Name && c.Spec.VPNUID == string(v.UID)
}

func init() {
	SchemeBuilder.Register(&VPNID{}, &VPNIDList{})
}

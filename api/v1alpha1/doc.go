// Package v1alpha1 is the sdncni.io/v1alpha1 API: VirtualPrivateNetwork, a tenant network
// that owns namespaces, and VPNBlock, one node's claim on a block of a VPN's CIDR.
//
// The types carry kubebuilder markers; controller-gen (see gen.go) derives from them the
// deepcopy functions, the CRD manifests in deploy/crds and the controller's RBAC in
// deploy/rbac. docs/api.md explains the design.
//
// +kubebuilder:object:generate=true
// +groupName=sdncni.io
package v1alpha1

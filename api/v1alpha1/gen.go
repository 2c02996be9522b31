package v1alpha1

// One controller-gen run writes zz_generated.deepcopy.go here, the CRDs to deploy/crds and
// the ClusterRole (and leader-election Role) from the markers in rbac.go to deploy/rbac.
//go:generate go tool controller-gen object crd rbac:roleName=sdncni-controller paths=. output:crd:dir=../../deploy/crds output:rbac:dir=../../deploy/rbac

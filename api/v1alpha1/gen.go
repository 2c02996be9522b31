package v1alpha1

// One controller-gen run writes zz_generated.deepcopy.go here and the CRDs to deploy/crds;
// one per role writes its ClusterRole from the markers in rbac/<role> to
// deploy/rbac/<role>/role.yaml (the cluster role's also holds the leader-election Role).
// The last copies the ClusterNetworkPolicy CRD from sigs.k8s.io/network-policy-api (the
// version go.mod requires) into deploy/crds, so the API server of tests and clusters has it.
//go:generate go tool controller-gen object crd paths=. output:crd:dir=../../deploy/crds
//go:generate go tool controller-gen rbac:roleName=sdncni-node paths=./rbac/node output:rbac:dir=../../deploy/rbac/node
//go:generate go tool controller-gen rbac:roleName=sdncni-cluster paths=./rbac/cluster output:rbac:dir=../../deploy/rbac/cluster
//go:generate ../../hack/networkpolicy-api-crd.sh ../../deploy/crds

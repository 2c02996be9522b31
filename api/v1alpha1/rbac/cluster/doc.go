// Package cluster holds the permissions of sdncni-controller --role=cluster, the
// ServiceAccount sdncni-cluster of the Deployment sdncni-cluster. controller-gen turns
// these markers into deploy/rbac/cluster/role.yaml (api/v1alpha1/gen.go): the ClusterRole
// and the leader-election Role in sdncni-system. docs/deploy.md ("RBAC") says why each
// verb is needed.
package cluster

// +kubebuilder:rbac:groups=sdncni.io,resources=virtualprivatenetworks,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=sdncni.io,resources=virtualprivatenetworks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=sdncni.io,resources=vpnblocks,verbs=deletecollection
// +kubebuilder:rbac:groups=sdncni.io,resources=vpnids,verbs=get;list;watch;create;delete;deletecollection
// +kubebuilder:rbac:groups="",resources=namespaces;services,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=sdncni-system,resources=leases,verbs=get;create;update

package v1alpha1

// The permissions of sdncni-controller (both roles run from one binary under one service
// account). controller-gen turns these markers into deploy/rbac/role.yaml; docs/deploy.md
// says why each verb is needed. Keep them least-privilege.
//
// +kubebuilder:rbac:groups=sdncni.io,resources=virtualprivatenetworks,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=sdncni.io,resources=virtualprivatenetworks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=sdncni.io,resources=virtualprivatenetworks/finalizers,verbs=update
// +kubebuilder:rbac:groups=sdncni.io,resources=vpnblocks,verbs=get;list;watch;create;delete;deletecollection
// +kubebuilder:rbac:groups=sdncni.io,resources=vpnids,verbs=get;list;watch;create;delete;deletecollection
// +kubebuilder:rbac:groups="",resources=namespaces;pods;nodes;services,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=sdncni-system,resources=leases,verbs=get;create;update

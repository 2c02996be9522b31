// Package cluster holds the permissions of sdncni-controller --role=cluster, the
// ServiceAccount sdncni-cluster of the Deployment sdncni-cluster. controller-gen turns
// these markers into deploy/rbac/cluster/role.yaml (api/v1alpha1/gen.go): the ClusterRole
// and the leader-election Role in sdncni-system. docs/deploy.md ("RBAC") says why each
// verb is needed. It signs the nodes' OVN client certificates (signer sdncni.io/ovn-node
// only) with the CA key of the Secret ovn-ca, which only it and the pki Job may read.
package cluster

// +kubebuilder:rbac:groups=sdncni.io,resources=virtualprivatenetworks,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=sdncni.io,resources=virtualprivatenetworks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=sdncni.io,resources=vpnblocks,verbs=get;list;watch;deletecollection
// +kubebuilder:rbac:groups=sdncni.io,resources=vpnids,verbs=get;list;watch;create;delete;deletecollection
// +kubebuilder:rbac:groups="",resources=namespaces;pods;services,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy.networking.k8s.io,resources=clusternetworkpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy.networking.k8s.io,resources=clusternetworkpolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=sdncni-system,resources=leases,verbs=get;create;update
// +kubebuilder:rbac:groups=certificates.k8s.io,resources=certificatesigningrequests,verbs=get;list;watch
// +kubebuilder:rbac:groups=certificates.k8s.io,resources=certificatesigningrequests/approval;certificatesigningrequests/status,verbs=update
// +kubebuilder:rbac:groups=certificates.k8s.io,resources=signers,resourceNames=sdncni.io/ovn-node,verbs=approve;sign
// +kubebuilder:rbac:groups="",namespace=sdncni-system,resources=secrets,resourceNames=ovn-ca,verbs=get

// Package node holds the permissions of sdncni-controller --role=node, the ServiceAccount
// sdncni-node of the DaemonSet on every node. controller-gen turns these markers into
// deploy/rbac/node/role.yaml (api/v1alpha1/gen.go); docs/deploy.md ("RBAC") says why each
// verb is needed. A node's credentials are one node's compromise away: it reads what it
// serves pods from and writes only its own block claims — creates them, and deletes them
// to give an empty block back (docs/ipam.md; the ValidatingAdmissionPolicy
// sdncni-node-blocks ties both to the node in its token) — and events. No VPN, VPNID or
// lease writes, no deletecollection. It asks for its own OVN client certificate with a
// CertificateSigningRequest (create; get to read the answer, which holds no secret): the
// cluster role signs only a request whose CN is the node of the requester's token.
package node

// +kubebuilder:rbac:groups=sdncni.io,resources=virtualprivatenetworks;vpnids,verbs=get;list;watch
// +kubebuilder:rbac:groups=sdncni.io,resources=vpnblocks,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=namespaces;pods;nodes;services,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy.networking.k8s.io,resources=clusternetworkpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=certificates.k8s.io,resources=certificatesigningrequests,verbs=create;get

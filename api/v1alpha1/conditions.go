package v1alpha1

// Condition types of a VirtualPrivateNetwork.
const (
	// ConditionReady is True when the VPN's OVN topology is realised and it has no
	// conflict that stops it from serving pods.
	ConditionReady = "Ready"
	// ConditionConflict is True when a namespace this VPN claims is also claimed by
	// another VPN. Both VPNs carry it; the namespace keeps its current VPN for new pods
	// until the conflict is resolved (never a silent pick).
	ConditionConflict = "Conflict"
	// ConditionDegraded is True when the VPN works only in part (its CIDR has no free
	// block for a node, some OVN rows could not be written, …).
	ConditionDegraded = "Degraded"
	// ConditionServiceLimitReached is True when the VPN has more Services than the
	// cluster role realises for one VPN (the newest get no load balancer) or a Service
	// with more backends than one Service may have (it keeps part of them); the message
	// names the bound, the counts and the Services (issue 12, item 7).
	ConditionServiceLimitReached = "ServiceLimitReached"
	// ConditionBlockLimitReached is True when the VPN holds as many address blocks as
	// one VPN may: a node that needs one more fails the pod's ADD (CNI code 11).
	ConditionBlockLimitReached = "BlockLimitReached"
)

// Condition reasons (CamelCase, as metav1.Condition requires).
const (
	ReasonRealized          = "Realized"
	ReasonOVNError          = "OVNError"
	ReasonNamespaceConflict = "NamespaceConflict"
	ReasonNoConflict        = "NoConflict"
	ReasonUnsupportedFamily = "UnsupportedFamily"
	ReasonBlocksExhausted   = "BlocksExhausted"
	ReasonDeleting          = "Deleting"
	ReasonAsExpected        = "AsExpected"
	// ReasonNoID: the VPN could not be given an id (all are claimed, or the API failed).
	ReasonNoID = "NoID"
	// ReasonIDCorrected (event): status.vpnID named an id whose VPNID claim is another
	// VPN's; the cluster role put back the VPN's own id.
	ReasonIDCorrected = "IDCorrected"
	// ReasonIDConflict (event, node log): a node saw two VPNs carry one id and serves
	// only the one the id's VPNID claim names (or, not seen yet, the older).
	ReasonIDConflict = "IDConflict"
	// Reasons of the limit conditions, and of the Warning events on the VPN and on the
	// Service (ReasonNotRealized, ReasonBackendsCut) that go with them.
	ReasonWithinLimits      = "WithinLimits"
	ReasonServicesOverLimit = "ServicesOverLimit"
	ReasonBackendsOverLimit = "BackendsOverLimit"
	ReasonBlocksAtLimit     = "BlocksAtLimit"
	ReasonNotRealized       = "NotRealized"
	ReasonBackendsCut       = "BackendsCut"
)

// Finalizer holds a VPN until the controller has removed every OVN row it owned.
const Finalizer = "sdncni.io/ovn-cleanup"

// Labels the controller puts on objects it creates (VPNBlocks, VPNIDs), for label
// selectors. LabelVPN is also the conventional key for namespaces a VPN selects.
const (
	LabelVPN  = "sdncni.io/vpn"
	LabelNode = "sdncni.io/node"
)

// AnnotationUnderlayIP on a Node names the IPv4 address other nodes reach its
// cross-node fast path at (its VXLAN endpoint), where that is not the node's first
// InternalIP: set by whoever lays out the node's links (docs/datapath.md, "Cross-node
// fast path").
const AnnotationUnderlayIP = "sdncni.io/underlay-ip"

// NamespaceLabelPrefix: a VPN's namespaceSelector may use only label keys with this
// prefix, and only VPN administrators may set them on namespaces
// (deploy/policy/namespace-vpn-labels.yaml). Membership of a VPN is the admins' call.
const NamespaceLabelPrefix = "sdncni.io/"

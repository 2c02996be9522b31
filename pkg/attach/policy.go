package attach

import "context"

// PodPolicy tells whether a pod may use the fast path as far as its network policy goes:
// a pod a NetworkPolicy isolates keeps all of its traffic on OVS, where the policy's
// stateful ACLs are (pkg/netpol). The Manager asks it wherever it writes a pod's
// datapath entries (ADD, CHECK, restart reconciliation), so no moment exists where such a
// pod is on the fast path.
type PodPolicy interface {
	FastPathAllowed(ctx context.Context, podNamespace, podName string) bool
}

// podFastPath is what the pod's datapath entries say about the fast path: on unless a
// policy keeps the pod off it.
func (m *Manager) podFastPath(ctx context.Context, podNamespace, podName string) bool {
	return m.deps.Policy == nil || m.deps.Policy.FastPathAllowed(ctx, podNamespace, podName)
}

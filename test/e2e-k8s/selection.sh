# shellcheck shell=bash
# selection.sh — which upstream [sig-network] e2e specs `make e2e-k8s` runs against sdncni,
# as Ginkgo focus/skip regexes over the full spec text. Sourced by hack/e2e-k8s.sh.
# A spec runs when it matches a focus and no skip. Every skip says why; docs/e2e-k8s.md
# carries the same table (`hack/e2e-k8s.sh skips` prints it) and the dry-run counts.
# Checked against k8s.io/kubernetes v1.37.2 (`hack/e2e-k8s.sh list` shows the result).

FOCUS=() SKIP=() SKIP_WHY=() NETPOL_FOCUS=() NETPOL_SKIP=() NETPOL_SKIP_WHY=()
focus() { FOCUS+=("$1"); }
skip() { SKIP+=("$1") SKIP_WHY+=("$2"); }
netpol_focus() { NETPOL_FOCUS+=("$1"); }
netpol_skip() { NETPOL_SKIP+=("$1") NETPOL_SKIP_WHY+=("$2"); }

# --- what runs -------------------------------------------------------------------------
# Pod to pod (on one node and across the two) and node to pod, http and udp.
focus '\[sig-network\] Networking Granular Checks: Pods '
# The Services suite: ClusterIP load balancing, endpoints, ExternalName, API operations.
focus '\[sig-network\] Services '
# The ClusterIP-only granular Service checks (the others also dial a NodePort).
focus '\[sig-network\] Networking Granular Checks: Services should (update endpoints|be able to handle large requests): '
# Cluster DNS (a shared Service, reached from every VPN), also from host-network pods.
focus '\[sig-network\] DNS'
# Every other sig-network conformance spec (API server, Endpoints, EndpointSlices, Ingress
# and IngressClass API, Proxy, ServiceCIDR/IPAddress API, endpoints latency…).
focus '\[sig-network\] .*\[Conformance\]'
# Not asked for by name but squarely a CNI's job: pod-to-pod without SNAT, connections to
# and from terminating pods, a blue/green switch behind a ClusterIP, and UDP conntrack
# entries that must follow a ClusterIP's backends.
focus '\[sig-network\] NoSNAT '
focus '\[sig-network\] Connectivity Pod Lifecycle '
focus '\[sig-network\] Conntrack should be able to preserve UDP traffic when (server pod cycles for a ClusterIP service|initial unready endpoints get ready)$'

# --- what does not, and why ------------------------------------------------------------
skip 'NodePort service|type=NodePort|to NodePort|NodePort collisions|NodePort out-of-range|NodePorts on delete|nodePort|HealthCheckNodePort|health check node port|PublishNotReadyAddresses is (true|false)' \
	'NodePort: not implemented (sdncni has no kube-proxy and no NodePort yet). Includes the specs that dial a NodePort besides the ClusterIP (the two PublishNotReadyAddresses ones) and the three allocator-only specs (collisions, out-of-range, release on delete), which test only the API server. "change the type from NodePort to ExternalName" stays: it checks only DNS after the change.'
skip 'LoadBalancers|\[Feature:LoadBalancer\]' \
	'type=LoadBalancer: no cloud provider and no load-balancer implementation. ("serve endpoints on same port and different protocol for internal traffic on Type LoadBalancer" stays: it only dials the ClusterIP.)'
skip '[Ss]ession affinity|sessionAffinity' \
	'Session affinity (ClientIP): not implemented; the OVN load balancers get no affinity_timeout.'
skip '[Tt]rafficPolicy' \
	'internalTrafficPolicy/externalTrafficPolicy=Local: not implemented (every ready endpoint of the VPN is a backend; see docs/services.md, Limits).'
skip 'fallback to (local )?terminating endpoints' \
	'Falling back to serving-but-terminating endpoints when no endpoint is ready: not implemented; the load balancers carry ready endpoints only.'
skip 'should be rejected (when no endpoints exist|for evicted pods)' \
	'A Service with no ready endpoint drops (empty OVN backend list) instead of rejecting with ICMP/RST, which these specs expect within a short timeout.'
skip 'ExternalIP' \
	'spec.externalIPs: not implemented (a kube-proxy feature).'
skip 'service\.kubernetes\.io/(service-proxy-name|headless)' \
	'The service.kubernetes.io/service-proxy-name and service.kubernetes.io/headless labels are not honoured: sdncni programs every Service with a ClusterIP.'
skip 'should be able to up and down services|should work after the service has been recreated' \
	'Also check the ClusterIP from a host-network pod: the node reaches shared Services only, not the ClusterIPs of other Services (docs/services.md, Limits).'
skip '\[sig-network\] DNS configMap ' \
	'Edit the ConfigMap of the kube-dns add-on (stub domains, upstreams) and need an upstream nameserver; [Serial] [Slow]. The cluster runs CoreDNS.'
skip 'SCTP|sctp' \
	'SCTP: no sctp kernel module on this machine; sdncni load-balances TCP and UDP only.'
skip '\[Feature:|\[Experimental\]' \
	'Optional features the cluster does not have: IPv6/dual stack (IPv4-only cluster), Internet access (Networking-IPv4/IPv6/DNS), performance suites, kube-proxy features (NFAcct, LocalhostNodePorts).'
skip '\[Provider:' \
	'Provider-specific (GCE) variants; the cluster is local.'
skip '\[Disruptive\]' \
	'Restart kube-proxy or the API server through provider or ssh hooks the local cluster does not have, and would disturb the shared cluster.'
skip '\[Flaky\]' \
	'Marked flaky upstream.'

# --- the Netpol suite (--netpol) -------------------------------------------------------
# The acceptance test of sdncni's NetworkPolicy (docs/policy.md): every selected spec
# is expected to pass, with the fast path on and off.
netpol_focus '\[sig-network\] Netpol'
# Every Netpol spec carries [Feature:NetworkPolicy], so no blanket [Feature:…] skip here.
# The two "even if the plugin doesn't support SCTP" specs stay: their traffic is TCP.
netpol_skip '\[Feature:SCTPConnectivity\]' \
	'SCTP traffic: no sctp kernel module on this machine; sdncni carries TCP and UDP only.'
netpol_skip '\[Flaky\]' \
	'Marked flaky upstream.'

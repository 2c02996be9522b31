// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/*
 * sdncni fast path. Three tc/tcx ingress programs:
 *
 *   sdncni_from_pod  on the host side of a pod's veth: same-node, same-VPN
 *                    IPv4 from a verified source goes straight into the
 *                    destination pod (bpf_redirect_peer), unless it comes
 *                    from or goes to a Service endpoint's port or a
 *                    NetworkPolicy does not (yet) allow it here; everything
 *                    else is handed to OVS by transmitting it on the pod's
 *                    OVS internal port (bpf_redirect to its egress).
 *                    Same-VPN IPv4 to a pod of another node running the
 *                    cross-node path (sdncni_remote) is encapsulated in the
 *                    kernel's VXLAN instead, VNI = VPN (bpf_skb_set_tunnel_key).
 *   sdncni_from_ovs  on the pod's OVS internal port: what OVS sends to the
 *                    pod goes straight into the pod (bpf_redirect_peer).
 *   sdncni_from_vxlan on the node's collect-metadata VXLAN device: the VNI is
 *                    the VPN; a packet from an address of the sending node's
 *                    blocks of that VPN goes into the pod of that VPN it is
 *                    for, or, when OVS must see it here (or no such pod is
 *                    here), back to the sending node, which hands it to OVS on
 *                    its pod's port; anything else is dropped and counted.
 *
 * No program ever returns TC_ACT_OK: pod traffic never enters the node's own
 * stack.
 */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <stddef.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "datapath.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* TCP header flag bits (byte 13 of the header). */
#define TCPF_SYN_BIT 0x02
#define TCPF_ACK_BIT 0x10

#define MAX_ENDPOINTS 4096
#define MAX_VPNS 1024
#define MAX_SERVICE_ENDPOINTS 65536
#define MAX_POLICY_PAIRS 65536
#define MAX_CONNECTIONS 65536
#define MAX_REMOTE_BLOCKS 65536
#define VNI_MAX 0xffffff
#define XNODE_VPN_MAX (XNODE_VNI_BOUNCE - 1)
#define MAX_PEERS 4096
#define MAX_SENT_BACK 16384
#define NSEC_PER_SEC 1000000000ULL
#define CT_TCP_TIMEOUT (6 * 3600 * NSEC_PER_SEC) /* idle */
#define CT_UDP_TIMEOUT (120 * NSEC_PER_SEC)
#define CT_REFRESH NSEC_PER_SEC
/* A flow sent back keeps going to OVS on its sender until it idles this long. */
#define XBACK_IDLE (10 * NSEC_PER_SEC)
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENDPOINTS * 2);
	__type(key, __u32); /* ifindex */
	__type(value, struct endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sdncni_ep SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENDPOINTS);
	__type(key, struct dst_key);
	__type(value, struct dst);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sdncni_dst SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sdncni_cfg SEC(".maps");

/* Presence of a VPN id switches the fast path off for that VPN. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_VPNS);
	__type(key, __u32);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sdncni_vpn_off SEC(".maps");

/* Service endpoints of every VPN (struct svc_key); filled by the node role. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SERVICE_ENDPOINTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct svc_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sdncni_svc SEC(".maps");

/* What policy allows between pods of this node (struct pol_key); the node role's. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_POLICY_PAIRS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pol_key);
	__type(value, struct pol);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sdncni_pol SEC(".maps");

/* Connections the fast path admitted between governed pods, so their replies pass. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_CONNECTIONS);
	__type(key, struct ct_key);
	__type(value, struct ct);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sdncni_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTERS_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sdncni_cnt SEC(".maps");

/* Packets handed to OVS because a NetworkPolicy governs them, by sender's VPN. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_VPNS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sdncni_pol_ovs SEC(".maps");

/* Other nodes' address blocks per VPN (struct remote_key): the cross-node path. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_REMOTE_BLOCKS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct remote_key);
	__type(value, struct remote);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sdncni_remote SEC(".maps");

/*
 * Flows of this node's pods that a receiving node sent back (it must hand them to
 * OVS, and only their sender can), keyed as sdncni_ct: the next packets go to OVS
 * here at once instead of crossing the underlay three times. Value: when the flow
 * was last sent back or seen since (refreshed at most once a second).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_SENT_BACK);
	__type(key, struct ct_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sdncni_xback SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xnode);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sdncni_xnode SEC(".maps");

/* Peers that answered our probes: underlay IPv4 -> bpf_ktime_get_ns() of the answer. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PEERS);
	__type(key, __be32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sdncni_xpeer SEC(".maps");

/* Referenced so bpf2go emits Go declarations for them (-type). */
const enum reason __reason __attribute__((unused));
const enum role __role __attribute__((unused));
const enum ep_flag __ep_flag __attribute__((unused));
const enum ct_flag __ct_flag __attribute__((unused));

static __always_inline void count(__u32 reason)
{
	__u64 *c = bpf_map_lookup_elem(&sdncni_cnt, &reason);

	if (c)
		*c += 1; /* per-CPU: no atomics needed */
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return *(const __u32 *)a == *(const __u32 *)b &&
	       *(const __u16 *)(a + 4) == *(const __u16 *)(b + 4);
}

static __always_inline int to_ovs(const struct endpoint *src, __u32 reason)
{
	count(reason);
	return bpf_redirect(src->peer_ifindex, 0);
}

/*
 * to_ovs_policy hands a packet that a policy governs to OVS and counts it for the
 * sender's VPN too. A VPN new to the map is inserted for this CPU; should two CPUs
 * insert it at once, the loser increments the winner's entry.
 */
static __always_inline int to_ovs_policy(const struct endpoint *src)
{
	__u32 vpn = src->vpn;
	__u64 *c = bpf_map_lookup_elem(&sdncni_pol_ovs, &vpn);

	if (!c) {
		__u64 one = 1;

		if (bpf_map_update_elem(&sdncni_pol_ovs, &vpn, &one, BPF_NOEXIST) == 0)
			return to_ovs(src, REASON_TO_OVS_POLICY);
		c = bpf_map_lookup_elem(&sdncni_pol_ovs, &vpn);
	}
	if (c)
		*c += 1; /* per-CPU: no atomics needed */
	return to_ovs(src, REASON_TO_OVS_POLICY);
}

static __always_inline int service_endpoint(__u32 vpn, __be32 ip, __be16 port, __u8 proto)
{
	struct svc_key k = { .vpn = vpn, .ip = ip, .port = port, .proto = proto };

	return bpf_map_lookup_elem(&sdncni_svc, &k) != NULL;
}

static __always_inline int fastpath_on(__u32 vpn)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&sdncni_cfg, &zero);

	if (!cfg || !cfg->fastpath)
		return 0;
	return bpf_map_lookup_elem(&sdncni_vpn_off, &vpn) == NULL;
}

static __always_inline __u64 ct_timeout(__u8 proto)
{
	return proto == IPPROTO_TCP ? CT_TCP_TIMEOUT : CT_UDP_TIMEOUT;
}

/*
 * ct_reply: the packet (k, from the pod on ifindex `from` to the one on `to`) is a
 * reply of a live connection the fast path admitted the other way: 1, and refreshes
 * it; -1 when that connection is blocked (not refreshed: it idles out); 0 otherwise.
 */
static __always_inline int ct_reply(const struct ct_key *k, __u32 from, __u32 to, __u64 now)
{
	struct ct_key r = { .vpn = k->vpn, .saddr = k->daddr, .daddr = k->saddr,
			    .sport = k->dport, .dport = k->sport, .proto = k->proto };
	struct ct *c = bpf_map_lookup_elem(&sdncni_ct, &r);

	if (!c || c->src_ifindex != to || c->dst_ifindex != from ||
	    now - c->last_seen > ct_timeout(k->proto))
		return 0;
	if (c->flags & CT_BLOCKED)
		return -1;
	if (now - c->last_seen > CT_REFRESH)
		c->last_seen = now;
	return 1;
}

/* ct_admit records (or refreshes) connection k, admitted from `from` to `to`. */
static __always_inline void ct_admit(const struct ct_key *k, __u32 from, __u32 to, __u64 now)
{
	struct ct *c = bpf_map_lookup_elem(&sdncni_ct, k);

	if (c && c->src_ifindex == from && c->dst_ifindex == to) {
		if (now - c->last_seen > CT_REFRESH)
			c->last_seen = now;
		return;
	}
	struct ct v = { .last_seen = now, .src_ifindex = from, .dst_ifindex = to };

	bpf_map_update_elem(&sdncni_ct, k, &v, BPF_ANY);
}

/* policy_allows: the pair's sdncni_pol entry admits proto to dport (network order). */
static __always_inline int policy_allows(const struct ct_key *k, __u32 from, __u32 to)
{
	struct pol_key pk = { .vpn = k->vpn, .src = k->saddr, .dst = k->daddr };
	struct pol *p = bpf_map_lookup_elem(&sdncni_pol, &pk);

	if (!p || p->src_ifindex != from || p->dst_ifindex != to)
		return 0;
	if (p->all)
		return 1;
	__u16 port = bpf_ntohs(k->dport);

#pragma unroll
	for (int i = 0; i < POL_RANGES; i++) {
		if (i >= p->n)
			break;
		if (p->ranges[i].proto == k->proto && port >= p->ranges[i].lo && port <= p->ranges[i].hi)
			return 1;
	}
	return 0;
}

/*
 * pod_mac: mac is the MAC sdncni gives the pod with address ip, 0a:58 followed by
 * the address (pkg/attach.MACFor). The cross-node path knows no remote pod, but it
 * knows its MAC: a frame to another node's pod must be addressed to it.
 */
static __always_inline int pod_mac(const __u8 *mac, __be32 ip)
{
	const __u8 *b = (const __u8 *)&ip;

	return mac[0] == 0x0a && mac[1] == 0x58 && mac[2] == b[0] && mac[3] == b[1] &&
	       mac[4] == b[2] && mac[5] == b[3];
}

static __always_inline struct xnode *xnode_cfg(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sdncni_xnode, &zero);
}

/* remote_node: the underlay address of the node holding ip in vpn, or 0. */
static __always_inline __be32 remote_node(__u32 vpn, __be32 ip)
{
	struct remote_key k = { .prefixlen = 64, .vpn = vpn, .ip = ip };
	struct remote *r = bpf_map_lookup_elem(&sdncni_remote, &k);

	return r ? r->underlay : 0;
}

/*
 * xnode_tx: a packet from src, past every source check, to an address no pod of
 * this node holds in src's VPN. When the address is in another node's block of
 * the VPN and the cross-node path is on, it is encapsulated in VXLAN with VNI =
 * VPN and sent to that node; otherwise it goes to OVS (Geneve) as before. A
 * governed sender and a Service endpoint's port go to OVS too: the receiving node
 * could not hand them to OVS.
 */
static __always_inline int xnode_tx(struct __sk_buff *skb, const struct endpoint *src,
				    __be32 saddr, __be32 daddr, int dmac_ok, __u8 proto, __u32 l4off)
{
	struct xnode *x = xnode_cfg();

	if (!x || !x->on || !x->vxlan_ifindex || src->vpn == 0 || src->vpn > XNODE_VPN_MAX)
		return to_ovs(src, REASON_TO_OVS_CROSS_VPN_OR_UNKNOWN_DST);
	__be32 node = remote_node(src->vpn, daddr);

	if (!node || node == x->local)
		return to_ovs(src, REASON_TO_OVS_CROSS_VPN_OR_UNKNOWN_DST);
	if (!dmac_ok)
		return to_ovs(src, REASON_TO_OVS_DST_MAC_MISMATCH);
	if (src->flags & (EP_POLICY_IN | EP_POLICY_EG))
		return to_ovs_policy(src);
	struct ct_key ck = { .vpn = src->vpn, .saddr = saddr, .daddr = daddr, .proto = proto };

	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		if (bpf_skb_load_bytes(skb, l4off, &ck.sport, sizeof(ck.sport) + sizeof(ck.dport)))
			return to_ovs(src, REASON_TO_OVS_MALFORMED);
		if (service_endpoint(src->vpn, saddr, ck.sport, proto))
			return to_ovs(src, REASON_TO_OVS_SERVICE);
	}
	__u64 *back = bpf_map_lookup_elem(&sdncni_xback, &ck);

	if (back) {
		__u64 now = bpf_ktime_get_ns();
		__u64 last = *back;

		if (now - last < XBACK_IDLE) {
			if (now - last > CT_REFRESH)
				*back = now;
			return to_ovs(src, REASON_TO_OVS_XNODE_SENT_BACK);
		}
	}

	struct bpf_tunnel_key key = {};

	key.tunnel_id = src->vpn;
	key.remote_ipv4 = bpf_ntohl(node);
	key.tunnel_ttl = 64;
	if (bpf_skb_set_tunnel_key(skb, &key, offsetof(struct bpf_tunnel_key, local_ipv4),
				   BPF_F_ZERO_CSUM_TX))
		return to_ovs(src, REASON_TO_OVS_CROSS_VPN_OR_UNKNOWN_DST);
	count(REASON_XNODE_TX);
	return bpf_redirect(x->vxlan_ifindex, 0);
}

SEC("tc")
int sdncni_from_pod(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint *src = bpf_map_lookup_elem(&sdncni_ep, &ifindex);

	if (!src) {
		count(REASON_DROP_UNKNOWN_IFINDEX);
		return TC_ACT_SHOT;
	}
	if (src->role != ROLE_POD) {
		count(REASON_DROP_WRONG_ROLE);
		return TC_ACT_SHOT;
	}
	if (skb->vlan_present)
		return to_ovs(src, REASON_TO_OVS_VLAN);

	const __u32 hdrs = sizeof(struct ethhdr) + sizeof(struct iphdr);
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (data + hdrs > data_end) {
		/* Headers may sit in a non-linear part: pull them in once. */
		if (skb->len < hdrs || bpf_skb_pull_data(skb, hdrs))
			goto short_frame;
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		if (data + hdrs > data_end)
			goto short_frame;
	}

	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);

	if (eth->h_proto == bpf_htons(ETH_P_8021Q) ||
	    eth->h_proto == bpf_htons(ETH_P_8021AD))
		return to_ovs(src, REASON_TO_OVS_VLAN);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return to_ovs(src, REASON_TO_OVS_NOT_IPV4);
	if (ip->version != 4 || ip->ihl < 5)
		return to_ovs(src, REASON_TO_OVS_MALFORMED);
	if (!mac_eq(eth->h_source, src->mac) || ip->saddr != src->ip)
		return to_ovs(src, REASON_TO_OVS_SPOOFED);
	if (eth->h_dest[0] & 1)
		return to_ovs(src, REASON_TO_OVS_NOT_UNICAST);
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return to_ovs(src, REASON_TO_OVS_FRAGMENT);
	if (!(src->flags & EP_FASTPATH) || !fastpath_on(src->vpn))
		return to_ovs(src, REASON_TO_OVS_FASTPATH_OFF);

	struct dst_key key = { .vpn = src->vpn, .ip = ip->daddr };
	struct dst *dst = bpf_map_lookup_elem(&sdncni_dst, &key);

	if (!dst)
		return xnode_tx(skb, src, ip->saddr, ip->daddr, pod_mac(eth->h_dest, ip->daddr),
				ip->protocol, sizeof(*eth) + ip->ihl * 4);
	if (!mac_eq(eth->h_dest, dst->mac))
		return to_ovs(src, REASON_TO_OVS_DST_MAC_MISMATCH);
	if (!(dst->flags & EP_FASTPATH))
		return to_ovs(src, REASON_TO_OVS_DST_FASTPATH_OFF);
	if (dst->host_ifindex == ifindex)
		return to_ovs(src, REASON_TO_OVS_HAIRPIN);

	/*
	 * A flow from or to a Service endpoint's port passes OVS in both
	 * directions: OVN un-DNATs the endpoint's replies to clients of the
	 * ClusterIP, and its conntrack must see both halves of direct flows too.
	 */
	__u8 proto = ip->protocol;
	int l4 = proto == IPPROTO_TCP || proto == IPPROTO_UDP;
	struct ct_key ck = { .vpn = src->vpn, .saddr = ip->saddr, .daddr = ip->daddr, .proto = proto };
	__u32 to = dst->host_ifindex;

	if (l4) {
		__be16 ports[2];

		if (bpf_skb_load_bytes(skb, sizeof(*eth) + ip->ihl * 4, ports, sizeof(ports)))
			return to_ovs(src, REASON_TO_OVS_MALFORMED);
		ck.sport = ports[0];
		ck.dport = ports[1];
		if (service_endpoint(src->vpn, ck.saddr, ck.sport, proto) ||
		    service_endpoint(src->vpn, ck.daddr, ck.dport, proto))
			return to_ovs(src, REASON_TO_OVS_SERVICE);
	}

	/*
	 * NetworkPolicy. The packet's own direction is governed when a policy
	 * isolates the sender's egress or the receiver's ingress: then it passes only
	 * as a reply of a connection admitted here, or when the pair's sdncni_pol
	 * entry allows its protocol and port. The opposite direction is governed when
	 * the receiver's egress or the sender's ingress is isolated: then the
	 * connection is recorded so that its replies pass — for TCP only from its
	 * SYN: a mid-connection packet there may belong to a connection the other
	 * side opened before the policy (its next packets would then pass as
	 * "replies"), so it goes to OVS, whose conntrack decides as it does for
	 * the same connection across nodes. Anything not known to be allowed, and
	 * every non-TCP/UDP packet of a governed pair, goes to OVS, where OVN's
	 * ACLs decide.
	 *
	 * UDP has no SYN, so every UDP flow is recorded, governed or not: a policy
	 * that comes later finds who started it, and the node role marks the flows
	 * it denies CT_BLOCKED. A reply of a blocked flow is dropped here (as OVN
	 * drops a connection its new ACLs deny); its initiator's packets are judged
	 * as new, so they go to OVS.
	 */
	int gov_fwd = (src->flags & EP_POLICY_EG) || (dst->flags & EP_POLICY_IN);
	int gov_rev = (dst->flags & EP_POLICY_EG) || (src->flags & EP_POLICY_IN);

	if (gov_fwd || gov_rev || proto == IPPROTO_UDP) {
		if (!l4)
			return to_ovs_policy(src);
		__u64 now = bpf_ktime_get_ns();
		int reply = ct_reply(&ck, ifindex, to, now);

		if (reply < 0) {
			count(REASON_DROP_POLICY_BLOCKED);
			return TC_ACT_SHOT;
		}
		if (!reply) {
			if (gov_fwd && !policy_allows(&ck, ifindex, to))
				return to_ovs_policy(src);
			if (!gov_fwd && proto == IPPROTO_TCP) {
				/* Read only here: ungoverned traffic pays nothing for it. */
				__u8 flags;

				if (bpf_skb_load_bytes(skb, sizeof(*eth) + ip->ihl * 4 + 13, &flags, 1) ||
				    (flags & (TCPF_SYN_BIT | TCPF_ACK_BIT)) != TCPF_SYN_BIT)
					return to_ovs_policy(src);
			}
			ct_admit(&ck, ifindex, to, now);
		}
	}

	count(REASON_REDIRECT_FAST);
	return bpf_redirect_peer(to, 0);

short_frame:
	/* Too short for Ethernet + IPv4: classify by EtherType for the counters. */
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	eth = data;
	if (data + sizeof(*eth) > data_end)
		return to_ovs(src, REASON_TO_OVS_MALFORMED);
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return to_ovs(src, REASON_TO_OVS_MALFORMED);
	if (eth->h_proto == bpf_htons(ETH_P_8021Q) ||
	    eth->h_proto == bpf_htons(ETH_P_8021AD))
		return to_ovs(src, REASON_TO_OVS_VLAN);
	return to_ovs(src, REASON_TO_OVS_NOT_IPV4);
}

SEC("tc")
int sdncni_from_ovs(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint *ep = bpf_map_lookup_elem(&sdncni_ep, &ifindex);

	if (!ep) {
		count(REASON_DROP_UNKNOWN_IFINDEX);
		return TC_ACT_SHOT;
	}
	if (ep->role != ROLE_OVS) {
		count(REASON_DROP_WRONG_ROLE);
		return TC_ACT_SHOT;
	}
	count(REASON_FROM_OVS);
	return bpf_redirect_peer(ep->peer_ifindex, 0);
}

/*
 * xnode_probe handles VNI 0: answers a peer's probe request on the same tunnel, or
 * records the answer to ours. Anything else there is malformed.
 */
static __always_inline int xnode_probe(struct __sk_buff *skb, const struct xnode *x, __u32 remote)
{
	__u8 p[sizeof(struct ethhdr) + 5];

	if (bpf_skb_load_bytes(skb, 0, p, sizeof(p)) || p[12] != (XNODE_PROBE_TYPE >> 8) ||
	    p[13] != (XNODE_PROBE_TYPE & 0xff) || p[14] != 's' || p[15] != 'd' || p[16] != 'n' ||
	    p[17] != 'x' || !remote)
		goto malformed;
	if (p[18] == XNODE_PROBE_REQUEST) {
		__u8 op = XNODE_PROBE_REPLY;
		struct bpf_tunnel_key key = { .remote_ipv4 = remote, .tunnel_ttl = 64 };

		if (bpf_skb_store_bytes(skb, 18, &op, 1, 0) ||
		    bpf_skb_set_tunnel_key(skb, &key, offsetof(struct bpf_tunnel_key, local_ipv4),
					   BPF_F_ZERO_CSUM_TX))
			goto malformed;
		count(REASON_XNODE_PROBE_ECHO);
		return bpf_redirect(x->vxlan_ifindex, 0);
	}
	if (p[18] == XNODE_PROBE_REPLY) {
		__be32 peer = bpf_htonl(remote);
		__u64 now = bpf_ktime_get_ns();

		bpf_map_update_elem(&sdncni_xpeer, &peer, &now, BPF_ANY);
		count(REASON_XNODE_PROBE_REPLY);
		return TC_ACT_SHOT;
	}
malformed:
	count(REASON_XNODE_DROP_MALFORMED);
	return TC_ACT_SHOT;
}

/*
 * xnode_to_ovs: a packet of one of our pods that its receiver sent back (it must pass
 * OVS there). It must come from the node holding its destination's block, from our
 * pod of that VPN with its IP and MAC; then it goes to OVS on the pod's port, once.
 */
static __always_inline int xnode_to_ovs(struct __sk_buff *skb, __u32 vpn, __be32 from)
{
	const __u32 hdrs = sizeof(struct ethhdr) + sizeof(struct iphdr);
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (data + hdrs > data_end) {
		if (skb->len < hdrs || bpf_skb_pull_data(skb, hdrs))
			goto drop;
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		if (data + hdrs > data_end)
			goto drop;
	}
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);

	if (vpn == 0 || eth->h_proto != bpf_htons(ETH_P_IP) || !from ||
	    remote_node(vpn, ip->daddr) != from)
		goto drop;
	struct dst_key dk = { .vpn = vpn, .ip = ip->saddr };
	struct dst *own = bpf_map_lookup_elem(&sdncni_dst, &dk);

	if (!own || !mac_eq(eth->h_source, own->mac))
		goto drop;
	__u32 host = own->host_ifindex;
	struct endpoint *ep = bpf_map_lookup_elem(&sdncni_ep, &host);

	if (!ep || ep->role != ROLE_POD || ep->vpn != vpn || ep->ip != ip->saddr)
		goto drop;
	/* Remember the flow: its next packets go to OVS here at once (xnode_tx). */
	struct ct_key ck = { .vpn = vpn, .saddr = ip->saddr, .daddr = ip->daddr, .proto = ip->protocol };

	if ((ck.proto == IPPROTO_TCP || ck.proto == IPPROTO_UDP) &&
	    bpf_skb_load_bytes(skb, sizeof(*eth) + ip->ihl * 4, &ck.sport, sizeof(ck.sport) + sizeof(ck.dport)))
		goto drop;
	__u64 now = bpf_ktime_get_ns();

	bpf_map_update_elem(&sdncni_xback, &ck, &now, BPF_ANY);
	count(REASON_XNODE_TO_OVS);
	return bpf_redirect(ep->peer_ifindex, 0);
drop:
	count(REASON_XNODE_DROP_BOUNCE);
	return TC_ACT_SHOT;
}

SEC("tc")
int sdncni_from_vxlan(struct __sk_buff *skb)
{
	struct xnode *x = xnode_cfg();

	if (!x || !x->on || x->vxlan_ifindex != skb->ifindex) {
		count(REASON_XNODE_DROP_OFF);
		return TC_ACT_SHOT;
	}

	struct bpf_tunnel_key key = {};

	if (bpf_skb_get_tunnel_key(skb, &key, offsetof(struct bpf_tunnel_key, local_ipv4), 0) ||
	    key.tunnel_id > VNI_MAX)
		goto malformed;
	if (key.tunnel_id == 0)
		return xnode_probe(skb, x, key.remote_ipv4);
	if (key.tunnel_id & XNODE_VNI_BOUNCE)
		return xnode_to_ovs(skb, key.tunnel_id & ~XNODE_VNI_BOUNCE, bpf_htonl(key.remote_ipv4));

	const __u32 hdrs = sizeof(struct ethhdr) + sizeof(struct iphdr);
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (data + hdrs > data_end) {
		if (skb->len < hdrs || bpf_skb_pull_data(skb, hdrs))
			goto malformed;
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		if (data + hdrs > data_end)
			goto malformed;
	}

	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	__u32 vpn = key.tunnel_id;

	if (skb->vlan_present || eth->h_proto != bpf_htons(ETH_P_IP) || ip->version != 4 ||
	    ip->ihl < 5 || (eth->h_dest[0] & 1) || (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
		goto malformed;

	/*
	 * A node sends only for its own blocks: the inner source must lie in a block of
	 * this VPN held by the node the packet came from, with that pod's MAC.
	 */
	__be32 from = bpf_htonl(key.remote_ipv4);

	if (!from || remote_node(vpn, ip->saddr) != from || !pod_mac(eth->h_source, ip->saddr)) {
		count(REASON_XNODE_DROP_SRC);
		return TC_ACT_SHOT;
	}
	/*
	 * The VNI names the VPN: only that VPN's pods are looked at. An address of the
	 * VPN that is no pod here (this node's management port, a pod just deleted) is
	 * not delivered past OVS: it goes back, and its sender hands it to OVS (which
	 * accepts it only as its own pod's packet), where OVN decides.
	 */
	struct dst_key dk = { .vpn = vpn, .ip = ip->daddr };
	struct dst *dst = bpf_map_lookup_elem(&sdncni_dst, &dk);

	__u32 why = REASON_XNODE_BOUNCE;

	if (!dst || !mac_eq(eth->h_dest, dst->mac)) {
		why = REASON_XNODE_BOUNCE_NO_POD;
		goto bounce;
	}
	if (!(dst->flags & EP_FASTPATH) || (dst->flags & (EP_POLICY_IN | EP_POLICY_EG)) ||
	    !fastpath_on(vpn))
		goto bounce;
	__u8 proto = ip->protocol;

	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		__be16 dport;

		if (bpf_skb_load_bytes(skb, sizeof(*eth) + ip->ihl * 4 + 2, &dport, sizeof(dport)))
			goto malformed;
		if (service_endpoint(vpn, ip->daddr, dport, proto))
			goto bounce;
	}
	count(REASON_XNODE_RX);
	return bpf_redirect_peer(dst->host_ifindex, 0);

bounce:
	/*
	 * OVS must see this packet, and OVN takes it only from its own Geneve: it goes
	 * back to the node that sent it, marked, and that node hands it to OVS on the
	 * sending pod's port, as if the fast path had never taken it.
	 */
	{
		struct bpf_tunnel_key back = { .tunnel_id = vpn | XNODE_VNI_BOUNCE,
					       .remote_ipv4 = key.remote_ipv4, .tunnel_ttl = 64 };

		if (bpf_skb_set_tunnel_key(skb, &back, offsetof(struct bpf_tunnel_key, local_ipv4),
					   BPF_F_ZERO_CSUM_TX))
			goto malformed;
		count(why);
		return bpf_redirect(x->vxlan_ifindex, 0);
	}
malformed:
	count(REASON_XNODE_DROP_MALFORMED);
	return TC_ACT_SHOT;
}

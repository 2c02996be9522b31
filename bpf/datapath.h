/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Map key/value layouts shared by the sdncni fast-path programs and, through
 * bpf2go -type, by the Go loader in pkg/datapath. Change a layout here only
 * together with the map's name: pinned maps of an old layout are not adopted.
 */
#ifndef SDNCNI_DATAPATH_H
#define SDNCNI_DATAPATH_H

#include <linux/types.h>

/* Roles of an interface known to the datapath. */
enum role {
	ROLE_POD = 1, /* host side of the pod's veth: from_pod runs here */
	ROLE_OVS = 2, /* the pod's OVS internal port (tap): from_ovs runs here */
};

/* Endpoint flags. */
enum ep_flag {
	EP_FASTPATH = 1 << 0,  /* the endpoint may send/receive on the fast path */
	EP_POLICY_IN = 1 << 1, /* a NetworkPolicy isolates the pod's ingress */
	EP_POLICY_EG = 1 << 2, /* a NetworkPolicy isolates the pod's egress */
};

/* Value of sdncni_ep, keyed by the ifindex (__u32) of the interface. */
struct endpoint {
	__u32 vpn;
	__be32 ip;           /* pod IPv4, network order */
	__u8 mac[6];         /* pod eth0 MAC */
	__u8 flags;          /* enum ep_flag */
	__u8 role;           /* enum role */
	__u32 peer_ifindex;  /* ROLE_POD: the OVS port; ROLE_OVS: the host veth */
};

/* Key of sdncni_dst: overlapping CIDRs in different VPNs never collide. */
struct dst_key {
	__u32 vpn;
	__be32 ip;
};

/* Value of sdncni_dst. */
struct dst {
	__u32 host_ifindex; /* host side of the destination pod's veth */
	__u8 mac[6];        /* destination pod eth0 MAC */
	__u8 flags;         /* enum ep_flag */
	__u8 pad;
};

/*
 * Key of sdncni_svc: a Service endpoint — a pod address and port that an OVN
 * load balancer may DNAT to. Traffic from or to it must pass OVS, where OVN
 * un-DNATs the endpoint's replies; the fast path would hand them to the client
 * with the endpoint's address instead of the ClusterIP.
 */
struct svc_key {
	__u32 vpn;
	__be32 ip;   /* endpoint IPv4, network order */
	__be16 port; /* target port, network order */
	__u8 proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;
};

/*
 * Key of sdncni_pol: a pair of pods of one VPN on this node, in the direction
 * of a new connection (src opens it to dst).
 */
struct pol_key {
	__u32 vpn;
	__be32 src; /* IPv4, network order */
	__be32 dst;
};

#define POL_RANGES 8

/* A range of destination ports of one protocol, host order, both ends included. */
struct pol_range {
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;
	__u16 lo;
	__u16 hi;
};

/*
 * Value of sdncni_pol: what policy allows for new traffic from src to dst (src's
 * egress and dst's ingress verdicts intersected). No entry: nothing is known to
 * be allowed, the packet goes to OVS. The entry holds only for the endpoints it
 * was computed for (their host veths' ifindexes), never for a later holder of
 * one of the addresses.
 */
struct pol {
	__u32 src_ifindex;
	__u32 dst_ifindex;
	__u8 all; /* every port of TCP and UDP (ICMP still goes to OVS) */
	__u8 n;   /* ranges used */
	__u8 pad[2];
	struct pol_range ranges[POL_RANGES];
};

/* Key of sdncni_ct: a connection the fast path admitted, as its first packet saw it. */
struct ct_key {
	__u32 vpn;
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

/* Value of sdncni_ct. */
struct ct {
	__u64 last_seen;   /* bpf_ktime_get_ns() of the last packet, refreshed ≤ 1/s */
	__u32 src_ifindex; /* host veth of saddr's pod */
	__u32 dst_ifindex; /* host veth of daddr's pod */
	__u32 flags;       /* enum ct_flag */
	__u32 pad;
};

/*
 * Flags of a connection in sdncni_ct. CT_BLOCKED: a policy change denies what its
 * initiator (saddr) sent to daddr; the node role sets it and the connection is cut on
 * the fast path until it idles out: the initiator's packets go to OVS (which judges them
 * as new), the other side's are dropped (they may no longer pass as replies).
 */
enum ct_flag {
	CT_BLOCKED = 1,
};

/*
 * Key of sdncni_remote (LPM trie): a VPN's address block held by another node.
 * prefixlen counts the bits of vpn and ip together: 32 + the block's prefix length.
 */
struct remote_key {
	__u32 prefixlen;
	__u32 vpn;   /* always matched whole (prefixlen >= 32), so host order is fine */
	__be32 ip;   /* block address, network order */
};

/* Value of sdncni_remote: where the block's pods are reached over VXLAN. */
struct remote {
	__be32 underlay; /* the holding node's underlay IPv4, network order */
	__u32 pad;
};

/*
 * Value of the single-entry sdncni_xnode array: the cross-node fast path of this
 * node. All zero (a new map): off.
 */
struct xnode {
	__u32 on;            /* 1: cross-node fast path on */
	__u32 vxlan_ifindex; /* the collect-metadata VXLAN device */
	__be32 local;        /* this node's underlay IPv4 (its own blocks are never remote) */
	__u32 pad;
};

/*
 * Discovery probes travel as VNI 0, which no VPN has: an inner Ethernet frame of
 * type XNODE_PROBE_TYPE whose payload starts with "sdnx" and an op byte. A node
 * whose cross-node path is on answers a request on the same tunnel (op 2); the
 * prober's from_vxlan records the answer's outer source in sdncni_xpeer.
 */
/*
 * VNI bit 23 marks a packet sent back to the node it came from, because its
 * destination's node could not deliver it without OVS: the sender hands it to OVS
 * on its pod's port. VPN IDs on the cross-node path therefore fit in 23 bits.
 */
#define XNODE_VNI_BOUNCE 0x800000

#define XNODE_PROBE_TYPE 0x88b5 /* IEEE 802 local experimental */
#define XNODE_PROBE_REQUEST 1
#define XNODE_PROBE_REPLY 2

/* Value of the single-entry sdncni_cfg array. */
struct config {
	__u32 fastpath; /* 1: global fast path on */
};

/*
 * Counter indexes of sdncni_cnt; every packet a program sees bumps exactly
 * one of them.
 */
enum reason {
	REASON_REDIRECT_FAST = 0,
	REASON_FROM_OVS,
	REASON_DROP_UNKNOWN_IFINDEX,
	REASON_DROP_WRONG_ROLE,
	REASON_TO_OVS_NOT_IPV4,
	REASON_TO_OVS_VLAN,
	REASON_TO_OVS_MALFORMED,
	REASON_TO_OVS_SPOOFED,
	REASON_TO_OVS_NOT_UNICAST,
	REASON_TO_OVS_FRAGMENT,
	REASON_TO_OVS_FASTPATH_OFF,
	REASON_TO_OVS_CROSS_VPN_OR_UNKNOWN_DST,
	REASON_TO_OVS_DST_MAC_MISMATCH,
	REASON_TO_OVS_DST_FASTPATH_OFF,
	REASON_TO_OVS_HAIRPIN,
	REASON_TO_OVS_SERVICE,
	REASON_TO_OVS_POLICY,
	REASON_DROP_POLICY_BLOCKED,
	/* Cross-node fast path (sdncni_from_pod's VXLAN branch, sdncni_from_vxlan). */
	REASON_XNODE_TX,                /* sent to another node over VXLAN */
	REASON_XNODE_RX,                /* received over VXLAN, delivered into the pod */
	REASON_XNODE_DROP_OFF,          /* received while the path is off, or not on our device */
	REASON_XNODE_DROP_MALFORMED,    /* no tunnel key, VNI 0 or > 24 bits, not plain IPv4 unicast */
	REASON_XNODE_BOUNCE_NO_POD,     /* no pod of the VNI's VPN has that IP and MAC here: sent back */
	REASON_XNODE_DROP_SRC,          /* inner source not of the sending node's blocks of that VPN */
	REASON_XNODE_BOUNCE,            /* needs OVS here (policy, Service port, fast path off): sent back */
	REASON_XNODE_PROBE_ECHO,        /* a peer's probe (VNI 0) answered */
	REASON_XNODE_PROBE_REPLY,       /* the answer to our probe, recorded in sdncni_xpeer */
	REASON_XNODE_TO_OVS,            /* our pod's packet sent back by its receiver: handed to OVS */
	REASON_XNODE_DROP_BOUNCE,       /* a sent-back packet that is not our pod's to a block of its sender */
	REASON_TO_OVS_XNODE_SENT_BACK,  /* a flow its receiver sent back lately (sdncni_xback): OVS at once */
	REASON_MAX,
};

/*
 * Entries of sdncni_cnt: room for reasons added later, so that a new reason
 * does not change the pinned map's layout.
 */
#define COUNTERS_MAX 64

#endif

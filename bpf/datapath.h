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
	EP_FASTPATH = 1 << 0, /* the endpoint may send/receive on the fast path */
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
	REASON_MAX,
};

/*
 * Entries of sdncni_cnt: room for reasons added later, so that a new reason
 * does not change the pinned map's layout.
 */
#define COUNTERS_MAX 64

#endif

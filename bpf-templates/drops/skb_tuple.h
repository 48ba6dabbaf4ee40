/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the drops and netrx_latency templates: extract the IPv4/IPv6 TCP/UDP tuple of a
 * socket buffer from its network and transport headers, falling back to the socket's own
 * addresses when the headers are not set yet (early transmit path).
 *
 * Addresses are 16 bytes; IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d) so one
 * decoder formats both families.
 */
#pragma once
#include <bpf/bpf_endian.h>

#define HT_ETH_P_IP 0x0800
#define HT_ETH_P_IPV6 0x86DD
#define HT_AF_INET 2
#define HT_AF_INET6 10
#define HT_IPPROTO_TCP 6
#define HT_IPPROTO_UDP 17
#define HT_TCP_FLAG_FIN 0x01
#define HT_TCP_FLAG_SYN 0x02
#define HT_TCP_FLAG_RST 0x04
#define HT_TCP_FLAG_ACK 0x10

/* The tuple of one packet, in host byte order except the addresses. */
struct skb_tuple {
	u8 saddr[16];
	u8 daddr[16];
	u32 seq;
	u32 ack_seq;
	u16 sport;
	u16 dport;
	u16 family;
	u8 l4_proto;
	u8 tcp_flags;
};

static __always_inline void ht_v4_mapped(u8 *dst, u32 addr_be)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &addr_be, 4);
}

/* Reads the L4 ports (and for TCP seq/ack/flags) at head + off. */
static __always_inline void ht_read_l4(struct skb_tuple *t, unsigned char *l4)
{
	if (t->l4_proto == HT_IPPROTO_TCP) {
		struct tcphdr th = {};
		if (bpf_probe_read_kernel(&th, sizeof(th), l4))
			return;
		t->sport = bpf_ntohs(th.source);
		t->dport = bpf_ntohs(th.dest);
		t->seq = bpf_ntohl(th.seq);
		t->ack_seq = bpf_ntohl(th.ack_seq);
		t->tcp_flags = ((u8 *)&th)[13];
	} else if (t->l4_proto == HT_IPPROTO_UDP) {
		struct udphdr uh = {};
		if (bpf_probe_read_kernel(&uh, sizeof(uh), l4))
			return;
		t->sport = bpf_ntohs(uh.source);
		t->dport = bpf_ntohs(uh.dest);
	}
}

/*
 * Fills the tuple from the packet headers; returns 0 when an IP header was found.
 * `at_data`: the network header is at skb->data (receive path before the stack resets the
 * header offsets, e.g. net:netif_receive_skb); the transport header is then derived too.
 */
static __always_inline int ht_skb_tuple_at(const struct sk_buff *skb, struct skb_tuple *t,
					   bool at_data)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	u16 nh_off = BPF_CORE_READ(skb, network_header);
	u16 th_off = at_data ? (u16)~0U : BPF_CORE_READ(skb, transport_header);
	u16 proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	unsigned char *nh = at_data ? BPF_CORE_READ(skb, data) : head + nh_off;
	unsigned char *l4 = 0;

	if (!head || (!at_data && nh_off == (u16)~0U))
		return -1;
	if (proto == 0) {
		/* locally generated before the L2 protocol is set: look at the version nibble */
		u8 first = 0;
		bpf_probe_read_kernel(&first, 1, nh);
		proto = (first >> 4) == 6 ? HT_ETH_P_IPV6 : (first >> 4) == 4 ? HT_ETH_P_IP : 0;
	}
	if (proto == HT_ETH_P_IP) {
		struct iphdr iph = {};
		if (bpf_probe_read_kernel(&iph, sizeof(iph), nh) || iph.version != 4)
			return -1;
		t->family = HT_AF_INET;
		t->l4_proto = iph.protocol;
		ht_v4_mapped(t->saddr, iph.saddr);
		ht_v4_mapped(t->daddr, iph.daddr);
		l4 = (th_off != (u16)~0U && th_off > nh_off) ? head + th_off : nh + iph.ihl * 4;
	} else if (proto == HT_ETH_P_IPV6) {
		struct ipv6hdr ip6 = {};
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), nh) || ip6.version != 6)
			return -1;
		t->family = HT_AF_INET6;
		t->l4_proto = ip6.nexthdr;
		__builtin_memcpy(t->saddr, &ip6.saddr, 16);
		__builtin_memcpy(t->daddr, &ip6.daddr, 16);
		l4 = (th_off != (u16)~0U && th_off > nh_off) ? head + th_off : nh + sizeof(ip6);
	} else {
		return -1;
	}
	ht_read_l4(t, l4);
	return 0;
}

/* Fills the tuple from the recorded network/transport header offsets. */
static __always_inline int ht_skb_tuple(const struct sk_buff *skb, struct skb_tuple *t)
{
	return ht_skb_tuple_at(skb, t, false);
}

/* Fills the tuple from a socket (local address first); returns 0 for an inet socket. */
static __always_inline int ht_sock_tuple(const struct sock *sk, struct skb_tuple *t)
{
	u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	if (family == HT_AF_INET) {
		ht_v4_mapped(t->saddr, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		ht_v4_mapped(t->daddr, BPF_CORE_READ(sk, __sk_common.skc_daddr));
	} else if (family == HT_AF_INET6) {
		BPF_CORE_READ_INTO(&t->saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&t->daddr, sk, __sk_common.skc_v6_daddr);
	} else {
		return -1;
	}
	t->family = family;
	t->l4_proto = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
	t->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	t->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	return 0;
}

/* The inode number of the socket's network namespace, 0 without a socket. */
static __always_inline u32 ht_sock_netns(const struct sock *sk)
{
	if (!sk)
		return 0;
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * drops: every freed-not-consumed socket buffer (skb:kfree_skb), with the kernel's drop
 * reason, the IPv4/IPv6 tuple, TCP state/seq/ack, the device, the netns and the kernel stack.
 *
 * Type classification (HUATUO's dropwatch types), decided in the kernel:
 *   the socket is a TCP listener (rx_sk on >= 6.12, else skb->sk) and the packet is
 *     - a SYN without ACK: listen_overflow_handshake1 when the accept queue is full
 *       (sk_ack_backlog > sk_max_ack_backlog) or the reason is TCP_LISTEN_OVERFLOW,
 *       otherwise syn_flood (the SYN queue overflowed and no syncookie was sent);
 *     - an ACK without SYN while the accept queue is full (or reason TCP_LISTEN_OVERFLOW):
 *       listen_overflow_handshake3 (the 3rd handshake packet, or the first data of a
 *       deferred-accept connection, refused because the accept queue is full);
 *   everything else is common_drop.
 * Note: kernels >= 5.x release a SYN refused by a full queue with consume_skb(), so
 * handshake1 and syn_flood are only seen where the kernel frees them with kfree_skb.
 */
/* Drops come in storms (a flood, a full backlog): a larger ring than other events. */
#define HUATUO_RINGBUF_BYTES (256 * 1024)
#include "huatuo.h"
#include "../drops/skb_tuple.h"

#define TYPE_COMMON_DROP 0
#define TYPE_SYN_FLOOD 1
#define TYPE_LISTEN_OVERFLOW_HANDSHAKE1 2
#define TYPE_LISTEN_OVERFLOW_HANDSHAKE3 3
#define TCP_LISTEN_STATE 10

/* Only report this IP protocol (6 = TCP, HUATUO's dropwatch); 0 reports every protocol. */
volatile const __u64 l4_proto_eq = 0;
/* Skip drops with this reason code (e.g. NOT_SPECIFIED, plain kfree_skb() callers); 0 skips
 * none (0 is SKB_NOT_DROPPED_YET, never a drop). */
volatile const __u64 reason_code_ne = 0;

#define DROP_STACK_DEPTH 32

struct drop_event {
	u64 stack[DROP_STACK_DEPTH];
	u64 location;
	u64 net_cookie;
	u8 saddr[16];
	u8 daddr[16];
	u32 pid;
	u32 reason_code;
	u32 seq;
	u32 ack_seq;
	u32 pkt_len;
	u32 netns;
	u32 ifindex;
	u32 ack_backlog;
	u32 max_ack_backlog;
	u32 stack_len;
	u16 sport;
	u16 dport;
	u16 family;
	u16 queue_mapping;
	u8 l4_proto;
	u8 state;
	u8 type;
	u8 tcp_flags;
	u8 linkstatus;
	char comm[16];
	char ifname[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct drop_event);
} drop_scratch SEC(".maps");

/*
 * The cookie of the network namespace (of the socket, else of the device): a 64-bit id the
 * kernel never reuses (5.12+; 0 before, or with neither a socket nor a device).
 */
static __always_inline u64 drop_net_cookie(struct sock *sk, struct net_device *dev)
{
	struct net *net = NULL;

	if (!bpf_core_field_exists(net->net_cookie))
		return 0;
	if (sk)
		net = BPF_CORE_READ(sk, __sk_common.skc_net.net);
	if (!net && dev)
		net = BPF_CORE_READ(dev, nd_net.net);
	return net ? BPF_CORE_READ(net, net_cookie) : 0;
}

/* Link status bits of the device (decoded to names in user space): */
#define LINK_ADMIN_UP (1 << 0)
#define LINK_ADMIN_DOWN (1 << 1)
#define LINK_CARRIER_UP (1 << 2)
#define LINK_CARRIER_DOWN (1 << 3)
#define HT_IFF_UP 0x1

/*
 * The device's administrative state (IFF_UP in dev->flags) and carrier (the NOCARRIER bit of
 * dev->state, as netif_carrier_ok() reads it); 0 without a device.
 */
static __always_inline u8 drop_linkstatus(struct net_device *dev)
{
	unsigned long state;
	u8 bits;
	int nocarrier;

	if (!dev)
		return 0;
	bits = (BPF_CORE_READ(dev, flags) & HT_IFF_UP) ? LINK_ADMIN_UP : LINK_ADMIN_DOWN;
	if (!bpf_core_enum_value_exists(enum netdev_state_t, __LINK_STATE_NOCARRIER))
		return bits;
	nocarrier = bpf_core_enum_value(enum netdev_state_t, __LINK_STATE_NOCARRIER);
	state = BPF_CORE_READ(dev, state);
	bits |= (state >> (nocarrier & 63)) & 1 ? LINK_CARRIER_DOWN : LINK_CARRIER_UP;
	return bits;
}

static __always_inline u8 classify(const struct drop_event *e, bool listen_overflow)
{
	bool syn = e->tcp_flags & HT_TCP_FLAG_SYN, ack = e->tcp_flags & HT_TCP_FLAG_ACK;

	if (e->l4_proto != HT_IPPROTO_TCP || e->state != TCP_LISTEN_STATE)
		return TYPE_COMMON_DROP;
	if (syn && !ack)
		return (listen_overflow || e->ack_backlog > e->max_ack_backlog)
			       ? TYPE_LISTEN_OVERFLOW_HANDSHAKE1
			       : TYPE_SYN_FLOOD;
	if (ack && !syn && (listen_overflow || e->ack_backlog > e->max_ack_backlog))
		return TYPE_LISTEN_OVERFLOW_HANDSHAKE3;
	return TYPE_COMMON_DROP;
}

static __always_inline int handle_drop(void *ctx, struct sk_buff *skb, u64 location, u32 reason,
				       struct sock *rx_sk)
{
	struct skb_tuple t = {};
	struct drop_event *e;
	struct net_device *dev;
	struct sock *sk;
	u32 zero = 0;
	bool listen_overflow = false;
	long n;

	if (reason_code_ne && reason == reason_code_ne)
		return 0;
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_TCP_LISTEN_OVERFLOW))
		listen_overflow =
			reason == bpf_core_enum_value(enum skb_drop_reason,
						      SKB_DROP_REASON_TCP_LISTEN_OVERFLOW);

	sk = rx_sk ? rx_sk : BPF_CORE_READ(skb, sk);
	if (ht_skb_tuple(skb, &t) && (!sk || ht_sock_tuple(sk, &t)))
		return 0;
	if (l4_proto_eq && t.l4_proto != l4_proto_eq)
		return 0;
	/* rate-limit before the stack walk, the expensive part */
	if (!huatuo_ratelimit_allow()) {
		huatuo_count(HUATUO_CNT_SHED);
		return 0;
	}

	e = bpf_map_lookup_elem(&drop_scratch, &zero);
	if (!e)
		return 0;
	__builtin_memcpy(e->saddr, t.saddr, 16);
	__builtin_memcpy(e->daddr, t.daddr, 16);
	e->location = location;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->reason_code = reason;
	e->seq = t.seq;
	e->ack_seq = t.ack_seq;
	e->pkt_len = BPF_CORE_READ(skb, len);
	e->sport = t.sport;
	e->dport = t.dport;
	e->family = t.family;
	e->l4_proto = t.l4_proto;
	e->tcp_flags = t.tcp_flags;
	e->queue_mapping = BPF_CORE_READ(skb, queue_mapping);
	e->state = sk ? BPF_CORE_READ(sk, __sk_common.skc_state) : 0;
	e->ack_backlog = sk ? BPF_CORE_READ(sk, sk_ack_backlog) : 0;
	e->max_ack_backlog = sk ? BPF_CORE_READ(sk, sk_max_ack_backlog) : 0;
	e->netns = ht_sock_netns(sk);
	dev = BPF_CORE_READ(skb, dev);
	e->ifindex = dev ? BPF_CORE_READ(dev, ifindex) : 0;
	e->linkstatus = drop_linkstatus(dev);
	if (dev)
		BPF_CORE_READ_STR_INTO(&e->ifname, dev, name);
	else
		e->ifname[0] = 0;
	if (!e->netns && dev)
		e->netns = BPF_CORE_READ(dev, nd_net.net, ns.inum);
	e->net_cookie = drop_net_cookie(sk, dev);
	e->type = classify(e, listen_overflow);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	n = bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0);
	e->stack_len = n > 0 ? n / sizeof(u64) : 0;
	huatuo_count(HUATUO_OUTPUT_RAW(ctx, e, sizeof(*e)) ? HUATUO_CNT_LOST : HUATUO_CNT_EMITTED);
	return 0;
}

/* >= 6.12: kfree_skb(skb, location, reason, rx_sk) */
SEC("tp_btf/kfree_skb")
int BPF_PROG(tp_btf_kfree_skb_rx_sk, struct sk_buff *skb, void *location, enum skb_drop_reason reason,
	     struct sock *rx_sk)
{
	return handle_drop(ctx, skb, (u64)location, reason, rx_sk);
}

/* 5.17 .. 6.11: kfree_skb(skb, location, reason) */
SEC("tp_btf/kfree_skb")
int BPF_PROG(tp_btf_kfree_skb_reason, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	return handle_drop(ctx, skb, (u64)location, reason, 0);
}

/* Without BTF for tracepoints: the same three argument layouts as raw tracepoints. */
SEC("raw_tp/kfree_skb")
int raw_tp_kfree_skb_rx_sk(struct bpf_raw_tracepoint_args *ctx)
{
	return handle_drop(ctx, (struct sk_buff *)((u64 *)ctx)[0], ((u64 *)ctx)[1], ((u64 *)ctx)[2],
			   (struct sock *)((u64 *)ctx)[3]);
}

SEC("raw_tp/kfree_skb")
int raw_tp_kfree_skb_reason(struct bpf_raw_tracepoint_args *ctx)
{
	return handle_drop(ctx, (struct sk_buff *)((u64 *)ctx)[0], ((u64 *)ctx)[1], ((u64 *)ctx)[2], 0);
}

/* < 5.17: kfree_skb(skb, location), no reason (reported as 0). */
SEC("raw_tp/kfree_skb")
int raw_tp_kfree_skb(struct bpf_raw_tracepoint_args *ctx)
{
	return handle_drop(ctx, (struct sk_buff *)((u64 *)ctx)[0], ((u64 *)ctx)[1], 0, 0);
}

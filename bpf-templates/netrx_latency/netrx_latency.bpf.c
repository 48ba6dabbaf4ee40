// SPDX-License-Identifier: GPL-2.0
/*
 * netrx_latency: how long a received TCP packet took to reach each stage of the receive
 * path, measured from its receive timestamp skb->tstamp (CLOCK_REALTIME, set when the
 * packet entered the stack; the kernel only stamps packets while some socket asked for
 * timestamps, so the loader holds one SO_TIMESTAMPNS socket open: needs = ["rx_timestamps"]):
 *
 *   TO_NETIF_RCV   net:netif_receive_skb         (backlog/RPS queueing before the stack)
 *   TO_TCPV4_RCV / TO_TCPV6_RCV   tcp:tcp_probe  (tcp_rcv_established: the TCP layer)
 *   TO_USER_COPY   skb:skb_copy_datagram_iovec   (the application reads the data)
 *
 * Packets later than `threshold_ns` (the smallest per-stage threshold of the rules) become
 * events with the stage, the latency and the tuple. BPF has no realtime clock: the loader
 * sets `mono_to_real_ns` = CLOCK_REALTIME - CLOCK_MONOTONIC at load.
 *
 * Container attribution (`cgroup_id`, resolved to `container_id`): at TO_USER_COPY the
 * current task, which is the application reading the socket (process context); at the
 * softirq stages, where the current task is unrelated, the socket's own cgroup
 * (sk->sk_cgrp_data, the cgroup v2 of the task that created it) when cgroup v2 is the real
 * hierarchy, else 0 (no container). `host_netns` is 1 when the packet's network namespace
 * is the agent's own (`host_netns_inum`, set by the loader: needs = ["host_netns"]).
 *
 * Cost: these hooks fire for every packet (and TO_USER_COPY for every datagram copy of any
 * socket family), so each program first drops, with a few direct loads and no map access,
 * what no rule wants: packets of the host network namespace when `skip_host_netns` is set
 * (pushed down from the rules' `not (... and host_netns)`), and at TO_USER_COPY anything but
 * a TCP socket's data (unix sockets alone fire it millions of times a second).
 */
#include "huatuo.h"
#include "../drops/skb_tuple.h"

#define WHERE_NETIF_RCV 0
#define WHERE_TCPV4_RCV 1
#define WHERE_TCPV6_RCV 2
#define WHERE_USER_COPY 3
#define HT_SKB_CLOCK_MONOTONIC 1

/* Latency that makes an event. */
volatile const __u64 threshold_ns = 5000000ULL;
/* CLOCK_REALTIME - CLOCK_MONOTONIC in ns, set by the loader. */
volatile const __u64 mono_to_real_ns = 0;
/* Inode of the agent's (the host's) network namespace, set by the loader. */
volatile const __u64 host_netns_inum = 0;
/* 1 = no rule wants packets of the host network namespace (pushed down from the rules). */
volatile const __u64 skip_host_netns = 0;

struct rx_event {
	u8 saddr[16];
	u8 daddr[16];
	u64 latency;
	u64 cgroup_id;
	u32 pid;
	u32 seq;
	u32 ack_seq;
	u32 pkt_len;
	u32 netns;
	u16 sport;
	u16 dport;
	u8 where;
	u8 state;
	u8 host_netns;
	u8 _pad;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct rx_event);
} rx_scratch SEC(".maps");

/*
 * The packet's age in ns, 0 when it has no timestamp or is younger than the threshold.
 * `btf`: a BTF pointer, read by direct loads (no probe read).
 */
static __always_inline u64 skb_age(struct sk_buff *skb, bool btf)
{
	u64 ts = btf ? skb->tstamp : BPF_CORE_READ(skb, tstamp), now;
	bool mono = false;

	if (!ts)
		return 0;
	now = bpf_ktime_get_ns();
	if (bpf_core_field_exists(skb->tstamp_type))
		mono = (btf ? BPF_CORE_READ_BITFIELD(skb, tstamp_type)
			    : BPF_CORE_READ_BITFIELD_PROBED(skb, tstamp_type)) ==
		       HT_SKB_CLOCK_MONOTONIC;
	if (!mono)
		now += mono_to_real_ns;
	if (now <= ts || now - ts <= threshold_ns)
		return 0;
	return now - ts;
}

/* The cgroup to attribute the packet to (see the header comment). */
static __always_inline u64 rx_cgroup_id(const struct sock *sk, u8 where)
{
	struct cgroup *cgrp;

	if (where == WHERE_USER_COPY)
		return huatuo_task_cgroup_id((struct task_struct *)bpf_get_current_task(),
					     bpf_core_enum_value(enum cgroup_subsys_id, cpu_cgrp_id));
	if (!cgroup_v2 || !sk || !bpf_core_field_exists(sk->sk_cgrp_data.cgroup))
		return 0;
	cgrp = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
	return cgrp ? huatuo_cgroup_kn_id(cgrp) : 0;
}

/*
 * The network namespace the event would name: the socket's (`sk`, else the packet's owner),
 * else the device's. `btf`: the pointers are BTF pointers (tp_btf), read by direct loads.
 */
static __always_inline u32 packet_netns(struct sk_buff *skb, struct sock *sk, bool btf)
{
	struct net_device *dev;

	if (btf) {
		if (!sk)
			sk = skb->sk;
		if (sk)
			return sk->__sk_common.skc_net.net->ns.inum;
		dev = skb->dev;
		return dev ? dev->nd_net.net->ns.inum : 0;
	}
	if (!sk)
		sk = BPF_CORE_READ(skb, sk);
	if (sk)
		return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	return BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
}

/* True for a packet of the host network namespace when no rule wants those. */
static __always_inline bool skip_host(struct sk_buff *skb, struct sock *sk, bool btf)
{
	u32 netns;

	if (!skip_host_netns)
		return false;
	netns = packet_netns(skb, sk, btf);
	return netns && netns == host_netns_inum;
}

/* True unless the copied data belongs to a TCP socket (the only kind the template reports). */
static __always_inline bool not_tcp_copy(struct sk_buff *skb, bool btf)
{
	struct sock *sk;
	u16 family;

	if (btf) {
		sk = skb->sk;
		if (!sk)
			return true;
		family = sk->__sk_common.skc_family;
		if (family != HT_AF_INET && family != HT_AF_INET6)
			return true;
		return BPF_CORE_READ_BITFIELD(sk, sk_protocol) != HT_IPPROTO_TCP;
	}
	sk = BPF_CORE_READ(skb, sk);
	if (!sk)
		return true;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != HT_AF_INET && family != HT_AF_INET6)
		return true;
	return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != HT_IPPROTO_TCP;
}

static __always_inline int report(void *ctx, struct sk_buff *skb, struct sock *sk, u8 where,
				  bool at_data, bool btf)
{
	struct skb_tuple t = {};
	struct rx_event *e;
	u64 age = skb_age(skb, btf);
	u32 zero = 0;

	if (!age)
		return 0;
	if (!sk)
		sk = BPF_CORE_READ(skb, sk);
	if (ht_skb_tuple_at(skb, &t, at_data) && (!sk || ht_sock_tuple(sk, &t)))
		return 0;
	if (t.l4_proto != HT_IPPROTO_TCP)
		return 0;
	e = bpf_map_lookup_elem(&rx_scratch, &zero);
	if (!e)
		return 0;
	__builtin_memcpy(e->saddr, t.saddr, 16);
	__builtin_memcpy(e->daddr, t.daddr, 16);
	e->latency = age;
	e->sport = t.sport;
	e->dport = t.dport;
	e->seq = t.seq;
	e->ack_seq = t.ack_seq;
	e->pkt_len = BPF_CORE_READ(skb, len);
	e->where = where == WHERE_TCPV4_RCV && t.family == HT_AF_INET6 ? WHERE_TCPV6_RCV : where;
	e->state = sk ? BPF_CORE_READ(sk, __sk_common.skc_state) : 0;
	e->netns = ht_sock_netns(sk);
	if (!e->netns) {
		struct net_device *dev = BPF_CORE_READ(skb, dev);

		e->netns = dev ? BPF_CORE_READ(dev, nd_net.net, ns.inum) : 0;
	}
	e->host_netns = e->netns && e->netns == host_netns_inum;
	e->cgroup_id = rx_cgroup_id(sk, e->where);
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	HUATUO_EVENT_OUTPUT(ctx, e, sizeof(*e));
	return 0;
}

/* The stage programs: the cheap exits, then the report. */
static __always_inline int stage(void *ctx, struct sk_buff *skb, struct sock *sk, u8 where,
				 bool btf)
{
	if (where == WHERE_USER_COPY && not_tcp_copy(skb, btf))
		return 0;
	if (skip_host(skb, sk, btf))
		return 0;
	return report(ctx, skb, sk, where, where == WHERE_NETIF_RCV, btf);
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(tp_btf_netif_receive_skb, struct sk_buff *skb)
{
	return stage(ctx, skb, 0, WHERE_NETIF_RCV, true);
}

SEC("raw_tp/netif_receive_skb")
int raw_tp_netif_receive_skb(void *ctx)
{
	return stage(ctx, (struct sk_buff *)((u64 *)ctx)[0], 0, WHERE_NETIF_RCV, false);
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(tp_btf_tcp_probe, struct sock *sk, struct sk_buff *skb)
{
	return stage(ctx, skb, sk, WHERE_TCPV4_RCV, true);
}

SEC("raw_tp/tcp_probe")
int raw_tp_tcp_probe(void *ctx)
{
	return stage(ctx, (struct sk_buff *)((u64 *)ctx)[1], (struct sock *)((u64 *)ctx)[0],
		     WHERE_TCPV4_RCV, false);
}

SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(tp_btf_skb_copy_datagram_iovec, struct sk_buff *skb)
{
	return stage(ctx, skb, 0, WHERE_USER_COPY, true);
}

SEC("raw_tp/skb_copy_datagram_iovec")
int raw_tp_skb_copy_datagram_iovec(void *ctx)
{
	return stage(ctx, (struct sk_buff *)((u64 *)ctx)[0], 0, WHERE_USER_COPY, false);
}

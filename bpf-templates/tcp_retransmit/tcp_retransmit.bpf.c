// SPDX-License-Identifier: GPL-2.0
/*
 * tcp_retransmit: one event per retransmitted TCP segment (tcp:tcp_retransmit_skb), with the
 * connection's tuple and state, the segment's sequence number, the socket's retransmission
 * counters and congestion window, the network namespace and the cgroup of the running task.
 *
 * The tracepoint passes (sk, skb) (and an error code on >= 6.x, not read here). Without BTF
 * for tracepoints the raw tracepoint reads the same two pointers; the classic tracepoint's
 * record carries the socket address (skaddr).
 */
#include "huatuo.h"
#include "../drops/skb_tuple.h"

struct retransmit_event {
	u8 saddr[16];
	u8 daddr[16];
	u64 cgroup_id;
	u64 srtt_ns;
	u32 pid;
	u32 netns;
	u32 seq;
	u32 total_retrans;
	u32 retrans_out;
	u32 snd_cwnd;
	u16 sport;
	u16 dport;
	u16 family;
	u8 state;
	u8 pad;
	char comm[16];
};

static __always_inline int handle_retransmit(void *ctx, const struct sock *sk,
					     const struct sk_buff *skb)
{
	struct retransmit_event e = {};
	struct skb_tuple t = {};
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;

	if (!sk || ht_sock_tuple(sk, &t))
		return 0;
	__builtin_memcpy(e.saddr, t.saddr, 16);
	__builtin_memcpy(e.daddr, t.daddr, 16);
	e.sport = t.sport;
	e.dport = t.dport;
	e.family = t.family;
	e.state = BPF_CORE_READ(sk, __sk_common.skc_state);
	e.netns = ht_sock_netns(sk);
	if (skb) {
		struct tcp_skb_cb *cb = (struct tcp_skb_cb *)((struct sk_buff *)skb)->cb;
		e.seq = BPF_CORE_READ(cb, seq);
	}
	e.total_retrans = BPF_CORE_READ(tp, total_retrans);
	e.retrans_out = BPF_CORE_READ(tp, retrans_out);
	e.snd_cwnd = BPF_CORE_READ(tp, snd_cwnd);
	/* srtt_us holds 8 x the smoothed RTT in microseconds */
	e.srtt_ns = (u64)(BPF_CORE_READ(tp, srtt_us) >> 3) * 1000;
	e.pid = bpf_get_current_pid_tgid() >> 32;
	e.cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(e.comm, sizeof(e.comm));
	HUATUO_EVENT_OUTPUT(ctx, &e, sizeof(e));
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tp_btf_tcp_retransmit_skb, const struct sock *sk, const struct sk_buff *skb)
{
	return handle_retransmit(ctx, sk, skb);
}

SEC("raw_tp/tcp_retransmit_skb")
int raw_tp_tcp_retransmit_skb(struct bpf_raw_tracepoint_args *ctx)
{
	return handle_retransmit(ctx, (const struct sock *)((u64 *)ctx)[0],
				 (const struct sk_buff *)((u64 *)ctx)[1]);
}

/*
 * The classic record of tcp:tcp_retransmit_skb: socket and skb addresses. Its own event
 * class on newer kernels (trace_event_raw_tcp_retransmit_skb), the shared tcp_event_sk_skb
 * class on older ones; the field names are the same.
 */
struct trace_event_raw_tcp_retransmit_skb___compat {
	const void *skbaddr;
	const void *skaddr;
} __attribute__((preserve_access_index));

struct trace_event_raw_tcp_event_sk_skb___compat {
	const void *skbaddr;
	const void *skaddr;
} __attribute__((preserve_access_index));

SEC("tracepoint/tcp/tcp_retransmit_skb")
int tp_tcp_retransmit_skb(void *ctx)
{
	if (bpf_core_type_exists(struct trace_event_raw_tcp_retransmit_skb___compat)) {
		struct trace_event_raw_tcp_retransmit_skb___compat *rec = ctx;

		return handle_retransmit(ctx, (const struct sock *)BPF_CORE_READ(rec, skaddr),
					 (const struct sk_buff *)BPF_CORE_READ(rec, skbaddr));
	}
	struct trace_event_raw_tcp_event_sk_skb___compat *rec = ctx;

	return handle_retransmit(ctx, (const struct sock *)BPF_CORE_READ(rec, skaddr),
				 (const struct sk_buff *)BPF_CORE_READ(rec, skbaddr));
}

// SPDX-License-Identifier: GPL-2.0
/*
 * softirq_latency: time from a NET_RX/NET_TX softirq being raised on a CPU to its handler
 * starting (irq:softirq_raise -> irq:softirq_entry). One histogram per CPU and type in a
 * per-CPU array indexed by the softirq number, read at scrape time.
 */
#include "huatuo.h"

char LICENSE[] SEC("license") = "GPL";

#define SOFTIRQ_SLOTS 10 /* NR_SOFTIRQS */
#define NET_TX 2
#define NET_RX 3

/* Time of the first raise not yet followed by an entry, per CPU and softirq. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SOFTIRQ_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} raised SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SOFTIRQ_SLOTS);
	__type(key, __u32);
	__type(value, struct huatuo_hist);
} hist SEC(".maps");

static __always_inline void on_raise(__u32 vec)
{
	__u64 *ts;

	if (vec != NET_TX && vec != NET_RX)
		return;
	ts = bpf_map_lookup_elem(&raised, &vec);
	if (ts && *ts == 0)
		*ts = bpf_ktime_get_ns();
}

static __always_inline void on_entry(__u32 vec)
{
	struct huatuo_hist *h;
	__u64 *ts, delta;

	if (vec != NET_TX && vec != NET_RX)
		return;
	ts = bpf_map_lookup_elem(&raised, &vec);
	if (!ts || *ts == 0)
		return;
	delta = bpf_ktime_get_ns() - *ts;
	*ts = 0;
	h = bpf_map_lookup_elem(&hist, &vec);
	if (h && (__s64)delta >= 0)
		huatuo_hist_add(h, delta);
}

SEC("tp_btf/softirq_raise")
int BPF_PROG(tp_btf_softirq_raise, unsigned int vec)
{
	on_raise(vec);
	return 0;
}

SEC("tp_btf/softirq_entry")
int BPF_PROG(tp_btf_softirq_entry, unsigned int vec)
{
	on_entry(vec);
	return 0;
}

SEC("raw_tp/softirq_raise")
int BPF_PROG(raw_tp_softirq_raise, unsigned int vec)
{
	on_raise(vec);
	return 0;
}

SEC("raw_tp/softirq_entry")
int BPF_PROG(raw_tp_softirq_entry, unsigned int vec)
{
	on_entry(vec);
	return 0;
}

SEC("tracepoint/irq/softirq_raise")
int tp_softirq_raise(struct trace_event_raw_softirq *ctx)
{
	on_raise(ctx->vec);
	return 0;
}

SEC("tracepoint/irq/softirq_entry")
int tp_softirq_entry(struct trace_event_raw_softirq *ctx)
{
	on_entry(ctx->vec);
	return 0;
}

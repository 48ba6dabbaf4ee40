// SPDX-License-Identifier: GPL-2.0
/*
 * Bench prototype: softirq_latency's and softirq_off's raise/entry work in one program per
 * hook, each half switched by a const global, to measure what sharing the hook saves.
 */
#include "huatuo.h"

char LICENSE[] SEC("license") = "GPL";

#define SOFTIRQ_SLOTS 10
#define NET_TX 2
#define NET_RX 3

volatile const __u32 latency_on = 1;
volatile const __u32 off_on = 1;

struct pending_state {
	u64 since;
	u32 vec;
	u32 reported;
};

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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct pending_state);
} pending SEC(".maps");

SEC("tp_btf/softirq_raise")
int BPF_PROG(tp_btf_softirq_raise, unsigned int vec)
{
	u32 zero = 0;

	if (off_on) {
		struct pending_state *st = bpf_map_lookup_elem(&pending, &zero);

		if (st && !st->since) {
			st->since = bpf_ktime_get_ns();
			st->vec = vec;
			st->reported = 0;
		}
	}
	if (latency_on && (vec == NET_TX || vec == NET_RX)) {
		__u64 *ts = bpf_map_lookup_elem(&raised, &vec);

		if (ts && *ts == 0)
			*ts = bpf_ktime_get_ns();
	}
	return 0;
}

SEC("tp_btf/softirq_entry")
int BPF_PROG(tp_btf_softirq_entry, unsigned int vec)
{
	u32 zero = 0;

	if (off_on) {
		struct pending_state *st = bpf_map_lookup_elem(&pending, &zero);

		if (st)
			st->since = 0;
	}
	if (latency_on && (vec == NET_TX || vec == NET_RX)) {
		struct huatuo_hist *h;
		__u64 *ts = bpf_map_lookup_elem(&raised, &vec), delta;

		if (!ts || *ts == 0)
			return 0;
		delta = bpf_ktime_get_ns() - *ts;
		*ts = 0;
		h = bpf_map_lookup_elem(&hist, &vec);
		if (h && (__s64)delta >= 0)
			huatuo_hist_add(h, delta);
	}
	return 0;
}

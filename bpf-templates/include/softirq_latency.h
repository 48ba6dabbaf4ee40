/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The work of softirq_latency at irq:softirq_raise / irq:softirq_entry: time from a NET_RX or
 * NET_TX softirq being raised on a CPU to its handler starting, one histogram per CPU and type
 * in a per-CPU array indexed by the softirq number. Included by softirq_latency itself and by
 * softirq_off, whose programs on the same two hooks run it too when the loader hosts
 * softirq_latency there (one program per hook instead of two).
 */
#ifndef HUATUO_SOFTIRQ_LATENCY_H
#define HUATUO_SOFTIRQ_LATENCY_H

#define SOFTIRQ_SLOTS 10 /* NR_SOFTIRQS */
#define SOFTIRQ_NET_TX 2
#define SOFTIRQ_NET_RX 3

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

/*
 * A raise at `*now`: read from the clock here when still 0, and left in `*now` for the
 * caller, so a host that needs the time too reads the clock once per raise (a clock read is
 * about a third of what this hook costs beyond an empty program).
 */
static __always_inline void latency_on_raise_at(__u32 vec, __u64 *now)
{
	__u64 *ts;

	if (vec != SOFTIRQ_NET_TX && vec != SOFTIRQ_NET_RX)
		return;
	ts = bpf_map_lookup_elem(&raised, &vec);
	if (ts && *ts == 0) {
		if (!*now)
			*now = bpf_ktime_get_ns();
		*ts = *now;
	}
}

static __always_inline void latency_on_raise(__u32 vec)
{
	__u64 now = 0;

	latency_on_raise_at(vec, &now);
}

static __always_inline void latency_on_entry(__u32 vec)
{
	struct huatuo_hist *h;
	__u64 *ts, delta;

	if (vec != SOFTIRQ_NET_TX && vec != SOFTIRQ_NET_RX)
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

#endif

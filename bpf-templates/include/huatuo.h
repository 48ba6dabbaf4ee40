/* SPDX-License-Identifier: GPL-2.0 */
/*
 * huatuo.h: helpers shared by every huatuo kernel template.
 *
 *  - HUATUO_EVENT_OUTPUT(ctx, ptr, size): rate-limited output of one event record to the map
 *    `events` (a ring buffer, or a perf event array when compiled with -DHUATUO_PERFBUF).
 *    Only with -DHUATUO_EVENTS, which build.rs passes for templates whose schema.toml has an
 *    [event] table (polled templates carry no ring buffer, so they load on any kernel).
 *  - huatuo_ratelimit_allow(): a machine-wide window of `burst` events per `burst /
 *    rate_per_sec` seconds (rate_per_sec 0 = no limit), both set by the loader from the rule.
 *  - huatuo_counters: per-CPU array, index HUATUO_CNT_EMITTED / _SHED / _LOST / _MAP_FULL.
 *  - huatuo_log10l_bucket(ns): decimal log-linear histogram bucketing (see below).
 *  - huatuo_task_cgroup_id(task, subsys): the cgroup id used to attribute work to containers
 *    (huatuo_task_cgroup_id_btf: the same from a BTF task pointer, by direct loads).
 *
 * Every tunable is a `volatile const __u64`, set by the loader before load.
 *
 * The host build of the bucketing (used by the parity test) defines HUATUO_HOST_BUCKET_ONLY
 * and gets only the bucketing function, with no BPF headers.
 */
#ifndef __HUATUO_H
#define __HUATUO_H

#ifdef HUATUO_HOST_BUCKET_ONLY
#include <stdint.h>
typedef uint64_t __u64;
typedef uint32_t __u32;
#define HUATUO_INLINE static inline
#else
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#define HUATUO_INLINE static __always_inline
#endif

/*
 * Histogram bucketing: decimal log-linear, one significant digit, in nanoseconds.
 *
 * Every zone edge HUATUO publishes is a digit times a power of ten: 10/20/50 ms (runqlat),
 * 10/100/1000 us (softirq latency), 20/30/50/100/200/400 ms (block IO q2c/d2c). Power-of-two
 * buckets cannot hit 30 ms or 400 ms exactly without thousands of sub-buckets, so each decade
 * [10^k us, 10^(k+1) us) is split into 9 linear buckets with edges d * 10^k us (d = 1..9).
 *
 *   bucket 0                    [0, 1 us)
 *   bucket 1 + 9*k + (d - 1)    [d * 10^k us, (d + 1) * 10^k us)   k = 0..7, d = 1..9
 *   bucket 73                   [100 s, +inf)
 *
 * The relative width of a bucket is at most 100 % (1 -> 2) and at least 11 % (9 -> 10).
 * The user-space decoder (huatuo_bpf::hist) gives each bucket its exclusive upper bound.
 */
#define HUATUO_HIST_DECADES 8
#define HUATUO_HIST_SLOTS (2 + 9 * HUATUO_HIST_DECADES)

HUATUO_INLINE __u32 huatuo_log10l_bucket(__u64 ns)
{
	__u64 base = 1000; /* 1 us */
	__u32 k;

	if (ns < base)
		return 0;
#ifndef HUATUO_HOST_BUCKET_ONLY
#pragma unroll
#endif
	for (k = 0; k < HUATUO_HIST_DECADES; k++) {
		if (ns < base * 10)
			return 1 + 9 * k + (__u32)(ns / base) - 1;
		base *= 10;
	}
	return HUATUO_HIST_SLOTS - 1;
}

#ifndef HUATUO_HOST_BUCKET_ONLY

/* One histogram: a count per bucket. */
struct huatuo_hist {
	__u64 slots[HUATUO_HIST_SLOTS];
};

/*
 * The bucket of `ns`, as a u64 kept behind a compiler barrier, so the bounds check and the
 * access use the same register: with a u32 clang checks one zero-extended copy and indexes
 * with another, and the verifier rejects raw_tp programs with "R0 unbounded memory access".
 * A caller adding one observation to several histograms buckets it once.
 */
HUATUO_INLINE __u64 huatuo_hist_bucket(__u64 ns)
{
	__u64 slot = huatuo_log10l_bucket(ns);

	asm volatile("" : "+r"(slot));
	return slot;
}

/* The counter of `bucket` in `h`, NULL when out of range. Every histogram write goes here. */
HUATUO_INLINE __u64 *huatuo_hist_at(struct huatuo_hist *h, __u64 bucket)
{
	if (bucket >= HUATUO_HIST_SLOTS)
		return NULL;
	return &h->slots[bucket];
}

/* The slot of `ns` in `h`, NULL when out of range. */
HUATUO_INLINE __u64 *huatuo_hist_slot(struct huatuo_hist *h, __u64 ns)
{
	return huatuo_hist_at(h, huatuo_hist_bucket(ns));
}

/* Adds one observation to a histogram shared between CPUs (hash map values). */
HUATUO_INLINE void huatuo_hist_add_atomic(struct huatuo_hist *h, __u64 ns)
{
	__u64 *slot = huatuo_hist_slot(h, ns);

	if (slot)
		__sync_fetch_and_add(slot, 1);
}

/* Adds one observation to a per-CPU histogram (no atomics needed). */
HUATUO_INLINE void huatuo_hist_add(struct huatuo_hist *h, __u64 ns)
{
	__u64 *slot = huatuo_hist_slot(h, ns);

	if (slot)
		(*slot)++;
}

/*
 * The slot of `key` in a direct-mapped table of 2^bits slots: the top bits of a multiply,
 * fold, multiply by 2^64/phi. Ids handed out in steps (kernfs inodes advance by the number
 * of files of a cgroup directory) spread over the slots like random keys: the low bits would
 * put ids 64 apart in one slot, and one multiply alone ids 16 apart in a third of them.
 * huatuo_bpf::slots::slot_of is the same function.
 */
HUATUO_INLINE __u32 huatuo_key_slot(__u64 key, __u32 bits)
{
	__u64 h = key * 0x9E3779B97F4A7C15ULL;

	h ^= h >> 32;
	h *= 0x9E3779B97F4A7C15ULL;
	return (__u32)(h >> (64 - bits));
}

/* Counters every template carries; read by the loader's status. */
#define HUATUO_CNT_EMITTED 0
#define HUATUO_CNT_SHED 1
#define HUATUO_CNT_LOST 2
/* An observation dropped because a map was full (a new cgroup, disk or in-flight entry). */
#define HUATUO_CNT_MAP_FULL 3
#define HUATUO_CNT_MAX 4

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HUATUO_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} huatuo_counters SEC(".maps");

HUATUO_INLINE void huatuo_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&huatuo_counters, &idx);

	if (v)
		(*v)++;
}

#ifdef HUATUO_EVENTS
/*
 * Rate limit tunables: `burst` events per window of `burst / rate_per_sec` seconds for the
 * whole machine (rate_per_sec 0 = no limit), so a rule's `limit 20 per 1s` is what reaches
 * user space, whatever the number of CPUs.
 */
volatile const __u64 rate_per_sec = 0;
volatile const __u64 burst = 64;

/* The current window of the machine-wide limit: one entry shared by every CPU. */
struct huatuo_window {
	__u64 start_ns;
	__u64 used;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct huatuo_window);
} huatuo_window SEC(".maps");

#define HUATUO_NSEC 1000000000ULL

/*
 * True when the machine-wide window has room for one more event (and takes it). A fixed
 * window of `burst` events per `burst / rate_per_sec` s: the long-run rate is rate_per_sec
 * and at most `burst` pass at once. The count is one shared word added to atomically (plain
 * XADD, which every kernel with BPF has); CPUs that test it at the same instant may each pass,
 * so a window lets through at most burst + CPUs - 1.
 */
HUATUO_INLINE int huatuo_ratelimit_allow(void)
{
	__u64 rate = rate_per_sec, cap = burst ? burst : 1, period, now;
	struct huatuo_window *w;
	__u32 zero = 0;

	if (rate == 0)
		return 1;
	w = bpf_map_lookup_elem(&huatuo_window, &zero);
	if (!w)
		return 1;
	period = cap * HUATUO_NSEC / rate;
	now = bpf_ktime_get_ns();
	if (w->start_ns == 0 || now - w->start_ns >= period) {
		w->start_ns = now;
		w->used = 0;
	}
	if (w->used >= cap)
		return 0;
	__sync_fetch_and_add(&w->used, 1);
	return 1;
}

#ifdef HUATUO_PERFBUF
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

#define HUATUO_OUTPUT_RAW(ctx, ptr, size) \
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, ptr, size)
#else
/*
 * 128 KiB: hundreds of events between two reads of user space, which drains the ring as it
 * is woken. The pages count twice in the agent's resident memory (user space maps the data
 * area twice, to read across the wrap), so a template expecting bursts defines a larger size
 * before including this file; what does not fit is counted as lost.
 */
#ifndef HUATUO_RINGBUF_BYTES
#define HUATUO_RINGBUF_BYTES (128 * 1024)
#endif
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, HUATUO_RINGBUF_BYTES);
} events SEC(".maps");

#define HUATUO_OUTPUT_RAW(ctx, ptr, size) bpf_ringbuf_output(&events, ptr, size, 0)
#endif

/*
 * Emits one event record, counting exactly one of emitted, shed (rate limit) or lost
 * (the buffer was full). Evaluates to 0 when the record was written.
 */
#define HUATUO_EVENT_OUTPUT(ctx, ptr, size)                                \
	({                                                                  \
		long __ret = -1;                                            \
		if (!huatuo_ratelimit_allow()) {                            \
			huatuo_count(HUATUO_CNT_SHED);                      \
		} else {                                                    \
			__ret = HUATUO_OUTPUT_RAW(ctx, ptr, size);          \
			huatuo_count(__ret ? HUATUO_CNT_LOST                \
					   : HUATUO_CNT_EMITTED);           \
		}                                                           \
		__ret;                                                      \
	})
#endif /* HUATUO_EVENTS */

/* Which cgroup hierarchy attributes tasks to containers: 0 = v1 controller, 1 = cgroup v2. */
volatile const __u64 cgroup_v2 = 0;

/* kernfs_node before 5.5 had a union id; CO-RE picks whichever exists. */
union kernfs_node_id___old {
	struct {
		__u32 ino;
		__u32 generation;
	};
	__u64 id;
} __attribute__((preserve_access_index));

struct kernfs_node___old {
	union kernfs_node_id___old id;
} __attribute__((preserve_access_index));

/* The kernfs id (the directory inode number) of a cgroup. */
HUATUO_INLINE __u64 huatuo_cgroup_kn_id(struct cgroup *cgrp)
{
	struct kernfs_node *kn = BPF_CORE_READ(cgrp, kn);

	if (!kn)
		return 0;
	if (bpf_core_type_exists(union kernfs_node_id___old))
		return BPF_CORE_READ((struct kernfs_node___old *)kn, id.id);
	return BPF_CORE_READ(kn, id);
}

/*
 * The cgroup a task belongs to for container attribution: the v2 cgroup when v2 is the real
 * hierarchy (cgroup_v2 = 1), else the cgroup of the given v1 controller (`subsys`, e.g.
 * cpu_cgrp_id). NULL when it cannot be read.
 */
HUATUO_INLINE struct cgroup *huatuo_task_cgroup(struct task_struct *task, int subsys)
{
	if (cgroup_v2)
		return BPF_CORE_READ(task, cgroups, dfl_cgrp);
	return BPF_CORE_READ(task, cgroups, subsys[subsys], cgroup);
}

/* The id of that cgroup (0 when unknown). */
HUATUO_INLINE __u64 huatuo_task_cgroup_id(struct task_struct *task, int subsys)
{
	struct cgroup *cgrp = huatuo_task_cgroup(task, subsys);

	if (!cgrp)
		return 0;
	return huatuo_cgroup_kn_id(cgrp);
}

/*
 * huatuo_task_cgroup for a BTF task pointer (tp_btf programs): the same chain read by direct
 * loads instead of one probe read per hop.
 */
HUATUO_INLINE struct cgroup *huatuo_task_cgroup_btf(struct task_struct *task, int subsys)
{
	struct css_set *cset = task->cgroups;
	struct cgroup_subsys_state *css;

	if (!cset)
		return NULL;
	if (cgroup_v2)
		return cset->dfl_cgrp;
	css = cset->subsys[subsys];
	return css ? css->cgroup : NULL;
}

/* huatuo_task_cgroup_id from a BTF task pointer (kernels with tp_btf have a u64 kn->id). */
HUATUO_INLINE __u64 huatuo_task_cgroup_id_btf(struct task_struct *task, int subsys)
{
	struct cgroup *cgrp = huatuo_task_cgroup_btf(task, subsys);

	if (!cgrp || !cgrp->kn)
		return 0;
	return cgrp->kn->id;
}

#endif /* HUATUO_HOST_BUCKET_ONLY */

#endif /* __HUATUO_H */

// SPDX-License-Identifier: GPL-2.0
/*
 * reclaim: time tasks spend stalled reclaiming memory in their own context.
 *
 *  - vmscan:mm_vmscan_direct_reclaim_begin/end   direct reclaim in the page allocator
 *  - vmscan:mm_vmscan_memcg_reclaim_begin/end     reclaim when a memcg charge hits its limit
 *  - compaction:mm_compaction_begin/end           direct compaction (kcompactd is ignored)
 *
 * Every completed stall is added to a histogram (allocation stalls, compaction stalls, and
 * memcg reclaim stalls per memory cgroup), read at scrape time; allocation and compaction
 * stalls are also summed in nanoseconds per CPU (HUATUO's memory_free_allocpages_stall and
 * memory_free_compaction_stall). The number of memcg reclaims of a cgroup (HUATUO's
 * memory_reclaim_container_directstall) is its histogram's count, summed in user space, so
 * the memcg path needs no second map. Events implement HUATUO's
 * memreclaim rule in the kernel: a task's stall time is summed over a window (`window_ns`,
 * 1 s); when the sum passes `threshold_ns` (900 ms) one event carries the sum and the window
 * restarts.
 */
#include "huatuo.h"

#define KIND_DIRECT 0
#define KIND_MEMCG 1
#define KIND_COMPACTION 2

/* Stall time within one window that makes an event. */
volatile const __u64 threshold_ns = 900000000ULL;
/* Length of the accumulation window. */
volatile const __u64 window_ns = 1000000000ULL;

struct reclaim_event {
	u64 cgroup_id;
	u64 deltatime;
	u32 pid;
	u32 tid;
	u32 kind;
	char comm[16];
};

struct stall_key {
	u32 tid;
	u32 kind;
};

struct stall_acc {
	u64 window_start;
	u64 sum;
};

/* Begin timestamps of stalls in progress, per task and kind. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct stall_key);
	__type(value, u64);
} stall_start SEC(".maps");

/* Per-task sums over the current window. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct stall_key);
	__type(value, struct stall_acc);
} stall_window SEC(".maps");

/* Host histograms: allocation stalls (direct reclaim) and direct compaction stalls. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct huatuo_hist);
} alloc_stall SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct huatuo_hist);
} compaction_stall SEC(".maps");

/* Host sums of stall time (ns): direct reclaim and direct compaction. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} alloc_stall_ns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} compaction_stall_ns SEC(".maps");

/* memcg reclaim stalls per memory cgroup id; LRU: cgroups that went away are evicted first. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, u64);
	__type(value, struct huatuo_hist);
} memcg_stall SEC(".maps");

static __always_inline void stall_begin(u32 kind)
{
	struct stall_key key = { .tid = (u32)bpf_get_current_pid_tgid(), .kind = kind };
	u64 now = bpf_ktime_get_ns();

	bpf_map_update_elem(&stall_start, &key, &now, BPF_ANY);
}

/* All-zero initial value of a new memcg histogram (too large for the BPF stack). */
struct huatuo_hist zero_hist;

static __always_inline void record_hist(u32 kind, u64 cgroup_id, u64 delta)
{
	struct huatuo_hist *h;

	if (kind == KIND_MEMCG) {
		h = bpf_map_lookup_elem(&memcg_stall, &cgroup_id);
		if (!h) {
			bpf_map_update_elem(&memcg_stall, &cgroup_id, &zero_hist, BPF_NOEXIST);
			h = bpf_map_lookup_elem(&memcg_stall, &cgroup_id);
		}
		if (h)
			huatuo_hist_add_atomic(h, delta);
		else
			huatuo_count(HUATUO_CNT_MAP_FULL);
		return;
	}
	u32 zero = 0;
	u64 *sum;

	if (kind == KIND_DIRECT) {
		h = bpf_map_lookup_elem(&alloc_stall, &zero);
		sum = bpf_map_lookup_elem(&alloc_stall_ns, &zero);
	} else {
		h = bpf_map_lookup_elem(&compaction_stall, &zero);
		sum = bpf_map_lookup_elem(&compaction_stall_ns, &zero);
	}
	if (h)
		huatuo_hist_add(h, delta);
	if (sum)
		*sum += delta;
}

static __always_inline int stall_end(void *ctx, u32 kind)
{
	u64 id = bpf_get_current_pid_tgid();
	struct stall_key key = { .tid = (u32)id, .kind = kind };
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct stall_acc *acc, fresh = {};
	struct reclaim_event e = {};
	u64 *start, now = bpf_ktime_get_ns(), delta, cgroup_id;

	start = bpf_map_lookup_elem(&stall_start, &key);
	if (!start)
		return 0;
	delta = now - *start;
	bpf_map_delete_elem(&stall_start, &key);

	cgroup_id = huatuo_task_cgroup_id(task, bpf_core_enum_value(enum cgroup_subsys_id,
								     memory_cgrp_id));
	record_hist(kind, cgroup_id, delta);

	acc = bpf_map_lookup_elem(&stall_window, &key);
	if (!acc) {
		fresh.window_start = *start;
		bpf_map_update_elem(&stall_window, &key, &fresh, BPF_ANY);
		acc = bpf_map_lookup_elem(&stall_window, &key);
		if (!acc)
			return 0;
	}
	if (now - acc->window_start > window_ns && acc->sum + delta <= threshold_ns) {
		/* a new window starts with this stall */
		acc->window_start = now - delta;
		acc->sum = 0;
	}
	acc->sum += delta;
	if (acc->sum <= threshold_ns)
		return 0;

	e.cgroup_id = cgroup_id;
	e.deltatime = acc->sum;
	e.pid = id >> 32;
	e.tid = (u32)id;
	e.kind = kind;
	bpf_get_current_comm(e.comm, sizeof(e.comm));
	acc->sum = 0;
	acc->window_start = now;
	HUATUO_EVENT_OUTPUT(ctx, &e, sizeof(e));
	return 0;
}

SEC("tp_btf/mm_vmscan_direct_reclaim_begin")
int BPF_PROG(tp_btf_direct_reclaim_begin)
{
	stall_begin(KIND_DIRECT);
	return 0;
}

SEC("tp_btf/mm_vmscan_direct_reclaim_end")
int BPF_PROG(tp_btf_direct_reclaim_end)
{
	return stall_end(ctx, KIND_DIRECT);
}

SEC("tp_btf/mm_vmscan_memcg_reclaim_begin")
int BPF_PROG(tp_btf_memcg_reclaim_begin)
{
	stall_begin(KIND_MEMCG);
	return 0;
}

SEC("tp_btf/mm_vmscan_memcg_reclaim_end")
int BPF_PROG(tp_btf_memcg_reclaim_end)
{
	return stall_end(ctx, KIND_MEMCG);
}

SEC("tp_btf/mm_compaction_begin")
int BPF_PROG(tp_btf_compaction_begin, struct compact_control *cc)
{
	if (BPF_CORE_READ(cc, direct_compaction))
		stall_begin(KIND_COMPACTION);
	return 0;
}

SEC("tp_btf/mm_compaction_end")
int BPF_PROG(tp_btf_compaction_end)
{
	return stall_end(ctx, KIND_COMPACTION);
}

/* Raw tracepoint twins for kernels without BTF-typed tracepoints. */
SEC("raw_tp/mm_vmscan_direct_reclaim_begin")
int raw_tp_direct_reclaim_begin(void *ctx)
{
	stall_begin(KIND_DIRECT);
	return 0;
}

SEC("raw_tp/mm_vmscan_direct_reclaim_end")
int raw_tp_direct_reclaim_end(void *ctx)
{
	return stall_end(ctx, KIND_DIRECT);
}

SEC("raw_tp/mm_vmscan_memcg_reclaim_begin")
int raw_tp_memcg_reclaim_begin(void *ctx)
{
	stall_begin(KIND_MEMCG);
	return 0;
}

SEC("raw_tp/mm_vmscan_memcg_reclaim_end")
int raw_tp_memcg_reclaim_end(void *ctx)
{
	return stall_end(ctx, KIND_MEMCG);
}

SEC("raw_tp/mm_compaction_begin")
int raw_tp_compaction_begin(void *ctx)
{
	struct compact_control *cc = (struct compact_control *)((u64 *)ctx)[0];

	if (BPF_CORE_READ(cc, direct_compaction))
		stall_begin(KIND_COMPACTION);
	return 0;
}

SEC("raw_tp/mm_compaction_end")
int raw_tp_compaction_end(void *ctx)
{
	return stall_end(ctx, KIND_COMPACTION);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * runqlat: run queue latency, the time from a task becoming runnable (wakeup, new task,
 * preemption) to it running on a CPU. One histogram for the host (per-CPU array) and one
 * per container cgroup (tasks of the root cgroup, which is no container, are kept out of
 * it), read at scrape time. A cgroup's histogram lives on each CPU in the slot its id hashes
 * to in a per-CPU table when the slot is free or already its own, else in a hash map shared
 * by the CPUs; user space sums both per cgroup id.
 *
 * Two ways to measure, chosen per kernel by the loader's attach chain:
 *
 *  - sched_info (preferred, `requires = ["sched_info"]`): the scheduler itself adds every run
 *    queue wait to `task->sched_info.run_delay` and counts arrivals in `pcount` (the numbers
 *    behind /proc/<pid>/schedstat and delay accounting). When a task leaves the CPU at
 *    sched_switch, its waits since its previous switch-out are `run_delay` minus the value
 *    remembered then: one program on sched_switch, no clock read, no wakeup programs, and a
 *    wait split by a migration between run queues is counted whole.
 *  - wakeup timestamps (fallback where the kernel keeps no sched_info): sched_wakeup,
 *    sched_wakeup_new and preemption at sched_switch stamp the task; switch-in measures.
 *
 * Attach variants: tp_btf, raw_tp (both see the task pointers and attribute cgroups) and the
 * classic tracepoint (the sched_info variant reads the outgoing task as the current task; the
 * wakeup variant sees pids only: host histogram only).
 *
 * Built twice (schema `task_storage = true`): with -DHUATUO_TASK_STORAGE per-task state lives
 * in task storage (BPF_MAP_TYPE_TASK_STORAGE, >= 5.11) and the object holds the tp_btf
 * programs only (task storage needs BTF task pointers); without it, in hash maps keyed by
 * pid, with every variant, for older kernels. An object that declares a map the kernel cannot
 * create does not load at all, hence two objects, not two program sets in one.
 */
#include "huatuo.h"

char LICENSE[] SEC("license") = "GPL";

/* 1 = also keep the per-cgroup histograms (set by the loader when a rule asks). */
volatile const __u64 per_cgroup = 1;

#ifdef HUATUO_TASK_STORAGE
/* Start timestamp per task; 0 = not waiting in a run queue. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} start SEC(".maps");
#else
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} start SEC(".maps");
#endif

/* A task's sched_info counters at its last switch-out (sched_info variants). */
struct sched_seen {
	__u64 run_delay;
	__u64 pcount;
	/* task->start_time: tells a reused pid from the task that had it (hash map only) */
	__u64 start_time;
};

#ifdef HUATUO_TASK_STORAGE
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sched_seen);
} seen SEC(".maps");
#else
/* LRU: entries of exited tasks are evicted first; an evicted task loses one observation. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct sched_seen);
} seen SEC(".maps");
#endif

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct huatuo_hist);
} hist_host SEC(".maps");

/*
 * Per-CPU direct-mapped cgroup histograms: 2^HIST_CGROUP_SLOT_BITS slots per CPU, a cgroup
 * id going to slot huatuo_key_slot(id). A slot holds the id that claimed it (0: free) and
 * its histogram. The common case of a sched_switch is one array lookup and a plain
 * increment; a cgroup whose slot another cgroup holds on this CPU goes to `hist_cgroup`.
 * Kernel memory: 64 slots x 600 B = 37.5 KiB per possible CPU (2.5 MB on 64 CPUs, 9.8 MB
 * on 256; 256 slots would be 39 MB there). User space frees the slots of cgroups that are
 * no container (gone) so others can claim them. Every attach variant records here: the
 * per-CPU array and the hash exist on every kernel the template loads on.
 */
#define HIST_CGROUP_SLOT_BITS 6

struct cgroup_slot {
	__u64 cgid;
	struct huatuo_hist hist;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1 << HIST_CGROUP_SLOT_BITS);
	__type(key, __u32);
	__type(value, struct cgroup_slot);
} hist_cgroup_slots SEC(".maps");

/* LRU: cgroups that went away are evicted first when the map fills. Written only for a
 * cgroup whose slot another cgroup holds on the CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct huatuo_hist);
} hist_cgroup SEC(".maps");

/* Value used to create a cgroup's histogram (BPF stack is too small for one). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct huatuo_hist);
} hist_zero SEC(".maps");

struct task_struct___old {
	long state;
} __attribute__((preserve_access_index));

/*
 * Counts one observation in `bucket` of the histogram of cgroup `cgid`: in its slot on this
 * CPU when the slot is its own or free (then claimed), else in the shared hash.
 */
static __always_inline void record_cgroup(__u64 cgid, __u64 bucket)
{
	struct cgroup_slot *own;
	struct huatuo_hist *h;
	__u64 *slot;
	__u32 zero = 0, index = huatuo_key_slot(cgid, HIST_CGROUP_SLOT_BITS);

	own = bpf_map_lookup_elem(&hist_cgroup_slots, &index);
	if (own && (own->cgid == cgid || !own->cgid)) {
		own->cgid = cgid;
		slot = huatuo_hist_at(&own->hist, bucket);
		if (slot)
			(*slot)++;
		return;
	}
	h = bpf_map_lookup_elem(&hist_cgroup, &cgid);
	if (!h) {
		struct huatuo_hist *init = bpf_map_lookup_elem(&hist_zero, &zero);

		if (!init)
			return;
		bpf_map_update_elem(&hist_cgroup, &cgid, init, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&hist_cgroup, &cgid);
		if (!h) {
			huatuo_count(HUATUO_CNT_MAP_FULL);
			return;
		}
	}
	slot = huatuo_hist_at(h, bucket);
	if (slot)
		__sync_fetch_and_add(slot, 1);
}

/*
 * A task waited `delta` ns in a run queue; `task` (may be NULL) gives its cgroup. `btf`: the
 * pointer is a BTF task pointer (tp_btf), whose cgroup chain is read directly. The wait is
 * bucketed once for both histograms.
 */
static __always_inline void record(__u64 delta, struct task_struct *task, bool btf)
{
	struct huatuo_hist *h;
	__u64 bucket, *slot;
	__u32 zero = 0;

	if ((__s64)delta < 0)
		return;
	bucket = huatuo_hist_bucket(delta);
	h = bpf_map_lookup_elem(&hist_host, &zero);
	if (h) {
		slot = huatuo_hist_at(h, bucket);
		if (slot)
			(*slot)++;
	}
	if (task && per_cgroup) {
		int subsys = bpf_core_enum_value(enum cgroup_subsys_id, cpu_cgrp_id);
		struct cgroup *cgrp;
		__u64 cgid;

		/*
		 * A task of the root cgroup is in no container: user space would drop its
		 * histogram, so it is not kept (the root's tasks are most of a host's switches).
		 */
		if (btf) {
			cgrp = huatuo_task_cgroup_btf(task, subsys);
			if (!cgrp || cgrp->level == 0 || !cgrp->kn)
				return;
			cgid = cgrp->kn->id;
		} else {
			cgrp = huatuo_task_cgroup(task, subsys);
			if (!cgrp || BPF_CORE_READ(cgrp, level) == 0)
				return;
			cgid = huatuo_cgroup_kn_id(cgrp);
		}
		if (cgid)
			record_cgroup(cgid, bucket);
	}
}

/* tp_btf: the task's state read directly from the BTF pointer. */
static __always_inline long task_state_btf(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return t->__state;
	return ((struct task_struct___old *)t)->state;
}

#ifdef HUATUO_TASK_STORAGE
/* tp_btf: `p` becomes runnable. */
static __always_inline void enqueue_task(struct task_struct *p)
{
	__u64 *tsp;

	if (!p->pid)
		return;
	tsp = bpf_task_storage_get(&start, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!tsp) {
		/* no memory for the task's storage, or the storage lock was busy */
		huatuo_count(HUATUO_CNT_MAP_FULL);
		return;
	}
	*tsp = bpf_ktime_get_ns();
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(tp_btf_sched_wakeup, struct task_struct *p)
{
	enqueue_task(p);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(tp_btf_sched_wakeup_new, struct task_struct *p)
{
	enqueue_task(p);
	return 0;
}

/* prev is preempted (TASK_RUNNING == 0: it stays on the run queue) and next starts running. */
SEC("tp_btf/sched_switch")
int BPF_PROG(tp_btf_sched_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	__u64 *tsp, ts;

	if (task_state_btf(prev) == 0)
		enqueue_task(prev);
	tsp = bpf_task_storage_get(&start, next, 0, 0);
	if (!tsp || !*tsp)
		return 0;
	ts = *tsp;
	*tsp = 0;
	record(bpf_ktime_get_ns() - ts, next, true);
	return 0;
}

#else /* !HUATUO_TASK_STORAGE */

static __always_inline void enqueue(__u32 pid)
{
	__u64 ts;

	if (!pid)
		return;
	ts = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&start, &pid, &ts, BPF_ANY))
		huatuo_count(HUATUO_CNT_MAP_FULL);
}

static __always_inline long task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___old *)t, state);
}

/* The task `pid` starts running; `next` (may be NULL) gives its cgroup. */
static __always_inline void dequeue(__u32 pid, struct task_struct *next, bool btf)
{
	__u64 *tsp, delta;

	tsp = bpf_map_lookup_elem(&start, &pid);
	if (!tsp)
		return;
	delta = bpf_ktime_get_ns() - *tsp;
	bpf_map_delete_elem(&start, &pid);
	record(delta, next, btf);
}

/*
 * prev is preempted (TASK_RUNNING == 0: it stays on the run queue) and next starts running.
 * The tp_btf variants pass their BTF pointers' fields read directly (no probe read); raw_tp
 * passes them through BPF_CORE_READ.
 */
static __always_inline void on_switch(long prev_state, __u32 prev_pid, __u32 next_pid,
				      struct task_struct *next, bool btf)
{
	if (prev_state == 0)
		enqueue(prev_pid);
	dequeue(next_pid, next, btf);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(tp_btf_sched_wakeup, struct task_struct *p)
{
	enqueue(p->pid);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(tp_btf_sched_wakeup_new, struct task_struct *p)
{
	enqueue(p->pid);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(tp_btf_sched_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	on_switch(task_state_btf(prev), prev->pid, next->pid, next, true);
	return 0;
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(raw_tp_sched_wakeup, struct task_struct *p)
{
	enqueue(BPF_CORE_READ(p, pid));
	return 0;
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(raw_tp_sched_wakeup_new, struct task_struct *p)
{
	enqueue(BPF_CORE_READ(p, pid));
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(raw_tp_sched_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	on_switch(task_state(prev), BPF_CORE_READ(prev, pid), BPF_CORE_READ(next, pid), next,
		  false);
	return 0;
}

SEC("tracepoint/sched/sched_wakeup")
int tp_sched_wakeup(struct trace_event_raw_sched_wakeup_template *ctx)
{
	enqueue(ctx->pid);
	return 0;
}

SEC("tracepoint/sched/sched_wakeup_new")
int tp_sched_wakeup_new(struct trace_event_raw_sched_wakeup_template *ctx)
{
	enqueue(ctx->pid);
	return 0;
}

SEC("tracepoint/sched/sched_switch")
int tp_sched_switch(struct trace_event_raw_sched_switch *ctx)
{
	if (ctx->prev_state == 0)
		enqueue(ctx->prev_pid);
	dequeue(ctx->next_pid, NULL, false);
	return 0;
}

#endif /* HUATUO_TASK_STORAGE */

/*
 * Queued variants (preferred): no per-task state at all. The scheduler stamps a task that
 * becomes runnable with its run queue's clock (`sched_info.last_queued`) and clears the stamp
 * when the task arrives on a CPU, which happens right after sched_switch. At sched_switch the
 * wait of `next` is therefore the run queue's clock now (updated by __schedule just before)
 * minus that stamp: two loads the scheduler is about to make itself, no map but the
 * histogram. The run queue is reached from the outgoing task's scheduling entity (its
 * cfs_rq, set for every task on this CPU); a kernel without group scheduling has no
 * `se.cfs_rq`, fails the CO-RE relocation and falls back to the sched_info variants. A wait
 * cut by a migration between run queues is counted from the arrival on the new queue.
 */
static __always_inline void on_switch_in(__u64 queued, __u64 clock, struct task_struct *next,
					 bool btf)
{
	if (!queued || clock < queued)
		return;
	record(clock - queued, next, btf);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(tp_btf_sched_switch_queued, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	struct cfs_rq *cfs = prev->se.cfs_rq;

	if (!cfs || !cfs->rq)
		return 0;
	on_switch_in(next->sched_info.last_queued, cfs->rq->clock, next, true);
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(raw_tp_sched_switch_queued, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	on_switch_in(BPF_CORE_READ(next, sched_info.last_queued),
		     BPF_CORE_READ(prev, se.cfs_rq, rq, clock), next, false);
	return 0;
}

/*
 * sched_info variants. `task` leaves the CPU with the kernel's counters `run_delay` (ns spent
 * waiting in run queues, ever) and `pcount` (arrivals on a CPU, ever); `seen` holds them from
 * its previous switch-out, zero for a task seen the first time. Every arrival since then ended
 * one wait; normally exactly one. A task first seen after a single arrival (a new task) has
 * all its waiting in that one wait; one that existed before the agent only sets the baseline.
 */
static __always_inline void account_waits(struct sched_seen *seen, __u64 run_delay, __u64 pcount,
					  struct task_struct *task, bool btf)
{
	__u64 delta = run_delay - seen->run_delay;
	bool first = seen->pcount == 0;

	if (pcount == seen->pcount)
		return;
	seen->run_delay = run_delay;
	seen->pcount = pcount;
	if (first && pcount > 1)
		return; /* it existed before the agent: baseline only */
	record(delta, task, btf);
}

#ifdef HUATUO_TASK_STORAGE

SEC("tp_btf/sched_switch")
int BPF_PROG(tp_btf_sched_switch_schedinfo, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	struct sched_seen *s;

	if (!prev->pid)
		return 0;
	s = bpf_task_storage_get(&seen, prev, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s) {
		huatuo_count(HUATUO_CNT_MAP_FULL);
		return 0;
	}
	account_waits(s, prev->sched_info.run_delay, prev->sched_info.pcount, prev, true);
	return 0;
}

#else /* !HUATUO_TASK_STORAGE */

/* The hash-map form: the entry of `pid`, created (zero) for a task seen the first time. */
static __always_inline void switch_out(__u32 pid, __u64 start_time, __u64 run_delay,
				       __u64 pcount, struct task_struct *task, bool btf)
{
	struct sched_seen *s, fresh = { .start_time = start_time };

	if (!pid)
		return;
	s = bpf_map_lookup_elem(&seen, &pid);
	if (!s || s->start_time != start_time) {
		/* first sight, or the pid now belongs to another task */
		account_waits(&fresh, run_delay, pcount, task, btf);
		if (bpf_map_update_elem(&seen, &pid, &fresh, BPF_ANY))
			huatuo_count(HUATUO_CNT_MAP_FULL);
		return;
	}
	account_waits(s, run_delay, pcount, task, btf);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(tp_btf_sched_switch_schedinfo, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	switch_out(prev->pid, prev->start_time, prev->sched_info.run_delay,
		   prev->sched_info.pcount, prev, true);
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(raw_tp_sched_switch_schedinfo, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	switch_out(BPF_CORE_READ(prev, pid), BPF_CORE_READ(prev, start_time),
		   BPF_CORE_READ(prev, sched_info.run_delay), BPF_CORE_READ(prev, sched_info.pcount),
		   prev, false);
	return 0;
}

/* The classic tracepoint passes no task pointers: at sched_switch `prev` is still current. */
SEC("tracepoint/sched/sched_switch")
int tp_sched_switch_schedinfo(struct trace_event_raw_sched_switch *ctx)
{
	struct task_struct *prev = (struct task_struct *)bpf_get_current_task();

	switch_out(ctx->prev_pid, BPF_CORE_READ(prev, start_time),
		   BPF_CORE_READ(prev, sched_info.run_delay), BPF_CORE_READ(prev, sched_info.pcount),
		   prev, false);
	return 0;
}

#endif /* HUATUO_TASK_STORAGE */

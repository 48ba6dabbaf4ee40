// SPDX-License-Identifier: GPL-2.0
/*
 * irqoff: hard interrupts held off on a CPU longer than a threshold, with the kernel stack of
 * the code that held them off. Three mechanisms, the first this kernel allows:
 *
 *  - preemptirq tracepoints (kernels built with CONFIG_PREEMPTIRQ_TRACEPOINTS, usually debug
 *    builds): irq_disable stamps the CPU, irq_enable measures the section exactly and reports
 *    it from the enable site, whose stack names the code that held interrupts off.
 *  - otherwise the lateness of the timer interrupts the CPU takes anyway
 *    (timer:hrtimer_expire_entry, see on_timer below): no interrupt of its own.
 *  - where that tracepoint does not attach, a 1 kHz CPU-clock perf sampler on every CPU
 *    (its timer interrupts cost about 1.5 % of every CPU on a 2-vCPU VM). Its samples are hrtimer
 *    interrupts, so they cannot run while the CPU has interrupts disabled: the gap between two
 *    samples of a CPU is the sampling period plus the time interrupts were held off. Two other
 *    things leave the same gap and are taken out:
 *      - an idle CPU: the sampler does not run while the CPU sleeps (NO_HZ idle). The
 *        power:cpu_idle tracepoint forgets the last sample when the CPU goes idle and restarts
 *        the measure when it wakes, so only time spent running counts.
 *      - a vCPU the hypervisor kept descheduled: the guest's steal clock (the run queue's
 *        prev_steal_time_rq, kernels with CONFIG_PARAVIRT_TIME_ACCOUNTING) advances by the
 *        time the host took. The scheduler folds steal in only when it next updates the run
 *        queue clock (at the latest the next tick), so a gap is held pending for SETTLE_NS (or
 *        until the CPU goes idle, which updates that clock) and then reported with the steal
 *        of its span subtracted, if it still passes the threshold.
 *    A reported gap names the first sample after it, the moment interrupts came back on, with
 *    the stack there (the code re-enabling them, or the interrupt return path of the one that
 *    did).
 */
#include "huatuo.h"
#include "off_event.h"

#define SAMPLE_PERIOD_NS 1000000ULL /* the sampler runs at 1 kHz (schema.toml) */

/* Interrupts-off time that makes an event (EventTracing.Irqoff.DisabledThreshold, 10 ms). */
volatile const __u64 threshold_ns = 10000000ULL;

#define SETTLE_NS 10000000ULL /* a tick at HZ=100: the steal clock has caught up by then */

/* Bounds of the kernel's entry code, set by the loader (needs entry_text); 0 = unknown. */
volatile const u64 entry_text_start = 0;
volatile const u64 entry_text_end = 0;

/* Per CPU state of either mechanism. */
struct cpu_state {
	u64 last;       /* the last sample or idle exit (sampler), the irq_disable (tracepoints); 0 = none */
	u64 steal;      /* sampler: the CPU's steal clock at `last` */
	u64 pend_off;   /* sampler: a gap waiting for steal to be accounted (event in off_scratch); 0 = none */
	u64 pend_now;   /* when that gap ended */
	u64 pend_steal; /* the steal clock when it began */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct cpu_state);
} cpu_states SEC(".maps");

static __always_inline struct cpu_state *cpu_state(void)
{
	u32 zero = 0;

	return bpf_map_lookup_elem(&cpu_states, &zero);
}

/* Fills this CPU's event scratch with the current task and kernel stack; NULL when unavailable. */
static __always_inline struct off_event *capture(void *ctx, u64 offtime, u64 now)
{
	struct off_event *e;
	u32 zero = 0;
	long n;

	e = bpf_map_lookup_elem(&off_scratch, &zero);
	if (!e)
		return 0;
	e->offtime = offtime;
	e->now = now;
	e->cpu = bpf_get_smp_processor_id();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	n = bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0);
	e->stack_len = n > 0 ? n / sizeof(u64) : 0;
	return e;
}

static __always_inline bool in_entry_text(u64 ip)
{
	return ip >= entry_text_start && ip < entry_text_end;
}

/*
 * Whether the interrupt on a captured stack came from user mode. The kernel unwinds an
 * interrupted kernel context past the interrupt's entry into the code it interrupted, which
 * itself began in entry code (a system call, an exception, a kernel thread's start), but stops
 * at the interrupt's entry when it came from user space: then the deepest frame is the only
 * one in entry code. User mode runs with interrupts on, so such an interrupt was not held off
 * by kernel code: it was delayed outside the guest (a hypervisor busy for the vCPU without
 * descheduling it is not counted as steal). False when the bounds are unknown or the stack
 * was cut at its depth.
 */
static __always_inline bool from_user(const struct off_event *e)
{
	u32 n = e->stack_len, i;

	if (!entry_text_end || !n || n >= OFF_STACK_DEPTH)
		return false;
	if (!in_entry_text(e->stack[(n - 1) & (OFF_STACK_DEPTH - 1)]))
		return false;
#pragma unroll
	for (i = 0; i < OFF_STACK_DEPTH - 1; i++) {
		if (i + 1 >= n)
			break;
		if (in_entry_text(e->stack[i]))
			return false;
	}
	return true;
}

static __always_inline void report(void *ctx, u64 offtime, u64 now)
{
	struct off_event *e = capture(ctx, offtime, now);

	if (e)
		HUATUO_EVENT_OUTPUT(ctx, e, sizeof(*e));
}

/*
 * The steal clock of this CPU's run queue, reached through the current task's CFS run queue;
 * 0 where the kernel has no such field (no paravirt time accounting or no group scheduling),
 * which leaves gaps uncorrected.
 */
static __always_inline u64 steal_clock(void)
{
	struct task_struct *task;
	struct rq *rq;

	if (!bpf_core_field_exists(((struct rq *)0)->prev_steal_time_rq) ||
	    !bpf_core_field_exists(((struct sched_entity *)0)->cfs_rq))
		return 0;
	task = (struct task_struct *)bpf_get_current_task();
	rq = BPF_CORE_READ(task, se.cfs_rq, rq);
	if (!rq)
		return 0;
	return BPF_CORE_READ(rq, prev_steal_time_rq);
}

/* Reports the pending gap, less the steal accounted since it began, if still over the threshold. */
static __always_inline void settle(void *ctx, struct cpu_state *st, u64 steal)
{
	u64 stolen = steal > st->pend_steal ? steal - st->pend_steal : 0, off = st->pend_off;
	struct off_event *e;
	u32 zero = 0;

	st->pend_off = 0;
	if (off <= stolen || off - stolen <= threshold_ns)
		return;
	e = bpf_map_lookup_elem(&off_scratch, &zero);
	if (!e)
		return;
	e->offtime = off - stolen;
	HUATUO_EVENT_OUTPUT(ctx, e, sizeof(*e));
}

SEC("perf_event")
int perf_irqoff_check(struct bpf_perf_event_data *ctx)
{
	u64 now = bpf_ktime_get_ns(), steal = steal_clock(), prev, prev_steal, gap;
	struct cpu_state *st = cpu_state();
	struct off_event *e;

	if (!st)
		return 0;
	if (st->pend_off && now - st->pend_now >= SETTLE_NS)
		settle(ctx, st, steal);
	prev = st->last;
	prev_steal = st->steal;
	st->last = now;
	st->steal = steal;
	if (!prev || now < prev)
		return 0;
	gap = now - prev;
	if (gap <= SAMPLE_PERIOD_NS + threshold_ns)
		return 0;
	/* A second gap before the first settled: settle that one with what is known now. */
	if (st->pend_off)
		settle(ctx, st, steal);
	/*
	 * Interrupts were off for the gap minus the one period a sample waits anyway. A sample
	 * that lands in user mode (no kernel stack) is not the end of a section: a pending timer
	 * interrupt fires the moment the kernel re-enables interrupts, so such a gap ended with
	 * interrupts on already (steal not yet accounted, a stalled timer) and is not reported.
	 */
	e = capture(ctx, gap - SAMPLE_PERIOD_NS, now);
	if (!e || !e->stack_len)
		return 0;
	st->pend_off = gap - SAMPLE_PERIOD_NS;
	st->pend_now = now;
	st->pend_steal = prev_steal;
	return 0;
}

/*
 * Timer lateness, the mechanism that adds no interrupt: a high-resolution timer's interrupt is
 * programmed for its hard expiry, so `now - expires` at hrtimer_expire_entry is how long the
 * interrupt waited, i.e. how long interrupts were held off before it (a lower bound: the
 * section may have begun before the timer was due). The scheduler tick is among these timers,
 * HZ times a second on a busy CPU; a timer late in the idle task is a late wake-up and is not
 * counted, nor is one whose interrupt came from user mode (see from_user).
 * Timers expiring in the HRTIMER softirq (`is_soft`) are left out: their lateness is softirq
 * time. `btf`: the timer is a BTF pointer (tp_btf), read directly. Steal is subtracted as for the sampler (see the end of on_timer). `now` is in the
 * timer's clock base, like its expiry.
 */
static __always_inline void on_timer(void *ctx, struct hrtimer *timer, ktime_t *nowp, bool btf)
{
	struct cpu_state *st = cpu_state();
	s64 now = 0, expires;
	struct off_event *e;
	u64 mono, late;

	if (!st)
		return;
	if (st->pend_off && bpf_ktime_get_ns() - st->pend_now >= SETTLE_NS)
		settle(ctx, st, steal_clock());
	if (btf) {
		if (bpf_core_field_exists(timer->is_soft) && timer->is_soft)
			return;
		expires = timer->node.expires;
	} else {
		if (bpf_core_field_exists(timer->is_soft) && BPF_CORE_READ(timer, is_soft))
			return;
		expires = BPF_CORE_READ(timer, node.expires);
	}
	if (bpf_probe_read_kernel(&now, sizeof(now), nowp) || expires <= 0 || now <= expires)
		return;
	late = now - expires;
	/*
	 * A late timer in the idle task (pid 0) is a late wake-up from idle (a deep C-state, a
	 * halted vCPU the hypervisor woke late), not interrupts held off by code.
	 */
	if (late <= threshold_ns || !(bpf_get_current_pid_tgid() >> 32))
		return;
	mono = bpf_ktime_get_ns();
	if (st->pend_off) {
		/*
		 * A late timer whose wait overlaps the pending one's (the next timer in the same
		 * interrupt, most often) measures the same stretch: it widens the pending one
		 * instead of being a second event, and steal is still to be accounted for both.
		 */
		if (mono - late <= st->pend_now) {
			if (mono - late < st->pend_now - st->pend_off)
				st->pend_off = late;
			else
				st->pend_off += mono - st->pend_now;
			st->pend_now = mono;
			return;
		}
		settle(ctx, st, steal_clock());
	}
	e = capture(ctx, late, mono);
	if (!e || from_user(e))
		return;
	st->pend_off = late;
	st->pend_now = mono;
	/*
	 * The steal clock still stands where the scheduler last accounted it, before the stretch:
	 * it folds in the time the host took at its next run queue clock update, which comes
	 * after this timer (the tick's own, at the latest). So the steal of the stretch is what it
	 * has gained when the event settles, and no timer needs to read it on the way.
	 */
	st->pend_steal = steal_clock();
}

SEC("tp_btf/hrtimer_expire_entry")
int BPF_PROG(tp_btf_timer_late, struct hrtimer *timer, ktime_t *now)
{
	on_timer(ctx, timer, now, true);
	return 0;
}

SEC("raw_tp/hrtimer_expire_entry")
int raw_tp_timer_late(void *ctx)
{
	on_timer(ctx, (struct hrtimer *)((u64 *)ctx)[0], (ktime_t *)((u64 *)ctx)[1], false);
	return 0;
}

/*
 * The CPU goes idle (state != PWR_EVENT_EXIT) or wakes. Going idle settles a pending gap
 * (switching to the idle task updated the steal clock) and forgets the last sample; waking
 * restarts the measure, so time asleep is never counted as interrupts held off.
 */
static __always_inline void on_idle(void *ctx, u32 state)
{
	struct cpu_state *st = cpu_state();

	if (!st)
		return;
	if (state != (u32)-1) {
		if (st->pend_off)
			settle(ctx, st, steal_clock());
		st->last = 0;
		return;
	}
	st->last = bpf_ktime_get_ns();
	st->steal = steal_clock();
}

SEC("tp_btf/cpu_idle")
int BPF_PROG(tp_btf_cpu_idle, unsigned int state, unsigned int cpu_id)
{
	on_idle(ctx, state);
	return 0;
}

SEC("raw_tp/cpu_idle")
int raw_tp_cpu_idle(void *ctx)
{
	on_idle(ctx, (u32)((u64 *)ctx)[0]);
	return 0;
}

static __always_inline void on_disable(void)
{
	struct cpu_state *st = cpu_state();

	if (st)
		st->last = bpf_ktime_get_ns();
}

static __always_inline void on_enable(void *ctx)
{
	u64 now = bpf_ktime_get_ns(), since;
	struct cpu_state *st = cpu_state();

	if (!st || !st->last)
		return;
	since = st->last;
	st->last = 0;
	if (now > since && now - since > threshold_ns)
		report(ctx, now - since, now);
}

SEC("tp_btf/irq_disable")
int BPF_PROG(tp_btf_irq_disable, unsigned long ip, unsigned long parent_ip)
{
	on_disable();
	return 0;
}

SEC("tp_btf/irq_enable")
int BPF_PROG(tp_btf_irq_enable, unsigned long ip, unsigned long parent_ip)
{
	on_enable(ctx);
	return 0;
}

SEC("raw_tp/irq_disable")
int raw_tp_irq_disable(void *ctx)
{
	on_disable();
	return 0;
}

SEC("raw_tp/irq_enable")
int raw_tp_irq_enable(void *ctx)
{
	on_enable(ctx);
	return 0;
}

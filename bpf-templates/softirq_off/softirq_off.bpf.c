// SPDX-License-Identifier: GPL-2.0
/*
 * softirq_off: softirqs left pending (raised but not served) on a CPU longer than a
 * threshold, which happens when the running code keeps bottom halves (or interrupts)
 * disabled. No kprobes: irq:softirq_raise records per CPU when softirqs became pending,
 * irq:softirq_entry (a softirq run) clears it, and the timer interrupts the CPU takes anyway
 * (timer:hrtimer_expire_entry: the scheduler tick, HZ times a second on a busy CPU, and every
 * other expiring high-resolution timer) check how long softirqs have been pending: past
 * `threshold_ns` it produces one event per episode with the time waited so far (a lower bound,
 * within one tick), the interrupted task and its kernel stack (the code holding softirqs off,
 * or spinning with them off). The check adds no interrupt of its own: a CPU-clock perf event
 * sampling every CPU at 1 kHz, the fallback where the timer tracepoint does not attach, cost
 * about 1.5 % of each CPU on a 2-vCPU VM in timer interrupts alone.
 *
 * A softirq deferred to a starved ksoftirqd also counts; rules filter ksoftirqd/swapper by
 * comm as HUATUO does.
 *
 * The same two hooks serve softirq_latency: with `latency_on` set (the loader sets it when a
 * rule set needs both templates) these programs also do its work (softirq_latency.h) into its
 * maps here, and no softirq_latency object is loaded; one program per hook instead of two
 * saves about one empty program's cost per hook. Left at 0, the verifier drops that code.
 */
#include "huatuo.h"
#include "off_event.h"
#include "softirq_latency.h"

/* Pending time that makes an event (HUATUO's DisabledThreshold, 10 ms by default). */
volatile const __u64 threshold_ns = 10000000ULL;

/* Non-zero: also run softirq_latency's work (it is hosted here). */
volatile const __u64 latency_on = 0;

/*
 * Per CPU: when softirqs became pending (the first raise since the last softirq run), which
 * vector that was, and whether this episode was already reported. A softirq run
 * (softirq_entry of any vector) ends the episode: the kernel serves every pending vector in
 * one run, so per-vector tracking would only add cost on this hot path.
 */
struct pending_state {
	u64 since;
	u32 vec;
	u32 reported;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct pending_state);
} pending SEC(".maps");

static __always_inline struct pending_state *state(void)
{
	u32 zero = 0;

	return bpf_map_lookup_elem(&pending, &zero);
}

static __always_inline void on_raise(u32 vec)
{
	struct pending_state *st;
	u64 now = 0;

	if (latency_on)
		latency_on_raise_at(vec, &now);
	st = state();

	if (st && !st->since) {
		st->since = now ? now : bpf_ktime_get_ns();
		st->vec = vec;
		st->reported = 0;
	}
}

static __always_inline void on_entry(u32 vec)
{
	struct pending_state *st;

	if (latency_on)
		latency_on_entry(vec);
	st = state();

	if (st)
		st->since = 0;
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
int raw_tp_softirq_raise(void *ctx)
{
	on_raise((u32)((u64 *)ctx)[0]);
	return 0;
}

SEC("raw_tp/softirq_entry")
int raw_tp_softirq_entry(void *ctx)
{
	on_entry((u32)((u64 *)ctx)[0]);
	return 0;
}

/* Reports the episode pending on this CPU once it is older than the threshold. */
static __always_inline int check(void *ctx)
{
	struct pending_state *st = state();
	struct off_event *e;
	u64 now = bpf_ktime_get_ns(), since;
	u32 zero = 0;
	long n;

	if (!st)
		return 0;
	since = st->since;
	if (!since || st->reported || now < since || now - since <= threshold_ns)
		return 0;
	st->reported = 1;

	e = bpf_map_lookup_elem(&off_scratch, &zero);
	if (!e)
		return 0;
	e->offtime = now - since;
	e->now = now;
	e->vec = st->vec;
	e->cpu = bpf_get_smp_processor_id();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	n = bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0);
	e->stack_len = n > 0 ? n / sizeof(u64) : 0;
	HUATUO_EVENT_OUTPUT(ctx, e, sizeof(*e));
	return 0;
}

/* At every expiring high-resolution timer (the tick among them), in its interrupt. */
SEC("tp_btf/hrtimer_expire_entry")
int BPF_PROG(tp_btf_timer_check, struct hrtimer *timer, ktime_t *now)
{
	return check(ctx);
}

SEC("raw_tp/hrtimer_expire_entry")
int raw_tp_timer_check(void *ctx)
{
	return check(ctx);
}

/* Fallback: a 1 kHz CPU-clock sampler on every CPU (an interrupt of its own per sample). */
SEC("perf_event")
int perf_softirq_check(struct bpf_perf_event_data *ctx)
{
	return check(ctx);
}

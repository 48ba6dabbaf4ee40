// SPDX-License-Identifier: GPL-2.0
/*
 * irqoff: hard interrupts held off on a CPU longer than a threshold, with the kernel stack of
 * the code that held them off. Two mechanisms, the first this kernel allows:
 *
 *  - preemptirq tracepoints (kernels built with CONFIG_PREEMPTIRQ_TRACEPOINTS, usually debug
 *    builds): irq_disable stamps the CPU, irq_enable measures the section exactly and reports
 *    it from the enable site, whose stack names the code that held interrupts off.
 *  - otherwise a 1 kHz CPU-clock perf sampler on every CPU. Its samples are hrtimer
 *    interrupts, so they cannot run while the CPU has interrupts disabled: the gap between two
 *    samples of a CPU is the sampling period plus the time interrupts were held off. A gap
 *    longer than the period plus `threshold_ns` is reported by the first sample after it, the
 *    moment interrupts came back on, with the stack there (the code re-enabling them, or the
 *    interrupt return path of the one that did). On a VM a vCPU the host kept descheduled
 *    leaves the same gap (a steal-time stall), reported alike.
 */
#include "huatuo.h"
#include "off_event.h"

#define SAMPLE_PERIOD_NS 1000000ULL /* the sampler runs at 1 kHz (schema.toml) */

/* Interrupts-off time that makes an event (EventTracing.Irqoff.DisabledThreshold, 10 ms). */
volatile const __u64 threshold_ns = 10000000ULL;

/* Per CPU: the last sample (sampler) or the current irq_disable (tracepoints), 0 = none. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} last SEC(".maps");

static __always_inline u64 *last_stamp(void)
{
	u32 zero = 0;

	return bpf_map_lookup_elem(&last, &zero);
}

static __always_inline void report(void *ctx, u64 offtime, u64 now)
{
	struct off_event *e;
	u32 zero = 0;
	long n;

	e = bpf_map_lookup_elem(&off_scratch, &zero);
	if (!e)
		return;
	e->offtime = offtime;
	e->now = now;
	e->cpu = bpf_get_smp_processor_id();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	n = bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0);
	e->stack_len = n > 0 ? n / sizeof(u64) : 0;
	HUATUO_EVENT_OUTPUT(ctx, e, sizeof(*e));
}

SEC("perf_event")
int perf_irqoff_check(struct bpf_perf_event_data *ctx)
{
	u64 now = bpf_ktime_get_ns(), prev, gap, *ts = last_stamp();

	if (!ts)
		return 0;
	prev = *ts;
	*ts = now;
	if (!prev || now < prev)
		return 0;
	gap = now - prev;
	if (gap <= SAMPLE_PERIOD_NS + threshold_ns)
		return 0;
	/* Interrupts were off for the gap minus the one period a sample waits anyway. */
	report(ctx, gap - SAMPLE_PERIOD_NS, now);
	return 0;
}

static __always_inline void on_disable(void)
{
	u64 *ts = last_stamp();

	if (ts)
		*ts = bpf_ktime_get_ns();
}

static __always_inline void on_enable(void *ctx)
{
	u64 now = bpf_ktime_get_ns(), since, *ts = last_stamp();

	if (!ts || !*ts)
		return;
	since = *ts;
	*ts = 0;
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

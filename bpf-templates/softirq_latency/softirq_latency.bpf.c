// SPDX-License-Identifier: GPL-2.0
/*
 * softirq_latency: time from a NET_RX/NET_TX softirq being raised on a CPU to its handler
 * starting (irq:softirq_raise -> irq:softirq_entry). One histogram per CPU and type in a
 * per-CPU array indexed by the softirq number, read at scrape time. The work lives in
 * softirq_latency.h, which softirq_off shares: when a rule set needs both, the loader runs it
 * in softirq_off's programs and loads no object of this template.
 */
#include "huatuo.h"
#include "softirq_latency.h"

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/softirq_raise")
int BPF_PROG(tp_btf_softirq_raise, unsigned int vec)
{
	latency_on_raise(vec);
	return 0;
}

SEC("tp_btf/softirq_entry")
int BPF_PROG(tp_btf_softirq_entry, unsigned int vec)
{
	latency_on_entry(vec);
	return 0;
}

SEC("raw_tp/softirq_raise")
int BPF_PROG(raw_tp_softirq_raise, unsigned int vec)
{
	latency_on_raise(vec);
	return 0;
}

SEC("raw_tp/softirq_entry")
int BPF_PROG(raw_tp_softirq_entry, unsigned int vec)
{
	latency_on_entry(vec);
	return 0;
}

SEC("tracepoint/irq/softirq_raise")
int tp_softirq_raise(struct trace_event_raw_softirq *ctx)
{
	latency_on_raise(ctx->vec);
	return 0;
}

SEC("tracepoint/irq/softirq_entry")
int tp_softirq_entry(struct trace_event_raw_softirq *ctx)
{
	latency_on_entry(ctx->vec);
	return 0;
}

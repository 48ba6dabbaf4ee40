/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The record of the "held off" detectors (irqoff, softirq_off): how long interrupts or
 * softirqs were held off on a CPU, with the task and kernel stack where it was seen, and the
 * per-CPU scratch slot it is built in (too large for the BPF stack).
 */
#ifndef HUATUO_OFF_EVENT_H
#define HUATUO_OFF_EVENT_H

#define OFF_STACK_DEPTH 32

struct off_event {
	u64 stack[OFF_STACK_DEPTH];
	u64 offtime;
	u64 now;
	u32 stack_len;
	u32 pid;
	u32 cpu;
	u32 vec; /* softirq_off: the softirq raised first; irqoff: 0, not published */
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct off_event);
} off_scratch SEC(".maps");

#endif

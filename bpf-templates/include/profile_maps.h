/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The maps of a stack profile, shared by the on-CPU sampler (profiler) and the off-CPU
 * template (offcpu) so that one reader in user space serves both: a count per
 * (process, kernel stack, user stack, command) and the stacks themselves.
 */
#ifndef HUATUO_PROFILE_MAPS_H
#define HUATUO_PROFILE_MAPS_H

#define MAX_STACKS 8192

/* cgroup: the task's cgroup id (v1 cpu controller, or v2 when cgroup_v2 = 1), so user space
 * attributes stacks to containers; runnable (off-CPU only): 1 when the task was preempted
 * and so waited in the run queue, 0 when it blocked (it also keeps the key free of implicit
 * padding). */
struct profile_key {
	u64 cgroup;
	u32 pid;
	s32 kstack;
	s32 ustack;
	char comm[16];
	u32 runnable;
};

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, MAX_STACKS);
	__uint(key_size, sizeof(u32));
	__uint(value_size, 127 * sizeof(u64));
} stacks SEC(".maps");

/* Samples (profiler) or off-CPU microseconds (offcpu) per key. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_STACKS);
	__type(key, struct profile_key);
	__type(value, u64);
} counts SEC(".maps");

/* What a profile counts. Set by user space before each profile, not at load: a profile
 * object stays loaded between profiles and is reused with other filters. */
struct profile_filter {
	u64 cgroup_id; /* only tasks of this cgroup (see cgroup_v2); 0 counts every task */
	u64 min_us;    /* off-CPU: only stretches off the CPU at least this long */
};

/* Zero-initialised, so it lives in .bss, a map user space writes. */
struct profile_filter profile_filter;

#endif

// SPDX-License-Identifier: GPL-2.0
/*
 * blockio: block request latency per disk and per container cgroup.
 *   q2c: queued (block_rq_insert, else the request's start time, else issue) -> complete
 *   d2c: issued to the driver (block_rq_issue) -> complete
 *   flush: the q2c of flush requests (REQ_OP_FLUSH: the cache flushes the block layer sends
 *          for fsync and REQ_PREFLUSH writes; RAID members get one per flush of the array)
 * Histograms live in hash maps keyed by the disk (kernel dev_t) and by (cgroup, disk).
 * Cost: the hot path is one `inflight` lookup per tracepoint (entries are reset in place, not
 * deleted), and one read of the request's op at completion; tp_btf programs read the request's fields directly, raw_tp ones by probe read;
 * the cgroup walk runs only when `per_cgroup` is 1.
 * The cgroup is the request's blkcg (bio->bi_blkg), else the cgroup of the issuing task.
 * Queue freezes are counted per disk from blk_freeze_queue_start (fentry or kprobe; there
 * is no tracepoint): optional, the histograms work without it.
 * block_rq_insert/issue pass (rq) from 5.11 on and (q, rq) before: each program exists in
 * both forms (`_q` suffix: the older one), and the schema lets the loader pick the form this
 * kernel has (requires = block_rq_one_arg / block_rq_queue_arg).
 */
#include "huatuo.h"

char LICENSE[] SEC("license") = "GPL";

/* 1 = also keep the per-cgroup histograms. */
volatile const __u64 per_cgroup = 1;

struct rq_info {
	__u64 insert_ns;
	__u64 issue_ns;
	__u64 cgroup;
};

struct cg_key {
	__u64 cgroup;
	__u32 dev;
	__u32 pad;
};

/*
 * Per request pointer, kept while the request struct is reused (see stamp()); LRU, so the
 * pointers of queues that went away are evicted first.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct rq_info);
} inflight SEC(".maps");

/* LRU: disks and cgroups that went away are evicted first when a map fills. */
#define HIST_HASH(name, key_type, entries)                 \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);       \
		__uint(max_entries, entries);              \
		__type(key, key_type);                     \
		__type(value, struct huatuo_hist);         \
	} name SEC(".maps")

HIST_HASH(q2c_disk, __u32, 256);
HIST_HASH(d2c_disk, __u32, 256);
HIST_HASH(q2c_cgroup, struct cg_key, 4096);
HIST_HASH(d2c_cgroup, struct cg_key, 4096);
HIST_HASH(flush_disk, __u32, 256);
HIST_HASH(flush_cgroup, struct cg_key, 1024);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct huatuo_hist);
} hist_zero SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} freeze_disk SEC(".maps");

struct request___old {
	struct gendisk *rq_disk;
} __attribute__((preserve_access_index));

/*
 * Reads `ptr->field`: directly in tp_btf programs (`btf` = 1, the pointer is typed by BTF and
 * the load is a checked PROBE_MEM load), with a probe read in raw_tp programs. `btf` is a
 * constant at every call site, so only one branch is compiled into each program.
 */
#define RQ_READ(btf, ptr, field) ((btf) ? (ptr)->field : BPF_CORE_READ(ptr, field))

static __always_inline __u32 disk_dev_of(struct gendisk *disk, const bool btf)
{
	if (!disk)
		return 0;
	return ((__u32)RQ_READ(btf, disk, major) << 20) | (__u32)RQ_READ(btf, disk, first_minor);
}

static __always_inline __u32 disk_dev(struct gendisk *disk)
{
	return disk_dev_of(disk, false);
}

static __always_inline __u32 rq_dev(struct request *rq, const bool btf)
{
	struct gendisk *disk;

	if (bpf_core_field_exists(((struct request___old *)0)->rq_disk)) {
		disk = RQ_READ(btf, (struct request___old *)rq, rq_disk);
	} else {
		struct request_queue *q = RQ_READ(btf, rq, q);

		disk = q ? RQ_READ(btf, q, disk) : NULL;
	}
	return disk_dev_of(disk, btf);
}

static __always_inline void on_freeze(struct request_queue *q)
{
	__u32 dev = disk_dev(BPF_CORE_READ(q, disk));
	__u64 one = 1, *count = bpf_map_lookup_elem(&freeze_disk, &dev);

	if (count)
		__sync_fetch_and_add(count, 1);
	else if (bpf_map_update_elem(&freeze_disk, &dev, &one, BPF_NOEXIST))
		huatuo_count(HUATUO_CNT_MAP_FULL);
}

SEC("fentry/blk_freeze_queue_start")
int BPF_PROG(fentry_blk_freeze_queue_start, struct request_queue *q)
{
	on_freeze(q);
	return 0;
}

SEC("kprobe/blk_freeze_queue_start")
int BPF_KPROBE(kp_blk_freeze_queue_start, struct request_queue *q)
{
	on_freeze(q);
	return 0;
}

static __always_inline __u64 rq_cgroup(struct request *rq)
{
	struct cgroup *cgrp = NULL;

	if (bpf_core_field_exists(((struct bio *)0)->bi_blkg))
		cgrp = BPF_CORE_READ(rq, bio, bi_blkg, blkcg, css.cgroup);
	if (cgrp)
		return huatuo_cgroup_kn_id(cgrp);
	return huatuo_task_cgroup_id((struct task_struct *)bpf_get_current_task(),
				     bpf_core_enum_value(enum cgroup_subsys_id, io_cgrp_id));
}

/*
 * Stamps the request's entry at insert (`issue` = 0) or issue (`issue` = 1). Request structs
 * are preallocated per tag set and reused, so the entry of a request pointer is kept across
 * its uses and reset in place at completion: the common case is one lookup and a store, no
 * update or delete. An insert starts a new use (clears a stale issue stamp); an issue without
 * an insert starts one too. The cgroup is taken at the start of each use.
 */
static __always_inline void stamp(struct request *rq, const bool issue)
{
	__u64 key = (__u64)rq, now = bpf_ktime_get_ns();
	struct rq_info *info = bpf_map_lookup_elem(&inflight, &key);

	if (info) {
		if (per_cgroup && (!issue || !info->insert_ns))
			info->cgroup = rq_cgroup(rq);
		if (issue) {
			info->issue_ns = now;
		} else {
			info->insert_ns = now;
			info->issue_ns = 0;
		}
		return;
	}
	struct rq_info fresh = {};
	if (issue)
		fresh.issue_ns = now;
	else
		fresh.insert_ns = now;
	if (per_cgroup)
		fresh.cgroup = rq_cgroup(rq);
	if (bpf_map_update_elem(&inflight, &key, &fresh, BPF_ANY))
		huatuo_count(HUATUO_CNT_MAP_FULL);
}

static __always_inline struct huatuo_hist *hist_of(void *map, void *key)
{
	struct huatuo_hist *h = bpf_map_lookup_elem(map, key);
	__u32 zero = 0;

	if (h)
		return h;
	h = bpf_map_lookup_elem(&hist_zero, &zero);
	if (!h)
		return NULL;
	bpf_map_update_elem(map, key, h, BPF_NOEXIST);
	h = bpf_map_lookup_elem(map, key);
	if (!h)
		huatuo_count(HUATUO_CNT_MAP_FULL);
	return h;
}

static __always_inline void observe(void *disk_map, void *cg_map, __u32 dev, __u64 cgroup,
				    __u64 ns)
{
	struct huatuo_hist *h = hist_of(disk_map, &dev);

	if (h)
		huatuo_hist_add_atomic(h, ns);
	if (per_cgroup && cgroup) {
		struct cg_key key = { .cgroup = cgroup, .dev = dev };

		h = hist_of(cg_map, &key);
		if (h)
			huatuo_hist_add_atomic(h, ns);
	}
}

/* 1 when the request is a cache flush (its op, the low byte of cmd_flags, is REQ_OP_FLUSH). */
static __always_inline bool rq_is_flush(struct request *rq, const bool btf)
{
	__u32 op_flush = 2;

	if (bpf_core_enum_value_exists(enum req_op, REQ_OP_FLUSH))
		op_flush = bpf_core_enum_value(enum req_op, REQ_OP_FLUSH);
	return ((__u32)RQ_READ(btf, rq, cmd_flags) & 0xff) == op_flush;
}

static __always_inline void on_complete(struct request *rq, const bool btf)
{
	__u64 key = (__u64)rq, now = bpf_ktime_get_ns(), queued;
	struct rq_info *info = bpf_map_lookup_elem(&inflight, &key);
	__u32 dev;

	if (!info || (!info->issue_ns && !info->insert_ns))
		return;
	dev = rq_dev(rq, btf);
	queued = info->insert_ns;
	if (!queued) {
		queued = RQ_READ(btf, rq, start_time_ns);
		if (!queued || queued > now)
			queued = info->issue_ns;
	}
	if (queued && queued <= now) {
		observe(&q2c_disk, &q2c_cgroup, dev, info->cgroup, now - queued);
		if (rq_is_flush(rq, btf))
			observe(&flush_disk, &flush_cgroup, dev, info->cgroup, now - queued);
	}
	if (info->issue_ns && info->issue_ns <= now)
		observe(&d2c_disk, &d2c_cgroup, dev, info->cgroup, now - info->issue_ns);
	info->insert_ns = 0;
	info->issue_ns = 0;
}

SEC("tp_btf/block_rq_insert")
int BPF_PROG(tp_btf_block_rq_insert, struct request *rq)
{
	stamp(rq, false);
	return 0;
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(tp_btf_block_rq_issue, struct request *rq)
{
	stamp(rq, true);
	return 0;
}

/* Kernels before 5.11: block_rq_insert/issue(struct request_queue *q, struct request *rq). */
SEC("tp_btf/block_rq_insert")
int BPF_PROG(tp_btf_block_rq_insert_q, struct request_queue *q, struct request *rq)
{
	stamp(rq, false);
	return 0;
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(tp_btf_block_rq_issue_q, struct request_queue *q, struct request *rq)
{
	stamp(rq, true);
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(tp_btf_block_rq_complete, struct request *rq)
{
	on_complete(rq, true);
	return 0;
}

SEC("raw_tp/block_rq_insert")
int BPF_PROG(raw_tp_block_rq_insert, struct request *rq)
{
	stamp(rq, false);
	return 0;
}

SEC("raw_tp/block_rq_issue")
int BPF_PROG(raw_tp_block_rq_issue, struct request *rq)
{
	stamp(rq, true);
	return 0;
}

SEC("raw_tp/block_rq_insert")
int BPF_PROG(raw_tp_block_rq_insert_q, struct request_queue *q, struct request *rq)
{
	stamp(rq, false);
	return 0;
}

SEC("raw_tp/block_rq_issue")
int BPF_PROG(raw_tp_block_rq_issue_q, struct request_queue *q, struct request *rq)
{
	stamp(rq, true);
	return 0;
}

SEC("raw_tp/block_rq_complete")
int BPF_PROG(raw_tp_block_rq_complete, struct request *rq)
{
	on_complete(rq, false);
	return 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * ras: hardware error reports from whichever RAS tracepoints the kernel has, one optional
 * program each: mce:mce_record (x86 machine checks, CONFIG_X86_MCE), ras:mc_event (EDAC
 * memory controllers), ras:non_standard_event (CPER sections of unknown type), ras:aer_event
 * (PCIe AER) and ras:arm_event (ARM processor errors). A tracepoint the kernel lacks makes
 * only its program unavailable.
 */
#include "huatuo.h"

#define RAS_MCE 0
#define RAS_EDAC 1
#define RAS_NON_STANDARD 2
#define RAS_AER 3
#define RAS_ARM 4

/*
 * HUATUO's `type` of a report (ras_hw_total{type}): acpi (GHES/APEI: non_standard_event and
 * the ARM processor errors GHES reports), aer, edac, mce, and thr for MCE threshold events:
 * a corrected machine check whose threshold-based error status (MCi_STATUS bits 54:53, the
 * CMCI threshold indicator) is "yellow" (2), i.e. the corrected-error count crossed its
 * threshold rather than a single error being logged.
 */
#define RAS_TYPE_ACPI 0
#define RAS_TYPE_AER 1
#define RAS_TYPE_EDAC 2
#define RAS_TYPE_MCE 3
#define RAS_TYPE_THR 4
#define MCI_STATUS_UC (1ULL << 61)
#define MCI_STATUS_TES_YELLOW 2

/* The type of each tracepoint's reports (MCE may turn into THR by its status). */
static const u32 ras_types[] = { RAS_TYPE_MCE, RAS_TYPE_EDAC, RAS_TYPE_ACPI, RAS_TYPE_AER,
				 RAS_TYPE_ACPI };

struct ras_event {
	u64 address;
	u64 status;
	u32 event;
	u32 severity;
	u32 error_count;
	u32 cpu;
	char dev[32];
	char msg[64];
	char detail[64];
	u32 type;
	u32 _pad;
};

/* Local copy of the x86 struct mce fields used (not in every vmlinux.h); CO-RE relocates. */
struct mce___ht {
	u64 status;
	u64 addr;
	u64 misc;
	u8 bank;
	u8 severity;
	u32 extcpu;
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct ras_event);
} ras_scratch SEC(".maps");

static __always_inline struct ras_event *ras_new(u32 event)
{
	u32 zero = 0;
	struct ras_event *e = bpf_map_lookup_elem(&ras_scratch, &zero);

	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->event = event;
	e->type = event < sizeof(ras_types) / sizeof(ras_types[0]) ? ras_types[event] : RAS_TYPE_ACPI;
	e->cpu = bpf_get_smp_processor_id();
	return e;
}

static __always_inline void ras_str(char *dst, u32 size, const char *src)
{
	if (src)
		bpf_probe_read_kernel_str(dst, size, src);
}

/* mce or thr, from a machine check's MCi_STATUS. */
static __always_inline u32 mce_type(u64 status)
{
	if (!(status & MCI_STATUS_UC) && ((status >> 53) & 3) == MCI_STATUS_TES_YELLOW)
		return RAS_TYPE_THR;
	return RAS_TYPE_MCE;
}

SEC("tp_btf/mce_record")
int BPF_PROG(tp_btf_mce_record, struct mce___ht *m)
{
	struct ras_event *e = ras_new(RAS_MCE);

	if (!e)
		return 0;
	e->status = BPF_CORE_READ(m, status);
	e->address = BPF_CORE_READ(m, addr);
	e->severity = BPF_CORE_READ(m, severity);
	e->cpu = BPF_CORE_READ(m, extcpu);
	e->error_count = 1;
	e->type = mce_type(e->status);
	HUATUO_EVENT_OUTPUT(ctx, e, sizeof(*e));
	return 0;
}

/* mc_event(err_type, error_msg, label, error_count, mc_index, top, mid, low, address, ...) */
SEC("tp_btf/mc_event")
int BPF_PROG(tp_btf_mc_event, unsigned int err_type, const char *error_msg, const char *label,
	     int error_count, u8 mc_index, s8 top, s8 mid, s8 low, unsigned long address,
	     u8 grain_bits, unsigned long syndrome, const char *driver_detail)
{
	struct ras_event *e = ras_new(RAS_EDAC);

	if (!e)
		return 0;
	e->severity = err_type;
	e->error_count = error_count;
	e->address = address;
	e->status = syndrome;
	ras_str(e->dev, sizeof(e->dev), label);
	ras_str(e->msg, sizeof(e->msg), error_msg);
	ras_str(e->detail, sizeof(e->detail), driver_detail);
	HUATUO_EVENT_OUTPUT(ctx, e, sizeof(*e));
	return 0;
}

/* non_standard_event(sec_type, fru_id, fru_text, sev, err, len) */
SEC("tp_btf/non_standard_event")
int BPF_PROG(tp_btf_non_standard_event, const guid_t *sec_type, const guid_t *fru_id,
	     const char *fru_text, u8 sev, const u8 *err, u32 len)
{
	struct ras_event *e = ras_new(RAS_NON_STANDARD);

	if (!e)
		return 0;
	e->severity = sev;
	e->error_count = 1;
	e->status = len;
	ras_str(e->dev, sizeof(e->dev), fru_text);
	if (sec_type)
		bpf_probe_read_kernel(e->msg, 16, sec_type);
	HUATUO_EVENT_OUTPUT(ctx, e, sizeof(*e));
	return 0;
}

/* aer_event(dev_name, status, severity, tlp_header_valid, tlp) */
SEC("tp_btf/aer_event")
int BPF_PROG(tp_btf_aer_event, const char *dev_name, u32 status, u8 severity)
{
	struct ras_event *e = ras_new(RAS_AER);

	if (!e)
		return 0;
	e->severity = severity;
	e->status = status;
	e->error_count = 1;
	ras_str(e->dev, sizeof(e->dev), dev_name);
	HUATUO_EVENT_OUTPUT(ctx, e, sizeof(*e));
	return 0;
}

/* arm_event(proc, pei_err, pei_len, ctx_err, ctx_len, oem, oem_len, sev, cpu) on >= 6.10;
 * older kernels pass only the processor record: read just the first argument. */
SEC("tp_btf/arm_event")
int BPF_PROG(tp_btf_arm_event, const struct cper_sec_proc_arm *proc)
{
	struct ras_event *e = ras_new(RAS_ARM);

	if (!e)
		return 0;
	e->address = BPF_CORE_READ(proc, mpidr);
	e->status = BPF_CORE_READ(proc, midr);
	e->severity = BPF_CORE_READ(proc, running_state);
	e->error_count = BPF_CORE_READ(proc, err_info_num);
	HUATUO_EVENT_OUTPUT(ctx, e, sizeof(*e));
	return 0;
}

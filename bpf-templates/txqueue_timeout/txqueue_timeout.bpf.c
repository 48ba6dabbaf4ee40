// SPDX-License-Identifier: GPL-2.0
/*
 * txqueue_timeout: net:net_dev_xmit_timeout, raised by the netdev watchdog when a transmit
 * queue stayed stopped past the device's watchdog timeout. Reports the device, its driver
 * and the queue index.
 */
#include "huatuo.h"

struct txq_event {
	u32 ifindex;
	u32 queue_index;
	char device_name[16];
	char driver_name[32];
};

static __always_inline int emit(void *ctx, struct net_device *dev, int queue)
{
	struct txq_event e = {};
	const char *drv = 0;
	struct device *parent;

	e.ifindex = BPF_CORE_READ(dev, ifindex);
	e.queue_index = queue;
	BPF_CORE_READ_STR_INTO(&e.device_name, dev, name);
	/* same source as the tracepoint's own driver field: dev->dev.parent->driver->name */
	parent = BPF_CORE_READ(dev, dev.parent);
	if (parent)
		drv = BPF_CORE_READ(parent, driver, name);
	if (drv)
		bpf_probe_read_kernel_str(e.driver_name, sizeof(e.driver_name), drv);
	HUATUO_EVENT_OUTPUT(ctx, &e, sizeof(e));
	return 0;
}

SEC("tp_btf/net_dev_xmit_timeout")
int BPF_PROG(tp_btf_net_dev_xmit_timeout, struct net_device *dev, int queue_index)
{
	return emit(ctx, dev, queue_index);
}

SEC("raw_tp/net_dev_xmit_timeout")
int raw_tp_net_dev_xmit_timeout(struct bpf_raw_tracepoint_args *ctx)
{
	return emit(ctx, (struct net_device *)((u64 *)ctx)[0], (int)((u64 *)ctx)[1]);
}

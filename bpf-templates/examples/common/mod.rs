//! What the cost examples share: the empty reference program on sched_switch.

use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf, EbpfLoader};

/// The object with the empty tp_btf program every cost figure is set beside.
pub const EMPTY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/test_empty.bpf.o"));

/// The empty program loaded and attached on sched_switch; its object keeps it attached.
pub fn empty_on_sched_switch(btf: &Btf) -> Ebpf {
    let mut ebpf = EbpfLoader::new().load(EMPTY).expect("load empty");
    let prog: &mut BtfTracePoint = ebpf
        .program_mut("tp_btf_sched_switch_empty")
        .expect("prog")
        .try_into()
        .expect("tp_btf");
    prog.load("sched_switch", btf).expect("load");
    prog.attach().expect("attach");
    ebpf
}

/// (runs, ns) the empty program has counted so far.
pub fn empty_cost(ebpf: &Ebpf) -> (u64, u64) {
    let info = ebpf
        .program("tp_btf_sched_switch_empty")
        .expect("prog")
        .info()
        .expect("info");
    (info.run_count(), info.run_time().as_nanos() as u64)
}

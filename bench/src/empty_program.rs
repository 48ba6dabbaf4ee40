//! The empty reference program every in-kernel cost figure is set beside: a tp_btf program
//! that returns at once (`bench/bpf/empty.bpf.c`, compiled by this crate's build script).

use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf, EbpfLoader};

/// The object holding the empty program.
pub const EMPTY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/empty.bpf.o"));

/// The empty program's name in [`EMPTY`].
pub const EMPTY_PROG: &str = "tp_btf_sched_switch_empty";

/// The empty program loaded and attached on the tp_btf `tracepoint`; the object keeps it
/// attached.
pub fn empty_on(tracepoint: &str, btf: &Btf) -> Result<Ebpf, String> {
    let mut ebpf = EbpfLoader::new()
        .load(EMPTY)
        .map_err(|e| format!("load empty: {e}"))?;
    let prog: &mut BtfTracePoint = ebpf
        .program_mut(EMPTY_PROG)
        .ok_or("the empty object has no program")?
        .try_into()
        .map_err(|e| format!("empty program: {e}"))?;
    prog.load(tracepoint, btf)
        .map_err(|e| format!("empty on {tracepoint}: {e}"))?;
    prog.attach()
        .map_err(|e| format!("attach empty on {tracepoint}: {e}"))?;
    Ok(ebpf)
}

/// The empty program attached on sched_switch (panics when it cannot be: bench tools only).
pub fn empty_on_sched_switch(btf: &Btf) -> Ebpf {
    empty_on("sched_switch", btf).expect("the empty program on sched_switch")
}

/// (runs, ns) the empty program of `ebpf` has counted so far.
pub fn empty_cost(ebpf: &Ebpf) -> Result<(u64, u64), String> {
    let prog: &BtfTracePoint = ebpf
        .program(EMPTY_PROG)
        .ok_or("the empty object has no program")?
        .try_into()
        .map_err(|e| format!("empty program: {e}"))?;
    let info = prog
        .info()
        .map_err(|e| format!("empty program info: {e}"))?;
    Ok((info.run_count(), info.run_time().as_nanos() as u64))
}

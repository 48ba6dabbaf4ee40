//! The empty reference program every in-kernel cost figure is set beside: a tp_btf program
//! that returns at once (`bench/bpf/empty.bpf.c`, compiled by this crate's build script), and
//! its twin that only loads the incoming task's run queue stamp on sched_switch.

use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf, EbpfLoader};

/// The object holding the empty program.
pub const EMPTY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/empty.bpf.o"));

/// The empty program's name in [`EMPTY`].
pub const EMPTY_PROG: &str = "tp_btf_sched_switch_empty";

/// The sched_switch program in [`EMPTY`] that only loads `next->sched_info.last_queued`.
pub const LOAD_QUEUED_PROG: &str = "tp_btf_sched_switch_load_queued";

/// The empty program loaded and attached on the tp_btf `tracepoint`; the object keeps it
/// attached.
pub fn empty_on(tracepoint: &str, btf: &Btf) -> Result<Ebpf, String> {
    program_on(EMPTY_PROG, tracepoint, btf)
}

/// Program `name` of [`EMPTY`] loaded and attached on the tp_btf `tracepoint` (alone: the
/// object's other program is not loaded); the object keeps it attached.
pub fn program_on(name: &str, tracepoint: &str, btf: &Btf) -> Result<Ebpf, String> {
    let mut ebpf = EbpfLoader::new()
        .load(EMPTY)
        .map_err(|e| format!("load {name}: {e}"))?;
    let prog: &mut BtfTracePoint = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("the bench object has no program {name}"))?
        .try_into()
        .map_err(|e| format!("{name}: {e}"))?;
    prog.load(tracepoint, btf)
        .map_err(|e| format!("{name} on {tracepoint}: {e}"))?;
    prog.attach()
        .map_err(|e| format!("attach {name} on {tracepoint}: {e}"))?;
    Ok(ebpf)
}

/// The empty program attached on sched_switch (panics when it cannot be: bench tools only).
pub fn empty_on_sched_switch(btf: &Btf) -> Ebpf {
    empty_on("sched_switch", btf).expect("the empty program on sched_switch")
}

/// (runs, ns) the empty program of `ebpf` has counted so far.
pub fn empty_cost(ebpf: &Ebpf) -> Result<(u64, u64), String> {
    program_cost(ebpf, EMPTY_PROG)
}

/// (runs, ns) program `name` of `ebpf` has counted so far.
pub fn program_cost(ebpf: &Ebpf, name: &str) -> Result<(u64, u64), String> {
    let prog: &BtfTracePoint = ebpf
        .program(name)
        .ok_or_else(|| format!("the bench object has no program {name}"))?
        .try_into()
        .map_err(|e| format!("{name}: {e}"))?;
    let info = prog.info().map_err(|e| format!("{name} info: {e}"))?;
    Ok((info.run_count(), info.run_time().as_nanos() as u64))
}

//! The floor of the overhead bench: attaches an empty program to each hook given as
//! `KIND:TARGET` (`tp_btf:sched_switch`, `raw_tp:tcp_probe`, `tracepoint:irq/softirq_raise`,
//! `perf_event:1000`: a CPU-clock sampler at that frequency on every online CPU, as the agent's
//! perf_event programs attach), prints `attached N`, and holds them until its standard input closes.
//! Run as root: `hook_floor tp_btf:sched_switch raw_tp:netif_receive_skb < fifo`.

use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::{BtfTracePoint, PerfEvent, RawTracePoint, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader};
use std::io::Read;
use std::process::ExitCode;

const FLOOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/floor.bpf.o"));

/// Loads the empty program of `kind` and attaches it to `target`.
fn attach(kind: &str, target: &str, btf: &Btf) -> Result<Ebpf, String> {
    let mut ebpf = EbpfLoader::new()
        .load(FLOOR)
        .map_err(|e| format!("load object: {e}"))?;
    let fail = |e: &dyn std::fmt::Display| format!("{kind}:{target}: {e}");
    match kind {
        "tp_btf" => {
            let prog: &mut BtfTracePoint = ebpf
                .program_mut("floor_tp_btf")
                .ok_or("no floor_tp_btf")?
                .try_into()
                .map_err(|e| fail(&e))?;
            prog.load(target, btf).map_err(|e| fail(&e))?;
            prog.attach().map_err(|e| fail(&e))?;
        }
        "raw_tp" => {
            let prog: &mut RawTracePoint = ebpf
                .program_mut("floor_raw_tp")
                .ok_or("no floor_raw_tp")?
                .try_into()
                .map_err(|e| fail(&e))?;
            prog.load().map_err(|e| fail(&e))?;
            prog.attach(target).map_err(|e| fail(&e))?;
        }
        "tracepoint" => {
            let (category, name) = target
                .split_once('/')
                .ok_or_else(|| fail(&"expected category/name"))?;
            let prog: &mut TracePoint = ebpf
                .program_mut("floor_tracepoint")
                .ok_or("no floor_tracepoint")?
                .try_into()
                .map_err(|e| fail(&e))?;
            prog.load().map_err(|e| fail(&e))?;
            prog.attach(category, name).map_err(|e| fail(&e))?;
        }
        "perf_event" => {
            let hz: u64 = target
                .parse()
                .map_err(|_| fail(&"expected a frequency in Hz"))?;
            let cpus =
                aya::util::online_cpus().map_err(|(path, e)| fail(&format!("{path}: {e}")))?;
            let prog: &mut PerfEvent = ebpf
                .program_mut("floor_perf_event")
                .ok_or("no floor_perf_event")?
                .try_into()
                .map_err(|e| fail(&e))?;
            prog.load().map_err(|e| fail(&e))?;
            for cpu in cpus {
                prog.attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Frequency(hz),
                    false,
                )
                .map_err(|e| fail(&e))?;
            }
        }
        other => return Err(format!("{other}:{target}: unsupported kind")),
    }
    Ok(ebpf)
}

fn main() -> ExitCode {
    let btf = match Btf::from_sys_fs() {
        Ok(btf) => btf,
        Err(e) => {
            eprintln!("hook_floor: kernel BTF: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut held = vec![];
    for hook in std::env::args().skip(1) {
        let Some((kind, target)) = hook.split_once(':') else {
            eprintln!("hook_floor: `{hook}`: expected KIND:TARGET");
            return ExitCode::FAILURE;
        };
        match attach(kind, target, &btf) {
            Ok(ebpf) => held.push(ebpf),
            Err(e) => {
                eprintln!("hook_floor: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("attached {}", held.len());
    // Held until the bench closes our standard input (or kills us).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    ExitCode::SUCCESS
}

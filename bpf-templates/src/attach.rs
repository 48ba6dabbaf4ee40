//! The attach chain: load and attach one variant of a program.

use crate::schema::{AttachKind, AttachVariant};
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::{BtfTracePoint, FEntry, KProbe, PerfEvent, RawTracePoint, TracePoint};
use aya::{Btf, Ebpf};
use std::path::Path;

/// Loads and attaches `variant` in `ebpf`; on failure the program is unloaded again.
pub fn attach_variant(
    ebpf: &mut Ebpf,
    variant: &AttachVariant,
    btf: Option<&Btf>,
) -> Result<(), String> {
    let program = ebpf
        .program_mut(&variant.prog)
        .ok_or_else(|| format!("program `{}` is not in the object", variant.prog))?;
    let need_btf =
        || btf.ok_or_else(|| "kernel BTF (/sys/kernel/btf/vmlinux) is not available".to_string());
    let err = |e: aya::programs::ProgramError| format!("{e}: {}", error_chain(&e));
    match variant.kind {
        AttachKind::TpBtf => {
            let prog: &mut BtfTracePoint = program.try_into().map_err(err)?;
            prog.load(&variant.target, need_btf()?).map_err(err)?;
            if let Err(e) = prog.attach() {
                let _ = prog.unload();
                return Err(err(e));
            }
        }
        AttachKind::RawTp => {
            let prog: &mut RawTracePoint = program.try_into().map_err(err)?;
            prog.load().map_err(err)?;
            if let Err(e) = prog.attach(&variant.target) {
                let _ = prog.unload();
                return Err(err(e));
            }
        }
        AttachKind::Tracepoint => {
            let (category, name) = variant.target.split_once('/').ok_or_else(|| {
                format!(
                    "tracepoint target `{}` is not category/name",
                    variant.target
                )
            })?;
            ensure_tracefs()?;
            let prog: &mut TracePoint = program.try_into().map_err(err)?;
            prog.load().map_err(err)?;
            if let Err(e) = prog.attach(category, name) {
                let _ = prog.unload();
                return Err(err(e));
            }
        }
        AttachKind::Kprobe | AttachKind::Kretprobe => {
            let prog: &mut KProbe = program.try_into().map_err(err)?;
            prog.load().map_err(err)?;
            if let Err(e) = prog.attach(&variant.target, 0) {
                let _ = prog.unload();
                return Err(err(e));
            }
        }
        AttachKind::Fentry => {
            let prog: &mut FEntry = program.try_into().map_err(err)?;
            prog.load(&variant.target, need_btf()?).map_err(err)?;
            if let Err(e) = prog.attach() {
                let _ = prog.unload();
                return Err(err(e));
            }
        }
        AttachKind::PerfEvent => {
            let hz: u64 = variant.target.parse().map_err(|_| {
                format!(
                    "perf_event target `{}` is not a frequency in Hz",
                    variant.target
                )
            })?;
            let cpus = aya::util::online_cpus().map_err(|(path, e)| format!("{path}: {e}"))?;
            let prog: &mut PerfEvent = program.try_into().map_err(err)?;
            prog.load().map_err(err)?;
            for cpu in cpus {
                if let Err(e) = prog.attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Frequency(hz),
                    false,
                ) {
                    let _ = prog.unload();
                    return Err(format!("cpu {cpu}: {}", err(e)));
                }
            }
        }
    }
    Ok(())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![];
    let mut source = e.source();
    while let Some(inner) = source {
        parts.push(inner.to_string());
        source = inner.source();
    }
    if parts.is_empty() {
        "no further detail".into()
    } else {
        parts.join(": ")
    }
}

const TRACEFS: &str = "/sys/kernel/tracing";

/// Makes sure tracefs is mounted (classic tracepoints need it); mounts it when missing and
/// permitted. Returns an error naming the problem otherwise.
pub fn ensure_tracefs() -> Result<(), String> {
    if Path::new(TRACEFS).join("events").is_dir()
        || Path::new("/sys/kernel/debug/tracing/events").is_dir()
    {
        return Ok(());
    }
    let target = std::ffi::CString::new(TRACEFS).map_err(|e| e.to_string())?;
    let fstype = std::ffi::CString::new("tracefs").map_err(|e| e.to_string())?;
    let source = std::ffi::CString::new("nodev").map_err(|e| e.to_string())?;
    // SAFETY: all pointers are valid NUL-terminated strings; data may be NULL.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "tracefs is not mounted and mounting it on {TRACEFS} failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    log::info!("mounted tracefs on {TRACEFS} for classic tracepoints");
    Ok(())
}

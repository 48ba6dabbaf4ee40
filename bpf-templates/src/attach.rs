//! The attach chain: load and attach one variant of a program.

use crate::schema::{AttachKind, AttachVariant};
use aya::programs::fentry::FEntryLinkId;
use aya::programs::kprobe::KProbeLinkId;
use aya::programs::perf_event::PerfEventLinkId;
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::raw_trace_point::RawTracePointLinkId;
use aya::programs::tp_btf::BtfTracePointLinkId;
use aya::programs::trace_point::TracePointLinkId;
use aya::programs::{BtfTracePoint, FEntry, KProbe, PerfEvent, RawTracePoint, TracePoint};
use aya::{Btf, Ebpf};
use std::path::Path;

/// The links one [`attach_variant`] made. Detaching them leaves the program loaded, so the
/// object can be attached again later without loading (and verifying) it anew.
pub struct Attachment {
    prog: String,
    links: Links,
}

/// Link ids by program kind (aya types them per kind).
enum Links {
    TpBtf(BtfTracePointLinkId),
    RawTp(RawTracePointLinkId),
    Tracepoint(TracePointLinkId),
    Kprobe(KProbeLinkId),
    Fentry(FEntryLinkId),
    PerfEvent(Vec<PerfEventLinkId>),
}

impl Attachment {
    /// The program these links belong to.
    pub fn prog(&self) -> &str {
        &self.prog
    }

    /// Detaches the links from the kernel; the program stays loaded in `ebpf`.
    pub fn detach(self, ebpf: &mut Ebpf) -> Result<(), String> {
        let program = ebpf
            .program_mut(&self.prog)
            .ok_or_else(|| format!("program `{}` is not in the object", self.prog))?;
        let err = |e: aya::programs::ProgramError| format!("detaching `{}`: {e}", self.prog);
        match self.links {
            Links::TpBtf(id) => <&mut BtfTracePoint>::try_from(program)
                .and_then(|p| p.detach(id))
                .map_err(err),
            Links::RawTp(id) => <&mut RawTracePoint>::try_from(program)
                .and_then(|p| p.detach(id))
                .map_err(err),
            Links::Tracepoint(id) => <&mut TracePoint>::try_from(program)
                .and_then(|p| p.detach(id))
                .map_err(err),
            Links::Kprobe(id) => <&mut KProbe>::try_from(program)
                .and_then(|p| p.detach(id))
                .map_err(err),
            Links::Fentry(id) => <&mut FEntry>::try_from(program)
                .and_then(|p| p.detach(id))
                .map_err(err),
            Links::PerfEvent(ids) => {
                let prog = <&mut PerfEvent>::try_from(program).map_err(err)?;
                ids.into_iter()
                    .try_for_each(|id| prog.detach(id))
                    .map_err(err)
            }
        }
    }
}

/// Loads `variant`'s program unless it is loaded already, and attaches it in `ebpf`; on
/// failure the program is unloaded again.
pub fn attach_variant(
    ebpf: &mut Ebpf,
    variant: &AttachVariant,
    btf: Option<&Btf>,
) -> Result<Attachment, String> {
    let program = ebpf
        .program_mut(&variant.prog)
        .ok_or_else(|| format!("program `{}` is not in the object", variant.prog))?;
    let need_btf =
        || btf.ok_or_else(|| "kernel BTF (/sys/kernel/btf/vmlinux) is not available".to_string());
    let err = |e: aya::programs::ProgramError| format!("{e}: {}", error_chain(&e));
    let links = match variant.kind {
        AttachKind::TpBtf => {
            let prog: &mut BtfTracePoint = program.try_into().map_err(err)?;
            if prog.fd().is_err() {
                prog.load(&variant.target, need_btf()?).map_err(err)?;
            }
            match prog.attach() {
                Ok(id) => Links::TpBtf(id),
                Err(e) => {
                    let _ = prog.unload();
                    return Err(err(e));
                }
            }
        }
        AttachKind::RawTp => {
            let prog: &mut RawTracePoint = program.try_into().map_err(err)?;
            if prog.fd().is_err() {
                prog.load().map_err(err)?;
            }
            match prog.attach(&variant.target) {
                Ok(id) => Links::RawTp(id),
                Err(e) => {
                    let _ = prog.unload();
                    return Err(err(e));
                }
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
            if prog.fd().is_err() {
                prog.load().map_err(err)?;
            }
            match prog.attach(category, name) {
                Ok(id) => Links::Tracepoint(id),
                Err(e) => {
                    let _ = prog.unload();
                    return Err(err(e));
                }
            }
        }
        AttachKind::Kprobe | AttachKind::Kretprobe => {
            let prog: &mut KProbe = program.try_into().map_err(err)?;
            if prog.fd().is_err() {
                prog.load().map_err(err)?;
            }
            match prog.attach(&variant.target, 0) {
                Ok(id) => Links::Kprobe(id),
                Err(e) => {
                    let _ = prog.unload();
                    return Err(err(e));
                }
            }
        }
        AttachKind::Fentry => {
            let prog: &mut FEntry = program.try_into().map_err(err)?;
            if prog.fd().is_err() {
                prog.load(&variant.target, need_btf()?).map_err(err)?;
            }
            match prog.attach() {
                Ok(id) => Links::Fentry(id),
                Err(e) => {
                    let _ = prog.unload();
                    return Err(err(e));
                }
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
            if prog.fd().is_err() {
                prog.load().map_err(err)?;
            }
            let mut ids = Vec::with_capacity(cpus.len());
            for cpu in cpus {
                match prog.attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Frequency(hz),
                    false,
                ) {
                    Ok(id) => ids.push(id),
                    Err(e) => {
                        let _ = prog.unload();
                        return Err(format!("cpu {cpu}: {}", err(e)));
                    }
                }
            }
            Links::PerfEvent(ids)
        }
    };
    Ok(Attachment {
        prog: variant.prog.clone(),
        links,
    })
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

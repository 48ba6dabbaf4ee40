//! What the loader reports per template: attach outcomes, BPF run statistics, counters.

use crate::schema::AttachKind;
use serde::Serialize;

/// One variant that was tried for a program.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantOutcome {
    /// Attach kind of the variant.
    pub kind: AttachKind,
    /// Attach target.
    pub target: String,
    /// BPF program name.
    pub prog: String,
    /// `None` when it loaded and attached, else why not.
    pub error: Option<String>,
}

/// The outcome of one logical program of a template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgramStatus {
    /// Logical program name from the schema.
    pub program: String,
    /// Whether the template needs it.
    pub required: bool,
    /// Index into `tried` of the variant that attached.
    pub attached: Option<usize>,
    /// Every variant tried, in order (the attached one last).
    pub tried: Vec<VariantOutcome>,
    /// Why nothing was tried: a companion point that no attached variant needs.
    pub not_needed: Option<String>,
    /// Times the program ran (`kernel.bpf_stats_enabled=1`, else 0).
    pub run_count: u64,
    /// Total run time in ns (`kernel.bpf_stats_enabled=1`, else 0).
    pub run_time_ns: u64,
}

impl ProgramStatus {
    /// The variant that attached.
    pub fn attached_variant(&self) -> Option<&VariantOutcome> {
        self.attached.and_then(|i| self.tried.get(i))
    }
}

/// Event counters: kernel side (summed over CPUs) and user side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Records written to the buffer by the kernel.
    pub emitted: u64,
    /// Records dropped by the in-kernel rate limit.
    pub shed: u64,
    /// Records the kernel could not write (buffer full).
    pub lost: u64,
    /// Observations the kernel dropped because a map was full.
    pub map_full: u64,
    /// Records received by user space.
    pub received: u64,
    /// Records decoded but dropped because the consumer channel was full or closed.
    pub dropped: u64,
    /// Records that did not match the layout.
    pub decode_errors: u64,
}

/// Everything known about one requested template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateStatus {
    /// Folder name (`runqlat`).
    pub name: String,
    /// True when loaded and every required program attached.
    pub loaded: bool,
    /// `ringbuf` or `perfbuf` for event templates.
    pub transport: Option<&'static str>,
    /// Why the template is unavailable (or a load-wide problem).
    pub error: Option<String>,
    /// Per program outcome.
    pub programs: Vec<ProgramStatus>,
    /// Event counters.
    pub counters: Counters,
    /// Remarks (tracefs mounted by us, BTF missing, ...).
    pub notes: Vec<String>,
    /// The template whose programs do this one's work (no object of its own is loaded):
    /// `programs` are then that template's, shared.
    pub hosted_by: Option<String>,
}

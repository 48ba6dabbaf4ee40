//! Profile objects kept loaded between profiles. Loading a template makes aya parse the
//! kernel's BTF (about 15 MB of heap for a moment) and the kernel verify its programs; on a
//! node where captures follow one another (a cpusys burst, an operator's profiles) each
//! profile would pay that again. So a stopped profile's object is detached, emptied and
//! parked here, one per kind of object, and the next profile of that kind attaches it again
//! with its own filter. An object not used for [`IDLE`] is dropped by [`release_idle`], so a
//! quiet node holds no profiler maps (the stack map alone is 8 MiB of kernel memory).

use super::ProfileMode;
use aya::Ebpf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a parked object waits for its next profile before [`release_idle`] drops it.
pub const IDLE: Duration = Duration::from_secs(120);

/// Which objects are interchangeable: the mode's template with its load-time constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ObjectKind {
    /// The template (on-CPU or off-CPU).
    pub mode: ProfileMode,
    /// The object reads v2 cgroup ids (a constant set at load).
    pub cgroup_v2: bool,
}

/// A detached, emptied object and the program that was attached last.
pub(super) struct Parked {
    /// What the object is.
    pub kind: ObjectKind,
    /// The loaded object.
    pub ebpf: Ebpf,
    /// The program of the variant that attached, still loaded.
    pub prog: String,
    /// When it was parked.
    pub since: Instant,
}

static PARKED: Mutex<Vec<Parked>> = Mutex::new(Vec::new());

fn parked_list() -> std::sync::MutexGuard<'static, Vec<Parked>> {
    PARKED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes the parked object of `kind`, if there is one.
pub(super) fn take(kind: ObjectKind) -> Option<Parked> {
    let mut list = parked_list();
    let index = list.iter().position(|p| p.kind == kind)?;
    Some(list.swap_remove(index))
}

/// Parks an object; one of its kind already parked is kept and this one dropped (two
/// profiles of one kind ran at once), so at most one object per kind waits.
pub(super) fn park(object: Parked) {
    let mut list = parked_list();
    if list.iter().all(|p| p.kind != object.kind) {
        list.push(object);
    }
}

/// Drops the objects parked for longer than [`IDLE`] (their maps and programs leave the
/// kernel); returns how many stay parked. The daemon calls it periodically.
pub fn release_idle() -> usize {
    let mut list = parked_list();
    list.retain(|p| p.since.elapsed() < IDLE);
    list.len()
}

/// How many profile objects are parked now.
pub fn parked_objects() -> usize {
    parked_list().len()
}

//! The agent's heap and what it gives back to the kernel. glibc malloc keeps freed memory for
//! reuse, and with a moving mmap threshold even large buffers freed once (the kernel BTF parsed
//! while templates load, a profile's symbol tables) end up inside its arenas, so resident
//! memory stays at its high-water mark. `tune` fixes the threshold (buffers above it are
//! unmapped when freed) and caps the arenas the agent's mostly idle threads spread over;
//! `give_back` hands free heap pages back after a capture and once a minute;
//! `give_back_after_load` also returns the executable's pages that only loading used
//! (`super::exe_pages`).

/// Buffers of at least this size get their own mapping, returned to the kernel when freed.
const MMAP_THRESHOLD: i32 = 128 * 1024;
/// Malloc arenas at most (glibc's default is eight per CPU).
const ARENA_MAX: i32 = 2;

/// Bytes the heap holds: in use by the agent, and free but kept by malloc.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapUsage {
    /// Allocated and in use (arena chunks plus mapped buffers).
    pub allocated: u64,
    /// Free inside the arenas, not yet returned to the kernel.
    pub free: u64,
}

/// Tunes malloc for a long-running agent; call first thing, before threads start.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc parameters; called before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
    }
}

/// Returns free heap pages to the kernel.
pub fn give_back() {
    trim();
}

/// After templates load: returns free heap pages, and the executable's pages of code and
/// embedded objects that only starting and loading used. Not repeated later: what the running
/// agent uses faults back in within seconds (measured: about 8 MB released a minute came back
/// within 10 to 20 s), so releasing it again only makes resident memory saw between levels.
pub fn give_back_after_load() {
    trim();
    super::exe_pages::release();
}

/// Returns free heap pages to the kernel.
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes malloc's own locks; it is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The heap's usage, when the allocator can tell it.
pub fn usage() -> Option<HeapUsage> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads malloc's statistics.
        let info = unsafe { libc::mallinfo2() };
        Some(HeapUsage {
            allocated: (info.uordblks + info.hblkhd) as u64,
            free: info.fordblks as u64,
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_follows_a_large_allocation_and_trim_keeps_it() {
        tune();
        let before = usage().expect("glibc reports heap usage");
        let buffer = vec![1u8; 8 << 20];
        let during = usage().expect("usage");
        // other tests' threads allocate too: leave them 4 MiB of slack
        assert!(
            during.allocated >= before.allocated + (4 << 20),
            "{before:?} -> {during:?}"
        );
        trim();
        assert_eq!(buffer.iter().map(|b| *b as usize).sum::<usize>(), 8 << 20);
        drop(buffer);
        let after = usage().expect("usage");
        assert!(
            after.allocated + (4 << 20) <= during.allocated,
            "{during:?} -> {after:?}"
        );
    }
}

//! The agent's own executable: its code and constant data stay mapped once touched, and count
//! in the agent's resident memory, though most of them run only while the agent starts
//! (config, rule compilation, template loading, the embedded BPF objects). `release`, called
//! once templates are loaded, unmaps the resident pages of the executable's never-written segments from
//! the agent; the code it runs next faults back in from the page cache (or the file), with the
//! same contents, so what stays resident is what the agent keeps using.

/// Drops this process's resident pages of its executable's read-only segments.
pub fn release() {
    // SAFETY: sysconf has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => return,
    };
    for (start, end) in read_only_ranges() {
        let (start, end) = (start.next_multiple_of(page), end / page * page);
        if end <= start {
            continue;
        }
        // SAFETY: the range lies inside a segment of the executable that is mapped private
        // from its file and never written (no write permission, outside RELRO): dropping its
        // pages only makes the next access fault them in again from the file, unchanged. A
        // running executable cannot be written to (ETXTBSY), so the file holds the same bytes.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// Address ranges of the main executable's loaded segments that are never written: loadable
/// segments without write permission, less the RELRO range (written while the dynamic loader
/// relocates, then made read-only).
fn read_only_ranges() -> Vec<(usize, usize)> {
    let mut segments = Segments::default();
    // SAFETY: the callback only reads the program headers it is given, for the first object
    // (the main executable), and writes into the `Segments` passed as its data pointer.
    unsafe {
        libc::dl_iterate_phdr(
            Some(collect_segments),
            &mut segments as *mut Segments as *mut libc::c_void,
        );
    }
    let Segments { loads, relro } = segments;
    loads
        .into_iter()
        .flat_map(|(start, end)| match relro {
            Some((r_start, r_end)) if r_start < end && start < r_end => {
                vec![(start, r_start.max(start)), (r_end.min(end), end)]
            }
            _ => vec![(start, end)],
        })
        .filter(|(start, end)| start < end)
        .collect()
}

/// What `collect_segments` finds in the main executable's program headers.
#[derive(Default)]
struct Segments {
    /// Loadable segments without write permission: [start, end) addresses.
    loads: Vec<(usize, usize)>,
    /// The RELRO range, if any.
    relro: Option<(usize, usize)>,
}

/// `dl_iterate_phdr` callback: records the first object's (the executable's) segments and
/// stops the walk.
unsafe extern "C" fn collect_segments(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: the loader passes a valid info pointer, and `data` is the `Segments` given to
    // `dl_iterate_phdr` in `read_only_ranges`, alive for the whole walk.
    let (info, segments) = unsafe { (&*info, &mut *(data as *mut Segments)) };
    if info.dlpi_phdr.is_null() {
        return 1;
    }
    // SAFETY: dlpi_phdr points to dlpi_phnum program headers of the object.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
    let base = info.dlpi_addr as usize;
    for header in headers {
        let start = base + header.p_vaddr as usize;
        let end = start + header.p_memsz as usize;
        match header.p_type {
            libc::PT_LOAD if header.p_flags & libc::PF_W == 0 => segments.loads.push((start, end)),
            libc::PT_GNU_RELRO => segments.relro = Some((start, end)),
            _ => {}
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident pages of this process mapped from files, in KiB.
    fn rss_file_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .expect("/proc/self/status")
            .lines()
            .find_map(|l| l.strip_prefix("RssFile:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("RssFile")
    }

    #[test]
    fn the_executables_code_is_found_and_its_pages_come_back_unchanged() {
        let ranges = read_only_ranges();
        let here =
            the_executables_code_is_found_and_its_pages_come_back_unchanged as *const () as usize;
        assert!(
            ranges.iter().any(|(s, e)| (*s..*e).contains(&here)),
            "this function's code at {here:#x} is in none of {ranges:x?}"
        );
        // Constant data is read-only too: its bytes survive the release.
        static TEXT: &str = "constant data of the executable, read after its pages are dropped";
        let before = rss_file_kib();
        release();
        let after = rss_file_kib();
        assert_eq!(
            TEXT,
            "constant data of the executable, read after its pages are dropped"
        );
        assert!(
            after < before,
            "file pages resident: {before} KiB -> {after} KiB"
        );
    }
}

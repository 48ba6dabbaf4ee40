//! The templates compiled and embedded by build.rs.

/// One template as built: its objects and its schema text.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedTemplate {
    /// Folder name (`runqlat`); the catalog name is `bpf.<name>`.
    pub name: &'static str,
    /// The object to load (ring buffer variant for event templates).
    pub object: &'static [u8],
    /// The perf event array variant of an event template, for kernels before 5.8.
    pub perfbuf_object: Option<&'static [u8]>,
    /// The hash-map variant of a `task_storage = true` template, for kernels without
    /// `BPF_MAP_TYPE_TASK_STORAGE` (< 5.11) or where the main object does not attach.
    pub hashmap_object: Option<&'static [u8]>,
    /// The schema.toml text.
    pub schema: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/templates.rs"));

/// Looks up an embedded template by folder name.
pub fn find(name: &str) -> Option<&'static EmbeddedTemplate> {
    TEMPLATES.iter().find(|t| t.name == name)
}

/// Drops this process's resident pages of every embedded object: they are read while
/// templates load, then not again until the next load (a profile), which reads them back from
/// the binary's file. The bytes never change (a read-only mapping of the executable), so this
/// only lowers resident memory; it touches nothing else than whole pages inside the objects.
pub fn release_object_pages() {
    let objects = TEMPLATES.iter().flat_map(|t| {
        [Some(t.object), t.perfbuf_object, t.hashmap_object]
            .into_iter()
            .flatten()
    });
    for bytes in objects {
        release_pages(bytes);
    }
}

/// `madvise(MADV_DONTNEED)` over the whole pages inside `bytes`.
fn release_pages(bytes: &'static [u8]) {
    // SAFETY: sysconf has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => return,
    };
    let start = (bytes.as_ptr() as usize).next_multiple_of(page);
    let end = (bytes.as_ptr() as usize + bytes.len()) / page * page;
    if end <= start {
        return;
    }
    // SAFETY: the range lies inside a `'static` slice of the executable's read-only data,
    // which is a private file mapping never written to: dropping its pages only makes the next
    // read fault them in again from the file, with the same contents.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
    }
}

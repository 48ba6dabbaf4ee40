//! User-space frame symbolization: the mapping covering an address ([`super::procmaps`]), then, for
//! a file mapping, the ELF symbol (`.symtab`, else a Go binary's `.gopclntab`, else
//! `.dynsym`) of the mapped file covering it, and for an anonymous executable mapping (code a
//! JIT emitted) the process's perf map. Only the sampled addresses are resolved: a file's
//! symbol table is scanned once per batch, keeping per sampled address its best symbol so far
//! (no copy of the table, which is a million entries in a large binary), and names are read
//! for the symbols hit, never for the whole table. Resolved file frames are cached per
//! binary (device and inode of the mapped file) and file offset, in a bounded cache; JIT
//! frames only as long as the perf map naming them is unchanged (a runtime reuses its code
//! memory). Rust and C++ names are
//! demangled; an address no symbol covers renders as `file+0xoffset`.

use super::gopclntab::GoPclntab;
use super::perfmap;
use super::procmaps::ProcessMaps;
use object::{
    Object, ObjectSection, ObjectSegment, ObjectSymbol, ObjectSymbolTable, SymbolIndex, SymbolKind,
};
use std::collections::HashMap;
use std::sync::Arc;

/// The names of the functions covering `offsets` (file offsets, any order) in the ELF file
/// at `path`; `None` for an offset no text symbol covers, or for all when the file does not
/// parse. Reads only the headers, the symbol table and the names of the symbols hit.
pub fn resolve_file(path: &str, offsets: &[u64]) -> Vec<Option<String>> {
    let none = || vec![None; offsets.len()];
    let Ok(handle) = std::fs::File::open(path) else {
        return none();
    };
    let cache = object::ReadCache::new(handle);
    let Ok(file) = object::File::parse(&cache) else {
        return none();
    };
    let segments: Vec<(u64, u64, u64)> = file
        .segments()
        .map(|s| {
            let (off, size) = s.file_range();
            (off, size, s.address())
        })
        .collect();
    let to_address = |offset: u64| {
        segments
            .iter()
            .find(|(off, size, _)| offset >= *off && offset < off + size)
            .map(|(off, _, vaddr)| offset - off + vaddr)
    };
    let addrs: Vec<Option<u64>> = offsets.iter().map(|offset| to_address(*offset)).collect();
    // The text symbols covering them: from the static table, else a Go binary's own function
    // table, else the dynamic symbols.
    let mut dynamic = false;
    let mut found = covering_symbols(file.symbols(), &addrs);
    if found.is_none() {
        if let Some(go) = go_table(&file, &cache) {
            return addrs.iter().map(|addr| go.name(&cache, (*addr)?)).collect();
        }
        dynamic = true;
        found = covering_symbols(file.dynamic_symbols(), &addrs);
    }
    let Some(found) = found else {
        return none();
    };
    let name_of = |index: SymbolIndex| -> Option<String> {
        let symbol = if dynamic {
            file.dynamic_symbol_table()?.symbol_by_index(index).ok()?
        } else {
            file.symbol_table()?.symbol_by_index(index).ok()?
        };
        Some(demangle(symbol.name().ok()?))
    };
    let mut names: HashMap<usize, Option<String>> = HashMap::new();
    found
        .into_iter()
        .map(|index| {
            let index = index?;
            names
                .entry(index.0)
                .or_insert_with(|| name_of(index))
                .clone()
        })
        .collect()
}

/// The `.gopclntab` function table of a Go binary, if it has one that parses.
fn go_table<'a, R: object::ReadRef<'a>>(file: &object::File<'a, R>, data: R) -> Option<GoPclntab> {
    let (offset, size) = file.section_by_name(".gopclntab")?.file_range()?;
    GoPclntab::parse(data, offset, size)
}

/// Longest symbol handed to a demangler; longer names stay as they are.
const MAX_MANGLED: usize = 4096;

/// A Rust (legacy or v0) or C++ (Itanium) symbol demangled, Rust without its hash, C++ with
/// its parameter types (as `perf report` shows them); any other name as it is.
pub fn demangle(name: &str) -> String {
    if name.len() > MAX_MANGLED {
        return name.to_string();
    }
    if let Ok(rust) = rustc_demangle::try_demangle(name) {
        return format!("{rust:#}");
    }
    if name.starts_with("_Z") {
        if let Some(text) = cpp_demangle::Symbol::new(name)
            .ok()
            .and_then(|symbol| symbol.demangle().ok())
        {
            return text;
        }
    }
    name.to_string()
}

/// For each of `addrs`, the text symbol of `symbols` covering it: the one starting nearest at
/// or below it, unless that one has a size and ends before it. `None` when the table has no
/// text symbol at all. One pass over the table, keeping nothing per symbol (a large binary
/// has a million symbols; a profile samples a few thousand addresses): with the wanted
/// addresses sorted, each gap between two of them remembers the symbol starting highest in
/// it, and an address's symbol is its own gap's, else the nearest earlier gap's.
fn covering_symbols<'a, S: ObjectSymbol<'a>>(
    symbols: impl Iterator<Item = S>,
    addrs: &[Option<u64>],
) -> Option<Vec<Option<SymbolIndex>>> {
    let mut sorted: Vec<u64> = addrs.iter().flatten().copied().collect();
    sorted.sort_unstable();
    sorted.dedup();
    // Per gap (wanted addresses before it excluded, its own included): (start, size, index).
    let mut best: Vec<Option<(u64, u64, SymbolIndex)>> = vec![None; sorted.len()];
    let mut any = false;
    for symbol in symbols {
        if symbol.kind() != SymbolKind::Text || symbol.address() == 0 {
            continue;
        }
        any = true;
        let start = symbol.address();
        let gap = sorted.partition_point(|addr| *addr < start);
        let Some(slot) = best.get_mut(gap) else {
            continue;
        };
        // Of two symbols at one address, one with a size wins.
        let better = slot.is_none_or(|(at, size, _)| {
            start > at || (start == at && size == 0 && symbol.size() != 0)
        });
        if better {
            *slot = Some((start, symbol.size(), symbol.index()));
        }
    }
    if !any {
        return None;
    }
    let mut nearest = None;
    let covering: Vec<Option<SymbolIndex>> = sorted
        .iter()
        .zip(best)
        .map(|(addr, candidate)| {
            nearest = candidate.or(nearest);
            let (start, size, index) = nearest?;
            (size == 0 || *addr < start + size).then_some(index)
        })
        .collect();
    Some(
        addrs
            .iter()
            .map(|addr| {
                let at = sorted.binary_search(&(*addr)?).ok()?;
                covering[at]
            })
            .collect(),
    )
}

/// Cached frames: (device, inode, file offset) -> name for ELF files, (perf map stamp, pid,
/// address) -> name for JIT code (`perfmap::stamp`), in two generations so the cache
/// never holds more than `capacity` frames and the frames used lately survive a turnover.
#[derive(Debug)]
struct FrameCache {
    current: HashMap<(u64, u64, u64), Arc<str>>,
    previous: HashMap<(u64, u64, u64), Arc<str>>,
    capacity: usize,
}

impl FrameCache {
    fn get(&mut self, key: &(u64, u64, u64)) -> Option<Arc<str>> {
        if let Some(name) = self.current.get(key) {
            return Some(name.clone());
        }
        let name = self.previous.remove(key)?;
        self.insert(*key, name.clone());
        Some(name)
    }

    fn insert(&mut self, key: (u64, u64, u64), name: Arc<str>) {
        if self.current.len() >= self.capacity / 2 {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, name);
    }

    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Heap bytes the cache holds, estimated: both tables' slots (key, name pointer and a
    /// control byte each) and every name with its reference counts.
    fn bytes(&self) -> usize {
        const SLOT: usize = std::mem::size_of::<((u64, u64, u64), Arc<str>)>() + 1;
        const COUNTS: usize = 2 * std::mem::size_of::<usize>();
        [&self.current, &self.previous]
            .iter()
            .map(|table| {
                table.capacity() * SLOT
                    + table
                        .values()
                        .map(|name| COUNTS + name.len())
                        .sum::<usize>()
            })
            .sum()
    }
}

/// Counters of a symbolizer's work, for the agent's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SymbolizerStats {
    /// Frames answered from the cache.
    pub hits: u64,
    /// Frames resolved from their ELF file.
    pub misses: u64,
    /// ELF files opened to resolve frames.
    pub files_read: u64,
    /// Frames in the cache now.
    pub cached: u64,
    /// Heap bytes the cache holds now (estimated from its tables' capacity and its names).
    pub cached_bytes: u64,
    /// Frames in anonymous executable memory looked up in their process's perf map.
    pub jit_lookups: u64,
    /// Of those, the frames the perf map named.
    pub jit_named: u64,
}

/// The uncached frames of one file in a batch: the path to open (through the process's
/// root), the path as mapped (the fallback), and (batch slot, file offset) pairs.
type Misses = (String, String, Vec<(usize, u64)>);

/// Symbolizes user addresses of many processes, caching resolved frames per binary.
#[derive(Debug)]
pub struct UserSymbolizer {
    cache: FrameCache,
    stats: SymbolizerStats,
}

/// Frames a symbolizer caches unless told otherwise.
pub const DEFAULT_CACHED_FRAMES: usize = 65_536;

impl Default for UserSymbolizer {
    fn default() -> Self {
        UserSymbolizer::with_capacity(DEFAULT_CACHED_FRAMES)
    }
}

impl UserSymbolizer {
    /// An empty cache of the default size.
    pub fn new() -> UserSymbolizer {
        UserSymbolizer::default()
    }

    /// An empty cache holding at most `frames` resolved frames.
    pub fn with_capacity(frames: usize) -> UserSymbolizer {
        UserSymbolizer {
            cache: FrameCache {
                current: HashMap::new(),
                previous: HashMap::new(),
                capacity: frames.max(2),
            },
            stats: SymbolizerStats::default(),
        }
    }

    /// What the symbolizer did so far, and its cache's size.
    pub fn stats(&self) -> SymbolizerStats {
        SymbolizerStats {
            cached: self.cache.len() as u64,
            cached_bytes: self.cache.bytes() as u64,
            ..self.stats
        }
    }

    /// The frame names of a batch of (pid, address) pairs, in order: the symbol (from the
    /// ELF file, or from the perf map for anonymous executable memory), else `file+0xoff`,
    /// else the hex address (the process exited, or JIT code its perf map does not name).
    /// Each process's maps and perf map are read once, one process's maps open at a time
    /// (a batch may hold thousands of processes), and each ELF file is opened once for the
    /// addresses the cache does not hold.
    pub fn symbolize_batch(&mut self, wanted: &[(u32, u64)]) -> Vec<Arc<str>> {
        let mut out: Vec<Option<Arc<str>>> = vec![None; wanted.len()];
        // Misses grouped by file; JIT frames grouped by process.
        let mut misses: HashMap<(u64, u64), Misses> = HashMap::new();
        let mut jit: HashMap<u32, Vec<usize>> = HashMap::new();
        let mut by_process: Vec<usize> = (0..wanted.len()).collect();
        by_process.sort_by_key(|slot| wanted[*slot].0);
        // The maps of the process being looked at; the previous one's closes on replacement.
        let mut current: Option<(u32, Option<ProcessMaps>)> = None;
        for slot in by_process {
            let (pid, addr) = wanted[slot];
            if current.as_ref().map(|(open, _)| *open) != Some(pid) {
                current = Some((pid, ProcessMaps::open(pid)));
            }
            let process = current.as_mut().and_then(|(_, maps)| maps.as_mut());
            let Some(mapping) = process.and_then(|p| p.covering(addr)) else {
                out[slot] = Some(format!("0x{addr:x}").into());
                continue;
            };
            if mapping.anonymous() {
                jit.entry(pid).or_default().push(slot);
                continue;
            }
            let offset = addr - mapping.start + mapping.offset;
            let file = mapping.file;
            if let Some(name) = self.cache.get(&(file.0, file.1, offset)) {
                self.stats.hits += 1;
                out[slot] = Some(name);
                continue;
            }
            if let Some(entry) = misses.get_mut(&file) {
                entry.2.push((slot, offset));
                continue;
            }
            let path = current
                .as_mut()
                .and_then(|(_, maps)| maps.as_mut())
                .map(|p| p.path(addr))
                .unwrap_or_default();
            // Read the file through the process's root so containers resolve too.
            let inside = format!("/proc/{pid}/root{path}");
            misses.insert(file, (inside, path, vec![(slot, offset)]));
        }
        for ((dev, inode), (path, fallback, slots)) in misses {
            let offsets: Vec<u64> = slots.iter().map(|(_, off)| *off).collect();
            self.stats.files_read += 1;
            self.stats.misses += offsets.len() as u64;
            let mut names = resolve_file(&path, &offsets);
            if names.iter().all(Option::is_none) {
                names = resolve_file(&fallback, &offsets);
            }
            let base = fallback.rsplit('/').next().unwrap_or(&fallback);
            for ((slot, offset), name) in slots.into_iter().zip(names) {
                let name: Arc<str> = name
                    .unwrap_or_else(|| format!("{base}+0x{offset:x}"))
                    .into();
                self.cache.insert((dev, inode, offset), name.clone());
                out[slot] = Some(name);
            }
        }
        for (pid, slots) in jit {
            // JIT frames are cached under the perf map's identity and size, so an unchanged
            // map is not read again; one the runtime appended to (or replaced) is.
            let path = perfmap::path_of(pid);
            let stamp = perfmap::stamp(&path);
            let key = |stamp: u64, addr: u64| (stamp, u64::from(pid), addr);
            let mut todo = vec![];
            for slot in slots {
                let addr = wanted[slot].1;
                match stamp.and_then(|stamp| self.cache.get(&key(stamp, addr))) {
                    Some(name) => {
                        self.stats.hits += 1;
                        out[slot] = Some(name);
                    }
                    None => todo.push(slot),
                }
            }
            if todo.is_empty() {
                continue;
            }
            let addrs: Vec<u64> = todo.iter().map(|slot| wanted[*slot].1).collect();
            let names = std::fs::File::open(&path)
                .map(|file| perfmap::resolve(file, &addrs))
                .unwrap_or_else(|_| vec![None; addrs.len()]);
            self.stats.jit_lookups += addrs.len() as u64;
            for ((slot, addr), name) in todo.into_iter().zip(addrs).zip(names) {
                self.stats.jit_named += u64::from(name.is_some());
                let name: Arc<str> = name.unwrap_or_else(|| format!("0x{addr:x}")).into();
                if let Some(stamp) = stamp {
                    self.cache.insert(key(stamp, addr), name.clone());
                }
                out[slot] = Some(name);
            }
        }
        out.into_iter()
            .map(|name| name.unwrap_or_else(|| Arc::from("?")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An anonymous executable page of this process, unmapped on drop.
    struct JitPage(*mut libc::c_void);

    impl Drop for JitPage {
        fn drop(&mut self) {
            // SAFETY: the page was mapped by `jit_page` and nothing refers to it.
            unsafe { libc::munmap(self.0, 4096) };
        }
    }

    fn jit_page() -> JitPage {
        // SAFETY: a fresh anonymous mapping; the test only takes its address.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(page, libc::MAP_FAILED, "mmap an executable page");
        JitPage(page)
    }

    #[test]
    fn jit_names_are_read_again_only_when_the_perf_map_changes() {
        let page = jit_page();
        let addr = page.0 as u64 + 0x10;
        let pid = std::process::id();
        let path = format!("/tmp/perf-{pid}.map");
        std::fs::write(&path, format!("{:x} 100 first_name\n", page.0 as u64)).unwrap();
        let mut symbolizer = UserSymbolizer::new();
        let names = symbolizer.symbolize_batch(&[(pid, addr)]);
        assert_eq!(&*names[0], "first_name");
        assert_eq!(symbolizer.stats().jit_lookups, 1);
        // unchanged: from the cache
        let names = symbolizer.symbolize_batch(&[(pid, addr), (pid, addr + 1)]);
        assert_eq!((&*names[0], &*names[1]), ("first_name", "first_name"));
        let stats = symbolizer.stats();
        assert_eq!((stats.jit_lookups, stats.hits), (2, 1), "{stats:?}");
        // the runtime reused the memory and appended a line: read again, the later line wins
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&format!("{:x} 100 second_name\n", page.0 as u64));
        std::fs::write(&path, text).unwrap();
        let names = symbolizer.symbolize_batch(&[(pid, addr)]);
        let _ = std::fs::remove_file(&path);
        assert_eq!(&*names[0], "second_name");
        assert_eq!(symbolizer.stats().jit_lookups, 3);
    }

    #[inline(never)]
    #[no_mangle]
    extern "C" fn huatuo_usersym_probe() -> u64 {
        std::hint::black_box(42)
    }

    #[test]
    fn symbolizes_a_function_of_this_test_binary_and_caches_it() {
        let addr = huatuo_usersym_probe as *const () as usize as u64;
        let pid = std::process::id();
        let mut symbolizer = UserSymbolizer::with_capacity(4);
        let names = symbolizer.symbolize_batch(&[(pid, addr), (pid, 0x10), (pid, addr + 1)]);
        assert_eq!(&*names[0], "huatuo_usersym_probe");
        // an address in no mapping stays hex
        assert_eq!(&*names[1], "0x10");
        assert_eq!(&*names[2], "huatuo_usersym_probe");
        let first = symbolizer.stats();
        assert_eq!((first.files_read, first.misses, first.hits), (1, 2, 0));
        let again = symbolizer.symbolize_batch(&[(pid, addr)]);
        assert_eq!(&*again[0], "huatuo_usersym_probe");
        let second = symbolizer.stats();
        assert_eq!((second.files_read, second.hits), (1, 1));
    }

    /// The covering symbol of `addr` found the plain way, over a whole sorted table.
    fn reference_name(table: &[(u64, u64, String)], addr: u64) -> Option<String> {
        let at = table.partition_point(|(start, _, _)| *start <= addr);
        let (start, size, name) = table.get(at.checked_sub(1)?)?;
        (*size == 0 || addr < start + size).then(|| demangle(name))
    }

    #[test]
    fn resolving_in_one_pass_names_what_a_sorted_table_names() {
        let path = std::env::current_exe().expect("test binary");
        let data = std::fs::read(&path).expect("read test binary");
        let file = object::File::parse(&*data).expect("parse");
        let mut table: Vec<(u64, u64, String)> = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .map(|s| (s.address(), s.size(), s.name().unwrap_or("").to_string()))
            .collect();
        assert!(table.len() > 1000, "the test binary has a symbol table");
        // Where symbols share an address, keep the one the resolver keeps: the first with a
        // size in table order (the sort is stable), else the first.
        table.sort_by_key(|(start, size, _)| (*start, *size == 0));
        table.dedup_by_key(|(start, _, _)| *start);
        let text = file.section_by_name(".text").expect(".text");
        let (low, high) = (text.address(), text.address() + text.size());
        let segment = file
            .segments()
            .find(|s| s.address() <= low && high <= s.address() + s.size())
            .expect("the segment holding .text");
        let to_offset = |addr: u64| addr - segment.address() + segment.file_range().0;
        // Addresses spread over the text, plus the first and last byte of some symbols.
        let mut addrs: Vec<u64> = (0..4000).map(|i| low + (high - low) / 4000 * i).collect();
        for (start, size, _) in table.iter().step_by(97) {
            addrs.push(*start);
            addrs.push(start + size.saturating_sub(1));
        }
        let offsets: Vec<u64> = addrs.iter().map(|a| to_offset(*a)).collect();
        let names = resolve_file(path.to_str().expect("utf-8 path"), &offsets);
        let mut named = 0;
        for (addr, name) in addrs.iter().zip(&names) {
            let expected = reference_name(&table, *addr);
            named += usize::from(expected.is_some());
            assert_eq!(name, &expected, "address {addr:#x}");
        }
        assert!(named > 3000, "only {named} addresses named");
    }

    #[test]
    fn demangles_rust_and_cpp_and_leaves_other_names() {
        assert_eq!(
            demangle("_ZN11huatuo_demo7Spinner4spinEm"),
            "huatuo_demo::Spinner::spin(unsigned long)"
        );
        assert_eq!(
            demangle("_ZN4core3fmt5write17h0123456789abcdefE"),
            "core::fmt::write"
        );
        assert_eq!(demangle("_RNvCs1234_7mycrate4main"), "mycrate::main");
        for plain in ["main", "main.hotGoSpin", "_Zbogus", "_Z", ""] {
            assert_eq!(demangle(plain), plain);
        }
        let huge = format!("_ZN{}E", "3abc".repeat(5000));
        assert_eq!(demangle(&huge), huge);
        // deep nesting stays within the demangler's recursion limit
        let deep = format!("_Z1f{}v", "PFv".repeat(2000));
        let _ = demangle(&deep);
    }

    #[test]
    fn the_frame_cache_stays_within_its_capacity() {
        let mut cache = FrameCache {
            current: HashMap::new(),
            previous: HashMap::new(),
            capacity: 4,
        };
        for offset in 0..100 {
            cache.insert((1, 2, offset), Arc::from("f"));
            assert!(cache.len() <= 4, "{} frames cached", cache.len());
        }
        // the estimate counts the names and the slots, and stays bounded too
        assert!(cache.bytes() >= 4 * (16 + 1), "{}", cache.bytes());
        assert!(cache.bytes() < 4096, "{}", cache.bytes());
        // the latest frames survive
        assert!(cache.get(&(1, 2, 99)).is_some());
        assert!(cache.get(&(1, 2, 0)).is_none());
    }
}

//! User-space frame symbolization: the mapping of an address from /proc/<pid>/maps, then the
//! nearest ELF symbol (`.symtab`, else `.dynsym`) of the mapped file. Files are parsed once
//! per profile; Rust names are demangled; an address no symbol covers renders as
//! `file+0xoffset`.

use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};
use std::collections::HashMap;

/// One executable mapping of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// File offset of `start`.
    pub offset: u64,
    /// Path of the mapped file.
    pub path: String,
}

/// Parses the text of /proc/<pid>/maps, keeping executable file mappings.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (start, end) = parts.next()?.split_once('-')?;
            let perms = parts.next()?;
            let offset = parts.next()?;
            let _dev = parts.next()?;
            let _inode = parts.next()?;
            let path: String = parts.collect::<Vec<_>>().join(" ");
            (perms.contains('x') && path.starts_with('/')).then_some(())?;
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                offset: u64::from_str_radix(offset, 16).ok()?,
                path,
            })
        })
        .collect()
}

/// Symbols of one ELF file with its loadable segments, ready for lookups.
#[derive(Debug, Default)]
struct ElfSymbols {
    /// (address, size, name) sorted by address.
    symbols: Vec<(u64, u64, String)>,
    /// (file offset, file size, virtual address) of PT_LOAD segments.
    segments: Vec<(u64, u64, u64)>,
}

impl ElfSymbols {
    fn load(path: &str) -> Option<ElfSymbols> {
        // Only the parts parsed are read (headers, symbol and string tables), not the whole
        // file: a binary with debug information is hundreds of MB.
        let cache = object::ReadCache::new(std::fs::File::open(path).ok()?);
        let file = object::File::parse(&cache).ok()?;
        let segments = file
            .segments()
            .map(|s| {
                let (off, size) = s.file_range();
                (off, size, s.address())
            })
            .collect();
        let mut symbols: Vec<(u64, u64, String)> = file
            .symbols()
            .chain(file.dynamic_symbols())
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .filter_map(|s| {
                let name = s.name().ok()?;
                Some((
                    s.address(),
                    s.size(),
                    format!("{:#}", rustc_demangle::demangle(name)),
                ))
            })
            .collect();
        symbols.sort_by_key(|(addr, _, _)| *addr);
        symbols.dedup_by_key(|(addr, _, _)| *addr);
        Some(ElfSymbols { symbols, segments })
    }

    /// The symbol covering a file offset.
    fn lookup(&self, file_offset: u64) -> Option<&str> {
        let (seg_off, _, vaddr) = self
            .segments
            .iter()
            .find(|(off, size, _)| file_offset >= *off && file_offset < off + size)?;
        let addr = file_offset - seg_off + vaddr;
        let idx = self.symbols.partition_point(|(start, _, _)| *start <= addr);
        let (start, size, name) = self.symbols.get(idx.checked_sub(1)?)?;
        (*size == 0 || addr < start + size).then_some(name.as_str())
    }
}

/// Symbolizes user addresses of many processes, caching maps and ELF files.
#[derive(Debug, Default)]
pub struct UserSymbolizer {
    maps: HashMap<u32, Vec<Mapping>>,
    files: HashMap<String, Option<ElfSymbols>>,
}

impl UserSymbolizer {
    /// An empty cache.
    pub fn new() -> UserSymbolizer {
        UserSymbolizer::default()
    }

    /// The frame name of `addr` in process `pid`: the symbol, else `file+0xoff`, else the
    /// hex address (the process exited or the address is in an anonymous mapping).
    pub fn symbolize(&mut self, pid: u32, addr: u64) -> String {
        let maps = self.maps.entry(pid).or_insert_with(|| {
            std::fs::read_to_string(format!("/proc/{pid}/maps"))
                .map(|text| parse_maps(&text))
                .unwrap_or_default()
        });
        let Some(mapping) = maps.iter().find(|m| addr >= m.start && addr < m.end) else {
            return format!("0x{addr:x}");
        };
        let file_offset = addr - mapping.start + mapping.offset;
        // Read the file through the process's root so containers resolve too.
        let path = format!("/proc/{pid}/root{}", mapping.path);
        let symbols = self
            .files
            .entry(mapping.path.clone())
            .or_insert_with(|| ElfSymbols::load(&path).or_else(|| ElfSymbols::load(&mapping.path)));
        match symbols.as_ref().and_then(|s| s.lookup(file_offset)) {
            Some(name) => name.to_string(),
            None => {
                let base = mapping.path.rsplit('/').next().unwrap_or(&mapping.path);
                format!("{base}+0x{file_offset:x}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_executable_file_mappings_only() {
        let text = "\
55d0c0a00000-55d0c0a21000 r--p 00000000 fd:01 123 /usr/bin/app
55d0c0a21000-55d0c0a80000 r-xp 00021000 fd:01 123 /usr/bin/app
7ffd1000-7ffd2000 r-xp 00000000 00:00 0 [vdso]
7f00-7f10 rwxp 00000000 00:00 0
bad line
";
        assert_eq!(
            parse_maps(text),
            vec![Mapping {
                start: 0x55d0c0a21000,
                end: 0x55d0c0a80000,
                offset: 0x21000,
                path: "/usr/bin/app".into()
            }]
        );
    }

    #[inline(never)]
    #[no_mangle]
    extern "C" fn huatuo_usersym_probe() -> u64 {
        std::hint::black_box(42)
    }

    #[test]
    fn symbolizes_a_function_of_this_test_binary() {
        let addr = huatuo_usersym_probe as *const () as usize as u64;
        let mut symbolizer = UserSymbolizer::new();
        let name = symbolizer.symbolize(std::process::id(), addr);
        assert_eq!(name, "huatuo_usersym_probe");
        // an address in no mapping stays hex
        assert_eq!(symbolizer.symbolize(std::process::id(), 0x10), "0x10");
    }
}

//! Function names of Go binaries from their `.gopclntab` section, which Go's linker keeps
//! even when the symbol table is stripped (`-ldflags=-s -w`). Three layouts are read, as Go's
//! runtime (runtime/symtab.go) writes them and Go's debug/gosym (pclntab.go) reads them:
//!
//! - every header starts with the magic, two zero bytes, the instruction size quantum and the
//!   pointer size (4 or 8); pointer-sized words follow, the first being the number of
//!   functions `nfunc`;
//! - Go 1.18 and later (magic `0xfffffff0`, Go 1.20 on `0xfffffff1`): the words are `nfunc`,
//!   the number of files, the start of the text, and the offsets (from the header) of the
//!   function name table, the compilation unit table, the file table, the pc tables and the
//!   function table; function table fields are 32-bit and entries are offsets from the text
//!   start;
//! - Go 1.16 and 1.17 (magic `0xfffffffa`): the words are `nfunc`, the number of files and
//!   the offsets of the function name table, the compilation unit table, the file table, the
//!   pc tables and the function table; no text start: entries are addresses, and function
//!   table fields are pointer-sized;
//! - Go 1.2 to 1.15 (magic `0xfffffffb`): the only word is `nfunc`, the function table
//!   follows it, its fields are pointer-sized, entries are addresses, and record and name
//!   offsets count from the start of the section.
//!
//! In all three the function table is `nfunc` pairs (entry, offset of the function's `_func`
//! record from the function table, or from the section start before Go 1.16) sorted by
//! entry, then one more entry, the end of the text. A `_func` record starts with its entry
//! (a field of the function table's size) then the 32-bit offset of its NUL-terminated name
//! in the name table (the section itself before Go 1.16).
//!
//! Every read is bounds-checked against the section; a malformed table yields no name, and a
//! big-endian table (whose magic reads byte-swapped here) is not read at all.

use object::ReadRef;

/// Functions a table may declare; more is taken as a corrupt header.
const MAX_FUNCS: u64 = 1 << 22;
/// Longest function name read.
const MAX_NAME: usize = 4096;

/// A parsed function table: where the section is in the file, where its parts are, and the
/// sorted entries.
#[derive(Debug)]
pub struct GoPclntab {
    /// File offset of the section.
    base: u64,
    /// Size of the section.
    size: u64,
    /// Size in bytes of a function table field and of a `_func` record's entry.
    field: u8,
    /// Offset (in the section) names count from.
    funcnames: u64,
    /// Offset (in the section) `_func` record offsets count from.
    funcdata: u64,
    /// Offset (in the section) of the function table.
    functab: u64,
    /// Address of the first entry; `entries` count from it.
    origin: u64,
    /// Entries (from `origin`) of the functions, plus the end of the text.
    entries: Vec<u32>,
}

/// Little-endian reads within `[base, base + size)` of `data`.
struct Section<'a, R> {
    data: R,
    base: u64,
    size: u64,
    _lifetime: std::marker::PhantomData<&'a ()>,
}

impl<'a, R: ReadRef<'a>> Section<'a, R> {
    fn new(data: R, base: u64, size: u64) -> Self {
        Section {
            data,
            base,
            size,
            _lifetime: std::marker::PhantomData,
        }
    }

    fn bytes(&self, offset: u64, len: u64) -> Option<&'a [u8]> {
        let end = offset.checked_add(len)?;
        (end <= self.size).then_some(())?;
        self.data
            .read_bytes_at(self.base.checked_add(offset)?, len)
            .ok()
    }

    fn u32(&self, offset: u64) -> Option<u32> {
        let b = self.bytes(offset, 4)?;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }

    /// A 4- or 8-byte little-endian word at `offset`.
    fn word(&self, offset: u64, size: u8) -> Option<u64> {
        le_word(self.bytes(offset, u64::from(size))?)
    }
}

/// A 4- or 8-byte little-endian word; `None` for any other length.
fn le_word(bytes: &[u8]) -> Option<u64> {
    match bytes.len() {
        4 => Some(u64::from(u32::from_le_bytes(bytes.try_into().ok()?))),
        8 => Some(u64::from_le_bytes(bytes.try_into().ok()?)),
        _ => None,
    }
}

impl GoPclntab {
    /// Parses the header and function table of the section at file offset `base`, `size`
    /// bytes long; `None` when it is not a little-endian table of Go 1.2 or later, or does
    /// not fit.
    pub fn parse<'a, R: ReadRef<'a>>(data: R, base: u64, size: u64) -> Option<GoPclntab> {
        let section = Section::new(data, base, size);
        let head = section.bytes(0, 8)?;
        let magic = u32::from_le_bytes(head[0..4].try_into().ok()?);
        let ptr_size = head[7];
        if head[4] != 0 || head[5] != 0 || !matches!(ptr_size, 4 | 8) {
            return None;
        }
        let word = |index: u64| section.word(8 + index * u64::from(ptr_size), ptr_size);
        let nfunc = word(0)?;
        // (field size, text start, name table, `_func` base, function table)
        let (field, text_start, funcnames, funcdata, functab) = match magic {
            0xffff_fff0 | 0xffff_fff1 => {
                let functab = word(7)?;
                (4, word(2)?, word(3)?, functab, functab)
            }
            0xffff_fffa => {
                let functab = word(6)?;
                (ptr_size, 0, word(2)?, functab, functab)
            }
            0xffff_fffb => (ptr_size, 0, 0, 0, 8 + u64::from(ptr_size)),
            _ => return None,
        };
        if nfunc == 0 || nfunc > MAX_FUNCS || funcnames >= size || functab >= size {
            return None;
        }
        // nfunc (entry, record) pairs and the end entry, read as one block.
        let table = section.bytes(functab, (2 * nfunc + 1) * u64::from(field))?;
        let raw: Vec<u64> = table
            .chunks_exact(usize::from(field))
            .step_by(2)
            .map(le_word)
            .collect::<Option<_>>()?;
        let first = *raw.first()?;
        let entries: Vec<u32> = raw
            .iter()
            .map(|entry| u32::try_from(entry.checked_sub(first)?).ok())
            .collect::<Option<_>>()?;
        if entries.windows(2).any(|w| w[0] > w[1]) {
            return None;
        }
        Some(GoPclntab {
            base,
            size,
            field,
            funcnames,
            funcdata,
            functab,
            origin: text_start.checked_add(first)?,
            entries,
        })
    }

    /// The name of the function covering virtual address `addr`, read from `data` (the same
    /// file the table was parsed from).
    pub fn name<'a, R: ReadRef<'a>>(&self, data: R, addr: u64) -> Option<String> {
        let offset = u32::try_from(addr.checked_sub(self.origin)?).ok()?;
        // The last entry is the end of the text, not a function.
        let after = self.entries.partition_point(|entry| *entry <= offset);
        let index = after.checked_sub(1)?;
        if index + 1 >= self.entries.len() {
            return None;
        }
        self.name_at(data, index as u64)
    }

    /// The name of function `index` of the table.
    fn name_at<'a, R: ReadRef<'a>>(&self, data: R, index: u64) -> Option<String> {
        let section = Section::new(data, self.base, self.size);
        let field = u64::from(self.field);
        let pair = self.functab.checked_add((2 * index + 1) * field)?;
        let func = self.funcdata.checked_add(section.word(pair, self.field)?)?;
        let name_off = section.u32(func.checked_add(field)?)?;
        let start = self.funcnames.checked_add(u64::from(name_off))?;
        let available = self.size.checked_sub(start)?.min(MAX_NAME as u64);
        let bytes = section.bytes(start, available)?;
        let end = bytes.iter().position(|b| *b == 0)?;
        std::str::from_utf8(&bytes[..end]).ok().map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The three layouts, as Go's runtime/symtab.go (Go 1.18, 1.16 and 1.15 respectively)
    /// and debug/gosym/pclntab.go (`parsePclnTab`, Go 1.19) describe them.
    #[derive(Clone, Copy, Debug)]
    enum Layout {
        Go118,
        Go116,
        Go12,
    }

    const ALL: [(Layout, u8); 6] = [
        (Layout::Go118, 8),
        (Layout::Go118, 4),
        (Layout::Go116, 8),
        (Layout::Go116, 4),
        (Layout::Go12, 8),
        (Layout::Go12, 4),
    ];

    /// Start of the text of every test table.
    const TEXT: u64 = 0x401000;
    /// Names of the test functions, NUL-terminated, as a name table holds them.
    const NAMES: &[u8] = b"main.main\0main.busy\0";

    fn put(t: &mut Vec<u8>, value: u64, size: u8) {
        t.extend(&value.to_le_bytes()[..usize::from(size)]);
    }

    /// A table of `layout` with `ptr`-byte pointers: `main.main` at `TEXT`, `main.busy` at
    /// `TEXT + 0x40`, the text ending at `TEXT + 0x100`.
    fn table(layout: Layout, ptr: u8) -> Vec<u8> {
        let p = u64::from(ptr);
        // (entry offset from TEXT, offset of the name in NAMES) of each function
        let funcs = [(0u64, 0u64), (0x40, 10)];
        let end = 0x100;
        let mut t = vec![];
        let magic: u32 = match layout {
            Layout::Go118 => 0xffff_fff0,
            Layout::Go116 => 0xffff_fffa,
            Layout::Go12 => 0xffff_fffb,
        };
        t.extend(magic.to_le_bytes());
        t.extend([0, 0, 1, ptr]);
        match layout {
            Layout::Go118 | Layout::Go116 => {
                let (words, field, text) = match layout {
                    Layout::Go118 => (8, 4u8, TEXT),
                    _ => (7, ptr, 0),
                };
                let names_at = 8 + words * p;
                let functab_at = names_at + NAMES.len() as u64;
                let f = u64::from(field);
                let records_at = 5 * f; // after 2 pairs and the end entry
                let header: Vec<u64> = match layout {
                    // nfunc, nfiles, text start, funcname, cu, filetab, pctab, pcln offsets
                    Layout::Go118 => vec![2, 1, TEXT, names_at, 0, 0, 0, functab_at],
                    // nfunc, nfiles, funcname, cu, filetab, pctab, pcln offsets
                    _ => vec![2, 1, names_at, 0, 0, 0, functab_at],
                };
                for word in header {
                    put(&mut t, word, ptr);
                }
                t.extend(NAMES);
                for (i, (entry, _)) in funcs.iter().enumerate() {
                    put(&mut t, TEXT - text + entry, field);
                    put(&mut t, records_at + i as u64 * (f + 4), field);
                }
                put(&mut t, TEXT - text + end, field);
                for (entry, name) in funcs {
                    put(&mut t, TEXT - text + entry, field);
                    put(&mut t, name, 4);
                }
            }
            Layout::Go12 => {
                put(&mut t, 2, ptr);
                let records_at = 8 + p + 5 * p + 4; // after the function table and file offset
                let names_at = records_at + 2 * (p + 4);
                for (i, (entry, _)) in funcs.iter().enumerate() {
                    put(&mut t, TEXT + entry, ptr);
                    put(&mut t, records_at + i as u64 * (p + 4), ptr);
                }
                put(&mut t, TEXT + end, ptr);
                put(&mut t, names_at + NAMES.len() as u64, 4); // the file table, after the names
                for (entry, name) in funcs {
                    put(&mut t, TEXT + entry, ptr);
                    put(&mut t, names_at + name, 4);
                }
                t.extend(NAMES);
                put(&mut t, 0, 4); // no files
            }
        }
        t
    }

    fn lookup(data: &[u8], addr: u64) -> Option<String> {
        GoPclntab::parse(data, 0, data.len() as u64)?.name(data, addr)
    }

    #[test]
    fn names_the_function_covering_an_address_in_every_layout() {
        for (layout, ptr) in ALL {
            let data = table(layout, ptr);
            let at = |addr| lookup(&data, addr);
            let case = format!("{layout:?} {ptr}-byte");
            assert_eq!(at(TEXT).as_deref(), Some("main.main"), "{case}");
            assert_eq!(at(TEXT + 0x3f).as_deref(), Some("main.main"), "{case}");
            assert_eq!(at(TEXT + 0x40).as_deref(), Some("main.busy"), "{case}");
            assert_eq!(at(TEXT + 0x80).as_deref(), Some("main.busy"), "{case}");
            assert_eq!(at(TEXT + 0xff).as_deref(), Some("main.busy"), "{case}");
            // before the text and past its end
            assert_eq!(at(TEXT - 1), None, "{case}");
            assert_eq!(at(TEXT + 0x100), None, "{case}");
            assert_eq!(at(u64::MAX), None, "{case}");
        }
    }

    #[test]
    fn the_table_can_sit_anywhere_in_the_file() {
        for (layout, ptr) in ALL {
            let mut file = vec![0xaa; 100];
            file.extend(table(layout, ptr));
            file.extend([0xbb; 50]);
            let len = table(layout, ptr).len() as u64;
            let t = GoPclntab::parse(&file[..], 100, len).unwrap();
            assert_eq!(t.name(&file[..], TEXT + 0x50).as_deref(), Some("main.busy"));
        }
    }

    #[test]
    fn truncated_or_corrupted_tables_give_no_name_and_never_panic() {
        for (layout, ptr) in ALL {
            let data = table(layout, ptr);
            let case = format!("{layout:?} {ptr}-byte");
            for len in 0..data.len() {
                // A cut anywhere: either no table, or names only where the bytes are all there.
                let cut = &data[..len];
                for (addr, name) in [(TEXT, "main.main"), (TEXT + 0x40, "main.busy")] {
                    if let Some(found) = lookup(cut, addr) {
                        assert_eq!(found, name, "{case} cut at {len}");
                    }
                }
                // The whole file shorter than the section claims.
                let _ = GoPclntab::parse(cut, 0, data.len() as u64).and_then(|t| t.name(cut, TEXT));
            }
            // Cut inside the header or the function table: no table at all.
            let functab_end = match layout {
                Layout::Go118 => 8 + 8 * usize::from(ptr) + NAMES.len() + 20,
                Layout::Go116 => 8 + 7 * usize::from(ptr) + NAMES.len() + 5 * usize::from(ptr),
                Layout::Go12 => 8 + 6 * usize::from(ptr),
            };
            for len in 0..functab_end {
                assert!(
                    GoPclntab::parse(&data[..len], 0, len as u64).is_none(),
                    "{case} {len}"
                );
            }
            // Before Go 1.16 the names end the table: with the last name's NUL cut off the
            // table still parses, and that name is not read.
            if matches!(layout, Layout::Go12) {
                let unterminated = &data[..data.len() - 5];
                let t = GoPclntab::parse(unterminated, 0, unterminated.len() as u64).expect(&case);
                assert_eq!(t.name(unterminated, TEXT + 0x40), None, "{case}");
                assert_eq!(t.name(unterminated, TEXT).as_deref(), Some("main.main"));
            }
            // every byte flipped in turn, and set to 0xff and 0 in turn
            for at in 0..data.len() {
                for value in [data[at] ^ 0xff, 0xff, 0x00] {
                    let mut bad = data.clone();
                    bad[at] = value;
                    for addr in [0, TEXT, TEXT + 0x40, TEXT + 0xff, u64::MAX] {
                        let _ = lookup(&bad, addr);
                    }
                }
            }
        }
    }

    #[test]
    fn rejects_big_endian_other_magics_pointer_sizes_and_huge_counts() {
        for (layout, ptr) in ALL {
            let case = format!("{layout:?} {ptr}-byte");
            let good = table(layout, ptr);
            assert!(lookup(&good, TEXT).is_some(), "{case}");
            let parse = |t: &[u8]| GoPclntab::parse(t, 0, t.len() as u64);
            // A big-endian table starts with the magic's bytes the other way round.
            let mut big = good.clone();
            big[0..4].reverse();
            assert!(parse(&big).is_none(), "{case}");
            let mut bad = good.clone();
            bad[0] = 0xf5; // no Go version's magic
            assert!(parse(&bad).is_none(), "{case}");
            for size in [0, 2, 16] {
                let mut bad = good.clone();
                bad[7] = size;
                assert!(parse(&bad).is_none(), "{case} pointer size {size}");
            }
            let mut bad = good.clone();
            bad[8..8 + usize::from(ptr)].fill(0xff);
            assert!(parse(&bad).is_none(), "{case}");
            let mut bad = good.clone();
            bad[8..8 + usize::from(ptr)].fill(0);
            assert!(parse(&bad).is_none(), "{case}");
        }
    }

    #[test]
    fn entries_out_of_order_or_spanning_over_4_gib_are_refused() {
        // Go 1.2 layout, 8-byte pointers: entries are addresses at 16, 32 and 48.
        let good = table(Layout::Go12, 8);
        let mut swapped = good.clone();
        swapped[32..40].copy_from_slice(&(TEXT - 1).to_le_bytes());
        assert!(GoPclntab::parse(&swapped[..], 0, swapped.len() as u64).is_none());
        let mut far = good.clone();
        far[48..56].copy_from_slice(&(TEXT + (1 << 32)).to_le_bytes());
        assert!(GoPclntab::parse(&far[..], 0, far.len() as u64).is_none());
        let mut near = good;
        near[48..56].copy_from_slice(&(TEXT + 0xffff_ffff).to_le_bytes());
        let t = GoPclntab::parse(&near[..], 0, near.len() as u64).unwrap();
        assert_eq!(
            t.name(&near[..], TEXT + 0xffff_fffe).as_deref(),
            Some("main.busy")
        );
    }
}

//! Function names of Go binaries from their `.gopclntab` section, which Go's linker keeps
//! even when the symbol table is stripped (`-ldflags=-s -w`). The layout read here is the
//! one of Go 1.18 and later (`pcHeader`, `functab` and `_func` in Go's runtime/symtab.go and
//! runtime/runtime2.go):
//!
//! - the header: magic `0xfffffff0` (Go 1.18, 1.19) or `0xfffffff1` (Go 1.20 and later), two
//!   zero bytes, the instruction size quantum, the pointer size (4 or 8), then pointer-sized
//!   words: number of functions, number of files, start of the text, and the offsets (from
//!   the header) of the function name table, the compilation unit table, the file table, the
//!   pc tables and the function table;
//! - the function table: `nfunc + 1` pairs of 32-bit (entry offset from the text start, offset
//!   of the function's `_func` record from the function table), sorted by entry; the last
//!   entry's offset is the end of the text;
//! - a `_func` record starts with its 32-bit entry offset and the 32-bit offset of its
//!   NUL-terminated name in the name table.
//!
//! Every read is bounds-checked against the section; a malformed table yields no name.

use object::ReadRef;

/// Functions a table may declare; more is taken as a corrupt header.
const MAX_FUNCS: u64 = 1 << 22;
/// Longest function name read.
const MAX_NAME: usize = 4096;

/// A parsed function table: where the section is in the file and the sorted entries.
#[derive(Debug)]
pub struct GoPclntab {
    /// File offset of the section.
    base: u64,
    /// Size of the section.
    size: u64,
    /// File offset (from `base`) of the function name table.
    funcnames: u64,
    /// File offset (from `base`) of the function table.
    functab: u64,
    /// Address the entry offsets count from.
    text_start: u64,
    /// Entry offsets (from `text_start`) of the functions, plus the end of the text.
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

    fn word(&self, offset: u64, ptr_size: u8) -> Option<u64> {
        match ptr_size {
            4 => self.u32(offset).map(u64::from),
            8 => {
                let b = self.bytes(offset, 8)?;
                Some(u64::from_le_bytes(b.try_into().ok()?))
            }
            _ => None,
        }
    }
}

impl GoPclntab {
    /// Parses the header and function table of the section at file offset `base`, `size`
    /// bytes long; `None` when it is not a Go 1.18+ little-endian table or does not fit.
    pub fn parse<'a, R: ReadRef<'a>>(data: R, base: u64, size: u64) -> Option<GoPclntab> {
        let section = Section {
            data,
            base,
            size,
            _lifetime: std::marker::PhantomData,
        };
        let head = section.bytes(0, 8)?;
        let magic = u32::from_le_bytes(head[0..4].try_into().ok()?);
        if !matches!(magic, 0xffff_fff0 | 0xffff_fff1) || head[4] != 0 || head[5] != 0 {
            return None;
        }
        let ptr_size = head[7];
        let word = |index: u64| section.word(8 + index * u64::from(ptr_size), ptr_size);
        let nfunc = word(0)?;
        let text_start = word(2)?;
        let funcnames = word(3)?;
        let functab = word(7)?;
        if nfunc == 0 || nfunc > MAX_FUNCS || funcnames >= size || functab >= size {
            return None;
        }
        // nfunc + 1 pairs of u32, read as one block.
        let table = section.bytes(functab, (nfunc + 1) * 8)?;
        let entries: Vec<u32> = table
            .chunks_exact(8)
            .map(|pair| u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]))
            .collect();
        if entries.windows(2).any(|w| w[0] > w[1]) {
            return None;
        }
        Some(GoPclntab {
            base,
            size,
            funcnames,
            functab,
            text_start,
            entries,
        })
    }

    /// The name of the function covering virtual address `addr`, read from `data` (the same
    /// file the table was parsed from).
    pub fn name<'a, R: ReadRef<'a>>(&self, data: R, addr: u64) -> Option<String> {
        let offset = u32::try_from(addr.checked_sub(self.text_start)?).ok()?;
        // The last entry is the end of the text, not a function.
        let after = self.entries.partition_point(|entry| *entry <= offset);
        let index = after.checked_sub(1)?;
        if index + 1 >= self.entries.len() {
            return None;
        }
        self.name_at(data, index)
    }

    /// The name of function `index` of the table.
    fn name_at<'a, R: ReadRef<'a>>(&self, data: R, index: usize) -> Option<String> {
        let section = Section {
            data,
            base: self.base,
            size: self.size,
            _lifetime: std::marker::PhantomData,
        };
        let pair = self.functab.checked_add(index as u64 * 8 + 4)?;
        let func = self.functab.checked_add(u64::from(section.u32(pair)?))?;
        let name_off = section.u32(func.checked_add(4)?)?;
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

    /// A Go 1.18-layout table, 8-byte pointers, text at 0x401000, functions `main.main` at
    /// +0x0 and `main.busy` at +0x40, text ending at +0x100.
    fn table() -> Vec<u8> {
        let mut t = vec![];
        t.extend(0xffff_fff0u32.to_le_bytes());
        t.extend([0, 0, 1, 8]);
        let header = 8 + 8 * 8;
        let names_at = header as u64;
        let names = b"main.main\0main.busy\0";
        let functab_at = names_at + names.len() as u64;
        let funcs_at = 3 * 8; // _func records follow the 3 pairs, offsets from functab
        for word in [2, 1, 0x401000, names_at, 0, 0, 0, functab_at] {
            t.extend(u64::to_le_bytes(word));
        }
        t.extend(names);
        for (entry, func) in [(0u32, funcs_at), (0x40, funcs_at + 8), (0x100, 0)] {
            t.extend(entry.to_le_bytes());
            t.extend((func as u32).to_le_bytes());
        }
        for (entry, name) in [(0u32, 0u32), (0x40, 10)] {
            t.extend(entry.to_le_bytes());
            t.extend(name.to_le_bytes());
        }
        t
    }

    fn lookup(data: &[u8], addr: u64) -> Option<String> {
        GoPclntab::parse(data, 0, data.len() as u64)?.name(data, addr)
    }

    #[test]
    fn names_the_function_covering_an_address() {
        let data = table();
        assert_eq!(lookup(&data, 0x401000).as_deref(), Some("main.main"));
        assert_eq!(lookup(&data, 0x40103f).as_deref(), Some("main.main"));
        assert_eq!(lookup(&data, 0x401040).as_deref(), Some("main.busy"));
        assert_eq!(lookup(&data, 0x4010ff).as_deref(), Some("main.busy"));
        // before the text and past its end
        assert_eq!(lookup(&data, 0x400fff), None);
        assert_eq!(lookup(&data, 0x401100), None);
    }

    #[test]
    fn the_table_can_sit_anywhere_in_the_file() {
        let mut file = vec![0xaa; 100];
        file.extend(table());
        file.extend([0xbb; 50]);
        let t = GoPclntab::parse(&file[..], 100, table().len() as u64).unwrap();
        assert_eq!(t.name(&file[..], 0x401050).as_deref(), Some("main.busy"));
    }

    #[test]
    fn truncated_or_corrupted_tables_give_no_name_and_never_panic() {
        let data = table();
        for len in 0..data.len() {
            // A cut anywhere: either no table, or names only where the bytes are all there.
            let cut = &data[..len];
            if let Some(name) = lookup(cut, 0x401040) {
                assert_eq!(name, "main.busy");
            }
            // The whole file shorter than the section claims.
            let _ = GoPclntab::parse(cut, 0, data.len() as u64).and_then(|t| t.name(cut, 0x401000));
        }
        // every byte flipped in turn, and set to 0xff in turn
        for at in 0..data.len() {
            for value in [data[at] ^ 0xff, 0xff, 0x00] {
                let mut bad = data.clone();
                bad[at] = value;
                for addr in [0, 0x401000, 0x401040, 0x4010ff, u64::MAX] {
                    let _ = lookup(&bad, addr);
                }
            }
        }
    }

    #[test]
    fn rejects_other_magics_pointer_sizes_and_huge_counts() {
        let mut bad = table();
        bad[0] = 0xfb; // Go 1.2 magic 0xfffffffb
        assert!(GoPclntab::parse(&bad[..], 0, bad.len() as u64).is_none());
        let mut bad = table();
        bad[7] = 16;
        assert!(GoPclntab::parse(&bad[..], 0, bad.len() as u64).is_none());
        let mut bad = table();
        bad[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(GoPclntab::parse(&bad[..], 0, bad.len() as u64).is_none());
    }
}

//! Facts read from the running kernel's BTF (`/sys/kernel/btf/vmlinux`):
//! - enumerator names, for event members declared with `btf_enum = "<enum>"` (e.g.
//!   `skb_drop_reason`, whose numbering changes between kernels), read once per decoder;
//! - how many arguments a tracepoint passes (`btf_trace_<name>`), for variants that exist in
//!   one form per kernel generation (`crate::requires`).

use std::collections::BTreeMap;

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_PTR: u32 = 2;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_ENUM64: u32 = 19;
const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// Reads little/native-endian u32 at `off`, `None` past the end.
fn u32_at(data: &[u8], off: usize) -> Option<u32> {
    let bytes = data.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

/// The NUL-terminated string at `off` of the string section.
fn str_at(strings: &[u8], off: u32) -> Option<&str> {
    let rest = strings.get(off as usize..)?;
    let end = rest.iter().position(|b| *b == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// Bytes that follow the 12-byte common header of a BTF type of `kind` with `vlen` members.
fn trailing(kind: u32, vlen: usize) -> Option<usize> {
    Some(match kind {
        1 | 14 | 17 => 4,        // INT, VAR, DECL_TAG
        3 => 12,                 // ARRAY
        4 | 5 | 15 => 12 * vlen, // STRUCT, UNION, DATASEC
        6 | 13 => 8 * vlen,      // ENUM, FUNC_PROTO
        19 => 12 * vlen,         // ENUM64
        2 | 7..=12 | 16 | 18 => 0,
        _ => return None,
    })
}

/// One type of a BTF blob: its kind, name, member count, the `type`/`size` word and where its
/// trailing members start in `types`.
struct TypeEntry<'a> {
    kind: u32,
    name: Option<&'a str>,
    vlen: usize,
    type_or_size: u32,
    body: usize,
}

/// A parsed view of raw BTF: the type section split into entries (id = index + 1).
struct Types<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    entries: Vec<TypeEntry<'a>>,
}

impl<'a> Types<'a> {
    fn parse(data: &'a [u8]) -> Result<Types<'a>, String> {
        let magic = data.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]]));
        if magic != Some(BTF_MAGIC) {
            return Err("not BTF (bad magic)".into());
        }
        let header = |i: usize| u32_at(data, 4 + 4 * i).ok_or("truncated BTF header");
        let hdr_len = header(0)? as usize;
        let (type_off, type_len) = (header(1)? as usize, header(2)? as usize);
        let (str_off, str_len) = (header(3)? as usize, header(4)? as usize);
        let section = |off: usize, len: usize| {
            data.get(hdr_len + off..hdr_len + off + len)
                .ok_or("BTF section out of bounds")
        };
        let types = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?;
        let mut entries = vec![];
        let mut pos = 0;
        while pos + 12 <= types.len() {
            let word = |at: usize| u32_at(types, at).ok_or("truncated BTF type");
            let info = word(pos + 4)?;
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            let body = pos + 12;
            entries.push(TypeEntry {
                kind,
                name: str_at(strings, word(pos)?).filter(|n| !n.is_empty()),
                vlen,
                type_or_size: word(pos + 8)?,
                body,
            });
            pos = body + trailing(kind, vlen).ok_or(format!("unknown BTF kind {kind}"))?;
        }
        Ok(Types {
            types,
            strings,
            entries,
        })
    }

    fn find(&self, kind: u32, name: &str) -> Option<&TypeEntry<'a>> {
        self.entries.iter().find(|t| {
            t.name == Some(name) && (t.kind == kind || (kind == KIND_ENUM && t.kind == KIND_ENUM64))
        })
    }

    fn by_id(&self, id: u32) -> Option<&TypeEntry<'a>> {
        self.entries.get((id as usize).checked_sub(1)?)
    }
}

/// The enumerators of `enum <name>` in raw BTF `data`, value → name with the
/// `<NAME>_` prefix removed (`SKB_DROP_REASON_NO_SOCKET` → `NO_SOCKET`).
pub fn parse_enum(data: &[u8], name: &str) -> Result<BTreeMap<u64, String>, String> {
    let parsed = Types::parse(data)?;
    let Some(entry) = parsed.find(KIND_ENUM, name) else {
        return Err(format!("enum {name} is not in the kernel BTF"));
    };
    let prefix = format!("{}_", name.to_uppercase());
    let step = if entry.kind == KIND_ENUM { 8 } else { 12 };
    let mut out = BTreeMap::new();
    for i in 0..entry.vlen {
        let at = entry.body + i * step;
        let (Some(n), Some(lo)) = (u32_at(parsed.types, at), u32_at(parsed.types, at + 4)) else {
            return Err("truncated BTF enum".into());
        };
        let hi = if entry.kind == KIND_ENUM64 {
            u32_at(parsed.types, at + 8).unwrap_or(0)
        } else {
            0
        };
        let text = str_at(parsed.strings, n).unwrap_or_default();
        let short = text.strip_prefix(&prefix).unwrap_or(text);
        out.insert(u64::from(hi) << 32 | u64::from(lo), short.to_string());
    }
    Ok(out)
}

/// How many arguments tracepoint `name` passes (its `btf_trace_<name>` typedef is a pointer to
/// a function whose first parameter is the probe's data pointer, not an argument).
pub fn parse_tracepoint_args(data: &[u8], name: &str) -> Result<usize, String> {
    let parsed = Types::parse(data)?;
    let typedef = format!("btf_trace_{name}");
    let missing = || format!("tracepoint {name} is not in the kernel BTF");
    let entry = parsed.find(KIND_TYPEDEF, &typedef).ok_or_else(missing)?;
    let ptr = parsed
        .by_id(entry.type_or_size)
        .filter(|t| t.kind == KIND_PTR);
    let proto = ptr
        .and_then(|p| parsed.by_id(p.type_or_size))
        .filter(|t| t.kind == KIND_FUNC_PROTO)
        .ok_or_else(|| format!("{typedef} is not a pointer to a function"))?;
    proto
        .vlen
        .checked_sub(1)
        .ok_or_else(|| format!("{typedef} has no data parameter"))
}

/// The enumerators of `enum <name>` in the running kernel's BTF.
pub fn kernel_enum(name: &str) -> Result<BTreeMap<u64, String>, String> {
    let data = std::fs::read(VMLINUX).map_err(|e| format!("{VMLINUX}: {e}"))?;
    parse_enum(&data, name).map_err(|e| format!("{VMLINUX}: {e}"))
}

/// How many arguments tracepoint `name` passes on the running kernel (from its BTF).
pub fn kernel_tracepoint_args(name: &str) -> Result<usize, String> {
    let data = std::fs::read(VMLINUX).map_err(|e| format!("{VMLINUX}: {e}"))?;
    parse_tracepoint_args(&data, name).map_err(|e| format!("{VMLINUX}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob of the given type words and string section.
    fn btf(words: &[u32], strings: &[u8]) -> Vec<u8> {
        let types: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let (types_len, strings_len) = (types.len() as u32, strings.len() as u32);
        let mut out = vec![];
        out.extend_from_slice(&BTF_MAGIC.to_ne_bytes());
        out.extend_from_slice(&[1, 0]);
        for w in [24u32, 0, types_len, types_len, strings_len] {
            out.extend_from_slice(&w.to_ne_bytes());
        }
        out.extend(types);
        out.extend_from_slice(strings);
        out
    }

    /// One INT and one ENUM `color { COLOR_RED = 1, COLOR_BLUE = 7 }`.
    fn blob() -> Vec<u8> {
        #[rustfmt::skip]
        let words = [
            1, 1 << 24, 4, 0x20,               // int: INT, size 4, encoding
            5, (6 << 24) | 2, 4, 11, 1, 21, 7, // enum color, 2 values
        ];
        btf(&words, b"\0int\0color\0COLOR_RED\0COLOR_BLUE\0")
    }

    #[test]
    fn finds_an_enum_and_strips_its_prefix() {
        let names = parse_enum(&blob(), "color").unwrap();
        assert_eq!(names[&1], "RED");
        assert_eq!(names[&7], "BLUE");
        assert!(parse_enum(&blob(), "shape").unwrap_err().contains("shape"));
    }

    #[test]
    fn truncated_or_foreign_data_is_an_error() {
        let data = blob();
        assert!(parse_enum(&data[..30], "color").is_err());
        assert!(parse_enum(b"ELF", "color").is_err());
    }

    /// `typedef void (*btf_trace_demo)(void *, int, int)`: types 1 INT, 2 FUNC_PROTO
    /// (3 params), 3 PTR -> 2, 4 TYPEDEF btf_trace_demo -> 3.
    fn tracepoint_blob() -> Vec<u8> {
        #[rustfmt::skip]
        let words = [
            1, 1 << 24, 4, 0x20,                          // int
            0, (13 << 24) | 3, 0, 0, 0, 0, 1, 0, 1,       // func proto (void *, int, int)
            0, 2 << 24, 2,                                // ptr -> 2
            5, 8 << 24, 3,                                // typedef btf_trace_demo -> 3
        ];
        btf(&words, b"\0int\0btf_trace_demo\0")
    }

    #[test]
    fn counts_tracepoint_arguments() {
        assert_eq!(parse_tracepoint_args(&tracepoint_blob(), "demo"), Ok(2));
        let err = parse_tracepoint_args(&tracepoint_blob(), "other").unwrap_err();
        assert!(err.contains("tracepoint other"), "{err}");
        assert!(parse_tracepoint_args(&blob(), "demo").is_err());
    }

    #[test]
    fn the_running_kernel_names_its_drop_reasons() {
        if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            eprintln!("SKIP: no kernel BTF");
            return;
        }
        let names = kernel_enum("skb_drop_reason").unwrap();
        assert!(names.values().any(|n| n == "NO_SOCKET"), "{names:?}");
        assert!(names.values().any(|n| n == "NOT_SPECIFIED"), "{names:?}");
    }
}

//! Enumerator names from the running kernel's BTF (`/sys/kernel/btf/vmlinux`), for event
//! members declared with `btf_enum = "<enum>"` (e.g. `skb_drop_reason`, whose numbering
//! changes between kernels). Read once when a decoder is built.

use std::collections::BTreeMap;

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_ENUM: u32 = 6;
const KIND_ENUM64: u32 = 19;

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

/// The enumerators of `enum <name>` in raw BTF `data`, value → name with the
/// `<NAME>_` prefix removed (`SKB_DROP_REASON_NO_SOCKET` → `NO_SOCKET`).
pub fn parse_enum(data: &[u8], name: &str) -> Result<BTreeMap<u64, String>, String> {
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
    let prefix = format!("{}_", name.to_uppercase());
    let mut pos = 0;
    while pos + 12 <= types.len() {
        let info = u32_at(types, pos + 4).ok_or("truncated BTF type")?;
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        let body = pos + 12;
        let next = body + trailing(kind, vlen).ok_or(format!("unknown BTF kind {kind}"))?;
        let name_off = u32_at(types, pos).ok_or("truncated BTF type")?;
        if matches!(kind, KIND_ENUM | KIND_ENUM64) && str_at(strings, name_off) == Some(name) {
            let step = if kind == KIND_ENUM { 8 } else { 12 };
            let mut out = BTreeMap::new();
            for i in 0..vlen {
                let at = body + i * step;
                let (Some(n), Some(lo)) = (u32_at(types, at), u32_at(types, at + 4)) else {
                    return Err("truncated BTF enum".into());
                };
                let hi = if kind == KIND_ENUM64 {
                    u32_at(types, at + 8).unwrap_or(0)
                } else {
                    0
                };
                let text = str_at(strings, n).unwrap_or_default();
                let short = text.strip_prefix(&prefix).unwrap_or(text);
                out.insert(u64::from(hi) << 32 | u64::from(lo), short.to_string());
            }
            return Ok(out);
        }
        pos = next;
    }
    Err(format!("enum {name} is not in the kernel BTF"))
}

/// The enumerators of `enum <name>` in the running kernel's BTF.
pub fn kernel_enum(name: &str) -> Result<BTreeMap<u64, String>, String> {
    let data = std::fs::read("/sys/kernel/btf/vmlinux")
        .map_err(|e| format!("/sys/kernel/btf/vmlinux: {e}"))?;
    parse_enum(&data, name).map_err(|e| format!("/sys/kernel/btf/vmlinux: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with one INT and one ENUM `color { COLOR_RED = 1, COLOR_BLUE = 7 }`.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0color\0COLOR_RED\0COLOR_BLUE\0".to_vec();
        let mut types = vec![];
        for w in [1u32, 1 << 24, 4, 0x20] {
            types.extend_from_slice(&w.to_ne_bytes()); // int, INT, size 4, encoding
        }
        for w in [5u32, (6 << 24) | 2, 4, 11, 1, 21, 7] {
            types.extend_from_slice(&w.to_ne_bytes()); // enum color, 2 values
        }
        let mut out = vec![];
        out.extend_from_slice(&BTF_MAGIC.to_ne_bytes());
        out.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            out.extend_from_slice(&w.to_ne_bytes());
        }
        out.extend(types);
        out.extend(strings);
        out
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

//! C struct layouts described in schema.toml (`[event]` fields, histogram keys): scalar C
//! types, natural alignment, and decoding of raw bytes into values.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// A C type a schema may name: fixed-width integers and `char[N]` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CType {
    /// An unsigned integer of 1, 2, 4 or 8 bytes.
    Unsigned(usize),
    /// A signed integer of 1, 2, 4 or 8 bytes.
    Signed(usize),
    /// A NUL-padded string of N bytes.
    Chars(usize),
    /// An array of N unsigned integers of the given width (`u8[16]`, `u64[32]`).
    Array(usize, usize),
}

impl CType {
    /// Parses `u8`..`u64`, `s8`..`s64` (or `i8`..`i64`), `char[N]` and `uW[N]` arrays.
    pub fn parse(text: &str) -> Result<CType, String> {
        let text = text.trim();
        if let Some((elem, rest)) = text.split_once('[') {
            let n: usize = rest
                .strip_suffix(']')
                .and_then(|len| len.trim().parse().ok())
                .ok_or_else(|| format!("bad array length in C type `{text}`"))?;
            if n == 0 || n > 4096 {
                return Err(format!("C type `{text}`: length must be 1..=4096"));
            }
            return match (elem.trim(), CType::parse(elem)) {
                ("char", _) => Ok(CType::Chars(n)),
                (_, Ok(CType::Unsigned(width))) => Ok(CType::Array(width, n)),
                _ => Err(format!(
                    "C type `{text}`: arrays are char[N] or of unsigned integers"
                )),
            };
        }
        let width = |digits: &str| match digits {
            "8" => Ok(1),
            "16" => Ok(2),
            "32" => Ok(4),
            "64" => Ok(8),
            _ => Err(format!(
                "unknown C type `{text}` (expected u8..u64, s8..s64 or char[N])"
            )),
        };
        match text.as_bytes().first() {
            Some(b'u') => Ok(CType::Unsigned(width(&text[1..])?)),
            Some(b's') | Some(b'i') => Ok(CType::Signed(width(&text[1..])?)),
            _ => Err(format!(
                "unknown C type `{text}` (expected u8..u64, s8..s64 or char[N])"
            )),
        }
    }

    /// Size in bytes.
    pub fn size(self) -> usize {
        match self {
            CType::Unsigned(n) | CType::Signed(n) | CType::Chars(n) => n,
            CType::Array(width, n) => width * n,
        }
    }

    /// Natural alignment in bytes (what clang uses for the BPF target).
    pub fn align(self) -> usize {
        match self {
            CType::Unsigned(n) | CType::Signed(n) | CType::Array(n, _) => n,
            CType::Chars(_) => 1,
        }
    }

    /// Decodes a value of this type at the start of `bytes` (native endianness).
    pub fn decode(self, bytes: &[u8]) -> Option<Raw> {
        let raw = bytes.get(..self.size())?;
        match self {
            CType::Chars(_) => {
                let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
                Some(Raw::Str(String::from_utf8_lossy(&raw[..end]).into_owned()))
            }
            CType::Unsigned(n) => Some(Raw::Unsigned(read_uint(raw, n))),
            CType::Signed(n) => {
                let v = read_uint(raw, n);
                let shift = 64 - 8 * n as u32;
                Some(Raw::Signed(((v << shift) as i64) >> shift))
            }
            CType::Array(width, _) => Some(Raw::Array(
                raw.chunks_exact(width)
                    .map(|chunk| read_uint(chunk, width))
                    .collect(),
            )),
        }
    }
}

fn read_uint(raw: &[u8], n: usize) -> u64 {
    let mut buf = [0u8; 8];
    buf[..n].copy_from_slice(&raw[..n]);
    u64::from_ne_bytes(buf)
}

impl fmt::Display for CType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CType::Unsigned(n) => write!(f, "u{}", n * 8),
            CType::Signed(n) => write!(f, "s{}", n * 8),
            CType::Chars(n) => write!(f, "char[{n}]"),
            CType::Array(width, n) => write!(f, "u{}[{n}]", width * 8),
        }
    }
}

impl<'de> Deserialize<'de> for CType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        CType::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A decoded scalar before the schema gives it meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raw {
    /// An unsigned integer.
    Unsigned(u64),
    /// A signed integer.
    Signed(i64),
    /// A string.
    Str(String),
    /// The elements of an integer array.
    Array(Vec<u64>),
}

/// Offsets of the members of a C struct with these member types, in order, and its total
/// size (padded to the largest alignment), as clang lays it out.
pub fn offsets(types: &[CType]) -> (Vec<usize>, usize) {
    let mut offset: usize = 0;
    let mut max_align = 1;
    let mut result = Vec::with_capacity(types.len());
    for ty in types {
        let align = ty.align();
        max_align = max_align.max(align);
        offset = offset.div_ceil(align) * align;
        result.push(offset);
        offset += ty.size();
    }
    (result, offset.div_ceil(max_align) * max_align)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_types_and_rejects_unknown_ones() {
        assert_eq!(CType::parse("u32"), Ok(CType::Unsigned(4)));
        assert_eq!(CType::parse("s64"), Ok(CType::Signed(8)));
        assert_eq!(CType::parse("char[16]"), Ok(CType::Chars(16)));
        assert!(CType::parse("u24").unwrap_err().contains("u24"));
        assert!(CType::parse("char[0]").is_err());
        assert!(CType::parse("float").is_err());
        assert_eq!(CType::parse("u64[32]"), Ok(CType::Array(8, 32)));
        assert_eq!(CType::parse("u64[32]").map(CType::size), Ok(256));
        assert!(CType::parse("s32[4]").is_err());
        assert!(CType::parse("u8[x]").is_err());
    }

    #[test]
    fn lays_out_like_clang() {
        // struct { u64 a; u32 b; char c[16]; s32 d; } -> 0, 8, 12, 28; size 32
        let types = [
            CType::Unsigned(8),
            CType::Unsigned(4),
            CType::Chars(16),
            CType::Signed(4),
        ];
        assert_eq!(offsets(&types), (vec![0, 8, 12, 28], 32));
        // struct { u8 a; u64 b; u16 c; } -> 0, 8, 16; size 24
        let types = [CType::Unsigned(1), CType::Unsigned(8), CType::Unsigned(2)];
        assert_eq!(offsets(&types), (vec![0, 8, 16], 24));
    }

    #[test]
    fn decodes_signed_strings_and_short_input() {
        assert_eq!(
            CType::Signed(4).decode(&(-14i32).to_ne_bytes()),
            Some(Raw::Signed(-14))
        );
        assert_eq!(
            CType::Unsigned(2).decode(&[0xff, 0xff, 9]),
            Some(Raw::Unsigned(65535))
        );
        assert_eq!(
            CType::Chars(8).decode(b"swapper\0"),
            Some(Raw::Str("swapper".into()))
        );
        assert_eq!(
            CType::Chars(4).decode(b"ab\0z"),
            Some(Raw::Str("ab".into()))
        );
        assert_eq!(CType::Unsigned(8).decode(&[1, 2, 3]), None);
        let bytes: Vec<u8> = [7u16, 9].iter().flat_map(|v| v.to_ne_bytes()).collect();
        assert_eq!(
            CType::Array(2, 2).decode(&bytes),
            Some(Raw::Array(vec![7, 9]))
        );
    }
}

//! Kernel address symbolization from /proc/kallsyms, for `ksym` and `kstack` members.

use std::sync::OnceLock;

/// A sorted table of kernel text symbols, compact: the names share one string (a kernel has
/// over 100 000 text symbols; a `String` each would double the table's memory).
#[derive(Debug, Default)]
pub struct Kallsyms {
    /// Every name, one after the other.
    names: String,
    /// Address, and where its name starts and ends in `names`, sorted by address.
    symbols: Vec<(u64, u32, u32)>,
}

/// The `(address, type, name)` of each well-formed line of a /proc/kallsyms text (`addr type
/// name [module]`); hidden addresses read as 0.
pub fn entries(text: &str) -> impl Iterator<Item = (u64, &str, &str)> {
    text.lines().filter_map(|line| {
        let mut parts = line.split_whitespace();
        let addr = u64::from_str_radix(parts.next()?, 16).ok()?;
        Some((addr, parts.next()?, parts.next()?))
    })
}

impl Kallsyms {
    /// Parses the text of /proc/kallsyms (lines `addr type name [module]`); zero addresses
    /// (hidden by kptr_restrict) and non-text symbols are skipped.
    pub fn parse(text: &str) -> Kallsyms {
        let mut table = Kallsyms::default();
        for (addr, kind, name) in entries(text) {
            let text_symbol = matches!(kind, "t" | "T" | "w" | "W");
            let start = table.names.len();
            let Ok(end) = u32::try_from(start + name.len()) else {
                break;
            };
            if addr != 0 && text_symbol {
                table.names.push_str(name);
                table.symbols.push((addr, start as u32, end));
            }
        }
        table.symbols.sort_unstable();
        table.symbols.dedup_by_key(|(addr, _, _)| *addr);
        table.names.shrink_to_fit();
        table.symbols.shrink_to_fit();
        table
    }

    /// The running kernel's table, read from /proc/kallsyms once and kept (empty when
    /// unreadable).
    pub fn system() -> &'static Kallsyms {
        static TABLE: OnceLock<Kallsyms> = OnceLock::new();
        TABLE.get_or_init(|| {
            std::fs::read_to_string("/proc/kallsyms")
                .map(|text| Kallsyms::parse(&text))
                .unwrap_or_default()
        })
    }

    /// `name+0xoff` for an address, or the hex address when no symbol covers it.
    pub fn symbolize(&self, addr: u64) -> String {
        let idx = self.symbols.partition_point(|(start, _, _)| *start <= addr);
        match idx.checked_sub(1).and_then(|i| self.symbols.get(i)) {
            Some((start, from, to)) => {
                let name = self.names.get(*from as usize..*to as usize).unwrap_or("?");
                format!("{name}+0x{:x}", addr - start)
            }
            None => format!("0x{addr:x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolizes_by_nearest_lower_symbol() {
        let table = Kallsyms::parse(
            "ffffffff81000000 T _stext\nffffffff81000100 t do_one\n0000000000000000 T hidden\n\
             ffffffff82000000 D some_data\ngarbage\n",
        );
        assert_eq!(table.symbolize(0xffffffff81000104), "do_one+0x4");
        assert_eq!(table.symbolize(0xffffffff81000000), "_stext+0x0");
        assert_eq!(table.symbolize(0x10), "0x10");
    }
}

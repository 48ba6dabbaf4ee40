//! Kernel address symbolization from /proc/kallsyms, for `ksym` and `kstack` members.

use std::sync::OnceLock;

/// A sorted table of kernel text symbols.
#[derive(Debug, Default)]
pub struct Kallsyms {
    symbols: Vec<(u64, String)>,
}

impl Kallsyms {
    /// Parses the text of /proc/kallsyms (lines `addr type name [module]`); zero addresses
    /// (hidden by kptr_restrict) and malformed lines are skipped.
    pub fn parse(text: &str) -> Kallsyms {
        let mut symbols: Vec<(u64, String)> = text
            .lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let addr = u64::from_str_radix(parts.next()?, 16).ok()?;
                let kind = parts.next()?;
                let name = parts.next()?;
                let text_symbol = matches!(kind, "t" | "T" | "w" | "W");
                (addr != 0 && text_symbol).then(|| (addr, name.to_string()))
            })
            .collect();
        symbols.sort_unstable();
        symbols.dedup_by_key(|(addr, _)| *addr);
        Kallsyms { symbols }
    }

    /// The table of the running kernel, read once (empty when unreadable).
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
        let idx = self.symbols.partition_point(|(start, _)| *start <= addr);
        match idx.checked_sub(1).and_then(|i| self.symbols.get(i)) {
            Some((start, name)) => format!("{name}+0x{:x}", addr - start),
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

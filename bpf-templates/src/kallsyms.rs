//! Kernel address symbolization from /proc/kallsyms, for `ksym` and `kstack` members.

use std::sync::OnceLock;

/// A sorted table of kernel text symbols, compact: a kernel has over 100 000 of them, so the
/// names share one string, in address order (a name ends where the next begins), and each
/// address is kept as a 32-bit offset from the lowest one (kernel and module text lie within
/// 4 GiB of each other); 8 bytes a symbol besides its name.
#[derive(Debug, Default)]
pub struct Kallsyms {
    /// Every name, in address order, one after the other.
    names: String,
    /// The lowest address; `offsets` count from it.
    base: u64,
    /// Addresses less `base`, ascending.
    offsets: Vec<u32>,
    /// Where each symbol's name starts in `names`.
    starts: Vec<u32>,
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
    /// (hidden by kptr_restrict), non-text symbols and any more than 4 GiB above the lowest
    /// text address are skipped.
    pub fn parse(text: &str) -> Kallsyms {
        let mut text_symbols: Vec<(u64, &str)> = entries(text)
            .filter(|(addr, kind, _)| *addr != 0 && matches!(*kind, "t" | "T" | "w" | "W"))
            .map(|(addr, _, name)| (addr, name))
            .collect();
        // Stable: of two names at one address, the first listed is kept.
        text_symbols.sort_by_key(|(addr, _)| *addr);
        text_symbols.dedup_by_key(|(addr, _)| *addr);
        let base = text_symbols.first().map_or(0, |(addr, _)| *addr);
        let mut table = Kallsyms {
            base,
            ..Kallsyms::default()
        };
        for (addr, name) in text_symbols {
            let (Ok(offset), Ok(start)) =
                (u32::try_from(addr - base), u32::try_from(table.names.len()))
            else {
                break;
            };
            table.offsets.push(offset);
            table.starts.push(start);
            table.names.push_str(name);
        }
        table.names.shrink_to_fit();
        table.offsets.shrink_to_fit();
        table.starts.shrink_to_fit();
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
        let found = addr
            .checked_sub(self.base)
            .and_then(|offset| u32::try_from(offset).ok())
            .and_then(|offset| {
                let index = self
                    .offsets
                    .partition_point(|o| *o <= offset)
                    .checked_sub(1)?;
                let from = *self.starts.get(index)? as usize;
                let to = self
                    .starts
                    .get(index + 1)
                    .map_or(self.names.len(), |s| *s as usize);
                Some((
                    self.names.get(from..to).unwrap_or("?"),
                    offset - self.offsets[index],
                ))
            });
        match found {
            Some((name, delta)) => format!("{name}+0x{delta:x}"),
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
        // The last symbol's name runs to the end of the names.
        assert_eq!(table.symbolize(0xffffffff81000200), "do_one+0x100");
    }

    #[test]
    fn symbols_out_of_address_order_and_repeated_are_sorted_once() {
        let table = Kallsyms::parse(
            "ffffffffc0001000 t mod_fn	[ext4]
ffffffff81000100 T second
             ffffffff81000000 T first
ffffffff81000000 T first_alias
",
        );
        assert_eq!(table.offsets.len(), 3);
        assert_eq!(table.symbolize(0xffffffff81000010), "first+0x10");
        assert_eq!(table.symbolize(0xffffffff81000110), "second+0x10");
        assert_eq!(table.symbolize(0xffffffffc0001004), "mod_fn+0x4");
        assert_eq!(table.symbolize(0xffffffff80000000), "0xffffffff80000000");
    }
}

//! Names of just-in-time compiled code from a process's perf map, `/tmp/perf-<pid>.map`: the
//! text file that JIT runtimes (node `--perf-basic-prof`, the JVM with perf-map-agent, LuaJIT,
//! Python 3.12 `-X perf`) append to, one `START SIZE name` line per emitted function, START and
//! SIZE in hexadecimal (Linux perf's tools/perf/Documentation/jit-interface.txt). The file is
//! streamed once per batch for the addresses the symbolizer has not cached under the file's
//! current `stamp`; only the names hit are kept, and at most
//! `MAX_BYTES` of it are read. When two lines cover an address the later one wins (the runtime
//! reused the memory).

use std::io::{BufRead, BufReader, Read};

/// Most bytes of one perf map read per batch.
pub const MAX_BYTES: u64 = 64 << 20;
/// Longest line kept whole; a longer line is skipped.
const MAX_LINE: usize = 4096;

/// `START SIZE name` -> (start, size, name); hex with or without `0x`.
fn parse_line(line: &str) -> Option<(u64, u64, &str)> {
    let line = line.trim_end_matches(['\n', '\r']);
    let (start, rest) = line.split_once(' ')?;
    let (size, name) = rest.split_once(' ')?;
    let hex = |text: &str| u64::from_str_radix(text.trim_start_matches("0x"), 16).ok();
    let name = name.trim();
    (!name.is_empty()).then_some((hex(start)?, hex(size)?, name))
}

/// The names covering `addrs` (any order) in the perf map read from `reader`, by position;
/// `None` where no line covers an address.
pub fn resolve<R: Read>(reader: R, addrs: &[u64]) -> Vec<Option<String>> {
    let mut sorted: Vec<(u64, usize)> = addrs.iter().enumerate().map(|(i, a)| (*a, i)).collect();
    sorted.sort_unstable();
    let mut names: Vec<Option<String>> = vec![None; addrs.len()];
    let mut reader = BufReader::new(reader.take(MAX_BYTES));
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader
            .by_ref()
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.len() > MAX_LINE && line.last() != Some(&b'\n') {
            // Skip the rest of an overlong line.
            let mut rest = Vec::new();
            if reader.read_until(b'\n', &mut rest).unwrap_or(0) == 0 {
                break;
            }
            continue;
        }
        let Some((start, size, name)) = std::str::from_utf8(&line).ok().and_then(parse_line) else {
            continue;
        };
        let end = start.saturating_add(size);
        let first = sorted.partition_point(|(addr, _)| *addr < start);
        for (_, slot) in sorted[first..].iter().take_while(|(addr, _)| *addr < end) {
            names[*slot] = Some(name.to_string());
        }
    }
    names
}

/// The identity and size of the perf map at `path` (device, inode, length and modification
/// time, hashed) with the top bit set, which no device number of an ELF file's cache key has;
/// `None` when there is no such file. A runtime appending a function changes it.
pub fn stamp(path: &str) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
    )
        .hash(&mut hasher);
    Some(hasher.finish() | 1 << 63)
}

/// The perf map of process `pid` as the agent sees it: through the process's root, named by
/// its pid in its own namespace (the last `NSpid` of its status), so JIT processes in
/// containers resolve too.
pub fn path_of(pid: u32) -> String {
    let ns_pid = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
            line.split_whitespace().last()?.parse::<u32>().ok()
        })
        .unwrap_or(pid);
    format!("/proc/{pid}/root/tmp/perf-{ns_pid}.map")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_addresses_inside_the_listed_ranges() {
        let map = "7f0000001000 40 LazyCompile:~busy /app/server.js:3\n\
                   0x7f0000002000 0x100 Interpreter\n\
                   garbage line\n\
                   7f0000003000 zz bad size\n\
                   7f0000001020 10 reused\n";
        let names = resolve(
            map.as_bytes(),
            &[
                0x7f0000001000,
                0x7f000000103f,
                0x7f0000001040,
                0x7f00000020ff,
                0x7f0000001028,
                5,
            ],
        );
        assert_eq!(
            names,
            vec![
                Some("LazyCompile:~busy /app/server.js:3".into()),
                Some("LazyCompile:~busy /app/server.js:3".into()),
                None,
                Some("Interpreter".into()),
                Some("reused".into()),
                None
            ]
        );
    }

    #[test]
    fn truncated_and_hostile_maps_never_panic() {
        let good = "7f0000001000 40 busy\n";
        for len in 0..good.len() {
            let names = resolve(&good.as_bytes()[..len], &[0x7f0000001000]);
            // a cut before the name's first byte gives nothing, after it a prefix of the name
            if let Some(name) = &names[0] {
                assert!("busy".starts_with(name.as_str()), "{name}");
            }
        }
        let long = format!("{}\n7f0000001000 40 after\n", "1 2 x".repeat(2000));
        assert_eq!(
            resolve(long.as_bytes(), &[0x7f0000001000]),
            vec![Some("after".into())]
        );
        let wraps = "ffffffffffffff00 ffff wraps\n";
        assert_eq!(
            resolve(wraps.as_bytes(), &[u64::MAX - 1]),
            vec![Some("wraps".into())]
        );
        assert_eq!(resolve(&[0xff, 0xfe, b'\n'][..], &[1]), vec![None]);
    }
}

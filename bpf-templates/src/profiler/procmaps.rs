//! Which executable mapping of a process covers an address. On kernels with the
//! `PROCMAP_QUERY` ioctl of `/proc/<pid>/maps` (Linux 6.11 and later) the kernel is asked for
//! the one mapping covering each address, and the mapped file's path only when the caller
//! needs it: no text is generated or parsed, and the cost grows with the mappings a profile
//! hits (a handful per process), not with all the mappings a process has. Older kernels
//! answer from the text of `/proc/<pid>/maps`, read once per process.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// One executable mapping of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// File offset of `start`.
    pub offset: u64,
    /// The mapped file's identity: device (`major:minor` packed) and inode; (0, 0) for an
    /// anonymous mapping.
    pub file: (u64, u64),
    /// Path of the mapped file; empty for an anonymous mapping, and, from the ioctl, until
    /// [`ProcessMaps::path`] asked for it.
    pub path: String,
}

impl Mapping {
    /// Whether no file backs the mapping (code a JIT emitted, or a kernel-provided page).
    pub fn anonymous(&self) -> bool {
        self.file == (0, 0)
    }

    fn covers(&self, addr: u64) -> bool {
        addr >= self.start && addr < self.end
    }
}

/// A device as `major << 32 | minor`, the one packing of both sources.
fn pack_dev(major: u64, minor: u64) -> u64 {
    major << 32 | minor
}

/// `08:01` -> the device packed as major << 32 | minor.
fn parse_dev(text: &str) -> Option<u64> {
    let (major, minor) = text.split_once(':')?;
    Some(pack_dev(
        u64::from_str_radix(major, 16).ok()?,
        u64::from_str_radix(minor, 16).ok()?,
    ))
}

/// Parses the text of /proc/<pid>/maps, keeping executable mappings: file mappings, and
/// anonymous ones (no inode; a name in brackets such as `[vdso]` or `[anon:jit]` is not a file).
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (start, end) = parts.next()?.split_once('-')?;
            let perms = parts.next()?;
            let offset = parts.next()?;
            let dev = parse_dev(parts.next()?)?;
            let inode: u64 = parts.next()?.parse().ok()?;
            let path: String = parts.collect::<Vec<_>>().join(" ");
            perms.contains('x').then_some(())?;
            let file = path.starts_with('/') && inode != 0;
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                offset: u64::from_str_radix(offset, 16).ok()?,
                file: if file { (dev, inode) } else { (0, 0) },
                path: if file { path } else { String::new() },
            })
        })
        .collect()
}

/// The argument of `PROCMAP_QUERY`, `struct procmap_query` of the kernel's
/// `include/uapi/linux/fs.h`.
#[repr(C)]
#[derive(Debug, Default)]
struct ProcmapQuery {
    size: u64,
    query_flags: u64,
    query_addr: u64,
    vma_start: u64,
    vma_end: u64,
    vma_flags: u64,
    vma_page_size: u64,
    vma_offset: u64,
    inode: u64,
    dev_major: u32,
    dev_minor: u32,
    vma_name_size: u32,
    build_id_size: u32,
    vma_name_addr: u64,
    build_id_addr: u64,
}

/// `_IOWR('f', 17, struct procmap_query)`: read-write direction, size, type, number.
const PROCMAP_QUERY: u64 =
    (3 << 30) | ((std::mem::size_of::<ProcmapQuery>() as u64) << 16) | ((b'f' as u64) << 8) | 17;

/// `PROCMAP_QUERY_VMA_EXECUTABLE`: only a mapping with execute permission answers.
const QUERY_EXECUTABLE: u64 = 0x04;

/// Longest path the ioctl is asked to return (`PATH_MAX`).
const PATH_MAX: usize = 4096;

/// Cleared the first time the running kernel refuses `PROCMAP_QUERY` (before 6.11); every
/// process is then read as text.
static QUERY_SUPPORTED: AtomicBool = AtomicBool::new(true);

/// How a process's mappings are found.
#[derive(Debug)]
enum Source {
    /// `/proc/<pid>/maps` open, asked one address at a time.
    Query(File),
    /// Every executable mapping, parsed from the text (already in `found`).
    Text,
}

/// The executable mappings of one process, found as addresses are looked up.
#[derive(Debug)]
pub struct ProcessMaps {
    pid: u32,
    source: Source,
    /// Mappings found so far (all of them for [`Source::Text`]).
    found: Vec<Mapping>,
}

impl ProcessMaps {
    /// The mappings of `pid`; `None` when its maps cannot be opened (it exited, or access is
    /// denied).
    pub fn open(pid: u32) -> Option<ProcessMaps> {
        Self::open_with(pid, QUERY_SUPPORTED.load(Ordering::Relaxed))
    }

    /// [`ProcessMaps::open`], asking the kernel per address only when `query` is set.
    fn open_with(pid: u32, query: bool) -> Option<ProcessMaps> {
        let path = format!("/proc/{pid}/maps");
        if query {
            let file = File::open(&path).ok()?;
            return Some(ProcessMaps {
                pid,
                source: Source::Query(file),
                found: Vec::new(),
            });
        }
        let text = std::fs::read_to_string(&path).ok()?;
        Some(ProcessMaps {
            pid,
            source: Source::Text,
            found: parse_maps(&text),
        })
    }

    /// The executable mapping covering `addr`, if any. A file mapping found by the ioctl has
    /// no path yet: [`ProcessMaps::path`] reads it.
    pub fn covering(&mut self, addr: u64) -> Option<&Mapping> {
        if let Some(at) = self.found.iter().position(|m| m.covers(addr)) {
            return self.found.get(at);
        }
        let Source::Query(file) = &self.source else {
            return None;
        };
        match query(file, addr, None) {
            Ok(Some(mapping)) => {
                self.found.push(mapping);
                self.found.last()
            }
            Ok(None) => None,
            Err(Unsupported) => {
                QUERY_SUPPORTED.store(false, Ordering::Relaxed);
                *self = Self::open_with(self.pid, false)?;
                self.covering(addr)
            }
        }
    }

    /// The path of the file mapped at `addr` (found by [`ProcessMaps::covering`] before);
    /// empty for an anonymous mapping or when the kernel no longer tells.
    pub fn path(&mut self, addr: u64) -> String {
        let Some(at) = self.found.iter().position(|m| m.covers(addr)) else {
            return String::new();
        };
        let mapping = &self.found[at];
        if mapping.anonymous() || !mapping.path.is_empty() {
            return mapping.path.clone();
        }
        let Source::Query(file) = &self.source else {
            return String::new();
        };
        let mut name = vec![0u8; PATH_MAX];
        let path = match query(file, addr, Some(&mut name)) {
            Ok(Some(found)) if found.file == mapping.file => found.path,
            _ => String::new(),
        };
        self.found[at].path.clone_from(&path);
        path
    }
}

/// The kernel does not know `PROCMAP_QUERY`.
struct Unsupported;

/// Asks the kernel for the executable mapping covering `addr` through the open maps file,
/// with its path when `name` is a buffer for it. `Ok(None)` when no executable mapping
/// covers the address (or the process is gone).
fn query(
    file: &File,
    addr: u64,
    mut name: Option<&mut [u8]>,
) -> Result<Option<Mapping>, Unsupported> {
    let mut request = ProcmapQuery {
        size: std::mem::size_of::<ProcmapQuery>() as u64,
        query_flags: QUERY_EXECUTABLE,
        query_addr: addr,
        ..ProcmapQuery::default()
    };
    if let Some(buffer) = name.as_deref_mut() {
        request.vma_name_size = u32::try_from(buffer.len()).unwrap_or(u32::MAX);
        request.vma_name_addr = buffer.as_mut_ptr() as u64;
    }
    // SAFETY: `request` is a valid `struct procmap_query` of the size it states; the only
    // buffer it points to is `name`, which outlives the call and is at least as long as
    // stated.
    let result = unsafe { libc::ioctl(file.as_raw_fd(), PROCMAP_QUERY as _, &mut request) };
    if result != 0 {
        let errno = std::io::Error::last_os_error().raw_os_error();
        return match errno {
            Some(libc::ENOTTY) | Some(libc::EINVAL) => Err(Unsupported),
            _ => Ok(None),
        };
    }
    let file = if request.inode == 0 {
        (0, 0)
    } else {
        let dev = pack_dev(request.dev_major.into(), request.dev_minor.into());
        (dev, request.inode)
    };
    // The kernel wrote the path and set its length, the terminating zero included.
    let path = match name {
        Some(buffer) if file != (0, 0) => {
            let len = (request.vma_name_size as usize).min(buffer.len());
            String::from_utf8_lossy(&buffer[..len.saturating_sub(1)]).into_owned()
        }
        _ => String::new(),
    };
    Ok(Some(Mapping {
        start: request.vma_start,
        end: request.vma_end,
        offset: if file == (0, 0) {
            0
        } else {
            request.vma_offset
        },
        file,
        path,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_executable_mappings_only() {
        let text = "\
55d0c0a00000-55d0c0a21000 r--p 00000000 fd:01 123 /usr/bin/app
55d0c0a21000-55d0c0a80000 r-xp 00021000 fd:01 123 /usr/bin/app
7ffd1000-7ffd2000 r-xp 00000000 00:00 0 [vdso]
7f00-7f10 rwxp 00000000 00:00 0
bad line
";
        let anonymous = |start, end| Mapping {
            start,
            end,
            offset: 0,
            file: (0, 0),
            path: String::new(),
        };
        assert_eq!(
            parse_maps(text),
            vec![
                Mapping {
                    start: 0x55d0c0a21000,
                    end: 0x55d0c0a80000,
                    offset: 0x21000,
                    file: (0xfd << 32 | 1, 123),
                    path: "/usr/bin/app".into()
                },
                anonymous(0x7ffd1000, 0x7ffd2000),
                anonymous(0x7f00, 0x7f10),
            ]
        );
        assert!(parse_maps(text)[1].anonymous());
    }

    #[test]
    fn the_ioctl_code_is_the_kernels() {
        assert_eq!(std::mem::size_of::<ProcmapQuery>(), 104);
        assert_eq!(PROCMAP_QUERY, 0xC068_6611);
    }

    /// Where the running kernel has `PROCMAP_QUERY`, it answers every executable mapping of
    /// this process (its start, middle and last byte) as the text does, paths included; on
    /// an older kernel both lookups read the text.
    #[test]
    fn asking_the_kernel_finds_what_the_text_lists() {
        let pid = std::process::id();
        let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("own maps");
        // File mappings only: another test may map and unmap anonymous code meanwhile.
        let listed: Vec<Mapping> = parse_maps(&text)
            .into_iter()
            .filter(|m| !m.anonymous())
            .collect();
        assert!(!listed.is_empty(), "{text}");
        let mut asked = ProcessMaps::open_with(pid, true).expect("own maps open");
        for mapping in &listed {
            for addr in [
                mapping.start,
                (mapping.start + mapping.end) / 2,
                mapping.end - 1,
            ] {
                let found = asked.covering(addr).cloned();
                let mut expected = mapping.clone();
                expected.path.clear();
                let found = found.map(|mut m| {
                    m.path.clear();
                    m
                });
                assert_eq!(found, Some(expected), "address {addr:#x}");
                assert_eq!(asked.path(addr), mapping.path, "address {addr:#x}");
            }
        }
        // an address no mapping covers, and a non-executable one (this test's stack)
        assert_eq!(asked.covering(0x10), None);
        let local = 0u64;
        assert_eq!(asked.covering(&local as *const u64 as u64), None);
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
        let version: Vec<u32> = release
            .split(|c: char| !c.is_ascii_digit())
            .take(2)
            .filter_map(|n| n.parse().ok())
            .collect();
        if version >= vec![6, 11] {
            // a kernel with the ioctl was asked, once per mapping rather than per address
            assert!(matches!(asked.source, Source::Query(_)), "{release}");
            assert_eq!(asked.found.len(), listed.len());
        }
    }

    #[test]
    fn a_process_that_is_gone_has_no_maps() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(ProcessMaps::open(pid).is_none());
    }
}

//! Services the loader provides to a template at load, declared in its schema.toml as
//! `needs = [...]`, handled here in one place so every caller (daemon, tests) gets them:
//!
//! - `mono_to_real`: sets the global `mono_to_real_ns` = CLOCK_REALTIME − CLOCK_MONOTONIC
//!   (BPF has no realtime clock; receive timestamps are realtime).
//! - `rx_timestamps`: holds one `SO_TIMESTAMPNS` socket open for the template's lifetime, so
//!   the kernel timestamps every received packet (`skb->tstamp`).
//! - `host_netns`: sets the global `host_netns_inum` to the inode of the agent's own network
//!   namespace (`/proc/self/ns/net`).
//! - `entry_text`: sets the globals `entry_text_start` and `entry_text_end` to the bounds of
//!   the kernel's entry code (`__entry_text_start`/`__entry_text_end` in /proc/kallsyms), where
//!   every kernel stack from user space or an interrupt begins; both stay 0 (the template
//!   does without) when kallsyms hides addresses.

use serde::Deserialize;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

/// One service a template needs from the loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// The global `mono_to_real_ns`.
    MonoToReal,
    /// An `SO_TIMESTAMPNS` socket held open while the template is loaded.
    RxTimestamps,
    /// The global `host_netns_inum`.
    HostNetns,
    /// The globals `entry_text_start` and `entry_text_end`.
    EntryText,
}

impl Need {
    /// The globals the loader sets for this need.
    pub fn globals(self) -> &'static [&'static str] {
        match self {
            Need::MonoToReal => &["mono_to_real_ns"],
            Need::HostNetns => &["host_netns_inum"],
            Need::EntryText => &["entry_text_start", "entry_text_end"],
            Need::RxTimestamps => &[],
        }
    }
}

/// What the loader provides: globals to set before load, descriptors to hold after.
#[derive(Debug, Default)]
pub struct Provided {
    /// `(global, value)` pairs to override in the object.
    pub globals: Vec<(&'static str, u64)>,
    /// Descriptors kept open as long as the template is loaded.
    pub held: Vec<OwnedFd>,
    /// One line per service, for the template's status notes.
    pub notes: Vec<String>,
}

/// Provides every need, or says which one failed and why.
pub fn provide(needs: &[Need]) -> Result<Provided, String> {
    let mut out = Provided::default();
    for need in needs {
        match need {
            Need::MonoToReal => {
                let offset = mono_to_real_ns()?;
                out.globals.push(("mono_to_real_ns", offset));
            }
            Need::HostNetns => {
                let inum = std::fs::metadata("/proc/self/ns/net")
                    .map_err(|e| format!("needs host_netns: /proc/self/ns/net: {e}"))?
                    .ino();
                out.globals.push(("host_netns_inum", inum));
                out.notes
                    .push(format!("host network namespace inode {inum}"));
            }
            Need::EntryText => match entry_text(&read_kallsyms()) {
                Some((start, end)) => {
                    out.globals.push(("entry_text_start", start));
                    out.globals.push(("entry_text_end", end));
                }
                None => out.notes.push(
                    "kernel entry code not found in /proc/kallsyms (addresses hidden?): \
                     its check is off"
                        .into(),
                ),
            },
            Need::RxTimestamps => {
                out.held.push(timestamping_socket()?);
                out.notes
                    .push("holding an SO_TIMESTAMPNS socket: receive timestamps are on".into());
            }
        }
    }
    Ok(out)
}

/// /proc/kallsyms, or nothing when it cannot be read.
fn read_kallsyms() -> String {
    std::fs::read_to_string("/proc/kallsyms").unwrap_or_default()
}

/// The bounds of the kernel's entry code in a kallsyms text, when both are listed and not
/// hidden (zero).
fn entry_text(kallsyms: &str) -> Option<(u64, u64)> {
    let (mut start, mut end) = (None, None);
    for (addr, _kind, name) in crate::kallsyms::entries(kallsyms) {
        let slot = match name {
            "__entry_text_start" => &mut start,
            "__entry_text_end" => &mut end,
            _ => continue,
        };
        *slot = Some(addr).filter(|a| *a != 0);
        if start.is_some() && end.is_some() {
            break;
        }
    }
    start.zip(end).filter(|(s, e)| s < e)
}

fn clock_ns(clock: libc::clockid_t) -> Result<i128, String> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid timespec to fill.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Err(format!(
            "clock_gettime({clock}): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec))
}

/// CLOCK_REALTIME − CLOCK_MONOTONIC in nanoseconds (read back to back).
pub fn mono_to_real_ns() -> Result<u64, String> {
    let mono = clock_ns(libc::CLOCK_MONOTONIC)?;
    let real = clock_ns(libc::CLOCK_REALTIME)?;
    u64::try_from(real - mono).map_err(|_| "needs mono_to_real: realtime is before boot".into())
}

/// A UDP socket with `SO_TIMESTAMPNS` on: while one exists the kernel stamps received skbs.
fn timestamping_socket() -> Result<OwnedFd, String> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(format!(
            "needs rx_timestamps: socket: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let on: libc::c_int = 1;
    // SAFETY: valid socket fd and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &on as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(format!(
            "needs rx_timestamps: SO_TIMESTAMPNS: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn provides_globals_and_a_timestamping_socket() {
        let p = provide(&[Need::MonoToReal, Need::RxTimestamps, Need::HostNetns]).unwrap();
        let global = |name| p.globals.iter().find(|(g, _)| *g == name).map(|(_, v)| *v);
        let boot =
            clock_ns(libc::CLOCK_REALTIME).unwrap() - clock_ns(libc::CLOCK_MONOTONIC).unwrap();
        let offset = global("mono_to_real_ns").unwrap() as i128;
        assert!((offset - boot).abs() < 10_000_000, "{offset} vs {boot}");
        let ino = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        assert_eq!(global("host_netns_inum"), Some(ino));
        assert_eq!(p.held.len(), 1);
        let mut on: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: valid fd, option buffer and length.
        let rc = unsafe {
            libc::getsockopt(
                p.held[0].as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                &mut on as *mut libc::c_int as *mut libc::c_void,
                &mut len,
            )
        };
        assert_eq!((rc, on), (0, 1));
    }

    #[test]
    fn entry_text_bounds_come_from_kallsyms_and_hidden_ones_are_none() {
        let text = "ffffffff81000000 T _stext\nffffffff81000010 T __entry_text_start\n\
                    ffffffff81000300 T __irqentry_text_start\nffffffff81001a87 T __entry_text_end\n";
        assert_eq!(
            entry_text(text),
            Some((0xffffffff81000010, 0xffffffff81001a87))
        );
        let hidden = "0000000000000000 T __entry_text_start\n0000000000000000 T __entry_text_end\n";
        assert_eq!(entry_text(hidden), None);
        assert_eq!(entry_text("ffffffff81000010 T __entry_text_start\n"), None);
        // as root, this kernel's own table has them
        if std::fs::read_to_string("/proc/kallsyms").is_ok_and(|k| entry_text(&k).is_some()) {
            let p = provide(&[Need::EntryText]).unwrap();
            assert_eq!(p.globals.len(), 2, "{:?}", p.notes);
        }
    }

    #[test]
    fn needs_parse_by_name() {
        #[derive(Deserialize)]
        struct T {
            needs: Vec<Need>,
        }
        let t: T = toml::from_str(r#"needs = ["rx_timestamps", "mono_to_real"]"#).unwrap();
        assert_eq!(t.needs, vec![Need::RxTimestamps, Need::MonoToReal]);
        assert!(toml::from_str::<T>(r#"needs = ["coffee"]"#).is_err());
    }
}

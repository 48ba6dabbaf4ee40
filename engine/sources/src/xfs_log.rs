//! Free journal space of a mounted XFS filesystem: the log size from the filesystem geometry
//! (the `XFS_IOC_FSGEOMETRY` ioctl on its mount point, `logblocks × blocksize`) less what the
//! log's tail, head and grant heads under `/sys/fs/xfs/<device>/log/` say is in use.
//!
//! Since Linux 6.11 (`Documentation/ABI/testing/sysfs-fs-xfs`) the grant heads are byte counts
//! (`reserve_grant_head_bytes`): the kernel's `xlog_grant_space_left()` in `fs/xfs/xfs_log.c`
//! computes the free space as the log size less the space the AIL holds between the log tail
//! and its head (`l_tail_space`) less the reserve grant head. The AIL's head is not exported;
//! `log_head_lsn` (the head of the in-core log) is at or past it, so taking the space from
//! `log_tail_lsn` to `log_head_lsn` counts twice what was written past the AIL's head and is
//! still in the grant head (the last checkpoint's commit record, checkpoints being written: a
//! few log buffers, 33 basic blocks on an idle 64 MiB test log). The value is therefore never
//! above the kernel's own free space, and a freshly mounted log reads as wholly free.
//!
//! Older kernels export `reserve_grant_head` as `cycle:bytes`, and the free space is the
//! distance from that head round to the tail, as their `xlog_grant_space_left()` computed it.

use procfs::FromRead;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Size of a log basic block (LSN block numbers count these).
const BASIC_BLOCK: u64 = 512;

/// A log sequence number: the log's wrap count and a basic-block offset in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lsn {
    /// How many times the log has wrapped.
    pub cycle: u64,
    /// Offset in 512-byte basic blocks.
    pub block: u64,
}

/// Parses `cycle:number` as the log files print it; `what` names the file in errors.
fn parse_pair(text: &str, what: &str) -> Result<(u64, u64), String> {
    let (cycle, rest) = text
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("{what}: expected cycle:number, got {:?}", text.trim()))?;
    let number = |s: &str| {
        s.parse::<u64>()
            .map_err(|e| format!("{what}: bad number {s:?}: {e}"))
    };
    Ok((number(cycle)?, number(rest)?))
}

/// Parses `log_head_lsn` / `log_tail_lsn`.
pub fn parse_lsn(text: &str, what: &str) -> Result<Lsn, String> {
    let (cycle, block) = parse_pair(text, what)?;
    Ok(Lsn { cycle, block })
}

/// What the log files of one filesystem say is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogUse {
    /// Linux >= 6.11: the tail and head LSNs and the reserve grant head in bytes.
    Bytes {
        /// `log_tail_lsn`.
        tail: Lsn,
        /// `log_head_lsn`.
        head: Lsn,
        /// `reserve_grant_head_bytes`.
        reserved: u64,
    },
    /// Older kernels: the tail LSN and the reserve grant head as `cycle:bytes`.
    CycleBytes {
        /// `log_tail_lsn`.
        tail: Lsn,
        /// `reserve_grant_head` (cycle, byte offset in the log).
        grant: (u64, u64),
    },
}

impl LogUse {
    /// Free bytes of a log of `log_size` bytes, never below zero.
    pub fn free_bytes(&self, log_size: u64) -> u64 {
        match *self {
            LogUse::Bytes {
                tail,
                head,
                reserved,
            } => {
                let written = if head.cycle == tail.cycle {
                    head.block.saturating_sub(tail.block) * BASIC_BLOCK
                } else if head.cycle == tail.cycle + 1 {
                    log_size.saturating_sub(tail.block.saturating_sub(head.block) * BASIC_BLOCK)
                } else {
                    // The head a wrap or more past the tail (or behind it): a log being shut
                    // down; nothing can be reserved.
                    log_size
                };
                log_size.saturating_sub(written).saturating_sub(reserved)
            }
            LogUse::CycleBytes {
                tail,
                grant: (cycle, bytes),
            } => {
                let tail_bytes = tail.block * BASIC_BLOCK;
                if cycle == tail.cycle && bytes >= tail_bytes {
                    log_size.saturating_sub(bytes - tail_bytes)
                } else if cycle == tail.cycle + 1 {
                    tail_bytes.saturating_sub(bytes)
                } else if cycle > tail.cycle {
                    0
                } else {
                    // The grant head behind the tail: the kernel treats the log as empty.
                    log_size
                }
            }
        }
    }
}

/// Reads the log files of one filesystem's `/sys/fs/xfs/<device>/log` directory. The tail is
/// read before the head so the pair never shows the tail past the head.
pub fn read_log_use(dir: &Path) -> Result<LogUse, String> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .map_err(|e| format!("{}: {e}", dir.join(name).display()))
    };
    let tail = parse_lsn(&read("log_tail_lsn")?, "log_tail_lsn")?;
    if dir.join("reserve_grant_head_bytes").exists() {
        let head = parse_lsn(&read("log_head_lsn")?, "log_head_lsn")?;
        let text = read("reserve_grant_head_bytes")?;
        let reserved = text.trim().parse::<u64>().map_err(|e| {
            format!(
                "reserve_grant_head_bytes: bad number {:?}: {e}",
                text.trim()
            )
        })?;
        Ok(LogUse::Bytes {
            tail,
            head,
            reserved,
        })
    } else {
        let grant = parse_pair(&read("reserve_grant_head")?, "reserve_grant_head")?;
        Ok(LogUse::CycleBytes { tail, grant })
    }
}

/// `_IOR('X', 126, struct xfs_fsop_geom)` (256 bytes) from the kernel's
/// `fs/xfs/libxfs/xfs_fs.h`.
const XFS_IOC_FSGEOMETRY: u32 = 0x8100_587e;

/// The leading members of `struct xfs_fsop_geom` this module reads, padded to its size.
#[repr(C)]
struct FsGeometry {
    blocksize: u32,
    rtextsize: u32,
    agblocks: u32,
    agcount: u32,
    logblocks: u32,
    rest: [u32; 59],
}

/// The log size in bytes of the XFS filesystem mounted at `mount_point`.
pub fn log_size(mount_point: &Path) -> io::Result<u64> {
    let dir = File::open(mount_point)?;
    let mut geometry = FsGeometry {
        blocksize: 0,
        rtextsize: 0,
        agblocks: 0,
        agcount: 0,
        logblocks: 0,
        rest: [0; 59],
    };
    // SAFETY: XFS_IOC_FSGEOMETRY writes one `struct xfs_fsop_geom` (256 bytes, the size of
    // `FsGeometry`) into the buffer, which lives for the call; `dir` is an open descriptor.
    let rc = unsafe {
        libc::ioctl(
            dir.as_raw_fd(),
            XFS_IOC_FSGEOMETRY as _,
            &mut geometry as *mut FsGeometry,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::from(geometry.logblocks) * u64::from(geometry.blocksize))
}

/// Finds where the block device `device` (as `/sys/fs/xfs` names it) is mounted with XFS: its
/// `major:minor` from `<sys>/class/block/<device>/dev` matched against `<proc>/self/mountinfo`.
pub fn mount_point(sys: &Path, proc: &Path, device: &str) -> io::Result<PathBuf> {
    let majmin = std::fs::read_to_string(sys.join("class/block").join(device).join("dev"))?;
    let majmin = majmin.trim();
    let file = File::open(proc.join("self/mountinfo"))?;
    let mounts = procfs::process::MountInfos::from_read(file)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    mounts
        .0
        .into_iter()
        .find(|m| m.majmin == majmin && m.fs_type == "xfs")
        .map(|m| m.mount_point)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no xfs mount of {device} ({majmin})"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: u64 = 16384 * 4096;

    fn lsn(cycle: u64, block: u64) -> Lsn {
        Lsn { cycle, block }
    }

    #[test]
    fn byte_grant_heads_leave_the_log_less_tail_to_head_less_reservations() {
        let free = |tail, head, reserved| {
            LogUse::Bytes {
                tail,
                head,
                reserved,
            }
            .free_bytes(LOG)
        };
        // A fresh log: nothing written, nothing reserved.
        assert_eq!(free(lsn(1, 2), lsn(1, 2), 0), LOG);
        // 100 blocks written since the tail, 8 KiB reserved.
        assert_eq!(free(lsn(1, 2), lsn(1, 102), 8192), LOG - 51200 - 8192);
        // The head wrapped: it is 10 blocks short of the tail.
        assert_eq!(free(lsn(1, 500), lsn(2, 490), 0), 5120);
        // Reservations beyond the free space, and a head two wraps ahead: none free.
        assert_eq!(free(lsn(1, 2), lsn(1, 102), LOG), 0);
        assert_eq!(free(lsn(1, 2), lsn(3, 0), 0), 0);
    }

    #[test]
    fn cycle_byte_grant_heads_are_the_distance_round_to_the_tail() {
        let free = |tail, grant| LogUse::CycleBytes { tail, grant }.free_bytes(16384);
        assert_eq!(free(lsn(1, 8), (1, 8192)), 12288);
        assert_eq!(free(lsn(1, 24), (2, 4096)), 8192);
        assert_eq!(free(lsn(1, 24), (3, 4096)), 0);
        assert_eq!(free(lsn(2, 24), (1, 4096)), 16384);
    }

    #[test]
    fn malformed_log_files_are_named() {
        let err = parse_lsn("12\n", "log_tail_lsn").unwrap_err();
        assert!(
            err.contains("log_tail_lsn") && err.contains("cycle:number"),
            "{err}"
        );
        let err = parse_lsn("1:x\n", "log_head_lsn").unwrap_err();
        assert!(err.contains("log_head_lsn: bad number \"x\""), "{err}");
    }
}

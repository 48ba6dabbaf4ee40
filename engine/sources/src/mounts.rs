//! `statfs.mounts`: size and free space of mounted filesystems listed in mountinfo.

use crate::common::{field, int, polled, read_error, read_text, scaled, SampleBuilder};
use huatuo_dsl::catalog::{FieldType, SourceSchema};
use huatuo_dsl::source::{ReadError, Reader};
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::{Sample, Value};
use procfs::process::MountInfos;
use procfs::FromRead;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Catalog name.
pub const NAME: &str = "statfs.mounts";

/// What `statvfs` reports for one filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsUsage {
    /// Fragment size: the unit of the block counts.
    pub fragment_size: u64,
    /// Blocks in total.
    pub blocks: u64,
    /// Free blocks.
    pub blocks_free: u64,
    /// Blocks free for unprivileged users.
    pub blocks_avail: u64,
    /// Inodes in total.
    pub files: u64,
    /// Free inodes.
    pub files_free: u64,
}

/// Queries a mount point's usage; replaceable so fixture trees give fixed answers.
pub type StatFn = Box<dyn Fn(&Path) -> std::io::Result<FsUsage> + Send>;

/// The kernel's answer through `statvfs(2)`.
pub fn statvfs(path: &Path) -> std::io::Result<FsUsage> {
    let st = rustix::fs::statvfs(path).map_err(std::io::Error::from)?;
    Ok(FsUsage {
        fragment_size: st.f_frsize,
        blocks: st.f_blocks,
        blocks_free: st.f_bfree,
        blocks_avail: st.f_bavail,
        files: st.f_files,
        files_free: st.f_ffree,
    })
}

/// The schema of `statfs.mounts`.
pub fn schema() -> SourceSchema {
    polled(
        NAME,
        "usage of mounted filesystems (statfs), one sample per mount point",
        &["mountpoint", "fstype"],
        vec![
            int("size", Dim::Bytes, "filesystem size"),
            int("free", Dim::Bytes, "free space"),
            int("avail", Dim::Bytes, "space available to unprivileged users"),
            int("files", Dim::Count, "inodes"),
            int("files_free", Dim::Count, "free inodes"),
            field(
                "device",
                FieldType::Str,
                Dim::Count,
                "the mounted device or source (mountinfo's mount source, e.g. /dev/vda1)",
            ),
            int(
                "readonly",
                Dim::Count,
                "1 when mounted read-only (mount option ro), else 0",
            ),
        ],
    )
}

/// Filesystems not asked about unless listed explicitly: pseudo filesystems (no blocks),
/// autofs (statfs would trigger the automount) and network or FUSE filesystems (statfs can
/// hang on an unreachable server).
const SKIPPED_FSTYPES: [&str; 24] = [
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "securityfs",
    "debugfs",
    "tracefs",
    "bpf",
    "pstore",
    "mqueue",
    "configfs",
    "hugetlbfs",
    "autofs",
    "binfmt_misc",
    "fusectl",
    "nsfs",
    "rpc_pipefs",
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "ceph",
    "glusterfs",
];

/// True for filesystems `statfs.mounts` leaves out when no mount points are configured.
pub fn skipped_by_default(fstype: &str) -> bool {
    SKIPPED_FSTYPES.contains(&fstype) || fstype == "fuse" || fstype.starts_with("fuse.")
}

/// One mount point of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted.
    pub point: PathBuf,
    /// Filesystem type.
    pub fstype: String,
    /// The mount source (a device path for block filesystems), empty when none.
    pub device: String,
    /// Mounted read-only.
    pub readonly: bool,
}

/// Most mount points one read statfs's; the rest are counted in the log, not asked (a host
/// with thousands of container mounts would otherwise make each read unbounded).
pub const MAX_MOUNTS: usize = 512;

/// Parses mountinfo into its mount points, first mount of each point kept.
pub fn parse_mountinfo(text: &str) -> Result<Vec<Mount>, String> {
    let infos = MountInfos::from_read(text.as_bytes()).map_err(|e| e.to_string())?;
    let mut seen = BTreeSet::new();
    Ok(infos
        .0
        .into_iter()
        .filter(|m| seen.insert(m.mount_point.clone()))
        .map(|m| Mount {
            readonly: m.mount_options.contains_key("ro"),
            device: m.mount_source.unwrap_or_default(),
            point: m.mount_point,
            fstype: m.fs_type,
        })
        .collect())
}

/// Reads `<proc>/self/mountinfo` and statfs's each mount point. Without configured mount
/// points, [`skipped_by_default`] filesystems are not asked; filesystems with zero blocks
/// and mount points that fail statfs are left out.
pub struct MountsReader {
    mountinfo: PathBuf,
    included: Vec<PathBuf>,
    stat: StatFn,
}

impl MountsReader {
    /// A reader of `<proc>/self/mountinfo`; `included` limits the mount points when not empty.
    pub fn new(proc: &Path, included: Vec<PathBuf>, stat: StatFn) -> Self {
        Self {
            mountinfo: proc.join("self/mountinfo"),
            included,
            stat,
        }
    }
}

impl Reader for MountsReader {
    fn schema(&self) -> SourceSchema {
        schema()
    }

    fn read(&mut self, now_ns: i64) -> Result<Vec<Sample>, ReadError> {
        let text = read_text(NAME, &self.mountinfo)?;
        let mounts = parse_mountinfo(&text).map_err(|m| read_error(NAME, &self.mountinfo, m))?;
        let mut samples = Vec::new();
        let mut asked = 0usize;
        let mut over = 0usize;
        for mount in mounts {
            let wanted = if self.included.is_empty() {
                !skipped_by_default(&mount.fstype)
            } else {
                self.included.contains(&mount.point)
            };
            if !wanted {
                continue;
            }
            if asked == MAX_MOUNTS {
                over += 1;
                continue;
            }
            asked += 1;
            let usage = match (self.stat)(&mount.point) {
                Ok(usage) if usage.blocks > 0 => usage,
                Ok(_) => continue,
                Err(e) => {
                    log::debug!("{NAME}: statfs {}: {e}", mount.point.display());
                    continue;
                }
            };
            let unit = usage.fragment_size;
            let mut sample = SampleBuilder::new()
                .label("mountpoint", mount.point.to_string_lossy())
                .label("fstype", mount.fstype)
                .int("size", scaled(usage.blocks, unit))
                .int("free", scaled(usage.blocks_free, unit))
                .int("avail", scaled(usage.blocks_avail, unit))
                .uint("files", usage.files)
                .uint("files_free", usage.files_free)
                .int("readonly", i64::from(mount.readonly));
            sample.set("device", Value::Str(mount.device));
            samples.push(sample.build(NAME, now_ns));
        }
        if over > 0 {
            log::warn!("{NAME}: {over} mount points past the first {MAX_MOUNTS} not read");
        }
        Ok(samples)
    }
}

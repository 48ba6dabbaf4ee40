//! Attribution of kernel cgroup ids to containers, and which hierarchy the kernel side reads.

/// Maps a cgroup id (the kernfs inode number of the cgroup directory) to a container id.
/// The container module implements this; templates call it when decoding.
pub trait CgroupResolver: Send + Sync {
    /// The container id of this cgroup, or `None` for a cgroup that is not a container.
    fn container_id(&self, cgroup_id: u64) -> Option<String>;
    /// The hostname of this cgroup's container (pod name, else the runtime's hostname), or
    /// `None` for a cgroup that is not a container or a container without one.
    fn container_hostname(&self, cgroup_id: u64) -> Option<String>;
}

/// A resolver that knows no container (host-only until the engine provides one).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoContainers;

impl CgroupResolver for NoContainers {
    fn container_id(&self, _cgroup_id: u64) -> Option<String> {
        None
    }
    fn container_hostname(&self, _cgroup_id: u64) -> Option<String> {
        None
    }
}

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// True when `/sys/fs/cgroup` itself is a cgroup2 mount (pure v2): templates then attribute
/// by the v2 cgroup; in hybrid or v1 mode they read the v1 controller's cgroup.
pub fn unified_hierarchy() -> bool {
    let Ok(path) = std::ffi::CString::new("/sys/fs/cgroup") else {
        return false;
    };
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `stat` a writable statfs.
    let rc = unsafe { libc::statfs(path.as_ptr(), &mut stat) };
    rc == 0 && stat.f_type as i64 == CGROUP2_SUPER_MAGIC
}

//! Docker-shaped cgroups on the host's cgroup v1 hierarchies, for the tests that need real ones.

use std::fs;
use std::path::PathBuf;

/// Where the v1 hierarchies are mounted.
pub const ROOT: &str = "/sys/fs/cgroup";
/// The controllers a Docker container's cgroup is found under.
pub const CONTROLLERS: [&str; 3] = ["cpu", "cpuacct", "memory"];

/// Makes `docker/<id>` under each controller's hierarchy (and the `docker` parent where it is
/// missing), pushing every directory made onto `made` for removal in reverse order; returns the
/// container directories in the order of `controllers`.
pub fn docker_cgroups(controllers: &[&str], id: &str, made: &mut Vec<PathBuf>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for ctl in controllers {
        let parent = PathBuf::from(ROOT).join(ctl).join("docker");
        if !parent.exists() {
            fs::create_dir(&parent).expect("create docker parent");
            made.push(parent.clone());
        }
        let dir = parent.join(id);
        fs::create_dir(&dir).expect("create container cgroup");
        made.push(dir.clone());
        dirs.push(dir);
    }
    dirs
}

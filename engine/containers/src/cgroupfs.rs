//! The layout of a cgroup filesystem (v1 controllers, hybrid or pure v2) and small file
//! parsers shared by discovery and the readers.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Which cgroup version a hierarchy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Per-controller v1 hierarchies.
    V1,
    /// The unified v2 hierarchy.
    V2,
}

/// Where each hierarchy is mounted under the cgroup root.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The cgroup root (`/sys/fs/cgroup` or a fixture).
    pub root: PathBuf,
    /// Pure v2 when `cgroup.controllers` sits at the root.
    pub version: CgroupVersion,
    /// v1 controller name → its hierarchy directory (handles `cpu,cpuacct` co-mounts).
    controllers: BTreeMap<String, PathBuf>,
    /// The controller-less v2 hierarchy of a hybrid host (`<root>/unified`).
    pub unified: Option<PathBuf>,
}

impl Layout {
    /// Detects the layout under `root`.
    pub fn detect(root: &Path) -> io::Result<Self> {
        if root.join("cgroup.controllers").is_file() {
            return Ok(Self {
                root: root.to_path_buf(),
                version: CgroupVersion::V2,
                controllers: BTreeMap::new(),
                unified: None,
            });
        }
        let mut controllers = BTreeMap::new();
        for entry in fs::read_dir(root)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "unified" || !entry.path().is_dir() {
                continue;
            }
            for ctl in name.split(',') {
                controllers
                    .entry(ctl.to_string())
                    .or_insert_with(|| entry.path());
            }
        }
        if controllers.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{}: neither cgroup.controllers (v2) nor v1 controller directories",
                    root.display()
                ),
            ));
        }
        let unified = Some(root.join("unified")).filter(|p| p.join("cgroup.procs").is_file());
        Ok(Self {
            root: root.to_path_buf(),
            version: CgroupVersion::V1,
            controllers,
            unified,
        })
    }

    /// The directory of a container's cgroup for a controller (v1) or the unified one (v2);
    /// `None` when the v1 controller is not mounted.
    pub fn dir(&self, controller: &str, rel: &str) -> Option<PathBuf> {
        let base = match self.version {
            CgroupVersion::V2 => &self.root,
            CgroupVersion::V1 => self.controllers.get(controller)?,
        };
        Some(base.join(rel.trim_start_matches('/')))
    }

    /// The hierarchy discovery walks: `cpu` (or `cpuacct`, `memory`) on v1, the root on v2.
    pub fn primary(&self) -> Option<&Path> {
        match self.version {
            CgroupVersion::V2 => Some(&self.root),
            CgroupVersion::V1 => ["cpu", "cpuacct", "memory"]
                .iter()
                .find_map(|c| self.controllers.get(*c))
                .map(PathBuf::as_path),
        }
    }
}

/// A failed read of a cgroup or proc file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct FsError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong (with the line number for parse errors).
    pub message: String,
    /// True when the file does not exist (the container or task went away).
    pub missing: bool,
}

impl FsError {
    /// A parse error in `path`.
    pub fn parse(path: &Path, message: String) -> Self {
        Self {
            path: path.to_path_buf(),
            message,
            missing: false,
        }
    }
}

/// Reads a whole small file, naming it in the error.
pub fn read_text(path: &Path) -> Result<String, FsError> {
    fs::read_to_string(path).map_err(|e| FsError {
        path: path.to_path_buf(),
        message: e.to_string(),
        missing: e.kind() == io::ErrorKind::NotFound,
    })
}

/// Reads a file holding one unsigned integer; `max` (v2 "no limit") and negative values
/// (v1 `-1`) yield `None`.
pub fn read_u64(path: &Path) -> Result<Option<u64>, FsError> {
    let text = read_text(path)?;
    let word = text.split_whitespace().next().unwrap_or("");
    if word == "max" || word.starts_with('-') {
        return Ok(None);
    }
    word.parse()
        .map(Some)
        .map_err(|e| FsError::parse(path, format!("{word:?} is not a number: {e}")))
}

/// Parses `key value` lines (cpu.stat, memory.stat, memory.events, cpuacct.stat).
/// Lines that do not have exactly a key and an unsigned integer are errors naming the line.
pub fn parse_kv(path: &Path, text: &str) -> Result<BTreeMap<String, u64>, FsError> {
    let mut out = BTreeMap::new();
    for (idx, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        let (Some(key), Some(value), None) = (words.next(), words.next(), words.next()) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(FsError::parse(
                path,
                format!("line {}: expected `key value`", idx + 1),
            ));
        };
        let value = value.parse().map_err(|e| {
            FsError::parse(path, format!("line {}: {key}: {value:?}: {e}", idx + 1))
        })?;
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

/// Reads and parses a `key value` file.
pub fn read_kv(path: &Path) -> Result<BTreeMap<String, u64>, FsError> {
    parse_kv(path, &read_text(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        #[test]
        fn kv_parser_never_panics(text in "[a-z_0-9 \n-]{0,300}") {
            let _ = parse_kv(Path::new("f"), &text);
        }
    }

    #[test]
    fn kv_parsing_names_the_bad_line() {
        let p = Path::new("cpu.stat");
        let ok = parse_kv(p, "nr_periods 4\nnr_throttled 1\n\n").unwrap();
        assert_eq!(ok.get("nr_throttled"), Some(&1));
        let err = parse_kv(p, "nr_periods 4\nbogus\n").unwrap_err();
        assert_eq!(err.to_string(), "cpu.stat: line 2: expected `key value`");
        let err = parse_kv(p, "usage_usec x\n").unwrap_err().to_string();
        assert!(
            err.starts_with("cpu.stat: line 1: usage_usec: \"x\""),
            "{err}"
        );
    }
}

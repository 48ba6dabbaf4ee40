//! `sys.xfs` on a real XFS filesystem (root, `mkfs.xfs`, a loop device): the free journal
//! space is reported, equals the whole log (as `xfs_info` sizes it) on a fresh mount and drops
//! once files are created. Skips without root or xfsprogs unless `CI=true`.

use huatuo_dsl::source::Reader;
use huatuo_dsl::value::Value;
use huatuo_sources::xfs::XfsReader;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A 320 MiB sparse image (XFS's minimum is 300 MiB) with XFS, on a loop device, mounted;
/// all undone on drop.
struct XfsMount {
    image: PathBuf,
    dir: PathBuf,
    dev: String,
}

impl XfsMount {
    fn create() -> XfsMount {
        let tag = format!("huatuo-xfs-{}", std::process::id());
        let image = std::env::temp_dir().join(format!("{tag}.img"));
        let dir = std::env::temp_dir().join(tag);
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(320 << 20))
            .expect("image file");
        run("mkfs.xfs", &["-q", "-f", &image.to_string_lossy()]);
        let dev = run("losetup", &["--find", "--show", &image.to_string_lossy()])
            .trim()
            .to_string();
        std::fs::create_dir_all(&dir).expect("mount point");
        let mount = XfsMount { image, dir, dev };
        run(
            "mount",
            &["-t", "xfs", &mount.dev, &mount.dir.to_string_lossy()],
        );
        mount
    }

    /// The device name as /sys/fs/xfs lists it (`loopN`).
    fn name(&self) -> &str {
        self.dev.trim_start_matches("/dev/")
    }

    fn log_free(&self) -> i64 {
        let mut reader = XfsReader::new(Path::new("/sys"), Path::new("/proc"));
        let samples = reader.read(0).expect("sys.xfs reads");
        let sample = samples
            .iter()
            .find(|s| s.labels["device"] == self.name())
            .unwrap_or_else(|| panic!("no sample for {}: {samples:?}", self.name()));
        match sample.fields.get("log_free_bytes") {
            Some(Value::Int(v)) => *v,
            other => panic!("log_free_bytes of {}: {other:?}", self.name()),
        }
    }
}

impl Drop for XfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
        let _ = std::fs::remove_dir(&self.dir);
        let _ = std::fs::remove_file(&self.image);
    }
}

/// The log size `xfs_info` reports: `log =internal log bsize=4096 blocks=16384, ...`.
fn xfs_info_log_bytes(dir: &Path) -> i64 {
    let info = run("xfs_info", &[&dir.to_string_lossy()]);
    let line = info
        .lines()
        .find(|l| l.starts_with("log "))
        .unwrap_or_else(|| panic!("no log line: {info}"));
    let value = |key: &str| -> i64 {
        let start = line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len();
        line[start..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{key} in {line}"))
    };
    value("bsize=") * value("blocks=")
}

#[test]
fn log_free_bytes_of_a_mounted_xfs() {
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let tools = Command::new("mkfs.xfs").arg("-V").output().is_ok();
    if !(root && tools) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: needs root and xfsprogs (scripts/deps.sh --test)"
        );
        eprintln!("SKIP log_free_bytes_of_a_mounted_xfs: needs root and mkfs.xfs");
        return;
    }
    let mount = XfsMount::create();
    let log = xfs_info_log_bytes(&mount.dir);
    let fresh = mount.log_free();
    println!("{}: log {log} bytes, {fresh} free after mount", mount.dev);
    assert_eq!(fresh, log, "a freshly mounted log is wholly free");

    for i in 0..3000 {
        std::fs::write(mount.dir.join(format!("f{i}")), b"x").expect("create a file");
    }
    run("sync", &["-f", &mount.dir.to_string_lossy()]);
    let used = mount.log_free();
    println!("{} free after creating 3000 files", used);
    assert!(
        (0..log).contains(&used),
        "free space {used} is below the log size {log} after writes"
    );
}

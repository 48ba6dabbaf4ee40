//! Kernel test of the full-filesystem trigger of iotracing (`iotracing_full` in
//! `rules/autotrace/iotracing.hto`): an ext4 image on a loop device, mounted in a scratch
//! directory, filled past a lowered `DiskUsageThreshold` by this process, which keeps the file
//! open. The real `huatuo run` must store a record naming that mount, the loop device, its
//! usage, and this process with the file and its inode. Skips without root unless `CI=true`.

mod kernel_agent;

use kernel_agent::*;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// An ext4 filesystem made on a loop device and mounted on a scratch directory; unmounted and
/// removed (before the device is detached) on drop.
struct Ext4Mount {
    dir: PathBuf,
    // field order is drop order: unmount in Drop first, then the device goes
    device: LoopDevice,
}

impl Ext4Mount {
    fn create(tag: &str) -> Option<Ext4Mount> {
        let device = LoopDevice::create(tag)?;
        let dir = std::env::temp_dir().join(format!("huatuo-{tag}-{}-mnt", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let ok = |cmd: &mut Command| cmd.status().is_ok_and(|s| s.success());
        if !ok(Command::new("mkfs.ext4").args(["-q", "-F", &device.dev]))
            || !ok(Command::new("mount").arg(&device.dev).arg(&dir))
        {
            eprintln!("mkfs.ext4 or mount of {} failed", device.dev);
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Ext4Mount { dir, device })
    }
}

impl Drop for Ext4Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn iotracing_full_names_the_filled_mount_its_device_and_the_file_written() {
    if !kernel_tests_enabled("autotrace_iotracing_full", "root, losetup and mkfs.ext4") {
        return;
    }
    let Some(mount) = Ext4Mount::create("iofull") else {
        if ci() {
            panic!("cannot make and mount an ext4 loop device");
        }
        eprintln!("SKIP autotrace_iotracing_full: no ext4 loop mount");
        return;
    };
    // 40 MiB of the 64 MiB image (ext4 keeps a few MiB for itself): well past 50 %.
    let path = mount.dir.join("filling.dat");
    let mut file = std::fs::File::create(&path).expect("create the filling file");
    let chunk = vec![0x5au8; 1 << 20];
    for _ in 0..40 {
        file.write_all(&chunk).expect("fill the filesystem");
    }
    file.sync_all().expect("fsync");
    let inode = std::fs::metadata(&path).expect("stat the file").ino();

    let agent = Agent::start(Setup {
        tag: "iofull",
        rules: "rules/autotrace/iotracing.hto",
        config: "[AutoTracing.IOTracing]\n    DiskUsageThreshold = 50\n",
        args: &["--no-bpf", "--run-for", "60"],
    });
    let mountpoint = mount.dir.display().to_string();
    let record = agent
        .wait_record("iotracing_full", Duration::from_secs(30), |r| {
            r["mountpoint"] == mountpoint.as_str()
        })
        .unwrap_or_else(|| {
            panic!(
                "no iotracing_full record for {mountpoint}: {:?}\nagent log:\n{}",
                agent.records("iotracing_full"),
                agent.log()
            )
        });
    drop(file);
    eprintln!("iotracing_full: {record}");
    assert_eq!(record["device"], mount.device.dev.as_str(), "{record}");
    assert_eq!(record["fstype"], "ext4", "{record}");
    let usage = record["usage"].as_f64().expect("usage");
    assert!((50.0..=100.0).contains(&usage), "{record}");
    assert_eq!(record["usage_threshold"].as_f64(), Some(50.0), "{record}");
    let processes = record["process_io_data"]
        .as_array()
        .expect("process_io_data");
    let me = processes
        .iter()
        .find(|p| p["pid"].as_u64() == Some(u64::from(std::process::id())))
        .unwrap_or_else(|| panic!("the writing process is not listed: {processes:?}"));
    assert_eq!(
        me["file_stat"],
        serde_json::json!([path.display().to_string()]),
        "{me}"
    );
    assert_eq!(me["file_inode"], serde_json::json!([inode]), "{me}");
    assert!(me["fs_write"].as_u64().unwrap_or(0) >= 40 << 20, "{me}");
    // The host's root filesystem may be past 50 % too: its record lists no file of another
    // filesystem (/dev/null, /proc) under `/`.
    let devices: Vec<u64> = ["/dev", "/proc"]
        .iter()
        .filter_map(|d| std::fs::metadata(d).ok().map(|m| m.dev()))
        .collect();
    let root_dev = std::fs::metadata("/").expect("stat /").dev();
    if !devices.contains(&root_dev) {
        if let Some(root) = agent
            .records("iotracing_full")
            .iter()
            .find(|r| r["mountpoint"] == "/")
        {
            let listed = root["process_io_data"].to_string();
            assert!(!listed.contains("\"/dev/null\""), "{listed}");
            assert!(!listed.contains("\"/proc/"), "{listed}");
        }
    }
    // Only processes with files open on that filesystem are listed.
    for p in processes {
        assert!(
            p["file_stat"].as_array().is_some_and(|f| f
                .iter()
                .all(|x| x.as_str().is_some_and(|s| s.starts_with(&mountpoint)))),
            "{p}"
        );
    }
}

//! Config values that would hurt the node are refused by `huatuo check --config` and by
//! `huatuo run` alike, at the key's file:line:col with the reason; a config "file" that never
//! ends is refused after a bounded read.

mod scrape_common;

use scrape_common::{free_port, repo};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn huatuo(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_huatuo"))
        .current_dir(repo())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("huatuo runs")
}

/// A config file in a fresh temporary directory.
fn config_file(tag: &str, text: &str) -> (tempdir::Dir, PathBuf) {
    let dir = tempdir::Dir::new(tag);
    let path = dir.0.join("huatuo-bamai.conf");
    std::fs::write(&path, text).expect("write config");
    (dir, path)
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new(tag: &str) -> Dir {
            let dir = std::env::temp_dir()
                .join(format!("huatuo-config-limits-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("mkdir");
            Dir(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// `huatuo check --config FILE` and `huatuo run --config FILE` both fail with exit 1 and
/// print `wanted` (the place and the message).
fn both_refuse(config: &Path, wanted: &[&str]) {
    let check = huatuo(&["check".as_ref(), "--config".as_ref(), config.as_os_str()]);
    let port = free_port().to_string();
    let run = huatuo(&[
        "run".as_ref(),
        "--no-bpf".as_ref(),
        "--listen".as_ref(),
        format!("127.0.0.1:{port}").as_ref(),
        "--run-for".as_ref(),
        "1".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    for (what, out) in [("check", check), ("run", run)] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        for w in wanted {
            assert!(stderr.contains(w), "{what} lacks {w:?}:\n{stderr}");
        }
    }
}

#[test]
fn an_es_address_that_is_not_http_is_refused_at_its_place() {
    let (_dir, path) = config_file(
        "ftp",
        "[Storage.ES]\nUsername = \"elastic\"\nPassword = \"pw\"\nAddress = \"ftp//127.0.0.1:9200\"\n",
    );
    let at = format!("{}:4:11", path.display());
    both_refuse(
        &path,
        &[
            &at,
            "`Storage.ES.Address`: `ftp//127.0.0.1:9200` is not an http(s) URL",
        ],
    );
    let (_dir, path) = config_file(
        "ftp-scheme",
        "[Storage.ES]\nAddress = \"ftp://x\"\nUsername = \"elastic\"\nPassword = \"pw\"\n",
    );
    let at = format!("{}:2:11", path.display());
    both_refuse(&path, &[&at, "the scheme is `ftp`, not http or https"]);
}

#[test]
fn a_huge_max_rotation_is_refused_with_the_allowed_range() {
    let (_dir, path) = config_file(
        "rotation",
        "[Storage.LocalFile]\n    MaxRotation = 1000000000000\n",
    );
    let at = format!("{}:2:19", path.display());
    both_refuse(
        &path,
        &[
            &at,
            "`Storage.LocalFile.MaxRotation`: must be from 0 to 1000, found 1000000000000",
        ],
    );
}

#[test]
fn a_config_that_never_ends_is_refused_after_a_bounded_read() {
    // Under a 512 MiB address-space limit: reading /dev/zero whole would fail or abort.
    let start = Instant::now();
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 524288 && exec \"$0\" check --config /dev/zero")
        .arg(env!("CARGO_BIN_EXE_huatuo"))
        .current_dir(repo())
        .output()
        .expect("sh runs");
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("/dev/zero") && stderr.contains("config file is larger than 4 MiB"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

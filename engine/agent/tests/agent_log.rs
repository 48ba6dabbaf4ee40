//! `[Log]` applies to the running agent: `Level` decides which lines are written (standard
//! error and the file alike), `File` receives them, rotated at `MaxSize` with `MaxBackups`
//! older files kept.

mod scrape_common;

use scrape_common::{fixture_args, free_port, repo, TempConfig};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the agent over the fixture node for one second with `log` as its `[Log]` section;
/// returns what it wrote to standard error.
fn run_agent(config: &TempConfig) -> String {
    let args = fixture_args("cgroup", 1);
    let mut child = Command::new(env!("CARGO_BIN_EXE_huatuo"))
        .current_dir(repo())
        .env_remove("RUST_LOG")
        .arg("run")
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--config")
        .arg(&config.path)
        .arg("--spool-dir")
        .arg(config.dir.join("spool"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start huatuo");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the agent did not stop after --run-for 1");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("output");
    assert!(out.status.success(), "agent failed: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn config(tag: &str, level: &str, extra: &str) -> TempConfig {
    let dir = std::env::temp_dir().join(format!("huatuo-{tag}-{}", std::process::id()));
    let file = dir.join("log/agent.log");
    TempConfig::new(
        tag,
        &format!(
            "[Log]\n    Level = \"{level}\"\n    File = \"{}\"\n{extra}",
            file.display()
        ),
    )
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn level_filters_what_is_written_to_stderr_and_the_file() {
    let info = config("log-info", "Info", "");
    let stderr = run_agent(&info);
    let file = read(&info.dir.join("log/agent.log"));
    for text in [&stderr, &file] {
        assert!(
            text.contains("INFO"),
            "Info level wrote no INFO line:\n{text}"
        );
        assert!(text.contains("serving HTTP on 127.0.0.1:"), "{text}");
        assert!(
            !text.contains("DEBUG"),
            "Info level wrote DEBUG lines:\n{text}"
        );
    }

    let warn = config("log-warn", "Warn", "");
    let stderr = run_agent(&warn);
    let file = read(&warn.dir.join("log/agent.log"));
    assert!(warn.dir.join("log/agent.log").exists(), "File not created");
    for text in [&stderr, &file] {
        assert!(
            !text.contains("INFO"),
            "Warn level wrote INFO lines:\n{text}"
        );
        assert!(!text.contains("serving HTTP on"), "{text}");
    }

    let debug = config("log-debug", "debug", "");
    let stderr = run_agent(&debug);
    assert!(
        stderr.contains("DEBUG"),
        "Debug level wrote no DEBUG line:\n{stderr}"
    );
}

#[test]
fn file_is_rotated_at_max_size_keeping_max_backups() {
    let cfg = config(
        "log-rotate",
        "Info",
        "    MaxSize = 1\n    MaxBackups = 2\n",
    );
    let log = cfg.dir.join("log/agent.log");
    std::fs::create_dir_all(log.parent().expect("dir")).expect("log dir");
    // A live file at the 1 MB bound and two older files: the agent's first line rotates.
    let filler = "x".repeat(1 << 20);
    std::fs::write(&log, &filler).expect("filler");
    std::fs::write(cfg.dir.join("log/agent.log.1"), "older\n").expect("older");
    std::fs::write(cfg.dir.join("log/agent.log.2"), "oldest\n").expect("oldest");
    run_agent(&cfg);
    let live = read(&log);
    assert!(live.contains("serving HTTP on 127.0.0.1:"), "{live}");
    assert!(
        !live.contains("xxxxxxxx"),
        "the live file kept the old content"
    );
    assert_eq!(read(&cfg.dir.join("log/agent.log.1")), filler);
    assert_eq!(read(&cfg.dir.join("log/agent.log.2")), "older\n");
    assert!(
        !cfg.dir.join("log/agent.log.3").exists(),
        "more than MaxBackups older files kept"
    );
}

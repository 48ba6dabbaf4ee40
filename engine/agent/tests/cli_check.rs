//! `huatuo check` as an operator runs it: the shipped rules pass with the shipped config; a
//! broken rule is reported at file:line:col with the line, a caret and a hint, exit 1; usage
//! errors exit 2.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn huatuo(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_huatuo"))
        .current_dir(repo())
        .args(args)
        .output()
        .expect("huatuo runs")
}

#[test]
fn shipped_rules_and_config_check_clean() {
    let out = huatuo(&[
        "check",
        "--stdlib",
        "stdlib",
        "--config",
        "huatuo-bamai.conf",
        "rules/",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(" 0 errors"), "{stderr}");
}

#[test]
fn the_embedded_rules_are_the_shipped_rules() {
    let out = huatuo(&["check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let shipped = huatuo(&["check", "--stdlib", "stdlib", "rules/"]);
    let count = |s: &str| s.lines().last().unwrap_or_default().to_string();
    assert_eq!(
        count(&stderr),
        count(&String::from_utf8_lossy(&shipped.stderr))
    );
}

#[test]
fn a_broken_rule_points_at_the_place_with_a_hint() {
    let dir = std::env::temp_dir().join(format!("huatuo-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = dir.join("bad.hto");
    std::fs::write(
        &file,
        "event e {\n    source bpf.softirq_off\n    where  offtime > 45%\n    emit   offtme\n}\n",
    )
    .expect("write");
    let out = huatuo(&[
        "check",
        "--stdlib",
        "stdlib",
        file.to_str().expect("utf8 path"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3:22", file.display())),
        "{stderr}"
    );
    assert!(stderr.contains("error[unit-mismatch]"), "{stderr}");
    assert!(stderr.contains("    where  offtime > 45%"), "{stderr}");
    assert!(stderr.contains('^'), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:4:12", file.display())),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `offtime`?"), "{stderr}");
    let json = huatuo(&[
        "check",
        "--stdlib",
        "stdlib",
        "--format",
        "json",
        file.to_str().expect("utf8"),
    ]);
    let diags: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json output");
    assert_eq!(diags.as_array().map(Vec::len), Some(2));
    assert_eq!(diags[0]["line"], 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_config_key_is_named_with_its_line_and_nearest_key() {
    let dir = std::env::temp_dir().join(format!("huatuo-check-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let conf = dir.join("huatuo-bamai.conf");
    std::fs::write(&conf, "[AutoTracing.CPUSys]\nSysThreshhold = 45\n").expect("write");
    let out = huatuo(&[
        "check",
        "--stdlib",
        "stdlib",
        "--config",
        conf.to_str().expect("utf8"),
        "rules/",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:2:1", conf.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("AutoTracing.CPUSys.SysThreshold"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(huatuo(&["check", "--no-such-flag"]).status.code(), Some(2));
}

/// A fresh directory for one test's rule files, removed on drop.
fn rule_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("huatuo-check-{tag}"))
        .tempdir()
        .expect("tempdir")
}

#[test]
fn a_file_that_is_not_utf8_is_reported_at_its_first_bad_byte() {
    let dir = rule_dir("utf8");
    let file = dir.path().join("latin1.hto");
    // `é` in Latin-1 (0xe9) on line 3, after `    help   "caf`.
    let mut bytes = b"event e {\n    source kmsg\n    help   \"caf".to_vec();
    bytes.extend_from_slice(b"\xe9\"\n    emit   message\n}\n");
    std::fs::write(&file, bytes).expect("write");
    let out = huatuo(&["check", "--stdlib", "stdlib", file.to_str().expect("utf8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3:16", file.display())),
        "{stderr}"
    );
    assert!(stderr.contains("error[encoding]"), "{stderr}");
    assert!(stderr.contains("byte 0xe9"), "{stderr}");
}

#[test]
fn an_empty_rule_file_is_a_warning_not_an_error() {
    let dir = rule_dir("empty");
    std::fs::write(dir.path().join("empty.hto"), "# nothing here yet\n").expect("write");
    std::fs::write(
        dir.path().join("one.hto"),
        "event e {\n    source kmsg\n    emit   message\n}\n",
    )
    .expect("write");
    let out = huatuo(&[
        "check",
        "--stdlib",
        "stdlib",
        dir.path().to_str().expect("utf8"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let empty = dir.path().join("empty.hto");
    assert!(
        stderr.contains(&format!("{}:1:1", empty.display())),
        "{stderr}"
    );
    assert!(stderr.contains("warning[empty-file]"), "{stderr}");
    assert!(stderr.contains("0 errors, 1 warnings"), "{stderr}");
}

#[test]
fn stdlib_dir_adds_to_the_builtin_scripts() {
    let dir = rule_dir("stdlib");
    let scripts = dir.path().join("scripts");
    std::fs::create_dir_all(&scripts).expect("mkdir");
    std::fs::write(scripts.join("mine.rhai"), "fn twice(x) { x * 2 }\n").expect("write");
    let rule = dir.path().join("r.hto");
    std::fs::write(
        &rule,
        "event e {\n    source proc.loadavg\n    script a = mine::twice(load1)\n    \
         script b = stats::mean(window(load1, 3))\n    emit   a, b\n}\n",
    )
    .expect("write");
    let out = huatuo(&[
        "check",
        "--stdlib",
        scripts.to_str().expect("utf8"),
        rule.to_str().expect("utf8"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("0 errors, 0 warnings"), "{stderr}");
}

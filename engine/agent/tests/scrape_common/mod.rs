//! Helpers of the tests that run the real agent and scrape its `/metrics`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the agent when the test ends, pass or fail.
pub struct Agent(pub Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The body of one `GET path` (`/metrics`, `/status`, ...), or `None` while the agent is not
/// serving it (no connection, or not a 2xx: `/status` answers 503 until the agent started).
pub fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?;
    status.starts_with('2').then(|| body.to_string())
}

/// The body of one `GET /metrics`, or `None` while the agent is not serving.
pub fn scrape(port: u16) -> Option<String> {
    get(port, "/metrics")
}

/// The lines of `wanted` that are not, whole, a line of `body`.
pub fn missing_lines(body: &str, wanted: &[String]) -> Vec<String> {
    wanted
        .iter()
        .filter(|w| !body.lines().any(|l| l == w.as_str()))
        .cloned()
        .collect()
}

/// A temporary directory holding a config whose local record files stay inside it.
pub struct TempConfig {
    /// The directory (removed on drop).
    pub dir: PathBuf,
    /// The config file.
    pub path: PathBuf,
}

impl TempConfig {
    /// Writes `text` plus a `[Storage.LocalFile]` section pointing into the directory.
    pub fn new(tag: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("huatuo-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("huatuo-bamai.conf");
        let local = dir.join("local");
        let text = format!(
            "{text}\n[Storage.LocalFile]\n    Path = \"{}\"\n",
            local.display()
        );
        std::fs::write(&path, text).expect("write config");
        TempConfig { dir, path }
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `huatuo run` from the repository root on `port` with extra arguments.
pub fn start_agent(port: u16, config: &Path, args: &[&std::ffi::OsStr]) -> Agent {
    let child = Command::new(env!("CARGO_BIN_EXE_huatuo"))
        .current_dir(repo())
        .arg("run")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start huatuo");
    Agent(child)
}

/// Scrapes until `done` holds for the body or `within` passes; returns the last body.
pub fn scrape_until(port: u16, within: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    let mut body = String::new();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        body = scrape(port).unwrap_or_default();
        if done(&body) {
            break;
        }
    }
    body
}

/// Whether the test runs as root (effective uid 0 in /proc/self/status).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether `CI=true`: tests that need root, BPF or a tool must then run.
pub fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// `--no-bpf` and the fixture node's roots (`--procfs-root` ...), with `cgroup` the cgroup
/// tree under `engine/agent/tests/fixtures/node`, then the shipped metric rules running for
/// `seconds`.
pub fn fixture_args(cgroup: &str, seconds: u32) -> Vec<std::ffi::OsString> {
    let fixture = repo().join("engine/agent/tests/fixtures/node");
    let mut args: Vec<std::ffi::OsString> = vec!["--no-bpf".into(), "--no-self-limit".into()];
    for (flag, dir) in [
        ("--procfs-root", "proc"),
        ("--sysfs-root", "sys"),
        ("--cgroup-root", cgroup),
        ("--netlink-recorded", "netlink"),
        ("--kmsg", "kmsg"),
        ("--xfs-recorded", "xfs-log-sizes.json"),
    ] {
        args.push(flag.into());
        args.push(fixture.join(dir).into());
    }
    for arg in [
        "--rules",
        "rules/metrics",
        "--stdlib",
        "stdlib",
        "--run-for",
    ] {
        args.push(arg.into());
    }
    args.push(seconds.to_string().into());
    args
}

/// Starts the agent on `port` over the fixture node (`fixture_args(cgroup, seconds)`), plus
/// each `(flag, path)` of `recorded` with the path under the repository root (e.g.
/// `("--gpu-recorded", "engine/agent/tests/fixtures/node/gpu")`).
pub fn start_fixture_agent(
    port: u16,
    config: &Path,
    cgroup: &str,
    seconds: u32,
    recorded: &[(&str, &str)],
) -> Agent {
    let mut args = fixture_args(cgroup, seconds);
    for (flag, path) in recorded {
        args.push(flag.into());
        args.push(repo().join(path).into());
    }
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    start_agent(port, config, &args)
}

/// Whether `promtool` runs here; prints why the check is skipped otherwise. Under `CI=true` a
/// missing promtool is a failure.
pub fn promtool_available() -> bool {
    tool_available(
        "promtool",
        "Debian package `prometheus`, see scripts/deps.sh",
    )
}

/// Whether `program --version` runs here; prints why the check is skipped otherwise (`how`
/// says where the program comes from). Under `CI=true` a missing program is a failure.
pub fn tool_available(program: &str, how: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(!ci(), "{program} is not installed ({how})");
        println!("SKIPPED: {program} is not installed ({how})");
    }
    found
}

/// `promtool check metrics` over `body`: (success, everything it printed).
pub fn promtool_check(body: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(body.as_bytes()).expect("write to promtool");
    }
    let out = child.wait_with_output().expect("promtool output");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

//! End-to-end test of continuous profiling with the real `huatuo run` (root + BPF): a busy C
//! program (inside a Docker-style cpu cgroup, so it is a container to the agent) and a busy Go
//! program, both built here with gcc and Debian's `go`, are found with their function names in
//! the CPU profile served at `GET /v1/profiles`; a process sleeping on a pipe shows in the
//! off-CPU profile with its blocking kernel stack; the pprof answer is read by the real
//! `go tool pprof -top`, which names the hot functions; a fake Pyroscope ingest endpoint
//! receives labelled pprof profiles at the interval; `/status` and `/metrics` report the
//! profiler. A second run checks symbolization beyond the ELF symbol table: a Go program built
//! stripped (`-ldflags=-s -w`, named through its `.gopclntab`), a C++ program built by g++
//! (its demangled method name), and JIT-style code in an anonymous executable page named by
//! the `/tmp/perf-<pid>.map` the test writes. A third run checks the governor lowering the
//! rate over its budget. Skips without root (or without gcc, g++ and go)
//! unless `CI=true`.

mod kernel_agent;

use kernel_agent::*;
use prost::Message;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Seconds between profiles in this test.
const INTERVAL_S: i64 = 2;

/// Held by each test for its whole run: both start busy loops and a profiling agent, and on
/// two CPUs together they starve each other's agent far past its interval.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Waits for the other test of this file to end (a failed one poisons the lock: still free).
fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A child process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fixture(name: &str) -> PathBuf {
    repo()
        .join("engine/agent/tests/fixtures/profiling")
        .join(name)
}

/// Whether `tools` are all installed; outside CI a missing one skips the test (after saying
/// so), in CI it fails it.
fn have_tools(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|tool| {
            let flag = if *tool == "go" {
                "version"
            } else {
                "--version"
            };
            Command::new(tool).arg(flag).output().is_err()
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(!ci(), "{missing:?} required in CI (scripts/deps.sh --test)");
    println!("SKIPPED: profiling test needs {missing:?}");
    false
}

/// Compiles the fixture `source` with `compiler` (gcc or g++) into `dir/name`, with frame
/// pointers.
fn compile(compiler: &str, source: &str, dir: &Path, name: &str) {
    let status = Command::new(compiler)
        .args(["-O0", "-fno-omit-frame-pointer", "-o"])
        .arg(dir.join(name))
        .arg(fixture(source))
        .status()
        .unwrap_or_else(|e| panic!("run {compiler}: {e}"));
    assert!(status.success(), "{compiler} {source} failed");
}

/// Builds the fixture busy.go into `dir/name` with Debian's `go` and `extra` build flags.
fn go_build(dir: &Path, name: &str, extra: &[&str]) {
    let output = Command::new("go")
        .arg("build")
        .args(extra)
        .arg("-o")
        .arg(dir.join(name))
        .arg(fixture("busy.go"))
        .env("HOME", dir)
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOFLAGS", "-mod=mod")
        .env("GO111MODULE", "off")
        .output()
        .expect("run go build");
    assert!(
        output.status.success(),
        "go build busy.go failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Builds the C and Go programs into `dir`; `None` (after printing why) when a toolchain is
/// missing outside CI.
fn build_programs(dir: &Path) -> Option<()> {
    if !have_tools(&["gcc", "go"]) {
        return None;
    }
    for name in ["busy", "pipewait"] {
        compile("gcc", &format!("{name}.c"), dir, name);
    }
    go_build(dir, "busygo", &[]);
    Some(())
}

fn spawn(path: &Path) -> Running {
    Running(
        Command::new(path)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", path.display())),
    )
}

/// A Docker-style v1 cpu cgroup (`docker/<64 hex>`) the agent discovers as a container;
/// removed on drop (its process must be gone by then).
struct FakeContainer {
    dir: PathBuf,
    id: String,
}

impl FakeContainer {
    fn create() -> FakeContainer {
        let id = format!(
            "{:064x}",
            0x4875_6174_756f_u64 + u64::from(std::process::id())
        );
        let dir = PathBuf::from("/sys/fs/cgroup/cpu/docker").join(&id);
        std::fs::create_dir_all(&dir).expect("create the container's cpu cgroup");
        FakeContainer { dir, id }
    }

    fn enter(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).expect("move into cgroup");
    }
}

impl Drop for FakeContainer {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = std::fs::remove_dir("/sys/fs/cgroup/cpu/docker");
    }
}

/// One request the fake Pyroscope received: its target (path and query) and body.
#[derive(Debug, Clone)]
struct Ingest {
    target: String,
    body: Vec<u8>,
}

/// A fake Pyroscope: answers every request 200 and keeps it.
fn fake_pyroscope() -> (u16, Arc<Mutex<Vec<Ingest>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake Pyroscope");
    let port = listener.local_addr().expect("addr").port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let keep = keep.clone();
            std::thread::spawn(move || serve_ingest(stream, &keep));
        }
    });
    (port, got)
}

fn serve_ingest(stream: TcpStream, got: &Mutex<Vec<Ingest>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = stream.try_clone().expect("clone stream");
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let target = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        got.lock().unwrap().push(Ingest { target, body });
        let _ = writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }
}

/// A query parameter of a request target, percent-decoded.
fn param(target: &str, key: &str) -> Option<String> {
    let query = target.split_once('?')?.1;
    let value = query
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))?;
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The pprof profile inside a multipart body (the `profile` field, gzip).
fn pprof_of(body: &[u8]) -> huatuo::profiling::pprof::Profile {
    let start = body
        .windows(2)
        .position(|w| w == [0x1f, 0x8b])
        .expect("a gzip stream in the multipart body");
    let mut raw = Vec::new();
    let _ = flate2::read::GzDecoder::new(&body[start..]).read_to_end(&mut raw);
    huatuo::profiling::pprof::Profile::decode(&raw[..]).expect("a profile.proto message")
}

/// The folded-stack answer of `GET /v1/profiles?<query>&format=folded`.
fn folded(agent: &Agent, query: &str) -> String {
    agent
        .get(&format!("/v1/profiles?{query}&format=folded"))
        .unwrap_or_default()
}

/// The raw bytes of `GET path` (the harness's `get` is for text).
fn get_bytes(port: u16, path: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header end");
    let head = String::from_utf8_lossy(&response[..end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "unexpected chunked answer: {head}"
    );
    response[end + 4..].to_vec()
}

#[test]
fn continuous_profiles_name_c_and_go_functions_offcpu_waits_and_reach_pyroscope() {
    if !kernel_tests_enabled("continuous profiling", "root and BPF") {
        return;
    }
    let _alone = alone();
    let work = tempfile::tempdir().expect("temp dir");
    if build_programs(work.path()).is_none() {
        return;
    }
    let (pyroscope_port, ingested) = fake_pyroscope();
    let config = format!(
        "[ContinuousProfiling]\n    Enable = true\n    Interval = {INTERVAL_S}\n    CPUBudget = 50\n    \
         Processes = [\"busy\", \"pipewait\"]\n\
         [ContinuousProfiling.OffCPU]\n    Enable = true\n    MinDuration = 1\n\
         [Storage.Pyroscope]\n    Address = \"http://127.0.0.1:{pyroscope_port}\"\n    AppName = \"huatuo-test\"\n"
    );
    let container = FakeContainer::create();
    let busy = spawn(&work.path().join("busy"));
    container.enter(busy.0.id());
    let busy_go = spawn(&work.path().join("busygo"));
    let waiter = spawn(&work.path().join("pipewait"));
    let agent = Agent::start(Setup {
        tag: "profiling",
        rules: "rules",
        config: &config,
        args: &["--region", "test-region"],
    });
    agent.wait_serving();

    // CPU: both busy programs with their function names; the C one attributed to its container.
    let cpu = wait_until(Duration::from_secs(60), || {
        let text = folded(&agent, "type=cpu");
        (text.contains("busy;")
            && text.contains("huatuo_c_hot_loop")
            && text.contains("main.hotGoSpin"))
        .then_some(text)
    })
    .unwrap_or_else(|| {
        panic!(
            "the CPU profile never named both busy functions:\n{}\nlog:\n{}",
            folded(&agent, "type=cpu")
                .lines()
                .take(40)
                .collect::<Vec<_>>()
                .join("\n"),
            agent.log()
        )
    });
    let short = &container.id[..12];
    // `Processes` keeps only the test's programs (the C one under its container's name).
    for line in cpu.lines() {
        let comm = line.strip_prefix(&format!("{short};")).unwrap_or(line);
        assert!(
            ["busy;", "busygo;", "pipewait;"]
                .iter()
                .any(|p| comm.starts_with(p)),
            "a process outside the Processes filter: {line}"
        );
    }
    assert!(
        cpu.lines()
            .any(|l| l.starts_with(&format!("{short};busy;")) && l.contains(";huatuo_c_hot_loop")),
        "the busy C program is not under its container {short}:\n{cpu}"
    );
    assert!(
        cpu.lines()
            .any(|l| l.starts_with("busygo;") && l.contains(";main.hotGoSpin")),
        "the busy Go program is not a host process with main.hotGoSpin:\n{cpu}"
    );
    let only_container = folded(&agent, &format!("container={}", container.id));
    assert!(
        only_container.contains("huatuo_c_hot_loop"),
        "{only_container}"
    );
    assert!(
        !only_container.contains("main.hotGoSpin"),
        "{only_container}"
    );

    // Off-CPU: the pipe reader with its blocking stack, user frame then the kernel's pipe read.
    let offcpu = wait_until(Duration::from_secs(30), || {
        let text = folded(&agent, "type=offcpu");
        text.lines()
            .find(|l| {
                l.starts_with("pipewait;")
                    && l.contains(";huatuo_c_pipe_wait;")
                    && l.contains("pipe_read")
                    && l.contains(";schedule")
            })
            .map(str::to_string)
    })
    .unwrap_or_else(|| {
        panic!(
            "the pipe reader never showed off-CPU in pipe_read:\n{}",
            folded(&agent, "type=offcpu")
                .lines()
                .filter(|l| l.starts_with("pipewait"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let waited_us: u64 = offcpu.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(waited_us >= 10_000, "off-CPU time {waited_us} us: {offcpu}");

    // pprof read by the real go tool pprof.
    let pprof = get_bytes(agent.port(), "/v1/profiles?type=cpu");
    let file = work.path().join("cpu.pb.gz");
    std::fs::write(&file, &pprof).expect("write the pprof file");
    let top = Command::new("go")
        .args(["tool", "pprof", "-top"])
        .arg(&file)
        .env("HOME", work.path())
        .env("GOCACHE", work.path().join("gocache"))
        .output()
        .expect("run go tool pprof");
    let top_text = String::from_utf8_lossy(&top.stdout);
    assert!(
        top.status.success(),
        "go tool pprof failed: {}",
        String::from_utf8_lossy(&top.stderr)
    );
    assert!(top_text.contains("Type: cpu"), "{top_text}");
    for function in ["huatuo_c_hot_loop", "main.hotGoSpin"] {
        assert!(
            top_text.contains(function),
            "pprof -top does not name {function}:\n{top_text}"
        );
    }

    // Pyroscope: labelled CPU pprof pushes, one interval apart.
    let pushes = wait_until(Duration::from_secs(30), || {
        let got = ingested.lock().unwrap().clone();
        let host_cpu: Vec<Ingest> = got
            .into_iter()
            .filter(|i| {
                param(&i.target, "name")
                    .is_some_and(|n| n.starts_with("huatuo-test.cpu{") && !n.contains("container="))
            })
            .collect();
        (host_cpu.len() >= 3).then_some(host_cpu)
    })
    .unwrap_or_else(|| {
        panic!(
            "Pyroscope got {:?}",
            ingested
                .lock()
                .unwrap()
                .iter()
                .map(|i| &i.target)
                .collect::<Vec<_>>()
        )
    });
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let mut ranges = vec![];
    for push in &pushes {
        assert!(push.target.starts_with("/ingest?"), "{}", push.target);
        let name = param(&push.target, "name").unwrap();
        assert!(
            name.contains(&format!("host={}", hostname.trim())),
            "{name}"
        );
        assert!(name.contains("region=test-region"), "{name}");
        assert_eq!(param(&push.target, "format").as_deref(), Some("pprof"));
        let from: i64 = param(&push.target, "from").unwrap().parse().unwrap();
        let until: i64 = param(&push.target, "until").unwrap().parse().unwrap();
        ranges.push((from, until));
    }
    // Each push covers one interval (the first also the agent's start), back to back.
    for pair in ranges.windows(2) {
        assert_eq!(pair[1].0, pair[0].1, "pushes not back to back: {ranges:?}");
    }
    // A round the loaded test machine delays covers more; none is empty or short.
    for (from, until) in &ranges[1..] {
        assert!(
            (INTERVAL_S - 1..=3 * INTERVAL_S).contains(&(until - from)),
            "a push's range is not the interval: {ranges:?}"
        );
    }
    let host_profile = pprof_of(&pushes[pushes.len() - 1].body);
    let names: Vec<&str> = host_profile
        .function
        .iter()
        .map(|f| host_profile.string_table[f.name as usize].as_str())
        .collect();
    assert!(
        names.contains(&"main.hotGoSpin"),
        "host push functions: {names:?}"
    );
    let container_push = ingested
        .lock()
        .unwrap()
        .iter()
        .find(|i| {
            param(&i.target, "name").is_some_and(|n| {
                n.starts_with("huatuo-test.cpu{") && n.contains(&format!("container={short}"))
            })
        })
        .cloned()
        .expect("a CPU push labelled with the container");
    let container_profile = pprof_of(&container_push.body);
    assert!(
        container_profile
            .function
            .iter()
            .any(|f| container_profile.string_table[f.name as usize] == "huatuo_c_hot_loop"),
        "the container's push lacks huatuo_c_hot_loop"
    );
    assert!(ingested
        .lock()
        .unwrap()
        .iter()
        .any(|i| param(&i.target, "name").is_some_and(|n| n.starts_with("huatuo-test.offcpu{"))));

    // /status and /metrics report the profiler.
    let status = agent.status().expect("status");
    let profiling = &status["profiling"];
    assert_eq!(profiling["enabled"], true, "{profiling}");
    assert!(
        profiling["frequency_hz"]
            .as_u64()
            .is_some_and(|hz| (1..=99).contains(&hz)),
        "{profiling}"
    );
    assert!(
        profiling["pyroscope_pushed"]
            .as_u64()
            .is_some_and(|n| n >= 3),
        "{profiling}"
    );
    assert_eq!(profiling["pyroscope_failures"], 0, "{profiling}");
    let metrics = agent.get("/metrics").expect("metrics");
    assert!(
        metrics.contains("agent_profiling_frequency_hz"),
        "no profiling metrics"
    );
    assert!(
        metrics.contains("agent_profiling_cpu_cost_percent"),
        "no profiling cost metric"
    );
    drop(busy);
    drop(agent);
    drop(container);
    drop(busy_go);
    drop(waiter);
}

/// The governor: over a budget no profiling can meet, the rate halves every round but the
/// first (which also loads what later rounds find cached: reported, not governed on), and
/// `/status` says so; each change reopens the sampler's perf events and keeps its program.
#[test]
fn the_governor_halves_the_rate_over_its_budget_and_says_so() {
    if !kernel_tests_enabled("profiling governor", "root and BPF") {
        return;
    }
    let _alone = alone();
    let agent = Agent::start(Setup {
        tag: "governor",
        rules: "rules",
        config:
            "[ContinuousProfiling]\n    Enable = true\n    Interval = 1\n    CPUBudget = 0.000001\n",
        args: &[],
    });
    agent.wait_serving();
    let profiling = wait_until(Duration::from_secs(60), || {
        let profiling = agent.status()?["profiling"].clone();
        (profiling["frequency_hz"].as_u64()? <= 12).then_some(profiling)
    })
    .unwrap_or_else(|| {
        panic!(
            "the rate never came down to 12 Hz: {:?}\nlog:\n{}",
            agent.status().map(|s| s["profiling"].clone()),
            agent.log()
        )
    });
    assert_eq!(profiling["configured_hz"], 99, "{profiling}");
    assert!(
        profiling["throttled"].as_u64().is_some_and(|n| n >= 3),
        "{profiling}"
    );
    let intervals = profiling["intervals"].as_u64().unwrap_or(0);
    assert!(
        intervals >= 4,
        "three halvings after one ungoverned round: {profiling}"
    );
    let log = agent.log();
    assert!(
        log.contains("sampling at 49 Hz (was 99 Hz)")
            && log.contains("sampling at 12 Hz (was 24 Hz)"),
        "{log}"
    );
    assert!(
        !log.contains("changing the sampling rate"),
        "a rate change failed to keep the program: {log}"
    );
    assert_eq!(profiling["errors"], 0, "{profiling}");
}

/// A perf map file, removed on drop.
struct PerfMap(PathBuf);

impl Drop for PerfMap {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn stripped_go_demangled_cpp_and_perf_map_jit_frames_are_named() {
    if !kernel_tests_enabled("profiling symbolization", "root and BPF") {
        return;
    }
    let _alone = alone();
    if !have_tools(&["gcc", "g++", "go", "readelf"]) {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let dir = work.path();
    go_build(dir, "gostripped", &["-ldflags=-s -w"]);
    compile("g++", "busy.cpp", dir, "spincpp");
    compile("gcc", "jitspin.c", dir, "jitspin");
    // The Go binary really has no symbol table, only its pclntab.
    let sections = Command::new("readelf")
        .arg("-S")
        .arg(dir.join("gostripped"))
        .output()
        .expect("run readelf");
    let sections = String::from_utf8_lossy(&sections.stdout);
    assert!(
        !sections.contains(".symtab") && sections.contains(".gopclntab"),
        "{sections}"
    );

    let go = spawn(&dir.join("gostripped"));
    let cpp = spawn(&dir.join("spincpp"));
    let mut jit = Running(
        Command::new(dir.join("jitspin"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start jitspin"),
    );
    let mut page = String::new();
    BufReader::new(jit.0.stdout.take().expect("jitspin stdout"))
        .read_line(&mut page)
        .expect("read the JIT page address");
    let page = u64::from_str_radix(page.trim(), 16).expect("hex page address");
    let map = PerfMap(PathBuf::from(format!("/tmp/perf-{}.map", jit.0.id())));
    std::fs::write(&map.0, format!("{page:x} 1000 huatuo_jit_spin\n")).expect("write perf map");

    let config = format!(
        "[ContinuousProfiling]\n    Enable = true\n    Interval = {INTERVAL_S}\n    CPUBudget = 50\n    \
         Processes = [\"gostripped\", \"spincpp\", \"jitspin\"]\n"
    );
    let agent = Agent::start(Setup {
        tag: "profsym",
        rules: "rules",
        config: &config,
        args: &[],
    });
    agent.wait_serving();
    let wanted = [
        ("gostripped;", ";main.hotGoSpin"),
        ("spincpp;", ";huatuo_demo::Spinner::spin(unsigned long)"),
        ("jitspin;", ";huatuo_jit_spin"),
    ];
    let found = |text: &str| {
        wanted.iter().all(|(comm, frame)| {
            text.lines()
                .any(|l| l.starts_with(comm) && l.contains(frame))
        })
    };
    let cpu = wait_until(Duration::from_secs(60), || {
        let text = folded(&agent, "type=cpu");
        found(&text).then_some(text)
    });
    assert!(
        cpu.is_some(),
        "the CPU profile never named all of {wanted:?}:\n{}\nlog:\n{}",
        folded(&agent, "type=cpu")
            .lines()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n"),
        agent.log()
    );
    // The perf map lookups are counted.
    let named = wait_until(Duration::from_secs(10), || {
        let metrics = agent.get("/metrics")?;
        sample_value(
            &metrics,
            "huatuo_bamai_agent_profiling_symbol_frames_total",
            ("source", "perf_map"),
        )
        .filter(|n| *n >= 1.0)
    });
    assert!(named.is_some(), "no perf_map frames counted in /metrics");
    drop(agent);
    drop((go, cpp, jit, map));
}

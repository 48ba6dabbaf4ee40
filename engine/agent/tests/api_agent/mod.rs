//! Helpers of the tests that drive the real agent's HTTP API: an agent over the fixture node
//! (`--no-bpf`) with one event rule firing on a timer, raw HTTP and SSE clients, and the
//! agent's footprint read from /proc.

#![allow(dead_code)]

#[path = "../scrape_common/mod.rs"]
mod scrape_common;

// Not every test including this module uses every helper.
#[allow(unused_imports)]
pub use scrape_common::{ci, free_port, is_root, repo, TempConfig};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tracer name of the test rule's records.
pub const TICK: &str = "api_tick";

/// What differs between the tests' agents.
pub struct Setup<'a> {
    /// Names the scratch directory.
    pub tag: &'a str,
    /// Config text before the `[Storage.LocalFile]` section.
    pub config: &'a str,
    /// How often the test rule fires (`1s`, `100ms`).
    pub every: &'a str,
    /// Where the agent listens; `127.0.0.1:<free port>` when `None`.
    pub listen: Option<SocketAddr>,
    /// Run the agent through this command (e.g. `unshare --net sh -c ...`); `None` runs it
    /// directly.
    pub wrapper: Option<fn(&mut Command) -> Command>,
    /// Soft limit of open files given to the agent.
    pub nofile: Option<u64>,
    /// More rules, written beside the tick rule.
    pub extra_rules: &'a str,
    /// More arguments of `huatuo run`.
    pub extra_args: &'a [&'a str],
    /// The cgroup root the agent reads; the fixture node's when `None`.
    pub cgroup_root: Option<&'a std::path::Path>,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            tag: "api",
            config: "",
            every: "1s",
            listen: None,
            wrapper: None,
            nofile: None,
            extra_rules: "",
            extra_args: &[],
            cgroup_root: None,
        }
    }
}

/// The running agent; killed, then its scratch directory removed, on drop.
pub struct ApiAgent {
    child: Child,
    scratch: TempConfig,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Drop for ApiAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ApiAgent {
    /// Starts `huatuo run` over the fixture node with the tick rule, stderr to `agent.log`.
    pub fn start(setup: Setup) -> ApiAgent {
        let config = format!(
            "{}\n[Pod]\n    KubeletReadOnlyPort = 0\n    KubeletAuthorizedPort = 0\n",
            setup.config
        );
        let scratch = TempConfig::new(setup.tag, &config);
        let rules = scratch.dir.join("rules");
        std::fs::create_dir_all(&rules).expect("rules dir");
        std::fs::create_dir_all(scratch.dir.join("local")).expect("local dir");
        std::fs::write(
            rules.join("tick.hto"),
            format!(
                "event {TICK} {{\n    source proc.loadavg\n    every {}\n    cooldown none\n    \
                 limit 1000 per 1s\n    when load1 >= 0\n    emit load1\n}}\n",
                setup.every
            ),
        )
        .expect("rule");
        std::fs::write(rules.join("extra.hto"), setup.extra_rules).expect("extra rules");
        let addr = setup
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], free_port())));
        let fixture = repo().join("engine/agent/tests/fixtures/node");
        // `HUATUO_BIN` runs another build of the agent (a release build, for timings).
        let binary = std::env::var_os("HUATUO_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_huatuo")));
        let mut command = Command::new(binary);
        command.current_dir(repo()).arg("run").arg("--no-bpf");
        for (flag, dir) in [
            ("--procfs-root", "proc"),
            ("--sysfs-root", "sys"),
            ("--kmsg", "kmsg"),
        ] {
            command.arg(flag).arg(fixture.join(dir));
        }
        command.arg("--cgroup-root").arg(
            setup
                .cgroup_root
                .map_or_else(|| fixture.join("cgroup"), PathBuf::from),
        );
        command
            .arg("--rules")
            .arg(&rules)
            .args(["--stdlib", "stdlib", "--listen"])
            .arg(addr.to_string())
            .arg("--config")
            .arg(&scratch.path)
            .arg("--spool-dir")
            .arg(scratch.dir.join("spool"))
            .args(setup.extra_args);
        let mut command = match setup.wrapper {
            Some(wrap) => wrap(&mut command),
            None => command,
        };
        let log = std::fs::File::create(scratch.dir.join("agent.log")).expect("log file");
        command.stdout(Stdio::null()).stderr(log);
        if let Some(limit) = setup.nofile {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let mut current = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    libc::getrlimit(libc::RLIMIT_NOFILE, &mut current);
                    let wanted = libc::rlimit {
                        rlim_cur: limit.min(current.rlim_max),
                        rlim_max: current.rlim_max,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = command.spawn().expect("start the agent");
        ApiAgent {
            child,
            scratch,
            addr,
        }
    }

    /// The agent's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts the agent as [`ApiAgent::start`] does and waits until it is healthy and ready.
    pub fn start_healthy(setup: Setup) -> ApiAgent {
        let agent = ApiAgent::start(setup);
        agent.wait_healthy();
        agent
    }

    /// Waits until `GET /healthz` answers and `GET /readyz` says the rules run (204), 60 s at
    /// most.
    pub fn wait_healthy(&self) {
        self.wait_ready(&[]);
    }

    /// [`ApiAgent::wait_healthy`], asking `/readyz` with `headers` (a token, where the config
    /// puts `/readyz` behind it).
    pub fn wait_ready(&self, headers: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let healthy = get(self.addr, "/healthz", &[]).is_some_and(|r| r.status == 200);
            if healthy && get(self.addr, "/readyz", headers).is_some_and(|r| r.status == 204) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("the agent never became ready\nlog:\n{}", self.log());
    }

    /// What the agent wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.dir.join("agent.log")).unwrap_or_default()
    }

    /// The scratch directory (config, rules, records, log).
    pub fn dir(&self) -> PathBuf {
        self.scratch.dir.clone()
    }

    /// The config file it was started with.
    pub fn config_path(&self) -> PathBuf {
        self.scratch.path.clone()
    }

    /// Records of the tick rule stored so far.
    pub fn stored(&self) -> usize {
        self.stored_of(TICK)
    }

    /// Records of tracer `name` stored so far.
    pub fn stored_of(&self, name: &str) -> usize {
        std::fs::read_to_string(self.scratch.dir.join("local").join(name))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with('{'))
            .count()
    }

    /// A `VmRSS`/`VmHWM`-style field of /proc/<pid>/status, in kB.
    pub fn status_kb(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Files the agent holds open.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// The value of an unlabelled series of `/metrics`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let body = get(self.addr, "/metrics", &[])?.body;
        sample(&body, name)
    }

    /// Sends SIGTERM and waits up to `within` for the exit; `Some(elapsed)` when it exited.
    pub fn terminate(&mut self, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid() as i32, libc::SIGTERM);
        }
        while start.elapsed() < within {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// The value of the first series of `name` in a metrics text whose labels contain `labels`
/// (the agent adds `host` and `region` to each).
pub fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let value = if rest.starts_with('{') {
            rest.split_once("} ")?.1
        } else {
            rest.strip_prefix(' ')?
        };
        value.trim().parse().ok()
    })
}

/// A response: status, headers as read, body.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The header block.
    pub head: String,
    /// The body.
    pub body: String,
}

/// One `GET path` with extra header lines, read to the end; `None` when it fails.
pub fn get(addr: SocketAddr, path: &str, headers: &[&str]) -> Option<Response> {
    request(addr, "GET", path, headers, "")
}

/// One request (`Connection: close`), read to the end; `None` when it fails.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> Option<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut lines = vec!["Connection: close"];
    lines.extend_from_slice(headers);
    let text = request_text(addr, method, path, &lines, body);
    stream.write_all(text.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    parse(&String::from_utf8_lossy(&raw))
}

/// An HTTP/1.1 request with `Host`, `Content-Length`, the extra header lines and `body`.
fn request_text(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> String {
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text.push_str(body);
    text
}

fn parse(raw: &str) -> Option<Response> {
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(Response {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

/// An open `POST /v1/events/watch` stream.
pub struct Watch {
    reader: BufReader<TcpStream>,
    /// Status code of the response.
    pub status: u16,
}

/// One SSE frame: its `event:` (empty for data events), `id:` and `data:`.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    /// `event:` name.
    pub event: String,
    /// `id:`.
    pub id: String,
    /// `data:`.
    pub data: String,
}

impl Watch {
    /// Opens a watch with `body` and extra header lines; reads the response head.
    pub fn open(addr: SocketAddr, body: &str, headers: &[&str]) -> std::io::Result<Watch> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let text = request_text(addr, "POST", "/v1/events/watch", headers, body);
        stream.write_all(text.as_bytes())?;
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line)?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
        }
        Ok(Watch { reader, status })
    }

    /// The next frame (skipping `: ping` comments and chunk framing), `None` at the end of the
    /// stream or after the read timeout.
    pub fn next_frame(&mut self) -> Option<Frame> {
        let mut frame = Frame::default();
        let mut any = false;
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if let Some(v) = line.strip_prefix("event:") {
                frame.event = v.trim().to_string();
                any = true;
            } else if let Some(v) = line.strip_prefix("id:") {
                frame.id = v.trim().to_string();
                any = true;
            } else if let Some(v) = line.strip_prefix("data:") {
                frame.data = v.trim().to_string();
                any = true;
            } else if line.is_empty() && any {
                return Some(frame);
            }
        }
    }

    /// The socket, to shape it (read timeout) or shut it.
    pub fn socket(&self) -> &TcpStream {
        self.reader.get_ref()
    }
}

/// Waits up to `within` for `probe` to hold, polling every 100 ms; whether it held.
pub fn eventually(within: Duration, mut probe: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if probe() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    probe()
}

//! Hot reload against the real agent: `POST /v1/rules/reload`, `huatuo reload` and SIGHUP
//! apply a good set (state of unchanged rules kept), refuse a bad one with the diagnostics of
//! `huatuo check` (the running set unchanged), read the token file again and say which
//! config keys need a restart; `/readyz` is 503 while templates load; `huatuo watch` prints
//! events and resumes after a disconnect.

mod api_agent;

use api_agent::{eventually, get, request, ApiAgent, Setup, TICK};
use serde_json::Value as Json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn json_of(body: &str) -> Json {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn status(agent: &ApiAgent, headers: &[&str]) -> Json {
    let reply = get(agent.addr, "/status", headers).expect("GET /status");
    assert_eq!(reply.status, 200, "{}", reply.body);
    json_of(&reply.body)
}

fn reload(agent: &ApiAgent, headers: &[&str]) -> (u16, Json) {
    let reply = request(agent.addr, "POST", "/v1/rules/reload", headers, "").expect("reload");
    (reply.status, json_of(&reply.body))
}

fn rule_file(agent: &ApiAgent, name: &str) -> std::path::PathBuf {
    agent.dir().join("rules").join(name)
}

/// An event rule on the fixture's load average: fires at every sample, `cooldown` apart.
fn event_rule(name: &str, cooldown: &str, emit: &str) -> String {
    format!(
        "event {name} {{\n    source proc.loadavg\n    every 100ms\n    cooldown {cooldown}\n    \
         when load1 >= 0\n    emit {emit}\n}}\n"
    )
}

fn huatuo(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_huatuo"))
        .current_dir(api_agent::repo())
        .args(args)
        .output()
        .expect("run huatuo")
}

/// The (path, line, col, code) of each diagnostic, in order.
fn places(diags: &[Json]) -> Vec<[&Json; 4]> {
    diags
        .iter()
        .map(|d| [&d["path"], &d["line"], &d["col"], &d["code"]])
        .collect()
}

#[test]
fn a_bad_set_is_refused_with_its_diagnostics_and_a_good_one_is_applied() {
    let agent = ApiAgent::start_healthy(Setup {
        tag: "reload-good-bad",
        every: "100ms",
        ..Setup::default()
    });
    let before = status(&agent, &[]);
    assert_eq!(before["rule_set"]["generation"], 1, "{before}");
    assert!(before["rule_set"]["loaded_at"].is_string());

    // A rule with an unknown field, line 4 column 10: refused, nothing changes.
    let bad = "event api_bad {\n    source proc.loadavg\n    every 100ms\n    when nosuchfield > 1\n    emit load1\n}\n";
    std::fs::write(rule_file(&agent, "bad.hto"), bad).expect("write bad rule");
    let (code, body) = reload(&agent, &[]);
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["error"]["code"], "rules_invalid");
    let diags = body["error"]["diagnostics"]
        .as_array()
        .expect("diagnostics");
    let place = diags
        .iter()
        .find(|d| d["path"].as_str().is_some_and(|p| p.ends_with("bad.hto")))
        .unwrap_or_else(|| panic!("no diagnostic in bad.hto: {body}"));
    assert_eq!(
        (place["line"].as_u64(), place["col"].as_u64()),
        (Some(4), Some(10))
    );
    // `huatuo check` says the same about the same place.
    let rules = agent.dir().join("rules");
    let check = huatuo(&[
        "check",
        "--format",
        "json",
        "--stdlib",
        "stdlib",
        rules.to_str().expect("utf-8"),
    ]);
    let checked = json_of(&String::from_utf8_lossy(&check.stdout));
    let checked = checked.as_array().expect("array");
    assert_eq!(places(diags), places(checked));
    // The CLI prints them as path:line:col and fails.
    let addr = agent.addr.to_string();
    let cli = huatuo(&["reload", "--addr", &addr]);
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert_eq!(cli.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bad.hto:4:10: error["), "{stderr}");
    let after = status(&agent, &[]);
    assert_eq!(after["rule_set"]["generation"], 1);
    assert_eq!(after["rule_set"]["last_reload"]["result"], "error");
    assert!(
        after["rule_set"]["last_reload"]["diagnostics"].is_array(),
        "{after}"
    );
    let running = agent.stored();
    assert!(
        eventually(Duration::from_secs(10), || agent.stored() > running + 2),
        "the running set kept producing"
    );
    assert!(agent.log().contains("reload refused"), "{}", agent.log());

    // Fixed: a new rule joins, the tick rule keeps its state.
    std::fs::write(
        rule_file(&agent, "bad.hto"),
        event_rule("api_new", "none", "load1"),
    )
    .expect("write good rule");
    let cli = huatuo(&["reload", "--addr", &addr]);
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert_eq!(
        cli.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(stdout.contains("generation 2"), "{stdout}");
    assert!(
        stdout.contains(&format!("rules kept (state carried): {TICK}")),
        "{stdout}"
    );
    assert!(stdout.contains("rules started fresh: api_new"), "{stdout}");
    assert!(
        eventually(Duration::from_secs(10), || agent.stored_of("api_new") > 0),
        "the new rule produces records\n{}",
        agent.log()
    );
    let after = status(&agent, &[]);
    assert_eq!(after["rule_set"]["generation"], 2);
    assert_eq!(after["rule_set"]["last_reload"]["result"], "ok");
    let names: Vec<&str> = after["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(names.contains(&"api_new"), "{after}");
}

/// Writes `quiet.hto` after `lead`: `api_quiet` (emits load1) then `api_edited` (emits
/// `edited_emits`), both with a 1 h cooldown.
fn write_quiet_rules(agent: &ApiAgent, lead: &str, edited_emits: &str) {
    std::fs::write(
        rule_file(agent, "quiet.hto"),
        format!(
            "{lead}{}{}",
            event_rule("api_quiet", "1h", "load1"),
            event_rule("api_edited", "1h", edited_emits)
        ),
    )
    .expect("rules");
}

#[test]
fn a_cooldown_keeps_suppressing_after_a_reload_that_changed_another_rule() {
    let agent = ApiAgent::start(Setup {
        tag: "reload-state",
        every: "100ms",
        ..Setup::default()
    });
    write_quiet_rules(&agent, "", "load1");
    // Reload so the two rules run (the agent started before they were written).
    agent.wait_healthy();
    let (code, body) = reload(&agent, &[]);
    assert_eq!(code, 200, "{body}");
    assert!(
        eventually(Duration::from_secs(10), || agent.stored_of("api_quiet")
            == 1
            && agent.stored_of("api_edited") == 1),
        "both fired once"
    );
    // api_edited changes (moved down a line, too); api_quiet is only moved.
    write_quiet_rules(&agent, "\n", "load1, load5");
    let (code, body) = reload(&agent, &[]);
    assert_eq!(code, 200, "{body}");
    let kept = body["data"]["rules"]["kept"].to_string();
    assert!(
        kept.contains("api_quiet") && !kept.contains("api_edited"),
        "{body}"
    );
    assert!(
        eventually(Duration::from_secs(10), || agent.stored_of("api_edited")
            == 2),
        "the changed rule starts fresh and fires again"
    );
    let ticks = agent.stored();
    assert!(eventually(Duration::from_secs(5), || agent.stored() > ticks + 5));
    assert_eq!(
        agent.stored_of("api_quiet"),
        1,
        "the unchanged rule is still in its cooldown"
    );
    let counters = &status(&agent, &[])["rules"];
    let quiet = counters
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["name"] == "api_quiet")
        .expect("api_quiet in /status")
        .clone();
    assert!(
        quiet.to_string().contains("suppressed_by_cooldown"),
        "{quiet}"
    );
}

#[test]
fn sighup_reloads_and_the_token_file_is_read_again() {
    let scratch = std::env::temp_dir().join(format!("huatuo-reload-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("dir");
    let tokens = scratch.join("tokens");
    let first = "first-token-0123456789";
    let second = "second-token-0123456789";
    write_private(&tokens, first);
    let config = format!("[APIServer]\n    TokenFile = \"{}\"\n", tokens.display());
    let agent = ApiAgent::start_healthy(Setup {
        tag: "reload-tokens",
        config: &config,
        every: "100ms",
        ..Setup::default()
    });
    let bearer = |t: &str| format!("Authorization: Bearer {t}");
    let (a, b) = (bearer(first), bearer(second));
    assert_eq!(
        get(agent.addr, "/status", &[&b]).map(|r| r.status),
        Some(401)
    );
    assert_eq!(status(&agent, &[&a])["rule_set"]["generation"], 1);
    // Without a token the reload route is refused.
    assert_eq!(reload(&agent, &[]).0, 401);

    write_private(&tokens, second);
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(agent.pid() as i32, libc::SIGHUP);
    }
    assert!(
        eventually(Duration::from_secs(10), || get(
            agent.addr,
            "/status",
            &[&b]
        )
        .is_some_and(
            |r| r.status == 200 && json_of(&r.body)["rule_set"]["generation"] == 2
        )),
        "SIGHUP reloaded and the new token works\n{}",
        agent.log()
    );
    assert_eq!(
        get(agent.addr, "/status", &[&a]).map(|r| r.status),
        Some(401)
    );
    assert!(agent.log().contains("SIGHUP: reloading"));
    assert!(!agent.log().contains(first) && !agent.log().contains(second));

    // A changed key that only takes effect at start is reported, not silently ignored.
    let text = std::fs::read_to_string(agent.config_path()).expect("config");
    std::fs::write(
        agent.config_path(),
        text.replace("[APIServer]\n", "[APIServer]\n    MaxConnections = 77\n"),
    )
    .expect("config");
    // So is a source the agent did not read at start (its readers are fixed then).
    std::fs::write(
        rule_file(&agent, "kmsg.hto"),
        "event api_lockup {\n    source kmsg\n    where priority <= 3\n    emit message\n}\n",
    )
    .expect("rule");
    let (code, body) = reload(&agent, &[&b]);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["generation"], 3);
    assert_eq!(body["data"]["tokens"], 1);
    let restart = body["data"]["needs_restart"].to_string();
    assert!(
        restart.contains("config key APIServer.MaxConnections"),
        "{body}"
    );
    assert!(
        restart.contains("source kmsg (not read since start)"),
        "{body}"
    );
    assert!(!restart.contains("TokenFile"), "{body}");
    let _ = std::fs::remove_dir_all(&scratch);
}

fn write_private(path: &Path, token: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("{token}\n")).expect("token file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

#[test]
fn readyz_is_503_while_templates_load_then_204() {
    let agent = ApiAgent::start(Setup {
        tag: "reload-readyz",
        extra_args: &["--test-start-delay-ms", "1500"],
        ..Setup::default()
    });
    // Poll from the moment the port opens.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(reply) = get(agent.addr, "/readyz", &[]) {
            if seen.last() != Some(&reply.status) {
                seen.push(reply.status);
            }
            if reply.status == 204 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(seen, vec![503, 204], "{}", agent.log());
    assert_eq!(
        get(agent.addr, "/healthz", &[]).map(|r| r.status),
        Some(200)
    );
}

/// A TCP proxy in front of `target` whose connections the test can cut.
struct Proxy {
    addr: SocketAddr,
    cut: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let cut = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = cut.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                if let Ok(mut held) = held.lock() {
                    held.extend(client.try_clone().ok());
                    held.extend(server.try_clone().ok());
                }
                pipe(
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                pipe(server, client);
            }
        });
        Proxy { addr, cut }
    }

    /// Shuts every connection made so far.
    fn cut(&self) {
        for stream in self.cut.lock().expect("lock").drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

#[test]
fn huatuo_watch_prints_events_and_resumes_after_a_disconnect() {
    let agent = ApiAgent::start_healthy(Setup {
        tag: "reload-watch",
        every: "100ms",
        ..Setup::default()
    });
    let proxy = Proxy::start(agent.addr);
    let addr = proxy.addr.to_string();
    let mut watch = Command::new(env!("CARGO_BIN_EXE_huatuo"))
        .args([
            "watch",
            "--json",
            "--tracer",
            "^api_tick$",
            "--count",
            "40",
            "--addr",
            &addr,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("huatuo watch");
    std::thread::sleep(Duration::from_millis(1500));
    proxy.cut();
    let deadline = Instant::now() + Duration::from_secs(30);
    let exited = loop {
        match watch.try_wait() {
            Ok(Some(status)) => break Some(status),
            _ if Instant::now() > deadline => break None,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    if exited.is_none() {
        let _ = watch.kill();
    }
    let output = watch.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(exited.is_some_and(|s| s.success()), "{stderr}");
    assert!(
        stderr.contains("reconnecting"),
        "the stream was cut: {stderr}"
    );
    let ids: Vec<u64> = stdout
        .lines()
        .map(|line| {
            let event = json_of(line);
            assert_eq!(event["data"]["tracer_name"], TICK);
            let id = event["id"].as_str().expect("id").to_string();
            id.rsplit('-')
                .next()
                .and_then(|s| s.parse().ok())
                .expect("sequence")
        })
        .collect();
    assert_eq!(ids.len(), 40, "{stdout}");
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "every event once, in order, across the reconnect: {ids:?}"
    );

    // The table form names the tracer and the host.
    let table = Command::new(env!("CARGO_BIN_EXE_huatuo"))
        .args(["watch", "--count", "2", "--addr", &agent.addr.to_string()])
        .output()
        .expect("huatuo watch");
    let text = String::from_utf8_lossy(&table.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("TIME") && lines[0].contains("TRACER"),
        "{text}"
    );
    assert!(
        lines[1].contains(TICK) && lines[1].contains("load1"),
        "{text}"
    );
}

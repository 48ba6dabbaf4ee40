//! Headless Chromium driven over the DevTools protocol, for the console tests: open a page,
//! evaluate script in it, wait for a condition, take a screenshot, and collect every script
//! error and `console.error` the page produced.

#![allow(dead_code)]

use base64::Engine as _;
use serde_json::{json, Value as Json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::WebSocket;

/// The Chromium binary the Debian package installs.
pub const CHROMIUM: &str = "chromium";

/// Whether Chromium is installed.
pub fn available() -> bool {
    Command::new(CHROMIUM)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A running headless Chromium with one page attached; killed and its profile removed on drop.
pub struct Browser {
    child: Process,
    profile: PathBuf,
    socket: WebSocket<TcpStream>,
    next_id: u64,
    /// Script errors and `console.error` messages seen so far.
    pub errors: Vec<String>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// One GET to Chromium's DevTools HTTP endpoint (it keeps the connection open: the body is
/// read by its Content-Length).
fn http_get(port: u16, path: &str) -> Option<String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    (&stream)
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .ok()?;
    let mut reader = BufReader::new(&stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    String::from_utf8(body).ok()
}

/// Kills Chromium if the start fails half-way.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Browser {
    /// Starts Chromium headless with a fresh profile and attaches to its page.
    pub fn start(tag: &str) -> Browser {
        let profile =
            std::env::temp_dir().join(format!("huatuo-chromium-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        // Chromium names its DevTools port on stderr; the rest of stderr is drained in the
        // background so it never blocks.
        let stderr = child.stderr.take().expect("stderr");
        let child = Process(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let browser_url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("chromium announces its DevTools endpoint within 30 s");
        let port: u16 = browser_url
            .trim_start_matches("ws://127.0.0.1:")
            .split('/')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("DevTools port");
        let deadline = Instant::now() + Duration::from_secs(15);
        let page_url = loop {
            let targets: Json = http_get(port, "/json/list")
                .and_then(|b| serde_json::from_str(&b).ok())
                .unwrap_or(Json::Null);
            let page = targets.as_array().and_then(|t| {
                t.iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_string))
            });
            if let Some(url) = page {
                break url;
            }
            assert!(Instant::now() < deadline, "chromium shows no page target");
            std::thread::sleep(Duration::from_millis(100));
        };
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect DevTools");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let (socket, _) =
            tungstenite::client(page_url.as_str(), stream).expect("DevTools handshake");
        let mut browser = Browser {
            child,
            profile,
            socket,
            next_id: 0,
            errors: Vec::new(),
        };
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            browser.call(domain, json!({}));
        }
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        );
        browser
    }

    /// Sends one command and returns its result, recording the events that arrive meanwhile.
    pub fn call(&mut self, method: &str, params: Json) -> Json {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.socket
            .send(tungstenite::Message::text(message))
            .expect("send to DevTools");
        loop {
            let message = self.socket.read().expect("read from DevTools");
            let Ok(text) = message.to_text() else {
                continue;
            };
            let Ok(value) = serde_json::from_str::<Json>(text) else {
                continue;
            };
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method}: {value}");
                return value["result"].clone();
            }
            self.note(&value);
        }
    }

    fn note(&mut self, event: &Json) {
        let params = &event["params"];
        match event["method"].as_str() {
            Some("Runtime.exceptionThrown") => self.errors.push(format!(
                "exception: {}",
                params["exceptionDetails"]["exception"]["description"]
                    .as_str()
                    .unwrap_or_else(|| params["exceptionDetails"]["text"].as_str().unwrap_or("?"))
            )),
            Some("Runtime.consoleAPICalled") if params["type"] == "error" => self
                .errors
                .push(format!("console.error: {}", params["args"])),
            Some("Log.entryAdded") if params["entry"]["level"] == "error" => {
                self.errors.push(format!(
                    "log: {} {}",
                    params["entry"]["text"], params["entry"]["url"]
                ))
            }
            _ => {}
        }
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value.
    pub fn eval(&mut self, expression: &str) -> Json {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(details) = result.get("exceptionDetails") {
            panic!("evaluating {expression}: {details}");
        }
        result["result"]["value"].clone()
    }

    /// Polls `expression` every 50 ms until it is truthy (an exception counts as false: the
    /// page may still be loading); the time it took, or `None` after `within`.
    pub fn wait_for(&mut self, expression: &str, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        loop {
            let result = self.call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            );
            let value = result["result"]["value"].clone();
            if !(value.is_null() || value == false || value == "" || value == 0) {
                return Some(start.elapsed());
            }
            if start.elapsed() > within {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Loads `url` (a full load, even when only the fragment differs).
    pub fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": "about:blank"}));
        self.call("Page.navigate", json!({"url": url}));
    }

    /// Writes a PNG of the page's viewport to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

/// Where a test writes its screenshots: `target/console-screenshots/`, and with
/// `HUATUO_UPDATE_SCREENSHOTS=1` also `docs/console/` (the committed ones).
pub fn screenshot_paths(name: &str) -> Vec<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"));
    let mut paths = vec![target
        .join("console-screenshots")
        .join(format!("{name}.png"))];
    if std::env::var_os("HUATUO_UPDATE_SCREENSHOTS").is_some() {
        paths.push(repo.join("docs/console").join(format!("{name}.png")));
    }
    paths
}

/// True when the browser tests should run: Chromium is there, or `ci` (`CI=true`) makes
/// them fail without it.
pub fn enabled(test: &str, ci: bool) -> bool {
    if available() {
        return true;
    }
    assert!(
        !ci,
        "{test}: chromium is not installed (scripts/deps.sh --test installs it)"
    );
    println!("SKIPPED: {test} needs chromium (scripts/deps.sh --test installs it)");
    false
}

/// Writes a screenshot of the page as `<name>.png` where [`screenshot_paths`] says.
pub fn shoot(browser: &mut Browser, name: &str) {
    for path in screenshot_paths(name) {
        browser.screenshot(&path);
    }
}

/// Waits until the page has shown its data; panics with the page's error box otherwise.
pub fn ready(browser: &mut Browser, page: &str) {
    let expression = format!(
        "document.body?.dataset.page === '{page}' && document.body.dataset.ready === 'yes'"
    );
    if browser
        .wait_for(&expression, Duration::from_secs(15))
        .is_none()
    {
        panic!(
            "{page} never became ready: {}",
            browser.eval("document.querySelector('#error')?.textContent")
        );
    }
    let error = browser.eval("document.querySelector('#error').hidden ? '' : document.querySelector('#error').textContent");
    assert_eq!(error, "", "{page} shows an error");
}

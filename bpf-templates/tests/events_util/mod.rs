//! Helpers of the event-template kernel tests: loading a template with a threshold, waiting
//! for a matching event or draining them all, child processes killed on drop.
#![allow(dead_code)]

use huatuo_dsl::value::{Sample, Value};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::Receiver;

/// Receives samples until one matches `pred` or `timeout` passes; returns it and every
/// sample seen (for failure messages).
pub fn wait_for(
    rx: &mut Receiver<Sample>,
    timeout: Duration,
    pred: impl Fn(&Sample) -> bool,
) -> (Option<Sample>, Vec<Sample>) {
    let deadline = Instant::now() + timeout;
    let mut seen = vec![];
    while Instant::now() < deadline {
        match rx.try_recv() {
            Ok(sample) => {
                if pred(&sample) {
                    return (Some(sample), seen);
                }
                if seen.len() < 10_000 {
                    seen.push(sample);
                }
            }
            Err(TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(10)),
            Err(TryRecvError::Disconnected) => break,
        }
    }
    (None, seen)
}

/// An integer field of a sample.
pub fn int(sample: &Sample, field: &str) -> Option<i64> {
    match sample.fields.get(field) {
        Some(Value::Int(v)) => Some(*v),
        _ => None,
    }
}

/// A string field of a sample.
pub fn text<'a>(sample: &'a Sample, field: &str) -> Option<&'a str> {
    sample.fields.get(field).and_then(Value::as_str)
}

/// A child process killed and reaped on drop.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Spawns `sh -c script`.
    pub fn shell(script: &str) -> ChildGuard {
        ChildGuard(
            Command::new("sh")
                .args(["-c", script])
                .spawn()
                .expect("spawn sh"),
        )
    }

    /// Pid of the child.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits up to `timeout` for the child to exit; true when it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of an enumerator of the running kernel's BTF (`bpftool` dump), for asserting
/// kernel-specific numbering such as `enum skb_drop_reason`.
pub fn kernel_enum_value(name: &str) -> Option<i64> {
    let out = Command::new("bpftool")
        .args([
            "btf",
            "dump",
            "file",
            "/sys/kernel/btf/vmlinux",
            "format",
            "c",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find_map(|line| {
        let (lhs, rhs) = line.trim().trim_end_matches(',').split_once(" = ")?;
        (lhs == name).then(|| rhs.parse().ok())?
    })
}

/// Loads `template` with its `threshold_ns` tunable set; asserts it loaded.
pub fn load_with_threshold(template: &str, threshold_ns: u64) -> huatuo_bpf::Templates {
    let tunables = std::collections::BTreeMap::from([(
        template.to_string(),
        std::collections::BTreeMap::from([("threshold_ns".to_string(), threshold_ns)]),
    )]);
    let templates = huatuo_bpf::Templates::load(&[template], &tunables);
    assert!(templates.status()[0].loaded, "{:#?}", templates.status());
    templates
}

/// Every event the templates emit during `wait`.
pub fn drain(templates: &mut huatuo_bpf::Templates, wait: Duration) -> Vec<Sample> {
    let mut rx = templates.take_events().expect("event stream");
    drain_rx(&mut rx, wait)
}

/// Every event arriving on `rx` during `wait`.
pub fn drain_rx(rx: &mut Receiver<Sample>, wait: Duration) -> Vec<Sample> {
    let deadline = Instant::now() + wait;
    let mut out = vec![];
    while Instant::now() < deadline {
        while let Ok(sample) = rx.try_recv() {
            out.push(sample);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    out
}

/// Loopback TCP senders and receivers, stopped on drop.
pub struct Flood(Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>);

impl Flood {
    /// Starts `pairs` sender/receiver pairs over loopback TCP.
    pub fn start(pairs: usize) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = vec![];
        for _ in 0..pairs {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
            let mut tx = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
            let (mut rx, _) = listener.accept().expect("accept");
            let _ = rx.set_read_timeout(Some(Duration::from_millis(200)));
            let (s1, s2) = (stop.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let buf = vec![0u8; 1 << 16];
                while !s1.load(Ordering::Relaxed) && tx.write_all(&buf).is_ok() {}
            }));
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while !s2.load(Ordering::Relaxed) && rx.read(&mut buf).is_ok_and(|n| n > 0) {}
            }));
        }
        Flood(stop, threads)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        for t in self.1.drain(..) {
            let _ = t.join();
        }
    }
}

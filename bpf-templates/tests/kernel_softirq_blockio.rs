//! Kernel tests: softirq_latency sees NET_RX raises from loopback traffic; blockio sees q2c
//! and d2c for O_DIRECT writes to a loop device the test creates (and removes), and the
//! flush histogram for its fsyncs.

mod common;

use common::kernel_ready;
use huatuo_bpf::schema::AttachKind;
use huatuo_bpf::{LoadOptions, Templates};
use huatuo_dsl::value::{Sample, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Command;

fn hist_total(samples: &[Sample], labels: &[(&str, &str)], field: &str) -> u64 {
    samples
        .iter()
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .filter_map(|s| match s.fields.get(field) {
            Some(Value::Hist(h)) => Some(h.count_between(0, u64::MAX)),
            _ => None,
        })
        .sum()
}

fn assert_attached_tp_btf(templates: &Templates) {
    for st in templates.status() {
        assert!(st.loaded, "{st:#?}");
        for p in st.programs.iter().filter(|p| p.required) {
            assert_eq!(
                p.attached_variant().map(|v| v.kind),
                Some(AttachKind::TpBtf),
                "{p:#?}"
            );
        }
    }
}

#[test]
fn softirq_latency_counts_net_rx_per_cpu() {
    if !kernel_ready("softirq_latency_counts_net_rx_per_cpu") {
        return;
    }
    let templates = Templates::load(&["softirq_latency"], &BTreeMap::new());
    assert_attached_tp_btf(&templates);
    let before = templates.read_histograms();
    // Every sample names its CPU and one of the two types.
    assert!(!before.is_empty());
    for s in &before {
        assert!(s.labels.contains_key("cpuid"), "{s:?}");
        assert!(
            ["NET_RX", "NET_TX"].contains(&s.labels["type"].as_str()),
            "{s:?}"
        );
    }
    let rx_before = hist_total(&before, &[("type", "NET_RX")], "latency");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = peer.local_addr().expect("addr");
    for _ in 0..2000 {
        let _ = socket.send_to(b"huatuo", addr);
    }
    let after = templates.read_histograms();
    let rx_after = hist_total(&after, &[("type", "NET_RX")], "latency");
    // Loopback delivers through the NET_RX softirq; some raises are batched into one entry.
    assert!(
        rx_after > rx_before + 50,
        "NET_RX {rx_before} -> {rx_after}"
    );
}

/// A loop device on a temporary file, detached and removed on drop.
struct LoopDevice {
    file: PathBuf,
    dev: String,
}

impl LoopDevice {
    fn create() -> Option<LoopDevice> {
        // one image per device: the tests of this file run in parallel
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file =
            std::env::temp_dir().join(format!("huatuo-blockio-{}-{n}.img", std::process::id()));
        std::fs::File::create(&file).ok()?.set_len(64 << 20).ok()?;
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&file)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("losetup failed: {}", String::from_utf8_lossy(&out.stderr));
            let _ = std::fs::remove_file(&file);
            return None;
        }
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Some(LoopDevice { file, dev })
    }

    /// `major:minor` of the device.
    fn major_minor(&self) -> String {
        use std::os::unix::fs::MetadataExt;
        let rdev = std::fs::metadata(&self.dev).expect("stat loop").rdev();
        format!("{}:{}", libc::major(rdev), libc::minor(rdev))
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
        let _ = std::fs::remove_file(&self.file);
    }
}

#[repr(align(4096))]
struct Block([u8; 4096]);

#[test]
fn blockio_sees_q2c_and_d2c_of_direct_writes() {
    if !kernel_ready("blockio_sees_q2c_and_d2c_of_direct_writes") {
        return;
    }
    let templates = Templates::load(&["bpf.blockio"], &BTreeMap::new());
    assert_attached_tp_btf(&templates);
    // This kernel passes (rq): the one-argument programs attach, the (q, rq) ones are skipped.
    for p in templates.status()[0].programs.iter().take(2) {
        let attached = p.attached_variant().expect("attached");
        assert!(!attached.prog.ends_with("_q"), "{p:#?}");
    }
    direct_writes_are_counted(&templates);
}

/// The raw tracepoint programs (kernels without BTF for tp_btf) count the same writes.
#[test]
fn blockio_raw_tp_variant_sees_q2c_and_d2c() {
    if !kernel_ready("blockio_raw_tp_variant_sees_q2c_and_d2c") {
        return;
    }
    let options = LoadOptions {
        excluded_kinds: vec![AttachKind::TpBtf],
        ..LoadOptions::default()
    };
    let templates = Templates::load_with(&["bpf.blockio"], &BTreeMap::new(), options);
    let st = &templates.status()[0];
    assert!(st.loaded, "{st:#?}");
    for p in st.programs.iter().filter(|p| p.required) {
        let attached = p.attached_variant().expect("attached");
        assert_eq!(attached.kind, AttachKind::RawTp, "{p:#?}");
        assert!(!attached.prog.ends_with("_q"), "{p:#?}");
    }
    direct_writes_are_counted(&templates);
}

/// 200 O_DIRECT 4 KiB writes to a fresh loop device show up as q2c and d2c of its disk.
/// The tests run in parallel, each with its own template instance and device.
fn direct_writes_are_counted(templates: &Templates) {
    let Some(device) = LoopDevice::create() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("cannot create a loop device");
        }
        eprintln!("SKIP blockio: no loop device");
        return;
    };
    let disk = device.major_minor();
    // The device number may have served another test's device just before: count from here.
    let before = templates.read_histograms();
    let q2c_before = hist_total(&before, &[("disk", &disk)], "q2c");
    let d2c_before = hist_total(&before, &[("disk", &disk)], "d2c");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&device.dev)
        .expect("open loop device O_DIRECT");
    let block = Block([0x5a; 4096]);
    for _ in 0..200 {
        file.write_all(&block.0).expect("direct write");
    }
    file.sync_all().expect("sync");
    drop(file);
    let samples = templates.read_histograms();
    let q2c = hist_total(&samples, &[("disk", &disk)], "q2c") - q2c_before;
    let d2c = hist_total(&samples, &[("disk", &disk)], "d2c") - d2c_before;
    // Each 4 KiB O_DIRECT write is one request (merges can only lower the count).
    assert!(
        (20..=220).contains(&q2c),
        "q2c count {q2c} for {disk}: {samples:?}"
    );
    assert!((20..=220).contains(&d2c), "d2c count {d2c} for {disk}");
}

/// Every fsync of a written loop device sends one cache flush request (a loop device has a
/// write cache when its backing file can be synced): 30 write+fsync pairs show up as at least
/// 30 flush latencies of that disk, and no flush is counted for O_DIRECT writes alone.
#[test]
fn blockio_counts_flush_requests_of_fsync() {
    if !kernel_ready("blockio_counts_flush_requests_of_fsync") {
        return;
    }
    let templates = Templates::load(&["bpf.blockio"], &BTreeMap::new());
    assert_attached_tp_btf(&templates);
    let Some(device) = LoopDevice::create() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("cannot create a loop device");
        }
        eprintln!("SKIP blockio flush: no loop device");
        return;
    };
    let disk = device.major_minor();
    let flushes = |templates: &Templates| {
        hist_total(&templates.read_histograms(), &[("disk", &disk)], "flush")
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&device.dev)
        .expect("open loop device O_DIRECT");
    let block = Block([0x5a; 4096]);
    let before = flushes(&templates);
    for _ in 0..50 {
        file.write_all(&block.0).expect("direct write");
    }
    let writes_only = flushes(&templates) - before;
    assert_eq!(writes_only, 0, "flushes counted for plain writes of {disk}");
    for _ in 0..30 {
        file.write_all(&block.0).expect("direct write");
        file.sync_all().expect("fsync");
    }
    drop(file);
    let synced = flushes(&templates) - before;
    // One flush per fsync; the block layer may add one for the close, never fewer.
    assert!(
        (30..=40).contains(&synced),
        "flush count {synced} for {disk}"
    );
}

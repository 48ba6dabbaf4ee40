//! On the real kernel, as root: `huatuo run` serves host families from the real /proc and the
//! run-queue latency histograms move under a CPU-bound load. Skips with a message when not
//! root, unless CI=true.

mod scrape_common;

use scrape_common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Sum of every `runqlat_latency` zone of the host.
fn runqlat_total(body: &str) -> u64 {
    body.lines()
        .filter(|l| l.starts_with("huatuo_bamai_runqlat_latency{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Busy threads that stop when dropped.
struct Load(Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>);

impl Drop for Load {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        for handle in self.1.drain(..) {
            let _ = handle.join();
        }
    }
}

fn cpu_load(threads: usize) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let handles = (0..threads)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            })
        })
        .collect();
    Load(stop, handles)
}

#[test]
fn host_families_and_runqlat_move_under_load() {
    if !is_root() {
        assert!(!ci(), "CI=true but this test needs root");
        eprintln!("skipping metrics_live: needs root for the kernel templates");
        return;
    }
    let config = TempConfig::new("metrics-live", "[Storage.ES]\n    Address = \"\"\n");
    let port = free_port();
    let args: Vec<std::ffi::OsString> = [
        "--rules",
        "rules/metrics",
        "--stdlib",
        "stdlib",
        "--run-for",
        "60",
    ]
    .iter()
    .map(|a| a.into())
    .collect();
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let _agent = start_agent(port, &config.path, &args);
    let families = [
        "huatuo_bamai_loadavg_load1{",
        "huatuo_bamai_cpu_util_total{",
        "huatuo_bamai_sockstat_sockets_used{",
        "huatuo_bamai_netdev_receive_bytes_total{",
    ];
    // cpu_util needs two reads of /proc/stat (a delta): up to two poll intervals.
    let first = scrape_until(port, Duration::from_secs(30), |b| {
        runqlat_total(b) > 0 && families.iter().all(|f| b.contains(f))
    });
    for family in families {
        assert!(first.contains(family), "{family} missing:\n{first}");
    }
    let before = runqlat_total(&first);
    assert!(before > 0, "runqlat histogram never read:\n{first}");
    // Four busy threads on two CPUs queue behind each other: many more switches, and waits.
    let load = cpu_load(4);
    let after_body = scrape_until(port, Duration::from_secs(25), |b| runqlat_total(b) > before);
    drop(load);
    let after = runqlat_total(&after_body);
    assert!(after > before, "runqlat did not move: {before} -> {after}");
    // Waits of more than 10 ms (zones 1..3) appear with 2 runnable threads per CPU.
    let slow: f64 = after_body
        .lines()
        .filter(|l| l.starts_with("huatuo_bamai_runqlat_latency{") && !l.contains(r#"zone="0""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        slow > 0.0,
        "no run-queue wait over 10 ms under load:\n{after_body}"
    );
}

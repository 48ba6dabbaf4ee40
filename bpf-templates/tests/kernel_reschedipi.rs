//! Kernel test: reschedipi counts the rescheduling IPIs that wakeups of a real-time thread
//! onto a busy CPU send, in the tp_btf and the raw_tp variants (needs two CPUs).

mod common;

use common::{kernel_ready, Busy};
use huatuo_bpf::schema::AttachKind;
use huatuo_bpf::{LoadOptions, Templates};
use huatuo_dsl::value::{Sample, Value};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::mpsc;

/// (ipis, late, histogram total) of the single host sample.
fn counts(samples: &[Sample]) -> (i64, i64, u64) {
    assert_eq!(samples.len(), 1, "one host sample: {samples:?}");
    let int = |name: &str| match samples[0].fields.get(name) {
        Some(Value::Int(n)) => *n,
        other => panic!("{name}: {other:?}"),
    };
    let hist = match samples[0].fields.get("latency") {
        Some(Value::Hist(h)) => h.count_between(0, u64::MAX),
        other => panic!("latency: {other:?}"),
    };
    (int("ipis"), int("late"), hist)
}

/// Pins the calling thread to one CPU.
fn pin(cpu: usize) {
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0,
            "pin to CPU {cpu}"
        );
    }
}

/// A SCHED_FIFO thread pinned to CPU 1, where a busy loop runs, is handed a token 2000 times
/// from CPU 0: every wakeup preempts the busy loop on the other CPU, which the scheduler
/// does with a rescheduling IPI.
fn wake_rt_thread_on_busy_cpu() {
    let busy = Busy(vec![Command::new("taskset")
        .args(["-c", "1", "sh", "-c", "while :; do :; done"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn taskset busy loop")]);
    let (to_b, from_a) = mpsc::channel::<u32>();
    let (to_a, from_b) = mpsc::channel::<u32>();
    let b = std::thread::spawn(move || {
        pin(1);
        let param = libc::sched_param { sched_priority: 10 };
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
        assert_eq!(rc, 0, "SCHED_FIFO");
        while let Ok(n) = from_a.recv() {
            if to_a.send(n + 1).is_err() {
                break;
            }
        }
    });
    pin(0);
    for i in 0..2000 {
        to_b.send(i).expect("send");
        from_b.recv().expect("recv");
    }
    drop(to_b);
    b.join().expect("join");
    drop(busy);
}

fn counts_ipis_under_load(options: LoadOptions, kind: AttachKind) {
    let templates = Templates::load_with(&["bpf.reschedipi"], &BTreeMap::new(), options);
    let st = &templates.status()[0];
    assert!(st.loaded, "{st:#?}");
    for p in &st.programs {
        assert_eq!(p.attached_variant().map(|v| v.kind), Some(kind), "{p:#?}");
    }
    let (ipis0, late0, hist0) = counts(&templates.read_histograms());
    wake_rt_thread_on_busy_cpu();
    let (ipis, late, hist) = counts(&templates.read_histograms());
    assert!(ipis - ipis0 >= 100, "rescheduling IPIs {ipis0} -> {ipis}");
    // The count is the histogram's, and late IPIs are a part of it.
    assert_eq!(ipis as u64, hist);
    assert!(
        hist >= hist0 && late >= late0 && late <= ipis,
        "late {late} of {ipis}"
    );
    eprintln!("reschedipi: {} IPIs, {} late", ipis - ipis0, late - late0);
}

#[test]
fn reschedipi_counts_ipis_of_wakeups_onto_a_busy_cpu() {
    if !kernel_ready("reschedipi_counts_ipis_of_wakeups_onto_a_busy_cpu") || !two_cpus() {
        return;
    }
    counts_ipis_under_load(LoadOptions::default(), AttachKind::TpBtf);
}

#[test]
fn reschedipi_raw_tp_variant_counts_ipis() {
    if !kernel_ready("reschedipi_raw_tp_variant_counts_ipis") || !two_cpus() {
        return;
    }
    let options = LoadOptions {
        excluded_kinds: vec![AttachKind::TpBtf],
        ..LoadOptions::default()
    };
    counts_ipis_under_load(options, AttachKind::RawTp);
}

/// CPUs 0 and 1 are online (the test pins to both); without them the test cannot run.
fn two_cpus() -> bool {
    let online = std::thread::available_parallelism().map_or(1, usize::from) >= 2;
    if !online {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI needs two CPUs"
        );
        eprintln!("SKIP reschedipi: fewer than two CPUs");
    }
    online
}

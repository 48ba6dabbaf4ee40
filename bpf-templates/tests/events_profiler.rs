//! Kernel test of the profiler: a thread spinning in a known function is the top folded
//! stack, symbolized from this test binary's ELF symbols, and flamedata accounts for it; a
//! stopped profile's object is parked and the next profile reuses it with its own filter; a
//! rate change keeps the loaded program and samples at the new rate.

mod common;

use common::{kernel_ready, BpfStats, Busy, TestCgroup};
use huatuo_bpf::profiler::parked::parked_objects;
use huatuo_bpf::profiler::usersym::UserSymbolizer;
use huatuo_bpf::profiler::{run, ProfileMode, ProfileOptions, Profiler};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[inline(never)]
#[no_mangle]
extern "C" fn huatuo_profiler_spin_target(stop: &AtomicBool) -> u64 {
    let mut x = 0u64;
    while !stop.load(Ordering::Relaxed) {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    x
}

/// Profiles sample the whole host: the tests of this file must not run at once.
static SERIAL: Mutex<()> = Mutex::new(());

/// Stops the spinning thread on drop, even when an assertion fails.
struct Spinner(Arc<AtomicBool>, Option<std::thread::JoinHandle<u64>>);

impl Spinner {
    /// A thread named `huatuo-spin` spinning in [`huatuo_profiler_spin_target`].
    fn start() -> Spinner {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("huatuo-spin".into())
            .spawn(move || huatuo_profiler_spin_target(&flag))
            .expect("spawn");
        Spinner(stop, Some(handle))
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        if let Some(handle) = self.1.take() {
            let _ = handle.join();
        }
    }
}

#[test]
fn a_busy_loop_is_the_top_folded_stack() {
    if !kernel_ready("a_busy_loop_is_the_top_folded_stack") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _spinner = Spinner::start();
    std::thread::sleep(Duration::from_millis(100));

    let options = ProfileOptions {
        duration: Duration::from_secs(2),
        ..ProfileOptions::default()
    };
    let profile = run(&options).expect("profile");
    let folded = profile.folded();
    let shown = &folded[..folded.len().min(10)];
    assert!(!folded.is_empty(), "no samples");
    let count = |line: &String| -> u64 {
        line.rsplit(' ')
            .next()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    };
    // 99 Hz per CPU for 2 s: the loop occupies one CPU, so it should hold a large share of
    // all samples however busy the other CPU is (other processes may share the machine, so
    // the test asserts shares and ranks, not absolute counts). Without frame pointers only
    // the leaf is reliable, so the loop's samples split over the function and the helpers it
    // calls (not inlined in debug builds): count every line of the spinning thread.
    let of_spin = |line: &&String| line.split([';', ' ']).next() == Some("huatuo-spin");
    let spin_samples: u64 = folded.iter().filter(of_spin).map(count).sum();
    assert!(
        spin_samples * 4 >= profile.samples && spin_samples >= 20,
        "spin samples {spin_samples} of {}\n{shown:#?}",
        profile.samples
    );
    let in_target: u64 = folded
        .iter()
        .filter(|l| l.starts_with("huatuo-spin;") && l.contains("huatuo_profiler_spin_target"))
        .map(count)
        .sum();
    assert!(
        in_target >= 3 && in_target * 10 >= spin_samples,
        "{in_target} samples name the function\n{shown:#?}"
    );
    // Rust frames are demangled
    assert!(!folded.iter().any(|l| l.contains("_ZN4core")), "{shown:#?}");
    assert_eq!(profile.lost, 0);

    let flame = profile.flamedata();
    assert_eq!(flame[0].label, "total");
    assert_eq!(flame[0].value, profile.samples);
    let spin = flame
        .iter()
        .find(|f| f.label == "huatuo-spin" && f.level == 1)
        .expect("comm frame");
    assert_eq!(spin.value, spin_samples);
    // No command has more samples than the spinning thread (the idle task of the other CPU
    // may have as many: on 2 CPUs both are on a CPU the whole time).
    let busier: Vec<_> = flame
        .iter()
        .filter(|f| f.level == 1 && f.value > spin.value)
        .map(|f| (&f.label, f.value))
        .collect();
    assert!(
        busier.is_empty(),
        "{busier:?} over {}\n{shown:#?}",
        spin.value
    );
}

/// A busy task in a new cpu cgroup `name`, one outside it, and 1 s profile options limited
/// to the cgroup.
fn busy_inside_and_outside(name: &str) -> (TestCgroup, Busy, Busy, ProfileOptions) {
    let cgroup = TestCgroup::create("cpu", name);
    let inside = Busy::start(1);
    let outside = Busy::start(1);
    for pid in inside.pids() {
        cgroup.add(pid);
    }
    let options = ProfileOptions {
        duration: Duration::from_secs(1),
        cgroup_id: cgroup.id(),
        cgroup_v2: huatuo_bpf::cgroup::unified_hierarchy(),
        ..ProfileOptions::default()
    };
    (cgroup, inside, outside, options)
}

#[test]
fn the_cgroup_filter_keeps_only_that_cgroups_tasks() {
    if !kernel_ready("the_cgroup_filter_keeps_only_that_cgroups_tasks") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_cgroup, inside, _outside, options) = busy_inside_and_outside("huatuo-profile");
    let profile = run(&options).expect("profile");
    drop(inside);
    assert!(
        profile.samples > 30,
        "samples in the cgroup: {}",
        profile.samples
    );
    let pids: Vec<u32> = profile.stacks.iter().map(|s| s.pid).collect();
    assert!(
        profile.stacks.iter().all(|s| s.comm == "sh"),
        "samples outside the cgroup: {:#?}",
        profile.folded()
    );
    assert!(pids.windows(2).all(|w| w[0] == w[1]), "{pids:?}");
}

#[test]
fn a_parked_object_is_reused_with_the_next_filter() {
    if !kernel_ready("a_parked_object_is_reused_with_the_next_filter") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_cgroup, inside, outside, filtered) = busy_inside_and_outside("huatuo-profile-reuse");
    let first = run(&filtered).expect("filtered profile");
    assert!(first.stacks.iter().all(|s| inside.pids().contains(&s.pid)));
    assert!(
        parked_objects() >= 1,
        "the stopped profile's object was not parked"
    );

    // The same kind of object, no filter: it must take the parked object and count the
    // task outside the cgroup, which the first profile's filter left out.
    let parked_before = parked_objects();
    let profiler = Profiler::start(&ProfileOptions {
        cgroup_id: 0,
        ..filtered
    })
    .expect("start");
    assert_eq!(
        parked_objects(),
        parked_before - 1,
        "the second profile loaded a new object instead of the parked one"
    );
    std::thread::sleep(Duration::from_secs(2));
    let second = profiler.stop().expect("stop");
    let outside_pid = outside.pids()[0];
    let outside_samples: u64 = second
        .stacks
        .iter()
        .filter(|s| s.pid == outside_pid)
        .map(|s| s.count)
        .sum();
    // The old filter would leave it none; a loaded machine still gives it some of 2 s at 99 Hz.
    assert!(
        outside_samples >= 3,
        "the busy task outside the cgroup has {outside_samples} samples: the old filter stayed"
    );
    assert_eq!(second.lost, 0);
}

#[test]
fn a_reused_off_cpu_object_counts_no_time_from_before_it_was_parked() {
    if !kernel_ready("a_reused_off_cpu_object_counts_no_time_from_before_it_was_parked") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let options = ProfileOptions {
        mode: ProfileMode::OffCpu,
        ..ProfileOptions::default()
    };
    let first = Profiler::start(&options).expect("start off-CPU");
    // Switched out while the first profile runs, back on the CPU only during the second.
    let sleeper = std::thread::Builder::new()
        .name("huatuo-sleeper".into())
        .spawn(|| std::thread::sleep(Duration::from_millis(3000)))
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(300));
    first.stop().expect("stop");
    std::thread::sleep(Duration::from_millis(1500));
    let parked_before = parked_objects();
    let second_start = Instant::now();
    let second = Profiler::start(&options).expect("start again");
    assert_eq!(parked_objects(), parked_before - 1, "not reused");
    sleeper.join().expect("sleeper");
    std::thread::sleep(Duration::from_millis(200));
    let window_us = second_start.elapsed().as_micros() as u64;
    let profile = second.stop().expect("stop");
    let slept_us: u64 = profile
        .stacks
        .iter()
        .filter(|s| s.comm == "huatuo-sleeper")
        .map(|s| s.count)
        .sum();
    // Its 3 s sleep began before the object was parked: none of it may count.
    assert!(
        slept_us < window_us,
        "the sleeper counted {slept_us} us in a {window_us} us profile"
    );
}

#[test]
fn a_rate_change_keeps_the_program_and_samples_at_the_new_rate() {
    if !kernel_ready("a_rate_change_keeps_the_program_and_samples_at_the_new_rate") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _stats = BpfStats::enable();
    let _spinner = Spinner::start();
    let mut profiler = Profiler::start(&ProfileOptions {
        frequency_hz: 99,
        ..ProfileOptions::default()
    })
    .expect("start");
    let mut user = UserSymbolizer::new();
    let mut everything = |_: u32, _: &str, _: u64| true;
    profiler.collect(&mut user, &mut everything).expect("clear");
    std::thread::sleep(Duration::from_secs(1));
    // Read before the collect: every sample of the next collect ran after it.
    let (_, runs_before) = profiler.bpf_cost().expect("program info");
    let fast = profiler
        .collect(&mut user, &mut everything)
        .expect("collect");

    profiler.set_frequency(10).expect("set the rate");
    std::thread::sleep(Duration::from_secs(2));
    let slow = profiler
        .collect(&mut user, &mut everything)
        .expect("collect");
    let (_, runs_after) = profiler.bpf_cost().expect("program info");
    // The same program counts on: its run count carries over (a new object starts at 0).
    assert!(
        runs_after >= runs_before + slow.samples,
        "runs {runs_before} then {runs_after} for {} samples: the program was replaced",
        slow.samples
    );
    // Every CPU is sampled whether busy or idle: 99 Hz for 1 s is about 99 a CPU, 10 Hz for
    // 2 s about 20.
    assert!(
        slow.samples > 0 && slow.samples * 2 < fast.samples,
        "{} samples at 99 Hz in 1 s, {} at 10 Hz in 2 s",
        fast.samples,
        slow.samples
    );
    assert!(
        slow.stacks.iter().any(|s| s.comm == "huatuo-spin"),
        "the spinning thread has no sample at the new rate"
    );
    profiler.stop().expect("stop");
}

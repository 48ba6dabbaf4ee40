//! Kernel test of the waitrate capture: two CPU-bound cgroups pinned to one CPU; the capture
//! for one names the other as the top competitor, with CPU time that fits the capture.

mod common;

use common::{kernel_ready, Busy, TestCgroup};
use huatuo_bpf::waitrate::{run, WaitOptions};
use std::time::Duration;

/// Pins a process to one CPU.
fn pin(pid: u32, cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only
    // read and write that set.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(pid as i32, std::mem::size_of_val(&set), &set)
    };
    assert_eq!(rc, 0, "pin {pid} to CPU {cpu}");
}

/// Sets the cgroup's CPU weight (v1 cpu.shares, or v2 cpu.weight when that exists).
fn weight(cgroup: &TestCgroup, shares: u32, weight: u32) {
    let v1 = cgroup.dir.join("cpu.shares");
    let v2 = cgroup.dir.join("cpu.weight");
    if v1.exists() {
        std::fs::write(v1, shares.to_string()).expect("cpu.shares");
    } else if v2.exists() {
        std::fs::write(v2, weight.to_string()).expect("cpu.weight");
    }
}

#[test]
fn the_competing_cgroup_is_named_with_its_cpu_time() {
    if !kernel_ready("the_competing_cgroup_is_named_with_its_cpu_time") {
        return;
    }
    // Declared first: dropped after the loops inside them are killed.
    let target = TestCgroup::create("cpu", "huatuo-waitrate-target");
    let rival = TestCgroup::create("cpu", "huatuo-waitrate-rival");
    // The rival weighs a hundred times more, so it keeps most of the CPU even while other work
    // on the machine (compilers, other tests) competes for the same CPU.
    weight(&target, 1024, 100);
    weight(&rival, 102_400, 10_000);
    let cpu = 0;
    let waiting = Busy::start(1);
    let holding = Busy::start(1);
    for (busy, cgroup) in [(&waiting, &target), (&holding, &rival)] {
        for pid in busy.pids() {
            pin(pid, cpu);
            cgroup.add(pid);
        }
    }
    std::thread::sleep(Duration::from_millis(200));

    let duration = Duration::from_secs(2);
    let options = WaitOptions {
        cgroup_id: target.id(),
        cgroup_v2: huatuo_bpf::cgroup::unified_hierarchy(),
        duration,
    };
    let contention = run(&options).expect("waitrate capture");
    eprintln!("{contention:#?}");
    let top = contention
        .competitors
        .first()
        .unwrap_or_else(|| panic!("no competitor recorded: {contention:?}"));
    assert_eq!(top.cgroup_id, rival.id(), "{contention:#?}");
    assert_eq!(top.cpus, vec![cpu as u32], "{contention:#?}");
    // The rival holds nearly all of the CPU; others on the machine take some of it. It
    // cannot take more than the whole CPU for the capture's duration (plus one slice).
    let taken = Duration::from_nanos(top.cpu_time_ns);
    assert!(
        taken >= duration / 4 && taken <= duration + Duration::from_millis(100),
        "rival took {taken:?} of {duration:?}: {contention:#?}"
    );
    assert!(
        contention
            .competitors
            .iter()
            .all(|c| c.cgroup_id != target.id()),
        "the target is not its own competitor: {contention:#?}"
    );
    assert_eq!(contention.lost, 0);
}

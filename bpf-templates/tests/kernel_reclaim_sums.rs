//! Kernel test of the reclaim template's host stall sums (HUATUO's
//! memory_free_allocpages_stall): direct reclaim in the page allocator needs memory pressure
//! on the whole host, which a test cannot make without disturbing everything else running on
//! it (a memcg limit reclaims through try_charge, not this path). So the raw tracepoint
//! programs of direct reclaim are run by `BPF_PROG_TEST_RUN`, which executes a raw_tp program
//! in the calling thread: begin, 5 ms, end, three times, must add about 15 ms to the host sum
//! and three observations to the host histogram.

mod common;

use common::kernel_ready;
use huatuo_bpf::schema::AttachKind;
use huatuo_bpf::{LoadOptions, Templates};
use huatuo_dsl::value::Value;
use std::collections::BTreeMap;
use std::time::Duration;

const BPF_PROG_TEST_RUN: i64 = 10;
const BPF_PROG_GET_NEXT_ID: i64 = 11;
const BPF_PROG_GET_FD_BY_ID: i64 = 13;
const BPF_OBJ_GET_INFO_BY_FD: i64 = 15;

/// `bpf(cmd, attr)`; the attr buffer is zero-padded to what the kernel reads.
fn bpf(cmd: i64, attr: &mut [u8; 128]) -> std::io::Result<i64> {
    // SAFETY: attr is a valid buffer of the size passed; pointers inside it outlive the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len() as u32) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn put(attr: &mut [u8], offset: usize, bytes: &[u8]) {
    attr[offset..offset + bytes.len()].copy_from_slice(bytes);
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_ne_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
}

/// Program ids above `after`, in order.
fn prog_ids_after(after: u32) -> Vec<u32> {
    let mut ids = Vec::new();
    let mut id = after;
    loop {
        let mut attr = [0u8; 128];
        put(&mut attr, 0, &id.to_ne_bytes());
        if bpf(BPF_PROG_GET_NEXT_ID, &mut attr).is_err() {
            return ids;
        }
        id = u32_at(&attr, 4);
        ids.push(id);
    }
}

/// An open program: its fd, (truncated) name and map ids.
struct Prog {
    fd: i32,
    name: String,
    maps: Vec<u32>,
}

impl Drop for Prog {
    fn drop(&mut self) {
        // SAFETY: the fd was returned by BPF_PROG_GET_FD_BY_ID and is closed once.
        unsafe { libc::close(self.fd) };
    }
}

fn open_prog(id: u32) -> Option<Prog> {
    let mut attr = [0u8; 128];
    put(&mut attr, 0, &id.to_ne_bytes());
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).ok()? as i32;
    // struct bpf_prog_info: nr_map_ids at 52, map_ids at 56, name[16] at 64
    let mut maps = [0u32; 64];
    let mut info = [0u8; 256];
    put(&mut info, 52, &(maps.len() as u32).to_ne_bytes());
    put(&mut info, 56, &(maps.as_mut_ptr() as u64).to_ne_bytes());
    let mut attr = [0u8; 128];
    put(&mut attr, 0, &(fd as u32).to_ne_bytes());
    put(&mut attr, 4, &(info.len() as u32).to_ne_bytes());
    put(&mut attr, 8, &(info.as_mut_ptr() as u64).to_ne_bytes());
    // owned from here: closed on drop, also when the info call fails
    let mut prog = Prog {
        fd,
        name: String::new(),
        maps: Vec::new(),
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).ok()?;
    let count = (u32_at(&info, 52) as usize).min(maps.len());
    prog.name = String::from_utf8_lossy(&info[64..80])
        .trim_end_matches('\0')
        .to_string();
    prog.maps = maps[..count].to_vec();
    Some(prog)
}

/// Runs a raw_tp program once in this thread with four zero arguments.
fn test_run(prog: &Prog) {
    let args = [0u64; 4];
    let mut attr = [0u8; 128];
    put(&mut attr, 0, &(prog.fd as u32).to_ne_bytes());
    put(
        &mut attr,
        40,
        &(std::mem::size_of_val(&args) as u32).to_ne_bytes(),
    ); // ctx_size_in
    put(&mut attr, 48, &(args.as_ptr() as u64).to_ne_bytes()); // ctx_in
    if let Err(e) = bpf(BPF_PROG_TEST_RUN, &mut attr) {
        panic!("BPF_PROG_TEST_RUN of {}: {e}", prog.name);
    }
}

#[test]
fn direct_reclaim_stalls_add_to_the_host_sum() {
    if !kernel_ready("direct_reclaim_stalls_add_to_the_host_sum") {
        return;
    }
    let newest_before = prog_ids_after(0).last().copied().unwrap_or(0);
    let options = LoadOptions {
        excluded_kinds: vec![AttachKind::TpBtf],
        ..LoadOptions::default()
    };
    let templates = Templates::load_with(&["reclaim"], &BTreeMap::new(), options);
    let status = templates.status();
    assert!(status[0].loaded, "reclaim did not load: {status:#?}");
    // Our two direct reclaim programs (names are cut at 15 bytes): loaded after
    // `newest_before`; begin uses only the start map, which end uses too.
    let progs: Vec<Prog> = prog_ids_after(newest_before)
        .into_iter()
        .filter_map(open_prog)
        .filter(|p| p.name == "raw_tp_direct_r")
        .collect();
    let pairs: Vec<(&Prog, &Prog)> = progs
        .iter()
        .flat_map(|b| progs.iter().map(move |e| (b, e)))
        .filter(|(b, e)| b.maps.len() < e.maps.len() && b.maps.iter().all(|m| e.maps.contains(m)))
        .collect();
    assert_eq!(
        pairs.len(),
        1,
        "expected one begin/end pair of this template (another reclaim template loaded at \
         the same time?): {:?}",
        progs.iter().map(|p| &p.maps).collect::<Vec<_>>()
    );
    let (begin, end) = pairs[0];
    let host = |samples: &[huatuo_dsl::value::Sample], field: &str| {
        samples
            .iter()
            .find(|s| s.labels.is_empty())
            .and_then(|s| s.fields.get(field).cloned())
    };
    let before = templates.read_histograms();
    let Some(Value::Int(sum_before)) = host(&before, "allocpages_stall") else {
        panic!("no host allocpages_stall: {before:#?}");
    };
    for _ in 0..3 {
        test_run(begin);
        std::thread::sleep(Duration::from_millis(5));
        test_run(end);
    }
    let after = templates.read_histograms();
    let Some(Value::Int(sum_after)) = host(&after, "allocpages_stall") else {
        panic!("no host allocpages_stall: {after:#?}");
    };
    let added = sum_after - sum_before;
    assert!(
        (15_000_000..1_000_000_000).contains(&added),
        "3 stalls of 5 ms added {added} ns"
    );
    let count = |samples: &[huatuo_dsl::value::Sample]| match host(samples, "allocpages_latency") {
        Some(Value::Hist(h)) => h.count_between(0, u64::MAX),
        other => panic!("allocpages_latency: {other:?}"),
    };
    assert_eq!(count(&after) - count(&before), 3);
    // direct compaction has no stall here: its sum did not move
    assert_eq!(
        host(&after, "compaction_stall"),
        host(&before, "compaction_stall")
    );
    eprintln!("3 test-run stalls of 5 ms added {added} ns to allocpages_stall");
}

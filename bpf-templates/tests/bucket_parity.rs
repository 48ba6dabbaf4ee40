//! Parity of the kernel's bucketing (`huatuo_log10l_bucket` in include/huatuo.h, compiled
//! here as host C with the `cc` crate) and the Rust decoder in `huatuo_bpf::hist`, for every
//! power of two and its neighbours and every bucket edge and its neighbours.

use huatuo_bpf::hist::{bucket_of, upper_bound, SLOTS};
use std::io::Write;
use std::process::{Command, Stdio};

const HOST_MAIN: &str = r#"
#define HUATUO_HOST_BUCKET_ONLY
#include "huatuo.h"
#include <stdio.h>
int main(void) {
    unsigned long long v;
    while (scanf("%llu", &v) == 1)
        printf("%u\n", huatuo_log10l_bucket(v));
    return 0;
}
"#;

fn probe_values() -> Vec<u64> {
    let mut values = vec![0, u64::MAX, u64::MAX - 1];
    for k in 0..64 {
        let p = 1u64 << k;
        values.extend([p - 1, p, p + 1]);
    }
    for slot in 0..SLOTS - 1 {
        let edge = upper_bound(slot);
        values.extend([edge - 1, edge, edge + 1]);
    }
    values
}

#[test]
fn c_and_rust_bucketing_agree() {
    let dir = std::env::temp_dir().join(format!("huatuo-parity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let source = dir.join("bucket.c");
    let binary = dir.join("bucket");
    std::fs::write(&source, HOST_MAIN).expect("write C");
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let compiler = cc::Build::new()
        .cargo_metadata(false)
        .opt_level(2)
        .target(&target)
        .host(&target)
        .try_get_compiler()
        .expect("a host C compiler");
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/include");
    let status = compiler
        .to_command()
        .arg("-I")
        .arg(include)
        .arg(&source)
        .arg("-o")
        .arg(&binary)
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "host compile of huatuo.h failed");

    let values = probe_values();
    let mut child = Command::new(&binary)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run bucket program");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for v in &values {
            writeln!(stdin, "{v}").expect("write value");
        }
    }
    let output = child.wait_with_output().expect("bucket output");
    let _ = std::fs::remove_dir_all(&dir);
    let c_buckets: Vec<usize> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.trim().parse().expect("bucket number"))
        .collect();
    assert_eq!(c_buckets.len(), values.len());
    for (v, c) in values.iter().zip(&c_buckets) {
        let rust = bucket_of(*v);
        assert_eq!(*c, rust, "value {v}: C bucket {c}, Rust bucket {rust}");
        // The value lies inside the bucket's bounds.
        assert!(
            *v < upper_bound(rust) || rust == SLOTS - 1,
            "{v} above bucket {rust}"
        );
        if rust > 0 {
            assert!(*v >= upper_bound(rust - 1), "{v} below bucket {rust}");
        }
    }
}

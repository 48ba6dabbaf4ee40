//! Compiles the bench's BPF objects with clang into OUT_DIR: the overhead bench's empty
//! programs (`overhead/floor.bpf.c`) for `hook_floor`, and the empty reference program the
//! in-kernel cost tools set every figure beside (`bpf/empty.bpf.c`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir"));
    let include = root.join("../bpf-templates/include");
    println!("cargo:rerun-if-env-changed=CLANG");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    for (source, object) in [
        ("overhead/floor.bpf.c", "floor.bpf.o"),
        ("bpf/empty.bpf.c", "empty.bpf.o"),
    ] {
        compile(&clang, &include, &root.join(source), &out.join(object));
    }
}

/// Compiles one BPF C file to a CO-RE object; panics naming the file when clang fails.
fn compile(clang: &str, include: &Path, source: &Path, object: &Path) {
    println!("cargo:rerun-if-changed={}", source.display());
    let status = Command::new(clang)
        .args(["-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-I"])
        .arg(include)
        .arg("-c")
        .arg(source)
        .arg("-o")
        .arg(object)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{clang} failed on {}: {s}", source.display()),
        Err(e) => panic!("cannot run {clang}: {e}"),
    }
}

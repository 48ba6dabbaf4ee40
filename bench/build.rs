//! Compiles the overhead bench's empty programs (`overhead/floor.bpf.c`) with clang into
//! OUT_DIR for `hook_floor`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir"));
    let source = root.join("overhead/floor.bpf.c");
    let include = root.join("../bpf-templates/include");
    println!("cargo:rerun-if-changed={}", source.display());
    println!("cargo:rerun-if-env-changed=CLANG");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-I"])
        .arg(&include)
        .arg("-c")
        .arg(&source)
        .arg("-o")
        .arg(out.join("floor.bpf.o"))
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{clang} failed on {}: {s}", source.display()),
        Err(e) => panic!("cannot run {clang}: {e}"),
    }
}

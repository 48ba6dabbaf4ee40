//! Compiles every `<name>/<name>.bpf.c` template with clang (CO-RE, BPF target) into OUT_DIR
//! and generates `templates.rs`, which embeds each object and its `schema.toml`.
//!
//! Templates whose schema has an `[event]` table are built twice: once with a ring buffer
//! (`-DHUATUO_EVENTS`) and once with a perf event array (`-DHUATUO_EVENTS -DHUATUO_PERFBUF`)
//! for kernels before 5.8. Templates with `task_storage = true` are built twice too: with
//! `-DHUATUO_TASK_STORAGE` (the main object) and without (`hashmap_object`, kernels < 5.11).
//! Test-only programs in `tests/bpf/*.bpf.c` are compiled into
//! OUT_DIR too (not embedded).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    if let Err(message) = run() {
        eprintln!("error: {message}");
        println!("cargo:warning={message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-env-changed=LLVM_STRIP");
    println!("cargo:rerun-if-changed=include");
    println!("cargo:rerun-if-changed=tests/bpf");
    // Each template folder is watched below; a *new* folder is not seen until one of these
    // paths (or this file) changes: cargo can only watch a directory with everything under it,
    // and watching the crate root would recompile every template on any edit of src/ or
    // tests/. Adding a template therefore comes with a touch of this file.

    let mut generated = String::from("/// Every template embedded at build time.\npub static TEMPLATES: &[EmbeddedTemplate] = &[\n");
    for name in template_folders(&root)? {
        let dir = root.join(&name);
        let source = dir.join(format!("{name}.bpf.c"));
        let schema_path = dir.join("schema.toml");
        println!("cargo:rerun-if-changed={}", dir.display());
        if !schema_path.is_file() {
            // A template being written: not embedded until its schema exists.
            println!("cargo:warning=skipping template `{name}`: no schema.toml yet");
            continue;
        }
        let schema = std::fs::read_to_string(&schema_path)
            .map_err(|e| format!("{}: {e}", schema_path.display()))?;
        let table: toml::Table =
            toml::from_str(&schema).map_err(|e| format!("{}: {e}", schema_path.display()))?;
        let is_event = table.contains_key("event");
        let task_storage = table.get("task_storage").and_then(toml::Value::as_bool) == Some(true);
        let main_obj = out.join(format!("{name}.bpf.o"));
        let mut defines = vec![];
        if is_event {
            defines.push("-DHUATUO_EVENTS");
        }
        let hashmap = if task_storage {
            let hash_obj = out.join(format!("{name}.hashmap.bpf.o"));
            compile(&clang, &root, &source, &hash_obj, &defines)?;
            defines.push("-DHUATUO_TASK_STORAGE");
            format!("Some(include_bytes!({:?}))", hash_obj.display().to_string())
        } else {
            "None".to_string()
        };
        compile(&clang, &root, &source, &main_obj, &defines)?;
        let perf = if is_event {
            let perf_obj = out.join(format!("{name}.perfbuf.bpf.o"));
            compile(
                &clang,
                &root,
                &source,
                &perf_obj,
                &["-DHUATUO_EVENTS", "-DHUATUO_PERFBUF"],
            )?;
            format!("Some(include_bytes!({:?}))", perf_obj.display().to_string())
        } else {
            "None".to_string()
        };
        writeln!(
            generated,
            "    EmbeddedTemplate {{ name: {name:?}, object: include_bytes!({:?}), perfbuf_object: {perf}, hashmap_object: {hashmap}, schema: include_str!({:?}) }},",
            main_obj.display().to_string(),
            schema_path.display().to_string(),
        )
        .map_err(|e| e.to_string())?;
    }
    generated.push_str("];\n");
    std::fs::write(out.join("templates.rs"), generated).map_err(|e| e.to_string())?;

    let test_dir = root.join("tests/bpf");
    if let Ok(entries) = std::fs::read_dir(&test_dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
                continue;
            };
            if let Some(stem) = file.strip_suffix(".bpf.c") {
                let obj = out.join(format!("test_{stem}.bpf.o"));
                compile(&clang, &root, &path, &obj, &["-DHUATUO_EVENTS"])?;
                let perf = out.join(format!("test_{stem}.perfbuf.bpf.o"));
                compile(
                    &clang,
                    &root,
                    &path,
                    &perf,
                    &["-DHUATUO_EVENTS", "-DHUATUO_PERFBUF"],
                )?;
            }
        }
    }
    Ok(())
}

/// Folders `<name>/` that hold `<name>.bpf.c`, sorted.
fn template_folders(root: &Path) -> Result<Vec<String>, String> {
    let mut names = vec![];
    let entries = std::fs::read_dir(root).map_err(|e| format!("{}: {e}", root.display()))?;
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if entry.path().join(format!("{name}.bpf.c")).is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn compile(
    clang: &str,
    root: &Path,
    source: &Path,
    obj: &Path,
    defines: &[&str],
) -> Result<(), String> {
    let mut command = Command::new(clang);
    command
        .args([
            "-target",
            "bpf",
            "-O2",
            "-g",
            "-D__TARGET_ARCH_x86",
            "-Wall",
        ])
        .args(["-Wno-unused-function", "-Wno-unused-variable"])
        .args(defines)
        .arg("-I")
        .arg(root.join("include"))
        .args(["-I", "/usr/include/x86_64-linux-gnu"])
        .arg("-c")
        .arg(source)
        .arg("-o")
        .arg(obj);
    run_tool(
        command,
        &format!("compile {}", source.display()),
        "clang and libbpf-dev (Debian: apt-get install clang libbpf-dev) or set CLANG",
    )?;
    strip_debug_info(obj)
}

/// Drops the DWARF sections clang's `-g` writes next to BTF: the loader reads only BTF and
/// BTF.ext, and DWARF is about nine tenths of each object (runqlat: 687 KB with it, 61 KB
/// without), all of it embedded in the agent's binary.
fn strip_debug_info(obj: &Path) -> Result<(), String> {
    let strip = std::env::var("LLVM_STRIP").unwrap_or_else(|_| "llvm-strip".to_string());
    let mut command = Command::new(&strip);
    command.arg("--strip-debug").arg(obj);
    run_tool(
        command,
        &format!("drop the DWARF of {}", obj.display()),
        "llvm (Debian: apt-get install llvm) or set LLVM_STRIP",
    )
}

/// Runs one build tool to do `what`; the error names the tool, what it was doing and, when
/// the tool cannot be started at all, what to install (`install`).
fn run_tool(mut command: Command, what: &str, install: &str) -> Result<(), String> {
    let tool = command.get_program().to_string_lossy().into_owned();
    let output = command
        .output()
        .map_err(|e| format!("cannot run `{tool}` to {what} ({e}); install {install}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{tool}` failed to {what}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

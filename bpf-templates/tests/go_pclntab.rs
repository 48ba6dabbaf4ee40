//! Function names of real stripped Go binaries, read from their `.gopclntab` through
//! `usersym::resolve_file`, in every table layout: binaries this machine's Go (1.19, the Go
//! 1.18 layout) builds for 386 and amd64, checked against the symbols of the same program
//! built unstripped; and binaries an older Go built (esbuild's npm packages of 2021: Go 1.15.7,
//! the Go 1.2 layout, and Go 1.16.3, the Go 1.16 layout, each for 32- and 64-bit x86), checked
//! function by function against Go's own reader (debug/gosym, run by this machine's Go).
//!
//! The Go toolchain (Debian's golang-go) and npm are needed: without them the tests skip with
//! a message, unless CI is set, where they fail.

use huatuo_bpf::profiler::usersym::resolve_file;
use object::{Object, ObjectSection, ObjectSegment};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether `tool` runs; when it does not, says why the test skips, or fails under CI.
fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "`{tool}` is needed (scripts/deps.sh --test installs golang-go; npm comes with Node.js)"
        );
        eprintln!("skipped: `{tool}` is not installed");
    }
    found
}

/// Runs `cmd`, returning its standard output; panics with its standard error on failure.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `go` with its cache and module path under `dir`, and cgo off (no C compiler needed).
fn go(dir: &Path) -> Command {
    let mut cmd = Command::new("go");
    cmd.current_dir(dir)
        .env("GOCACHE", dir.join("cache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .env("GO111MODULE", "off");
    cmd
}

/// The file offset of virtual address `addr` in the ELF file `data`.
fn file_offset(data: &[u8], addr: u64) -> u64 {
    let file = object::File::parse(data).expect("an ELF file");
    file.segments()
        .find_map(|s| {
            let (offset, size) = s.file_range();
            (addr >= s.address() && addr < s.address() + size).then(|| addr - s.address() + offset)
        })
        .unwrap_or_else(|| panic!("{addr:#x} is in no segment"))
}

/// The first 4 bytes of the binary's `.gopclntab`, and whether it has a `.symtab`.
fn magic_and_symtab(data: &[u8]) -> (u32, bool) {
    let file = object::File::parse(data).expect("an ELF file");
    let section = file.section_by_name(".gopclntab").expect(".gopclntab");
    let head = section.data().expect("section data");
    let magic = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
    (magic, file.section_by_name(".symtab").is_some())
}

/// Names that `resolve_file` gives the binary at `path` for virtual addresses `addrs`.
fn names_at(path: &Path, addrs: &[u64]) -> Vec<Option<String>> {
    let data = std::fs::read(path).expect("read the binary");
    let offsets: Vec<u64> = addrs.iter().map(|a| file_offset(&data, *a)).collect();
    resolve_file(path.to_str().expect("a UTF-8 path"), &offsets)
}

/// Go's own reader of function tables (debug/gosym of this machine's Go): prints the entry,
/// end and name of each function of the binary named by its argument.
const ORACLE: &str = r#"package main

import (
	"debug/elf"
	"debug/gosym"
	"fmt"
	"os"
)

func main() {
	f, err := elf.Open(os.Args[1])
	if err != nil {
		panic(err)
	}
	pcln, err := f.Section(".gopclntab").Data()
	if err != nil {
		panic(err)
	}
	table, err := gosym.NewTable(nil, gosym.NewLineTable(pcln, f.Section(".text").Addr))
	if err != nil {
		panic(err)
	}
	for _, fn := range table.Funcs {
		fmt.Printf("%x %x %s\n", fn.Entry, fn.End, fn.Name)
	}
}
"#;

/// (entry, end, name) of every function of the binary at `path`, as debug/gosym reads them.
fn oracle_functions(dir: &Path, path: &Path) -> Vec<(u64, u64, String)> {
    let oracle = dir.join("oracle");
    if !oracle.exists() {
        std::fs::write(dir.join("oracle.go"), ORACLE).expect("write oracle.go");
        run(go(dir).args(["build", "-o", "oracle", "oracle.go"]));
    }
    run(Command::new(&oracle).arg(path))
        .lines()
        .map(|line| {
            let mut parts = line.splitn(3, ' ');
            let mut hex = || u64::from_str_radix(parts.next().expect("a field"), 16).expect("hex");
            let (entry, end) = (hex(), hex());
            (entry, end, parts.next().expect("a name").to_string())
        })
        .collect()
}

/// Checks that `resolve_file` names every function of the stripped binary at `path` as
/// debug/gosym does, at its entry, in its middle and at its last byte, and nothing past the
/// last function; returns how many functions were checked.
fn agrees_with_go(dir: &Path, path: &Path) -> usize {
    let funcs = oracle_functions(dir, path);
    assert!(
        funcs.len() > 1000,
        "{path:?}: only {} functions",
        funcs.len()
    );
    assert!(funcs.iter().any(|(_, _, name)| name == "main.main"));
    let mut addrs = vec![];
    let mut want = vec![];
    for (entry, end, name) in funcs.iter().filter(|(entry, end, _)| end > entry) {
        for addr in [*entry, entry + (end - entry) / 2, end - 1] {
            addrs.push(addr);
            want.push(Some(name.clone()));
        }
    }
    let text_end = funcs
        .iter()
        .map(|(_, end, _)| *end)
        .max()
        .expect("functions");
    // The first address past the last function that the file still holds (the next
    // section's bytes).
    let data = std::fs::read(path).expect("read the binary");
    let file = object::File::parse(&data[..]).expect("an ELF file");
    let past = file
        .segments()
        .filter(|s| s.address() + s.file_range().1 > text_end)
        .map(|s| s.address().max(text_end))
        .min();
    if let Some(past) = past {
        addrs.push(past);
        want.push(None);
    }
    let got = names_at(path, &addrs);
    let wrong: Vec<String> = addrs
        .iter()
        .zip(got.iter().zip(&want))
        .filter(|(_, (got, want))| got != want)
        .take(5)
        .map(|(addr, (got, want))| format!("{addr:#x}: {got:?}, debug/gosym {want:?}"))
        .collect();
    assert!(wrong.is_empty(), "{path:?}: {wrong:#?}");
    funcs.len()
}

const PROGRAM: &str = r#"package main

import "os"

//go:noinline
func busyLoop(n int) int {
	s := 0
	for i := 0; i < n; i++ {
		s += i * i
	}
	return s
}

func main() {
	os.Exit(busyLoop(len(os.Args)) & 1)
}
"#;

/// (address, size) of `name` in the unstripped binary at `path`, from `go tool nm -size`.
fn nm_symbol(dir: &Path, path: &Path, name: &str) -> (u64, u64) {
    let out = run(go(dir).args(["tool", "nm", "-size"]).arg(path));
    out.lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields[..] {
                [addr, size, "T", sym] if sym == name => {
                    Some((u64::from_str_radix(addr, 16).ok()?, size.parse().ok()?))
                }
                _ => None,
            }
        })
        .unwrap_or_else(|| panic!("{name} not in `go tool nm` of {path:?}"))
}

/// Builds `PROGRAM` for `goarch` unstripped and stripped; checks the stripped one names
/// `main.busyLoop` and `main.main` where the unstripped one's symbols put them, and agrees
/// with debug/gosym on every function.
fn built_by_this_go(goarch: &str) {
    if !have("go") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    std::fs::write(dir.join("busy.go"), PROGRAM).expect("write busy.go");
    for (out, flags) in [("full", ""), ("stripped", "-s -w")] {
        run(go(dir).env("GOARCH", goarch).args([
            "build",
            "-o",
            out,
            &format!("-ldflags={flags}"),
            "busy.go",
        ]));
    }
    let stripped = dir.join("stripped");
    let data = std::fs::read(&stripped).expect("read the binary");
    let (magic, symtab) = magic_and_symtab(&data);
    assert!(!symtab, "the stripped build still has a .symtab");
    assert!(
        matches!(magic, 0xffff_fff0 | 0xffff_fff1),
        "magic {magic:#x}"
    );
    let elf32 = object::File::parse(&data[..]).map(|f| !f.is_64());
    assert_eq!(elf32.ok(), Some(goarch == "386"));
    for name in ["main.busyLoop", "main.main"] {
        let (addr, size) = nm_symbol(dir, &dir.join("full"), name);
        assert!(size > 0, "{name} has no size");
        let got = names_at(&stripped, &[addr, addr + size / 2, addr + size - 1]);
        assert_eq!(
            got,
            vec![Some(name.to_string()); 3],
            "{goarch} {name} at {addr:#x}"
        );
    }
    let funcs = agrees_with_go(dir, &stripped);
    eprintln!("{goarch} build: {funcs} functions named as debug/gosym names them");
}

#[test]
fn names_functions_of_a_stripped_386_go_binary() {
    built_by_this_go("386");
}

#[test]
fn names_functions_of_a_stripped_amd64_go_binary() {
    built_by_this_go("amd64");
}

/// esbuild's prebuilt binary of npm package `package@version`, fetched with npm into a cache
/// under the test target directory; `None` (skipped) when go or npm is missing outside CI.
fn esbuild(package: &str, version: &str) -> Option<PathBuf> {
    if !have("go") || !have("npm") {
        return None;
    }
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-pclntab");
    let unpacked = cache.join(format!("{package}-{version}"));
    let binary = unpacked.join("package/bin/esbuild");
    if !binary.exists() {
        std::fs::create_dir_all(&unpacked).expect("cache dir");
        run(Command::new("npm")
            .args(["pack", "--silent", "--pack-destination"])
            .arg(&cache)
            .arg(format!("{package}@{version}")));
        let tarball = cache.join(format!("{package}-{version}.tgz"));
        run(Command::new("tar")
            .arg("xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&unpacked));
    }
    Some(binary)
}

/// Checks the stripped binary of `package@version`, built by `go_version` with a table of
/// `magic`, against debug/gosym.
fn built_by_old_go(package: &str, version: &str, go_version: &str, magic: u32, elf32: bool) {
    let Some(binary) = esbuild(package, version) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let said = run(go(dir).arg("version").arg(&binary));
    assert!(said.trim_end().ends_with(go_version), "{said}");
    let data = std::fs::read(&binary).expect("read the binary");
    assert_eq!(
        magic_and_symtab(&data),
        (magic, false),
        "{package}@{version}"
    );
    assert_eq!(
        object::File::parse(&data[..]).map(|f| !f.is_64()).ok(),
        Some(elf32)
    );
    let funcs = agrees_with_go(dir, &binary);
    eprintln!(
        "{package}@{version} ({go_version}): {funcs} functions named as debug/gosym names them"
    );
}

#[test]
fn names_functions_of_a_go_1_15_binary_32_bit() {
    built_by_old_go("esbuild-linux-32", "0.8.45", "go1.15.7", 0xffff_fffb, true);
}

#[test]
fn names_functions_of_a_go_1_15_binary_64_bit() {
    built_by_old_go("esbuild-linux-64", "0.8.45", "go1.15.7", 0xffff_fffb, false);
}

#[test]
fn names_functions_of_a_go_1_16_binary_32_bit() {
    built_by_old_go("esbuild-linux-32", "0.11.12", "go1.16.3", 0xffff_fffa, true);
}

#[test]
fn names_functions_of_a_go_1_16_binary_64_bit() {
    built_by_old_go(
        "esbuild-linux-64",
        "0.11.12",
        "go1.16.3",
        0xffff_fffa,
        false,
    );
}

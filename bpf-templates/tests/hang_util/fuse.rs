//! A minimal FUSE server over an open `/dev/fuse`: answers INIT, LOOKUP (ENOENT) and GETATTR of
//! the root, and never answers the first MKDIR, so that its caller keeps the directory's
//! inode lock. Only `std` (errno values are Linux's, spelled out below): shared with the
//! agent's kernel tests (`engine/agent/tests/events_hungtask.rs` includes this file with
//! `#[path]`). Progress is printed on stdout as lines containing [`MARK`].
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};

/// Prefix of the server's protocol lines on its stdout (`ready`, `withheld ...`, `error ...`).
pub const MARK: &str = "HUATUO-FUSE ";

/// Linux errno values used by the server.
mod errno {
    pub const ENOENT: i32 = 2;
    pub const EINTR: i32 = 4;
    pub const ENODEV: i32 = 19;
    pub const EROFS: i32 = 30;
    pub const ENOSYS: i32 = 38;
    pub const EPROTO: i32 = 71;
}

/// `S_IFDIR` of `st_mode`.
const S_IFDIR: u32 = 0o040000;

/// The kernel ABI of include/uapi/linux/fuse.h, only what this server uses. Every struct is
/// made of naturally aligned integers, so `repr(C)` has no padding and matches the kernel's.
pub mod abi {
    /// Protocol major version (the kernel refuses any other).
    pub const MAJOR: u32 = 7;
    /// The minor version this server speaks (at most the kernel's): 7.31, whose replies used
    /// here have the sizes below; later additions live in fields this server leaves zero.
    pub const MINOR: u32 = 31;
    /// Node id of the root directory.
    pub const ROOT_ID: u64 = 1;

    pub const LOOKUP: u32 = 1;
    pub const FORGET: u32 = 2; // no reply
    pub const GETATTR: u32 = 3;
    pub const MKDIR: u32 = 9;
    pub const INIT: u32 = 26;
    pub const INTERRUPT: u32 = 36; // a reply is optional
    pub const BATCH_FORGET: u32 = 42; // no reply

    /// Header of every request read from /dev/fuse (40 bytes); the operation's argument
    /// follows it, `len` counts both.
    #[repr(C)]
    #[derive(Clone, Copy, Debug)]
    pub struct InHeader {
        pub len: u32,
        pub opcode: u32,
        /// Request id, echoed in the reply.
        pub unique: u64,
        /// Node the request is about.
        pub nodeid: u64,
        pub uid: u32,
        pub gid: u32,
        pub pid: u32,
        /// Length of request extensions in 8-byte units (none without FUSE_SECURITY_CTX).
        pub total_extlen: u16,
        pub padding: u16,
    }

    /// Header of every reply written to /dev/fuse (16 bytes). `error` is 0 or a negative
    /// errno; an error reply carries no argument.
    #[repr(C)]
    #[derive(Clone, Copy, Debug)]
    pub struct OutHeader {
        pub len: u32,
        pub error: i32,
        pub unique: u64,
    }

    /// Argument of FUSE_INIT (the kernel's version and capabilities).
    #[repr(C)]
    #[derive(Clone, Copy, Debug)]
    pub struct InitIn {
        pub major: u32,
        pub minor: u32,
        pub max_readahead: u32,
        pub flags: u32,
        // flags2 and unused[11] follow in 7.36+; not read
    }

    /// Reply to FUSE_INIT (64 bytes since 7.28). `flags` 0: none of the optional features.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default)]
    pub struct InitOut {
        pub major: u32,
        pub minor: u32,
        pub max_readahead: u32,
        pub flags: u32,
        pub max_background: u16,
        pub congestion_threshold: u16,
        pub max_write: u32,
        pub time_gran: u32,
        pub max_pages: u16,
        pub map_alignment: u16,
        pub flags2: u32,
        pub unused: [u32; 7],
    }

    /// Attributes of a node (88 bytes).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Attr {
        pub ino: u64,
        pub size: u64,
        pub blocks: u64,
        pub atime: u64,
        pub mtime: u64,
        pub ctime: u64,
        pub atimensec: u32,
        pub mtimensec: u32,
        pub ctimensec: u32,
        pub mode: u32,
        pub nlink: u32,
        pub uid: u32,
        pub gid: u32,
        pub rdev: u32,
        pub blksize: u32,
        pub flags: u32,
    }

    /// Reply to FUSE_GETATTR (104 bytes).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default)]
    pub struct AttrOut {
        /// Cache timeout of the attributes, seconds + nanoseconds.
        pub attr_valid: u64,
        pub attr_valid_nsec: u32,
        pub dummy: u32,
        pub attr: Attr,
    }

    const _: () = assert!(std::mem::size_of::<InHeader>() == 40);
    const _: () = assert!(std::mem::size_of::<OutHeader>() == 16);
    const _: () = assert!(std::mem::size_of::<InitOut>() == 64);
    const _: () = assert!(std::mem::size_of::<Attr>() == 88);
    const _: () = assert!(std::mem::size_of::<AttrOut>() == 104);

    /// The bytes of a reply struct.
    pub fn bytes<T: Copy>(value: &T) -> &[u8] {
        // SAFETY: T is one of the padding-free repr(C) integer structs above.
        unsafe { std::slice::from_raw_parts(value as *const T as *const u8, size_of::<T>()) }
    }

    /// Reads a request struct from the start of `buf` (None when too short).
    pub fn read<T: Copy>(buf: &[u8]) -> Option<T> {
        // SAFETY: length checked; any bit pattern is a valid integer struct.
        (buf.len() >= size_of::<T>())
            .then(|| unsafe { std::ptr::read_unaligned(buf.as_ptr() as *const T) })
    }
}

/// Answers requests until the connection is gone (read returns ENODEV).
pub fn serve(fuse: &File) {
    // at least FUSE_MIN_READ_BUFFER and a header plus max_write
    let mut buf = vec![0u8; (1 << 20) + 4096];
    let mut withheld = None;
    loop {
        let n = match (&*fuse).read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(errno::ENODEV) => return,
            // interrupted, or the request vanished before it was copied
            Err(e) if matches!(e.raw_os_error(), Some(errno::EINTR | errno::ENOENT)) => continue,
            Err(e) => {
                println!("{MARK}error read: {e}");
                return;
            }
        };
        let Some(h) = abi::read::<abi::InHeader>(&buf[..n]) else {
            println!("{MARK}error short request of {n} bytes");
            return;
        };
        let arg = &buf[size_of::<abi::InHeader>()..n];
        println!(
            "{MARK}op {} node {} unique {}",
            h.opcode, h.nodeid, h.unique
        );
        match h.opcode {
            abi::INIT => {
                let init: abi::InitIn = abi::read(arg).expect("fuse_init_in");
                if init.major != abi::MAJOR {
                    println!("{MARK}error kernel protocol {}.{}", init.major, init.minor);
                    reply_error(fuse, h.unique, errno::EPROTO);
                    return;
                }
                let out = abi::InitOut {
                    major: abi::MAJOR,
                    minor: init.minor.min(abi::MINOR),
                    max_readahead: init.max_readahead,
                    max_write: 128 << 10,
                    time_gran: 1,
                    ..abi::InitOut::default()
                };
                reply(fuse, h.unique, abi::bytes(&out));
            }
            abi::GETATTR if h.nodeid == abi::ROOT_ID => {
                let out = abi::AttrOut {
                    attr_valid: 1,
                    attr: abi::Attr {
                        ino: abi::ROOT_ID,
                        mode: S_IFDIR | 0o755,
                        nlink: 2,
                        blksize: 4096,
                        ..abi::Attr::default()
                    },
                    ..abi::AttrOut::default()
                };
                reply(fuse, h.unique, abi::bytes(&out));
            }
            // the root is empty and stays so
            abi::LOOKUP | abi::GETATTR => reply_error(fuse, h.unique, errno::ENOENT),
            abi::MKDIR if withheld.is_none() => {
                // never answered: the caller keeps the directory's inode lock
                withheld = Some(h.unique);
                let name = arg.get(8..).unwrap_or_default();
                let name = name.split(|b| *b == 0).next().unwrap_or_default();
                println!(
                    "{MARK}withheld mkdir {} from pid {}",
                    String::from_utf8_lossy(name),
                    h.pid
                );
            }
            abi::MKDIR => reply_error(fuse, h.unique, errno::EROFS),
            abi::FORGET | abi::BATCH_FORGET | abi::INTERRUPT => {}
            _ => reply_error(fuse, h.unique, errno::ENOSYS),
        }
    }
}

fn reply(fuse: &File, unique: u64, arg: &[u8]) {
    let header = abi::OutHeader {
        len: (size_of::<abi::OutHeader>() + arg.len()) as u32,
        error: 0,
        unique,
    };
    let mut msg = abi::bytes(&header).to_vec();
    msg.extend_from_slice(arg);
    write_reply(fuse, &msg);
}

fn reply_error(fuse: &File, unique: u64, errno: i32) {
    let header = abi::OutHeader {
        len: size_of::<abi::OutHeader>() as u32,
        error: -errno,
        unique,
    };
    write_reply(fuse, abi::bytes(&header));
}

/// One write(2) per reply, as the device requires.
fn write_reply(fuse: &File, msg: &[u8]) {
    match (&*fuse).write(msg) {
        Ok(n) if n == msg.len() => {}
        Ok(n) => println!("{MARK}error short reply {n} of {}", msg.len()),
        // ENOENT: the request was interrupted or aborted meanwhile
        Err(e) => println!("{MARK}error reply: {e}"),
    }
}

//! Truncated and garbage input to every parser gives an error, never a panic; random bytes
//! and mutated recordings never panic any parser.

use huatuo_sources::netlink::{dcb, socket};
use huatuo_sources::{
    arp, buddyinfo, diskstats, kmsg, loadavg, memory, mounts, net_dev, netstat, sockstat, stat,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_sock_diag::SockDiagMessage;
use proptest::prelude::*;
use std::path::Path;

type Parse = fn(&str) -> Result<(), String>;

fn two(text: &str) -> [Option<String>; 2] {
    [Some(text.to_string()), None]
}

/// Every text parser of the crate, by name, reduced to accept/reject.
const PARSERS: [(&str, Parse); 14] = [
    ("proc/stat", |t| stat::parse(t, 0, 100).map(drop)),
    ("proc/stat cpus", |t| stat::parse_cpus(t, 0, 100).map(drop)),
    ("proc/loadavg", |t| loadavg::parse(t, 0).map(drop)),
    ("proc/vmstat", |t| memory::parse_vmstat(t, 0).map(drop)),
    ("proc/meminfo", |t| memory::parse_meminfo(t, 0).map(drop)),
    ("proc/buddyinfo", |t| buddyinfo::parse(t, 0).map(drop)),
    ("proc/diskstats", |t| diskstats::parse(t, 0).map(drop)),
    ("proc/net/dev", |t| net_dev::parse(t, 0).map(drop)),
    ("proc/net/netstat", |t| {
        netstat::parse(&two(t), 0).map(drop).map_err(|f| f.message)
    }),
    ("proc/net/sockstat", |t| {
        sockstat::parse(&two(t), 0, 4096)
            .map(drop)
            .map_err(|f| f.message)
    }),
    ("proc/net/arp", |t| {
        arp::parse(&two(t), 0).map(drop).map_err(|f| f.message)
    }),
    ("proc/self/mountinfo", |t| {
        mounts::parse_mountinfo(t).map(drop)
    }),
    ("kmsg/kmsg.txt", |t| kmsg::parse_file(t).map(drop)),
    ("proc/sys/net/ipv4/tcp_mem", |t| {
        sockstat::parse_tcp_mem(t).map(drop)
    }),
];

/// The recorded file of a parser (`"proc/stat cpus"` reads `proc/stat`).
fn recording(name: &str) -> String {
    let file = name.split(' ').next().unwrap_or(name);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parser(name: &str) -> Parse {
    PARSERS.iter().find(|(n, _)| *n == name).unwrap().1
}

#[test]
fn recordings_parse() {
    for (name, parse) in PARSERS {
        parse(&recording(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn broken_inputs_are_errors() {
    let cases: [(&str, &[&str]); 13] = [
        (
            "proc/stat",
            &["cpu  346", "cpu  1 2 3 4\n", "ctxt x\n", "garbage"],
        ),
        (
            "proc/loadavg",
            &["", "1.95 1.00", "a b c 1/2 3", "1.0 1.0 1.0 12 5"],
        ),
        ("proc/vmstat", &["nr_free_pages", "pgfault x"]),
        (
            "proc/meminfo",
            &[
                "MemTotal:",
                "MemTotal: 12 MB",
                "MemFree: 1 kB",
                "MemTotal 5 kB",
            ],
        ),
        (
            "proc/buddyinfo",
            &[
                "Node 0, zone",
                "Node 0, zone DMA 1 x",
                "Node x, zone DMA 1",
                "garbage",
            ],
        ),
        ("proc/diskstats", &["   7       0 loop0 0 0", "a b c"]),
        (
            "proc/net/dev",
            &[
                "h\nh\n  eth0: 1 2 3",
                "h\nh\neth0: x 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15",
            ],
        ),
        (
            "proc/net/netstat",
            &[
                "TcpExt: A B\n",
                "TcpExt: A B\nTcpExt: 1\n",
                "TcpExt: A\nIpExt: 1\n",
                "TcpExt: A\nTcpExt: x\n",
                "garbage\n",
            ],
        ),
        (
            "proc/net/sockstat",
            &["sockets: used", "TCP: inuse x", "garbage"],
        ),
        (
            "proc/net/arp",
            &["", "IP address HW\n1.2.3.4 0x1 0x2\n", "garbage"],
        ),
        ("proc/self/mountinfo", &["22 27 0:21 / /proc", "x y z"]),
        ("kmsg/kmsg.txt", &["6,1,2,-;ok\nno separator\n", "a,b,c;m"]),
        ("proc/sys/net/ipv4/tcp_mem", &["1 2", "1 2 x", ""]),
    ];
    for (name, bad) in cases {
        for text in bad {
            assert!(parser(name)(text).is_err(), "{name} accepted {text:?}");
        }
    }
    // A recording cut in the middle of its first line is rejected.
    for name in [
        "proc/stat",
        "proc/diskstats",
        "proc/net/dev",
        "proc/net/netstat",
    ] {
        let text = recording(name);
        let cut = &text[..text.find('\n').unwrap() / 2];
        assert!(parser(name)(cut).is_err(), "{name} accepted {cut:?}");
    }
    // Cut in its last line too, where lines have a fixed number of columns (/proc/stat's
    // keys vary by kernel, so a short last line is valid there).
    for name in [
        "proc/diskstats",
        "proc/net/dev",
        "proc/net/netstat",
        "proc/buddyinfo",
    ] {
        let text = recording(name);
        let body = text.trim_end();
        let start = body.rfind('\n').map_or(0, |i| i + 1);
        let cut = &body[..start + (body.len() - start) / 3];
        assert!(parser(name)(cut).is_err(), "{name} accepted {cut:?}");
    }
}

#[test]
fn arp_cache_garbage_is_an_error() {
    let arp = recording("proc/net/arp");
    let texts = [Some(arp), Some("entries\nzz\n".to_string())];
    let failure = arp::parse(&texts, 0).unwrap_err();
    assert_eq!(failure.file, 1);
}

fn mutate(text: &str, at: usize, byte: u8, cut: usize) -> String {
    let mut bytes = text.as_bytes().to_vec();
    if !bytes.is_empty() {
        let at = at % bytes.len();
        bytes[at] = byte;
        bytes.truncate(cut % (bytes.len() + 1));
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes);
        for (_, parse) in PARSERS {
            let _ = parse(&text);
        }
        let _ = socket::parse_datagram::<RouteNetlinkMessage>(&bytes);
        let _ = socket::parse_datagram::<SockDiagMessage>(&bytes);
        let _ = dcb::parse_reply("eth0", &bytes);
    }

    #[test]
    fn mutated_recordings_never_panic(at in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
        for (name, parse) in PARSERS {
            let _ = parse(&mutate(&recording(name), at, byte, cut));
        }
    }

    #[test]
    fn mutated_dcb_replies_never_panic(at in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
        let hex = recording("netlink/dcb_ieee_reply.hex");
        let mut bytes: Vec<u8> = (0..hex.trim().len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let at = at % bytes.len();
        bytes[at] = byte;
        bytes.truncate(cut % (bytes.len() + 1));
        let _ = dcb::parse_reply("eth1", &bytes);
        let _ = socket::parse_datagram::<RouteNetlinkMessage>(&bytes);
    }
}

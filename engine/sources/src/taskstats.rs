//! A cgroup's tasks by state from the kernel: `CGROUPSTATS_CMD_GET` of the taskstats generic
//! netlink family, given an open descriptor of a cgroup v1 directory
//! (`include/uapi/linux/cgroupstats.h`, answered by `cgroupstats_build()` in
//! `kernel/cgroup/cgroup-v1.c`).
//!
//! The kernel counts each task by its exact state: `TASK_RUNNING`, `TASK_INTERRUPTIBLE`,
//! `TASK_UNINTERRUPTIBLE`, `TASK_STOPPED`; a task in any other state (a killable or idle
//! uninterruptible sleep, for instance) counts only as IO wait, and only while it waits for IO
//! (`in_iowait`). The v2 hierarchy is refused (`EINVAL`).

use netlink_packet_core::{
    DecodeError, Emitable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator,
    ParseableParametrized, NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};
use std::fmt::Debug;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

/// The generic netlink family name.
const FAMILY: &str = "TASKSTATS";
/// `CGROUPSTATS_CMD_GET`, `CGROUPSTATS_CMD_NEW` (the reply).
const CMD_GET: u8 = 4;
const CMD_NEW: u8 = 5;
/// `CGROUPSTATS_CMD_ATTR_FD`: the cgroup directory's descriptor (u32).
const ATTR_FD: u16 = 1;
/// `CGROUPSTATS_TYPE_CGROUP_STATS`: the `struct cgroupstats` of the reply.
const TYPE_CGROUP_STATS: u16 = 1;
/// `TASKSTATS_GENL_VERSION`.
const VERSION: u8 = 1;
/// How long a reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// Why `Taskstats::cgroup_stats` has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsError {
    /// The cgroup's directory could not be opened (it went away): only this cgroup is
    /// concerned.
    Directory(String),
    /// The exchange with the kernel failed (no reply within `REPLY_TIMEOUT`, a refusal, a
    /// malformed reply): the connection is in doubt.
    Link(String),
}

impl std::fmt::Display for StatsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatsError::Directory(e) | StatsError::Link(e) => f.write_str(e),
        }
    }
}

/// The kernel's `struct cgroupstats`: tasks of one cgroup by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// `nr_sleeping`: in interruptible sleep.
    pub sleeping: u64,
    /// `nr_running`: running or runnable.
    pub running: u64,
    /// `nr_stopped`: stopped.
    pub stopped: u64,
    /// `nr_uninterruptible`: in uninterruptible sleep.
    pub uninterruptible: u64,
    /// `nr_io_wait`: in another sleep while waiting for IO.
    pub io_wait: u64,
}

impl CgroupStats {
    /// Parses the five native-endian `u64` of `struct cgroupstats`.
    pub fn parse(bytes: &[u8]) -> Result<CgroupStats, String> {
        if bytes.len() < 40 {
            return Err(format!("cgroupstats of {} bytes, need 40", bytes.len()));
        }
        let mut words = bytes.chunks_exact(8).map(|chunk| {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            u64::from_ne_bytes(word)
        });
        let mut next = || words.next().unwrap_or(0);
        Ok(CgroupStats {
            sleeping: next(),
            running: next(),
            stopped: next(),
            uninterruptible: next(),
            io_wait: next(),
        })
    }
}

/// A taskstats message: the request (a descriptor) or the reply (the stats).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Message {
    Get(u32),
    Stats(CgroupStats),
}

impl GenlFamily for Message {
    fn family_name() -> &'static str {
        FAMILY
    }

    fn command(&self) -> u8 {
        match self {
            Message::Get(_) => CMD_GET,
            Message::Stats(_) => CMD_NEW,
        }
    }

    fn version(&self) -> u8 {
        VERSION
    }
}

impl Emitable for Message {
    fn buffer_len(&self) -> usize {
        match self {
            Message::Get(_) => 8,
            Message::Stats(_) => 0,
        }
    }

    fn emit(&self, buffer: &mut [u8]) {
        if let Message::Get(fd) = self {
            // One attribute: length 8 (header and u32), type CGROUPSTATS_CMD_ATTR_FD.
            buffer[0..2].copy_from_slice(&8u16.to_ne_bytes());
            buffer[2..4].copy_from_slice(&ATTR_FD.to_ne_bytes());
            buffer[4..8].copy_from_slice(&fd.to_ne_bytes());
        }
    }
}

impl ParseableParametrized<[u8], GenlHeader> for Message {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        if header.cmd != CMD_NEW {
            return Err(format!("unexpected taskstats command {}", header.cmd).into());
        }
        for nla in NlasIterator::new(buf) {
            let nla = nla?;
            if nla.kind() == TYPE_CGROUP_STATS {
                return CgroupStats::parse(nla.value())
                    .map(Message::Stats)
                    .map_err(DecodeError::from);
            }
        }
        Err("taskstats reply without cgroupstats".into())
    }
}

/// A generic netlink socket talking to the taskstats family.
pub struct Taskstats {
    socket: Socket,
    family: u16,
    sequence: u32,
}

impl Taskstats {
    /// Opens a socket and looks the family up; fails on kernels without taskstats.
    pub fn open() -> Result<Taskstats, String> {
        let mut socket = Socket::new(NETLINK_GENERIC).map_err(|e| format!("socket: {e}"))?;
        socket.bind_auto().map_err(|e| format!("bind: {e}"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| format!("connect: {e}"))?;
        set_receive_timeout(&socket, REPLY_TIMEOUT)?;
        let mut client = Taskstats {
            socket,
            family: 0,
            sequence: 0,
        };
        let reply = client.request(GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(FAMILY.to_string())],
        }))?;
        client.family = reply
            .nlas
            .iter()
            .find_map(|nla| match nla {
                GenlCtrlAttrs::FamilyId(id) => Some(*id),
                _ => None,
            })
            .ok_or_else(|| format!("no id for the {FAMILY} family"))?;
        Ok(client)
    }

    /// The task states of the cgroup v1 directory `dir`.
    pub fn cgroup_stats(&mut self, dir: &Path) -> Result<CgroupStats, StatsError> {
        let directory = std::fs::File::open(dir)
            .map_err(|e| StatsError::Directory(format!("{}: {e}", dir.display())))?;
        let fd = u32::try_from(directory.as_raw_fd())
            .map_err(|e| StatsError::Directory(e.to_string()))?;
        let mut message = GenlMessage::from_payload(Message::Get(fd));
        message.set_resolved_family_id(self.family);
        match self.request(message) {
            Ok(Message::Stats(stats)) => Ok(stats),
            Ok(other) => Err(StatsError::Link(format!(
                "unexpected taskstats reply {other:?}"
            ))),
            Err(e) => Err(StatsError::Link(format!("{}: {e}", dir.display()))),
        }
    }

    /// Sends one request and returns the payload of its reply.
    fn request<F>(&mut self, message: GenlMessage<F>) -> Result<F, String>
    where
        F: GenlFamily + Emitable + ParseableParametrized<[u8], GenlHeader> + Debug,
    {
        self.sequence = self.sequence.wrapping_add(1);
        let mut packet = NetlinkMessage::new(NetlinkHeader::default(), message.into());
        packet.header.flags = NLM_F_REQUEST;
        packet.header.sequence_number = self.sequence;
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .map_err(|e| format!("send: {e}"))?;
        // Skip replies to earlier requests (one that timed out may answer late).
        loop {
            let (bytes, _) = self
                .socket
                .recv_from_full()
                .map_err(|e| format!("recv: {e}"))?;
            let reply = NetlinkMessage::<GenlMessage<F>>::deserialize(&bytes)
                .map_err(|e| format!("malformed taskstats reply: {e}"))?;
            if reply.header.sequence_number != self.sequence {
                continue;
            }
            return match reply.payload {
                NetlinkPayload::InnerMessage(inner) => Ok(inner.payload),
                NetlinkPayload::Error(error) => Err(match error.code {
                    Some(code) => std::io::Error::from_raw_os_error(-code.get()).to_string(),
                    None => "unexpected acknowledgement".to_string(),
                }),
                other => Err(format!("unexpected reply {other:?}")),
            };
        }
    }
}

/// Bounds every receive on `socket` by `timeout`.
fn set_receive_timeout(socket: &Socket, timeout: Duration) -> Result<(), String> {
    let value = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
    };
    // SAFETY: setsockopt(2) reads `size_of::<timeval>()` bytes from `value`, alive for the
    // call; the descriptor belongs to `socket`.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&value as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(format!("SO_RCVTIMEO: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroupstats_are_five_counters_in_kernel_order() {
        let bytes: Vec<u8> = [3u64, 2, 1, 4, 5]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        let stats = CgroupStats::parse(&bytes).expect("parses");
        let expected = CgroupStats {
            sleeping: 3,
            running: 2,
            stopped: 1,
            uninterruptible: 4,
            io_wait: 5,
        };
        assert_eq!(stats, expected);
        let err = CgroupStats::parse(&bytes[..32]).unwrap_err();
        assert!(err.contains("32 bytes"), "{err}");
    }

    #[test]
    fn the_request_carries_the_descriptor_and_the_reply_parses() {
        let request = Message::Get(7);
        let mut buf = vec![0u8; request.buffer_len()];
        request.emit(&mut buf);
        let mut expected = Vec::new();
        expected.extend(8u16.to_ne_bytes());
        expected.extend(ATTR_FD.to_ne_bytes());
        expected.extend(7u32.to_ne_bytes());
        assert_eq!(buf, expected);
        // A reply: one CGROUPSTATS_TYPE_CGROUP_STATS attribute of 40 bytes.
        let mut reply = Vec::new();
        reply.extend_from_slice(&44u16.to_ne_bytes());
        reply.extend_from_slice(&TYPE_CGROUP_STATS.to_ne_bytes());
        for v in [0u64, 1, 0, 2, 3] {
            reply.extend_from_slice(&v.to_ne_bytes());
        }
        let header = GenlHeader {
            cmd: CMD_NEW,
            version: VERSION,
        };
        let parsed = Message::parse_with_param(&reply, header).expect("parses");
        let Message::Stats(stats) = parsed else {
            panic!("{parsed:?}");
        };
        assert_eq!(
            (stats.running, stats.uninterruptible, stats.io_wait),
            (1, 2, 3)
        );
        let wrong = GenlHeader {
            cmd: CMD_GET,
            version: VERSION,
        };
        assert!(Message::parse_with_param(&reply, wrong).is_err());
    }
}

//! `netlink.dcb`: PFC frame counters per (device, prio) through the DCB netlink interface
//! (`RTM_GETDCB`, `DCB_CMD_IEEE_GET`), or from a recorded JSON list of [`PfcCounters`].
//!
//! netlink-packet-route does not speak DCB, so the request is encoded and the reply's
//! attributes walked here, following `include/uapi/linux/dcbnl.h`.

use super::link::{self, netlink_error, read_recorded};
use super::socket;
use crate::common::{int, polled, SampleBuilder};
use huatuo_dsl::catalog::SourceSchema;
use huatuo_dsl::source::{ReadError, Reader};
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::Sample;
use netlink_packet_core::{NetlinkBuffer, NlasIterator, NLA_TYPE_MASK, NLMSG_ERROR, NLM_F_REQUEST};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Catalog name.
pub const NAME: &str = "netlink.dcb";

/// `RTM_GETDCB` message type.
pub const RTM_GETDCB: u16 = 78;
const DCB_CMD_IEEE_GET: u8 = 21;
const DCB_ATTR_IFNAME: u16 = 1;
const DCB_ATTR_IEEE: u16 = 13;
const DCB_ATTR_IEEE_PFC: u16 = 2;
/// Offset of `requests[8]` in `struct ieee_pfc` (u8 cap, en, mbc; u16 delay; u64 arrays).
const PFC_REQUESTS_OFFSET: usize = 8;
const PFC_INDICATIONS_OFFSET: usize = PFC_REQUESTS_OFFSET + 64;
const PFC_SIZE: usize = PFC_INDICATIONS_OFFSET + 64;

/// PFC counters of one device, per priority 0..7.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PfcCounters {
    /// Interface name.
    pub device: String,
    /// PFC frames sent, per priority (`requests`).
    pub sent: [u64; 8],
    /// PFC frames received, per priority (`indications`).
    pub received: [u64; 8],
}

/// The schema of `netlink.dcb`.
pub fn schema() -> SourceSchema {
    polled(
        NAME,
        "PFC frame counters per device and priority (DCB netlink, IEEE 802.1Qbb)",
        &["device", "prio"],
        vec![
            int("pfc_received", Dim::Count, "PFC pause frames received"),
            int("pfc_send", Dim::Count, "PFC pause frames sent"),
        ],
    )
}

/// Encodes an `RTM_GETDCB`/`DCB_CMD_IEEE_GET` request for `device`.
pub fn encode_request(device: &str, sequence: u32) -> Vec<u8> {
    let name_len = device.len() + 1;
    let attr_len = 4 + name_len;
    let total = 16 + 4 + attr_len.div_ceil(4) * 4;
    let mut buf = Vec::with_capacity(total);
    buf.extend_from_slice(&u32::try_from(total).unwrap_or(u32::MAX).to_ne_bytes());
    buf.extend_from_slice(&RTM_GETDCB.to_ne_bytes());
    buf.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    buf.extend_from_slice(&sequence.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    // struct dcbmsg { u8 dcb_family = AF_UNSPEC; u8 cmd; u16 pad }
    buf.extend_from_slice(&[0, DCB_CMD_IEEE_GET, 0, 0]);
    buf.extend_from_slice(&u16::try_from(attr_len).unwrap_or(u16::MAX).to_ne_bytes());
    buf.extend_from_slice(&DCB_ATTR_IFNAME.to_ne_bytes());
    buf.extend_from_slice(device.as_bytes());
    buf.push(0);
    buf.resize(total, 0);
    buf
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_ne_bytes(word)
}

/// Parses a reply to [`encode_request`]: `Ok(None)` when the device has no DCB (the
/// kernel answers EOPNOTSUPP/EINVAL/ENODEV) or no PFC attribute.
pub fn parse_reply(device: &str, bytes: &[u8]) -> Result<Option<PfcCounters>, String> {
    let message = NetlinkBuffer::new_checked(bytes).map_err(|e| format!("netlink header: {e}"))?;
    let payload = message.payload();
    if message.message_type() == NLMSG_ERROR {
        let code = payload
            .get(..4)
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or_default();
        return match -code {
            0 | 95 | 22 | 19 => Ok(None),
            errno => Err(format!(
                "kernel error: {}",
                std::io::Error::from_raw_os_error(errno)
            )),
        };
    }
    if message.message_type() != RTM_GETDCB {
        return Err(format!(
            "unexpected message type {}",
            message.message_type()
        ));
    }
    let attributes = payload.get(4..).ok_or("reply shorter than struct dcbmsg")?;
    for nla in NlasIterator::new(attributes) {
        let nla = nla.map_err(|e| format!("DCB attribute: {e}"))?;
        if nla.kind() & NLA_TYPE_MASK != DCB_ATTR_IEEE {
            continue;
        }
        for inner in NlasIterator::new(nla.value()) {
            let inner = inner.map_err(|e| format!("DCB_ATTR_IEEE attribute: {e}"))?;
            if inner.kind() & NLA_TYPE_MASK != DCB_ATTR_IEEE_PFC {
                continue;
            }
            let pfc = inner.value();
            if pfc.len() < PFC_SIZE {
                return Err(format!(
                    "DCB_ATTR_IEEE_PFC: {} bytes, struct ieee_pfc needs {PFC_SIZE}",
                    pfc.len()
                ));
            }
            let mut counters = PfcCounters {
                device: device.to_string(),
                ..PfcCounters::default()
            };
            for prio in 0..8 {
                counters.sent[prio] = u64_at(pfc, PFC_REQUESTS_OFFSET + prio * 8);
                counters.received[prio] = u64_at(pfc, PFC_INDICATIONS_OFFSET + prio * 8);
            }
            return Ok(Some(counters));
        }
    }
    Ok(None)
}

/// Asks the kernel for the PFC counters of `devices` (every link when empty); devices
/// without DCB are skipped.
pub fn dump_live(devices: &[String]) -> Result<Vec<PfcCounters>, String> {
    let names: Vec<String> = if devices.is_empty() {
        link::dump_live()?.into_iter().map(|l| l.ifname).collect()
    } else {
        devices.to_vec()
    };
    let socket = socket::open()?;
    let mut out = Vec::new();
    for (sequence, name) in (1u32..).zip(names) {
        let request = encode_request(&name, sequence);
        socket.send(&request, 0).map_err(|e| format!("send: {e}"))?;
        let (reply, _) = socket.recv_from_full().map_err(|e| format!("recv: {e}"))?;
        if let Some(counters) = parse_reply(&name, &reply)? {
            out.push(counters);
        }
    }
    Ok(out)
}

/// One sample per (device, prio).
pub fn to_samples(counters: &[PfcCounters], now_ns: i64) -> Vec<Sample> {
    counters
        .iter()
        .flat_map(|c| {
            (0..8).map(move |prio| {
                SampleBuilder::new()
                    .label("device", c.device.clone())
                    .label("prio", prio.to_string())
                    .uint("pfc_received", c.received[prio])
                    .uint("pfc_send", c.sent[prio])
                    .build(NAME, now_ns)
            })
        })
        .collect()
}

/// Reads PFC counters live, or from a recorded JSON list of [`PfcCounters`].
pub struct DcbReader {
    recorded: Option<PathBuf>,
    devices: Vec<String>,
}

impl DcbReader {
    /// A reader of the live kernel asking `devices` (every link when empty;
    /// HUATUO's `NetdevDCB.DeviceList`).
    pub fn live(devices: Vec<String>) -> Self {
        Self {
            recorded: None,
            devices,
        }
    }

    /// A reader of a recorded JSON list of [`PfcCounters`].
    pub fn recorded(path: PathBuf) -> Self {
        Self {
            recorded: Some(path),
            devices: Vec::new(),
        }
    }
}

impl Reader for DcbReader {
    fn schema(&self) -> SourceSchema {
        schema()
    }

    fn read(&mut self, now_ns: i64) -> Result<Vec<Sample>, ReadError> {
        let counters = match &self.recorded {
            Some(path) => read_recorded(NAME, path)?,
            None => dump_live(&self.devices).map_err(|m| netlink_error(NAME, "RTM_GETDCB", m))?,
        };
        Ok(to_samples(&counters, now_ns))
    }
}

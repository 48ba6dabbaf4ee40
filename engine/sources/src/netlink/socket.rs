//! Blocking netlink sockets (rtnetlink, sock_diag): dump requests and group subscriptions.

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::path::Path;

/// Most messages one dump may return; past it the dump is refused (bounded memory).
pub const MAX_DUMP_MESSAGES: usize = 65_536;

/// What one datagram held.
#[derive(Debug)]
pub struct Datagram<M = RouteNetlinkMessage> {
    /// The protocol's messages in order.
    pub messages: Vec<M>,
    /// True when the datagram ended a dump (`NLMSG_DONE`).
    pub done: bool,
}

/// Splits a datagram into the messages of its protocol (`M`); a kernel error reply becomes
/// `Err`.
pub fn parse_datagram<M: NetlinkDeserializable>(mut bytes: &[u8]) -> Result<Datagram<M>, String> {
    let mut out = Datagram {
        messages: Vec::new(),
        done: false,
    };
    while !bytes.is_empty() {
        let message = NetlinkMessage::<M>::deserialize(bytes)
            .map_err(|e| format!("malformed netlink message: {e}"))?;
        let length = message.header.length as usize;
        match message.payload {
            NetlinkPayload::InnerMessage(inner) => out.messages.push(inner),
            NetlinkPayload::Done(_) => out.done = true,
            NetlinkPayload::Error(error) => {
                if let Some(code) = error.code {
                    return Err(format!(
                        "kernel error: {}",
                        std::io::Error::from_raw_os_error(-code.get())
                    ));
                }
            }
            _ => {}
        }
        // Messages are 4-byte aligned inside a datagram.
        let advance = length.div_ceil(4) * 4;
        if length == 0 || advance > bytes.len() {
            break;
        }
        bytes = &bytes[advance..];
    }
    Ok(out)
}

/// Opens a route socket bound to the kernel.
pub fn open() -> Result<Socket, String> {
    open_protocol(NETLINK_ROUTE)
}

/// Opens a netlink socket of `protocol` (`netlink_sys::protocols`) bound to the kernel.
pub fn open_protocol(protocol: isize) -> Result<Socket, String> {
    let mut socket = Socket::new(protocol).map_err(|e| format!("socket: {e}"))?;
    socket.bind_auto().map_err(|e| format!("bind: {e}"))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| format!("connect: {e}"))?;
    Ok(socket)
}

/// Opens a route socket inside the network namespace at `netns` (`/proc/<pid>/ns/net`,
/// `/run/netns/NAME`), or in the caller's when `None`. Entering a namespace needs
/// CAP_SYS_ADMIN; it happens on a short-lived thread ([`crate::netns::run_in`]), the
/// socket stays in that namespace.
pub fn open_in(netns: Option<&Path>) -> Result<Socket, String> {
    let Some(netns) = netns else {
        return open();
    };
    crate::netns::run_in(netns, open)
}

/// Sends a dump request in the namespace `netns` (the caller's when `None`) and collects
/// every reply until `NLMSG_DONE`.
pub fn dump(
    netns: Option<&Path>,
    request: RouteNetlinkMessage,
) -> Result<Vec<RouteNetlinkMessage>, String> {
    let socket = open_in(netns)?;
    dump_on(&socket, request)
}

/// Like [`dump`], on an already open socket of the request's protocol.
pub fn dump_on<M>(socket: &Socket, request: M) -> Result<Vec<M>, String>
where
    M: NetlinkSerializable + NetlinkDeserializable + std::fmt::Debug,
    NetlinkPayload<M>: From<M>,
{
    let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(request));
    packet.header.flags = NLM_F_DUMP | NLM_F_REQUEST;
    packet.header.sequence_number = 1;
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0).map_err(|e| format!("send: {e}"))?;
    let mut messages = Vec::new();
    loop {
        let (bytes, _) = socket.recv_from_full().map_err(|e| format!("recv: {e}"))?;
        let datagram = parse_datagram(&bytes)?;
        messages.extend(datagram.messages);
        if messages.len() > MAX_DUMP_MESSAGES {
            return Err(format!("dump larger than {MAX_DUMP_MESSAGES} messages"));
        }
        if datagram.done || bytes.is_empty() {
            return Ok(messages);
        }
    }
}

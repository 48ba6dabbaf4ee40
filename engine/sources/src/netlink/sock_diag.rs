//! Listening TCP sockets of this network namespace, from the kernel's socket diagnostics
//! (`NETLINK_SOCK_DIAG`, inet_diag; see sock_diag(7)). The request asks for the LISTEN state
//! only, so the kernel walks its listening hash and never the established one, which
//! `/proc/net/tcp` prints whole: the cost grows with the listeners, not with the connections.

use super::socket;
use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6, IPPROTO_TCP},
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
    SockDiagMessage,
};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;

/// The local ports of the listening TCP sockets (IPv4 and IPv6) of the caller's network
/// namespace, sorted, without repeats. An error names the step that failed (no inet_diag in
/// the kernel, a refused socket).
pub fn tcp_listening_ports() -> Result<Vec<u16>, String> {
    let netlink = socket::open_protocol(NETLINK_SOCK_DIAG)?;
    let mut ports = Vec::new();
    for (family, socket_id) in [
        (AF_INET, SocketId::new_v4()),
        (AF_INET6, SocketId::new_v6()),
    ] {
        let request = SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::LISTEN,
            socket_id,
        });
        for reply in socket::dump_on(&netlink, request)? {
            if let SockDiagMessage::InetResponse(response) = reply {
                ports.push(response.header.socket_id.source_port);
            }
        }
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

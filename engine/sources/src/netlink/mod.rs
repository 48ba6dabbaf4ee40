//! Netlink sources: qdisc statistics, links and link events, DCB PFC counters (rtnetlink), and
//! listening sockets (sock_diag).

pub mod dcb;
pub mod link;
pub mod qdisc;
pub mod sock_diag;
pub mod socket;

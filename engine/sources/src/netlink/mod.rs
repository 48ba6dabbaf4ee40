//! rtnetlink sources: qdisc statistics, links and link events, DCB PFC counters.

pub mod dcb;
pub mod link;
pub mod qdisc;
pub mod socket;

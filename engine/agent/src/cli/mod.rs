//! The subcommands of the `huatuo` binary.

pub mod catalog;
pub mod check;
pub mod client;
pub mod inputs;
pub mod op;
pub mod reload;
pub mod replay;
pub mod run;
pub mod status;
pub mod watch;

//! The huatuo agent: CLI, catalog assembly, capture actions and the daemon.

pub mod capture;
pub mod catalog;
pub mod catalog_doc;
pub mod cli;
pub mod daemon;
pub mod logging;
pub mod operation;
pub mod profiling;
pub mod rules;

//! Capture actions: their schemas and the code that runs them when a rule fires.

pub mod procscan;
pub mod runner;
pub mod schemas;
pub mod task_text;
pub mod waitrate;

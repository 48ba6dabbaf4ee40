//! Benchmarks of huatuo; see `benches/` and the scripts beside them, figures in RESULTS.md.

pub mod bpf_stats;
pub mod empty_program;
pub mod runqlat_cost;

//! Benchmarks of huatuo; see `benches/` and the scripts beside them, figures in RESULTS.md.

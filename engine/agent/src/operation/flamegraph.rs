//! SVG flame graphs of folded stacks: the HTTP crate's renderer, which the console's record
//! flame graphs share.

pub use huatuo_http::flame::svg;

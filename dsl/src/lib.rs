//! The `.hto` rule language of huatuo: units, values, the syntax tree, the source catalog,
//! the parser and the checker.

pub mod ast;
pub mod builtins;
pub mod catalog;
pub mod check;
pub mod diag;
pub mod output;
pub mod parser;
pub mod render;
pub mod source;
pub mod tracer_names;
pub mod units;
pub mod value;

//! The rule evaluator: compiled plans, stateful functions, cooldowns, rhai scripts.

pub mod bounded;
pub mod funcs;
pub mod ops;
pub mod patterns;
pub mod script;

//! The rule evaluator: compiled plans, stateful functions, cooldowns, rhai scripts.

pub mod bounded;
pub mod cooldown;
pub mod expr;
pub mod funcs;
pub mod limit;
pub mod ops;
pub mod patterns;
pub mod script;

//! The rule evaluator: compiled plans, stateful functions, cooldowns, rhai scripts

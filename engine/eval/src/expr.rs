//! Compiled expressions and their evaluation against one sample.

use crate::funcs::{call_pure, step, Pure, SlotState, Stateful, StepResult};
use crate::ops;
use crate::script::ScriptHost;
use huatuo_dsl::ast::{BinOp, LogicOp};
use huatuo_dsl::value::{Sample, Value};
use regex::Regex;

/// An expression with names resolved, constants folded and regexes compiled.
#[derive(Debug, Clone)]
pub enum CExpr {
    /// A constant (literal, param, config value, folded expression).
    Const(Value),
    /// A sample field, else a sample label, else `now` (the sample time); `Null` when absent.
    Field(String),
    /// Like `Field`, but an absent name is the word itself (`stack(kernel)`).
    Word(String),
    /// The value of the `let`/`script` binding at this index.
    Local(usize),
    /// `[a, b, ...]`.
    List(Vec<CExpr>),
    /// `not x`.
    Not(Box<CExpr>),
    /// `-x`.
    Neg(Box<CExpr>),
    /// `a and b and ...` or `a or b or ...` (every operand always evaluated, so that
    /// stateful calls see every sample).
    Logic(LogicOp, Vec<CExpr>),
    /// Arithmetic or comparison.
    Binary(BinOp, Box<CExpr>, Box<CExpr>),
    /// `x =~ re`, `x !~ re`, `matches_any(x, [re...])` with constant patterns.
    Match {
        /// The string (or list of strings) tested.
        subject: Box<CExpr>,
        /// Patterns; any match counts.
        patterns: Vec<Regex>,
        /// `!~`.
        negate: bool,
        /// A missing subject counts as no match (`matches_any`) instead of undefined (`=~`).
        missing_is_no_match: bool,
    },
    /// A stateless builtin.
    Pure(Pure, Vec<CExpr>),
    /// A stateful builtin with its state slot and constant `n`.
    Stateful {
        /// Which function.
        func: Stateful,
        /// Index of its state in the entity's slots.
        slot: usize,
        /// The tracked value.
        arg: Box<CExpr>,
        /// The constant second argument (`ema`, `window`), else 0.
        n: f64,
    },
    /// `filter_allows(included, excluded)` with its rules compiled.
    Filter(Box<crate::filter::FieldFilter>),
    /// A stdlib script call `file::fn(args)`; undefined when an argument is.
    Script {
        /// Qualified name.
        name: String,
        /// Arguments.
        args: Vec<CExpr>,
    },
}

/// What an expression is evaluated against.
pub struct Ctx<'a> {
    /// The sample.
    pub sample: &'a Sample,
    /// Values of the bindings evaluated so far.
    pub locals: &'a [Value],
    /// State of the stateful call sites for this entity (absent in stateless contexts).
    pub slots: Option<&'a mut [SlotState]>,
    /// The script library.
    pub scripts: Option<&'a ScriptHost>,
    /// Set when a stateful call lacked history.
    pub warming: bool,
}

impl CExpr {
    /// Whether this is a constant.
    pub fn as_const(&self) -> Option<&Value> {
        match self {
            CExpr::Const(v) => Some(v),
            _ => None,
        }
    }

    /// Evaluates the expression.
    pub fn eval(&self, ctx: &mut Ctx<'_>) -> Result<Value, String> {
        match self {
            CExpr::Const(v) => Ok(v.clone()),
            CExpr::Field(name) => Ok(lookup(ctx.sample, name).unwrap_or(Value::Null)),
            CExpr::Word(name) => {
                Ok(lookup(ctx.sample, name).unwrap_or_else(|| Value::Str(name.clone())))
            }
            CExpr::Local(i) => Ok(ctx.locals.get(*i).cloned().unwrap_or(Value::Null)),
            CExpr::List(items) => items
                .iter()
                .map(|item| item.eval(ctx))
                .collect::<Result<_, _>>()
                .map(Value::List),
            CExpr::Not(inner) => {
                let t = ops::truth(&inner.eval(ctx)?)?;
                Ok(ops::from_truth(t.map(|b| !b)))
            }
            CExpr::Neg(inner) => ops::binary(BinOp::Sub, &Value::Int(0), &inner.eval(ctx)?),
            CExpr::Logic(op, operands) => {
                let combine = match op {
                    LogicOp::And => ops::and,
                    LogicOp::Or => ops::or,
                };
                let mut result = None;
                for operand in operands {
                    let t = ops::truth(&operand.eval(ctx)?)?;
                    result = Some(result.map_or(t, |acc| combine(acc, t)));
                }
                Ok(ops::from_truth(result.flatten()))
            }
            CExpr::Binary(op, a, b) => {
                let left = a.eval(ctx)?;
                let right = b.eval(ctx)?;
                ops::binary(*op, &left, &right)
            }
            CExpr::Match {
                subject,
                patterns,
                negate,
                missing_is_no_match,
            } => {
                let value = subject.eval(ctx)?;
                match &value {
                    Value::Null if *missing_is_no_match => Ok(Value::Bool(*negate)),
                    Value::Null => Ok(Value::Null),
                    Value::Str(_) | Value::List(_) | Value::Json(_) => {
                        let hit = patterns
                            .iter()
                            .any(|re| crate::patterns::any_string_matches(&value, re));
                        Ok(Value::Bool(hit != *negate))
                    }
                    other => Err(format!(
                        "a regex match needs a string, found {}",
                        ops::type_name(other)
                    )),
                }
            }
            CExpr::Pure(func, args) => {
                let values = args
                    .iter()
                    .map(|arg| arg.eval(ctx))
                    .collect::<Result<Vec<_>, _>>()?;
                call_pure(*func, &values)
            }
            CExpr::Stateful { func, slot, arg, n } => {
                let x = arg.eval(ctx)?;
                let time_ns = ctx.sample.time_ns;
                let state = ctx
                    .slots
                    .as_deref_mut()
                    .and_then(|slots| slots.get_mut(*slot))
                    .ok_or_else(|| "a stateful function is not allowed here".to_string())?;
                match step(*func, state, x, *n, time_ns)? {
                    StepResult::Value(v) => Ok(v),
                    StepResult::WarmingUp => {
                        ctx.warming = true;
                        Ok(Value::Null)
                    }
                }
            }
            CExpr::Filter(filter) => Ok(Value::Bool(filter.allows(ctx.sample))),
            CExpr::Script { name, args } => {
                let values = args
                    .iter()
                    .map(|arg| arg.eval(ctx))
                    .collect::<Result<Vec<_>, _>>()?;
                // A script is never called with an undefined argument (a missing field, a
                // `delta` or `rate` still warming up): its value is undefined, as a builtin's.
                if values.iter().any(|v| matches!(v, Value::Null)) {
                    return Ok(Value::Null);
                }
                let host = ctx
                    .scripts
                    .ok_or_else(|| format!("{name}: no script library loaded"))?;
                host.call(name, &values)
            }
        }
    }
}

/// A field, label, or `now` of a sample.
pub fn lookup(sample: &Sample, name: &str) -> Option<Value> {
    if let Some(v) = sample.fields.get(name) {
        return Some(v.clone());
    }
    if let Some(l) = sample.labels.get(name) {
        return Some(Value::Str(l.clone()));
    }
    (name == "now").then_some(Value::Int(sample.time_ns))
}

/// Evaluates an expression that uses no sample, binding or state (compile-time folding).
pub fn eval_const(expr: &CExpr, scripts: Option<&ScriptHost>) -> Result<Value, String> {
    let sample = Sample::default();
    let mut ctx = Ctx {
        sample: &sample,
        locals: &[],
        slots: None,
        scripts,
        warming: false,
    };
    expr.eval(&mut ctx)
}

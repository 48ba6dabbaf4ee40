//! The built-in functions of the rule language: stateless ones and the stateful ones whose
//! memory is kept per (rule, call site, entity).

use crate::ops::{number, type_name};
use huatuo_dsl::value::Value;
use std::collections::VecDeque;

/// Largest window a rule may ask for with `window(x, n)`.
pub const MAX_WINDOW: usize = 10_000;

/// A function without memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pure {
    /// `percent(part, whole)`: 100·part/whole, 0 when whole is 0.
    Percent,
    /// `abs(x)`.
    Abs,
    /// `first(list)`: the oldest element.
    First,
    /// `last(list)`: the newest element.
    Last,
    /// `min(list)`.
    Min,
    /// `max(list)`.
    Max,
    /// `avg(list)`.
    Avg,
    /// `sum(list)`.
    Sum,
    /// `len(list|string)`.
    Len,
    /// `contains(string, sub)` or `contains(list, item)`.
    Contains,
    /// `matches_any(string|list, patterns)`.
    MatchesAny,
    /// `join(list, separator)`: the elements as one string.
    Join,
    /// `all(list_of_bools)`: true when every element is true and the list is not empty.
    All,
    /// `any(list_of_bools)`: true when at least one element is true.
    Any,
    /// `reverse_dns(ip, enabled)`: the cached host name of an address (see `crate::rdns`).
    ReverseDns,
}

/// A function with memory per entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stateful {
    /// `delta(x)`: x minus its previous value; undefined on the first sample.
    Delta,
    /// `rate(x)`: delta per second of sample time; undefined on the first sample.
    Rate,
    /// `ema(x, n)`: loadavg-style moving average `ema·(n−1)/n + x/n`, seeded by the first x.
    Ema,
    /// `window(x, n)`: the last n values of x, oldest first (partial until n samples seen).
    Window,
    /// `changed(x)`: whether x differs from its previous value; undefined on the first sample.
    Changed,
    /// `total(x)`: the running sum of x, starting with the first x.
    Total,
}

/// How the evaluator runs a builtin.
pub enum Builtin {
    /// A stateless function.
    Pure(Pure),
    /// A stateful function.
    Stateful(Stateful),
    /// `config(key, default)`, folded at compile time.
    Config,
    /// `filter_allows(included, excluded)`: rules compiled at load, applied to the sample.
    Filter,
}

/// How the evaluator runs the builtin called `name` (a name of `huatuo_dsl::builtins`).
pub fn dispatch(name: &str) -> Option<Builtin> {
    use Builtin::{Config, Filter, Pure as P, Stateful as S};
    Some(match name {
        "config" => Config,
        "filter_allows" => Filter,
        "delta" => S(Stateful::Delta),
        "rate" => S(Stateful::Rate),
        "ema" => S(Stateful::Ema),
        "window" => S(Stateful::Window),
        "changed" => S(Stateful::Changed),
        "total" => S(Stateful::Total),
        "percent" => P(Pure::Percent),
        "abs" => P(Pure::Abs),
        "first" => P(Pure::First),
        "last" => P(Pure::Last),
        "min" => P(Pure::Min),
        "max" => P(Pure::Max),
        "avg" => P(Pure::Avg),
        "sum" => P(Pure::Sum),
        "len" => P(Pure::Len),
        "all" => P(Pure::All),
        "any" => P(Pure::Any),
        "contains" => P(Pure::Contains),
        "matches_any" => P(Pure::MatchesAny),
        "join" => P(Pure::Join),
        "reverse_dns" => P(Pure::ReverseDns),
        _ => return None,
    })
}

/// `reverse_dns(ip, enabled)`: missing when disabled, else the name the resolver has cached
/// (empty until it is resolved, or when the address has none or is not an address).
fn reverse_dns(ip: &Value, enabled: &Value) -> Result<Value, String> {
    if !crate::ops::truth(enabled)?.unwrap_or(false) {
        return Ok(Value::Null);
    }
    let Value::Str(text) = ip else {
        return Err(format!(
            "reverse_dns() needs an address string, found {}",
            type_name(ip)
        ));
    };
    Ok(Value::Str(match text.parse() {
        Ok(addr) => crate::rdns::Resolver::global().name(addr),
        Err(_) => String::new(),
    }))
}

/// Calls a stateless function.
pub fn call_pure(func: Pure, args: &[Value]) -> Result<Value, String> {
    let arg = |i: usize| args.get(i).unwrap_or(&Value::Null);
    if matches!(func, Pure::Contains | Pure::MatchesAny)
        && args.iter().any(|a| matches!(a, Value::Null))
    {
        // Membership of something missing: no match, so a filter on an absent label
        // (a host sample's container_level) keeps the sample.
        return Ok(Value::Bool(false));
    }
    if args.iter().any(|a| matches!(a, Value::Null)) && func != Pure::Len {
        return Ok(Value::Null);
    }
    match func {
        Pure::ReverseDns => reverse_dns(arg(0), arg(1)),
        Pure::Percent => {
            let (part, whole) = (num(arg(0))?, num(arg(1))?);
            Ok(Value::Float(if whole == 0.0 {
                0.0
            } else {
                100.0 * part / whole
            }))
        }
        Pure::Abs => match arg(0) {
            Value::Int(i) => i
                .checked_abs()
                .map(Value::Int)
                .ok_or_else(|| "integer overflow in abs".to_string()),
            other => Ok(Value::Float(num(other)?.abs())),
        },
        Pure::First => Ok(list(arg(0))?.first().cloned().unwrap_or(Value::Null)),
        Pure::Last => Ok(list(arg(0))?.last().cloned().unwrap_or(Value::Null)),
        Pure::Min | Pure::Max => extreme(func == Pure::Max, list(arg(0))?),
        Pure::Sum => sum(list(arg(0))?),
        Pure::Avg => {
            let items = list(arg(0))?;
            if items.is_empty() {
                return Ok(Value::Null);
            }
            let total = num(&sum(items)?)?;
            Ok(Value::Float(total / items.len() as f64))
        }
        Pure::Join => {
            let separator = match arg(1) {
                Value::Str(s) => s.as_str(),
                other => {
                    return Err(format!(
                        "join() needs a string separator, found {}",
                        type_name(other)
                    ))
                }
            };
            let parts: Vec<String> = list(arg(0))?
                .iter()
                .map(|item| match item {
                    Value::Str(s) => s.clone(),
                    other => serde_json::to_string(other).unwrap_or_default(),
                })
                .collect();
            Ok(Value::Str(parts.join(separator)))
        }
        Pure::Len => match arg(0) {
            Value::List(items) => Ok(Value::Int(items.len() as i64)),
            Value::Str(s) => Ok(Value::Int(s.chars().count() as i64)),
            Value::Null => Ok(Value::Int(0)),
            other => Err(format!(
                "len() needs a list or string, found {}",
                type_name(other)
            )),
        },
        Pure::Contains => match (arg(0), arg(1)) {
            (Value::Str(s), Value::Str(sub)) => Ok(Value::Bool(s.contains(sub.as_str()))),
            (Value::List(items), item) => Ok(Value::Bool(items.contains(item))),
            (a, b) => Err(format!(
                "contains() needs (string, string) or (list, item), found ({}, {})",
                type_name(a),
                type_name(b)
            )),
        },
        Pure::All | Pure::Any => {
            let mut truths = Vec::new();
            for item in list(arg(0))? {
                truths.push(crate::ops::truth(item)?);
            }
            Ok(if func == Pure::All {
                if truths.is_empty() {
                    Value::Bool(false)
                } else {
                    crate::ops::from_truth(truths.into_iter().fold(Some(true), crate::ops::and))
                }
            } else {
                crate::ops::from_truth(truths.into_iter().fold(Some(false), crate::ops::or))
            })
        }
        Pure::MatchesAny => {
            let res = crate::patterns::build_list(arg(1))?;
            Ok(Value::Bool(
                res.iter()
                    .any(|re| crate::patterns::any_string_matches(arg(0), re)),
            ))
        }
    }
}

fn num(value: &Value) -> Result<f64, String> {
    number(value).ok_or_else(|| format!("expected a number, found {}", type_name(value)))
}

fn list(value: &Value) -> Result<&[Value], String> {
    match value {
        Value::List(items) => Ok(items),
        other => Err(format!("expected a list, found {}", type_name(other))),
    }
}

fn extreme(want_max: bool, items: &[Value]) -> Result<Value, String> {
    let mut best: Option<&Value> = None;
    for item in items.iter().filter(|v| !matches!(v, Value::Null)) {
        let x = num(item)?;
        let better = match best {
            None => true,
            Some(b) => {
                let y = num(b)?;
                if want_max {
                    x > y
                } else {
                    x < y
                }
            }
        };
        if better {
            best = Some(item);
        }
    }
    Ok(best.cloned().unwrap_or(Value::Null))
}

fn sum(items: &[Value]) -> Result<Value, String> {
    let mut acc = Value::Int(0);
    for item in items.iter().filter(|v| !matches!(v, Value::Null)) {
        num(item)?;
        acc = crate::ops::binary(huatuo_dsl::ast::BinOp::Add, &acc, item)?;
    }
    Ok(acc)
}

/// The memory of one stateful call site for one entity.
#[derive(Debug, Clone, Default)]
pub enum SlotState {
    /// Nothing seen yet.
    #[default]
    Empty,
    /// The previous value and its sample time (`delta`, `rate`).
    Prev {
        /// The previous value.
        value: Value,
        /// Its sample time.
        time_ns: i64,
    },
    /// The running average (`ema`).
    Ema(f64),
    /// The last values, oldest first (`window`).
    Window(VecDeque<Value>),
    /// The running sum (`total`).
    Total(Value),
}

/// The result of a stateful call: a value, or "undefined because history is missing".
pub enum StepResult {
    /// A defined value (possibly `Null` when the input was `Null`).
    Value(Value),
    /// Not enough history yet (the first sample of `delta`/`rate`).
    WarmingUp,
}

/// Advances a stateful function by one sample. `n` is the constant second argument.
pub fn step(
    func: Stateful,
    state: &mut SlotState,
    x: Value,
    n: f64,
    time_ns: i64,
) -> Result<StepResult, String> {
    if matches!(x, Value::Null) {
        return Ok(StepResult::Value(Value::Null));
    }
    match func {
        Stateful::Delta | Stateful::Rate => {
            num(&x)?;
            let previous = std::mem::replace(
                state,
                SlotState::Prev {
                    value: x.clone(),
                    time_ns,
                },
            );
            let SlotState::Prev {
                value: prev,
                time_ns: prev_ns,
            } = previous
            else {
                return Ok(StepResult::WarmingUp);
            };
            let delta = crate::ops::binary(huatuo_dsl::ast::BinOp::Sub, &x, &prev)?;
            if func == Stateful::Delta {
                return Ok(StepResult::Value(delta));
            }
            let seconds = (time_ns - prev_ns) as f64 / 1e9;
            if seconds <= 0.0 {
                return Ok(StepResult::Value(Value::Null));
            }
            Ok(StepResult::Value(Value::Float(num(&delta)? / seconds)))
        }
        Stateful::Changed => {
            let previous = std::mem::replace(
                state,
                SlotState::Prev {
                    value: x.clone(),
                    time_ns,
                },
            );
            match previous {
                SlotState::Prev { value, .. } => Ok(StepResult::Value(Value::Bool(value != x))),
                _ => Ok(StepResult::WarmingUp),
            }
        }
        Stateful::Ema => {
            let x = num(&x)?;
            let next = match state {
                SlotState::Ema(prev) => *prev * (n - 1.0) / n + x / n,
                _ => x,
            };
            *state = SlotState::Ema(next);
            Ok(StepResult::Value(Value::Float(next)))
        }
        Stateful::Total => {
            num(&x)?;
            let next = match state {
                SlotState::Total(acc) => crate::ops::binary(huatuo_dsl::ast::BinOp::Add, acc, &x)?,
                _ => x,
            };
            *state = SlotState::Total(next.clone());
            Ok(StepResult::Value(next))
        }
        Stateful::Window => {
            if !matches!(state, SlotState::Window(_)) {
                *state = SlotState::Window(VecDeque::new());
            }
            let SlotState::Window(values) = state else {
                return Err("window state lost".to_string());
            };
            values.push_back(x);
            while values.len() > n as usize {
                values.pop_front();
            }
            Ok(StepResult::Value(Value::List(
                values.iter().cloned().collect(),
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defined(r: Result<StepResult, String>) -> Value {
        match r {
            Ok(StepResult::Value(v)) => v,
            Ok(StepResult::WarmingUp) => panic!("unexpected warm-up"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn join_writes_the_elements_one_after_the_other() {
        let frames = Value::List(vec![Value::Str("a+0x1".into()), Value::Str("b+0x2".into())]);
        let sep = Value::Str("\n".into());
        assert_eq!(
            call_pure(Pure::Join, &[frames, sep.clone()]),
            Ok(Value::Str("a+0x1\nb+0x2".into()))
        );
        assert_eq!(
            call_pure(Pure::Join, &[Value::List(vec![]), sep.clone()]),
            Ok(Value::Str(String::new()))
        );
        assert_eq!(
            call_pure(
                Pure::Join,
                &[
                    Value::List(vec![Value::Int(1), Value::Int(2)]),
                    Value::Str(",".into())
                ]
            ),
            Ok(Value::Str("1,2".into()))
        );
        assert!(call_pure(Pure::Join, &[Value::Int(1), sep]).is_err());
    }

    #[test]
    fn delta_warms_up_then_subtracts() {
        let mut s = SlotState::Empty;
        assert!(matches!(
            step(Stateful::Delta, &mut s, Value::Int(10), 0.0, 0),
            Ok(StepResult::WarmingUp)
        ));
        assert_eq!(
            defined(step(Stateful::Delta, &mut s, Value::Int(25), 0.0, 1)),
            Value::Int(15)
        );
    }

    #[test]
    fn total_sums_every_sample_from_the_first() {
        let mut s = SlotState::Empty;
        let mut seen = Vec::new();
        for x in [1, 1, 3] {
            seen.push(defined(step(
                Stateful::Total,
                &mut s,
                Value::Int(x),
                0.0,
                0,
            )));
        }
        assert_eq!(seen, [Value::Int(1), Value::Int(2), Value::Int(5)]);
        assert!(step(Stateful::Total, &mut s, Value::Str("x".into()), 0.0, 0).is_err());
    }

    #[test]
    fn rate_uses_sample_time() {
        let mut s = SlotState::Empty;
        let _ = step(Stateful::Rate, &mut s, Value::Int(100), 0.0, 0);
        assert_eq!(
            defined(step(
                Stateful::Rate,
                &mut s,
                Value::Int(300),
                0.0,
                2_000_000_000
            )),
            Value::Float(100.0)
        );
    }

    #[test]
    fn ema_is_seeded_then_decays() {
        let mut s = SlotState::Empty;
        assert_eq!(
            defined(step(Stateful::Ema, &mut s, Value::Int(10), 5.0, 0)),
            Value::Float(10.0)
        );
        // 10·4/5 + 0/5 = 8
        assert_eq!(
            defined(step(Stateful::Ema, &mut s, Value::Int(0), 5.0, 0)),
            Value::Float(8.0)
        );
    }

    #[test]
    fn window_keeps_last_n_oldest_first() {
        let mut s = SlotState::Empty;
        for i in 1..=4 {
            let _ = step(Stateful::Window, &mut s, Value::Int(i), 3.0, 0);
        }
        assert_eq!(
            defined(step(Stateful::Window, &mut s, Value::Int(5), 3.0, 0)),
            Value::List(vec![Value::Int(3), Value::Int(4), Value::Int(5)])
        );
    }

    #[test]
    fn every_language_builtin_runs_here_with_the_same_statefulness() {
        for b in huatuo_dsl::builtins::builtins() {
            match dispatch(b.name) {
                Some(Builtin::Stateful(_)) => {
                    assert!(b.stateful, "{} is stateful here only", b.name)
                }
                Some(_) => assert!(!b.stateful, "{} is stateful in the language", b.name),
                None => panic!("builtin `{}` has no implementation", b.name),
            }
        }
    }

    #[test]
    fn pure_functions() {
        assert_eq!(
            call_pure(Pure::Percent, &[Value::Int(1), Value::Int(0)]),
            Ok(Value::Float(0.0))
        );
        assert_eq!(
            call_pure(Pure::Percent, &[Value::Int(1), Value::Int(4)]),
            Ok(Value::Float(25.0))
        );
        let l = Value::List(vec![Value::Int(3), Value::Int(1), Value::Float(2.5)]);
        assert_eq!(
            call_pure(Pure::Min, std::slice::from_ref(&l)),
            Ok(Value::Int(1))
        );
        assert_eq!(
            call_pure(Pure::Max, std::slice::from_ref(&l)),
            Ok(Value::Int(3))
        );
        assert_eq!(
            call_pure(Pure::Max, &[Value::List(vec![])]),
            Ok(Value::Null)
        );
        assert_eq!(
            call_pure(Pure::Sum, std::slice::from_ref(&l)),
            Ok(Value::Float(6.5))
        );
        assert_eq!(
            call_pure(Pure::First, std::slice::from_ref(&l)),
            Ok(Value::Int(3))
        );
        assert_eq!(
            call_pure(Pure::Len, std::slice::from_ref(&l)),
            Ok(Value::Int(3))
        );
        assert_eq!(call_pure(Pure::Abs, &[Value::Int(-3)]), Ok(Value::Int(3)));
        assert_eq!(
            call_pure(
                Pure::MatchesAny,
                &[
                    Value::Str("kworker/1".into()),
                    Value::List(vec![Value::Str("^kworker".into())])
                ]
            ),
            Ok(Value::Bool(true))
        );
        assert!(call_pure(Pure::Sum, &[Value::Int(3)]).is_err());
        let bools = Value::List(vec![Value::Bool(true), Value::Bool(false)]);
        assert_eq!(
            call_pure(Pure::All, std::slice::from_ref(&bools)),
            Ok(Value::Bool(false))
        );
        assert_eq!(
            call_pure(Pure::Any, std::slice::from_ref(&bools)),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            call_pure(Pure::All, &[Value::List(vec![])]),
            Ok(Value::Bool(false))
        );
    }
}

#[cfg(test)]
mod membership_tests {
    use super::*;

    #[test]
    fn membership_of_something_missing_is_false_not_undefined() {
        let list = Value::List(vec![Value::Str("besteffort".into())]);
        assert_eq!(
            call_pure(Pure::Contains, &[list.clone(), Value::Null]),
            Ok(Value::Bool(false))
        );
        assert_eq!(
            call_pure(Pure::Contains, &[list, Value::Str("besteffort".into())]),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            call_pure(Pure::MatchesAny, &[Value::Null, Value::Str("x".into())]),
            Ok(Value::Bool(false))
        );
    }
}

//! Operators on runtime values: arithmetic, comparison and three-valued logic.
//!
//! `Null` means "undefined" (a missing field, a `delta` without history, a division by zero):
//! it propagates through arithmetic and comparisons, and a trigger that is `Null` does not fire.

use huatuo_dsl::ast::BinOp;
use huatuo_dsl::value::Value;
use std::cmp::Ordering;

/// The name of a value's type, for error messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) => "string",
        Value::Hist(_) => "histogram",
        Value::List(_) => "list",
        Value::Json(_) => "json",
    }
}

/// The truth of a condition: `None` when undefined.
pub fn truth(value: &Value) -> Result<Option<bool>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::Int(i) => Ok(Some(*i != 0)),
        Value::Float(f) => Ok(Some(*f != 0.0)),
        other => Err(format!(
            "a condition must be a bool, found {}",
            type_name(other)
        )),
    }
}

/// `a and b` in three-valued logic (false wins over undefined).
pub fn and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

/// `a or b` in three-valued logic (true wins over undefined).
pub fn or(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

/// A three-valued truth as a value.
pub fn from_truth(t: Option<bool>) -> Value {
    t.map_or(Value::Null, Value::Bool)
}

/// Applies an arithmetic or comparison operator (not `=~`).
pub fn binary(op: BinOp, a: &Value, b: &Value) -> Result<Value, String> {
    if matches!(a, Value::Null) || matches!(b, Value::Null) {
        return Ok(Value::Null);
    }
    match op {
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => arith(op, a, b),
        BinOp::Eq => Ok(Value::Bool(equal(a, b))),
        BinOp::Ne => Ok(Value::Bool(!equal(a, b))),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let Some(ord) = compare(a, b)? else {
                return Ok(Value::Null);
            };
            Ok(Value::Bool(match op {
                BinOp::Lt => ord == Ordering::Less,
                BinOp::Le => ord != Ordering::Greater,
                BinOp::Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            }))
        }
        BinOp::Match | BinOp::NotMatch => {
            Err(format!("operator {op:?} is not an arithmetic operator"))
        }
    }
}

fn arith(op: BinOp, a: &Value, b: &Value) -> Result<Value, String> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => int_arith(op, *x, *y),
        (Value::Str(x), Value::Str(y)) if op == BinOp::Add => Ok(Value::Str(format!("{x}{y}"))),
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => Ok(float_arith(op, x, y)),
            _ => Err(format!(
                "cannot apply {op:?} to {} and {}",
                type_name(a),
                type_name(b)
            )),
        },
    }
}

fn int_arith(op: BinOp, x: i64, y: i64) -> Result<Value, String> {
    let result = match op {
        BinOp::Add => x.checked_add(y),
        BinOp::Sub => x.checked_sub(y),
        BinOp::Mul => x.checked_mul(y),
        BinOp::Div => return Ok(float_arith(op, x as f64, y as f64)),
        _ if y == 0 => return Ok(Value::Null),
        _ => x.checked_rem(y),
    };
    result
        .map(Value::Int)
        .ok_or_else(|| format!("integer overflow in {x} {op:?} {y}"))
}

fn float_arith(op: BinOp, x: f64, y: f64) -> Value {
    let result = match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        _ if y == 0.0 => return Value::Null,
        BinOp::Div => x / y,
        _ => x % y,
    };
    Value::Float(result)
}

/// A numeric value as f64 (ints, floats; not bools).
pub fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x == y,
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

/// The order of two values; `None` when a NaN makes it undefined.
fn compare(a: &Value, b: &Value) -> Result<Option<Ordering>, String> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(Some(x.cmp(y))),
        (Value::Str(x), Value::Str(y)) => Ok(Some(x.cmp(y))),
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => Ok(x.partial_cmp(&y)),
            _ => Err(format!(
                "cannot compare {} with {}",
                type_name(a),
                type_name(b)
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_stays_int_except_division() {
        assert_eq!(
            binary(BinOp::Add, &Value::Int(2), &Value::Int(3)),
            Ok(Value::Int(5))
        );
        assert_eq!(
            binary(BinOp::Div, &Value::Int(3), &Value::Int(2)),
            Ok(Value::Float(1.5))
        );
        assert_eq!(
            binary(BinOp::Mul, &Value::Int(2), &Value::Float(1.5)),
            Ok(Value::Float(3.0))
        );
    }

    #[test]
    fn division_by_zero_and_null_are_undefined() {
        assert_eq!(
            binary(BinOp::Div, &Value::Int(3), &Value::Int(0)),
            Ok(Value::Null)
        );
        assert_eq!(
            binary(BinOp::Rem, &Value::Int(3), &Value::Int(0)),
            Ok(Value::Null)
        );
        assert_eq!(
            binary(BinOp::Gt, &Value::Null, &Value::Int(0)),
            Ok(Value::Null)
        );
    }

    #[test]
    fn overflow_and_type_errors_are_errors() {
        assert!(binary(BinOp::Add, &Value::Int(i64::MAX), &Value::Int(1)).is_err());
        assert!(binary(BinOp::Lt, &Value::Str("a".into()), &Value::Int(1)).is_err());
    }

    #[test]
    fn three_valued_logic() {
        assert_eq!(and(Some(false), None), Some(false));
        assert_eq!(and(Some(true), None), None);
        assert_eq!(or(Some(true), None), Some(true));
        assert_eq!(or(Some(false), None), None);
    }
}

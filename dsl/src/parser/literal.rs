//! Number literals with unit suffixes, and string escapes.

use super::context::Ctx;
use super::Rule;
use crate::ast::Literal;
use crate::diag::did_you_mean;
use crate::units::{unit_suffix, Dim, UNIT_SUFFIXES};
use pest::iterators::Pair;

/// The literal of a `number` pair, scaled to the base unit of its suffix. An unknown suffix
/// or an out-of-range value is reported, and a zero count stands in for it.
pub(super) fn number(ctx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Literal {
    let mut digits = "";
    let mut scale = 1.0;
    let mut dim = Dim::Count;
    for part in pair.clone().into_inner() {
        match part.as_rule() {
            Rule::digits => digits = part.as_str(),
            Rule::unit => match unit_suffix(part.as_str()) {
                Some(unit) => {
                    scale = unit.scale;
                    dim = unit.dim;
                }
                None => {
                    ctx.report(unknown_unit(ctx, part));
                    return Literal::Int(0, Dim::Count);
                }
            },
            _ => {}
        }
    }
    match scaled(digits, scale) {
        Some(Scaled::Int(v)) => Literal::Int(v, dim),
        Some(Scaled::Float(v)) => Literal::Float(v, dim),
        None => {
            let span = ctx.pair_span(&pair);
            ctx.report(
                ctx.error("syntax", span, "number literal out of range")
                    .with_label("too large"),
            );
            Literal::Int(0, Dim::Count)
        }
    }
}

/// A decimal value after scaling.
#[derive(Debug, PartialEq)]
enum Scaled {
    /// The scaled value is integral.
    Int(i64),
    /// The scaled value has a fraction, or does not fit an `i64`.
    Float(f64),
}

/// `digits` (`123` or `1.5`) times `scale`, exact when both are exact.
fn scaled(digits: &str, scale: f64) -> Option<Scaled> {
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if let Some(v) = exact_scaled(int_part, frac_part, scale) {
        return Some(Scaled::Int(v));
    }
    let value = digits.parse::<f64>().ok()? * scale;
    if !value.is_finite() {
        return None;
    }
    Some(Scaled::Float(value))
}

/// The exact integer `int_part.frac_part * scale`, if the scale is integral and the result
/// is an integer that fits an `i64`.
fn exact_scaled(int_part: &str, frac_part: &str, scale: f64) -> Option<i64> {
    if scale.fract() != 0.0 || !(1.0..=1e18).contains(&scale) {
        return None;
    }
    let mut mantissa_digits = String::with_capacity(int_part.len() + frac_part.len());
    mantissa_digits.push_str(int_part);
    mantissa_digits.push_str(frac_part);
    let mantissa: i128 = mantissa_digits.parse().ok()?;
    let denominator = 10i128.checked_pow(u32::try_from(frac_part.len()).ok()?)?;
    let numerator = mantissa.checked_mul(scale as i128)?;
    if numerator % denominator != 0 {
        return None;
    }
    i64::try_from(numerator / denominator).ok()
}

/// The `unknown-unit` diagnostic for a `unit` pair, with a did-you-mean hint.
fn unknown_unit(ctx: &Ctx<'_>, unit: Pair<'_, Rule>) -> crate::diag::Diagnostic {
    let written = unit.as_str();
    let suggestion = UNIT_SUFFIXES
        .iter()
        .find(|u| u.suffix.eq_ignore_ascii_case(written))
        .or_else(|| UNIT_SUFFIXES.iter().find(|u| written.starts_with(u.suffix)))
        .map(|u| u.suffix)
        .or_else(|| did_you_mean(written, UNIT_SUFFIXES.iter().map(|u| u.suffix)));
    let known: Vec<&str> = UNIT_SUFFIXES.iter().map(|u| u.suffix).collect();
    let help = match suggestion {
        Some(s) => format!("did you mean `{s}`? known units: {}", known.join(", ")),
        None => format!("known units: {}", known.join(", ")),
    };
    ctx.error(
        "unknown-unit",
        ctx.pair_span(&unit),
        format!("unknown unit `{written}`"),
    )
    .with_label("not a unit")
    .with_help(help)
}

/// The value of a `string` pair with escapes resolved; an unknown escape is reported.
pub(super) fn string(ctx: &Ctx<'_>, pair: Pair<'_, Rule>) -> String {
    let body = pair.into_inner().find(|p| p.as_rule() == Rule::str_body);
    let Some(body) = body else {
        return String::new();
    };
    let base = body.as_span().start();
    let raw = body.as_str();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some((_, '"')) => out.push('"'),
            Some((_, '\\')) => out.push('\\'),
            Some((_, 'n')) => out.push('\n'),
            Some((_, 't')) => out.push('\t'),
            other => {
                let end = other.map_or(i + 1, |(j, e)| j + e.len_utf8());
                let escape = raw.get(i..end).unwrap_or("\\");
                let span = ctx.span_at(base + i, base + end);
                ctx.report(
                    ctx.error(
                        "syntax",
                        span,
                        format!("unknown escape `{escape}` in string"),
                    )
                    .with_label("unknown escape")
                    .with_help("strings know the escapes \\\", \\\\, \\n and \\t"),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_is_exact_for_decimal_literals() {
        assert_eq!(scaled("10", 1e6), Some(Scaled::Int(10_000_000)));
        assert_eq!(scaled("1.1", 1e6), Some(Scaled::Int(1_100_000)));
        assert_eq!(scaled("1.5", 1e9), Some(Scaled::Int(1_500_000_000)));
        assert_eq!(scaled("0.9", 1.0), Some(Scaled::Float(0.9)));
        assert_eq!(scaled("2.0", 1.0), Some(Scaled::Int(2)));
    }

    #[test]
    fn huge_literals_become_floats_or_fail() {
        assert_eq!(
            scaled("99999999999999999999", 1.0),
            Some(Scaled::Float(1e20))
        );
        assert_eq!(scaled(&"9".repeat(400), 1.0), None);
    }
}

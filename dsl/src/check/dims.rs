//! Dimensional rules of `*` and `/`, shared with the evaluator.
//!
//! Values are stored in base units (time in ns) while rates are per second, so mixing a
//! rate with a duration in `*` or `/` would need a scale the evaluator does not apply: such
//! expressions are rejected, and `rate(x)` is the way to get a per-second value.

use crate::units::Dim;

/// The dimension of `l * r` and the factor the raw product must be multiplied by (always 1:
/// only scale-free combinations are accepted).
pub fn product(l: Dim, r: Dim) -> Option<(Dim, f64)> {
    use Dim::*;
    match (l, r) {
        (Count, d) | (d, Count) => Some((d, 1.0)),
        _ => None,
    }
}

/// The dimension of `l / r` and the factor the raw quotient must be multiplied by (always 1).
pub fn quotient(l: Dim, r: Dim) -> Option<(Dim, f64)> {
    use Dim::*;
    match (l, r) {
        (a, b) if a == b => Some((Count, 1.0)),
        (d, Count) => Some((d, 1.0)),
        _ => None,
    }
}

/// The dimension of `rate(x)` for an `x` of dimension `d`, if rates of it exist: counts give
/// events per second, sizes bytes per second, durations seconds per second (a plain number).
pub fn rate_of(d: Dim) -> Option<Dim> {
    match d {
        Dim::Count => Some(Dim::PerSec),
        Dim::Bytes => Some(Dim::BytesPerSec),
        Dim::Time => Some(Dim::Count),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_free_combinations_only() {
        assert_eq!(quotient(Dim::Time, Dim::Time), Some((Dim::Count, 1.0)));
        assert_eq!(quotient(Dim::Bytes, Dim::Count), Some((Dim::Bytes, 1.0)));
        assert_eq!(product(Dim::Count, Dim::Percent), Some((Dim::Percent, 1.0)));
        assert_eq!(quotient(Dim::Bytes, Dim::Time), None);
        assert_eq!(product(Dim::BytesPerSec, Dim::Time), None);
    }
}

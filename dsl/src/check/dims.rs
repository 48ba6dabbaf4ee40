//! Dimensional rules of `*` and `/`, shared with the evaluator.
//!
//! Values are stored in base units (time in ns), while rates are per second, so a division of
//! a size by a duration must be scaled by 1e9 to land in bytes per second. [`product`] and
//! [`quotient`] return that factor alongside the result's dimension.

use crate::units::Dim;

const NS_PER_S: f64 = 1e9;

/// The dimension of `l * r` and the factor the raw product must be multiplied by.
pub fn product(l: Dim, r: Dim) -> Option<(Dim, f64)> {
    use Dim::*;
    match (l, r) {
        (Count, d) | (d, Count) => Some((d, 1.0)),
        (PerSec, Time) | (Time, PerSec) => Some((Count, 1.0 / NS_PER_S)),
        (BytesPerSec, Time) | (Time, BytesPerSec) => Some((Bytes, 1.0 / NS_PER_S)),
        _ => None,
    }
}

/// The dimension of `l / r` and the factor the raw quotient must be multiplied by.
pub fn quotient(l: Dim, r: Dim) -> Option<(Dim, f64)> {
    use Dim::*;
    match (l, r) {
        (a, b) if a == b => Some((Count, 1.0)),
        (d, Count) => Some((d, 1.0)),
        (Bytes, Time) => Some((BytesPerSec, NS_PER_S)),
        (Count, Time) => Some((PerSec, NS_PER_S)),
        (Bytes, BytesPerSec) => Some((Time, NS_PER_S)),
        (Count, PerSec) => Some((Time, NS_PER_S)),
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
    fn sizes_over_durations_are_byte_rates_per_second() {
        let (dim, scale) = quotient(Dim::Bytes, Dim::Time).unwrap_or((Dim::Count, 0.0));
        assert_eq!(dim, Dim::BytesPerSec);
        // 1000 bytes over 2 s (2e9 ns) is 500 B/s.
        assert_eq!(1000.0 / 2e9 * scale, 500.0);
    }

    #[test]
    fn rates_times_durations_are_amounts() {
        let (dim, scale) = product(Dim::PerSec, Dim::Time).unwrap_or((Dim::Time, 0.0));
        assert_eq!(dim, Dim::Count);
        // 10 /s during 3 s (3e9 ns) is 30 events.
        assert!((10.0 * 3e9 * scale - 30.0_f64).abs() < 1e-9);
        assert_eq!(quotient(Dim::Time, Dim::Time), Some((Dim::Count, 1.0)));
        assert_eq!(
            quotient(Dim::Percent, Dim::Count),
            Some((Dim::Percent, 1.0))
        );
        assert_eq!(product(Dim::Time, Dim::Time), None);
        assert_eq!(quotient(Dim::Count, Dim::Bytes), None);
        assert_eq!(rate_of(Dim::Percent), None);
    }
}

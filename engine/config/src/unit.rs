//! The unit each config key is written in, and the value checks a key applies.

use huatuo_dsl::units::Dim;

/// The unit an operator writes a key's number in; converts to the base unit of its `Dim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Not a quantity with a unit: counts, cores, loads, strings, booleans, lists.
    Plain,
    /// Nanoseconds.
    Nanos,
    /// Milliseconds.
    Millis,
    /// Seconds.
    Seconds,
    /// Mebibytes (HUATUO's "MB").
    Mebibytes,
    /// Mebibytes per second (HUATUO's "MB/s").
    MebibytesPerSec,
    /// Percent points.
    Percent,
}

impl Unit {
    /// The dimension a rule sees for a key in this unit.
    pub(crate) fn dim(self) -> Dim {
        match self {
            Unit::Plain => Dim::Count,
            Unit::Nanos | Unit::Millis | Unit::Seconds => Dim::Time,
            Unit::Mebibytes => Dim::Bytes,
            Unit::MebibytesPerSec => Dim::BytesPerSec,
            Unit::Percent => Dim::Percent,
        }
    }

    /// How many base units (ns, bytes, bytes/s, percent points) one of this unit is.
    pub(crate) fn scale(self) -> i64 {
        match self {
            Unit::Plain | Unit::Nanos | Unit::Percent => 1,
            Unit::Millis => 1_000_000,
            Unit::Seconds => 1_000_000_000,
            Unit::Mebibytes | Unit::MebibytesPerSec => 1 << 20,
        }
    }

    /// The unit's name for docs and diagnostics; empty for plain values.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Unit::Plain => "",
            Unit::Nanos => "nanoseconds",
            Unit::Millis => "milliseconds",
            Unit::Seconds => "seconds",
            Unit::Mebibytes => "MB",
            Unit::MebibytesPerSec => "MB/s",
            Unit::Percent => "percent",
        }
    }
}

/// A constraint on a key's value beyond its type; numbers are never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Any value of the type (numbers: zero or more).
    Any,
    /// A number greater than zero.
    Positive,
    /// A TCP port, 0 (disabled) to 65535.
    Port,
    /// A number from the first to the second bound, inclusive: for counts, sizes and
    /// intervals whose huge (or zero) values would exhaust memory, disk or time.
    Range(i64, i64),
    /// One or several comma-separated http(s) URLs (`Storage.ES.Address`); empty means off.
    HttpUrls,
    /// A regular expression (each element, for lists); empty means "no filter".
    Regex,
    /// One of these words, case-insensitive (each element, for lists).
    OneOf(&'static [&'static str]),
}

//! Units and dimensions of rule values.
//!
//! Every quantity is stored in the base unit of its dimension (nanoseconds, bytes, percent
//! points, plain counts), so readers, templates and literals agree without conversions at
//! evaluation time. The checker compares dimensions; the evaluator only sees numbers.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The physical dimension of a value, used by the checker to reject `offtime > 45%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    /// A plain number: counts, ratios, pages, loads.
    Count,
    /// A duration, stored in nanoseconds.
    Time,
    /// A size, stored in bytes.
    Bytes,
    /// A percentage, stored in percent points (45% is 45.0).
    Percent,
    /// A byte rate, stored in bytes per second.
    BytesPerSec,
    /// An event rate, stored in events per second.
    PerSec,
}

impl Dim {
    /// The name an operator reads in a diagnostic.
    pub fn describe(self) -> &'static str {
        match self {
            Dim::Count => "a plain number",
            Dim::Time => "a duration",
            Dim::Bytes => "a size in bytes",
            Dim::Percent => "a percentage",
            Dim::BytesPerSec => "a byte rate",
            Dim::PerSec => "a rate per second",
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// A unit suffix an operator may write after a number literal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitSuffix {
    /// The suffix as written (`ms`, `MiB`, `%`).
    pub suffix: &'static str,
    /// The dimension the suffix gives the literal.
    pub dim: Dim,
    /// How many base units one of this unit is.
    pub scale: f64,
}

/// Every unit suffix the language accepts, longest first so that prefixes do not shadow.
pub const UNIT_SUFFIXES: &[UnitSuffix] = &[
    UnitSuffix {
        suffix: "KiB/s",
        dim: Dim::BytesPerSec,
        scale: 1024.0,
    },
    UnitSuffix {
        suffix: "MiB/s",
        dim: Dim::BytesPerSec,
        scale: 1048576.0,
    },
    UnitSuffix {
        suffix: "GiB/s",
        dim: Dim::BytesPerSec,
        scale: 1073741824.0,
    },
    UnitSuffix {
        suffix: "KB/s",
        dim: Dim::BytesPerSec,
        scale: 1000.0,
    },
    UnitSuffix {
        suffix: "MB/s",
        dim: Dim::BytesPerSec,
        scale: 1e6,
    },
    UnitSuffix {
        suffix: "GB/s",
        dim: Dim::BytesPerSec,
        scale: 1e9,
    },
    UnitSuffix {
        suffix: "B/s",
        dim: Dim::BytesPerSec,
        scale: 1.0,
    },
    UnitSuffix {
        suffix: "/s",
        dim: Dim::PerSec,
        scale: 1.0,
    },
    UnitSuffix {
        suffix: "KiB",
        dim: Dim::Bytes,
        scale: 1024.0,
    },
    UnitSuffix {
        suffix: "MiB",
        dim: Dim::Bytes,
        scale: 1048576.0,
    },
    UnitSuffix {
        suffix: "GiB",
        dim: Dim::Bytes,
        scale: 1073741824.0,
    },
    UnitSuffix {
        suffix: "TiB",
        dim: Dim::Bytes,
        scale: 1099511627776.0,
    },
    UnitSuffix {
        suffix: "KB",
        dim: Dim::Bytes,
        scale: 1000.0,
    },
    UnitSuffix {
        suffix: "MB",
        dim: Dim::Bytes,
        scale: 1e6,
    },
    UnitSuffix {
        suffix: "GB",
        dim: Dim::Bytes,
        scale: 1e9,
    },
    UnitSuffix {
        suffix: "B",
        dim: Dim::Bytes,
        scale: 1.0,
    },
    UnitSuffix {
        suffix: "ns",
        dim: Dim::Time,
        scale: 1.0,
    },
    UnitSuffix {
        suffix: "us",
        dim: Dim::Time,
        scale: 1e3,
    },
    UnitSuffix {
        suffix: "µs",
        dim: Dim::Time,
        scale: 1e3,
    },
    UnitSuffix {
        suffix: "ms",
        dim: Dim::Time,
        scale: 1e6,
    },
    UnitSuffix {
        suffix: "s",
        dim: Dim::Time,
        scale: 1e9,
    },
    UnitSuffix {
        suffix: "m",
        dim: Dim::Time,
        scale: 60e9,
    },
    UnitSuffix {
        suffix: "h",
        dim: Dim::Time,
        scale: 3600e9,
    },
    UnitSuffix {
        suffix: "%",
        dim: Dim::Percent,
        scale: 1.0,
    },
];

/// Looks up a unit suffix as written after a number literal.
pub fn unit_suffix(suffix: &str) -> Option<&'static UnitSuffix> {
    UNIT_SUFFIXES.iter().find(|u| u.suffix == suffix)
}

/// How an operator would write a value in base units: in the largest unit that keeps it whole
/// (`10ms`, `-5s`, `45%`, `2GiB`).
pub fn show_quantity(value: f64, dim: Dim) -> String {
    if dim == Dim::Count {
        return value.to_string();
    }
    let best = UNIT_SUFFIXES
        .iter()
        .filter(|u| u.dim == dim && u.suffix.is_ascii())
        .filter(|u| value != 0.0 && (value / u.scale).fract() == 0.0)
        .max_by(|a, b| a.scale.total_cmp(&b.scale))
        .or_else(|| {
            UNIT_SUFFIXES
                .iter()
                .find(|u| u.dim == dim && u.scale == 1.0)
        });
    match best {
        Some(unit) => format!("{}{}", value / unit.scale, unit.suffix),
        None => value.to_string(),
    }
}

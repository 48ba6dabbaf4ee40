//! The static types the checker infers for expressions.

use crate::catalog::FieldType;
use crate::units::Dim;
use std::fmt;

/// The type of an expression as far as the checker can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    /// A number of a dimension.
    Num(Dim),
    /// A boolean.
    Bool,
    /// A string.
    Str,
    /// A histogram of a dimension.
    Hist(Dim),
    /// A list whose elements have the inner type.
    List(Box<Ty>),
    /// Structured capture data.
    Json,
    /// Not known statically (a script result, or an error already reported): fits anywhere.
    Unknown,
}

impl Ty {
    /// The type a field or key of this catalog type and dimension has in a rule.
    pub fn from_field(ty: FieldType, dim: Dim) -> Ty {
        match ty {
            FieldType::Int | FieldType::Float => Ty::Num(dim),
            FieldType::Str => Ty::Str,
            FieldType::Bool => Ty::Bool,
            FieldType::Hist => Ty::Hist(dim),
            FieldType::List => Ty::List(Box::new(Ty::Str)),
            FieldType::Json => Ty::Json,
        }
    }

    /// True for numbers and for unknown types.
    pub fn is_numeric(&self) -> bool {
        matches!(self, Ty::Num(_) | Ty::Unknown)
    }

    /// The element type of a list (unknown for non-lists).
    pub fn element(&self) -> Ty {
        match self {
            Ty::List(inner) => (**inner).clone(),
            _ => Ty::Unknown,
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Num(dim) => f.write_str(dim.describe()),
            Ty::Bool => f.write_str("a boolean"),
            Ty::Str => f.write_str("a string"),
            Ty::Hist(_) => f.write_str("a histogram"),
            Ty::List(_) => f.write_str("a list"),
            Ty::Json => f.write_str("structured data"),
            Ty::Unknown => f.write_str("a value"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_types_map_to_rule_types() {
        assert_eq!(
            Ty::from_field(FieldType::Int, Dim::Time),
            Ty::Num(Dim::Time)
        );
        assert_eq!(
            Ty::from_field(FieldType::List, Dim::Count).element(),
            Ty::Str
        );
        assert_eq!(Ty::Num(Dim::Percent).to_string(), "a percentage");
        assert!(!Ty::Str.is_numeric());
    }
}

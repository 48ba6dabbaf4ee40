//! The names visible to an expression, by the phase of the rule it is evaluated in.

use super::ty::Ty;
use crate::catalog::SourceSchema;
use crate::units::Dim;
use std::collections::BTreeMap;

/// When an expression is evaluated, which decides what it may refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Once at load (params, intervals, bounds, cooldowns): literals, config and params only.
    Const,
    /// The `where` filter: stateless, before any binding; fields, params and `now`.
    Filter,
    /// `let` bindings and `when`: fields, params, `now`, earlier lets, stateful functions.
    Bindings,
    /// `emit`: everything above plus capture results.
    Output,
}

/// Where a name was found, or why it is not visible here.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// Visible with this type.
    Found(Ty),
    /// Exists but not in this phase; the string says what it is (`field`, `let binding`).
    Later(&'static str),
    /// Nothing by that name.
    Missing,
}

/// The names of one rule.
#[derive(Debug, Clone)]
pub struct Env<'a> {
    /// The rule's source; `None` when it is unknown (names are then not checked).
    pub source: Option<&'a SourceSchema>,
    /// Params checked so far.
    pub params: BTreeMap<String, Ty>,
    /// Let and script bindings checked so far.
    pub lets: BTreeMap<String, Ty>,
    /// Record fields the captures add (their own names or aliases).
    pub captured: BTreeMap<String, Ty>,
    /// Names the rule defines for a later phase (lets, capture results), and what they are.
    pub later: BTreeMap<String, &'static str>,
    /// The type of each named `emit` item, in order (after the rule was checked).
    pub emitted: Vec<(String, Ty)>,
    /// The phase of the expression being checked.
    pub phase: Phase,
}

/// The built-in name for the sample's time.
pub const NOW: &str = "now";

impl<'a> Env<'a> {
    /// An environment for a rule reading `source`.
    pub fn new(source: Option<&'a SourceSchema>) -> Self {
        Env {
            source,
            params: BTreeMap::new(),
            lets: BTreeMap::new(),
            captured: BTreeMap::new(),
            later: BTreeMap::new(),
            emitted: Vec::new(),
            phase: Phase::Const,
        }
    }

    /// Resolves a name in the current phase, in the evaluator's order: bindings, params,
    /// source fields, labels (strings), `now`, capture results.
    pub fn lookup(&self, name: &str) -> Lookup {
        if let Some(ty) = self.lets.get(name) {
            return self.visible_from(Phase::Bindings, ty.clone(), "let binding");
        }
        if let Some(ty) = self.params.get(name) {
            return Lookup::Found(ty.clone());
        }
        if let Some(field) = self.source.and_then(|s| s.field(name)) {
            return self.visible_from(Phase::Filter, Ty::from_field(field.ty, field.dim), "field");
        }
        if self.source.is_some_and(|s| s.has_label(name)) {
            return self.visible_from(Phase::Filter, Ty::Str, "label");
        }
        if name == NOW {
            return self.visible_from(Phase::Filter, Ty::Num(Dim::Time), "sample time");
        }
        if let Some(ty) = self.captured.get(name) {
            return self.visible_from(Phase::Output, ty.clone(), "capture result");
        }
        if let Some(what) = self.later.get(name) {
            return Lookup::Later(what);
        }
        if self.source.is_none() {
            return Lookup::Found(Ty::Unknown);
        }
        Lookup::Missing
    }

    fn visible_from(&self, phase: Phase, ty: Ty, what: &'static str) -> Lookup {
        if self.phase >= phase {
            Lookup::Found(ty)
        } else {
            Lookup::Later(what)
        }
    }

    /// Every name visible in the current phase, for did-you-mean hints.
    pub fn visible_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.params.keys().map(String::as_str).collect();
        if self.phase >= Phase::Filter {
            names.push(NOW);
            if let Some(source) = self.source {
                names.extend(source.fields.iter().map(|f| f.name.as_str()));
                names.extend(source.label_names());
            }
        }
        if self.phase >= Phase::Bindings {
            names.extend(self.lets.keys().map(String::as_str));
        }
        if self.phase >= Phase::Output {
            names.extend(self.captured.keys().map(String::as_str));
        }
        names
    }

    /// The source's field names, comma-separated, for hints.
    pub fn field_list(&self) -> String {
        self.source
            .map(|s| {
                s.fields
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    }
}

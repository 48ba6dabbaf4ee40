//! Carrying rule state across a reload: a rule whose compiled form did not change keeps its
//! windows, EMAs, cooldowns, backoff, rate-limit bucket and counters; every other rule starts
//! fresh.
//!
//! A rule's identity is a hash of its compiled form with the source positions left out, so
//! that editing a rule above it in the same file (which moves it) does not reset it. A rule
//! that calls scripts is also reset when the script library changed.

use crate::evaluator::{Evaluator, Runtime};
use crate::plan::{CompiledRule, Plan};
use regex::Regex;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

/// What a reload did to the rules' state.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Carried {
    /// Rules whose state was kept (compiled form unchanged), by name.
    pub kept: Vec<String>,
    /// Rules that start with fresh state (new or changed), by name.
    pub fresh: Vec<String>,
    /// Rules of the previous set that are gone (or changed), by name.
    pub dropped: Vec<String>,
}

/// The identity of a rule's compiled form, positions left out.
pub fn fingerprint(rule: &CompiledRule) -> u64 {
    static SPAN: OnceLock<Option<Regex>> = OnceLock::new();
    let text = format!("{rule:?}");
    let text = match SPAN.get_or_init(|| Regex::new(r"Span \{[^}]*\}").ok()) {
        Some(span) => span.replace_all(&text, "Span").into_owned(),
        None => text,
    };
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

fn calls_scripts(rule: &CompiledRule) -> bool {
    format!("{rule:?}").contains("Script {")
}

impl Evaluator {
    /// An evaluator over `plan` that keeps, from `previous`, the state of every rule whose
    /// compiled form is unchanged (and, when `scripts_changed`, does not call scripts).
    pub fn carry_over(plan: Plan, previous: Evaluator, scripts_changed: bool) -> (Self, Carried) {
        let mut old: HashMap<u64, Vec<(String, Runtime)>> = HashMap::new();
        for (rule, runtime) in previous.plan.rules.iter().zip(previous.runtimes) {
            if scripts_changed && calls_scripts(rule) {
                continue;
            }
            old.entry(fingerprint(rule))
                .or_default()
                .push((rule.name.clone(), runtime));
        }
        let mut carried = Carried::default();
        let runtimes = plan
            .rules
            .iter()
            .map(|rule| {
                let kept = old.get_mut(&fingerprint(rule)).and_then(|v| v.pop());
                match kept {
                    Some((_, runtime)) => {
                        carried.kept.push(rule.name.clone());
                        runtime
                    }
                    None => {
                        carried.fresh.push(rule.name.clone());
                        Runtime::fresh(rule)
                    }
                }
            })
            .collect();
        carried.dropped = previous
            .plan
            .rules
            .iter()
            .map(|r| r.name.clone())
            .filter(|name| !carried.kept.contains(name))
            .collect();
        (Evaluator::with_runtimes(plan, runtimes), carried)
    }
}

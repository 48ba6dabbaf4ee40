//! The status view served at `/status` and printed by `huatuo status`.

use super::evaluate::EvalShared;
use super::poller::SourceStatsMap;
use huatuo_bpf::Templates;
use huatuo_dsl::ast::{Rule, RuleKind};
use serde::Serialize;
use serde_json::{json, Value as Json};
use std::sync::{Arc, Mutex};

/// What a rule is, for the status view.
#[derive(Debug, Clone, Serialize)]
pub struct RuleInfo {
    /// Rule name.
    pub name: String,
    /// metric, event or autotrace.
    pub kind: RuleKind,
    /// The source it reads.
    pub source: String,
}

impl RuleInfo {
    /// Describes a parsed rule.
    pub fn from_rule(rule: &Rule) -> RuleInfo {
        RuleInfo {
            name: rule.name.name.clone(),
            kind: rule.kind,
            source: rule.source.name.name.clone(),
        }
    }
}

/// Everything the status view reads.
pub struct StatusView {
    /// The loaded rules.
    pub rules: Vec<RuleInfo>,
    /// Rules the config's BlackList switched off.
    pub blacklisted: Vec<RuleInfo>,
    /// Poller statistics.
    pub sources: SourceStatsMap,
    /// Evaluator counters.
    pub eval: Arc<EvalShared>,
    /// Loaded templates.
    pub templates: Option<Arc<Mutex<Templates>>>,
    /// Number of rule files.
    pub rule_files: usize,
}

impl StatusView {
    /// The status as JSON: rules with their counters, sources, templates and what attached.
    pub fn to_json(&self) -> Json {
        let stats = self
            .eval
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        let rules: Vec<Json> = self
            .rules
            .iter()
            .map(|rule| {
                let counters = stats.rules.get(&rule.name);
                json!({
                    "name": rule.name,
                    "kind": rule.kind,
                    "source": rule.source,
                    "counters": counters,
                    "enabled": counters.is_none_or(|c| c.disabled.is_none()),
                })
            })
            .chain(self.blacklisted.iter().map(|rule| {
                json!({
                    "name": rule.name,
                    "kind": rule.kind,
                    "source": rule.source,
                    "counters": null,
                    "enabled": false,
                    "disabled": super::blacklist::REASON,
                })
            }))
            .collect();
        let sources = self.sources.lock().map(|s| json!(*s)).unwrap_or(Json::Null);
        let templates = self
            .templates
            .as_ref()
            .and_then(|t| t.lock().ok().map(|t| json!(t.status())))
            .unwrap_or_else(|| json!([]));
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "rule_files": self.rule_files,
            "rules": rules,
            "sources": sources,
            "templates": templates,
        })
    }
}

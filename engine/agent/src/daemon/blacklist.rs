//! The global `BlackList` of huatuo-bamai.conf (HUATUO's global blacklist): rules named in it are left
//! out of the plan the daemon and `huatuo replay` compile
//! ([`crate::cli::inputs::compile_inputs`]), and reported as disabled in `/status` and the log.
//!
//! A name in the list matches a rule of that name: the tracer name of an event or autotrace
//! rule, the collector name of a metric rule (`netdev_hw`, `metax_gpu`). A metric rule and an
//! event rule may share a name (`oom`): both are switched off, as HUATUO's tracer and its
//! counter are one module there. A `fallback for` rule goes with the rule it stands in for
//! (`softlockup_kmsg` with `softlockup`): its records carry that name. HUATUO's older tracer
//! names (`softirq`, `netrecvlat`, `lacp` ...) name the same rules as the current ones.

use super::status::RuleInfo;
use huatuo_dsl::ast::RuleFile;
use huatuo_dsl::tracer_names;

/// Why a blacklisted rule is not running, as `/status` and the log say it.
pub const REASON: &str = "disabled by BlackList in huatuo-bamai.conf";

/// Splits `files` into the rules not named in `blacklist` and those that are.
pub fn apply(mut files: Vec<RuleFile>, blacklist: &[String]) -> (Vec<RuleFile>, Vec<RuleInfo>) {
    let mut removed = Vec::new();
    for file in &mut files {
        file.rules.retain(|rule| {
            let listed = blacklist.iter().any(|name| {
                tracer_names::same_tracer(name, &rule.name.name)
                    || tracer_names::same_tracer(name, rule.output_name())
            });
            if listed {
                removed.push(RuleInfo::from_rule(rule));
            }
            !listed
        });
    }
    (files, removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use huatuo_dsl::ast::RuleKind;
    use huatuo_dsl::parser::parse_file;

    fn files() -> Vec<RuleFile> {
        let text =
            "metric oom {\n source bpf.oom\n help \"oom kills\"\n emit total = 1 counter\n}\n\
                    event oom {\n source bpf.oom\n emit victim_pid\n}\n\
                    event softlockup {\n source kmsg\n emit message\n}\n\
                    event softlockup_log {\n fallback for softlockup\n source proc.stat\n emit message = \"\"\n}\n";
        vec![parse_file("t.hto", text).expect("test rules parse")]
    }

    #[test]
    fn listed_names_are_removed_and_reported() {
        let (kept, removed) = apply(files(), &["oom".to_string(), "metax_gpu".to_string()]);
        let names: Vec<&str> = kept[0].rules.iter().map(|r| r.name.name.as_str()).collect();
        assert_eq!(names, ["softlockup", "softlockup_log"]);
        let removed: Vec<(&str, RuleKind)> =
            removed.iter().map(|r| (r.name.as_str(), r.kind)).collect();
        assert_eq!(
            removed,
            [("oom", RuleKind::Metric), ("oom", RuleKind::Event)]
        );
    }

    #[test]
    fn status_lists_blacklisted_rules_as_disabled_by_config() {
        let (kept, removed) = apply(files(), &["softlockup".to_string()]);
        let view = super::super::status::StatusView {
            rules: kept[0].rules.iter().map(RuleInfo::from_rule).collect(),
            blacklisted: removed,
            inactive: vec![],
            sources: Default::default(),
            eval: Default::default(),
            templates: None,
            rule_files: 1,
            storage: serde_json::Value::Null,
            runtime_cgroup: Default::default(),
            devices: Default::default(),
        };
        let json = view.to_json();
        let rules = json["rules"].as_array().expect("rules is a list");
        assert_eq!(rules.len(), 4);
        // The fallback goes with the rule it stands in for.
        for (rule, name) in rules[2..].iter().zip(["softlockup", "softlockup_log"]) {
            assert_eq!(rule["name"], name);
            assert_eq!(rule["kind"], "event");
            assert_eq!(rule["enabled"], false);
            assert_eq!(rule["disabled"], REASON);
        }
        assert!(rules[..2].iter().all(|r| r["enabled"] == true));
    }

    #[test]
    fn huatuo_s_older_tracer_names_blacklist_the_renamed_rules() {
        let text = "event softirq_tracing {\n source kmsg\n emit message\n}\n\
                    event netdev_bonding_lacp {\n source kmsg\n emit message\n}\n\
                    event oom {\n source kmsg\n emit message\n}\n";
        let files = vec![parse_file("t.hto", text).expect("test rules parse")];
        let (kept, removed) = apply(files, &["softirq".to_string(), "lacp".to_string()]);
        let names: Vec<&str> = kept[0].rules.iter().map(|r| r.name.name.as_str()).collect();
        assert_eq!(names, ["oom"]);
        let removed: Vec<&str> = removed.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(removed, ["softirq_tracing", "netdev_bonding_lacp"]);
    }

    #[test]
    fn an_empty_list_keeps_everything() {
        let (kept, removed) = apply(files(), &[]);
        assert_eq!(kept[0].rules.len(), 4);
        assert!(removed.is_empty());
    }
}

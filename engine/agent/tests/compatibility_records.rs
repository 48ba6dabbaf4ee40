//! docs/COMPATIBILITY.md's table of event and autotracing records stays true: it is checked
//! against the rules of `rules/events` and `rules/autotrace` and the tracer-name list of
//! `huatuo_dsl::tracer_names`.

use huatuo_dsl::ast::{EmitItem, Rule, RuleKind};
use huatuo_dsl::parser::parse_file;
use huatuo_dsl::tracer_names;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One row of the table.
#[derive(Debug)]
struct Row {
    huatuo: String,
    older: Vec<String>,
    ours: String,
    same: BTreeSet<String>,
    beside: BTreeSet<String>,
    missing: BTreeSet<String>,
}

/// The names of a cell: comma-separated, backquotes dropped.
fn names(cell: &str) -> Vec<String> {
    cell.split(',')
        .map(|n| n.trim().trim_matches('`').to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

/// The rows of the table under `## Event and autotracing records`.
fn rows() -> Vec<Row> {
    let doc = std::fs::read_to_string(repo().join("docs/COMPATIBILITY.md")).expect("doc");
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Event and autotracing records"))
        .expect("the records section");
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
            assert_eq!(cells.len(), 6, "six cells: {line}");
            Row {
                huatuo: names(cells[0]).concat(),
                older: names(cells[1]),
                ours: names(cells[2]).concat(),
                same: names(cells[3]).into_iter().collect(),
                beside: names(cells[4]).into_iter().collect(),
                missing: names(cells[5]).into_iter().collect(),
            }
        })
        .collect()
}

/// The `tracer_data` fields a rule writes: its emits, and `known_issue` with `issues`.
fn emitted(rule: &Rule) -> BTreeSet<String> {
    let mut fields: BTreeSet<String> = rule
        .emits
        .iter()
        .filter_map(|e| match e {
            EmitItem::Named { name, .. } => Some(name.name.clone()),
            _ => None,
        })
        .collect();
    if rule.issues.is_some() {
        fields.insert("known_issue".into());
    }
    fields
}

/// Every event and autotrace rule of the shipped rules, by name.
fn record_rules() -> BTreeMap<String, Rule> {
    let mut rules = BTreeMap::new();
    for dir in ["rules/events", "rules/autotrace"] {
        for entry in std::fs::read_dir(repo().join(dir)).expect("rule dir") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("rule file");
            let file = parse_file(&path.display().to_string(), &text).expect("rules parse");
            for rule in file.rules {
                assert!(matches!(rule.kind, RuleKind::Event | RuleKind::Autotrace));
                rules.insert(rule.name.name.clone(), rule);
            }
        }
    }
    rules
}

#[test]
fn the_records_table_matches_the_rules_and_the_tracer_names() {
    let rows = rows();
    let rules = record_rules();
    let primaries: BTreeSet<&String> = rules
        .iter()
        .filter(|(_, r)| r.fallback.is_none())
        .map(|(name, _)| name)
        .collect();
    let listed: BTreeSet<&String> = rows.iter().map(|r| &r.ours).collect();
    assert_eq!(listed, primaries, "one row per tracer");
    for row in &rows {
        let rule = &rules[&row.ours];
        assert_eq!(row.huatuo, tracer_names::canonical(&row.ours), "{row:?}");
        assert_eq!(
            row.huatuo, row.ours,
            "records carry HUATUO's current name: {row:?}"
        );
        let older: Vec<String> = tracer_names::all_names(&row.ours)[1..]
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(row.older, older, "older names of {}", row.ours);
        let fields = emitted(rule);
        let lacking: Vec<&String> = row.same.difference(&fields).collect();
        assert!(lacking.is_empty(), "{} does not emit {lacking:?}", row.ours);
        let rest: BTreeSet<String> = fields.difference(&row.same).cloned().collect();
        assert_eq!(rest, row.beside, "fields of {} beside HUATUO's", row.ours);
        let written: Vec<&String> = row.missing.intersection(&fields).collect();
        assert!(
            written.is_empty(),
            "{} writes {written:?}: move them",
            row.ours
        );
    }
}

#[test]
fn a_fallback_writes_the_same_fields_as_the_rule_it_stands_in_for() {
    let rules = record_rules();
    for rule in rules.values() {
        if let Some(primary) = &rule.fallback {
            assert_eq!(
                emitted(rule),
                emitted(&rules[&primary.name]),
                "{} and {}",
                rule.name.name,
                primary.name
            );
        }
    }
}

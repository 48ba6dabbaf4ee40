//! The container labels the agent adds to container samples are visible to rules of sources
//! whose samples name a container, and only to those.

mod check_support;

use check_support::{assert_clean, single};
use huatuo_dsl::catalog::{SourceMode, SourceSchema, CONTAINER_ID, CONTAINER_LABELS};

#[test]
fn every_container_label_is_a_string_on_a_per_container_source() {
    for label in CONTAINER_LABELS {
        assert_clean(&format!(
            r#"
event e {{
    source cgroup.cpu
    where  {label} =~ "^kube" and {label} != ""
    cooldown 1m per {label}
    emit   who = {label}, usage
}}
"#
        ));
    }
    assert_clean(
        "\nmetric m {\n    source cgroup.cpu\n    labels container_name, container_level\n    emit usage\n}\n",
    );
}

#[test]
fn container_labels_are_strings_not_numbers() {
    single(
        "\nevent e {\n    source cgroup.cpu\n    where container_level > 3\n    emit usage\n}\n",
        "type-mismatch",
        4,
        29,
    );
}

#[test]
fn host_sources_have_no_container_labels() {
    single(
        "\nevent e {\n    source proc.stat\n    where container_name == \"web\"\n    emit user\n}\n",
        "unknown-name",
        4,
        11,
    );
    single(
        "\nmetric m {\n    source proc.diskstats\n    labels container_host\n    emit reads\n}\n",
        "unknown-label",
        4,
        12,
    );
}

#[test]
fn a_source_labelled_by_container_id_carries_them_too() {
    let source = SourceSchema {
        name: "bpf.x".into(),
        description: String::new(),
        mode: SourceMode::Stream,
        default_interval_s: None,
        per_container: false,
        container_only: false,
        labels: vec!["cpu".into(), CONTAINER_ID.into()],
        fields: vec![],
        open_fields: None,
        captures: vec![],
        tunables: vec![],
    };
    assert!(source.may_carry_container());
    assert!(source.has_label("container_hostnamespace") && source.has_label("cpu"));
    assert_eq!(
        source.label_names()[..3],
        ["cpu", "container_id", "container_host"]
    );
    let host = SourceSchema {
        labels: vec!["cpu".into()],
        ..source
    };
    assert!(!host.has_label("container_name") && host.label_names() == ["cpu"]);
}

//! `filter_allows(included, excluded)`: HUATUO's `{Field, Pattern}` lists are read once at
//! load (constant arguments), must be rule lists, and the result is a stateless boolean that
//! may filter in `where`.

mod check_support;

use check_support::{assert_clean, single};

#[test]
fn config_lists_and_literal_pairs_filter_in_where() {
    assert_clean(
        r#"
autotrace cpuidle {
    source   cgroup.cpu
    where    filter_allows(config("AutoTracing.CPUIdle.Filter.Included", []),
                           [["container_qos", "besteffort"]])
    when     usage > 0
    emit     usage
}
"#,
    );
    assert_clean(
        "\nevent e {\n    source cgroup.cpu\n    let keep = filter_allows([])\n    when keep\n    emit usage\n}\n",
    );
}

#[test]
fn rules_must_be_constant() {
    let d = single(
        "\nevent e {\n    source cgroup.cpu\n    where filter_allows([[\"container_name\", container_id]])\n    emit usage\n}\n",
        "not-constant",
        4,
        45,
    );
    assert!(d.message.contains("computed once"), "{d:#?}");
}

#[test]
fn rules_must_be_a_list_of_rules() {
    let d = single(
        "\nevent e {\n    source cgroup.cpu\n    where filter_allows(\"besteffort\")\n    emit usage\n}\n",
        "type-mismatch",
        4,
        25,
    );
    assert!(d.message.contains("{Field, Pattern}"), "{d:#?}");
}

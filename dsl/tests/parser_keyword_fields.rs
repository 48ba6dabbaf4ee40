//! A source field named like a clause keyword (HUATUO's net_rx_latency `where`) can be read in
//! expressions and emitted by name, and keywords that are operators or literals still are not
//! names.

use huatuo_dsl::ast::*;
use huatuo_dsl::parser::parse_file;

const RULE: &str = r#"
event net_rx_latency {
    source bpf.netrx_latency
    where  where == "TO_USER_COPY" and latency > 115ms
    emit   where, stage = where, latency
}
"#;

#[test]
fn keyword_named_field_reads_and_emits() {
    let file = parse_file("k.hto", RULE).unwrap_or_else(|d| panic!("{d:#?}"));
    let rule = &file.rules[0];
    let filter = rule.filter.as_ref().expect("where");
    let ExprKind::Logic(LogicOp::And, operands) = &filter.kind else {
        panic!("{filter:?}")
    };
    let lhs = &operands[0];
    let ExprKind::Binary(BinOp::Eq, field, _) = &lhs.kind else {
        panic!("{lhs:?}")
    };
    assert_eq!(field.kind, ExprKind::Name("where".into()));
    let names: Vec<(&str, Option<&ExprKind>)> = rule
        .emits
        .iter()
        .map(|e| match e {
            EmitItem::Named { name, value, .. } => {
                (name.name.as_str(), value.as_ref().map(|v| &v.kind))
            }
            other => panic!("{other:?}"),
        })
        .collect();
    let where_name = ExprKind::Name("where".into());
    assert_eq!(
        names,
        [
            ("where", None),
            ("stage", Some(&where_name)),
            ("latency", None)
        ]
    );
}

#[test]
fn operator_and_literal_keywords_are_not_names() {
    for bad in ["and", "not", "true", "counter"] {
        let text = format!("event e {{\n source kmsg\n emit {bad}\n}}\n");
        assert!(
            parse_file("k.hto", &text).is_err(),
            "`emit {bad}` should not parse"
        );
    }
    // A clause keyword still starts its clause after a complete expression.
    let text =
        "event e {\n source kmsg\n where priority < 3\n when priority < 2\n emit message\n}\n";
    let file = parse_file("k.hto", text).unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(file.rules[0].filter.is_some() && file.rules[0].trigger.is_some());
}

//! Parse + check of every shipped rule against the full catalog (target: < 100 ms).

use criterion::{criterion_group, criterion_main, Criterion};
use huatuo::catalog::build_catalog;
use huatuo::rules::{parse_all, read_rule_files};
use huatuo_eval::ScriptHost;
use std::path::Path;

fn parse_and_check(c: &mut Criterion) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let files = read_rule_files(&[repo.join("rules")]).expect("rules readable");
    let catalog = build_catalog(&ScriptHost::load(&repo.join("stdlib")).expect("stdlib loads"));
    let rules: usize = parse_all(&files).0.iter().map(|f| f.rules.len()).sum();
    println!("{} rule files, {rules} rules", files.len());
    c.bench_function("parse+check shipped rules", |b| {
        b.iter(|| {
            let (parsed, diags) = parse_all(&files);
            assert!(diags.is_empty());
            let checked = huatuo_dsl::check::check(&parsed, &catalog);
            assert!(checked
                .iter()
                .all(|d| d.severity != huatuo_dsl::diag::Severity::Error));
            parsed.len()
        })
    });
    c.bench_function("catalog assembly", |b| {
        b.iter(|| build_catalog(&ScriptHost::load(&repo.join("stdlib")).expect("stdlib")))
    });
}

criterion_group!(benches, parse_and_check);
criterion_main!(benches);

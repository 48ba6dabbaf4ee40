//! docs/CATALOG.md is generated from the registered schemas and must not go stale.

use huatuo::catalog::build_catalog;
use huatuo::catalog_doc::catalog_markdown;
use huatuo_eval::ScriptHost;
use std::path::Path;

#[test]
fn catalog_doc_matches_the_registered_schemas() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let catalog = build_catalog(&ScriptHost::load(&repo.join("stdlib")).expect("stdlib loads"));
    let generated = catalog_markdown(&catalog);
    let committed = std::fs::read_to_string(repo.join("docs/CATALOG.md")).unwrap_or_default();
    if std::env::var("HUATUO_BLESS").as_deref() == Ok("1") {
        std::fs::write(repo.join("docs/CATALOG.md"), &generated).expect("write");
        return;
    }
    assert!(
        generated == committed,
        "docs/CATALOG.md is stale: run `cargo run -p huatuo -- catalog --stdlib stdlib > docs/CATALOG.md`"
    );
    // Every source the catalog registers is documented with its fields.
    for source in catalog.sources() {
        assert!(committed.contains(&format!("### `{}`", source.name)));
    }
}

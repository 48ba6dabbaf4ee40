//! Assembles the catalog every rule is checked against, from what each layer registers.

use crate::capture::schemas::capture_schemas;
use huatuo_dsl::catalog::Catalog;
use huatuo_eval::ScriptHost;

/// The full catalog: kernel templates, host readers, cgroup readers, captures, config keys
/// and the functions of the loaded stdlib scripts.
pub fn build_catalog(scripts: &ScriptHost) -> Catalog {
    let mut catalog = source_catalog();
    for capture in capture_schemas() {
        catalog.add_capture(capture);
    }
    for key in huatuo_config::key_schemas() {
        catalog.add_config_key(key);
    }
    for (name, arity) in scripts.functions() {
        catalog.add_script_fn(&name, arity);
    }
    catalog
}

/// A catalog of the sources alone (kernel templates, host and cgroup readers).
pub fn source_catalog() -> Catalog {
    let mut catalog = Catalog::new();
    for schema in huatuo_bpf::schemas()
        .into_iter()
        .chain(huatuo_sources::schemas())
        .chain(huatuo_containers::schemas())
    {
        catalog.add_source(schema);
    }
    catalog
}

//! huatuo's kernel templates: precompiled CO-RE eBPF objects, their schemas and the loader.
//!
//! Every folder `bpf-templates/<name>/` holds `<name>.bpf.c` and `schema.toml`; build.rs
//! compiles and embeds them. `schemas()` registers them into the rule catalog.

pub mod attach;
pub mod cgroup;
pub mod decode;
pub mod embedded;
pub mod hist;
pub mod histread;
pub mod kallsyms;
pub mod kernel_btf;
pub mod layout;
pub mod loader;
pub mod needs;
pub mod profiler;
pub mod requires;
pub mod schema;
pub mod slots;
pub mod status;
pub mod transport;
pub mod waitrate;

pub use cgroup::{CgroupResolver, NoContainers};
pub use embedded::{EmbeddedTemplate, TEMPLATES};
pub use loader::{LoadOptions, Reconciled, Templates};
pub use schema::TemplateSchema;
pub use status::{Counters, ProgramStatus, TemplateStatus, VariantOutcome};

use huatuo_dsl::catalog::SourceSchema;

/// Where build.rs put the test-only BPF objects (`tests/bpf/<stem>.bpf.c` →
/// `test_<stem>.bpf.o`), for the kernel tests of this crate and of the crates using it.
pub const TEST_OBJECTS_DIR: &str = env!("OUT_DIR");

/// The parsed schema of every embedded template; a schema that does not parse is reported
/// in the error list instead (a build with a broken schema.toml fails the unit tests).
pub fn template_schemas() -> (Vec<(&'static str, TemplateSchema)>, Vec<String>) {
    let mut schemas = vec![];
    let mut errors = vec![];
    for template in TEMPLATES {
        match TemplateSchema::parse(template.name, template.schema) {
            Ok(schema) => schemas.push((template.name, schema)),
            Err(err) => errors.push(err),
        }
    }
    (schemas, errors)
}

/// The catalog schemas (`bpf.<name>`) of every template, for `Catalog::add_source`.
pub fn schemas() -> Vec<SourceSchema> {
    template_schemas()
        .0
        .into_iter()
        .map(|(_, schema)| schema.source)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_schema_parses() {
        let (schemas, errors) = template_schemas();
        assert!(errors.is_empty(), "{errors:#?}");
        assert_eq!(schemas.len(), TEMPLATES.len());
        let names: Vec<String> = super::schemas().into_iter().map(|s| s.name).collect();
        assert!(names.contains(&"bpf.runqlat".to_string()), "{names:?}");
    }

    #[test]
    fn per_container_counts_are_found_in_the_schemas() {
        let (schemas, _) = template_schemas();
        let counts: Vec<(&str, Vec<(&str, &str)>)> = schemas
            .iter()
            .map(|(name, schema)| (*name, schema.container_counts()))
            .filter(|(_, counts)| !counts.is_empty())
            .collect();
        assert_eq!(
            counts,
            vec![("reclaim", vec![("container_id", "directstall")])]
        );
    }

    #[test]
    fn every_object_is_a_bpf_elf() {
        for template in TEMPLATES {
            assert_eq!(&template.object[..4], b"\x7fELF", "{}", template.name);
            // e_machine 247 = EM_BPF
            assert_eq!(template.object[18], 247, "{}", template.name);
        }
    }
}

//! The templates compiled and embedded by build.rs.

/// One template as built: its objects and its schema text.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedTemplate {
    /// Folder name (`runqlat`); the catalog name is `bpf.<name>`.
    pub name: &'static str,
    /// The object to load (ring buffer variant for event templates).
    pub object: &'static [u8],
    /// The perf event array variant of an event template, for kernels before 5.8.
    pub perfbuf_object: Option<&'static [u8]>,
    /// The hash-map variant of a `task_storage = true` template, for kernels without
    /// `BPF_MAP_TYPE_TASK_STORAGE` (< 5.11) or where the main object does not attach.
    pub hashmap_object: Option<&'static [u8]>,
    /// The schema.toml text.
    pub schema: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/templates.rs"));

/// Looks up an embedded template by folder name.
pub fn find(name: &str) -> Option<&'static EmbeddedTemplate> {
    TEMPLATES.iter().find(|t| t.name == name)
}

//! Loading and validating `huatuo-bamai.conf`: the typed config with HUATUO's sections, keys
//! and defaults, file:line:col diagnostics, the key catalog rules read with `config(...)`,
//! and values in base units.

mod address;
mod field;
mod hint;
mod load;
mod model;
mod section;
mod unit;

pub use address::es_addresses;
pub use field::{compile_filter, FilterRule, KnownIssue, FILTER_FIELDS};
pub use load::{
    load_dir, load_file, load_str, read_text, CODE_IO, CODE_SYNTAX, CODE_TYPE, CODE_UNKNOWN_KEY,
    CODE_VALUE, DEFAULT_FILE_NAME, MAX_FILE_BYTES,
};
pub use model::*;

use huatuo_dsl::catalog::ConfigKeySchema;
use huatuo_dsl::source::ConfigValues;
use huatuo_dsl::value::Value;
use section::{Entry, Section};

/// The shipped `huatuo-bamai.conf`, embedded in the binary.
pub fn embedded_default() -> &'static str {
    include_str!("../../../huatuo-bamai.conf")
}

/// Every key of the schema, `Section.Sub.Key`, with its type, dimension and description.
pub fn key_schemas() -> Vec<ConfigKeySchema> {
    let mut entries = Vec::new();
    Config::describe("", &mut entries);
    entries
        .into_iter()
        .filter_map(|Entry { path, key }| {
            key.map(|(ty, dim, description)| ConfigKeySchema {
                path,
                ty,
                dim,
                description,
            })
        })
        .collect()
}

impl Config {
    /// The config of the shipped file (equal to `Config::default()`, which tests assert).
    pub fn embedded() -> Config {
        load_str("<embedded huatuo-bamai.conf>", embedded_default()).unwrap_or_else(|diags| {
            for diag in &diags {
                log::error!("{}: {}", diag.location(), diag.message);
            }
            Config::default()
        })
    }
}

impl ConfigValues for Config {
    fn value(&self, path: &str) -> Option<Value> {
        self.value_at(path)
    }
}

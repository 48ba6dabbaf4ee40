//! Shared plumbing of the readers: bounded file reads, errors naming the file, schema and
//! sample builders.

use huatuo_dsl::catalog::{FieldSchema, FieldType, SourceMode, SourceSchema};
use huatuo_dsl::source::ReadError;
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::{Sample, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Largest file a reader accepts; procfs files here are a few KiB, a bigger one is refused.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// Builds a `ReadError` for `source` naming `path`.
pub fn read_error(source: &str, path: &Path, message: impl Into<String>) -> ReadError {
    ReadError {
        source_name: source.to_string(),
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Reads a text file of at most [`MAX_FILE_BYTES`]; the error names the path.
pub fn read_text(source: &str, path: &Path) -> Result<String, ReadError> {
    let file = std::fs::File::open(path).map_err(|e| read_error(source, path, e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(source, path, e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(read_error(
            source,
            path,
            format!("file larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    String::from_utf8(bytes).map_err(|e| read_error(source, path, format!("not UTF-8: {e}")))
}

/// Declares one field of a schema.
pub fn field(name: &str, ty: FieldType, dim: Dim, description: &str) -> FieldSchema {
    FieldSchema {
        name: name.to_string(),
        ty,
        dim,
        description: description.to_string(),
    }
}

/// Declares an integer field.
pub fn int(name: &str, dim: Dim, description: &str) -> FieldSchema {
    field(name, FieldType::Int, dim, description)
}

/// A polled source schema with the given labels and fields and a 10 s default interval.
pub fn polled(
    name: &str,
    description: &str,
    labels: &[&str],
    fields: Vec<FieldSchema>,
) -> SourceSchema {
    SourceSchema {
        name: name.to_string(),
        description: description.to_string(),
        mode: SourceMode::Polled,
        default_interval_s: Some(10),
        per_container: false,
        container_only: false,
        labels: labels.iter().map(|l| l.to_string()).collect(),
        fields,
        open_fields: None,
        captures: Vec::new(),
        tunables: Vec::new(),
    }
}

/// A sample under construction; the reader stamps source and time.
#[derive(Debug, Default)]
pub struct SampleBuilder {
    labels: BTreeMap<String, String>,
    fields: BTreeMap<String, Value>,
}

impl SampleBuilder {
    /// An empty sample (the host entity).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a label.
    pub fn label(mut self, name: &str, value: impl Into<String>) -> Self {
        self.labels.insert(name.to_string(), value.into());
        self
    }

    /// Adds a field.
    pub fn set(&mut self, name: impl Into<String>, value: Value) {
        self.fields.insert(name.into(), value);
    }

    /// Adds a signed integer field.
    pub fn int(mut self, name: &str, value: i64) -> Self {
        self.set(name, Value::Int(value));
        self
    }

    /// Adds an unsigned count, saturating at `i64::MAX`.
    pub fn uint(mut self, name: &str, value: u64) -> Self {
        self.set(name, Value::Int(saturate(value)));
        self
    }

    /// Finishes the sample for `source` at `time_ns`.
    pub fn build(self, source: &str, time_ns: i64) -> Sample {
        Sample {
            source: source.to_string(),
            time_ns,
            labels: self.labels,
            fields: self.fields,
        }
    }
}

/// Converts a kernel `u64` counter to the `i64` a `Value::Int` holds, saturating.
pub fn saturate(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Multiplies a kernel counter by a unit scale, saturating.
pub fn scaled(value: u64, scale: u64) -> i64 {
    saturate(value.saturating_mul(scale))
}

/// Parses one unsigned number, naming the token in the error.
pub fn parse_u64(token: &str, what: &str) -> Result<u64, String> {
    token
        .parse::<u64>()
        .map_err(|_| format!("{what}: expected an unsigned number, found {token:?}"))
}

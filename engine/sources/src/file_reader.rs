//! A reader over one or more text files: read each, hand the texts to a pure parser.

use crate::common::{read_error, read_text};
use huatuo_dsl::catalog::SourceSchema;
use huatuo_dsl::source::{ReadError, Reader};
use huatuo_dsl::value::Sample;
use std::path::PathBuf;

/// Why a parser rejected its input: which of the reader's files and what was wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseFailure {
    /// Index of the offending file in the reader's file list.
    pub file: usize,
    /// What was wrong, with the line where it applies.
    pub message: String,
}

impl ParseFailure {
    /// A failure in file `file`.
    pub fn new(file: usize, message: impl Into<String>) -> Self {
        Self {
            file,
            message: message.into(),
        }
    }
}

/// Turns the texts of the reader's files (`None` for a missing optional file) into samples.
pub type ParseFn =
    Box<dyn Fn(&[Option<String>], i64) -> Result<Vec<Sample>, ParseFailure> + Send + Sync>;

/// One file a reader reads.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// Where the file is.
    pub path: PathBuf,
    /// When false, a missing or unreadable file is passed to the parser as `None`.
    pub required: bool,
}

/// A polled source made of files and a parser.
pub struct FileReader {
    schema: SourceSchema,
    files: Vec<FileSpec>,
    parse: ParseFn,
}

impl FileReader {
    /// A reader of `files` producing samples of `schema` through `parse`.
    pub fn new(schema: SourceSchema, files: Vec<FileSpec>, parse: ParseFn) -> Self {
        Self {
            schema,
            files,
            parse,
        }
    }

    /// A reader of one required file with a single-text parser.
    pub fn single<F>(schema: SourceSchema, path: PathBuf, parse: F) -> Self
    where
        F: Fn(&str, i64) -> Result<Vec<Sample>, String> + Send + Sync + 'static,
    {
        let parse: ParseFn = Box::new(move |texts, now| {
            let text = texts.first().and_then(|t| t.as_deref()).unwrap_or_default();
            parse(text, now).map_err(|message| ParseFailure::new(0, message))
        });
        Self::new(
            schema,
            vec![FileSpec {
                path,
                required: true,
            }],
            parse,
        )
    }
}

impl Reader for FileReader {
    fn schema(&self) -> SourceSchema {
        self.schema.clone()
    }

    fn read(&mut self, now_ns: i64) -> Result<Vec<Sample>, ReadError> {
        let name = &self.schema.name;
        let mut texts = Vec::with_capacity(self.files.len());
        for spec in &self.files {
            match read_text(name, &spec.path) {
                Ok(text) => texts.push(Some(text)),
                Err(e) if spec.required => return Err(e),
                Err(e) => {
                    log::debug!("{e}");
                    texts.push(None);
                }
            }
        }
        (self.parse)(&texts, now_ns).map_err(|failure| {
            let path = self
                .files
                .get(failure.file)
                .map(|spec| spec.path.clone())
                .unwrap_or_default();
            read_error(name, &path, failure.message)
        })
    }
}

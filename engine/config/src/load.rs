//! Loading `huatuo-bamai.conf`: parse TOML with spans, walk it against the schema, and
//! report every syntax, unknown-key, type and value problem at its `file:line:col`.

use crate::field::{describe_item, Field, Problem};
use crate::hint::unknown_key_help;
use crate::model::Config;
use crate::section::{Entry, Section};
use crate::unit::{Check, Unit};
use huatuo_dsl::ast::Span;
use huatuo_dsl::diag::Diagnostic;
use std::ops::Range;
use std::path::Path;
use toml_edit::{ImDocument, Item, TableLike};

/// The file name HUATUO looks for inside `--config-dir`.
pub const DEFAULT_FILE_NAME: &str = "huatuo-bamai.conf";

/// Diagnostic code of a TOML syntax error.
pub const CODE_SYNTAX: &str = "config-syntax";
/// Diagnostic code of a key or section the schema does not know.
pub const CODE_UNKNOWN_KEY: &str = "unknown-config-key";
/// Diagnostic code of a value of the wrong TOML type.
pub const CODE_TYPE: &str = "config-type";
/// Diagnostic code of a value of the right type that is not allowed.
pub const CODE_VALUE: &str = "config-value";
/// Diagnostic code of a config file that cannot be read.
pub const CODE_IO: &str = "config-io";

/// Parses and validates config text; `path` names the file in diagnostics.
pub fn load_str(path: &str, text: &str) -> Result<Config, Vec<Diagnostic>> {
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(err) => {
            let mut ctx = Ctx::new(path, text);
            let span = ctx.span(err.span());
            let message = err
                .message()
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            ctx.diags
                .push(Diagnostic::error(CODE_SYNTAX, path, span, message).with_label("here"));
            return Err(ctx.diags);
        }
    };
    let mut ctx = Ctx::new(path, text);
    let mut config = Config::default();
    config.load(doc.as_table(), "", &mut ctx);
    if ctx.diags.is_empty() {
        Ok(config)
    } else {
        ctx.diags.sort_by_key(|d| (d.span.start, d.span.end));
        Err(ctx.diags)
    }
}

/// Largest config file read; anything bigger is refused rather than read into memory.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// Reads and validates the config file at `path`.
pub fn load_file(path: &Path) -> Result<Config, Vec<Diagnostic>> {
    let text = read_text(path)?;
    load_str(&path.display().to_string(), &text)
}

/// The text of the config file at `path`: at most `MAX_FILE_BYTES` of UTF-8 are read (a
/// device such as `/dev/zero` or a huge file is refused without filling memory).
pub fn read_text(path: &Path) -> Result<String, Vec<Diagnostic>> {
    read_bounded(path).map_err(|message| {
        vec![Diagnostic::error(
            CODE_IO,
            &path.display().to_string(),
            Span {
                line: 1,
                col: 1,
                ..Span::default()
            },
            message,
        )]
    })
}

/// The file's text, if it is readable UTF-8 of at most `MAX_FILE_BYTES`.
fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|err| format!("cannot read config file: {err}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| format!("cannot read config file: {err}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "config file is larger than {} MiB",
            MAX_FILE_BYTES >> 20
        ));
    }
    String::from_utf8(bytes).map_err(|err| {
        format!(
            "config file is not UTF-8 (invalid byte at offset {})",
            err.utf8_error().valid_up_to()
        )
    })
}

/// HUATUO's `--config-dir`: loads `huatuo-bamai.conf` from the directory `dir`.
pub fn load_dir(dir: &Path) -> Result<Config, Vec<Diagnostic>> {
    load_file(&dir.join(DEFAULT_FILE_NAME))
}

/// The state of one load: the text for positions, the schema for hints, the problems found.
pub(crate) struct Ctx<'a> {
    path: &'a str,
    text: &'a str,
    entries: Vec<Entry>,
    diags: Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    fn new(path: &'a str, text: &'a str) -> Self {
        let mut entries = Vec::new();
        Config::describe("", &mut entries);
        Ctx {
            path,
            text,
            entries,
            diags: Vec::new(),
        }
    }

    /// A `Span` with 1-based line and column for a byte range (start of file when unknown).
    fn span(&self, range: Option<Range<usize>>) -> Span {
        let range = range.unwrap_or(0..0);
        let start = floor_char_boundary(self.text, range.start);
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        Span {
            start,
            end: range.end.max(start),
            line,
            col,
        }
    }

    fn error(&mut self, code: &'static str, range: Option<Range<usize>>, message: String) -> usize {
        let span = self.span(range);
        self.diags
            .push(Diagnostic::error(code, self.path, span, message));
        self.diags.len() - 1
    }

    /// Reads key `path` as a `T`; on a problem records diagnostics and returns `None`.
    pub(crate) fn field<T: Field>(
        &mut self,
        path: &str,
        item: &Item,
        unit: Unit,
        check: Check,
    ) -> Option<T> {
        let problems = match T::parse(item, unit, check) {
            Ok(value) => return Some(value),
            Err(problems) => problems,
        };
        let item_span = item_span(item);
        for problem in problems {
            match problem {
                Problem::Type(found, span) => {
                    let at = self.error(
                        CODE_TYPE,
                        span.or_else(|| item_span.clone()),
                        format!("`{path}` expects {}, found {found}", T::EXPECTED),
                    );
                    self.diags[at].label = format!("expected {}", T::EXPECTED);
                }
                Problem::Value(message, span) => {
                    let at = self.error(
                        CODE_VALUE,
                        span.or_else(|| item_span.clone()),
                        format!("`{path}`: {message}"),
                    );
                    self.diags[at].label = "invalid value".to_string();
                }
                Problem::UnknownKey(key, span, near) => {
                    let at = self.error(
                        CODE_UNKNOWN_KEY,
                        span.or_else(|| item_span.clone()),
                        format!("unknown config key `{path}.{key}`"),
                    );
                    self.diags[at].label = "unknown key".to_string();
                    self.diags[at].help = near.map(|near| format!("did you mean `{path}.{near}`?"));
                }
            }
        }
        None
    }

    /// The table at section `path`, or a type diagnostic when it is not a table.
    pub(crate) fn section<'t>(&mut self, path: &str, item: &'t Item) -> Option<&'t dyn TableLike> {
        let table = item.as_table_like();
        if table.is_none() {
            let found = describe_item(item);
            let at = self.error(
                CODE_TYPE,
                item_span(item),
                format!("`{path}` is a section and expects a table, found {found}"),
            );
            self.diags[at].label = "expected a table".to_string();
            self.diags[at].help = Some(format!("write it as a `[{path}]` header"));
        }
        table
    }

    /// Records an unknown key or section, with the nearest known one of the same kind.
    pub(crate) fn unknown(&mut self, path: &str, table: &dyn TableLike, key: &str, item: &Item) {
        let is_section = item.is_table_like();
        let help = unknown_key_help(&self.entries, path, is_section);
        let key_span = table
            .get_key_value(key)
            .and_then(|(k, _)| k.span())
            .or_else(|| item_span(item));
        let message = if is_section {
            format!("unknown config section `[{path}]`")
        } else {
            format!("unknown config key `{path}`")
        };
        let at = self.error(CODE_UNKNOWN_KEY, key_span, message);
        self.diags[at].label = if is_section {
            "unknown section".to_string()
        } else {
            "unknown key".to_string()
        };
        self.diags[at].help = help;
    }
}

/// Where an item was written; an implicit table points at its first child.
fn item_span(item: &Item) -> Option<Range<usize>> {
    item.span().or_else(|| {
        let table = item.as_table_like()?;
        table
            .iter()
            .filter_map(|(key, child)| {
                table
                    .get_key_value(key)
                    .and_then(|(k, _)| k.span())
                    .or_else(|| item_span(child))
            })
            .min_by_key(|range| range.start)
    })
}

/// The largest char boundary at or below `index`, clamped to the text.
fn floor_char_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

//! Typed config values: how each Rust field type reads a TOML item, checks it and turns
//! into a rule `Value` in base units.

use crate::unit::{Check, Unit};
use huatuo_dsl::catalog::FieldType;
use huatuo_dsl::value::Value;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use toml_edit::{Item, TableLike};

/// Largest compiled program of one filter regex; patterns beyond it are rejected.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Largest lazy-DFA cache of one filter regex.
const REGEX_DFA_LIMIT: usize = 2 << 20;
/// Deepest nesting of groups in one filter regex.
const REGEX_NEST_LIMIT: u32 = 64;

/// Compiles a filter pattern (`DeviceExcluded`, `IncludedOnHost`, `IssuesList` ...) with
/// the size limits huatuo applies everywhere, so a config pattern cannot exhaust memory.
pub fn compile_filter(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_LIMIT)
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
}

/// The fields a CPUIdle container filter rule may match on (HUATUO's manual, configuration section, CPUIdle filters).
pub const FILTER_FIELDS: &[&str] = &[
    "container_host_namespace",
    "container_hostname",
    "container_qos",
];

/// One `[[AutoTracing.CPUIdle.Filter.Included]]` / `Excluded` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterRule {
    /// The container label matched: one of [`FILTER_FIELDS`].
    #[serde(rename = "Field")]
    pub field: String,
    /// Regular expression the label must match.
    #[serde(rename = "Pattern")]
    pub pattern: String,
}

/// `IssuesList` entries: `[name, regex]`; a stack matching the regex is tagged `name`.
pub type KnownIssue = (String, String);

/// What is wrong with one item, before it is placed in the file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Problem {
    /// The item has the wrong TOML type; holds what was found and, for an element, where.
    Type(String, Option<Range<usize>>),
    /// The item has the right type but a bad value; the span narrows to an element.
    Value(String, Option<Range<usize>>),
    /// A key inside a structured value is unknown; holds the key, its span, the closest name.
    UnknownKey(String, Option<Range<usize>>, Option<&'static str>),
}

/// A Rust type that a config key holds.
pub(crate) trait Field: Sized {
    /// The type rules see.
    const TYPE: FieldType;
    /// The TOML type expected, for diagnostics ("an integer").
    const EXPECTED: &'static str;
    /// Reads and checks a TOML item; reports every problem found.
    fn parse(item: &Item, unit: Unit, check: Check) -> Result<Self, Vec<Problem>>;
    /// The value in base units.
    fn to_value(&self, unit: Unit) -> Value;
}

/// The TOML type of an item, as an operator would name it.
pub(crate) fn describe_item(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::Value(value) => describe_value(value),
    }
}

fn describe_value(value: &toml_edit::Value) -> &'static str {
    match value {
        toml_edit::Value::String(_) => "a string",
        toml_edit::Value::Integer(_) => "an integer",
        toml_edit::Value::Float(_) => "a float",
        toml_edit::Value::Boolean(_) => "a boolean",
        toml_edit::Value::Datetime(_) => "a datetime",
        toml_edit::Value::Array(_) => "an array",
        toml_edit::Value::InlineTable(_) => "an inline table",
    }
}

fn type_error<T>(item: &Item) -> Result<T, Vec<Problem>> {
    Err(vec![Problem::Type(describe_item(item).to_string(), None)])
}

fn value_error<T>(message: impl Into<String>) -> Result<T, Vec<Problem>> {
    Err(vec![Problem::Value(message.into(), None)])
}

/// The last line of a regex error: the short reason (`unclosed group`).
fn regex_reason(err: &regex::Error) -> String {
    let text = err.to_string();
    let reason = text
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("invalid pattern");
    reason.trim().trim_start_matches("error: ").to_string()
}

/// Checks one string against a `Check`; `what` names it in the message.
fn check_str(text: &str, check: Check, what: &str) -> Result<(), String> {
    match check {
        Check::Regex if !text.is_empty() => compile_filter(text).map(|_| ()).map_err(|err| {
            format!(
                "{what} is not a valid regular expression: {}",
                regex_reason(&err)
            )
        }),
        Check::HttpUrls if !text.is_empty() => crate::address::es_addresses(text).map(|_| ()),
        Check::OneOf(words) if !words.iter().any(|w| w.eq_ignore_ascii_case(text)) => Err(format!(
            "{what} `{text}` is not one of {}",
            words.join(", ")
        )),
        _ => Ok(()),
    }
}

/// Checks a number against the sign, positivity and port constraints.
fn check_number(value: f64, check: Check) -> Result<(), String> {
    if !value.is_finite() {
        return Err("must be a finite number".to_string());
    }
    if let Check::Range(min, max) = check {
        if value < min as f64 || value > max as f64 {
            return Err(format!("must be from {min} to {max}, found {value}"));
        }
    }
    if value < 0.0 {
        return Err(format!("must not be negative, found {value}"));
    }
    match check {
        Check::Positive if value == 0.0 => Err("must be greater than 0".to_string()),
        Check::Port if value > 65535.0 => {
            Err(format!("must be a port from 0 to 65535, found {value}"))
        }
        _ => Ok(()),
    }
}

impl Field for i64 {
    const TYPE: FieldType = FieldType::Int;
    const EXPECTED: &'static str = "an integer";

    fn parse(item: &Item, unit: Unit, check: Check) -> Result<Self, Vec<Problem>> {
        let Some(value) = item.as_integer() else {
            return type_error(item);
        };
        check_number(value as f64, check).or_else(value_error)?;
        if value.checked_mul(unit.scale()).is_none() {
            return value_error(format!(
                "{value} {} is too large to represent in nanoseconds or bytes",
                unit.label()
            ));
        }
        Ok(value)
    }

    fn to_value(&self, unit: Unit) -> Value {
        Value::Int(self.saturating_mul(unit.scale()))
    }
}

impl Field for f64 {
    const TYPE: FieldType = FieldType::Float;
    const EXPECTED: &'static str = "a number";

    fn parse(item: &Item, _unit: Unit, check: Check) -> Result<Self, Vec<Problem>> {
        let value = match (item.as_float(), item.as_integer()) {
            (Some(f), _) => f,
            (None, Some(i)) => i as f64,
            (None, None) => return type_error(item),
        };
        check_number(value, check).or_else(value_error)?;
        Ok(value)
    }

    fn to_value(&self, unit: Unit) -> Value {
        Value::Float(self * unit.scale() as f64)
    }
}

impl Field for bool {
    const TYPE: FieldType = FieldType::Bool;
    const EXPECTED: &'static str = "a boolean";

    fn parse(item: &Item, _unit: Unit, _check: Check) -> Result<Self, Vec<Problem>> {
        item.as_bool().map_or_else(|| type_error(item), Ok)
    }

    fn to_value(&self, _unit: Unit) -> Value {
        Value::Bool(*self)
    }
}

impl Field for String {
    const TYPE: FieldType = FieldType::Str;
    const EXPECTED: &'static str = "a string";

    fn parse(item: &Item, _unit: Unit, check: Check) -> Result<Self, Vec<Problem>> {
        let Some(text) = item.as_str() else {
            return type_error(item);
        };
        check_str(text, check, "the value").or_else(value_error)?;
        Ok(text.to_string())
    }

    fn to_value(&self, _unit: Unit) -> Value {
        Value::Str(self.clone())
    }
}

/// The elements of an array item, or a type problem.
fn array_items(item: &Item) -> Result<&toml_edit::Array, Vec<Problem>> {
    item.as_array().map_or_else(|| type_error(item), Ok)
}

impl Field for Vec<String> {
    const TYPE: FieldType = FieldType::List;
    const EXPECTED: &'static str = "an array of strings";

    fn parse(item: &Item, _unit: Unit, check: Check) -> Result<Self, Vec<Problem>> {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for (index, element) in array_items(item)?.iter().enumerate() {
            let Some(text) = element.as_str() else {
                problems.push(Problem::Type(
                    format!(
                        "an array containing {} at position {}",
                        describe_value(element),
                        index + 1
                    ),
                    element.span(),
                ));
                continue;
            };
            let what = format!("element {}", index + 1);
            if let Err(message) = check_str(text, check, &what) {
                problems.push(Problem::Value(message, element.span()));
            }
            out.push(text.to_string());
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }

    fn to_value(&self, _unit: Unit) -> Value {
        Value::List(self.iter().cloned().map(Value::Str).collect())
    }
}

impl Field for Vec<KnownIssue> {
    const TYPE: FieldType = FieldType::List;
    const EXPECTED: &'static str = "an array of [name, regex] pairs";

    fn parse(item: &Item, _unit: Unit, _check: Check) -> Result<Self, Vec<Problem>> {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for (index, element) in array_items(item)?.iter().enumerate() {
            let pair = element
                .as_array()
                .filter(|pair| pair.len() == 2)
                .and_then(|pair| Some((pair.get(0)?.as_str()?, pair.get(1)?.as_str()?)));
            let Some((name, pattern)) = pair else {
                problems.push(Problem::Type(
                    format!(
                        "{} at position {} instead of a [name, regex] pair",
                        describe_value(element),
                        index + 1
                    ),
                    element.span(),
                ));
                continue;
            };
            let what = format!("the pattern of `{name}`");
            if let Err(message) = check_str(pattern, Check::Regex, &what) {
                problems.push(Problem::Value(message, element.span()));
            }
            out.push((name.to_string(), pattern.to_string()));
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }

    fn to_value(&self, _unit: Unit) -> Value {
        Value::List(
            self.iter()
                .map(|(name, pattern)| {
                    Value::List(vec![Value::Str(name.clone()), Value::Str(pattern.clone())])
                })
                .collect(),
        )
    }
}

/// Reads one filter rule table, collecting problems.
fn parse_rule(
    table: &dyn TableLike,
    span: Option<Range<usize>>,
    problems: &mut Vec<Problem>,
) -> Option<FilterRule> {
    let mut field = None;
    let mut pattern = None;
    for (key, value) in table.iter() {
        let key_span = table.get_key_value(key).and_then(|(k, _)| k.span());
        let slot = match key {
            "Field" => &mut field,
            "Pattern" => &mut pattern,
            _ => {
                let near = huatuo_dsl::diag::did_you_mean(key, ["Field", "Pattern"]);
                problems.push(Problem::UnknownKey(key.to_string(), key_span, near));
                continue;
            }
        };
        match value.as_str() {
            Some(text) => *slot = Some((text.to_string(), value.span())),
            None => problems.push(Problem::Type(
                format!("{} for `{key}` of a filter rule", describe_item(value)),
                value.span(),
            )),
        }
    }
    let (Some((field, field_span)), Some((pattern, pattern_span))) = (field, pattern) else {
        problems.push(Problem::Value(
            "a filter rule needs both `Field` and `Pattern`".to_string(),
            span,
        ));
        return None;
    };
    if let Err(message) = check_str(&field, Check::OneOf(FILTER_FIELDS), "`Field`") {
        problems.push(Problem::Value(message, field_span));
    }
    if let Err(message) = check_str(&pattern, Check::Regex, "`Pattern`") {
        problems.push(Problem::Value(message, pattern_span));
    }
    Some(FilterRule { field, pattern })
}

impl Field for Vec<FilterRule> {
    const TYPE: FieldType = FieldType::Json;
    const EXPECTED: &'static str = "an array of tables with `Field` and `Pattern`";

    fn parse(item: &Item, _unit: Unit, _check: Check) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut out = Vec::new();
        let mut push = |table: &dyn TableLike, span, problems: &mut Vec<Problem>| {
            if let Some(rule) = parse_rule(table, span, problems) {
                out.push(rule);
            }
        };
        match item {
            Item::ArrayOfTables(tables) => {
                for table in tables.iter() {
                    push(table, table.span(), &mut problems);
                }
            }
            Item::Value(toml_edit::Value::Array(array)) => {
                for element in array.iter() {
                    match element.as_inline_table() {
                        Some(table) => push(table, element.span(), &mut problems),
                        None => problems.push(Problem::Type(
                            format!("an array containing {}", describe_value(element)),
                            element.span(),
                        )),
                    }
                }
            }
            _ => return type_error(item),
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }

    fn to_value(&self, _unit: Unit) -> Value {
        let rules = self
            .iter()
            .map(|rule| serde_json::json!({"Field": rule.field, "Pattern": rule.pattern}))
            .collect();
        Value::Json(serde_json::Value::Array(rules))
    }
}

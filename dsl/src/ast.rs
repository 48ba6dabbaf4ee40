//! The syntax tree of `.hto` rule files. Every node that a diagnostic may point at has a span.

use crate::units::Dim;
use serde::Serialize;

/// A region of a rule file: byte offsets plus the 1-based line and column of its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Span {
    /// Byte offset of the first character.
    pub start: usize,
    /// Byte offset one past the last character.
    pub end: usize,
    /// 1-based line of `start`.
    pub line: usize,
    /// 1-based column (in characters) of `start`.
    pub col: usize,
}

/// A name with the place it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ident {
    /// The name; dotted for source names (`proc.stat`), `file::fn` for script functions.
    pub name: String,
    /// Where it was written.
    pub span: Span,
}

/// A parsed rule file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleFile {
    /// Path as given to the parser, used in diagnostics.
    pub path: String,
    /// The rules in file order.
    pub rules: Vec<Rule>,
}

/// The three kinds of detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Produces Prometheus series.
    Metric,
    /// Produces records when an anomaly happens.
    Event,
    /// Produces records with a profile or snapshot when a spike happens.
    Autotrace,
}

impl RuleKind {
    /// The keyword that starts a rule of this kind.
    pub fn keyword(self) -> &'static str {
        match self {
            RuleKind::Metric => "metric",
            RuleKind::Event => "event",
            RuleKind::Autotrace => "autotrace",
        }
    }
}

/// One rule: a `metric`, `event` or `autotrace` block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// Which kind of rule.
    pub kind: RuleKind,
    /// Rule name: the tracer_name of records, the family prefix of metrics.
    pub name: Ident,
    /// The whole block.
    pub span: Span,
    /// `source NAME [every EXPR]`.
    pub source: SourceClause,
    /// `help "..."`.
    pub help: Option<(String, Span)>,
    /// `param NAME = EXPR`: constants evaluated once (may read config).
    pub params: Vec<Binding>,
    /// `let NAME = EXPR` and `script NAME = file::fn(args)`, in file order.
    pub lets: Vec<Binding>,
    /// `where EXPR`: stateless sample filter, evaluated first; candidates for kernel pushdown.
    pub filter: Option<Expr>,
    /// `when EXPR`: the trigger condition, evaluated after the bindings.
    pub trigger: Option<Expr>,
    /// `labels a, b`: which sample labels a metric keeps (all when absent).
    pub labels: Option<Vec<Ident>>,
    /// `scope host, container`: which series a metric produces.
    pub scope: Option<Vec<Ident>>,
    /// `histogram FIELD zones [b1, b2, ...] [label NAME]`: zone histograms of a metric.
    pub histograms: Vec<HistogramClause>,
    /// `emit ...`: what a record or metric contains.
    pub emits: Vec<EmitItem>,
    /// `capture ACTION(args) [as NAME]`, in order.
    pub captures: Vec<Capture>,
    /// `cooldown ...`.
    pub cooldown: Option<Cooldown>,
    /// `limit EXPR per EXPR [burst EXPR]`: event rate limit, pushed into the kernel when it can be.
    pub limit: Option<RateLimit>,
    /// `issues EXPR`: known-issue patterns (usually a config list) to tag records with.
    pub issues: Option<Expr>,
    /// `fallback for RULE`: this rule stands in for the rule `RULE` (of the same kind) and runs
    /// only where that rule's source is unavailable; its records and families carry that
    /// rule's name.
    pub fallback: Option<Ident>,
}

impl Rule {
    /// The name the rule's records (`tracer_name`) and metric families carry: the rule it is
    /// the fallback for, else its own.
    pub fn output_name(&self) -> &str {
        self.fallback.as_ref().unwrap_or(&self.name).name.as_str()
    }
}

/// `source NAME [every EXPR]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceClause {
    /// Catalog name of the source.
    pub name: Ident,
    /// Poll interval of a polled source.
    pub every: Option<Expr>,
    /// The whole clause.
    pub span: Span,
}

/// How a binding was introduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingKind {
    /// `param`.
    Param,
    /// `let`.
    Let,
    /// `script` (the value is a call of a stdlib rhai function).
    Script,
}

/// `param|let|script NAME = EXPR`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Binding {
    /// Which keyword introduced it.
    pub kind: BindingKind,
    /// The bound name.
    pub name: Ident,
    /// The value.
    pub value: Expr,
    /// The whole clause.
    pub span: Span,
}

/// `histogram FIELD zones [b1, ...] [label NAME]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramClause {
    /// The field to bucket (a histogram field or a numeric field).
    pub field: Ident,
    /// Zone boundaries in increasing order; n boundaries make n+1 zones `0..=n`.
    pub bounds: Vec<Expr>,
    /// Label carrying the zone index (default `zone`).
    pub label: Option<Ident>,
    /// The whole clause.
    pub span: Span,
}

/// Prometheus type of an emitted metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricType {
    /// A value that goes up and down.
    Gauge,
    /// A monotonic cumulative count.
    Counter,
}

/// One entry of an `emit` list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum EmitItem {
    /// `NAME`, `NAME = EXPR`, optionally followed by `counter`/`gauge` and `help "..."`.
    Named {
        /// Output name (record field, or metric family suffix).
        name: Ident,
        /// Value; when absent, the field, binding or capture called `name`.
        value: Option<Expr>,
        /// Metric type (metrics only; gauge when absent).
        metric_type: Option<MetricType>,
        /// Help text of the family (metrics only).
        help: Option<String>,
        /// The whole item.
        span: Span,
    },
    /// `* [include EXPR] [exclude EXPR] [counter|gauge]`: every numeric field of the sample,
    /// filtered by regex lists.
    AllFields {
        /// Regex or list of regexes a field name must match.
        include: Option<Expr>,
        /// Regex or list of regexes that drop a field name.
        exclude: Option<Expr>,
        /// Metric type of the families produced.
        metric_type: Option<MetricType>,
        /// The whole item.
        span: Span,
    },
}

/// `capture NAME(args) [as ALIAS]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Capture {
    /// The capture action.
    pub name: Ident,
    /// Its arguments.
    pub args: Vec<Arg>,
    /// Record field to store the result under (the capture's own field names when absent).
    pub alias: Option<Ident>,
    /// The whole clause.
    pub span: Span,
}

/// `cooldown none | EXPR | backoff(...)` with an optional `per LABEL` key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cooldown {
    /// The policy.
    pub policy: CooldownPolicy,
    /// Labels the cooldown is kept per (per entity when absent).
    pub per: Option<Vec<Ident>>,
    /// The whole clause.
    pub span: Span,
}

/// How long a rule stays quiet after it fired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum CooldownPolicy {
    /// Fire every time.
    None,
    /// Stay quiet for a fixed duration.
    Fixed(Expr),
    /// `backoff(initial, factor: 2, max: 3h, reset: 3h)`: the quiet period starts at
    /// `initial`, is multiplied by `factor` after each firing up to `max`, and returns to
    /// `initial` when the rule has not fired for `reset`.
    Backoff(Vec<Arg>),
}

/// `limit RATE per PERIOD [burst N]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateLimit {
    /// Events allowed per period.
    pub rate: Expr,
    /// The period.
    pub per: Expr,
    /// Bucket size (defaults to `rate`).
    pub burst: Option<Expr>,
    /// The whole clause.
    pub span: Span,
}

/// A call argument, positional or named (`scope: host`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Arg {
    /// Name of a named argument.
    pub name: Option<Ident>,
    /// The value.
    pub value: Expr,
}

/// An expression with its span.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expr {
    /// What the expression is.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

/// A literal value; numbers are already scaled to the base unit of their dimension.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Literal {
    /// An integer, in base units (`10ms` is `Int(10_000_000)` with `Dim::Time`).
    Int(i64, Dim),
    /// A float, in base units.
    Float(f64, Dim),
    /// A string (`"..."`, with `\"`, `\\`, `\n`, `\t` escapes).
    Str(String),
    /// `true` or `false`.
    Bool(bool),
}

/// The logical operators, loosest first; each joins a flat chain of operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogicOp {
    /// `or`
    Or,
    /// `and`
    And,
}

impl LogicOp {
    /// The operator as written.
    pub fn word(self) -> &'static str {
        match self {
            LogicOp::Or => "or",
            LogicOp::And => "and",
        }
    }
}

/// Binary operators, loosest first: comparisons and matches, `+ -`, `* / %` (`and`/`or` are
/// [`LogicOp`] chains).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BinOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `=~` (regex match)
    Match,
    /// `!~` (regex non-match)
    NotMatch,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%` between two expressions (remainder)
    Rem,
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnOp {
    /// `not`
    Not,
    /// `-`
    Neg,
}

/// The expression forms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ExprKind {
    /// A literal.
    Literal(Literal),
    /// A field, parameter, binding or word argument (`kernel`, `host`).
    Name(String),
    /// `[a, b, c]`.
    List(Vec<Expr>),
    /// `op expr`.
    Unary(UnOp, Box<Expr>),
    /// `lhs op rhs`.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `a and b and ...` or `a or b or ...`: two or more operands of one logical operator,
    /// kept flat so that a long chain is no deeper than one operator.
    Logic(LogicOp, Vec<Expr>),
    /// `name(args)`; `file::fn(args)` calls a stdlib script.
    Call(Ident, Vec<Arg>),
}

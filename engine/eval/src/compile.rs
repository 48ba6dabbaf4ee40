//! Compiling AST expressions: names resolved, constants folded, regexes built, state slots
//! numbered per call site.

use crate::expr::{eval_const, CExpr};
use crate::funcs::{self, Builtin, Pure, Stateful, MAX_WINDOW};
use crate::script::ScriptHost;
use huatuo_dsl::ast::{BinOp, Expr, ExprKind, Literal, Span, UnOp};
use huatuo_dsl::diag::Diagnostic;
use huatuo_dsl::source::ConfigValues;
use huatuo_dsl::value::Value;
use std::collections::BTreeMap;

/// Where an expression is compiled: what names mean there and what is allowed.
pub struct Scope<'a> {
    /// Path of the rule file, for diagnostics.
    pub path: &'a str,
    /// Config values for `config(...)`.
    pub config: &'a dyn ConfigValues,
    /// The script library, if loaded.
    pub scripts: Option<&'a ScriptHost>,
    /// `param` values.
    pub params: BTreeMap<String, Value>,
    /// `let`/`script` names bound so far; the index is the local slot.
    pub lets: Vec<String>,
    /// Number of stateful call sites allotted so far.
    pub slots: usize,
    /// Whether stateful functions may be called here.
    pub allow_stateful: bool,
    /// Whether unknown bare names are words (capture arguments).
    pub words: bool,
}

impl<'a> Scope<'a> {
    /// A scope for one rule.
    pub fn new(
        path: &'a str,
        config: &'a dyn ConfigValues,
        scripts: Option<&'a ScriptHost>,
    ) -> Self {
        Scope {
            path,
            config,
            scripts,
            params: BTreeMap::new(),
            lets: Vec::new(),
            slots: 0,
            allow_stateful: true,
            words: false,
        }
    }

    /// An error at `span`.
    pub fn err(&self, code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(code, self.path, span, message)
    }

    /// Compiles an expression that must be a constant (params, intervals, bounds).
    pub fn constant(&mut self, e: &Expr, what: &str) -> Result<Value, Diagnostic> {
        let saved = std::mem::replace(&mut self.allow_stateful, false);
        let compiled = self.expr(e);
        self.allow_stateful = saved;
        match compiled? {
            CExpr::Const(v) => Ok(v),
            _ => Err(self.err(
                "not-constant",
                e.span,
                format!("{what} must be a constant (literals, params and config(...) only)"),
            )),
        }
    }

    /// Compiles a constant duration or number to an i64 in base units.
    pub fn constant_int(&mut self, e: &Expr, what: &str) -> Result<i64, Diagnostic> {
        match self.constant(e, what)? {
            Value::Int(i) => Ok(i),
            Value::Float(f) if f.is_finite() => Ok(f as i64),
            other => Err(self.err(
                "not-a-number",
                e.span,
                format!(
                    "{what} must be a number, found {}",
                    crate::ops::type_name(&other)
                ),
            )),
        }
    }

    /// Compiles a constant number to f64.
    pub fn constant_f64(&mut self, e: &Expr, what: &str) -> Result<f64, Diagnostic> {
        let v = self.constant(e, what)?;
        crate::ops::number(&v).ok_or_else(|| {
            self.err(
                "not-a-number",
                e.span,
                format!(
                    "{what} must be a number, found {}",
                    crate::ops::type_name(&v)
                ),
            )
        })
    }

    /// Compiles an expression.
    pub fn expr(&mut self, e: &Expr) -> Result<CExpr, Diagnostic> {
        let node = match &e.kind {
            ExprKind::Literal(lit) => CExpr::Const(literal(lit)),
            ExprKind::Name(name) => self.name(name),
            ExprKind::List(items) => CExpr::List(
                items
                    .iter()
                    .map(|item| self.expr(item))
                    .collect::<Result<_, _>>()?,
            ),
            ExprKind::Unary(op, inner) => {
                let inner = Box::new(self.expr(inner)?);
                match op {
                    UnOp::Not => CExpr::Not(inner),
                    UnOp::Neg => CExpr::Neg(inner),
                }
            }
            ExprKind::Binary(op, a, b) => self.binary(*op, a, b)?,
            ExprKind::Logic(op, operands) => CExpr::Logic(
                *op,
                operands
                    .iter()
                    .map(|operand| self.expr(operand))
                    .collect::<Result<_, _>>()?,
            ),
            ExprKind::Call(name, args) => self.call(&name.name, name.span, args, e.span)?,
        };
        self.fold(node, e.span)
    }

    fn name(&self, name: &str) -> CExpr {
        if let Some(i) = self.lets.iter().rposition(|n| n == name) {
            CExpr::Local(i)
        } else if let Some(v) = self.params.get(name) {
            CExpr::Const(v.clone())
        } else if self.words {
            CExpr::Word(name.to_string())
        } else {
            CExpr::Field(name.to_string())
        }
    }

    fn binary(&mut self, op: BinOp, a: &Expr, b: &Expr) -> Result<CExpr, Diagnostic> {
        let left = Box::new(self.expr(a)?);
        Ok(match op {
            BinOp::Match | BinOp::NotMatch => CExpr::Match {
                subject: left,
                patterns: self.patterns(b)?,
                negate: op == BinOp::NotMatch,
                missing_is_no_match: false,
            },
            _ => CExpr::Binary(op, left, Box::new(self.expr(b)?)),
        })
    }

    /// Compiles a constant regex or list of regexes.
    pub fn patterns(&mut self, e: &Expr) -> Result<Vec<regex::Regex>, Diagnostic> {
        let value = self.constant(e, "a regex")?;
        crate::patterns::build_list(&value).map_err(|m| self.err("bad-regex", e.span, m))
    }

    fn call(
        &mut self,
        name: &str,
        name_span: Span,
        args: &[huatuo_dsl::ast::Arg],
        span: Span,
    ) -> Result<CExpr, Diagnostic> {
        if name.contains("::") {
            return self.script_call(name, name_span, args);
        }
        let (Some(def), Some(builtin)) =
            (huatuo_dsl::builtins::builtin(name), funcs::dispatch(name))
        else {
            return Err(self.err(
                "unknown-function",
                name_span,
                format!("unknown function `{name}`"),
            ));
        };
        let args = self.order_args(name, def.params, args, span)?;
        let args = args.as_slice();
        match builtin {
            Builtin::Config => self.config_call(args),
            Builtin::Filter => {
                let mut lists = Vec::with_capacity(2);
                for index in 0..2 {
                    lists.push(match args.get(index) {
                        Some(a) => self.constant(&a.value, "a filter rule list")?,
                        None => Value::Null,
                    });
                }
                let filter = crate::filter::FieldFilter::new(&lists[0], &lists[1])
                    .map_err(|m| self.err("bad-filter", span, m))?;
                Ok(CExpr::Filter(Box::new(filter)))
            }
            Builtin::Stateful(func) => self.stateful_call(name, func, args, span),
            Builtin::Pure(Pure::MatchesAny) => {
                let subject = Box::new(self.expr(&args[0].value)?);
                let patterns_arg = self.expr(&args[1].value)?;
                match patterns_arg.as_const() {
                    Some(v) => Ok(CExpr::Match {
                        subject,
                        patterns: crate::patterns::build_list(v)
                            .map_err(|m| self.err("bad-regex", args[1].value.span, m))?,
                        negate: false,
                        missing_is_no_match: true,
                    }),
                    None => Ok(CExpr::Pure(Pure::MatchesAny, vec![*subject, patterns_arg])),
                }
            }
            Builtin::Pure(func) => Ok(CExpr::Pure(
                func,
                args.iter()
                    .map(|a| self.expr(&a.value))
                    .collect::<Result<_, _>>()?,
            )),
        }
    }

    /// Puts named arguments (`n: 5`) in parameter order and checks the count.
    fn order_args<'e>(
        &self,
        name: &str,
        params: &[huatuo_dsl::builtins::Param],
        args: &'e [huatuo_dsl::ast::Arg],
        span: Span,
    ) -> Result<Vec<&'e huatuo_dsl::ast::Arg>, Diagnostic> {
        let mut slots: Vec<Option<&huatuo_dsl::ast::Arg>> = vec![None; params.len()];
        for (i, arg) in args.iter().enumerate() {
            let index = match &arg.name {
                Some(n) => params
                    .iter()
                    .position(|p| p.name == n.name)
                    .ok_or_else(|| {
                        self.err(
                            "unknown-argument",
                            n.span,
                            format!("`{name}` has no argument `{}`", n.name),
                        )
                    })?,
                None => i,
            };
            match slots.get_mut(index) {
                Some(slot @ None) => *slot = Some(arg),
                Some(Some(_)) => {
                    return Err(self.err(
                        "wrong-arity",
                        arg.value.span,
                        format!("argument {} of `{name}` is given twice", index + 1),
                    ))
                }
                None => {
                    return Err(self.err(
                        "wrong-arity",
                        span,
                        format!("`{name}` takes at most {} arguments", params.len()),
                    ))
                }
            }
        }
        let mut ordered = Vec::new();
        for (slot, param) in slots.into_iter().zip(params) {
            match slot {
                Some(arg) => ordered.push(arg),
                None if param.optional => break,
                None => {
                    return Err(self.err(
                        "wrong-arity",
                        span,
                        format!("`{name}` needs its `{}` argument", param.name),
                    ))
                }
            }
        }
        Ok(ordered)
    }

    fn config_call(&mut self, args: &[&huatuo_dsl::ast::Arg]) -> Result<CExpr, Diagnostic> {
        let key_arg = &args[0].value;
        let key = match self.constant(key_arg, "a config key")? {
            Value::Str(s) => s,
            _ => {
                return Err(self.err(
                    "bad-config-key",
                    key_arg.span,
                    "config key must be a string",
                ))
            }
        };
        let default = match args.get(1) {
            Some(a) => self.constant(&a.value, "a config default")?,
            None => Value::Null,
        };
        Ok(CExpr::Const(self.config.value(&key).unwrap_or(default)))
    }

    fn stateful_call(
        &mut self,
        name: &str,
        func: Stateful,
        args: &[&huatuo_dsl::ast::Arg],
        span: Span,
    ) -> Result<CExpr, Diagnostic> {
        if !self.allow_stateful {
            return Err(self.err(
                "stateful-not-allowed",
                span,
                format!("`{name}` keeps state per entity and cannot be used here (only in let, script, when and emit)"),
            ));
        }
        let arg = Box::new(self.expr(&args[0].value)?);
        let n = match args.get(1) {
            Some(a) => {
                let n = self.constant_f64(&a.value, "the sample count")?;
                let (limit, wanted) = if func == Stateful::Window {
                    (MAX_WINDOW as f64, format!("between 1 and {MAX_WINDOW}"))
                } else {
                    (f64::MAX, "of at least 1".to_string())
                };
                if !(1.0..=limit).contains(&n) {
                    return Err(self.err(
                        "bad-count",
                        a.value.span,
                        format!("`{name}` needs a count {wanted}, found {n}"),
                    ));
                }
                n
            }
            None => 0.0,
        };
        let slot = self.slots;
        self.slots += 1;
        Ok(CExpr::Stateful { func, slot, arg, n })
    }

    fn script_call(
        &mut self,
        name: &str,
        span: Span,
        args: &[huatuo_dsl::ast::Arg],
    ) -> Result<CExpr, Diagnostic> {
        let Some(host) = self.scripts else {
            return Err(self.err(
                "unknown-script",
                span,
                format!("`{name}`: no script library is loaded"),
            ));
        };
        if !host.has(name, args.len()) {
            return Err(self.err(
                "unknown-script",
                span,
                format!(
                    "no script function `{name}` taking {} arguments",
                    args.len()
                ),
            ));
        }
        let args = args
            .iter()
            .map(|a| self.expr(&a.value))
            .collect::<Result<_, _>>()?;
        Ok(CExpr::Script {
            name: name.to_string(),
            args,
        })
    }

    /// Replaces a node whose inputs are all constant by its value.
    fn fold(&self, node: CExpr, span: Span) -> Result<CExpr, Diagnostic> {
        let foldable = match &node {
            CExpr::List(items) | CExpr::Pure(_, items) | CExpr::Logic(_, items) => {
                items.iter().all(is_const)
            }
            CExpr::Not(a) | CExpr::Neg(a) => is_const(a),
            CExpr::Binary(_, a, b) => is_const(a) && is_const(b),
            CExpr::Match { subject, .. } => is_const(subject),
            _ => false,
        };
        if !foldable {
            return Ok(node);
        }
        eval_const(&node, None)
            .map(CExpr::Const)
            .map_err(|m| self.err("constant-error", span, m))
    }
}

fn is_const(e: &CExpr) -> bool {
    matches!(e, CExpr::Const(_))
}

/// The value of a literal (already in base units).
pub fn literal(lit: &Literal) -> Value {
    match lit {
        Literal::Int(i, _) => Value::Int(*i),
        Literal::Float(f, _) => Value::Float(*f),
        Literal::Str(s) => Value::Str(s.clone()),
        Literal::Bool(b) => Value::Bool(*b),
    }
}

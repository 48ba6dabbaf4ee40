//! The rhai script library (`stdlib/*.rhai`): loaded once into one sandboxed engine.
//!
//! The engine has no module resolver (`no_module`), no file or network access (rhai has none
//! built in), `print`/`debug` go nowhere, and every call is bounded in time, operations,
//! call depth, string, array and map sizes. A script error names the file and line.

use crate::thread_cpu::thread_cpu_time;
use huatuo_dsl::ast::Span;
use huatuo_dsl::diag::Diagnostic;
use huatuo_dsl::value::Value;
use rhai::{Dynamic, Engine, EvalAltResult, Position, Scope, AST};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Operations one script call may perform before it is stopped.
pub const MAX_OPERATIONS: u64 = 100_000;
/// CPU time one script call may use before it is stopped, unless set otherwise.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_millis(100);
/// A call is also stopped once its wall time reaches this many times the limit: on a busy
/// node a thread waits for a CPU, and a script should not lose its rule for that, yet the
/// evaluator must never wait on a script without bound.
pub const WALL_FACTOR: u32 = 10;
/// The clock is read every this many operations: one operation (`contains` on a 10 000-item
/// array) can take a millisecond, so the overshoot stays a few milliseconds.
const CLOCK_EVERY_OPS: u64 = 8;

/// When the script call running on a thread must stop.
#[derive(Clone, Copy)]
struct Budget {
    /// The thread's CPU time when the call started.
    cpu_start: Duration,
    /// CPU time the call may use.
    cpu_limit: Duration,
    /// The wall-clock backstop (none when too far to represent).
    wall_deadline: Option<Instant>,
}

impl Budget {
    fn spent(&self) -> bool {
        let cpu = thread_cpu_time().saturating_sub(self.cpu_start);
        cpu >= self.cpu_limit || self.wall_deadline.is_some_and(|end| Instant::now() >= end)
    }
}

thread_local! {
    /// The budget of the script call running on this thread; `None` outside a call.
    static BUDGET: Cell<Option<Budget>> = const { Cell::new(None) };
}

/// The loaded script files and the engine that runs them.
pub struct ScriptHost {
    engine: Engine,
    files: BTreeMap<String, (PathBuf, AST)>,
    /// Line of each `fn` definition by qualified name, for errors rhai reports without a
    /// position (it drops the position of limit errors such as too many operations).
    def_lines: BTreeMap<String, usize>,
    /// CPU time one call may use.
    time_limit: Duration,
    /// Calls stopped at the time limit.
    timeouts: AtomicU64,
}

impl std::fmt::Debug for ScriptHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptHost")
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn sandboxed_engine() -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(32)
        .set_max_expr_depths(64, 32)
        .set_max_string_size(64 * 1024)
        .set_max_array_size(10_000)
        .set_max_map_size(10_000)
        .set_max_variables(256)
        .set_max_functions(256)
        .disable_symbol("eval");
    engine.on_print(|_| {});
    engine.on_debug(|_, _, _| {});
    engine.on_progress(|ops| {
        if ops % CLOCK_EVERY_OPS != 0 {
            return None;
        }
        let spent = BUDGET.get().is_some_and(|budget| budget.spent());
        spent.then_some(Dynamic::UNIT)
    });
    engine
}

/// Sets this thread's budget for the duration of one script call.
struct BudgetGuard;

impl BudgetGuard {
    fn start(limit: Duration) -> Self {
        BUDGET.set(Some(Budget {
            cpu_start: thread_cpu_time(),
            cpu_limit: limit,
            wall_deadline: Instant::now().checked_add(limit.saturating_mul(WALL_FACTOR)),
        }));
        BudgetGuard
    }
}

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        BUDGET.set(None);
    }
}

fn script_diag(path: &Path, pos: Position, message: String) -> Diagnostic {
    let span = Span {
        line: pos.line().unwrap_or(0),
        col: pos.position().unwrap_or(0),
        ..Span::default()
    };
    Diagnostic::error("script", &path.display().to_string(), span, message)
}

impl ScriptHost {
    /// Loads every `*.rhai` file of `dir`; a file `ema.rhai` provides functions `ema::name`.
    pub fn load(dir: &Path) -> Result<Self, Diagnostic> {
        let read_dir = std::fs::read_dir(dir).map_err(|e| {
            Diagnostic::error(
                "script",
                &dir.display().to_string(),
                Span::default(),
                format!("cannot read the script directory: {e}"),
            )
        })?;
        let mut paths: Vec<PathBuf> = read_dir
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "rhai"))
            .collect();
        paths.sort();
        let mut sources = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                script_diag(&path, Position::NONE, format!("cannot read script: {e}"))
            })?;
            sources.push((path, text));
        }
        ScriptHost::from_sources(sources)
    }

    /// Compiles scripts given as (path, text); `ema.rhai` provides functions `ema::name`.
    /// The daemon uses this for the copy of `stdlib/` built into the binary.
    pub fn from_sources(sources: Vec<(PathBuf, String)>) -> Result<Self, Diagnostic> {
        let engine = sandboxed_engine();
        let mut files = BTreeMap::new();
        let mut def_lines = BTreeMap::new();
        for (path, text) in sources {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let ast = engine.compile(&text).map_err(|e| {
                script_diag(&path, e.1, format!("script does not compile: {}", e.0))
            })?;
            for (i, line) in text.lines().enumerate() {
                if let Some(name) = fn_name(line) {
                    def_lines.insert(format!("{stem}::{name}"), i + 1);
                }
            }
            files.insert(stem, (path, ast));
        }
        Ok(ScriptHost {
            engine,
            files,
            def_lines,
            time_limit: DEFAULT_TIME_LIMIT,
            timeouts: AtomicU64::new(0),
        })
    }

    /// Sets the CPU time one call may use (the config's `Rules.ScriptTimeout`); its wall time
    /// is bounded by [`WALL_FACTOR`] times that.
    pub fn set_time_limit(&mut self, limit: Duration) {
        self.time_limit = limit;
    }

    /// The CPU time one call may use.
    pub fn time_limit(&self) -> Duration {
        self.time_limit
    }

    /// Calls stopped so far because they reached the time limit.
    pub fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }

    /// Every public function as (`file::fn`, arity), sorted.
    pub fn functions(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for (stem, (_, ast)) in &self.files {
            for f in ast.iter_functions() {
                // Closures compile to functions named `anon$<hash>`: not callable by rules.
                if f.access == rhai::FnAccess::Public && !f.name.starts_with("anon$") {
                    out.push((format!("{stem}::{}", f.name), f.params.len()));
                }
            }
        }
        out.sort();
        out
    }

    /// Whether `file::fn` exists with `arity` parameters.
    pub fn has(&self, qualified: &str, arity: usize) -> bool {
        self.functions()
            .iter()
            .any(|(name, n)| name == qualified && *n == arity)
    }

    /// Calls `file::fn` with `args`; the error names the script file and line.
    pub fn call(&self, qualified: &str, args: &[Value]) -> Result<Value, String> {
        let (stem, func) = qualified
            .split_once("::")
            .ok_or_else(|| format!("{qualified}: not a script function (file::fn)"))?;
        let (path, ast) = self
            .files
            .get(stem)
            .ok_or_else(|| format!("{qualified}: no script file {stem}.rhai"))?;
        let dyn_args: Vec<Dynamic> = args.iter().map(to_dynamic).collect();
        let mut scope = Scope::new();
        let result = {
            let _budget = BudgetGuard::start(self.time_limit);
            self.engine
                .call_fn::<Dynamic>(&mut scope, ast, func, dyn_args)
        };
        result.map(|d| from_dynamic(&d)).map_err(|e| {
            let def_line = self.def_lines.get(qualified);
            if is_terminated(&e) {
                self.timeouts.fetch_add(1, Ordering::Relaxed);
                let limit = self.time_limit.as_millis();
                let place = describe_place(path, &e, def_line);
                return format!(
                    "{place}: {qualified}: stopped after the script time limit of {limit}ms"
                );
            }
            describe_error(path, qualified, def_line, &e)
        })
    }
}

/// The function name a line defines (`fn name(` or `private fn name(`), if any.
fn fn_name(line: &str) -> Option<&str> {
    let rest = line.trim_start();
    let rest = rest.strip_prefix("private ").map_or(rest, str::trim_start);
    let rest = rest.strip_prefix("fn ")?.trim_start();
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    rest[end..]
        .trim_start()
        .starts_with('(')
        .then_some(&rest[..end])
}

/// The error a script call failed with, below the layers of nested function calls.
fn innermost(err: &EvalAltResult) -> &EvalAltResult {
    let mut inner = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, next, _) = inner {
        inner = next;
    }
    inner
}

/// Whether the call was stopped by the progress callback (the time limit).
fn is_terminated(err: &EvalAltResult) -> bool {
    matches!(innermost(err), EvalAltResult::ErrorTerminated(..))
}

/// `file:line[:col]` of an error, else of the called function's definition.
fn describe_place(path: &Path, err: &EvalAltResult, def_line: Option<&usize>) -> String {
    let pos = innermost(err).position();
    match (pos.line(), pos.position(), def_line) {
        (Some(line), Some(col), _) => format!("{}:{line}:{col}", path.display()),
        (Some(line), None, _) | (None, _, Some(&line)) => format!("{}:{line}", path.display()),
        _ => path.display().to_string(),
    }
}

fn describe_error(
    path: &Path,
    qualified: &str,
    def_line: Option<&usize>,
    err: &EvalAltResult,
) -> String {
    let place = describe_place(path, err, def_line);
    let mut message = innermost(err).to_string();
    if let Some(cut) = message.rfind(" (line ") {
        message.truncate(cut);
    }
    format!("{place}: {qualified}: {message}")
}

/// Converts a rule value to a rhai value.
pub fn to_dynamic(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Int(i) => Dynamic::from_int(*i),
        Value::Float(f) => Dynamic::from_float(*f),
        Value::Str(s) => Dynamic::from(s.clone()),
        Value::List(items) => Dynamic::from_array(items.iter().map(to_dynamic).collect()),
        Value::Hist(h) => Dynamic::from_array(
            h.buckets
                .iter()
                .map(|(upper, count)| {
                    Dynamic::from_array(vec![
                        Dynamic::from_int(i64::try_from(*upper).unwrap_or(i64::MAX)),
                        Dynamic::from_int(i64::try_from(*count).unwrap_or(i64::MAX)),
                    ])
                })
                .collect(),
        ),
        Value::Json(json) => json_to_dynamic(json),
    }
}

fn json_to_dynamic(json: &serde_json::Value) -> Dynamic {
    match json {
        serde_json::Value::Null => Dynamic::UNIT,
        serde_json::Value::Bool(b) => Dynamic::from_bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Dynamic::from(s.clone()),
        serde_json::Value::Array(items) => {
            Dynamic::from_array(items.iter().map(json_to_dynamic).collect())
        }
        serde_json::Value::Object(map) => Dynamic::from_map(
            map.iter()
                .map(|(k, v)| (k.as_str().into(), json_to_dynamic(v)))
                .collect(),
        ),
    }
}

/// Converts a rhai result back to a rule value (maps become JSON).
pub fn from_dynamic(d: &Dynamic) -> Value {
    if d.is_unit() {
        Value::Null
    } else if let Ok(b) = d.as_bool() {
        Value::Bool(b)
    } else if let Ok(i) = d.as_int() {
        Value::Int(i)
    } else if let Ok(f) = d.as_float() {
        Value::Float(f)
    } else if d.is_string() {
        Value::Str(d.to_string())
    } else if d.is_array() {
        let items = d.clone().into_array().unwrap_or_default();
        Value::List(items.iter().map(from_dynamic).collect())
    } else {
        Value::Json(dynamic_to_json(d))
    }
}

fn dynamic_to_json(d: &Dynamic) -> serde_json::Value {
    match from_dynamic_scalar(d) {
        Some(json) => json,
        None if d.is_map() => {
            let map = d.clone().try_cast::<rhai::Map>().unwrap_or_default();
            serde_json::Value::Object(
                map.iter()
                    .map(|(k, v)| (k.to_string(), dynamic_to_json(v)))
                    .collect(),
            )
        }
        None if d.is_array() => serde_json::Value::Array(
            d.clone()
                .into_array()
                .unwrap_or_default()
                .iter()
                .map(dynamic_to_json)
                .collect(),
        ),
        None => serde_json::Value::String(d.to_string()),
    }
}

fn from_dynamic_scalar(d: &Dynamic) -> Option<serde_json::Value> {
    if d.is_unit() {
        Some(serde_json::Value::Null)
    } else if let Ok(b) = d.as_bool() {
        Some(b.into())
    } else if let Ok(i) = d.as_int() {
        Some(i.into())
    } else if let Ok(f) = d.as_float() {
        Some(f.into())
    } else if d.is_string() {
        Some(d.to_string().into())
    } else {
        None
    }
}

/// Every public function of the scripts in `dir`, as (`file::fn`, arity), for the catalog.
pub fn script_functions(dir: &Path) -> Result<Vec<(String, usize)>, Diagnostic> {
    ScriptHost::load(dir).map(|host| host.functions())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A script host loaded from a fresh directory holding `files`, removed on drop.
    fn host_with(files: &[(&str, &str)]) -> (ScriptHost, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        (ScriptHost::load(dir.path()).unwrap(), dir)
    }

    #[test]
    fn lists_functions_and_calls_them() {
        let (host, _) = host_with(&[(
            "twice.rhai",
            "fn twice(x) { x * 2 }\nprivate fn hidden() { 1 }\n",
        )]);
        assert_eq!(host.functions(), vec![("twice::twice".to_string(), 1)]);
        assert_eq!(
            host.call("twice::twice", &[Value::Int(21)]),
            Ok(Value::Int(42))
        );
        let list = Value::List(vec![Value::Float(1.5)]);
        assert_eq!(
            host.call("twice::twice", &[Value::Int(2)]),
            Ok(Value::Int(4))
        );
        assert!(host.call("twice::twice", &[list]).is_err());
    }

    #[test]
    fn endless_loop_is_stopped_with_file_and_line() {
        let (mut host, dir) =
            host_with(&[("spin.rhai", "fn spin(x) {\n  loop {\n    x += 1;\n  }\n}\n")]);
        // Long enough that the operations limit, not the clock, stops it in a debug build.
        host.set_time_limit(Duration::from_secs(60));
        let err = host.call("spin::spin", &[Value::Int(0)]).unwrap_err();
        let file = dir.path().join("spin.rhai").display().to_string();
        assert!(err.starts_with(&format!("{file}:1: spin::spin: ")), "{err}");
        assert!(err.to_lowercase().contains("too many operations"), "{err}");
    }

    #[test]
    fn endless_loop_is_stopped_at_the_time_limit() {
        let (mut host, dir) = host_with(&[(
            "spin.rhai",
            "fn spin(x) {\n  loop {\n    x += 1;\n  }\n}\nfn one() { 1 }\n",
        )]);
        host.set_time_limit(Duration::from_millis(20));
        let started = Instant::now();
        let err = host.call("spin::spin", &[Value::Int(0)]).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        let file = dir.path().join("spin.rhai").display().to_string();
        assert_eq!(
            err,
            format!("{file}:1: spin::spin: stopped after the script time limit of 20ms")
        );
        assert_eq!(host.timeouts(), 1);
        // The deadline ends with its call: a later call gets its own full time.
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(host.call("spin::one", &[]), Ok(Value::Int(1)));
        assert_eq!(host.timeouts(), 1);
    }

    #[test]
    fn runtime_error_inside_a_function_names_its_line() {
        let (host, dir) = host_with(&[(
            "typo.rhai",
            "fn f(x) {\n  let y = 1;\n  y + undefined_var\n}\n",
        )]);
        let err = host.call("typo::f", &[Value::Int(0)]).unwrap_err();
        let file = dir.path().join("typo.rhai").display().to_string();
        assert!(err.starts_with(&format!("{file}:3:")), "{err}");
        assert!(err.contains("undefined_var"), "{err}");
    }

    #[test]
    fn definition_lines_are_found() {
        assert_eq!(fn_name("fn spin(x) {"), Some("spin"));
        assert_eq!(fn_name("  private fn sorted (v) {"), Some("sorted"));
        assert_eq!(fn_name("let fn_x = 1;"), None);
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bad.rhai"),
            "fn ok() { 1 }\nfn broken( { }\n",
        )
        .unwrap();
        let diag = ScriptHost::load(dir.path()).unwrap_err();
        assert!(diag.path.ends_with("bad.rhai"));
        assert_eq!(diag.span.line, 2);
    }
}

//! Hot reload (SIGHUP, `POST /v1/rules/reload`, `huatuo reload`): re-read rules, stdlib and
//! `huatuo-bamai.conf`, check them exactly as `huatuo check` does, and either refuse (the
//! running set untouched, the same `file:line:col` diagnostics logged and returned) or swap
//! the new set in between two samples, keeping the state of every rule whose compiled form
//! did not change, attaching and detaching templates, re-pushing kernel thresholds and reading
//! the API token file again. Config keys that only take effect at start are reported as
//! needing a restart.

use super::channel::SampleSender;
use super::evaluate::{EvalShared, Swap};
use super::status::{RuleInfo, StatusView};
use super::{needs_of, pushdown};
use crate::cli::inputs::{compile_inputs, Compiled, InputArgs, Inputs};
use crate::rules::SourceText;
use huatuo_bpf::{Reconciled, Templates};
use huatuo_dsl::diag::{Diagnostic, Severity};
use huatuo_dsl::render::{render_human, render_json};
use huatuo_dsl::source::ConfigValues;
use huatuo_eval::carry::Carried;
use huatuo_eval::Plan;
use huatuo_http::api::reload::ReloadOutcome;
use huatuo_http::auth::Auth;
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest wait for the evaluator thread to take a new set (it takes it between samples).
const SWAP_TIMEOUT: Duration = Duration::from_secs(5);

/// Config keys a reload applies besides those the rules read: the BlackList (rules switched
/// off), the token file and the `[Rules]` section (script limits).
const LIVE_KEYS: &[&str] = &["BlackList", "APIServer.TokenFile", "Rules."];

/// The rule set in force: what a reload compares the new inputs with.
struct Running {
    config: huatuo_config::Config,
    scripts: Vec<SourceText>,
    rule_texts: Vec<SourceText>,
    generation: u64,
    loaded_at: String,
    last: Json,
}

/// Where templates come from, for attaching and detaching them on reload.
pub enum TemplateSource {
    /// Loaded into this kernel (absent when templates are off): reconciled on reload.
    Live(Option<Arc<Mutex<Templates>>>),
    /// Recorded maps read at start: only the templates recorded then are available.
    Recorded(BTreeSet<String>),
}

/// Everything a reload reads and swaps.
pub struct Reloader {
    /// Where the inputs are read from (the flags the agent was started with).
    pub args: InputArgs,
    /// Shared with the evaluator thread (the swap slot).
    pub eval: Arc<EvalShared>,
    /// Wakes the evaluator thread to take the swap when no sample comes.
    pub waker: SampleSender,
    /// Templates, live or recorded.
    pub templates: TemplateSource,
    /// The API's token check, whose tokens a reload replaces.
    pub api_auth: Arc<Auth>,
    /// The status view, whose rule lists a reload replaces.
    pub status: Arc<Mutex<StatusView>>,
    /// The sources read since start and the interval of each (the poller's set is fixed).
    pub polled: BTreeMap<String, Option<i64>>,
    running: Mutex<Running>,
}

impl Reloader {
    /// A reloader over the set the agent started with (generation 1).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        args: InputArgs,
        inputs: &Inputs,
        eval: Arc<EvalShared>,
        waker: SampleSender,
        templates: TemplateSource,
        api_auth: Arc<Auth>,
        status: Arc<Mutex<StatusView>>,
        polled: BTreeMap<String, Option<i64>>,
    ) -> Self {
        Reloader {
            args,
            eval,
            waker,
            templates,
            api_auth,
            status,
            polled,
            running: Mutex::new(Running {
                config: inputs.config.clone(),
                scripts: inputs.scripts.clone(),
                rule_texts: inputs.rule_files.clone(),
                generation: 1,
                loaded_at: now(),
                last: json!(null),
            }),
        }
    }

    /// The `rule_set` part of `/status`: generation, when it loaded, the last reload's result.
    pub fn status(&self) -> Json {
        match self.running.try_lock() {
            Ok(running) => json!({
                "generation": running.generation,
                "loaded_at": running.loaded_at,
                "last_reload": running.last,
            }),
            Err(_) => json!({ "reloading": true }),
        }
    }

    /// Runs one reload; logs and returns its outcome (also kept for `/status`).
    pub fn reload(&self) -> ReloadOutcome {
        let Ok(mut running) = self.running.try_lock() else {
            return ReloadOutcome::Busy;
        };
        log::info!("reloading rules, stdlib and config");
        let outcome = self.try_reload(&mut running);
        let at = now();
        running.last = match &outcome {
            ReloadOutcome::Applied(result) => {
                log::info!("reload applied: {result}");
                json!({ "result": "ok", "at": at, "details": result })
            }
            ReloadOutcome::Invalid {
                message,
                diagnostics,
            } => json!({
                "result": "error", "at": at, "message": message, "diagnostics": diagnostics,
            }),
            ReloadOutcome::Failed(message) => {
                log::error!("reload failed, the rules run unchanged: {message}");
                json!({ "result": "error", "at": at, "message": message })
            }
            ReloadOutcome::Busy | ReloadOutcome::NotReady => running.last.clone(),
        };
        outcome
    }

    fn try_reload(&self, running: &mut Running) -> ReloadOutcome {
        let inputs = match self.args.load(&[]) {
            Ok(inputs) => inputs,
            Err((diags, texts)) => return invalid(&diags, &|p| text_in(&texts, p)),
        };
        // The same pipeline as `huatuo check` and `huatuo run`.
        let texts: Vec<SourceText> = inputs.texts().cloned().collect();
        let Compiled {
            inputs,
            files,
            mut plan,
            blacklisted,
        } = match compile_inputs(inputs) {
            Ok(compiled) => compiled,
            Err(diags) => return invalid(&diags, &|p| text_in(&texts, p)),
        };
        let tokens = match read_tokens(&inputs.config) {
            Ok(tokens) => tokens,
            Err(message) => {
                let diag = Diagnostic::error(
                    "config",
                    &self
                        .args
                        .config_path()
                        .map_or("huatuo-bamai.conf".into(), |p| p.display().to_string()),
                    Default::default(),
                    format!("APIServer.{message}"),
                );
                return invalid(&[diag], &|p| text_in(&texts, p));
            }
        };

        // The set checks: from here on it is applied.
        let templates = self.attach(&files, &inputs.config, &plan);
        let available = self.available();
        let inactive = plan.select_fallbacks(&|s| !s.starts_with("bpf.") || available.contains(s));
        let needs_restart = self.needs_restart(running, &inputs, &plan);
        let scripts_changed = running.scripts != inputs.scripts;
        let carried = match self.swap(plan, scripts_changed) {
            Ok(carried) => carried,
            Err(message) => {
                let attached = serde_json::to_string(&templates).unwrap_or_default();
                return ReloadOutcome::Failed(format!(
                    "{message}; the templates already follow the new set ({attached})"
                ));
            }
        };
        let token_count = tokens.len();
        self.api_auth.replace_tokens(tokens);
        if let Ok(mut view) = self.status.lock() {
            view.rules = files
                .iter()
                .flat_map(|f| f.rules.iter().map(RuleInfo::from_rule))
                .collect();
            view.blacklisted = blacklisted;
            view.inactive = inactive;
            view.rule_files = inputs.rule_files.len();
        }
        for key in &needs_restart {
            log::warn!("reload: needs a restart to take effect: {key}");
        }
        running.generation += 1;
        running.loaded_at = now();
        running.config = inputs.config;
        running.scripts = inputs.scripts;
        running.rule_texts = inputs.rule_files;
        ReloadOutcome::Applied(json!({
            "generation": running.generation,
            "loaded_at": running.loaded_at,
            "result": "ok",
            "rules": carried,
            "templates": templates,
            "tokens": token_count,
            "needs_restart": needs_restart,
        }))
    }

    /// Attaches the templates the new rules newly read, detaches those no rule reads any more
    /// and loads again those whose pushed-down thresholds changed.
    fn attach(
        &self,
        files: &[huatuo_dsl::ast::RuleFile],
        config: &huatuo_config::Config,
        plan: &Plan,
    ) -> Reconciled {
        let TemplateSource::Live(Some(templates)) = &self.templates else {
            return Reconciled::default();
        };
        let bpf = needs_of(plan).bpf;
        let tunables = pushdown::tunables_of_sources(files, &bpf, config);
        let names: Vec<&str> = bpf.iter().map(String::as_str).collect();
        let Ok(mut templates) = templates.lock() else {
            return Reconciled::default();
        };
        let done = templates.reconcile(&names, &tunables);
        for name in &done.attached {
            log::info!("template {name} loaded");
        }
        for name in &done.detached {
            log::info!("template {name} detached: no rule reads it");
        }
        for name in &done.reloaded {
            log::info!("template {name} loaded again with new thresholds");
        }
        for (name, error) in &done.failed {
            log::warn!("template {name} unavailable: rules reading it are disabled ({error})");
        }
        done
    }

    /// The `bpf.NAME` sources available now.
    fn available(&self) -> BTreeSet<String> {
        match &self.templates {
            TemplateSource::Live(Some(templates)) => templates
                .lock()
                .map(|t| t.loaded().iter().map(|n| format!("bpf.{n}")).collect())
                .unwrap_or_default(),
            TemplateSource::Live(None) => BTreeSet::new(),
            TemplateSource::Recorded(recorded) => recorded.clone(),
        }
    }

    /// Hands `plan` to the evaluator thread and waits (bounded) until it runs.
    fn swap(&self, plan: Plan, scripts_changed: bool) -> Result<Carried, String> {
        let (done, carried) = std::sync::mpsc::sync_channel(1);
        let swap = Swap {
            plan,
            scripts_changed,
            done,
        };
        match self.eval.swap.lock() {
            Ok(mut slot) => *slot = Some(swap),
            Err(_) => return Err("the evaluator's swap slot is poisoned".into()),
        }
        self.eval.swap_pending.store(true, Ordering::Release);
        self.waker.wake();
        match carried.recv_timeout(SWAP_TIMEOUT) {
            Ok(carried) => Ok(carried),
            Err(_) => {
                // Not taken: take it back so the running set stays; taken meanwhile: it runs.
                let taken_back = self.eval.swap.lock().ok().and_then(|mut s| s.take());
                match taken_back {
                    Some(_) => Err(format!(
                        "the evaluator did not take the new rule set within {SWAP_TIMEOUT:?}"
                    )),
                    None => carried
                        .recv_timeout(SWAP_TIMEOUT)
                        .map_err(|_| "the evaluator stopped while swapping".to_string()),
                }
            }
        }
    }

    /// Changed config keys a reload does not apply, and sources the new rules read that are
    /// not read since start (the poller's set is fixed at start).
    fn needs_restart(&self, running: &Running, inputs: &Inputs, plan: &Plan) -> Vec<String> {
        let read_by_rules: BTreeSet<String> = inputs
            .rule_files
            .iter()
            .chain(running.rule_texts.iter())
            .flat_map(|f| config_keys(&f.text))
            .collect();
        let mut out: Vec<String> = huatuo_config::key_schemas()
            .into_iter()
            .map(|k| k.path)
            .filter(|path| {
                running.config.value(path) != inputs.config.value(path)
                    && !read_by_rules.contains(path)
                    && !LIVE_KEYS.iter().any(|live| path.starts_with(live))
            })
            .map(|path| format!("config key {path}"))
            .collect();
        let templates_off = matches!(self.templates, TemplateSource::Live(None));
        for need in plan.sources() {
            let source = &need.source;
            let bpf = source.starts_with("bpf.");
            match self.polled.get(source) {
                _ if bpf && templates_off => {
                    out.push(format!("source {source} (templates are off: --no-bpf)"));
                }
                None if !bpf => out.push(format!("source {source} (not read since start)")),
                Some(interval) if !bpf && *interval != need.interval_ns => out.push(format!(
                    "source {source} interval (read every {} since start)",
                    shown_interval(*interval)
                )),
                _ => {}
            }
        }
        out
    }
}

/// The keys `text` passes to `config("...")`.
fn config_keys(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("config(") {
        rest = &rest[at + "config(".len()..];
        let trimmed = rest.trim_start();
        if let Some(quoted) = trimmed.strip_prefix('"') {
            if let Some(end) = quoted.find('"') {
                keys.push(quoted[..end].to_string());
            }
        }
    }
    keys
}

/// An `every` as written in rules, or the source's default.
fn shown_interval(interval_ns: Option<i64>) -> String {
    match interval_ns {
        Some(ns) if ns % 1_000_000_000 == 0 => format!("{}s", ns / 1_000_000_000),
        Some(ns) => format!("{}ms", ns / 1_000_000),
        None => "its default interval".to_string(),
    }
}

fn read_tokens(config: &huatuo_config::Config) -> Result<Vec<String>, String> {
    let file = &config.api_server.token_file;
    if file.is_empty() {
        return Ok(Vec::new());
    }
    Auth::read_tokens(std::path::Path::new(file))
}

fn text_in(texts: &[SourceText], path: &str) -> Option<String> {
    texts
        .iter()
        .find(|t| t.path == path)
        .map(|t| t.text.clone())
}

/// The refusal of a set that does not check: logged as `huatuo check` prints it, returned
/// as its JSON.
fn invalid(diags: &[Diagnostic], text_of: &dyn Fn(&str) -> Option<String>) -> ReloadOutcome {
    let errors: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    log::error!(
        "reload refused, the running set is unchanged:\n{}",
        render_human(diags, text_of)
    );
    let message = match errors.first() {
        Some(first) => format!(
            "{} error(s); first: {}: {}",
            errors.len(),
            first.location(),
            first.message
        ),
        None => "the new set does not check".to_string(),
    };
    ReloadOutcome::Invalid {
        message,
        diagnostics: serde_json::from_str(&render_json(diags)).unwrap_or(Json::Null),
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::config_keys;

    #[test]
    fn the_config_keys_rules_read_are_found() {
        let text = r#"param t = config("EventTracing.Softirq.DisabledThreshold", 10ms)
            where x > config( "A.B" ) and config(y)"#;
        assert_eq!(
            config_keys(text),
            vec!["EventTracing.Softirq.DisabledThreshold", "A.B"]
        );
    }
}

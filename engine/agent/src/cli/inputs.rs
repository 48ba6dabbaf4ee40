//! What every subcommand loads: config, rule files and stdlib scripts, from flags or defaults.

use crate::daemon::blacklist;
use crate::daemon::status::RuleInfo;
use crate::rules::{
    embedded_rule_files, embedded_script_files, parse_all, read_rule_files, read_script_files,
    SourceText,
};
use clap::Args;
use huatuo_config::Config;
use huatuo_dsl::ast::RuleFile;
use huatuo_dsl::diag::Diagnostic;
use huatuo_dsl::diag::Severity;
use huatuo_dsl::render::render_human;
use huatuo_eval::{Plan, ScriptHost};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Flags naming the config, rules and scripts to use.
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// huatuo-bamai.conf to use (the built-in defaults when absent).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory holding huatuo-bamai.conf (HUATUO's --config-dir).
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// Rule files or directories (the rules built into the binary when absent).
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// Directory of rhai scripts added to the built-in stdlib (a file named like a built-in
    /// one, `stats.rhai`, replaces it).
    #[arg(long, value_name = "DIR")]
    pub stdlib: Option<PathBuf>,
}

/// Everything loaded, or every problem found while loading.
#[derive(Debug)]
pub struct Inputs {
    /// The effective config.
    pub config: Config,
    /// Config text by path, for rendering diagnostics.
    pub config_text: Option<SourceText>,
    /// Rule file texts.
    pub rule_files: Vec<SourceText>,
    /// Script texts.
    pub scripts: Vec<SourceText>,
    /// The compiled, sandboxed scripts rules call.
    pub script_host: Arc<ScriptHost>,
}

impl InputArgs {
    /// The config file the flags name, if any.
    pub fn config_path(&self) -> Option<PathBuf> {
        self.config.clone().or_else(|| {
            self.config_dir
                .as_ref()
                .map(|d| d.join("huatuo-bamai.conf"))
        })
    }

    /// Loads config, rules and scripts; `extra_rules` (positional paths) win over `--rules`.
    pub fn load(
        &self,
        extra_rules: &[PathBuf],
    ) -> Result<Inputs, (Vec<Diagnostic>, Vec<SourceText>)> {
        let mut texts = Vec::new();
        let (config, config_text) = match self.config_path() {
            Some(path) => {
                let text = huatuo_config::read_text(&path).map_err(|d| (d, Vec::new()))?;
                let shown = path.display().to_string();
                let source = SourceText {
                    path: shown.clone(),
                    text: text.clone(),
                };
                texts.push(source.clone());
                match huatuo_config::load_str(&shown, &text) {
                    Ok(config) => (config, Some(source)),
                    Err(diags) => return Err((diags, texts)),
                }
            }
            None => (Config::default(), None),
        };
        let rule_paths: Vec<PathBuf> = if extra_rules.is_empty() {
            self.rules.clone()
        } else {
            extra_rules.to_vec()
        };
        let rule_files = if rule_paths.is_empty() {
            embedded_rule_files()
        } else {
            read_rule_files(&rule_paths).map_err(|d| (d, texts.clone()))?
        };
        let scripts = match &self.stdlib {
            Some(dir) => {
                let added = read_script_files(dir).map_err(|d| (d, texts.clone()))?;
                with_builtin_scripts(added)
            }
            None => embedded_script_files(),
        };
        let sources = scripts
            .iter()
            .map(|s| (PathBuf::from(&s.path), s.text.clone()))
            .collect();
        let mut script_host = ScriptHost::from_sources(sources).map_err(|d| {
            let mut shown = texts.clone();
            shown.extend(scripts.iter().cloned());
            (vec![d], shown)
        })?;
        let timeout_ms = u64::try_from(config.rules.script_timeout).unwrap_or(1);
        script_host.set_time_limit(std::time::Duration::from_millis(timeout_ms));
        Ok(Inputs {
            config,
            config_text,
            rule_files,
            scripts,
            script_host: Arc::new(script_host),
        })
    }
}

/// The built-in scripts, except those `added` replaces (same file name), then `added`.
fn with_builtin_scripts(added: Vec<SourceText>) -> Vec<SourceText> {
    let name = |s: &SourceText| {
        std::path::Path::new(&s.path)
            .file_name()
            .map(|n| n.to_os_string())
    };
    let replaced: Vec<_> = added.iter().map(name).collect();
    let mut scripts: Vec<SourceText> = embedded_script_files()
        .into_iter()
        .filter(|s| !replaced.contains(&name(s)))
        .collect();
    scripts.extend(added);
    scripts
}

impl Inputs {
    /// Every text read: rule files, scripts and the config.
    pub fn texts(&self) -> impl Iterator<Item = &SourceText> {
        self.rule_files
            .iter()
            .chain(self.scripts.iter())
            .chain(self.config_text.iter())
    }

    /// The text of a file diagnostics may point into.
    pub fn text_of(&self, path: &str) -> Option<String> {
        self.texts()
            .find(|f| f.path == path)
            .map(|f| f.text.clone())
    }
}

/// Inputs that checked clean, parsed and compiled: what the daemon and replay execute.
pub struct Compiled {
    /// The loaded config, rules and scripts.
    pub inputs: Inputs,
    /// The parsed rule files, without the rules the config's BlackList names.
    pub files: Vec<RuleFile>,
    /// The compiled plan.
    pub plan: Plan,
    /// The rules the config's BlackList switched off (not in `files` nor `plan`).
    pub blacklisted: Vec<RuleInfo>,
}

/// Checks, parses and compiles loaded inputs; every error when they do not check.
pub fn compile_inputs(inputs: Inputs) -> Result<Compiled, Vec<Diagnostic>> {
    let (_, diags) = super::check::diagnose(&inputs);
    if diags.iter().any(|d| d.severity == Severity::Error) {
        return Err(diags);
    }
    let (files, _) = parse_all(&inputs.rule_files);
    let (files, blacklisted) = blacklist::apply(files, &inputs.config.black_list);
    let plan = huatuo_eval::compile_with_scripts(
        &files,
        &inputs.config,
        Some(inputs.script_host.clone()),
    )?;
    Ok(Compiled {
        inputs,
        files,
        plan,
        blacklisted,
    })
}

impl InputArgs {
    /// Loads and compiles, printing any diagnostic; exit 1 when they do not check.
    pub fn compile(&self) -> Result<Compiled, ExitCode> {
        let inputs = match self.load(&[]) {
            Ok(inputs) => inputs,
            Err((diags, texts)) => {
                let text_of = |p: &str| texts.iter().find(|t| t.path == p).map(|t| t.text.clone());
                eprint!("{}", render_human(&diags, &text_of));
                return Err(ExitCode::from(1));
            }
        };
        let texts: Vec<SourceText> = inputs.texts().cloned().collect();
        compile_inputs(inputs).map_err(|diags| {
            let text_of = |p: &str| texts.iter().find(|t| t.path == p).map(|t| t.text.clone());
            eprint!("{}", render_human(&diags, &text_of));
            ExitCode::from(1)
        })
    }
}

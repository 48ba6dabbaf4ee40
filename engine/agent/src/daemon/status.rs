//! The status view served at `/status` and printed by `huatuo status`.

use super::evaluate::EvalShared;
use super::poller::SourceStatsMap;
use huatuo_bpf::Templates;
use huatuo_dsl::ast::{Rule, RuleKind};
use huatuo_eval::Inactive;
use serde::Serialize;
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What a rule is, for the status view.
#[derive(Debug, Clone, Serialize)]
pub struct RuleInfo {
    /// Rule name.
    pub name: String,
    /// metric, event or autotrace.
    pub kind: RuleKind,
    /// The source it reads.
    pub source: String,
    /// `fallback for RULE`: the rule it stands in for where that rule's source is unavailable.
    pub fallback_for: Option<String>,
}

impl RuleInfo {
    /// Describes a parsed rule.
    pub fn from_rule(rule: &Rule) -> RuleInfo {
        RuleInfo {
            name: rule.name.name.clone(),
            kind: rule.kind,
            source: rule.source.name.name.clone(),
            fallback_for: rule.fallback.as_ref().map(|f| f.name.clone()),
        }
    }
}

/// The log line saying which rule of a `fallback for` pair runs and why the other does not.
pub fn fallback_log_line(inactive: &Inactive) -> String {
    let kind = inactive.kind.keyword();
    if inactive.is_fallback {
        format!(
            "rule {} ({kind}) runs on {}; its fallback {} ({}) is not run",
            inactive.active, inactive.active_source, inactive.name, inactive.source
        )
    } else {
        format!(
            "rule {} ({kind}) not run: {} is unavailable; its fallback {} ({}) runs instead",
            inactive.name, inactive.source, inactive.active, inactive.active_source
        )
    }
}

/// The device lists of the config, and the sysfs where their devices are looked up: the
/// status tells which listed devices exist on this host.
#[derive(Debug, Clone, Default)]
pub struct ListedDevices {
    /// The sysfs root (`/sys`).
    pub sys: PathBuf,
    /// Config key (`EventTracing.Netdev.DeviceList`) and the devices it lists.
    pub lists: Vec<(String, Vec<String>)>,
}

impl ListedDevices {
    /// The `DeviceList` keys of `config`, looked up under `sys`.
    pub fn of_config(config: &huatuo_config::Config, sys: &Path) -> ListedDevices {
        let lists = [
            (
                "EventTracing.Netdev.DeviceList",
                &config.event_tracing.netdev.device_list,
            ),
            (
                "MetricCollector.NetdevDCB.DeviceList",
                &config.metric_collector.netdev_dcb.device_list,
            ),
            (
                "MetricCollector.NetdevHW.DeviceList",
                &config.metric_collector.netdev_hw.device_list,
            ),
        ];
        ListedDevices {
            sys: sys.to_path_buf(),
            lists: lists
                .into_iter()
                .map(|(key, devices)| (key.to_string(), devices.clone()))
                .collect(),
        }
    }

    /// `{key: {device: exists}}`; a name that cannot be a device name exists nowhere.
    pub fn to_json(&self) -> Json {
        let net = self.sys.join("class/net");
        let exists = |dev: &str| {
            !(dev.is_empty() || dev.contains('/') || dev == "." || dev == "..")
                && net.join(dev).exists()
        };
        let lists: serde_json::Map<String, Json> = self
            .lists
            .iter()
            .map(|(key, devices)| {
                let found: serde_json::Map<String, Json> = devices
                    .iter()
                    .map(|dev| (dev.clone(), json!(exists(dev))))
                    .collect();
                (key.clone(), Json::Object(found))
            })
            .collect();
        Json::Object(lists)
    }
}

/// Everything the status view reads.
pub struct StatusView {
    /// The loaded rules.
    pub rules: Vec<RuleInfo>,
    /// Rules the config's BlackList switched off.
    pub blacklisted: Vec<RuleInfo>,
    /// Rules of `fallback for` pairs not running because the other rule of the pair does.
    pub inactive: Vec<Inactive>,
    /// Poller statistics.
    pub sources: SourceStatsMap,
    /// Evaluator counters.
    pub eval: Arc<EvalShared>,
    /// Loaded templates.
    pub templates: Option<Arc<Mutex<Templates>>>,
    /// Number of rule files.
    pub rule_files: usize,
    /// Where records are stored, with warnings about the cluster connection.
    pub storage: Json,
    /// The agent's own cgroups (`[RuntimeCgroup]`), or why it runs without them.
    pub runtime_cgroup: Arc<Mutex<Json>>,
    /// The config's device lists.
    pub devices: ListedDevices,
}

impl StatusView {
    /// The status as JSON: rules with their counters, sources, templates and what attached.
    pub fn to_json(&self) -> Json {
        let stats = self
            .eval
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        let rules: Vec<Json> = self
            .rules
            .iter()
            .map(|rule| {
                let inactive = self
                    .inactive
                    .iter()
                    .find(|i| i.kind == rule.kind && i.name == rule.name);
                let counters = stats.rules.get(&rule.name).filter(|_| inactive.is_none());
                let mut entry = json!({
                    "name": rule.name,
                    "kind": rule.kind,
                    "source": rule.source,
                    "counters": counters,
                    "enabled": inactive.is_none() && counters.is_none_or(|c| c.disabled.is_none()),
                });
                if let Some(target) = &rule.fallback_for {
                    entry["fallback_for"] = json!(target);
                }
                if let Some(inactive) = inactive {
                    entry["disabled"] = json!(inactive.reason);
                    entry["active_instead"] = json!(inactive.active);
                }
                entry
            })
            .chain(self.blacklisted.iter().map(|rule| {
                let mut entry = json!({
                    "name": rule.name,
                    "kind": rule.kind,
                    "source": rule.source,
                    "counters": null,
                    "enabled": false,
                    "disabled": super::blacklist::REASON,
                });
                if let Some(target) = &rule.fallback_for {
                    entry["fallback_for"] = json!(target);
                }
                entry
            }))
            .collect();
        let sources = self.sources.lock().map(|s| json!(*s)).unwrap_or(Json::Null);
        let templates = self
            .templates
            .as_ref()
            .and_then(|t| t.lock().ok().map(|t| json!(t.status())))
            .unwrap_or_else(|| json!([]));
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "rule_files": self.rule_files,
            "rules": rules,
            "sources": sources,
            "templates": templates,
            "storage": self.storage,
            "runtime_cgroup": self.runtime_cgroup.lock().map(|r| r.clone()).unwrap_or(Json::Null),
            "log": crate::logging::status(),
            "devices": self.devices.to_json(),
            "node": node_facts(),
        })
    }
}

/// The machine the agent runs on, for the console's overview: hostname, kernel release and
/// uptime, read from this host's /proc (absent fields when unreadable).
fn node_facts() -> Json {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let uptime = read("/proc/uptime")
        .and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok())
        .map(|u| u as u64);
    json!({
        "hostname": read("/proc/sys/kernel/hostname"),
        "kernel": read("/proc/sys/kernel/osrelease"),
        "uptime_seconds": uptime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use huatuo_dsl::parser::parse_file;

    /// The shipped pair's shape: a template rule and its kernel log fallback.
    fn view(template_loaded: bool) -> StatusView {
        let text = "event softlockup {\n source bpf.softlockup\n emit cpu\n}\n\
                    event softlockup_kmsg {\n fallback for softlockup\n source kmsg\n emit cpu = 1\n}\n";
        let file = parse_file("t.hto", text).expect("test rules parse");
        let mut plan = huatuo_eval::compile(
            std::slice::from_ref(&file),
            &huatuo_config::Config::default(),
            None,
        )
        .expect("test rules compile");
        let inactive =
            plan.select_fallbacks(&|source| template_loaded || source != "bpf.softlockup");
        StatusView {
            rules: file.rules.iter().map(RuleInfo::from_rule).collect(),
            blacklisted: vec![],
            inactive,
            sources: Default::default(),
            eval: Default::default(),
            templates: None,
            rule_files: 1,
            storage: Json::Null,
            runtime_cgroup: Default::default(),
            devices: ListedDevices::default(),
        }
    }

    #[test]
    fn listed_devices_say_which_exist() {
        let sys = std::env::temp_dir().join(format!("huatuo-status-sys-{}", std::process::id()));
        std::fs::create_dir_all(sys.join("class/net/eth0")).unwrap();
        let devices = ListedDevices::of_config(&huatuo_config::Config::default(), &sys);
        let json = devices.to_json();
        std::fs::remove_dir_all(&sys).unwrap();
        let listed = &json["EventTracing.Netdev.DeviceList"];
        assert_eq!(
            listed,
            &json!({"eth0": true, "eth1": false, "bond4": false, "lo": false})
        );
        assert_eq!(json["MetricCollector.NetdevHW.DeviceList"], json!({}));
        let hostile = ListedDevices {
            sys: PathBuf::from("/"),
            lists: vec![("K".into(), vec!["../..".into(), "".into()])],
        };
        assert_eq!(hostile.to_json()["K"], json!({"../..": false, "": false}));
    }

    fn rule<'a>(json: &'a Json, name: &str) -> &'a Json {
        json["rules"]
            .as_array()
            .and_then(|rules| rules.iter().find(|r| r["name"] == name))
            .unwrap_or_else(|| panic!("{name} in {json}"))
    }

    #[test]
    fn status_says_which_rule_of_a_fallback_pair_runs() {
        // Template unavailable: the kernel log rule runs.
        let json = view(false).to_json();
        let preferred = rule(&json, "softlockup");
        assert_eq!(preferred["enabled"], false, "{json}");
        assert_eq!(
            preferred["disabled"],
            "source bpf.softlockup is unavailable: its fallback `softlockup_kmsg` (kmsg) runs instead"
        );
        assert_eq!(preferred["active_instead"], "softlockup_kmsg");
        let fallback = rule(&json, "softlockup_kmsg");
        assert_eq!(fallback["enabled"], true, "{json}");
        assert_eq!(fallback["fallback_for"], "softlockup");
        assert!(fallback.get("disabled").is_none());
        // Template loaded: the template rule runs, the kernel log rule does not.
        let json = view(true).to_json();
        assert_eq!(rule(&json, "softlockup")["enabled"], true, "{json}");
        let fallback = rule(&json, "softlockup_kmsg");
        assert_eq!(fallback["enabled"], false);
        assert_eq!(
            fallback["disabled"],
            "fallback for `softlockup`, whose source bpf.softlockup is available"
        );
        assert_eq!(fallback["active_instead"], "softlockup");
    }

    #[test]
    fn the_log_line_names_both_rules() {
        assert_eq!(
            fallback_log_line(&view(false).inactive[0]),
            "rule softlockup (event) not run: bpf.softlockup is unavailable; its fallback \
             softlockup_kmsg (kmsg) runs instead"
        );
        assert_eq!(
            fallback_log_line(&view(true).inactive[0]),
            "rule softlockup (event) runs on bpf.softlockup; its fallback softlockup_kmsg (kmsg) \
             is not run"
        );
    }
}

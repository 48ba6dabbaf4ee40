//! The Grafana dashboards of `deploy/grafana/dashboards` work, and HUATUO's do too:
//! - every PromQL expression of ours (template variables resolved from Prometheus the way
//!   Grafana resolves them) parses and returns data from a real Prometheus (Debian's
//!   `prometheus`) scraping the agent over the fixture node and, as root, the agent on the
//!   live kernel;
//! - every family HUATUO's own dashboards query is served there, or listed in
//!   docs/COMPATIBILITY.md with the reason this kernel cannot produce it;
//! - every Elasticsearch panel names only tracers the agent runs and record fields those
//!   tracers write (the conformance cases' expected records);
//! - the provisioning points Grafana at these files and data sources, and promtool accepts the
//!   shipped Prometheus config.

mod scrape_common;

use scrape_common::*;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills Prometheus when the test ends.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The region both agents report, so `label_values(..., region)` has a value to resolve.
const REGION: &str = "dashboards-test";

/// Every dashboard file: (file name, JSON).
fn dashboards() -> Vec<(String, Json)> {
    let dir = repo().join("deploy/grafana/dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/grafana/dashboards")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read dashboard");
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), json)
        })
        .collect()
}

/// The panels of a dashboard, rows' nested panels included.
fn panels(dashboard: &Json) -> Vec<&Json> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

/// The data source type of a target (its own, else its panel's).
fn source_type<'a>(panel: &'a Json, target: &'a Json) -> &'a str {
    target["datasource"]["type"]
        .as_str()
        .or(panel["datasource"]["type"].as_str())
        .unwrap_or("")
}

/// (panel title, PromQL) of every Prometheus target of a dashboard.
fn prom_exprs(dashboard: &Json) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if source_type(panel, target) == "prometheus" {
                let expr = target["expr"]
                    .as_str()
                    .expect("a Prometheus target has expr");
                out.push((panel["title"].as_str().unwrap_or("").into(), expr.into()));
            }
        }
    }
    out
}

/// `label_values(SELECTOR, LABEL)` split into its selector and label.
fn label_values_query(query: &str) -> (String, String) {
    let inner = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("template query {query:?} is not label_values(...)"));
    let (selector, label) = inner
        .rsplit_once(',')
        .expect("label_values(selector, label)");
    (selector.trim().to_string(), label.trim().to_string())
}

/// Substitutes `$name` and `${name}` for every variable (longest names first, so `$host`
/// does not eat `$hostname`) and Grafana's interval variables.
fn substitute(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = text
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s");
    let mut names: Vec<&String> = values.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        out = out
            .replace(&format!("${{{name}}}"), &values[name])
            .replace(&format!("${name}"), &values[name]);
    }
    out
}

/// A regex matching exactly the given values, as Grafana writes a multi-value variable.
fn regex_of(values: &BTreeSet<String>) -> String {
    let escaped: Vec<String> = values
        .iter()
        .map(|v| {
            v.chars()
                .flat_map(|c| {
                    let special = "\\.+*?()|[]{}^$".contains(c);
                    special
                        .then_some('\\')
                        .into_iter()
                        .chain(std::iter::once(c))
                })
                .collect()
        })
        .collect();
    format!("({})", escaped.join("|")).replace('\\', "\\\\")
}

/// A GET on Prometheus' HTTP API: the `data` of a success, the error text otherwise.
fn api(port: u16, path: &str, params: &[(&str, &str)]) -> Result<Json, String> {
    let mut request =
        ureq::get(&format!("http://127.0.0.1:{port}{path}")).timeout(Duration::from_secs(5));
    for (key, value) in params {
        request = request.query(key, value);
    }
    let text = match request.call() {
        Ok(response) | Err(ureq::Error::Status(_, response)) => {
            response.into_string().map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string()),
    };
    let body: Json = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    if body["status"] == "success" {
        Ok(body["data"].clone())
    } else {
        Err(format!("{}: {}", body["errorType"], body["error"]))
    }
}

/// Resolves the template variables of a dashboard in order, from the series Prometheus
/// holds; an error names a variable without values.
fn resolve_variables(
    port: u16,
    file: &str,
    dashboard: &Json,
) -> Result<BTreeMap<String, String>, String> {
    let mut values = BTreeMap::new();
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = var["name"].as_str().expect("variable name").to_string();
        let query = var["query"]["query"]
            .as_str()
            .or(var["query"].as_str())
            .expect("a query variable");
        let (selector, label) = label_values_query(&substitute(query, &values));
        let series = api(port, "/api/v1/series", &[("match[]", &selector)])
            .unwrap_or_else(|e| panic!("{file}: variable {name}: {selector}: {e}"));
        let found: BTreeSet<String> = series
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s[&label].as_str())
            .map(str::to_string)
            .collect();
        if found.is_empty() {
            return Err(format!("{file}: variable {name} ({query}) has no values"));
        }
        values.insert(name, regex_of(&found));
    }
    Ok(values)
}

/// Writes the Prometheus config scraping `targets` every second and starts Prometheus.
fn start_prometheus(dir: &Path, port: u16, targets: &[u16]) -> Prometheus {
    let targets: Vec<String> = targets
        .iter()
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: huatuo\n    honor_labels: true\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, config).expect("write prometheus.yml");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    Prometheus(child)
}

/// Whether the Prometheus server binary runs here (Debian's `prometheus`); under `CI=true` a
/// missing one is a failure.
fn prometheus_available() -> bool {
    tool_available("prometheus", "scripts/deps.sh --test")
}

/// The config both agents run with: no Elasticsearch or kubelet, the hardware-drop collector
/// on (HUATUO's default BlackList has it off) for the fixture's eth0.
const CONFIG: &str = r#"
BlackList = ["metax_gpu"]
[Storage.ES]
    Address = ""
[Pod]
    KubeletReadOnlyPort = 0
    KubeletAuthorizedPort = 0
[MetricCollector.NetdevHW]
    DeviceList = ["eth0"]
"#;

/// Starts the agent over the fixture node with the recorded kernel-template reads and every
/// shipped rule (events and autotracing too, for /status).
fn start_fixture(port: u16, config: &Path) -> Agent {
    let mut args = fixture_args("cgroup", 120);
    for arg in [
        "--bpf-recorded",
        "engine/agent/tests/fixtures/node/bpf/maps.jsonl",
        "--rules",
        "rules/events",
        "--rules",
        "rules/autotrace",
        "--region",
        REGION,
    ] {
        args.push(arg.into());
    }
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    start_agent(port, config, &args)
}

/// Starts the agent on the live kernel, kernel templates included, with the metric rules.
fn start_live(port: u16, config: &Path) -> Agent {
    let args: Vec<&std::ffi::OsStr> = [
        "--rules",
        "rules/metrics",
        "--stdlib",
        "stdlib",
        "--no-self-limit",
        "--region",
        REGION,
        "--run-for",
        "120",
    ]
    .iter()
    .map(std::ffi::OsStr::new)
    .collect();
    start_agent(port, config, &args)
}

/// Whether an instant query returned at least one sample or series.
fn has_data(data: &Json) -> bool {
    data["result"].as_array().is_some_and(|r| !r.is_empty())
}

/// The HUATUO dashboard families this kernel cannot produce: the names of the first column
/// of docs/COMPATIBILITY.md's "do not serve" table, each row with a reason.
fn unservable_families() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(repo().join("docs/COMPATIBILITY.md")).expect("doc");
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Families HUATUO's dashboards query that huatuo does not serve"))
        .expect("the not-served section");
    let mut names = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert!(
            cells.len() >= 3 && cells[2].len() > 20,
            "a row without its reason: {row}"
        );
        names.extend(cells[1].split('`').skip(1).step_by(2).map(str::to_string));
    }
    names
}

/// The families HUATUO's dashboards query with the labels their queries select or group by
/// (engine/agent/tests/fixtures/huatuo-dashboard-families.txt).
fn huatuo_dashboard_families() -> Vec<(String, Vec<String>)> {
    let path = repo().join("engine/agent/tests/fixtures/huatuo-dashboard-families.txt");
    std::fs::read_to_string(path)
        .expect("huatuo-dashboard-families.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut words = l.split_whitespace();
            let family = words.next().expect("family").to_string();
            let labels = words
                .nth(1)
                .map(|ls| ls.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            (family, labels)
        })
        .collect()
}

/// Whether some series of `family` in one of the scraped bodies carries every label of
/// `labels` (an empty value counts: Prometheus drops empty labels, the exposition keeps them).
fn has_labels(bodies: &[String], family: &str, labels: &[String]) -> bool {
    let prefix = format!("huatuo_bamai_{family}{{");
    bodies.iter().flat_map(|b| b.lines()).any(|line| {
        line.strip_prefix(&prefix)
            .is_some_and(|rest| labels.iter().all(|l| rest.contains(&format!("{l}=\""))))
    })
}

#[test]
fn unservable_list_names_only_families_huatuo_queries_and_none_we_serve() {
    let wanted: BTreeSet<String> = huatuo_dashboard_families()
        .into_iter()
        .map(|(family, _)| family)
        .collect();
    assert!(wanted.len() > 150, "family list not read: {}", wanted.len());
    for name in unservable_families() {
        assert!(
            wanted.contains(&name),
            "docs/COMPATIBILITY.md lists {name} as not served, but HUATUO's dashboards do not query it"
        );
        assert!(
            !std::fs::read_dir(repo().join("rules/metrics"))
                .expect("rules")
                .map(|e| std::fs::read_to_string(e.expect("rule").path()).unwrap_or_default())
                .any(|rule| rule.contains(&format!("metric {name} {{"))),
            "{name} is listed as not served but a rule is named after it"
        );
    }
}

#[test]
fn provisioning_loads_the_dashboards_and_their_data_sources() {
    let provider: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/provisioning/dashboards/huatuo.yml"))
            .expect("dashboard provider"),
    )
    .expect("YAML");
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path");
    let compose =
        std::fs::read_to_string(repo().join("deploy/docker-compose.yml")).expect("compose");
    assert!(
        compose.contains(&format!("./grafana/dashboards:{path}:ro")),
        "docker-compose does not mount deploy/grafana/dashboards at {path}"
    );
    let sources: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/provisioning/datasources/huatuo.yml"))
            .expect("data sources"),
    )
    .expect("YAML");
    let uids: BTreeSet<(String, String)> = sources["datasources"]
        .as_sequence()
        .expect("datasources")
        .iter()
        .map(|d| {
            (
                d["type"].as_str().unwrap_or("").to_string(),
                d["uid"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    if promtool_available() {
        let out = Command::new("promtool")
            .args(["check", "config", "deploy/prometheus/prometheus.yml"])
            .current_dir(repo())
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool check config: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let boards = dashboards();
    assert!(boards.len() >= 7, "dashboards missing: {}", boards.len());
    let mut uids_seen = BTreeSet::new();
    for (file, board) in &boards {
        assert!(
            uids_seen.insert(board["uid"].as_str().expect("uid").to_string()),
            "{file}: duplicate uid"
        );
        for panel in panels(board) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let source = &target["datasource"];
                let pair = (
                    source["type"].as_str().unwrap_or("").to_string(),
                    source["uid"].as_str().unwrap_or("").to_string(),
                );
                assert!(
                    uids.contains(&pair),
                    "{file}: panel {:?} uses data source {pair:?}, not provisioned",
                    panel["title"]
                );
            }
        }
    }
}

/// Every record field (dotted paths under `tracer_data`) each tracer writes, from the
/// conformance cases' expected records.
fn record_fields() -> BTreeMap<String, BTreeSet<String>> {
    fn walk(value: &Json, prefix: &str, out: &mut BTreeSet<String>) {
        if let Some(map) = value.as_object() {
            for (key, inner) in map {
                let path = format!("{prefix}{key}");
                walk(inner, &format!("{path}."), out);
                out.insert(path);
            }
        }
    }
    let mut fields: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for case in std::fs::read_dir(repo().join("conformance")).expect("conformance") {
        let expected = case.expect("case").path().join("expected.jsonl");
        let Ok(text) = std::fs::read_to_string(&expected) else {
            continue;
        };
        for line in text.lines() {
            let Ok(record) = serde_json::from_str::<Json>(line) else {
                continue;
            };
            if let Some(tracer) = record["tracer_name"].as_str() {
                let set = fields.entry(tracer.to_string()).or_default();
                walk(&record["data"], "tracer_data.", set);
            }
        }
    }
    fields
}

/// The top-level fields every stored record may carry besides `tracer_data`.
const RECORD_FIELDS: [&str; 14] = [
    "hostname",
    "region",
    "uploaded_time",
    "es_index_time",
    "time",
    "tracer_name",
    "tracer_id",
    "tracer_time",
    "tracer_type",
    "container_id",
    "container_hostname",
    "container_host_namespace",
    "container_type",
    "container_qos",
];

/// Checks the Elasticsearch panels against the tracers of `status` (the agent's /status).
fn check_es_panels(status: &Json) {
    let tracers: BTreeSet<String> = status["rules"]
        .as_array()
        .expect("/status rules")
        .iter()
        .filter(|r| r["kind"] == "event" || r["kind"] == "autotrace")
        .filter(|r| r.get("fallback_for").is_none())
        .filter_map(|r| r["name"].as_str())
        .map(str::to_string)
        .collect();
    assert!(tracers.len() > 10, "no tracers in /status: {tracers:?}");
    let fields = record_fields();
    let name_re = |text: &str| -> Vec<String> {
        text.split("tracer_name:")
            .skip(1)
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect()
            })
            .collect()
    };
    let mut panels_checked = 0;
    for (file, board) in dashboards() {
        for panel in panels(&board) {
            let es: Vec<&Json> = panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| source_type(panel, t) == "elasticsearch")
                .collect();
            if es.is_empty() {
                continue;
            }
            panels_checked += 1;
            let title = panel["title"].as_str().unwrap_or("");
            let mut named = Vec::new();
            for target in &es {
                let query = target["query"].as_str().expect("an ES target has a query");
                let names = name_re(query);
                assert!(
                    !names.is_empty(),
                    "{file}: {title}: query names no tracer: {query}"
                );
                for name in &names {
                    assert!(
                        tracers.contains(name),
                        "{file}: {title}: tracer {name} is not a rule of the agent ({tracers:?})"
                    );
                }
                named.extend(names);
            }
            // Every field the panel mentions (query, columns, transformations).
            let text = panel.to_string();
            let known: BTreeSet<&String> = named
                .iter()
                .filter_map(|n| fields.get(n))
                .flatten()
                .collect();
            for field in text
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .filter(|w| w.starts_with("tracer_data."))
            {
                assert!(
                    known.iter().any(|k| k.as_str() == field),
                    "{file}: {title}: {field} is not a field of the records of {named:?}"
                );
            }
            for target in &es {
                let query = target["query"].as_str().unwrap_or("");
                for word in query.split_whitespace() {
                    if let Some((field, _)) = word.split_once(':') {
                        let field = field.trim_start_matches('(').trim_end_matches(".keyword");
                        assert!(
                            field.starts_with("tracer_data.") || RECORD_FIELDS.contains(&field),
                            "{file}: {title}: {field} is not a record field"
                        );
                    }
                }
            }
        }
    }
    assert!(
        panels_checked >= 10,
        "few Elasticsearch panels: {panels_checked}"
    );
}

#[test]
fn dashboards_return_data_from_a_real_prometheus() {
    if !prometheus_available() {
        return;
    }
    let started = Instant::now();
    let config = TempConfig::new("dashboards", CONFIG);
    let fixture_port = free_port();
    let _fixture = start_fixture(fixture_port, &config.path);
    let live_port = free_port();
    let live = is_root().then(|| start_live(live_port, &config.path));
    if live.is_none() {
        assert!(!ci(), "the live-kernel agent needs root under CI=true");
        eprintln!("not root: Prometheus scrapes the fixture agent only");
    }
    let mut targets = vec![fixture_port];
    if live.is_some() {
        targets.push(live_port);
    }
    let prom_port = free_port();
    let _prometheus = start_prometheus(&config.dir, prom_port, &targets);

    // Wait for both agents' families to reach Prometheus (each rule polls every 10 s).
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut expressions: Vec<(String, String, String)> = Vec::new();
    let mut empty: Vec<String> = Vec::new();
    let mut served = BTreeSet::new();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
        let hosts = api(
            prom_port,
            "/api/v1/query",
            &[(
                "query",
                "count by (host) (huatuo_bamai_process_start_time_seconds)",
            )],
        );
        if !hosts.is_ok_and(|h| {
            h["result"]
                .as_array()
                .is_some_and(|r| r.len() == targets.len())
        }) {
            continue;
        }
        expressions.clear();
        empty.clear();
        for (file, board) in dashboards() {
            match resolve_variables(prom_port, &file, &board) {
                Ok(values) => expressions.extend(
                    prom_exprs(&board)
                        .into_iter()
                        .map(|(title, expr)| (file.clone(), title, substitute(&expr, &values))),
                ),
                Err(e) => empty.push(e),
            }
        }
        for (file, title, expr) in &expressions {
            match api(prom_port, "/api/v1/query", &[("query", expr)]) {
                Ok(data) if has_data(&data) => {}
                Ok(_) => empty.push(format!("{file}: {title}: {expr}")),
                Err(e) => panic!("{file}: {title}: {expr}: {e}"),
            }
        }
        served = api(prom_port, "/api/v1/label/__name__/values", &[])
            .expect("names")
            .as_array()
            .expect("name list")
            .iter()
            .filter_map(|n| n.as_str()?.strip_prefix("huatuo_bamai_"))
            .map(str::to_string)
            .collect();
        if empty.is_empty() {
            break;
        }
    }
    assert!(
        expressions.len() > 60,
        "few expressions: {}",
        expressions.len()
    );
    assert!(
        empty.is_empty(),
        "expressions without data:\n{}",
        empty.join("\n")
    );

    // HUATUO's dashboards: every family is served or listed as unservable.
    let unservable = unservable_families();
    let families = huatuo_dashboard_families();
    let missing: Vec<&String> = families
        .iter()
        .map(|(family, _)| family)
        .filter(|f| !served.contains(*f) && !unservable.contains(*f))
        .collect();
    assert!(
        missing.is_empty(),
        "HUATUO dashboard families neither served nor listed in docs/COMPATIBILITY.md: {missing:?}"
    );
    // ... and with the labels HUATUO's queries select or group by.
    let bodies: Vec<String> = targets.iter().filter_map(|p| scrape(*p)).collect();
    let unlabelled: Vec<String> = families
        .iter()
        .filter(|(family, labels)| served.contains(family) && !has_labels(&bodies, family, labels))
        .map(|(family, labels)| format!("{family} {labels:?}"))
        .collect();
    assert!(
        unlabelled.is_empty(),
        "HUATUO dashboard families served without the labels its queries use: {unlabelled:?}"
    );
    let now_served: Vec<&String> = unservable.intersection(&served).collect();
    assert!(
        now_served.is_empty(),
        "listed as not served in docs/COMPATIBILITY.md but served: {now_served:?}"
    );
    let status: Json = serde_json::from_str(&get(fixture_port, "/status").expect("/status"))
        .expect("/status JSON");
    check_es_panels(&status);
    println!(
        "{} expressions of {} dashboards returned data from {} agents in {:?}",
        expressions.len(),
        dashboards().len(),
        targets.len(),
        started.elapsed()
    );
}

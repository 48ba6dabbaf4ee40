//! The deploy files work on a fresh host: the systemd unit passes `systemd-analyze verify`
//! and has what a fresh host needs; the kustomize base renders with `kubectl kustomize` into a
//! DaemonSet with its config from the generated ConfigMap, probes, resources,
//! every taint tolerated, host mounts and privileges, a Service and a ServiceMonitor;
//! docker-compose passes `docker-compose config`, mounts files that exist, and uses one set
//! of Elasticsearch credentials in the agent, Elasticsearch and Grafana; every config shipped
//! for a deployment passes `huatuo check`; the Docker build context leaves build output out.

mod scrape_common;

use scrape_common::{ci, repo};
use serde_yaml_ng::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `program args`; `None` (with a message) when the program is not installed, which
/// fails under CI=true when `required_in_ci`.
fn tool(program: &str, args: &[&str], required_in_ci: bool) -> Option<Output> {
    match Command::new(program)
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => Some(out),
        Err(e) => {
            assert!(
                !(ci() && required_in_ci),
                "{program} is needed under CI=true (scripts/deps.sh): {e}"
            );
            println!("SKIPPED part: {program} is not installed ({e})");
            None
        }
    }
}

fn text(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).expect("valid YAML")
}

/// `huatuo check --config` accepts `path`.
fn config_checks(path: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_huatuo"))
        .current_dir(repo())
        .args(["check", "--config", path])
        .output()
        .expect("huatuo runs");
    assert!(
        out.status.success(),
        "{path} is refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn systemd_unit_verifies_and_prepares_the_host() {
    let unit = text("deploy/systemd/huatuo.service");
    let directives: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    for wanted in [
        "Wants=network-online.target",
        "After=network-online.target",
        "StateDirectory=huatuo",
        "WorkingDirectory=/var/lib/huatuo",
        "LimitMEMLOCK=infinity",
        "ExecStart=/usr/bin/huatuo run --config /etc/huatuo/huatuo-bamai.conf",
    ] {
        assert!(
            directives.contains(&wanted),
            "{wanted} missing from the unit"
        );
    }
    // systemd-analyze requires ExecStart's binary to exist: point it at the one just built.
    let dir = std::env::temp_dir().join(format!("huatuo-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let copy = dir.join("huatuo.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/huatuo", env!("CARGO_BIN_EXE_huatuo")),
    )
    .expect("write unit");
    let verify = tool(
        "systemd-analyze",
        &["verify", copy.to_str().expect("utf-8 path")],
        true,
    );
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(out) = verify {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Unknown keys are only warned about: any line about our unit is a finding (lines
        // about the host's own units are not ours to judge).
        let findings: Vec<&str> = stderr.lines().filter(|l| l.contains("huatuo")).collect();
        assert!(
            out.status.success() && findings.is_empty(),
            "systemd-analyze verify: {stderr}"
        );
    }
}

/// The objects of the kustomize base as `kubectl kustomize` renders them; `None` (with a
/// message) where kubectl is not installed, outside CI.
fn kustomize_objects() -> Option<Vec<Value>> {
    let out = tool("kubectl", &["kustomize", "deploy/k8s"], true)?;
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8_lossy(&out.stdout).into_owned();
    Some(
        serde_yaml_ng::Deserializer::from_str(&rendered)
            .map(|doc| serde::Deserialize::deserialize(doc).expect("rendered YAML"))
            .collect(),
    )
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in the kustomize base"))
}

#[test]
fn kustomize_base_runs_the_agent_on_every_node_with_its_config() {
    let Some(objects) = kustomize_objects() else {
        return;
    };
    let config_map = of_kind(&objects, "ConfigMap");
    let daemonset = of_kind(&objects, "DaemonSet");
    let service = of_kind(&objects, "Service");
    let monitor = of_kind(&objects, "ServiceMonitor");
    assert_eq!(
        config_map["data"]["huatuo-bamai.conf"].as_str(),
        Some(text("deploy/k8s/huatuo-bamai.conf").as_str())
    );
    config_checks("deploy/k8s/huatuo-bamai.conf");
    assert_eq!(daemonset["metadata"]["namespace"], "kube-system");

    let pod = &daemonset["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true);
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    let tolerations = pod["tolerations"].as_sequence().expect("tolerations");
    assert!(
        tolerations.iter().any(|t| t["operator"] == "Exists"
            && t.get("key").is_none()
            && t.get("effect").is_none()),
        "no toleration of every taint: {tolerations:?}"
    );
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["privileged"], true);
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "metrics", "{probe}");
    }
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][bound][resource].as_str().is_some(),
                "resources.{bound}.{resource}"
            );
        }
    }
    let ports = container["ports"].as_sequence().expect("ports");
    assert!(ports
        .iter()
        .any(|p| p["name"] == "metrics" && p["containerPort"] == 19704));

    // Mounts: the config from the generated ConfigMap (its rendered name), and the host's.
    let volumes = pod["volumes"].as_sequence().expect("volumes");
    let volume_of = |mount_path: &str| -> &Value {
        let mount = container["volumeMounts"]
            .as_sequence()
            .expect("mounts")
            .iter()
            .find(|m| m["mountPath"] == mount_path)
            .unwrap_or_else(|| panic!("nothing mounted at {mount_path}"));
        volumes
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap_or_else(|| panic!("no volume for {mount_path}"))
    };
    assert_eq!(
        volume_of("/etc/huatuo")["configMap"]["name"],
        config_map["metadata"]["name"]
    );
    for (mount, host) in [
        ("/sys", "/sys"),
        ("/var/lib/huatuo", "/var/lib/huatuo"),
        ("/etc/kubernetes/pki", "/etc/kubernetes/pki"),
        ("/run/netns", "/run/netns"),
        ("/var/lib/docker", "/var/lib/docker"),
    ] {
        assert_eq!(volume_of(mount)["hostPath"]["path"], host, "{mount}");
    }

    // The Service selects the agents; the ServiceMonitor selects the Service's metrics port.
    let pod_labels = &daemonset["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_mapping().expect("selector") {
        assert_eq!(&pod_labels[key.as_str().expect("key")], value);
    }
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .expect("matchLabels")
    {
        assert_eq!(
            &service["metadata"]["labels"][key.as_str().expect("key")],
            value
        );
    }
    let service_ports = service["spec"]["ports"].as_sequence().expect("ports");
    assert!(service_ports
        .iter()
        .any(|p| p["name"] == "metrics" && p["port"] == 19704));
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
}

/// The value of `key = "value"` in a config file's text.
fn conf_value(conf: &str, key: &str) -> String {
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix(key))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .next()
        .unwrap_or_else(|| panic!("{key} not set"))
}

#[test]
fn compose_stack_has_its_files_and_one_set_of_credentials() {
    if let Some(out) = tool(
        "docker-compose",
        &["-f", "deploy/docker-compose.yml", "config", "-q"],
        true,
    ) {
        assert!(
            out.status.success(),
            "docker-compose config: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let compose = yaml(&text("deploy/docker-compose.yml"));
    let services = &compose["services"];
    for service in ["huatuo", "elasticsearch", "prometheus", "grafana"] {
        assert!(services.get(service).is_some(), "no {service} service");
    }
    // Every file or directory mounted from beside the compose file exists.
    let deploy = repo().join("deploy");
    for (name, service) in services.as_mapping().expect("services") {
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let source = volume.as_str().expect("short volume syntax");
            if let Some(relative) = source.split(':').next().filter(|s| s.starts_with('.')) {
                assert!(
                    deploy.join(relative).exists(),
                    "{name:?} mounts {relative}, which does not exist"
                );
            }
        }
    }
    assert!(
        services["huatuo"]["volumes"]
            .as_sequence()
            .expect("volumes")
            .iter()
            .any(|v| v
                .as_str()
                .is_some_and(|v| v.ends_with(":/etc/huatuo/huatuo-bamai.conf:ro"))),
        "the agent's config is not mounted"
    );
    config_checks("deploy/huatuo-bamai.conf");

    let env = |service: &str, key: &str| -> String {
        services[service]["environment"]
            .as_sequence()
            .expect("environment list")
            .iter()
            .filter_map(|e| e.as_str()?.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
            .next()
            .unwrap_or_else(|| panic!("{service}: {key} not set"))
    };
    let password = env("elasticsearch", "ELASTIC_PASSWORD");
    let conf = text("deploy/huatuo-bamai.conf");
    assert_eq!(conf_value(&conf, "Username"), "elastic");
    assert_eq!(conf_value(&conf, "Password"), password);
    assert_eq!(conf_value(&conf, "Address"), "http://127.0.0.1:9200");

    let sources = yaml(&text("deploy/grafana/provisioning/datasources/huatuo.yml"));
    let datasources = sources["datasources"].as_sequence().expect("datasources");
    let es = datasources
        .iter()
        .find(|d| d["type"] == "elasticsearch")
        .expect("an Elasticsearch data source");
    assert_eq!(es["basicAuthUser"], "elastic");
    assert_eq!(
        es["secureJsonData"]["basicAuthPassword"].as_str(),
        Some(password.as_str())
    );
    assert_eq!(
        es["jsonData"]["index"],
        format!("{}*", conf_value(&conf, "Index"))
    );
    let prometheus = datasources
        .iter()
        .find(|d| d["type"] == "prometheus")
        .expect("a Prometheus data source");
    assert_eq!(prometheus["url"], "http://127.0.0.1:9090");
    let scrape = yaml(&text("deploy/prometheus/prometheus.yml"));
    assert_eq!(
        scrape["scrape_configs"][0]["static_configs"][0]["targets"][0],
        "127.0.0.1:19704"
    );
}

#[test]
fn docker_build_context_leaves_build_output_out() {
    let ignored = text(".dockerignore");
    for entry in ["target", "**/target", ".git", "huatuo-local"] {
        assert!(
            ignored.lines().any(|l| l.trim() == entry),
            "{entry} not ignored"
        );
    }
    let dockerfile = text("Dockerfile");
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let source = line.split_whitespace().nth(1).expect("COPY source");
        assert!(
            Path::new(&repo()).join(source).exists(),
            "Dockerfile copies {source}, which does not exist"
        );
    }
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/bin/huatuo\", \"run\""));
}

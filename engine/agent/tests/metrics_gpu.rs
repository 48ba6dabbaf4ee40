//! GPU families with the real binary over the fixture node: recorded readings
//! (`--gpu-recorded engine/agent/tests/fixtures/node/gpu`, `metax.json` and `nvidia.json`)
//! give exact `metax_gpu_*` and `nvidia_gpu_*` lines; the BlackList turns either off (the
//! default BlackList, HUATUO's, has `metax_gpu`); without recorded readings and without NVML
//! the sources are absent: no GPU family, no read error, the reason in `/status`, the agent
//! healthy.
//!
//! The readings are recorded, not read from hardware: no test here loads MetaX SML (not
//! bound) or talks to an NVIDIA GPU through NVML.

mod scrape_common;

use scrape_common::*;
use std::time::Duration;

fn config(blacklist: Option<&str>) -> String {
    let blacklist = blacklist
        .map(|list| format!("BlackList = {list}\n"))
        .unwrap_or_default();
    format!(
        "{blacklist}[Storage.ES]\n    Address = \"\"\n[Pod]\n    KubeletReadOnlyPort = 0\n    KubeletAuthorizedPort = 0\n"
    )
}

/// One exposition line of `family` with `labels` plus the common host/region, sorted.
fn line(family: &str, labels: &[(&str, &str)], value: &str) -> String {
    let mut all: Vec<(&str, &str)> = labels.to_vec();
    all.extend([("host", "fixture-host"), ("region", "")]);
    all.sort();
    let labels: Vec<String> = all.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("huatuo_bamai_{family}{{{}}} {value}", labels.join(","))
}

/// `base` labels plus `extra`.
fn with<'a>(base: &[(&'a str, &'a str)], extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    [base, extra].concat()
}

/// One line of `family` per `(ip, value)`, with `base` plus that `ip` label.
fn per_ip(family: &str, base: &[(&str, &str)], values: &[(&str, &str)]) -> Vec<String> {
    values
        .iter()
        .map(|(ip, value)| line(family, &with(base, &[("ip", ip)]), value))
        .collect()
}

/// GPU 0's families that both vendors have, `<vendor>_gpu_*`: the SDK and driver versions,
/// the info line (`gpu` plus `info`), the board power and the PCIe link speed, width, receive
/// and transmit rates.
fn board_lines(
    vendor: &str,
    (sdk, driver): (&str, &str),
    info: &[(&str, &str)],
    power: &str,
    [speed, width, receive, transmit]: [&str; 4],
) -> Vec<String> {
    let gpu = [("gpu", "0")];
    let family = |name: &str| format!("{vendor}_gpu_{name}");
    vec![
        line(&family("sdk_info"), &[("version", sdk)], "1"),
        line(&family("driver_info"), &[("version", driver)], "1"),
        line(&family("info"), &with(&gpu, info), "1"),
        line(&family("board_power_watts"), &gpu, power),
        line(&family("pcie_link_speed_gt_per_second"), &gpu, speed),
        line(&family("pcie_link_width_lanes"), &gpu, width),
        line(&family("pcie_receive_bytes_per_second"), &gpu, receive),
        line(&family("pcie_transmit_bytes_per_second"), &gpu, transmit),
    ]
}

/// Every metax_gpu family from `fixtures/node/gpu/metax.json`: one C500 with one die and one
/// MetaXLink.
fn metax_expected() -> Vec<String> {
    let link = [("gpu", "0"), ("metaxlink", "1")];
    let die = [("die", "0"), ("gpu", "0")];
    let mut lines = board_lines(
        "metax",
        ("2.14.6", "2.9.1"),
        &[
            ("model", "C500"),
            ("uuid", "GPU-5d0e8f1a-0c9b-4d27-a1f3-3b2f6a7c9e10"),
            ("bios_version", "1.22.3.0"),
            ("bdf", "0000:0f:00.0"),
            ("mode", "native"),
            ("die_count", "1"),
        ],
        "72.5",
        ["32", "16", "125000000", "3000000"],
    );
    for (family, value) in [
        ("link_speed_gt_per_second", "32"),
        ("link_width_lanes", "16"),
        ("receive_bytes_per_second", "1000000"),
        ("transmit_bytes_per_second", "2000000"),
        ("receive_bytes_total", "123456789"),
        ("transmit_bytes_total", "987654321"),
    ] {
        lines.push(line(&format!("metax_gpu_metaxlink_{family}"), &link, value));
    }
    for (error_type, count) in [("ce", "2"), ("ue", "0")] {
        lines.push(line(
            "metax_gpu_metaxlink_aer_errors_total",
            &with(&link, &[("error_type", error_type)]),
            count,
        ));
    }
    lines.extend([
        line("metax_gpu_status", &die, "0"),
        line("metax_gpu_temperature_celsius", &die, "45.5"),
        line("metax_gpu_memory_total_bytes", &die, "68719476736"),
        line("metax_gpu_memory_used_bytes", &die, "1073741824"),
        line(
            "metax_gpu_clocks_throttling",
            &with(&die, &[("reason", "power_brake")]),
            "1",
        ),
        line(
            "metax_gpu_dpm_performance_level",
            &with(&die, &[("ip", "xcore")]),
            "4",
        ),
        line("metax_gpu_ecc_memory_retired_pages_total", &die, "2"),
    ]);
    lines.extend(per_ip(
        "metax_gpu_utilization_percent",
        &die,
        &[("xcore", "87"), ("encoder", "0"), ("decoder", "3")],
    ));
    lines.extend(per_ip(
        "metax_gpu_clock_mhz",
        &die,
        &[
            ("xcore", "1600"),
            ("memory", "1800"),
            ("encoder", "1000"),
            ("decoder", "1000"),
        ],
    ));
    for (memory_type, error_type, count) in [
        ("sram", "ce", "1"),
        ("sram", "ue", "0"),
        ("dram", "ce", "5"),
        ("dram", "ue", "0"),
    ] {
        lines.push(line(
            "metax_gpu_ecc_memory_errors_total",
            &with(
                &die,
                &[("memory_type", memory_type), ("error_type", error_type)],
            ),
            count,
        ));
    }
    for counter in [
        "metaxlink_receive_bytes_total",
        "metaxlink_transmit_bytes_total",
        "metaxlink_aer_errors_total",
        "ecc_memory_errors_total",
        "ecc_memory_retired_pages_total",
    ] {
        lines.push(format!("# TYPE huatuo_bamai_metax_gpu_{counter} counter"));
    }
    lines.push("# TYPE huatuo_bamai_metax_gpu_temperature_celsius gauge".into());
    lines.push(
        "# HELP huatuo_bamai_metax_gpu_temperature_celsius GPU die temperature in degrees Celsius."
            .into(),
    );
    lines
}

/// Every nvidia_gpu family from `fixtures/node/gpu/nvidia.json`: one A100 (no dies, so no
/// `die` label), as the NVML mapping would give it.
fn nvidia_expected() -> Vec<String> {
    let gpu = [("gpu", "0")];
    let mut lines = board_lines(
        "nvidia",
        ("12.535.104.05", "535.104.05"),
        &[
            ("model", "NVIDIA A100-SXM4-80GB"),
            ("uuid", "GPU-8a3c2e41-7b55-4f0e-9d1a-2c6b0e4f7a93"),
            ("bios_version", "92.00.36.00.02"),
            ("bdf", "00000000:07:00.0"),
        ],
        "61.25",
        ["16", "16", "2048000", "3000"],
    );
    lines.extend([
        line("nvidia_gpu_temperature_celsius", &gpu, "33"),
        line("nvidia_gpu_memory_total_bytes", &gpu, "85899345920"),
        line("nvidia_gpu_memory_used_bytes", &gpu, "4194304"),
        line(
            "nvidia_gpu_clocks_throttling",
            &with(&gpu, &[("reason", "sw_power_cap")]),
            "1",
        ),
        line("nvidia_gpu_performance_state", &gpu, "0"),
        line("nvidia_gpu_ecc_memory_retired_pages_total", &gpu, "2"),
        "# TYPE huatuo_bamai_nvidia_gpu_ecc_memory_errors_total counter".into(),
    ]);
    lines.extend(per_ip(
        "nvidia_gpu_utilization_percent",
        &gpu,
        &[("gpu", "87"), ("memory", "40"), ("decoder", "0")],
    ));
    lines.extend(per_ip(
        "nvidia_gpu_clock_mhz",
        &gpu,
        &[
            ("graphics", "1410"),
            ("sm", "1410"),
            ("memory", "1593"),
            ("video", "1275"),
        ],
    ));
    for (error_type, count) in [("ce", "5"), ("ue", "0")] {
        lines.push(line(
            "nvidia_gpu_ecc_memory_errors_total",
            &with(&gpu, &[("memory_type", "dram"), ("error_type", error_type)]),
            count,
        ));
    }
    lines
}

/// Runs the agent on the fixture node (with the recorded GPU readings when `recorded`)
/// until every `wanted` line is there (or 20 s pass), then reads `/status` and `/healthz`.
struct Run {
    metrics: String,
    missing: Vec<String>,
    status: serde_json::Value,
    healthz: String,
}

fn run(tag: &str, blacklist: Option<&str>, recorded: bool, wanted: &[String]) -> Run {
    let config = TempConfig::new(&format!("metrics-gpu-{tag}"), &config(blacklist));
    let port = free_port();
    let recorded: &[(&str, &str)] = if recorded {
        &[("--gpu-recorded", "engine/agent/tests/fixtures/node/gpu")]
    } else {
        &[]
    };
    let _agent = start_fixture_agent(port, &config.path, "cgroup", 40, recorded);
    // The loadavg family is there once the first poll went through.
    let metrics = scrape_until(port, Duration::from_secs(20), |body| {
        body.contains("huatuo_bamai_loadavg_load1{") && missing_lines(body, wanted).is_empty()
    });
    let missing = missing_lines(&metrics, wanted);
    let status = get(port, "/status")
        .and_then(|body| serde_json::from_str(&body).ok())
        .unwrap_or_default();
    let healthz = get(port, "/healthz").unwrap_or_default();
    Run {
        metrics,
        missing,
        status,
        healthz,
    }
}

fn gpu_lines(metrics: &str) -> Vec<&str> {
    metrics
        .lines()
        .filter(|l| l.contains("metax_gpu_") || l.contains("nvidia_gpu_"))
        .collect()
}

fn rule_enabled(status: &serde_json::Value, name: &str) -> Option<bool> {
    status["rules"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == name)
        .and_then(|r| r["enabled"].as_bool())
}

#[test]
fn recorded_gpu_readings_give_every_family_exactly() {
    let mut wanted = metax_expected();
    wanted.extend(nvidia_expected());
    let run = run("recorded", Some(r#"["netdev_hw"]"#), true, &wanted);
    assert!(
        run.missing.is_empty(),
        "missing lines: {:#?}\n---\n{}",
        run.missing,
        run.metrics
    );
    // Exactly the expected series, no more (HELP/TYPE lines aside): 34 metax, 23 nvidia.
    let series: Vec<&str> = gpu_lines(&run.metrics)
        .into_iter()
        .filter(|l| !l.starts_with('#'))
        .collect();
    let expected_series = wanted.iter().filter(|l| !l.starts_with('#')).count();
    assert_eq!(series.len(), expected_series, "{series:#?}");
    // NVIDIA GPUs have no dies and no status.
    assert!(!run.metrics.contains("nvidia_gpu_status"));
    assert!(series
        .iter()
        .all(|l| !(l.contains("nvidia_gpu_") && l.contains("die="))));
    for source in ["gpu.metax", "gpu.nvidia"] {
        let stats = &run.status["sources"][source];
        assert_eq!(stats["errors"], 0, "{source}: {stats}");
        assert!(stats.get("unavailable").is_none(), "{source}: {stats}");
    }
    // The GPU families pass Prometheus' own linter without a single remark.
    let mut exposition = gpu_lines(&run.metrics).join("\n");
    exposition.push('\n');
    if promtool_available() {
        let (ok, report) = promtool_check(&exposition);
        assert!(ok && report.trim().is_empty(), "promtool: {report}");
    }
}

#[test]
fn blacklist_turns_gpu_families_off() {
    // HUATUO's default BlackList (no key in the file) has metax_gpu: NVIDIA stays on.
    let default = run("default-blacklist", None, true, &nvidia_expected());
    assert!(
        default.missing.is_empty(),
        "missing lines: {:#?}\n---\n{}",
        default.missing,
        default.metrics
    );
    assert!(!default.metrics.contains("huatuo_bamai_metax_gpu_"));
    assert_eq!(rule_enabled(&default.status, "metax_gpu"), Some(false));
    assert_eq!(rule_enabled(&default.status, "nvidia_gpu"), Some(true));

    let both = run(
        "both-blacklisted",
        Some(r#"["metax_gpu", "nvidia_gpu"]"#),
        true,
        &[],
    );
    assert!(
        both.metrics.contains("huatuo_bamai_loadavg_load1{"),
        "the agent serves other families:\n{}",
        both.metrics
    );
    assert!(gpu_lines(&both.metrics).is_empty(), "{}", both.metrics);
    assert_eq!(rule_enabled(&both.status, "metax_gpu"), Some(false));
    assert_eq!(rule_enabled(&both.status, "nvidia_gpu"), Some(false));
    // No rule reads the GPU sources, so they are not polled at all.
    assert!(both.status["sources"].get("gpu.metax").is_none());
    assert!(both.status["sources"].get("gpu.nvidia").is_none());
}

#[test]
fn without_readings_or_library_gpu_sources_are_absent_and_the_agent_healthy() {
    let run = run("absent", Some("[]"), false, &[]);
    assert_eq!(run.healthz, "ok\n");
    assert!(
        run.metrics.contains("huatuo_bamai_loadavg_load1{"),
        "{}",
        run.metrics
    );
    assert_eq!(rule_enabled(&run.status, "metax_gpu"), Some(true));
    let metax = &run.status["sources"]["gpu.metax"];
    assert_eq!(metax["errors"], 0, "{metax}");
    assert_eq!(metax["samples"], 0, "{metax}");
    assert!(
        metax["unavailable"]
            .as_str()
            .is_some_and(|r| r.contains("MetaX SML is not bound")),
        "{metax}"
    );
    assert!(!run.metrics.contains("huatuo_bamai_metax_gpu_"));
    let nvidia = &run.status["sources"]["gpu.nvidia"];
    assert_eq!(nvidia["errors"], 0, "{nvidia}");
    match nvidia["unavailable"].as_str() {
        Some(reason) => {
            assert!(reason.starts_with("NVML unavailable: "), "{nvidia}");
            assert!(!run.metrics.contains("huatuo_bamai_nvidia_gpu_"));
        }
        // A node with the NVIDIA driver: NVML loaded, so nvidia_gpu_* may be exported.
        None => println!("NVML is present on this node: gpu.nvidia is not absent"),
    }
}

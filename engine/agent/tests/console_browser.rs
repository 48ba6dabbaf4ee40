//! The web console in headless Chromium against the real agent over the fixture node: the
//! overview with its load time over 10 000 stored records (and again with 200 more containers
//! under every shipped metric rule), the timeline's live rows at 100 events a second within
//! its 500-row bound and its history paged through 1 000 records without gap or repeat, flame
//! graphs of stored profiles and their diff, the token prompt. The tests run one at a time
//! (they time pages). No page may log a script error. (`console_kernel` covers
//! the live kernel.)

#[allow(unused_imports)] // the shared harness re-exports helpers other tests use
mod api_agent;
mod browser;

use api_agent::{ApiAgent, Setup};
use browser::{ready, shoot, Browser};
use huatuo_storage::{Document, LocalFileSettings, LocalFileStore};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Records stored before the console opens.
const STORED: usize = 10_000;
/// Of which the paged tracer holds.
const PAGED: usize = 1_000;
/// The frame the stored profiles are busy in.
const STORED_FRAME: &str = "huatuo_console_stored_fn";
/// Held by each test: they time pages, so they do not run side by side.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Docker containers added to the fixture node.
const CONTAINERS: usize = 200;
/// Times the overview is loaded to measure it.
const OVERVIEW_LOADS: usize = 5;

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// The fixture node's cgroup tree copied under `dir`, with `CONTAINERS` more Docker
/// containers beside its own (each a copy of the fixture's Docker container's files).
fn cgroup_with_containers(dir: &Path) -> PathBuf {
    let root = dir.join("cgroup");
    copy_tree(
        &api_agent::repo().join("engine/agent/tests/fixtures/node/cgroup"),
        &root,
    );
    let model = root.join(format!("system.slice/docker-{}.scope", "b".repeat(64)));
    for n in 0..CONTAINERS {
        copy_tree(
            &model,
            &root.join(format!("system.slice/docker-{:064x}.scope", 0xc0_0000 + n)),
        );
    }
    root
}

/// Every shipped metric rule, in one text.
fn shipped_metric_rules() -> String {
    let dir = api_agent::repo().join("rules/metrics");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("rules/metrics")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "hto"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("rule file") + "\n")
        .collect()
}

/// Stored records an hour old: `PAGED` of tracer `paged`, profiles of `cpusys`, the rest
/// spread over a few tracers; returns the paged ids newest first and the profile ids.
fn store_history(dir: &std::path::Path) -> (Vec<String>, Vec<String>) {
    let store = LocalFileStore::new(LocalFileSettings {
        dir: dir.to_path_buf(),
        rotation_bytes: 1 << 20,
        max_rotation: 100,
    })
    .expect("store");
    let start = chrono::Local::now() - chrono::Duration::hours(1);
    let mut paged = Vec::new();
    let mut profiles = Vec::new();
    let others = ["dropwatch", "oom", "softirq", "netdev_events"];
    for n in 0..STORED {
        let tracer = if n % 10 == 3 && paged.len() < PAGED {
            "paged"
        } else if n % 1000 == 7 {
            "cpusys"
        } else {
            others[n % others.len()]
        };
        let time = start + chrono::Duration::milliseconds((n / 2) as i64 * 100);
        let id = format!("{tracer}{n:08}");
        let mut data = json!({ "n": n, "comm": "stored" });
        if tracer == "cpusys" {
            let busy = 50 + 40 * (profiles.len() % 2);
            data["folded_stacks"] = json!([
                format!("app;main;{STORED_FRAME} {busy}"),
                format!("app;main;idle {}", 100 - busy),
            ]);
            profiles.push(id.clone());
        }
        if tracer == "paged" {
            paged.push(id.clone());
        }
        let stamp = huatuo_storage::document::tracer_time(&time);
        store
            .write(&Document {
                tracer_name: tracer.into(),
                tracer_id: id.clone(),
                body: json!({
                    "hostname": "node-1", "region": "test", "tracer_name": tracer,
                    "tracer_id": id, "tracer_time": stamp, "time": stamp,
                    "tracer_type": "auto", "tracer_data": data,
                }),
            })
            .expect("write");
    }
    paged.reverse();
    profiles.reverse();
    (paged, profiles)
}

fn row_ids(browser: &mut Browser) -> Vec<String> {
    let ids =
        browser.eval("[...document.querySelectorAll('#timeline tbody tr')].map(r => r.dataset.id)");
    ids.as_array()
        .expect("ids")
        .iter()
        .map(|i| i.as_str().unwrap_or("").to_string())
        .collect()
}

/// Pages the timeline (filtered to `paged`) with "Older records" to its end; the ids in the
/// order they appeared, each page's new rows after the ones already shown.
fn page_history(browser: &mut Browser) -> Vec<String> {
    browser.eval(
        "document.querySelector('#timeline-filter [name=tracer]').value = '^paged$';\
         document.querySelector('#timeline-filter button').click(); true",
    );
    let mut seen: Vec<String> = Vec::new();
    for _ in 0..(PAGED / 100 + 2) {
        // The page's rows are in once the button comes back or says there is no more.
        browser
            .wait_for(
                "!document.querySelector('#older').disabled || /no older/.test(document.querySelector('#history-state').textContent)",
                Duration::from_secs(10),
            )
            .expect("a page of history");
        let ids = row_ids(browser);
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "the timeline shows a row twice");
        let new_from = seen.last().map_or(0, |last| {
            ids.iter().position(|i| i == last).map_or(0, |p| p + 1)
        });
        seen.extend(ids[new_from..].iter().cloned());
        let done = browser.eval("document.querySelector('#older').disabled");
        if done == true {
            break;
        }
        browser.eval("document.querySelector('#older').click(); true");
        browser
            .wait_for(
                "document.querySelector('#older').disabled",
                Duration::from_secs(1),
            )
            .unwrap_or_default();
    }
    seen
}

#[test]
fn the_console_shows_stored_history_and_profiles_and_asks_for_a_token() {
    if !browser::enabled("console_browser", api_agent::ci()) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // Ten rules firing every 100 ms: the live timeline takes 100 events a second.
    let extra: String = (1..10)
        .map(|i| {
            format!(
                "event {}_{i} {{\n    source proc.loadavg\n    every 100ms\n    cooldown none\n    \
                 limit 1000 per 1s\n    when load1 >= 0\n    emit load1\n}}\n",
                api_agent::TICK
            )
        })
        .collect();
    let agent = ApiAgent::start(Setup {
        tag: "console",
        every: "100ms",
        extra_rules: &extra,
        ..Setup::default()
    });
    let (paged, profiles) = store_history(&agent.dir().join("local"));
    agent.wait_healthy();
    let base = format!("http://{}", agent.addr);
    let mut browser = Browser::start("history");

    // Overview, with 10 000 records stored.
    browser.open(&format!("{base}/#overview"));
    ready(&mut browser, "overview");
    let load_ms = browser.eval("Number(document.body.dataset.readyMs)");
    println!("overview ready {load_ms} ms after navigation ({STORED} records stored)");
    assert!(
        load_ms.as_f64().is_some_and(|ms| ms < 1000.0),
        "overview took {load_ms} ms"
    );
    let asks = browser.eval("getComputedStyle(document.querySelector('#token-form')).display");
    assert_eq!(
        asks, "none",
        "a loopback console without tokens asks for one"
    );
    let rules = browser.eval("document.querySelector('#rules tbody').textContent");
    assert!(
        rules.as_str().unwrap_or("").contains(api_agent::TICK),
        "{rules}"
    );

    // Timeline: the tick rule's records arrive live; history pages through the paged tracer.
    browser.open(&format!("{base}/#timeline"));
    ready(&mut browser, "timeline");
    let stored_rows =
        browser.eval("document.querySelectorAll('#timeline tbody tr:not(.live)').length");
    assert_eq!(stored_rows, 100, "the first page of history");
    let live = browser.wait_for(
        &format!(
            "[...document.querySelectorAll('#timeline tr.live')].some(r => r.textContent.includes('{}'))",
            api_agent::TICK
        ),
        Duration::from_secs(5),
    );
    assert!(
        live.is_some(),
        "no live row of {} within 5 s",
        api_agent::TICK
    );
    // At 100 events a second the page fills to its row bound, keeps it, and answers at once.
    std::thread::sleep(Duration::from_secs(6));
    let rows = browser.eval("document.querySelectorAll('#timeline tbody tr').length");
    let live_rows = browser.eval("document.querySelectorAll('#timeline tbody tr.live').length");
    assert_eq!(rows, 500, "rows in the page after 6 s at 100 events/s");
    assert!(
        live_rows.as_u64().is_some_and(|r| r >= 400),
        "{live_rows} live rows after 6 s at 100 events/s"
    );
    let clicked = Instant::now();
    let opened = browser.eval(
        "document.querySelector('#timeline tbody tr').click();\
         const open = document.querySelector('#detail').open;\
         document.querySelector('#detail').close(); open",
    );
    let took = clicked.elapsed();
    println!("{live_rows} live rows after 6 s, {rows} in the page; a row opened in {took:?}");
    assert_eq!(opened, true, "the detail view did not open");
    assert!(
        took < Duration::from_millis(500),
        "opening a row took {took:?}"
    );
    let started = Instant::now();
    let seen = page_history(&mut browser);
    println!(
        "paged {} records in {:?} (the DOM keeps at most 500)",
        seen.len(),
        started.elapsed()
    );
    assert_eq!(seen.len(), PAGED, "gaps or repeats while paging");
    assert_eq!(seen, paged, "history out of order");
    shoot(&mut browser, "timeline-history");

    // A stored profile as a flame graph, then its diff against another.
    browser.open(&format!("{base}/#flame/{}", profiles[0]));
    ready(&mut browser, "flame");
    let svg = "document.querySelector('#flame-view iframe')?.contentDocument?.documentElement?.outerHTML ?? ''";
    let has_frame = browser.eval(&format!("({svg}).includes('{STORED_FRAME}')"));
    assert_eq!(
        has_frame, true,
        "the flame graph does not name {STORED_FRAME}"
    );
    browser.eval(&format!(
        "document.querySelector('input[name=base][value=\"{}\"]').click();\
         document.querySelector('#diff').click(); true",
        profiles[1]
    ));
    let diff = browser.wait_for(
        &format!("({svg}).includes(' vs ') && ({svg}).includes('{STORED_FRAME}')"),
        Duration::from_secs(10),
    );
    assert!(diff.is_some(), "no differential flame graph");
    shoot(&mut browser, "flame");
    browser.eval("1");
    assert!(
        browser.errors.is_empty(),
        "script errors: {:?}",
        browser.errors
    );

    // With a token configured, the console asks for it and then works.
    let token = "console-test-token-0123456789";
    let token_dir = agent.dir().join("token");
    std::fs::create_dir_all(&token_dir).expect("token dir");
    let token_file = token_dir.join("tokens");
    std::fs::write(&token_file, format!("{token}\n")).expect("token file");
    let config = format!(
        "[APIServer]\n    TokenFile = \"{}\"\n",
        token_file.display()
    );
    let locked = ApiAgent::start_healthy(Setup {
        tag: "console-token",
        config: &config,
        ..Setup::default()
    });
    browser.open(&format!("http://{}/#overview", locked.addr));
    browser
        .wait_for(
            "getComputedStyle(document.querySelector('#token-form')).display !== 'none'",
            Duration::from_secs(10),
        )
        .expect("the console asks for a token");
    shoot(&mut browser, "token");
    browser.eval(&format!(
        "document.querySelector('#token-input').value = '{token}';\
         document.querySelector('#token-form button').click(); true"
    ));
    browser
        .wait_for(
            &format!(
                "document.querySelector('#rules tbody').textContent.includes('{}')",
                api_agent::TICK
            ),
            Duration::from_secs(10),
        )
        .expect("the overview with the token");
    assert_eq!(
        browser.eval("sessionStorage.getItem('huatuo-token')"),
        token
    );
    let asks = browser.eval("getComputedStyle(document.querySelector('#token-form')).display");
    assert_eq!(asks, "none", "the token prompt stays after a good token");
    browser.eval("1");
    // The 401s that made the console ask are the only errors the page logged.
    let unexpected: Vec<&String> = browser
        .errors
        .iter()
        .filter(|e| !e.contains("401"))
        .collect();
    assert!(unexpected.is_empty(), "script errors: {unexpected:?}");
}

#[test]
fn the_overview_loads_fast_with_200_containers_and_10_000_records() {
    if !browser::enabled("console_browser", api_agent::ci()) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let node = tempfile::tempdir().expect("temp dir");
    let cgroup = cgroup_with_containers(node.path());
    let agent = ApiAgent::start(Setup {
        tag: "console-containers",
        extra_rules: &shipped_metric_rules(),
        cgroup_root: Some(&cgroup),
        ..Setup::default()
    });
    store_history(&agent.dir().join("local"));
    agent.wait_healthy();
    let base = format!("http://{}", agent.addr);
    let mut browser = Browser::start("containers");
    // Every container's series in /metrics before the overview is timed.
    let known_containers = || {
        let metrics =
            api_agent::get(agent.addr, "/metrics", &[]).map_or_else(String::new, |r| r.body);
        metrics
            .split("container_id=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect::<std::collections::HashSet<&str>>()
            .len()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let containers = loop {
        let known = known_containers();
        if known > CONTAINERS {
            break known;
        }
        assert!(
            Instant::now() < deadline,
            "{known} containers in /metrics, not the {CONTAINERS} added\nlog:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut loads = Vec::new();
    for _ in 0..OVERVIEW_LOADS {
        browser.open(&format!("{base}/#overview"));
        ready(&mut browser, "overview");
        let ms = browser.eval("Number(document.body.dataset.readyMs)");
        loads.push(ms.as_f64().expect("readyMs"));
    }
    let metrics_bytes = api_agent::get(agent.addr, "/metrics", &[]).map_or(0, |r| r.body.len());
    let rules = browser.eval("document.querySelectorAll('#rules tbody tr').length");
    println!(
        "overview ready after navigation: {loads:?} ms ({STORED} records stored, {containers} \
         containers, {rules} rules, /metrics {metrics_bytes} bytes)"
    );
    assert!(
        rules.as_u64().is_some_and(|n| n > 10),
        "{rules} rules in the overview"
    );
    loads.sort_by(f64::total_cmp);
    let median = loads[loads.len() / 2];
    assert!(median < 1000.0, "overview took {median} ms (median)");
    browser.eval("1");
    assert!(
        browser.errors.is_empty(),
        "script errors: {:?}",
        browser.errors
    );
}

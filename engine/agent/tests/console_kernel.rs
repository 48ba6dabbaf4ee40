//! The web console in headless Chromium on the live kernel (root and BPF): the overview lists
//! every template with the variant each program attached, a packet drop the test causes shows
//! in the live timeline within 2 s, the latency page draws the run-queue histogram of the host
//! and of a container chosen in its list, the profiles page draws the continuous profile of
//! that container's busy program over a time range and its diff against an earlier range, and
//! a CPU profile started from the operations form ends as a flame graph naming the busy
//! function. No page may log a script error.

mod browser;
mod kernel_agent;

use browser::{ready, shoot, Browser};
use serde_json::Value as Json;
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

#[test]
fn the_console_on_the_live_kernel_shows_templates_a_drop_and_a_profile() {
    if !kernel_agent::kernel_tests_enabled("console_kernel", "root and BPF")
        || !browser::enabled("console_kernel", kernel_agent::ci())
    {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let Some(busy) = kernel_agent::build_busy_c(work.path()) else {
        return;
    };
    // A container (a Docker-style cgroup) whose one process spins in huatuo_c_hot_loop.
    let container = kernel_agent::DockerContainer::start(0xc0, std::process::Command::new(busy));
    let since = chrono::Utc::now().timestamp();
    let agent = kernel_agent::Agent::start(kernel_agent::Setup {
        tag: "console-kernel",
        rules: "rules",
        config: "[ContinuousProfiling]\n    Enable = true\n    Interval = 2\n    CPUBudget = 50\n",
        args: &["--run-for", "300"],
    });
    let status: Json = kernel_agent::wait_until(Duration::from_secs(90), || {
        agent
            .status()
            .filter(|s| s["templates"].as_array().is_some_and(|t| !t.is_empty()))
    })
    .unwrap_or_else(|| panic!("no templates in /status\nlog:\n{}", agent.log()));
    let base = format!("http://{}", agent.addr());
    let mut browser = Browser::start("kernel");

    // Every template, with the variant each of its programs attached.
    browser.open(&format!("{base}/#overview"));
    ready(&mut browser, "overview");
    let templates = status["templates"].as_array().expect("templates");
    for template in templates {
        let name = template["name"].as_str().expect("name");
        let row = browser.eval(&format!(
            "document.querySelector('#templates tr[data-template=\"{name}\"]')?.textContent ?? ''"
        ));
        let row = row.as_str().unwrap_or("");
        assert!(!row.is_empty(), "template {name} is not listed");
        for program in template["programs"].as_array().into_iter().flatten() {
            if let Some(at) = program["attached"].as_u64() {
                let variant = &program["tried"][at as usize];
                let text = format!(
                    "{} {}",
                    variant["kind"].as_str().unwrap_or(""),
                    variant["target"].as_str().unwrap_or("")
                );
                assert!(
                    row.contains(&text),
                    "template {name}: `{text}` missing from `{row}`"
                );
            }
        }
    }
    println!(
        "overview lists {} templates with their variants",
        templates.len()
    );
    shoot(&mut browser, "overview");

    // A SYN to a closed port is dropped; its record shows in the live timeline within 2 s.
    let port = kernel_agent::free_port();
    browser.open(&format!("{base}/#timeline"));
    ready(&mut browser, "timeline");
    browser.eval(&format!(
        "document.querySelector('#timeline-filter [name=tracer]').value = '^dropwatch$';\
         document.querySelector('#timeline-filter [name=text]').value = '\"dport\":{port}\\\\b';\
         document.querySelector('#timeline-filter button').click(); true"
    ));
    browser
        .wait_for(
            "document.querySelector('#live-state').textContent === 'live'",
            Duration::from_secs(10),
        )
        .expect("the live stream connects");
    let caused = Instant::now();
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
    let shown = browser.wait_for(
        "document.querySelector('#timeline tr.live') !== null",
        Duration::from_secs(10),
    );
    let took = caused.elapsed();
    println!("dropwatch record for port {port} shown {took:?} after the drop");
    assert!(
        shown.is_some(),
        "the drop never reached the timeline (stored for the port: {:?})\nlog:\n{}",
        agent
            .records("dropwatch")
            .iter()
            .filter(|r| r["dport"] == port)
            .collect::<Vec<_>>(),
        agent.log()
    );
    assert!(
        took <= Duration::from_secs(2),
        "the drop took {took:?} to show"
    );
    browser.eval(
        "document.querySelector('#timeline-filter [name=text]').value = '';\
                  document.querySelector('#timeline-filter [name=tracer]').value = '';\
                  document.querySelector('#timeline-filter button').click(); true",
    );
    browser
        .wait_for(
            "document.querySelectorAll('#timeline tbody tr').length > 0",
            Duration::from_secs(10),
        )
        .expect("the unfiltered timeline");
    shoot(&mut browser, "timeline");

    // Latency histograms of the host.
    browser.open(&format!("{base}/#latency"));
    ready(&mut browser, "latency");
    browser
        .wait_for(
            "document.querySelector('#latency-charts').textContent.includes('runqlat')",
            Duration::from_secs(15),
        )
        .expect("the run queue latency histogram");
    // The container is in the list by its short id; chosen, its own histogram is drawn.
    let short = &container.id[..12];
    browser
        .wait_for(
            &format!(
                "document.querySelector('#latency-container option[value=\"{}\"]')?.textContent.includes('{short}')",
                container.id
            ),
            Duration::from_secs(30),
        )
        .unwrap_or_else(|| {
            panic!(
                "the container is not in the latency list: {}",
                browser.eval("document.querySelector('#latency-container').textContent")
            )
        });
    browser.eval(&format!(
        "const s = document.querySelector('#latency-container'); s.value = '{}';\
         s.dispatchEvent(new Event('change')); true",
        container.id
    ));
    browser
        .wait_for(
            &format!(
                "[...document.querySelectorAll('#latency-charts figcaption')].some(c => /^runqlat.*container.*{short}/.test(c.textContent))"
            ),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| {
            panic!(
                "no run queue histogram of the container: {}",
                browser.eval("[...document.querySelectorAll('#latency-charts figcaption')].map(c => c.textContent).join('; ')")
            )
        });
    shoot(&mut browser, "latency");

    // Profiles: the container's continuous CPU profile since the test began names its busy
    // function; the diff against the range before the agent started renders too.
    kernel_agent::wait_until(Duration::from_secs(60), || {
        agent
            .get(&format!(
                "/v1/profiles?container={}&format=folded",
                container.id
            ))
            .filter(|f| f.contains("huatuo_c_hot_loop"))
    })
    .unwrap_or_else(|| {
        panic!(
            "the container's profile never named its busy function\nlog:\n{}",
            agent.log()
        )
    });
    browser.open(&format!("{base}/#profiles"));
    ready(&mut browser, "profiles");
    let view = "document.querySelector('#cp-view iframe')?.contentDocument?.documentElement?.outerHTML ?? ''";
    browser.eval(&format!(
        "const f = document.querySelector('#cp-form');\
         f.elements.container.value = '{id}';\
         f.elements.since.value = localInput(new Date({since} * 1000));\
         f.elements.until.value = localInput(new Date(Date.now() + 60000));\
         f.elements.base_since.value = localInput(new Date(({since} - 600) * 1000));\
         f.elements.base_until.value = localInput(new Date(({since} - 300) * 1000));\
         f.requestSubmit(); true",
        id = container.id
    ));
    browser
        .wait_for(
            &format!(
                "({view}).includes('huatuo_c_hot_loop') && ({view}).includes('container {short}')"
            ),
            Duration::from_secs(15),
        )
        .unwrap_or_else(|| {
            panic!(
                "the range's flame graph does not name huatuo_c_hot_loop (error: {})",
                browser.eval("document.querySelector('#error').textContent")
            )
        });
    shoot(&mut browser, "profiles");
    browser.eval("document.querySelector('#cp-diff').click(); true");
    browser
        .wait_for(
            &format!("({view}).includes(' vs ') && ({view}).includes('huatuo_c_hot_loop')"),
            Duration::from_secs(15),
        )
        .unwrap_or_else(|| {
            panic!(
                "no differential flame graph (error: {})",
                browser.eval("document.querySelector('#error').textContent")
            )
        });
    shoot(&mut browser, "profiles-diff");
    drop(container);

    // A CPU profile started from the form ends as a flame graph naming the busy function.
    let spinner = kernel_agent::Busy::start();
    browser.open(&format!("{base}/#operations"));
    ready(&mut browser, "operations");
    browser.eval(
        "document.querySelector('#op-form [name=seconds]').value = '3';\
         document.querySelector('#op-form button').click(); true",
    );
    let drawn = browser.wait_for(
        "(document.querySelector('#op-result iframe')?.contentDocument?.documentElement?.outerHTML ?? '').includes('huatuo_test_busy_spin')",
        // Symbolizing this debug test binary takes seconds, more on a loaded machine.
        Duration::from_secs(90),
    );
    drop(spinner);
    assert!(
        drawn.is_some(),
        "no flame graph naming the busy function (operations: {}; error: {})\nlog:\n{}",
        browser.eval("document.querySelector('#operations tbody').textContent"),
        browser.eval("document.querySelector('#error').textContent"),
        agent.log()
    );
    println!("the operation's flame graph was drawn {drawn:?} after Start");
    shoot(&mut browser, "operations");
    browser.eval("1");
    assert!(
        browser.errors.is_empty(),
        "script errors: {:?}",
        browser.errors
    );
}

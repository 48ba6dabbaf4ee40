//! The web console in headless Chromium on the live kernel (root and BPF): the overview lists
//! every template with the variant each program attached, a packet drop the test causes shows
//! in the live timeline within 2 s, the latency page draws the run-queue histogram, and a CPU
//! profile started from the operations form ends as a flame graph naming the busy function.
//! No page may log a script error.

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
    let agent = kernel_agent::Agent::start(kernel_agent::Setup {
        tag: "console-kernel",
        rules: "rules",
        config: "",
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
    shoot(&mut browser, "latency");

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

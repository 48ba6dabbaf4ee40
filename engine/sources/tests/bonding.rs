//! `proc.bonding` on hand-written `/proc/net/bonding` fixtures (see fixtures/bonding/README.md).

use huatuo_dsl::source::Reader;
use huatuo_dsl::value::{Sample, Value};
use huatuo_sources::bonding::{self, BondingReader, MAX_CONTENT_BYTES};
use std::path::{Path, PathBuf};

const NOW: i64 = 1_700_000_000_000_000_000;

fn proc_of(scenario: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bonding")
        .join(scenario)
        .join("proc")
}

fn read(scenario: &str) -> Vec<Sample> {
    let mut reader = BondingReader::new(&proc_of(scenario));
    let samples = reader.read(NOW).expect("fixture reads");
    let schema = reader.schema();
    for s in &samples {
        assert_eq!(s.source, "proc.bonding");
        assert_eq!(s.time_ns, NOW);
        for field in schema.fields.iter() {
            assert!(s.fields.contains_key(&field.name), "missing {}", field.name);
        }
        assert_eq!(
            s.fields.len(),
            schema.fields.len(),
            "fields not in the schema"
        );
    }
    samples
}

fn get<'a>(sample: &'a Sample, field: &str) -> &'a Value {
    sample
        .fields
        .get(field)
        .unwrap_or_else(|| panic!("{field} missing"))
}

fn int(sample: &Sample, field: &str) -> i64 {
    match get(sample, field) {
        Value::Int(v) => *v,
        other => panic!("{field}: {other:?}"),
    }
}

fn text<'a>(sample: &'a Sample, field: &str) -> &'a str {
    get(sample, field)
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string"))
}

#[test]
fn lacp_bond_fields_are_exact() {
    let samples = read("steady");
    let names: Vec<&str> = samples
        .iter()
        .map(|s| s.labels["device"].as_str())
        .collect();
    assert_eq!(names, ["bond0", "bond1"]);
    let bond0 = &samples[0];
    assert_eq!(text(bond0, "mode"), "IEEE 802.3ad Dynamic link aggregation");
    assert_eq!(get(bond0, "lacp_mode"), &Value::Bool(true));
    assert_eq!(text(bond0, "mii_status"), "up");
    assert_eq!(int(bond0, "aggregator_id"), 1);
    assert_eq!(int(bond0, "ports"), 2);
    assert_eq!(text(bond0, "partner_mac"), "00:00:5e:00:01:01");
    assert_eq!(int(bond0, "slaves"), 2);
    assert_eq!(int(bond0, "slaves_up"), 2);
    assert_eq!(int(bond0, "link_failures"), 0);
    assert_eq!(int(bond0, "churned"), 0);
    assert_eq!(
        text(bond0, "lacp_state"),
        "aggregator=1 ports=2 partner=00:00:5e:00:01:01\
         ; eth0 mii=up aggregator=1 churn=none/none churned=0/0 failures=0 port_state=63/63\
         ; eth1 mii=up aggregator=1 churn=none/none churned=0/0 failures=0 port_state=63/63"
    );
    let file = std::fs::read_to_string(proc_of("steady").join("net/bonding/bond0")).unwrap();
    assert_eq!(
        text(bond0, "content"),
        format!("/proc/net/bonding/bond0\n{file}")
    );
    assert_eq!(int(bond0, "content_truncated"), 0);
}

#[test]
fn active_backup_bond_is_not_lacp() {
    let samples = read("steady");
    let bond1 = &samples[1];
    assert_eq!(text(bond1, "mode"), "fault-tolerance (active-backup)");
    assert_eq!(get(bond1, "lacp_mode"), &Value::Bool(false));
    assert_eq!(int(bond1, "aggregator_id"), 0);
    assert_eq!(int(bond1, "ports"), 0);
    assert_eq!(text(bond1, "partner_mac"), "");
    assert_eq!(int(bond1, "slaves"), 2);
    assert_eq!(int(bond1, "slaves_up"), 1);
    assert_eq!(int(bond1, "link_failures"), 4);
    assert_eq!(
        text(bond1, "lacp_state"),
        "aggregator=- ports=- partner=-\
         ; eth2 mii=up aggregator=- churn=/ churned=0/0 failures=3 port_state=-/-\
         ; eth3 mii=down aggregator=- churn=/ churned=0/0 failures=1 port_state=-/-"
    );
}

#[test]
fn a_slave_flap_changes_the_lacp_state() {
    let steady = read("steady");
    let flap = read("flap");
    assert_eq!(flap.len(), 1);
    let (before, after) = (&steady[0], &flap[0]);
    assert_ne!(text(before, "lacp_state"), text(after, "lacp_state"));
    assert_eq!(
        text(after, "lacp_state"),
        "aggregator=1 ports=1 partner=00:00:5e:00:01:01\
         ; eth0 mii=up aggregator=1 churn=none/none churned=0/0 failures=0 port_state=63/63\
         ; eth1 mii=down aggregator=1 churn=churned/churned churned=1/1 failures=1 port_state=69/2"
    );
    assert_eq!(int(after, "ports"), 1);
    assert_eq!(int(after, "slaves_up"), 1);
    assert_eq!(int(after, "link_failures"), 1);
    assert_eq!(int(after, "churned"), 2);
}

#[test]
fn lines_that_do_not_matter_to_lacp_leave_the_state_alone() {
    let file = std::fs::read_to_string(proc_of("steady").join("net/bonding/bond0")).unwrap();
    let speed_changed = file.replacen("Speed: 25000 Mbps", "Speed: 10000 Mbps", 1);
    let a = bonding::parse_bond(&file).unwrap();
    let b = bonding::parse_bond(&speed_changed).unwrap();
    assert_eq!(a.lacp_state(), b.lacp_state());
}

#[test]
fn huatuo_s_example_from_a_4_18_kernel_parses() {
    // The bond4 part of the `lacp` record in HUATUO's event reference: single-space indented PDU details and the
    // `Slave active` / `Slave sm_vars` lines of that kernel.
    let text = "Ethernet Channel Bonding Driver: v4.18.0 (Apr 7, 2025)\n\nBonding Mode: IEEE 802.3ad Dynamic link aggregation\nMII Status: up\n\n802.3ad info\nLACP rate: fast\nActive Aggregator Info:\n\tAggregator ID: 1\n\tNumber of ports: 2\n\tActor Key: 21\n\tPartner Key: 50013\n\tPartner Mac Address: 00:00:5e:00:01:01\n\nSlave Interface: eth1\nMII Status: up\nLink Failure Count: 17\nSlave active: 0\nSlave sm_vars: 0x172\nAggregator ID: 1\nAggregator active: 1\nActor Churn State: monitoring\nPartner Churn State: monitoring\nActor Churned Count: 2\nPartner Churned Count: 2\ndetails actor lacp pdu:\n system priority: 65535\n port state: 15\ndetails partner lacp pdu:\n system priority: 200\n port state: 31\n";
    let bond = bonding::parse_bond(text).unwrap();
    assert!(bond.is_lacp());
    assert_eq!(
        bond.lacp_state(),
        "aggregator=1 ports=2 partner=00:00:5e:00:01:01\
         ; eth1 mii=up aggregator=1 churn=monitoring/monitoring churned=2/2 failures=17 port_state=15/31"
    );
}

#[test]
fn missing_bonding_directory_means_no_bonds() {
    let mut reader = BondingReader::new(Path::new("/nonexistent/huatuo-test-proc"));
    assert_eq!(reader.read(NOW).unwrap(), Vec::<Sample>::new());
}

#[test]
fn a_bad_number_names_the_file_and_line() {
    let mut reader = BondingReader::new(&proc_of("broken"));
    let err = reader.read(NOW).unwrap_err();
    assert_eq!(err.source_name, "proc.bonding");
    assert!(err.path.ends_with("net/bonding/bond9"), "{}", err.path);
    assert_eq!(
        err.message,
        "line 29: Link Failure Count: expected a number, found \"many\""
    );
}

#[test]
fn content_is_cut_at_64_kib_on_a_char_boundary_and_counted() {
    let long = "é".repeat(MAX_CONTENT_BYTES);
    let (content, cut) = bonding::bounded_content("/proc/net/bonding/bond0", &long);
    assert!(content.len() <= MAX_CONTENT_BYTES);
    assert!(content.len() > MAX_CONTENT_BYTES - 4);
    assert!(content.starts_with("/proc/net/bonding/bond0\né"));
    let full = "/proc/net/bonding/bond0\n".len() + long.len();
    assert_eq!(content.len() + cut, full);
    let sample = bonding::sample("bond0", "/proc/net/bonding/bond0", &long, NOW).unwrap();
    assert_eq!(int(&sample, "content_truncated"), cut as i64);
}

#[test]
fn registered_with_the_host_readers() {
    let roots = huatuo_sources::Roots {
        proc: proc_of("steady"),
        sys: PathBuf::from("/nonexistent"),
    };
    let mut readers = huatuo_sources::host_readers(&roots, &Default::default());
    let reader = readers
        .iter_mut()
        .find(|r| r.schema().name == "proc.bonding")
        .expect("proc.bonding is a host reader");
    assert_eq!(reader.read(NOW).unwrap().len(), 2);
    assert!(huatuo_sources::schemas()
        .iter()
        .any(|s| s.name == "proc.bonding"));
}

//! The kmsg stream: record parsing, fixture replay and the live device.

use huatuo_dsl::value::Value;
use huatuo_sources::kmsg;
use huatuo_sources::stream::Next;
use std::path::Path;
use std::time::Duration;

#[test]
fn record_fields() {
    let r = kmsg::parse_record("6,1520,93871234,-;virtio_net virtio2 eth0: link up\n SUBSYSTEM=x")
        .unwrap();
    assert_eq!(r.priority, 6);
    assert_eq!(r.facility, 0);
    assert_eq!(r.seq, 1520);
    assert_eq!(r.timestamp_ns, 93_871_234_000);
    assert_eq!(r.message, "virtio_net virtio2 eth0: link up");
    let user = kmsg::parse_record("14,3,5,-;hello").unwrap();
    assert_eq!((user.priority, user.facility), (6, 1));
}

#[test]
fn escaped_bytes_are_restored() {
    let r = kmsg::parse_record("3,1,2,c;task kworker\\x2f1:2 blocked").unwrap();
    assert_eq!(r.message, "task kworker/1:2 blocked");
}

#[test]
fn broken_records_are_errors() {
    for bad in ["", "no separator", "x,1,2,-;m", "6,1;m", "6,-1,2,-;m"] {
        assert!(kmsg::parse_record(bad).is_err(), "{bad:?}");
    }
    let err = kmsg::parse_file("6,1,2,-;ok\ngarbage\n").unwrap_err();
    assert!(err.starts_with("line 2:"), "{err}");
}

#[test]
fn fixture_file_replays_as_a_stream() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kmsg/kmsg.txt");
    let stream = kmsg::spawn(&path, true).unwrap();
    let mut samples = Vec::new();
    while let Some(s) = stream.recv_timeout(Duration::from_secs(5)) {
        samples.push(s);
    }
    assert_eq!(samples.len(), 5, "continuation lines are not records");
    let lockup = &samples[3];
    assert_eq!(lockup.source, "kmsg");
    assert_eq!(lockup.fields["priority"], Value::Int(0));
    assert_eq!(lockup.fields["seq"], Value::Int(1521));
    assert_eq!(lockup.fields["timestamp"], Value::Int(120_000_500_000));
    assert_eq!(
        lockup.fields["message"],
        Value::Str("watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [stress:4242]".into())
    );
}

#[test]
fn a_replayed_recording_ends_and_says_so_at_once() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kmsg/kmsg.txt");
    let stream = kmsg::spawn(&path, true).unwrap();
    let mut samples = 0;
    loop {
        match stream.next(Duration::from_secs(5)) {
            Next::Sample(_) => samples += 1,
            Next::Waiting => panic!("a replay that ended must not look quiet"),
            Next::Ended => break,
        }
    }
    assert_eq!(samples, 5);
    // Asked again, an ended stream answers without waiting out the timeout.
    let asked = std::time::Instant::now();
    assert!(matches!(stream.next(Duration::from_secs(5)), Next::Ended));
    assert!(asked.elapsed() < Duration::from_secs(1));
    assert_eq!(stream.error(), None);
}

#[test]
fn missing_file_names_it() {
    let err = kmsg::spawn(Path::new("/nonexistent/kmsg"), true)
        .err()
        .unwrap();
    assert_eq!(err.path, "/nonexistent/kmsg");
}

#[test]
fn live_dev_kmsg_from_start() {
    let path = Path::new("/dev/kmsg");
    let readable = std::fs::File::open(path).is_ok();
    if !readable && std::env::var("CI").as_deref() != Ok("true") {
        println!("skipping: /dev/kmsg is not readable (needs root or CAP_SYSLOG)");
        return;
    }
    let stream = kmsg::spawn(path, true).expect("/dev/kmsg opens");
    let first = stream
        .recv_timeout(Duration::from_secs(5))
        .expect("the kernel log has records");
    assert!(matches!(first.fields["seq"], Value::Int(_)));
    assert!(matches!(first.fields["message"], Value::Str(_)));
}

#[test]
fn live_dev_kmsg_follows_new_records() {
    let path = Path::new("/dev/kmsg");
    let writable = std::fs::OpenOptions::new().write(true).open(path).is_ok();
    if !writable && std::env::var("CI").as_deref() != Ok("true") {
        println!("skipping: writing /dev/kmsg needs root");
        return;
    }
    let stream = kmsg::spawn(path, false).expect("/dev/kmsg opens");
    let marker = format!("huatuo-sources kmsg test {}", std::process::id());
    // Priority 4 (warning), facility 1 (user) as `<12>` asks.
    std::fs::write(path, format!("<12>{marker}\n")).expect("write /dev/kmsg");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let Some(sample) = stream.recv_timeout(Duration::from_millis(500)) else {
            continue;
        };
        if sample.fields["message"] == Value::Str(marker.clone()) {
            assert_eq!(sample.fields["priority"], Value::Int(4));
            assert_eq!(sample.fields["facility"], Value::Int(1));
            return;
        }
    }
    panic!("the record written to /dev/kmsg was not streamed");
}

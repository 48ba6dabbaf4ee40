//! bpf.softlockup records: a record laid out as softlockup.bpf.c writes it (struct
//! lockup_event) decodes into the fields the `softlockup` rule emits. The kprobe/fentry on
//! add_taint cannot attach on the machine these tests run on (kernel_variants shows the
//! programs load), so the layout is checked here with hand-built records.

use huatuo_bpf::decode::EventDecoder;
use huatuo_bpf::{embedded, NoContainers, TemplateSchema};
use huatuo_dsl::value::Value;

fn schema() -> TemplateSchema {
    let template = embedded::find("softlockup").expect("softlockup template");
    TemplateSchema::parse("softlockup", template.schema).expect("schema")
}

/// The address of a kernel text symbol from /proc/kallsyms (None when hidden or absent).
fn ksym(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/kallsyms").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        let addr = u64::from_str_radix(parts.next()?, 16).ok()?;
        let _kind = parts.next()?;
        (parts.next()? == name && addr != 0).then_some(addr)
    })
}

#[test]
fn a_record_decodes_into_the_rule_s_fields() {
    let schema = schema();
    let (offsets, size) = schema.event_offsets().expect("layout");
    // u64 stack[64]; u32 cpu, pid, tid, stack_len; char comm[16]
    assert_eq!(size, 64 * 8 + 4 * 4 + 16);
    let members = &schema.event.as_ref().expect("event").fields;
    let offset = |name: &str| offsets[members.iter().position(|f| f.name == name).expect(name)];
    assert_eq!(
        (
            offset("stack"),
            offset("cpu"),
            offset("pid"),
            offset("tid"),
            offset("stack_len"),
            offset("comm")
        ),
        (0, 512, 516, 520, 524, 528)
    );
    let add_taint = ksym("add_taint");
    let timer_fn = ksym("watchdog_timer_fn");
    let frames = [
        add_taint.unwrap_or(0xffff_ffff_8100_0000),
        timer_fn.map_or(0xffff_ffff_8100_1000, |a| a + 0x1e5),
        // beyond stack_len: not part of the stack
        0xffff_ffff_8100_2000,
    ];
    let mut record = vec![0u8; size];
    for (i, addr) in frames.iter().enumerate() {
        record[i * 8..i * 8 + 8].copy_from_slice(&addr.to_ne_bytes());
    }
    let mut put = |name: &str, v: u32| {
        let at = offset(name);
        record[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    };
    put("cpu", 3);
    put("pid", 4321);
    put("tid", 4325);
    put("stack_len", 2);
    let comm = b"spin-worker";
    record[offset("comm")..offset("comm") + comm.len()].copy_from_slice(comm);

    let decoder = EventDecoder::new(&schema).expect("decoder");
    let sample = decoder.decode(&record, 7, &NoContainers).expect("decode");
    assert_eq!(sample.source, "bpf.softlockup");
    assert_eq!(sample.time_ns, 7);
    assert!(sample.labels.is_empty(), "{sample:#?}");
    assert_eq!(sample.fields["cpu"], Value::Int(3));
    assert_eq!(sample.fields["pid"], Value::Int(4321));
    assert_eq!(sample.fields["tid"], Value::Int(4325));
    assert_eq!(sample.fields["comm"], Value::Str("spin-worker".into()));
    // stack_len is the stack's length, not a field of its own
    assert!(!sample.fields.contains_key("stack_len"), "{sample:#?}");
    let Value::List(stack) = &sample.fields["stack"] else {
        panic!("stack is a list: {sample:#?}");
    };
    assert_eq!(stack.len(), 2, "{stack:?}");
    if let (Some(_), Some(_)) = (add_taint, timer_fn) {
        assert_eq!(
            stack,
            &[
                Value::Str("add_taint+0x0".into()),
                Value::Str("watchdog_timer_fn+0x1e5".into())
            ]
        );
    }
    // Every field the schema publishes is in the sample, so the rule's emits resolve.
    for field in &schema.source.fields {
        assert!(
            sample.fields.contains_key(&field.name),
            "{} missing: {sample:#?}",
            field.name
        );
    }
}

#[test]
fn the_c_struct_has_the_schema_s_members_in_order() {
    // Read the struct from the source so schema.toml and softlockup.bpf.c cannot drift apart.
    let source = include_str!("../softlockup/softlockup.bpf.c");
    let body = source
        .split("struct lockup_event {")
        .nth(1)
        .and_then(|rest| rest.split("};").next())
        .expect("struct lockup_event");
    let members: Vec<&str> = body
        .split(';')
        .filter_map(|decl| {
            decl.split_whitespace()
                .last()
                .map(|name| name.split('[').next().unwrap_or(name))
        })
        .collect();
    let schema = schema();
    let declared: Vec<&str> = schema
        .event
        .as_ref()
        .expect("event")
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(members, declared);
    assert!(source.contains("#define HUATUO_TAINT_SOFTLOCKUP 14"));
    assert!(source.contains("#define LOCKUP_STACK_DEPTH 64"));
}

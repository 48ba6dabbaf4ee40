//! bpf.ras samples carry HUATUO's `type` label (acpi|aer|edac|mce|thr, ras_hw_total{type})
//! beside the tracepoint's `event`: a record laid out as the template writes it decodes into
//! both labels. (No RAS hardware here: the kernel side is covered by kernel_variants.)

use huatuo_bpf::decode::EventDecoder;
use huatuo_bpf::{embedded, NoContainers, TemplateSchema};

fn ras_record(event: u32, kind: u32) -> (EventDecoder, Vec<u8>) {
    let template = embedded::find("ras").expect("ras template");
    let schema = TemplateSchema::parse("ras", template.schema).expect("schema");
    assert!(schema.source.labels.iter().any(|l| l == "type"));
    let (offsets, size) = schema.event_offsets().expect("layout");
    let members = &schema.event.as_ref().expect("event").fields;
    let offset = |name: &str| offsets[members.iter().position(|f| f.name == name).expect(name)];
    let mut record = vec![0u8; size];
    record[offset("event")..offset("event") + 4].copy_from_slice(&event.to_ne_bytes());
    record[offset("type")..offset("type") + 4].copy_from_slice(&kind.to_ne_bytes());
    (EventDecoder::new(&schema).expect("decoder"), record)
}

#[test]
fn every_ras_type_has_huatuo_s_name() {
    // (event index, type index, event label, type label) as ras.bpf.c maps them
    let cases = [
        (0, 3, "MCE", "mce"),
        (0, 4, "MCE", "thr"),
        (1, 2, "EDAC", "edac"),
        (2, 0, "NON_STANDARD", "acpi"),
        (3, 1, "AER", "aer"),
        (4, 0, "ARM", "acpi"),
    ];
    for (event, kind, event_name, type_name) in cases {
        let (decoder, record) = ras_record(event, kind);
        let sample = decoder.decode(&record, 1, &NoContainers).expect("decode");
        assert_eq!(sample.labels["event"], event_name);
        assert_eq!(sample.labels["type"], type_name, "{sample:#?}");
    }
}

#[test]
fn ras_bpf_c_maps_each_tracepoint_to_that_type() {
    // The C table indexed by event (MCE, EDAC, NON_STANDARD, AER, ARM) must agree with the
    // names above; read it from the source so the two cannot drift apart.
    let source = include_str!("../ras/ras.bpf.c");
    let table = source
        .split("ras_types[] = {")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .expect("ras_types table");
    let entries: Vec<&str> = table.split(',').map(str::trim).collect();
    assert_eq!(
        entries,
        [
            "RAS_TYPE_MCE",
            "RAS_TYPE_EDAC",
            "RAS_TYPE_ACPI",
            "RAS_TYPE_AER",
            "RAS_TYPE_ACPI"
        ]
    );
    assert!(source.contains("return RAS_TYPE_THR;"));
}

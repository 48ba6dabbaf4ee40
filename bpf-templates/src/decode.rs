//! The one generic event decoder: turns a raw record from `events` into a `Sample`, driven
//! by the template's `[event]` layout (no per-template Rust code).

use crate::cgroup::CgroupResolver;
use crate::kallsyms::Kallsyms;
use crate::kernel_btf;
use crate::layout::{CType, Raw};
use crate::schema::{EventField, Format, Role, TemplateSchema};
use huatuo_dsl::value::{Sample, Value};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Decodes records of one template.
#[derive(Debug, Clone)]
pub struct EventDecoder {
    source: String,
    members: Vec<(EventField, usize)>,
    /// Members published as fields or labels (others only feed `len_field` or `cgroup`).
    published: Vec<bool>,
    /// Per member: the names of its `btf_enum`, read from the kernel when the decoder is
    /// built (empty when unknown: the name field then carries the number).
    enum_names: Vec<BTreeMap<u64, String>>,
    size: usize,
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The record is shorter than the layout.
    #[error("{template}: record of {got} bytes, layout needs {need}")]
    Short {
        /// Source name of the template.
        template: String,
        /// Bytes received.
        got: usize,
        /// Bytes the layout needs.
        need: usize,
    },
}

impl EventDecoder {
    /// A decoder for a template with an `[event]` table (`None` otherwise).
    pub fn new(schema: &TemplateSchema) -> Option<EventDecoder> {
        let (offsets, size) = schema.event_offsets()?;
        let event = schema.event.as_ref()?;
        let declared = |name: &str| {
            schema.source.fields.iter().any(|f| f.name == name)
                || schema.source.labels.iter().any(|l| l == name)
        };
        let lengths: Vec<&str> = event
            .fields
            .iter()
            .filter_map(|f| f.len_field.as_deref())
            .collect();
        Some(EventDecoder {
            source: schema.source.name.clone(),
            published: event
                .fields
                .iter()
                .map(|f| {
                    f.published() && (declared(&f.name) || !lengths.contains(&f.name.as_str()))
                })
                .collect(),
            enum_names: event
                .fields
                .iter()
                .map(
                    |f| match f.btf_enum.as_deref().map(kernel_btf::kernel_enum) {
                        Some(Ok(names)) => names,
                        Some(Err(e)) => {
                            log::warn!(
                                "{}: {}: {e}; names fall back to numbers",
                                schema.source.name,
                                f.name
                            );
                            BTreeMap::new()
                        }
                        None => BTreeMap::new(),
                    },
                )
                .collect(),
            members: event.fields.iter().cloned().zip(offsets).collect(),
            size,
        })
    }

    /// Size of one record in bytes.
    pub fn record_size(&self) -> usize {
        self.size
    }

    /// Decodes one record; `time_ns` is the wall-clock time to stamp.
    pub fn decode(
        &self,
        bytes: &[u8],
        time_ns: i64,
        resolver: &dyn CgroupResolver,
    ) -> Result<Sample, DecodeError> {
        let need = self
            .members
            .iter()
            .map(|(f, off)| off + f.c.size())
            .max()
            .unwrap_or(0);
        if bytes.len() < need {
            return Err(DecodeError::Short {
                template: self.source.clone(),
                got: bytes.len(),
                need,
            });
        }
        let raws: BTreeMap<&str, Raw> = self
            .members
            .iter()
            .filter_map(|(f, off)| Some((f.name.as_str(), f.c.decode(&bytes[*off..])?)))
            .collect();
        let mut sample = Sample {
            source: self.source.clone(),
            time_ns,
            ..Sample::default()
        };
        for (((member, _), published), names) in self
            .members
            .iter()
            .zip(&self.published)
            .zip(&self.enum_names)
        {
            let Some(raw) = raws.get(member.name.as_str()) else {
                continue;
            };
            if let (Some(field), Raw::Unsigned(v)) = (&member.name_field, raw) {
                let name = names.get(v).cloned().unwrap_or_else(|| v.to_string());
                sample.fields.insert(field.clone(), Value::Str(name));
            }
            if member.cgroup && !sample.labels.contains_key("container_id") {
                if let Raw::Unsigned(id) = raw {
                    if let Some(container) = resolver.container_id(*id) {
                        sample.labels.insert("container_id".into(), container);
                    }
                }
            }
            if let (Some(whose), Raw::Unsigned(id)) = (&member.container, raw) {
                let id_text = resolver.container_id(*id).unwrap_or_default();
                let hostname = if id_text.is_empty() {
                    String::new()
                } else {
                    resolver.container_hostname(*id).unwrap_or_default()
                };
                sample
                    .fields
                    .insert(format!("{whose}_container_id"), Value::Str(id_text));
                sample
                    .fields
                    .insert(format!("{whose}_container_hostname"), Value::Str(hostname));
            }
            if !published {
                continue;
            }
            let len = member
                .len_field
                .as_deref()
                .and_then(|name| match raws.get(name) {
                    Some(Raw::Unsigned(n)) => Some(*n as usize),
                    _ => None,
                });
            let value = render(member, raw, len);
            match member.role {
                Role::Label => {
                    sample
                        .labels
                        .insert(member.name.clone(), label_text(&value));
                }
                _ => {
                    sample.fields.insert(member.name.clone(), value);
                }
            }
        }
        Ok(sample)
    }
}

fn label_text(value: &Value) -> String {
    match value {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

/// The `major:minor` text of a kernel-internal dev_t (major << 20 | minor).
pub fn dev_text(dev: u64) -> String {
    format!("{}:{}", dev >> 20, dev & 0xfffff)
}

fn render(member: &EventField, raw: &Raw, len: Option<usize>) -> Value {
    match (raw, member.format) {
        (Raw::Unsigned(v), Some(Format::Ksym)) => Value::Str(Kallsyms::system().symbolize(*v)),
        (Raw::Unsigned(v), Some(Format::Dev)) => Value::Str(dev_text(*v)),
        (Raw::Unsigned(v), Some(Format::Bool)) => Value::Bool(*v != 0),
        (Raw::Unsigned(v), Some(Format::Hex)) => Value::Str(format!("{v:#x}")),
        (Raw::Unsigned(v), Some(Format::Bits)) => Value::List(
            member
                .names
                .iter()
                .enumerate()
                .filter(|(bit, _)| *bit < 64 && v & (1u64 << bit) != 0)
                .map(|(_, name)| Value::Str(name.clone()))
                .collect(),
        ),
        (Raw::Unsigned(v), _) if !member.names.is_empty() => match member.names.get(*v as usize) {
            Some(name) => Value::Str(name.clone()),
            None => Value::Str(v.to_string()),
        },
        (Raw::Unsigned(v), _) => Value::Int(*v as i64),
        (Raw::Signed(v), _) => Value::Int(*v),
        (Raw::Str(s), _) => Value::Str(s.clone()),
        (Raw::Array(items), Some(Format::Ip)) if member.c == CType::Array(1, 16) => {
            Value::Str(ip_text(items))
        }
        (Raw::Array(items), format) => {
            let valid = len.unwrap_or(items.len()).min(items.len());
            let items = &items[..valid];
            if format == Some(Format::Kstack) {
                let table = Kallsyms::system();
                let frames: Vec<String> = items
                    .iter()
                    .take_while(|addr| **addr != 0)
                    .map(|addr| table.symbolize(*addr))
                    .collect();
                Value::List(
                    strip_bpf_frames(frames)
                        .into_iter()
                        .map(Value::Str)
                        .collect(),
                )
            } else {
                Value::List(items.iter().map(|v| Value::Int(*v as i64)).collect())
            }
        }
    }
}

/// Symbols of the machinery between a tracepoint and the BPF program that captured the
/// stack (the program itself, the trampolines and the tracepoint dispatch).
const BPF_FRAME_PREFIXES: [&str; 8] = [
    "bpf_prog_",
    "bpf_trace_run",
    "__bpf_trace_",
    "__traceiter_",
    "bpf_trampoline_",
    "__bpf_prog_enter",
    "trace_call_bpf",
    "perf_trace_run_bpf_submit",
];

/// How deep into a stack the tracing machinery can reach.
const BPF_FRAMES_MAX: usize = 8;

/// Drops the leading frames of the BPF program and the tracing machinery, so the stack starts
/// at the kernel code that hit the tracepoint. Everything up to the last machinery frame
/// among the first few goes: a program loaded after /proc/kallsyms was read symbolizes as a
/// stray neighbour, but the dispatch frames after it are always known symbols.
pub fn strip_bpf_frames<S: AsRef<str>>(mut frames: Vec<S>) -> Vec<S> {
    let last = frames
        .iter()
        .take(BPF_FRAMES_MAX)
        .rposition(|f| BPF_FRAME_PREFIXES.iter().any(|p| f.as_ref().starts_with(p)));
    if let Some(last) = last {
        frames.drain(..=last);
    }
    frames
}

/// An address stored in 16 bytes: IPv4 when v4-mapped or only the first 4 bytes are set.
fn ip_text(items: &[u64]) -> String {
    let mut bytes = [0u8; 16];
    for (b, v) in bytes.iter_mut().zip(items) {
        *b = *v as u8;
    }
    let v6 = Ipv6Addr::from(bytes);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return v4.to_string();
    }
    if bytes[4..].iter().all(|b| *b == 0) {
        return Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string();
    }
    v6.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"
[source]
name = "bpf.demo"
mode = "stream"
labels = ["cpu"]
fields = [
  { name = "offtime", type = "int", dim = "time" },
  { name = "comm", type = "str" },
  { name = "kind", type = "str" },
  { name = "cg", type = "int" },
  { name = "addr", type = "str" },
  { name = "frames", type = "list" },
  { name = "flag", type = "bool" },
  { name = "link", type = "list" },
]
[event]
fields = [
  { name = "offtime", c = "u64" },
  { name = "cg", c = "u64", cgroup = true },
  { name = "cpu", c = "u32", role = "label" },
  { name = "kind", c = "u8", names = ["zero", "one"] },
  { name = "comm", c = "char[16]" },
  { name = "addr", c = "u8[16]", format = "ip" },
  { name = "frames", c = "u64[4]", len_field = "n" },
  { name = "n", c = "u32" },
  { name = "flag", c = "u8", format = "bool" },
  { name = "link", c = "u8", format = "bits", names = ["up", "down", "carrier"] },
]
[[attach]]
program = "p"
variants = [ { kind = "raw_tp", target = "x", prog = "y" } ]
"#;

    struct OneContainer;
    impl CgroupResolver for OneContainer {
        fn container_id(&self, id: u64) -> Option<String> {
            (id == 77).then(|| "abc123".to_string())
        }
        fn container_hostname(&self, id: u64) -> Option<String> {
            (id == 77).then(|| "web-1".to_string())
        }
    }

    #[test]
    fn container_members_publish_whose_container_id_and_hostname() {
        const TWO: &str = r#"
[source]
name = "bpf.two"
description = "d"
mode = "stream"
fields = [
  { name = "a_container_id", type = "str" },
  { name = "a_container_hostname", type = "str" },
  { name = "b_container_id", type = "str" },
  { name = "b_container_hostname", type = "str" },
]
[event]
fields = [
  { name = "_a", c = "u64", container = "a" },
  { name = "_b", c = "u64", container = "b" },
]
[[attach]]
program = "p"
variants = [ { kind = "raw_tp", target = "x", prog = "y" } ]
"#;
        let schema = TemplateSchema::parse("two", TWO).unwrap();
        let decoder = EventDecoder::new(&schema).unwrap();
        let mut buf = vec![0u8; 16];
        buf[0..8].copy_from_slice(&77u64.to_ne_bytes());
        buf[8..16].copy_from_slice(&5u64.to_ne_bytes());
        let sample = decoder.decode(&buf, 0, &OneContainer).unwrap();
        let field = |name: &str| sample.fields.get(name).cloned();
        assert_eq!(field("a_container_id"), Some(Value::Str("abc123".into())));
        assert_eq!(
            field("a_container_hostname"),
            Some(Value::Str("web-1".into()))
        );
        // a cgroup that is no container: present and empty
        assert_eq!(field("b_container_id"), Some(Value::Str(String::new())));
        assert_eq!(
            field("b_container_hostname"),
            Some(Value::Str(String::new()))
        );
        // the ids themselves are not published, and only `cgroup` members set the label
        assert!(!sample.fields.contains_key("_a"), "{sample:?}");
        assert!(!sample.labels.contains_key("container_id"), "{sample:?}");
    }

    fn record() -> Vec<u8> {
        // offsets: offtime 0, cg 8, cpu 16, kind 20, comm 21, addr 37, frames 56, n 88,
        // flag 92, link 93; size 96
        let mut buf = vec![0u8; 96];
        buf[0..8].copy_from_slice(&12_000_000u64.to_ne_bytes());
        buf[8..16].copy_from_slice(&77u64.to_ne_bytes());
        buf[16..20].copy_from_slice(&1u32.to_ne_bytes());
        buf[20] = 1;
        buf[21..26].copy_from_slice(b"nginx");
        buf[37..41].copy_from_slice(&[10, 0, 0, 7]);
        for (i, v) in [5u64, 6, 7, 8].iter().enumerate() {
            buf[56 + 8 * i..64 + 8 * i].copy_from_slice(&v.to_ne_bytes());
        }
        buf[88..92].copy_from_slice(&2u32.to_ne_bytes());
        buf[92] = 1;
        buf[93] = 0b1101; // bits 0 and 2 named, bit 3 has no name
        buf
    }

    #[test]
    fn decodes_fields_labels_and_containers() {
        let schema = TemplateSchema::parse("demo", SCHEMA).unwrap();
        let decoder = EventDecoder::new(&schema).unwrap();
        assert_eq!(decoder.record_size(), 96);
        let sample = decoder.decode(&record(), 42, &OneContainer).unwrap();
        assert_eq!(sample.source, "bpf.demo");
        assert_eq!(sample.time_ns, 42);
        assert_eq!(sample.labels["cpu"], "1");
        assert_eq!(sample.labels["container_id"], "abc123");
        assert_eq!(sample.fields["offtime"], Value::Int(12_000_000));
        assert_eq!(sample.fields["cg"], Value::Int(77));
        assert_eq!(sample.fields["kind"], Value::Str("one".into()));
        assert_eq!(sample.fields["comm"], Value::Str("nginx".into()));
        assert_eq!(sample.fields["addr"], Value::Str("10.0.0.7".into()));
        assert_eq!(
            sample.fields["frames"],
            Value::List(vec![Value::Int(5), Value::Int(6)])
        );
        assert!(!sample.fields.contains_key("n"));
        assert_eq!(sample.fields["flag"], Value::Bool(true));
        assert_eq!(
            sample.fields["link"],
            Value::List(vec![Value::Str("up".into()), Value::Str("carrier".into())])
        );
    }

    #[test]
    fn short_records_are_errors_not_panics() {
        let schema = TemplateSchema::parse("demo", SCHEMA).unwrap();
        let decoder = EventDecoder::new(&schema).unwrap();
        let err = decoder
            .decode(&record()[..40], 0, &OneContainer)
            .unwrap_err();
        assert!(err.to_string().contains("bpf.demo"), "{err}");
    }

    #[test]
    fn strips_the_bpf_frames_at_the_top_of_a_stack_only() {
        let frames = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let live = frames(&[
            "some_module_sym+0x1234",
            "bpf_trace_run2+0x5a",
            "__bpf_trace_softirq_entry+0x9",
            "handle_softirqs+0x1b0",
            "irq_exit_rcu+0x7a",
        ]);
        assert_eq!(
            strip_bpf_frames(live),
            frames(&["handle_softirqs+0x1b0", "irq_exit_rcu+0x7a"])
        );
        let plain = frames(&["kfree_skb_reason+0x10", "tcp_v4_rcv+0x90"]);
        assert_eq!(strip_bpf_frames(plain.clone()), plain);
        let mut deep = frames(&["a+0x1"; 9]);
        deep.push("bpf_trace_run1+0x1".into());
        assert_eq!(strip_bpf_frames(deep.clone()), deep);
    }

    #[test]
    fn renders_ipv6_and_devices() {
        let mut v6 = vec![0u64; 16];
        v6[0] = 0xfe;
        v6[1] = 0x80;
        v6[15] = 1;
        assert_eq!(ip_text(&v6), "fe80::1");
        let mut mapped = vec![0u64; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..16].copy_from_slice(&[192, 168, 1, 2]);
        assert_eq!(ip_text(&mapped), "192.168.1.2");
        assert_eq!(dev_text((253 << 20) | 1), "253:1");
    }
}

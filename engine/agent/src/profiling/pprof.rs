//! pprof output: the messages of the public `profile.proto` (github.com/google/pprof,
//! `proto/profile.proto`) that a stack profile needs, with their field numbers, encoded with
//! prost and gzip-compressed as `go tool pprof` and Pyroscope read them.

use prost::Message;
use std::collections::HashMap;
use std::io::Write;

/// `Profile`.
#[derive(Clone, PartialEq, Message)]
pub struct Profile {
    /// What each sample value counts.
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    /// The samples.
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    /// Locations (one per distinct frame here).
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    /// Functions (one per distinct name).
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    /// Every string the profile refers to by index; index 0 is "".
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    /// Start of the profile, Unix nanoseconds.
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    /// Length of the profile.
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    /// What `period` counts.
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    /// Events between samples.
    #[prost(int64, tag = "12")]
    pub period: i64,
}

/// `ValueType`: string-table indexes of a type and its unit.
#[derive(Clone, PartialEq, Message)]
pub struct ValueType {
    /// e.g. `cpu`.
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    /// e.g. `nanoseconds`.
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// `Sample`: a stack (leaf first) with its values and labels.
#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    /// Location ids, leaf first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    /// One value per sample type.
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    /// Labels.
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// `Label`: a string label (indexes into the string table).
#[derive(Clone, PartialEq, Message)]
pub struct Label {
    /// Key.
    #[prost(int64, tag = "1")]
    pub key: i64,
    /// String value.
    #[prost(int64, tag = "2")]
    pub str: i64,
}

/// `Location`: one frame.
#[derive(Clone, PartialEq, Message)]
pub struct Location {
    /// Non-zero id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// The function(s) at this location.
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

/// `Line`: a function at a location.
#[derive(Clone, PartialEq, Message)]
pub struct Line {
    /// Function id.
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
}

/// `Function`.
#[derive(Clone, PartialEq, Message)]
pub struct Function {
    /// Non-zero id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Name (string-table index).
    #[prost(int64, tag = "2")]
    pub name: i64,
    /// System name (string-table index).
    #[prost(int64, tag = "3")]
    pub system_name: i64,
}

/// What the profile counts, as pprof names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Units {
    /// Sample type and unit of the first value (`samples`/`count`).
    pub count: (&'static str, &'static str),
    /// Sample type and unit of the second value (`cpu`/`nanoseconds`, `offcpu`/`nanoseconds`).
    pub time: (&'static str, &'static str),
    /// Nanoseconds one count stands for (1e9 / Hz on-CPU, 1000 for off-CPU microseconds).
    pub nanos_per_count: i64,
}

/// One stack to encode: frames root first, its labels and its count.
pub struct StackIn<'a> {
    /// Frames, root first.
    pub frames: &'a [&'a str],
    /// Labels (key, value).
    pub labels: &'a [(&'a str, &'a str)],
    /// Count (samples, or microseconds off-CPU).
    pub count: u64,
}

/// Builds the profile: a location and a function per distinct frame name, two values per
/// sample (the count, and the time it stands for).
pub fn build(stacks: &[StackIn], units: Units, start_ns: i64, duration_ns: i64) -> Profile {
    let mut strings: HashMap<String, i64> = HashMap::new();
    let mut table = vec![String::new()];
    strings.insert(String::new(), 0);
    let mut intern = |s: &str| -> i64 {
        if let Some(i) = strings.get(s) {
            return *i;
        }
        let i = table.len() as i64;
        table.push(s.to_string());
        strings.insert(s.to_string(), i);
        i
    };
    let sample_type = vec![
        ValueType {
            r#type: intern(units.count.0),
            unit: intern(units.count.1),
        },
        ValueType {
            r#type: intern(units.time.0),
            unit: intern(units.time.1),
        },
    ];
    let period_type = Some(ValueType {
        r#type: intern(units.time.0),
        unit: intern(units.time.1),
    });
    let mut ids: HashMap<i64, u64> = HashMap::new();
    let mut location = vec![];
    let mut function = vec![];
    let mut sample = vec![];
    for stack in stacks {
        let mut location_id = Vec::with_capacity(stack.frames.len());
        for frame in stack.frames.iter().rev() {
            let name = intern(frame);
            let id = *ids.entry(name).or_insert_with(|| {
                let id = function.len() as u64 + 1;
                function.push(Function {
                    id,
                    name,
                    system_name: name,
                });
                location.push(Location {
                    id,
                    line: vec![Line { function_id: id }],
                });
                id
            });
            location_id.push(id);
        }
        let label = stack
            .labels
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| Label {
                key: intern(k),
                str: intern(v),
            })
            .collect();
        let count = i64::try_from(stack.count).unwrap_or(i64::MAX);
        sample.push(Sample {
            location_id,
            value: vec![count, count.saturating_mul(units.nanos_per_count)],
            label,
        });
    }
    Profile {
        sample_type,
        sample,
        location,
        function,
        string_table: table,
        time_nanos: start_ns,
        duration_nanos: duration_ns,
        period_type,
        period: units.nanos_per_count,
    }
}

/// The profile encoded and gzip-compressed.
pub fn gzip(profile: &Profile) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(&profile.encode_to_vec());
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn round_trips_through_gzip_and_protobuf() {
        let stacks = [
            StackIn {
                frames: &["main", "spin"],
                labels: &[("comm", "app"), ("container", "")],
                count: 7,
            },
            StackIn {
                frames: &["main", "io"],
                labels: &[],
                count: 2,
            },
        ];
        let units = Units {
            count: ("samples", "count"),
            time: ("cpu", "nanoseconds"),
            nanos_per_count: 10_101_010,
        };
        let bytes = gzip(&build(&stacks, units, 5, 10));
        let mut raw = vec![];
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut raw)
            .unwrap();
        let profile = Profile::decode(&raw[..]).unwrap();
        let name = |id: u64| {
            let f = &profile.function[id as usize - 1];
            profile.string_table[f.name as usize].clone()
        };
        // leaf first
        let first: Vec<String> = profile.sample[0]
            .location_id
            .iter()
            .map(|i| name(*i))
            .collect();
        assert_eq!(first, ["spin", "main"]);
        assert_eq!(profile.sample[0].value, [7, 70_707_070]);
        // the empty container label is left out
        assert_eq!(profile.sample[0].label.len(), 1);
        assert_eq!(profile.function.len(), 3);
        assert_eq!(profile.string_table[0], "");
        assert_eq!(profile.period, 10_101_010);
    }
}

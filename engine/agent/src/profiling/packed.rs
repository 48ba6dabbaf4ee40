//! One interval's profile as the store keeps it: its stacks deflated into one buffer.
//!
//! The stacks of consecutive intervals repeat the same frame names again and again (a stack is
//! its whole frame path as text, often a kilobyte or more), so deflate holds an interval in a
//! small fraction of its unpacked size, and the store's byte bound keeps that many more
//! intervals. A query unpacks the intervals it reads one at a time.

use super::store::{ContainerTag, IntervalProfile, StoredStack};
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use huatuo_http::api::profiles::ProfileType;
use std::io::{Read, Write};
use std::sync::Arc;

/// Marks a host stack (no container) in the packed form.
const NO_CONTAINER: u32 = u32::MAX;

/// A packed interval profile.
#[derive(Debug)]
pub struct PackedProfile {
    /// CPU or off-CPU.
    pub kind: ProfileType,
    /// Start, Unix nanoseconds.
    pub start_ns: i64,
    /// End, Unix nanoseconds.
    pub end_ns: i64,
    /// Sampling frequency in force (CPU), for the sample period.
    pub frequency_hz: u64,
    /// The containers its stacks ran in; a packed stack names one by its index here.
    pub containers: Vec<Arc<ContainerTag>>,
    /// The stacks, each `container index, comm, frames, count`, deflated.
    deflated: Vec<u8>,
}

impl PackedProfile {
    /// Packs a profile.
    pub fn pack(profile: &IntervalProfile) -> PackedProfile {
        let mut containers: Vec<Arc<ContainerTag>> = vec![];
        let mut raw = Vec::new();
        for stack in &profile.stacks {
            let index = match &stack.container {
                None => NO_CONTAINER,
                Some(tag) => match containers.iter().position(|c| Arc::ptr_eq(c, tag)) {
                    Some(i) => i as u32,
                    None => {
                        containers.push(tag.clone());
                        (containers.len() - 1) as u32
                    }
                },
            };
            raw.extend_from_slice(&index.to_le_bytes());
            put_text(&mut raw, &stack.comm);
            put_text(&mut raw, &stack.frames);
            raw.extend_from_slice(&stack.count.to_le_bytes());
        }
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
        // Writing into a Vec cannot fail.
        let mut deflated: Vec<u8> = encoder
            .write_all(&raw)
            .and_then(|()| encoder.finish())
            .unwrap_or_default();
        deflated.shrink_to_fit();
        PackedProfile {
            kind: profile.kind,
            start_ns: profile.start_ns,
            end_ns: profile.end_ns,
            frequency_hz: profile.frequency_hz,
            containers,
            deflated,
        }
    }

    /// Heap bytes held, approximately.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.deflated.capacity()
            + self.containers.len() * std::mem::size_of::<Arc<ContainerTag>>()
    }

    /// The stacks again, as they were packed.
    pub fn unpack(&self) -> Result<Vec<StoredStack>, String> {
        let mut raw = Vec::new();
        DeflateDecoder::new(self.deflated.as_slice())
            .read_to_end(&mut raw)
            .map_err(|e| format!("stored profile does not inflate: {e}"))?;
        let mut input = raw.as_slice();
        let mut stacks = vec![];
        while !input.is_empty() {
            let index = u32::from_le_bytes(take(&mut input)?);
            let container = match index {
                NO_CONTAINER => None,
                i => Some(
                    self.containers
                        .get(i as usize)
                        .ok_or("stored profile names an unknown container")?
                        .clone(),
                ),
            };
            let comm = take_text(&mut input)?;
            let frames = take_text(&mut input)?;
            let count = u64::from_le_bytes(take(&mut input)?);
            stacks.push(StoredStack {
                container,
                comm,
                frames,
                count,
            });
        }
        Ok(stacks)
    }
}

/// Appends a length-prefixed string.
fn put_text(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// Takes `N` bytes off the front.
fn take<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], String> {
    let (head, rest) = input
        .split_first_chunk::<N>()
        .ok_or("stored profile is cut short")?;
    *input = rest;
    Ok(*head)
}

/// Takes a length-prefixed string off the front.
fn take_text(input: &mut &[u8]) -> Result<String, String> {
    let len = u32::from_le_bytes(take(input)?) as usize;
    if input.len() < len {
        return Err("stored profile is cut short".into());
    }
    let (text, rest) = input.split_at(len);
    *input = rest;
    String::from_utf8(text.to_vec()).map_err(|_| "stored profile holds invalid UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(container: Option<&Arc<ContainerTag>>, comm: &str, frames: &str) -> StoredStack {
        StoredStack {
            container: container.cloned(),
            comm: comm.into(),
            frames: frames.into(),
            count: 7,
        }
    }

    #[test]
    fn unpacks_what_it_packed_in_a_fraction_of_its_size() {
        let web = Arc::new(ContainerTag {
            id: "c".repeat(64),
            name: "web".into(),
            ..Default::default()
        });
        let db = Arc::new(ContainerTag {
            id: "d".repeat(64),
            name: "db".into(),
            ..Default::default()
        });
        let deep: Vec<String> = (0..40)
            .map(|i| format!("crate::module::function_number_{i}"))
            .collect();
        let mut stacks = vec![
            stack(None, "tab\there", ""),
            stack(Some(&db), "db", "main;ünïcode"),
        ];
        for leaf in 0..200 {
            stacks.push(stack(
                Some(&web),
                "web",
                &format!("{};leaf_{leaf}", deep.join(";")),
            ));
        }
        let profile = IntervalProfile {
            kind: ProfileType::OffCpu,
            start_ns: 5,
            end_ns: 10,
            frequency_hz: 99,
            stacks,
        };
        let packed = PackedProfile::pack(&profile);
        assert_eq!(packed.containers.len(), 2);
        assert_eq!(packed.unpack().unwrap(), profile.stacks);
        assert!(
            packed.bytes() * 10 < profile.bytes(),
            "packed {} of {}",
            packed.bytes(),
            profile.bytes()
        );
    }

    #[test]
    fn a_damaged_buffer_is_an_error_not_a_panic() {
        let profile = IntervalProfile {
            kind: ProfileType::Cpu,
            start_ns: 0,
            end_ns: 1,
            frequency_hz: 99,
            stacks: vec![stack(None, "app", "main;spin")],
        };
        let mut packed = PackedProfile::pack(&profile);
        packed.deflated.truncate(packed.deflated.len() / 2);
        assert!(packed.unpack().is_err());
    }
}

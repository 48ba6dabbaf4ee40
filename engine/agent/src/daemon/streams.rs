//! Stream sources feeding the sample queue: template events, kmsg, link notifications, and
//! the templates' histograms presented as one polled reader (or recorded samples of them).

use super::channel::SampleSender;
use super::selfnoise::SelfFilter;
use super::DaemonOptions;
use huatuo_bpf::Templates;
use huatuo_dsl::catalog::{SourceMode, SourceSchema};
use huatuo_dsl::source::{ReadError, Reader};
use huatuo_dsl::value::{Sample, Value};
use huatuo_sources::stream::{Next, SampleStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc;

/// Forwards decoded template events into the sample queue, leaving out those `own` marks as
/// the agent's (when set).
pub fn forward_bpf(
    mut events: mpsc::Receiver<Sample>,
    sender: SampleSender,
    own: Option<Arc<SelfFilter>>,
) {
    tokio::spawn(async move {
        while let Some(sample) = events.recv().await {
            if own.as_ref().is_none_or(|own| own.keep(&sample)) {
                sender.send(sample);
            }
        }
    });
}

/// Moves samples of a stream into the queue until `stop` or the end of the stream (a
/// recording replayed to its end, or an error, logged).
fn pump(
    name: &str,
    stream: SampleStream,
    sender: SampleSender,
    stop: Arc<AtomicBool>,
) -> Option<JoinHandle<()>> {
    let label = name.to_string();
    std::thread::Builder::new()
        .name(format!("huatuo-{name}"))
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match stream.next(Duration::from_millis(200)) {
                    Next::Sample(sample) => sender.send(sample),
                    Next::Waiting => {}
                    Next::Ended => {
                        match stream.error() {
                            Some(error) => log::warn!("{label} stream stopped: {error}"),
                            None => log::info!("{label} stream ended"),
                        }
                        break;
                    }
                }
            }
        })
        .map_err(|e| log::warn!("cannot start stream thread: {e}"))
        .ok()
}

/// The kernel log as a stream (`/dev/kmsg`, or a recorded file).
pub fn kmsg(path: &Path, sender: SampleSender, stop: Arc<AtomicBool>) -> Option<JoinHandle<()>> {
    let recorded = !path.starts_with("/dev");
    match huatuo_sources::kmsg::spawn(path, recorded) {
        Ok(stream) => pump("kmsg", stream, sender, stop),
        Err(e) => {
            log::warn!("kmsg unavailable, rules reading it get nothing: {e}");
            None
        }
    }
}

/// Link change notifications (with a baseline at start).
pub fn link_events(
    options: &DaemonOptions,
    sender: SampleSender,
    stop: Arc<AtomicBool>,
) -> Option<JoinHandle<()>> {
    let stream = match &options.netlink_recorded {
        Some(dir) => huatuo_sources::netlink::link::spawn_recorded_events(
            &dir.join("link_events.json"),
            &options.roots.sys,
        ),
        None => huatuo_sources::netlink::link::spawn_events(&options.roots.sys),
    };
    match stream {
        Ok(stream) => pump("link-events", stream, sender, stop),
        Err(e) => {
            log::warn!("link events unavailable: {e}");
            None
        }
    }
}

/// The histograms of every loaded template, read as one polled source.
pub struct HistogramReader(pub Arc<Mutex<Templates>>);

impl HistogramReader {
    /// The schema of a polled reader of template maps named `name`.
    fn schema_of(name: &str) -> SourceSchema {
        SourceSchema {
            name: name.into(),
            description: "histogram maps of the loaded templates".into(),
            mode: SourceMode::Polled,
            default_interval_s: Some(10),
            per_container: false,
            container_only: false,
            labels: Vec::new(),
            fields: Vec::new(),
            open_fields: None,
            captures: Vec::new(),
            tunables: Vec::new(),
        }
    }
}

impl Reader for HistogramReader {
    fn schema(&self) -> SourceSchema {
        HistogramReader::schema_of("bpf.histograms")
    }

    fn read(&mut self, _now_ns: i64) -> Result<Vec<Sample>, ReadError> {
        let templates = self.0.lock().map_err(|_| ReadError {
            source_name: "bpf.histograms".into(),
            path: "templates".into(),
            message: "template state poisoned".into(),
        })?;
        Ok(templates.read_histograms())
    }
}

/// Recorded samples of the templates' maps, republished at every read with the read's time:
/// what `HistogramReader` would read from a node whose kernel maps hold these values.
pub struct RecordedHistograms(Vec<Sample>);

impl RecordedHistograms {
    /// Reads the samples of `path` (JSON lines, `#` comments) whose source is in `sources`.
    pub fn open(path: &Path, sources: &[String]) -> Result<Self, String> {
        let shown = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| format!("{shown}: {e}"))?;
        let samples = crate::cli::replay::read_samples(&shown, std::io::BufReader::new(file))?;
        Ok(RecordedHistograms(
            samples
                .into_iter()
                .filter(|s| sources.contains(&s.source))
                .collect(),
        ))
    }

    /// Whether the recording holds samples of `source`.
    pub fn has(&self, source: &str) -> bool {
        self.0.iter().any(|s| s.source == source)
    }
}

impl Reader for RecordedHistograms {
    fn schema(&self) -> SourceSchema {
        SourceSchema {
            description: "recorded samples of the templates' maps".into(),
            ..HistogramReader::schema_of("bpf.recorded")
        }
    }

    fn read(&mut self, now_ns: i64) -> Result<Vec<Sample>, ReadError> {
        Ok(self
            .0
            .iter()
            .map(|s| Sample {
                time_ns: now_ns,
                ..s.clone()
            })
            .collect())
    }
}

/// One per-container count a template publishes: its source, the label naming the container
/// and the count field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerCount {
    /// Catalog name of the template (`bpf.reclaim`).
    pub source: String,
    /// Label holding the container id.
    pub label: String,
    /// The `Int` field of the count.
    pub field: String,
}

/// The per-container counts of the templates named in `sources` (`count_field` of a map
/// keyed by a cgroup alone, e.g. memcg reclaims per container).
pub fn container_counts(sources: &[String]) -> Vec<ContainerCount> {
    let (schemas, _) = huatuo_bpf::template_schemas();
    schemas
        .iter()
        .filter(|(_, schema)| sources.contains(&schema.source.name))
        .flat_map(|(_, schema)| {
            schema
                .container_counts()
                .into_iter()
                .map(|(label, field)| ContainerCount {
                    source: schema.source.name.clone(),
                    label: label.to_string(),
                    field: field.to_string(),
                })
        })
        .collect()
}

/// Wraps a reader of template maps: every known container that has no entry in a
/// per-container count yet gets a sample with the count at 0, so its series starts at 0 (as
/// HUATUO's do) instead of appearing with the first event, and a rate sees the first one.
pub struct ContainerZeros {
    /// The reader of the template maps.
    pub inner: Box<dyn Reader>,
    /// The known containers.
    pub discovery: Arc<huatuo_containers::Discovery>,
    /// What to fill.
    pub counts: Vec<ContainerCount>,
}

impl Reader for ContainerZeros {
    fn schema(&self) -> SourceSchema {
        self.inner.schema()
    }

    fn read(&mut self, now_ns: i64) -> Result<Vec<Sample>, ReadError> {
        let mut samples = self.inner.read(now_ns)?;
        let Ok(snapshot) = self.discovery.snapshot() else {
            return Ok(samples);
        };
        for count in &self.counts {
            let counted: std::collections::BTreeSet<&str> = samples
                .iter()
                .filter(|s| s.source == count.source && s.fields.contains_key(&count.field))
                .filter_map(|s| s.labels.get(&count.label).map(String::as_str))
                .collect();
            let zeros: Vec<Sample> = snapshot
                .containers
                .iter()
                .filter(|c| !counted.contains(c.id.as_str()))
                .map(|c| Sample {
                    source: count.source.clone(),
                    time_ns: now_ns,
                    labels: [(count.label.clone(), c.id.clone())].into(),
                    fields: [(count.field.clone(), Value::Int(0))].into(),
                })
                .collect();
            samples.extend(zeros);
        }
        Ok(samples)
    }
}

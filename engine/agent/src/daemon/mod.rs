//! The daemon: wires sources, the evaluator, storage and the HTTP API together.

pub mod blacklist;
pub mod channel;
pub mod enrich;
pub mod evaluate;
pub mod poller;
pub mod pushdown;
pub mod reader_settings;
pub mod records;
pub mod selfmetrics;
pub mod selfstats;
pub mod status;
mod streams;

use crate::cli::inputs::Compiled;
use channel::sample_queue;
use enrich::{DiscoveryResolver, Enricher};
use evaluate::{spawn_evaluator, EvalShared};
use huatuo_bpf::{LoadOptions, Templates};
use huatuo_containers::{Discovery, DiscoveryOptions};
use huatuo_eval::{Evaluator, Plan};
use huatuo_http::metric_store::MetricStore;
use huatuo_http::server::{bind, serve, ApiState};
use huatuo_http::watch::WatchHub;
use huatuo_storage::{HostInfo, LocalFileSettings, LocalFileStore, Storage};
use poller::{spawn_poller, Polled, SourceStatsMap};
use records::RecordSink;
use selfmetrics::SelfMetrics;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the daemon reads the kernel's view (fixture trees in tests) and what it serves.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Region label.
    pub region: String,
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// procfs and sysfs roots.
    pub roots: huatuo_sources::Roots,
    /// cgroupfs root.
    pub cgroup_root: PathBuf,
    /// Recorded netlink JSON instead of live netlink.
    pub netlink_recorded: Option<PathBuf>,
    /// Recorded GPU readings (`metax.json`, `nvidia.json`) instead of the vendor libraries.
    pub gpu_recorded: Option<PathBuf>,
    /// kmsg device or a recorded kmsg file.
    pub kmsg: PathBuf,
    /// Load kernel templates.
    pub bpf: bool,
    /// Recorded samples of the templates' maps (JSON lines, as `huatuo replay` reads them),
    /// republished at every poll instead of loading templates (fixture runs).
    pub bpf_recorded: Option<PathBuf>,
    /// Stop after this long (tests, benchmarks); run until a signal when absent.
    pub run_for: Option<Duration>,
    /// Where records wait while Elasticsearch is unreachable.
    pub spool_dir: PathBuf,
}

/// Series not updated for this long are removed (containers that went away).
const SERIES_MAX_AGE: Duration = Duration::from_secs(600);
/// Capacity of the sample queue into the evaluator.
const SAMPLE_QUEUE: usize = 65_536;
/// Capacity of the record queue into storage.
const RECORD_QUEUE: usize = 4_096;
/// Most series the metric store holds.
const MAX_SERIES: usize = 500_000;

fn hostname(roots: &huatuo_sources::Roots) -> String {
    std::fs::read_to_string(roots.proc.join("sys/kernel/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Bytes the Elasticsearch spool may hold on disk while the cluster is unreachable.
const ES_SPOOL_BYTES: u64 = 256 * 1024 * 1024;

fn storage(config: &huatuo_config::Config, spool_dir: &std::path::Path) -> anyhow::Result<Storage> {
    let local = &config.storage.local_file;
    let local = if local.enabled() {
        Some(LocalFileStore::new(LocalFileSettings {
            dir: PathBuf::from(&local.path),
            rotation_bytes: (local.rotation_size.max(1) as u64).saturating_mul(1024 * 1024),
            max_rotation: local.max_rotation as usize,
        })?)
    } else {
        None
    };
    let mut storage = Storage::new(local);
    let es = &config.storage.es;
    if es.enabled() {
        let settings = huatuo_storage::EsSettings::new(
            &es.address,
            &es.index,
            &es.username,
            &es.password,
            spool_dir,
            ES_SPOOL_BYTES,
        );
        storage = storage.with_es(huatuo_storage::EsSink::start(settings)?);
        log::info!("storing records in Elasticsearch at {}", es.address);
    }
    Ok(storage)
}

/// Container discovery over the cgroup root, enriched from the kubelet when `[Pod]` enables
/// it; the watcher refreshing pods lives as long as the returned handle.
fn discovery(
    options: &DaemonOptions,
    config: &huatuo_config::Config,
) -> (
    Arc<Discovery>,
    Option<huatuo_containers::kubelet::KubeletWatcher>,
) {
    let mut discovery = Discovery::new(DiscoveryOptions {
        root: options.cgroup_root.clone(),
        ..DiscoveryOptions::default()
    });
    let mut watcher = None;
    match huatuo_containers::kubelet::KubeletConfig::from_values(config) {
        Ok(kubelet) if kubelet.enabled() => {
            let store = Arc::new(huatuo_containers::kubelet::PodStore::new());
            match huatuo_containers::kubelet::KubeletWatcher::spawn(
                kubelet,
                Default::default(),
                store.clone(),
            ) {
                Ok(Some(spawned)) => {
                    watcher = Some(spawned);
                    discovery = discovery.with_pods(store);
                }
                Ok(None) => {}
                Err(e) => log::warn!("kubelet disabled: {e}"),
            }
        }
        Ok(_) => {}
        Err(e) => log::warn!("[Pod] config: {e}"),
    }
    (Arc::new(discovery), watcher)
}

/// The sources the plan reads, split by where they come from.
struct Needs {
    all: BTreeSet<String>,
    bpf: Vec<String>,
}

fn needs_of(plan: &Plan) -> Needs {
    let all: BTreeSet<String> = plan.sources().into_iter().map(|n| n.source).collect();
    let bpf = all
        .iter()
        .filter(|s| s.starts_with("bpf."))
        .cloned()
        .collect();
    Needs { all, bpf }
}

fn interval_of(plan: &Plan, source: &str, default_s: Option<u64>) -> Duration {
    plan.sources()
        .into_iter()
        .find(|n| n.source == source)
        .and_then(|n| n.interval_ns)
        .map(|ns| Duration::from_nanos(ns.max(0) as u64))
        .unwrap_or_else(|| Duration::from_secs(default_s.unwrap_or(10)))
}

/// Runs the daemon until a signal (or `run_for`); errors only for what makes it unable to
/// start (the port taken, the storage directory not creatable).
pub fn run(compiled: Compiled, options: DaemonOptions) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("huatuo-rt")
        .build()?;
    runtime.block_on(run_async(compiled, options))
}

async fn run_async(compiled: Compiled, options: DaemonOptions) -> anyhow::Result<()> {
    let Compiled {
        inputs,
        files,
        mut plan,
        blacklisted,
    } = compiled;
    for rule in &blacklisted {
        log::info!(
            "rule {} ({:?}): {}",
            rule.name,
            rule.kind,
            blacklist::REASON
        );
    }
    let config = &inputs.config;
    let host = HostInfo {
        hostname: hostname(&options.roots),
        region: options.region.clone(),
    };
    let storage = Arc::new(storage(config, &options.spool_dir)?);
    let common = [
        ("host", host.hostname.clone()),
        ("region", host.region.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let metrics = Arc::new(MetricStore::new(common, MAX_SERIES));
    let watch = Arc::new(WatchHub::new(config.events_watch.max_clients as usize));
    let (discovery, _kubelet) = discovery(&options, config);
    let discovery = Some(discovery);
    // What the rules read before `fallback for` pairs are settled: the templates to try.
    let needs = needs_of(&plan);
    let stop = Arc::new(AtomicBool::new(false));
    let (sender, samples) = sample_queue(SAMPLE_QUEUE);

    // Kernel templates.
    let mut loaded_templates: Vec<String> = Vec::new();
    let templates = if options.bpf && options.bpf_recorded.is_none() && !needs.bpf.is_empty() {
        let schemas: Vec<_> = huatuo_bpf::template_schemas()
            .0
            .into_iter()
            .map(|(_, schema)| schema)
            .filter(|s| needs.bpf.contains(&s.source.name))
            .collect();
        let tunables = pushdown::tunables(&files, &schemas, config);
        let names: Vec<&str> = needs.bpf.iter().map(String::as_str).collect();
        let resolver: Arc<dyn huatuo_bpf::CgroupResolver> = match &discovery {
            Some(d) => Arc::new(DiscoveryResolver(d.clone())),
            None => Arc::new(huatuo_bpf::NoContainers),
        };
        let mut loaded = tokio::task::block_in_place(|| {
            Templates::load_with(
                &names,
                &tunables,
                LoadOptions {
                    resolver,
                    ..LoadOptions::default()
                },
            )
        });
        for status in loaded.status() {
            if status.loaded {
                log::info!("template {} loaded", status.name);
            } else {
                log::warn!(
                    "template {} unavailable: rules reading it are disabled",
                    status.name
                );
            }
        }
        loaded_templates.extend(loaded.loaded().into_iter().map(|t| format!("bpf.{t}")));
        if let Some(events) = loaded.take_events() {
            streams::forward_bpf(events, sender.clone());
        }
        Some(Arc::new(Mutex::new(loaded)))
    } else {
        None
    };

    // Recorded template maps stand in for the templates they have samples of.
    let recorded = options
        .bpf_recorded
        .as_ref()
        .map(|path| streams::RecordedHistograms::open(path, &needs.bpf));
    // Of every `fallback for` pair, the preferred rule runs where its source is available: a
    // template that loaded (or is in the recording); other sources count as available.
    let available = |source: &str| match (source.starts_with("bpf."), &recorded) {
        (false, _) => true,
        (true, Some(Ok(recording))) => recording.has(source),
        (true, Some(Err(_))) => false,
        (true, None) => loaded_templates.iter().any(|t| t == source),
    };
    let inactive = plan.select_fallbacks(&available);
    for rule in &inactive {
        log::info!("{}", status::fallback_log_line(rule));
    }
    let needs = needs_of(&plan);

    // Polled readers: host, cgroup and the templates' histograms.
    let reader_config = reader_settings::host_reader_config(
        config,
        options.netlink_recorded.as_deref(),
        options.gpu_recorded.as_deref(),
    );
    let mut polled = Vec::new();
    let mut readers = huatuo_sources::host_readers(&options.roots, &reader_config);
    if let Some(d) = &discovery {
        readers.extend(huatuo_containers::readers::cgroup_readers_with(
            d.clone(),
            reader_settings::container_reader_options(
                config,
                &options.roots.proc,
                options.netlink_recorded.as_deref(),
            ),
        ));
    }
    for reader in readers {
        let schema = reader.schema();
        if needs.all.contains(&schema.name) {
            polled.push(Polled::new(
                reader,
                interval_of(&plan, &schema.name, schema.default_interval_s),
            ));
        }
    }
    let bpf_interval = needs
        .bpf
        .iter()
        .map(|s| interval_of(&plan, s, Some(10)))
        .min()
        .unwrap_or(Duration::from_secs(10));
    let counts = streams::container_counts(&needs.bpf);
    let with_zeros =
        |inner: Box<dyn huatuo_dsl::source::Reader>| -> Box<dyn huatuo_dsl::source::Reader> {
            match &discovery {
                Some(d) if !counts.is_empty() => Box::new(streams::ContainerZeros {
                    inner,
                    discovery: d.clone(),
                    counts: counts.clone(),
                }),
                _ => inner,
            }
        };
    if let Some(templates) = &templates {
        polled.push(Polled::new(
            with_zeros(Box::new(streams::HistogramReader(templates.clone()))),
            bpf_interval,
        ));
    }
    match recorded {
        Some(Ok(reader)) => polled.push(Polled::new(with_zeros(Box::new(reader)), bpf_interval)),
        Some(Err(e)) => log::warn!("recorded template maps unavailable: {e}"),
        None => {}
    }
    let source_stats: SourceStatsMap = Arc::default();
    let poller = spawn_poller(polled, sender.clone(), source_stats.clone(), stop.clone())?;

    // Stream sources besides templates.
    let mut stream_threads = Vec::new();
    if needs.all.contains(huatuo_sources::kmsg::NAME) {
        stream_threads.extend(streams::kmsg(&options.kmsg, sender.clone(), stop.clone()));
    }
    if needs.all.contains(huatuo_sources::netlink::link::EVENTS) {
        stream_threads.extend(streams::link_events(&options, sender.clone(), stop.clone()));
    }

    // Evaluator and record sink.
    let eval_shared = Arc::new(EvalShared::default());
    let (record_tx, record_rx) = tokio::sync::mpsc::channel(RECORD_QUEUE);
    let queue_counters = sender.counters();
    drop(sender);
    let evaluator = spawn_evaluator(
        Evaluator::new(plan),
        samples,
        crate::capture::runner::DaemonCaptures {
            proc_root: crate::capture::procscan::ProcRoot(options.roots.proc.clone()),
        },
        Arc::new(Enricher::new(discovery.clone())),
        metrics.clone(),
        record_tx,
        eval_shared.clone(),
    )?;
    let capture_errors = Arc::new(AtomicU64::new(0));
    let sink = tokio::spawn(
        RecordSink {
            host,
            storage: storage.clone(),
            watch: watch.clone(),
            discovery: discovery.clone(),
            capture_errors,
        }
        .run(record_rx),
    );

    // HTTP API.
    let self_metrics = Arc::new(SelfMetrics {
        queue: queue_counters,
        sources: source_stats.clone(),
        eval: eval_shared.clone(),
        storage: storage.clone(),
        watch: watch.clone(),
        templates: templates.clone(),
    });
    let status = status::StatusView {
        rules: files
            .iter()
            .flat_map(|f| f.rules.iter().map(status::RuleInfo::from_rule))
            .collect(),
        blacklisted,
        inactive,
        sources: source_stats,
        eval: eval_shared,
        templates,
        rule_files: inputs.rule_files.len(),
    };
    let status = Arc::new(status);
    let state = ApiState {
        metrics: metrics.clone(),
        watch,
        status: Arc::new(move || status.to_json()),
        on_scrape: Arc::new(move |store: &MetricStore| store.update(&self_metrics.points(store))),
        keep_alive: Duration::from_secs(config.events_watch.keep_alive_interval.max(1) as u64),
    };
    let listener = bind(options.listen).await?;
    log::info!("serving on {}", listener.local_addr()?);
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(state, listener, async {
        let _ = shutdown_rx.await;
    }));
    let expiry = {
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                metrics.expire(SERIES_MAX_AGE);
            }
        })
    };

    wait_for_stop(options.run_for).await;
    log::info!("stopping");
    stop.store(true, Ordering::Relaxed);
    let _ = shutdown_tx.send(());
    expiry.abort();
    let _ = tokio::task::spawn_blocking(move || {
        let _ = poller.join();
        for thread in stream_threads {
            let _ = thread.join();
        }
    })
    .await;
    let _ = server.await;
    // The evaluator ends when every sender is gone; the sink when the evaluator is.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = tokio::task::spawn_blocking(move || evaluator.join()).await;
        let _ = sink.await;
    })
    .await;
    Ok(())
}

async fn wait_for_stop(run_for: Option<Duration>) {
    let timer = async {
        match run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminate = async {
        match term.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = timer => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

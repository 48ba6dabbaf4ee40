//! The daemon: wires sources, the evaluator, storage and the HTTP API together.

pub mod api;
pub mod api_metrics;
pub mod blacklist;
pub mod channel;
pub mod enrich;
pub mod evaluate;
mod exe_pages;
pub mod heap;
pub mod poller;
pub mod process_metrics;
pub mod pushdown;
pub mod reader_settings;
pub mod records;
pub mod reload;
pub mod self_cgroup;
pub mod selfmetrics;
pub mod selfnoise;
pub mod selfstats;
mod serving;
mod shutdown;
pub mod status;
mod storage;
mod streams;

use crate::cli::inputs::Compiled;
use crate::operation::NodeExecutor;
use channel::{sample_queue, SampleSender};
use enrich::{DiscoveryResolver, Enricher};
use evaluate::{spawn_evaluator, EvalShared};
use huatuo_bpf::{LoadOptions, Templates};
use huatuo_containers::{Discovery, DiscoveryOptions};
use huatuo_eval::{Evaluator, Plan};
use huatuo_http::api::operations::{Limits, Operations};
use huatuo_http::api::reload::ReloadOutcome;
use huatuo_http::api::NodeApi;
use huatuo_http::conn::{ConnCounters, Listener};
use huatuo_http::metric_store::MetricStore;
use huatuo_http::server::{bind, serve, ApiState};
use huatuo_http::watch::WatchHub;
use huatuo_storage::HostInfo;
use poller::{spawn_poller, Polled, SourceStatsMap};
use records::RecordSink;
use selfmetrics::SelfMetrics;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
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
    /// Recorded XFS log sizes instead of the filesystem geometry ioctl.
    pub xfs_recorded: Option<PathBuf>,
    /// kmsg device or a recorded kmsg file.
    pub kmsg: PathBuf,
    /// Load kernel templates.
    pub bpf: bool,
    /// Recorded samples of the templates' maps (JSON lines, as `huatuo replay` reads them),
    /// republished at every poll instead of loading templates (fixture runs).
    pub bpf_recorded: Option<PathBuf>,
    /// Stop after this long (tests, benchmarks); run until a signal when absent.
    pub run_for: Option<Duration>,
    /// Where records wait while Elasticsearch is unreachable (`--spool-dir`); the config's
    /// `[Storage.ES] SpoolPath` when absent.
    pub spool_dir: Option<PathBuf>,
    /// Move the agent into its own cgroup with the `[RuntimeCgroup]` limits.
    pub self_limit: bool,
    /// Where a reload reads rules, stdlib and config again (the flags the agent started with).
    pub inputs: crate::cli::inputs::InputArgs,
    /// Wait this long after the API serves before loading templates (tests of `/readyz`).
    pub start_delay: Duration,
}

/// Series not updated for this long are removed (containers that went away).
const SERIES_MAX_AGE: Duration = Duration::from_secs(600);
/// The record history's index is dropped after this long without a query.
const HISTORY_INDEX_IDLE: Duration = Duration::from_secs(300);
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

/// Container discovery over the cgroup root, enriched from the kubelet when `[Pod]` enables
/// it; the watcher refreshing pods (into the returned store) lives as long as its handle.
fn discovery(
    options: &DaemonOptions,
    config: &huatuo_config::Config,
) -> (
    Arc<Discovery>,
    Option<huatuo_containers::kubelet::KubeletWatcher>,
    Option<Arc<huatuo_containers::kubelet::PodStore>>,
) {
    let mut discovery = Discovery::new(DiscoveryOptions {
        root: options.cgroup_root.clone(),
        ..DiscoveryOptions::default()
    });
    let mut watcher = None;
    let mut pods = None;
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
                    discovery = discovery.with_pods(store.clone());
                    pods = Some(store);
                }
                Ok(None) => {}
                Err(e) => log::warn!("kubelet disabled: {e}"),
            }
        }
        Ok(_) => {}
        Err(e) => log::warn!("[Pod] config: {e}"),
    }
    (Arc::new(discovery), watcher, pods)
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

/// Runs the daemon until a signal (or `run_for`), then stops within the config's
/// `ShutdownTimeout`; errors only for what makes it unable to start (the port taken, the
/// storage directory not creatable).
pub fn run(compiled: Compiled, options: DaemonOptions) -> anyhow::Result<()> {
    heap::tune();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("huatuo-rt")
        .build()?;
    let result = runtime.block_on(run_async(compiled, options));
    // Blocking calls still stuck after the bounded shutdown are not waited for.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
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
    let shutdown_bound = Duration::from_secs(config.shutdown_timeout.max(1) as u64);
    let host = HostInfo {
        hostname: hostname(&options.roots),
        region: options.region.clone(),
        legacy_tracer_names: config.storage.legacy_tracer_names,
    };
    let opened = storage::open(config, options.spool_dir.as_deref())?;
    let storage = Arc::new(opened.storage);
    // Bound first: a taken port stops the start before any template is loaded.
    let listener = bind(options.listen).await?;
    let port = listener.local_addr()?.port();
    let own = config
        .event_tracing
        .excluded_self
        .then(|| Arc::new(selfnoise::SelfFilter::of_this_process(port)));
    let common = [
        ("host", host.hostname.clone()),
        ("region", host.region.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let metrics = Arc::new(MetricStore::new(common, MAX_SERIES));
    let api_settings = Arc::new(api::settings(config)?);
    let watch = Arc::new(WatchHub::new(
        config.events_watch.max_clients.max(1) as usize,
        config.events_watch.replay_buffer.max(0) as usize,
    ));
    let connections = Arc::new(ConnCounters::default());
    let (discovery, kubelet, pods) = discovery(&options, config);
    let discovery = Some(discovery);
    let stop = Arc::new(AtomicBool::new(false));
    let (sender, samples) = sample_queue(SAMPLE_QUEUE);

    let self_cgroup = if options.self_limit {
        self_cgroup::SelfCgroup::enter(&config.runtime_cgroup)
    } else {
        self_cgroup::SelfCgroup::off(&config.runtime_cgroup, "--no-self-limit")
    };

    // The API serves before templates load (see `serving`).
    let (record_tx, record_rx) = tokio::sync::mpsc::channel(RECORD_QUEUE);
    let late = serving::Late::default();
    let profiling = start_profiling(&options, config, &host, &discovery, stop.clone());
    let profiling_shared = profiling.as_ref().map(|p| p.0.clone());
    let profiles = profiling_shared.clone().map_or_else(
        huatuo_http::api::profiles::disabled,
        crate::profiling::profiles_fn,
    );
    let node = node_api(
        &options,
        config,
        &discovery,
        record_tx.clone(),
        late.reloader.clone(),
        profiles,
    );
    let state = late.state(
        metrics.clone(),
        watch.clone(),
        node.clone(),
        opened.history.clone(),
        &api_settings,
        Duration::from_secs(config.events_watch.keep_alive_interval.max(1) as u64),
    );
    let (server, server_stop) = start_api(state, listener, &api_settings, connections.clone());
    if !options.start_delay.is_zero() {
        tokio::time::sleep(options.start_delay).await;
    }

    // What the rules read before `fallback for` pairs are settled: the templates to try.
    let mut loaded = load_templates(
        &options,
        &files,
        config,
        &plan,
        &discovery,
        &sender,
        own.clone(),
    );
    let inactive = plan.select_fallbacks(&|source| loaded.available(source));
    for rule in &inactive {
        log::info!("{}", status::fallback_log_line(rule));
    }
    let template_source = match &loaded.recorded {
        Some(_) => reload::TemplateSource::Recorded(
            needs_of(&plan)
                .bpf
                .into_iter()
                .filter(|s| loaded.available(s))
                .collect(),
        ),
        None => reload::TemplateSource::Live(loaded.templates.clone()),
    };
    let polled = plan
        .sources()
        .into_iter()
        .map(|need| (need.source, need.interval_ns))
        .collect();
    let source_stats: SourceStatsMap = Arc::default();
    let sources = start_sources(
        &options,
        config,
        &plan,
        &discovery,
        loaded.polled_templates(&plan, &discovery),
        &sender,
        source_stats.clone(),
        stop.clone(),
    )?;
    self_cgroup.settle();

    // Evaluator and record sink.
    let eval_shared = Arc::new(EvalShared::default());
    let queue_counters = sender.counters();
    let waker = sender.clone();
    drop(sender);
    let evaluator = spawn_evaluator(
        Evaluator::new(plan),
        samples,
        crate::capture::runner::DaemonCaptures::new(crate::capture::procscan::ProcRoot(
            options.roots.proc.clone(),
        )),
        Arc::new(Enricher::new(discovery.clone())),
        metrics.clone(),
        record_tx,
        eval_shared.clone(),
        stop.clone(),
    )?;
    let capture_errors = Arc::new(AtomicU64::new(0));
    let (sink_stop, sink_stop_rx) = tokio::sync::watch::channel(false);
    let sink = tokio::spawn(
        RecordSink {
            host,
            storage: storage.clone(),
            watch: watch.clone(),
            discovery: discovery.clone(),
            capture_errors: capture_errors.clone(),
        }
        .run(record_rx, sink_stop_rx),
    );

    // What `/status` and the scrape hook read from now on.
    let self_metrics = Arc::new(SelfMetrics {
        queue: queue_counters,
        sources: source_stats.clone(),
        eval: eval_shared.clone(),
        storage: storage.clone(),
        watch: watch.clone(),
        connections,
        templates: loaded.templates.clone(),
        own,
        pods,
        capture_errors,
    });
    let status = Arc::new(Mutex::new(status::StatusView {
        rules: files
            .iter()
            .flat_map(|f| f.rules.iter().map(status::RuleInfo::from_rule))
            .collect(),
        blacklisted,
        inactive,
        sources: source_stats,
        eval: eval_shared.clone(),
        templates: loaded.templates,
        rule_files: inputs.rule_files.len(),
        storage: opened.status,
        runtime_cgroup: self_cgroup.report(),
        devices: status::ListedDevices::of_config(config, &options.roots.sys),
    }));
    let reloader = Arc::new(reload::Reloader::new(
        options.inputs.clone(),
        &inputs,
        eval_shared,
        waker.clone(),
        template_source,
        api_settings.auth.clone(),
        status.clone(),
        polled,
    ));
    // Rules are compiled and every template has loaded or failed by now.
    late.fill(
        serving::Started {
            status,
            settings: api_settings,
            reloader: reloader.clone(),
            self_metrics,
            storage: storage.clone(),
            profiling: profiling_shared,
        },
        &node,
    );
    let history = opened.history.clone();
    let expiry = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            metrics.expire(SERIES_MAX_AGE);
            // What captures and the console keep between uses leaves once they stop.
            huatuo_bpf::profiler::parked::release_idle();
            if let Some(history) = &history {
                history.release_idle(HISTORY_INDEX_IDLE);
            }
            heap::give_back();
        }
    });

    let running = shutdown::Running {
        stop,
        waker,
        poller: sources.poller,
        streams: sources.streams,
        evaluator,
        sink,
        sink_stop,
        server,
        server_stop,
        background: vec![expiry],
        profiling: profiling.map(|p| p.1),
        kubelet,
        storage,
    };
    wait_for_stop(options.run_for, &reloader).await;
    log::info!("stopping (within {shutdown_bound:?})");
    node.ready.store(false, Ordering::Release);
    // Running operations end `stopped` and hand their records to the sink before it stops.
    node.operations.stop_all();
    running.shutdown(shutdown_bound).await;
    log::info!("stopped");
    Ok(())
}

/// The kernel templates the plan reads (or their recorded maps) and what came of loading them.
struct LoadedTemplates {
    /// Loaded templates, when any were loaded.
    templates: Option<Arc<Mutex<Templates>>>,
    /// `bpf.NAME` of each template that loaded.
    loaded: Vec<String>,
    /// Recorded template maps standing in for templates (`--bpf-recorded`).
    recorded: Option<Result<streams::RecordedHistograms, String>>,
}

impl LoadedTemplates {
    /// Of every `fallback for` pair, the preferred rule runs where its source is available: a
    /// template that loaded (or is in the recording); other sources count as available.
    fn available(&self, source: &str) -> bool {
        match (source.starts_with("bpf."), &self.recorded) {
            (false, _) => true,
            (true, Some(Ok(recording))) => recording.has(source),
            (true, Some(Err(_))) => false,
            (true, None) => self.loaded.iter().any(|t| t == source),
        }
    }

    /// The polled readers of the templates' maps (live or recorded) the settled `plan` reads,
    /// every shortest interval of the rules reading them, with zero series for containers
    /// that had no event yet.
    fn polled_templates(&mut self, plan: &Plan, discovery: &Option<Arc<Discovery>>) -> Vec<Polled> {
        let bpf = needs_of(plan).bpf;
        let interval = bpf
            .iter()
            .map(|s| interval_of(plan, s, Some(10)))
            .min()
            .unwrap_or(Duration::from_secs(10));
        let counts = streams::container_counts(&bpf);
        let with_zeros =
            |inner: Box<dyn huatuo_dsl::source::Reader>| -> Box<dyn huatuo_dsl::source::Reader> {
                match discovery {
                    Some(d) if !counts.is_empty() => Box::new(streams::ContainerZeros {
                        inner,
                        discovery: d.clone(),
                        counts: counts.clone(),
                    }),
                    _ => inner,
                }
            };
        let mut polled = Vec::new();
        if let Some(templates) = &self.templates {
            polled.push(Polled::new(
                with_zeros(Box::new(streams::HistogramReader(templates.clone()))),
                interval,
            ));
        }
        match self.recorded.take() {
            Some(Ok(reader)) => polled.push(Polled::new(with_zeros(Box::new(reader)), interval)),
            Some(Err(e)) => log::warn!("recorded template maps unavailable: {e}"),
            None => {}
        }
        polled
    }
}

/// Loads the kernel templates the rules read (or opens their recorded maps), pushing rule
/// conditions into them; their event streams feed `sender`.
fn load_templates(
    options: &DaemonOptions,
    files: &[huatuo_dsl::ast::RuleFile],
    config: &huatuo_config::Config,
    plan: &Plan,
    discovery: &Option<Arc<Discovery>>,
    sender: &SampleSender,
    own: Option<Arc<selfnoise::SelfFilter>>,
) -> LoadedTemplates {
    let bpf = needs_of(plan).bpf;
    let mut loaded_names: Vec<String> = Vec::new();
    // Loaded even when no rule reads a template yet (nothing loads then), so that a reload
    // can attach templates later.
    let templates = if options.bpf && options.bpf_recorded.is_none() {
        let tunables = pushdown::tunables_of_sources(files, &bpf, config);
        let names: Vec<&str> = bpf.iter().map(String::as_str).collect();
        let resolver: Arc<dyn huatuo_bpf::CgroupResolver> = match discovery {
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
            if let (true, Some(host)) = (status.loaded, &status.hosted_by) {
                log::info!("template {} loaded, hosted by {host}", status.name);
            } else if status.loaded {
                log::info!("template {} loaded", status.name);
            } else {
                log::warn!(
                    "template {} unavailable: rules reading it are disabled",
                    status.name
                );
            }
        }
        loaded_names.extend(loaded.loaded().into_iter().map(|t| format!("bpf.{t}")));
        // The kernel BTF and the objects parsed while loading are freed, and the loading code
        // and embedded objects are not run or read again until a profile loads one: return
        // their pages.
        heap::give_back_after_load();
        if let Some(events) = loaded.take_events() {
            streams::forward_bpf(events, sender.clone(), own);
        }
        Some(Arc::new(Mutex::new(loaded)))
    } else {
        None
    };
    let recorded = options
        .bpf_recorded
        .as_ref()
        .map(|path| streams::RecordedHistograms::open(path, &bpf));
    LoadedTemplates {
        templates,
        loaded: loaded_names,
        recorded,
    }
}

/// The threads reading sources.
struct Sources {
    poller: std::thread::JoinHandle<()>,
    streams: Vec<std::thread::JoinHandle<()>>,
}

/// Starts the poller over the host and cgroup readers the plan reads (plus `templates`, the
/// templates' maps) and the stream readers (kmsg, link events).
#[allow(clippy::too_many_arguments)]
fn start_sources(
    options: &DaemonOptions,
    config: &huatuo_config::Config,
    plan: &Plan,
    discovery: &Option<Arc<Discovery>>,
    templates: Vec<Polled>,
    sender: &SampleSender,
    source_stats: SourceStatsMap,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Sources> {
    let needs = needs_of(plan);
    let reader_config = huatuo_sources::ReaderConfig {
        xfs_recorded: options.xfs_recorded.clone(),
        ..reader_settings::host_reader_config(
            config,
            options.netlink_recorded.as_deref(),
            options.gpu_recorded.as_deref(),
        )
    };
    let mut polled = Vec::new();
    let mut readers = huatuo_sources::host_readers(&options.roots, &reader_config);
    if let Some(d) = discovery {
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
                interval_of(plan, &schema.name, schema.default_interval_s),
            ));
        }
    }
    polled.extend(templates);
    let poller = spawn_poller(polled, sender.clone(), source_stats, stop.clone())?;
    let mut streams = Vec::new();
    if needs.all.contains(huatuo_sources::kmsg::NAME) {
        streams.extend(streams::kmsg(&options.kmsg, sender.clone(), stop.clone()));
    }
    if needs.all.contains(huatuo_sources::netlink::link::EVENTS) {
        streams.extend(streams::link_events(options, sender.clone(), stop));
    }
    Ok(Sources { poller, streams })
}

/// Serves the HTTP API on `listener` until the returned sender fires.
fn start_api(
    state: ApiState,
    socket: tokio::net::TcpListener,
    settings: &api::ApiSettings,
    counters: Arc<ConnCounters>,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Sender<()>,
) {
    let scheme = if settings.tls.is_some() {
        "HTTPS"
    } else {
        "HTTP"
    };
    if let Ok(addr) = socket.local_addr() {
        log::info!("serving {scheme} on {addr}");
    }
    let listener = Listener {
        socket,
        limits: settings.limits,
        tls: settings.tls.clone(),
        counters,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(state, listener, async {
        let _ = stopped.await;
    }));
    (server, stop)
}

/// The node API's state: readiness (set once serving), container lookup and the operations
/// table running on this agent's templates, storing through the record sink.
fn node_api(
    options: &DaemonOptions,
    config: &huatuo_config::Config,
    discovery: &Option<Arc<Discovery>>,
    records: tokio::sync::mpsc::Sender<huatuo_dsl::output::Record>,
    reloader: Arc<OnceLock<Arc<reload::Reloader>>>,
    profiles: huatuo_http::api::profiles::ProfilesFn,
) -> NodeApi {
    let ops = &config.operations;
    let limits = Limits {
        max_concurrent: ops.max_concurrent.max(1) as usize,
        max_duration_s: ops.max_duration.max(1) as u64,
        retained: ops.retained.max(1) as usize,
    };
    let executor = NodeExecutor {
        discovery: discovery.clone(),
        records,
        bpf: options.bpf && options.bpf_recorded.is_none(),
        proc_root: crate::capture::procscan::ProcRoot(options.roots.proc.clone()),
    };
    let lookup = discovery.clone();
    NodeApi {
        ready: Arc::new(AtomicBool::new(false)),
        containers: Arc::new(move |id: &str| {
            crate::operation::container::lookup(lookup.as_deref(), id)
        }),
        operations: Operations::new(Arc::new(executor), limits),
        reload: Arc::new(move || match reloader.get() {
            Some(reloader) => reloader.reload(),
            None => ReloadOutcome::NotReady,
        }),
        profiles,
    }
}

/// Starts the always-on profiler when `[ContinuousProfiling]` enables it and templates may be
/// loaded; a bad `[Storage.Pyroscope]` is logged and profiles stay local.
fn start_profiling(
    options: &DaemonOptions,
    config: &huatuo_config::Config,
    host: &HostInfo,
    discovery: &Option<Arc<Discovery>>,
    stop: Arc<AtomicBool>,
) -> Option<(
    Arc<crate::profiling::continuous::ProfilingShared>,
    std::thread::JoinHandle<()>,
)> {
    if !config.continuous_profiling.enable {
        return None;
    }
    if !options.bpf || options.bpf_recorded.is_some() {
        log::warn!("continuous profiling is enabled but kernel templates are off: not started");
        return None;
    }
    let pyroscope = crate::profiling::pyroscope::Pyroscope::from_config(&config.storage.pyroscope)
        .unwrap_or_else(|e| {
            log::warn!("Storage.Pyroscope: {e}; profiles are kept locally only");
            None
        });
    crate::profiling::continuous::spawn(
        crate::profiling::continuous::Settings {
            config: config.continuous_profiling.clone(),
            pyroscope,
            host: host.hostname.clone(),
            region: host.region.clone(),
            discovery: discovery.clone(),
        },
        stop,
    )
}

/// Waits for SIGTERM, SIGINT or the end of `run_for`; every SIGHUP meanwhile reloads.
async fn wait_for_stop(run_for: Option<Duration>, reloader: &Arc<reload::Reloader>) {
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
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let reloads = async {
        let Some(hangup) = hangup.as_mut() else {
            return std::future::pending::<()>().await;
        };
        while hangup.recv().await.is_some() {
            log::info!("SIGHUP: reloading");
            let reloader = reloader.clone();
            // The outcome is logged and kept for `/status`.
            let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = timer => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
        _ = reloads => {}
    }
}

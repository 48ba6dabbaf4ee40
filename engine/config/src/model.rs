//! The schema of `huatuo-bamai.conf`: every section and key HUATUO's manual documents in its
//! configuration section, with its documented default, the unit it is written in and the
//! check its value must pass.
//!
//! Defaults are the manual's `Default:` values; where a key documents none, the value of the
//! `huatuo-bamai.conf` HUATUO ships in its repository.

use crate::field::{FilterRule, KnownIssue};
use crate::section::section;
use crate::unit::Check;

/// The log levels HUATUO accepts.
pub const LOG_LEVELS: &[&str] = &["Debug", "Info", "Warn", "Error", "Panic"];
/// The Kubernetes QoS classes `ExcludedContainerQos` may name.
pub const QOS_CLASSES: &[&str] = &["guaranteed", "burstable", "besteffort"];

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

section! {
    /// The whole `huatuo-bamai.conf`.
    pub struct Config {
        /// Tracers and metric collectors disabled globally.
        "BlackList" => black_list: Vec<String> = strings(&["netdev_hw", "metax_gpu"]), Plain, Check::Any;
        /// Longest time the agent takes to stop after SIGTERM/SIGINT: what is still queued is saved (ours).
        "ShutdownTimeout" => shutdown_timeout: i64 = 10, Seconds, Check::Range(1, 300);
    }
    sections {
        /// `[Log]`.
        "Log" => log: Log;
        /// `[RuntimeCgroup]`.
        "RuntimeCgroup" => runtime_cgroup: RuntimeCgroup;
        /// `[Storage]`.
        "Storage" => storage: Storage;
        /// `[AutoTracing]`.
        "AutoTracing" => auto_tracing: AutoTracing;
        /// `[EventTracing]`.
        "EventTracing" => event_tracing: EventTracing;
        /// `[MetricCollector]`.
        "MetricCollector" => metric_collector: MetricCollector;
        /// `[Pod]`.
        "Pod" => pod: Pod;
        /// `[EventsWatch]`.
        "EventsWatch" => events_watch: EventsWatch;
        /// `[Rules]` (ours).
        "Rules" => rules: Rules;
        /// `[Operations]` (ours).
        "Operations" => operations: Operations;
        /// `[APIServer]` (ours).
        "APIServer" => api_server: ApiServer;
        /// `[ContinuousProfiling]` (ours).
        "ContinuousProfiling" => continuous_profiling: ContinuousProfiling;
    }
}

section! {
    /// `[Log]`: the agent's own logging.
    pub struct Log {
        /// Log level: Debug, Info, Warn, Error or Panic.
        "Level" => level: String = "Info".to_string(), Plain, Check::OneOf(LOG_LEVELS);
        /// Log file; empty writes no log file.
        "File" => file: String = String::new(), Plain, Check::Any;
        /// Size at which the log file is rotated (ours).
        "MaxSize" => max_size: i64 = 100, Mebibytes, Check::Range(1, 10240);
        /// Rotated log files kept beside the live one (ours).
        "MaxBackups" => max_backups: i64 = 5, Plain, Check::Range(1, 1000);
    }
    sections {}
}

section! {
    /// `[RuntimeCgroup]`: resource limits on the agent itself.
    pub struct RuntimeCgroup {
        /// CPU cores the agent may use while starting.
        "LimitInitCPU" => limit_init_cpu: f64 = 0.5, Plain, Check::Positive;
        /// CPU cores the agent may use once started.
        "LimitCPU" => limit_cpu: f64 = 2.0, Plain, Check::Positive;
        /// Memory limit of the agent.
        "LimitMem" => limit_mem: i64 = 2048, Mebibytes, Check::Range(1, 1 << 20);
    }
    sections {}
}

section! {
    /// `[Storage]`: where events and autotracing records go.
    pub struct Storage {
        /// Write renamed tracers under HUATUO's older names (`softirq`, `netrecvlat`, `directreclaim`, `netdev_event`, `lacp`) for fleets whose queries use them (ours).
        "LegacyTracerNames" => legacy_tracer_names: bool = false, Plain, Check::Any;
    }
    sections {
        /// `[Storage.ES]`.
        "ES" => es: EsStorage;
        /// `[Storage.LocalFile]`.
        "LocalFile" => local_file: LocalFileStorage;
        /// `[Storage.Pyroscope]` (ours).
        "Pyroscope" => pyroscope: PyroscopeStorage;
    }
}

section! {
    /// `[Storage.Pyroscope]` (ours): continuous profiles pushed to Pyroscope's `/ingest` as pprof; off when Address is empty.
    pub struct PyroscopeStorage {
        /// Pyroscope server URL, http:// or https:// (its certificate verified against the system roots and CACertPath).
        "Address" => address: String = String::new(), Plain, Check::HttpUrls;
        /// Application name of the pushed profiles (`<name>.cpu`, `<name>.offcpu`).
        "AppName" => app_name: String = "huatuo".to_string(), Plain, Check::Any;
        /// Bearer token sent as `Authorization: Bearer`; empty sends none.
        "AuthToken" => auth_token: String = String::new(), Plain, Check::Any;
        /// Basic-auth user name (with Password, instead of AuthToken).
        "Username" => username: String = String::new(), Plain, Check::Any;
        /// Basic-auth password.
        "Password" => password: String = String::new(), Plain, Check::Any;
        /// PEM file of CA certificates trusted besides the system roots.
        "CACertPath" => ca_cert_path: String = String::new(), Plain, Check::Any;
        /// Longest a push may take before it is counted as failed.
        "Timeout" => timeout: i64 = 5, Seconds, Check::Range(1, 60);
    }
    sections {}
}

impl PyroscopeStorage {
    /// Whether profiles are pushed: Address set.
    pub fn enabled(&self) -> bool {
        !self.address.is_empty()
    }
}

section! {
    /// `[Storage.ES]`: Elasticsearch / OpenSearch; off when Address, Username or Password is empty.
    pub struct EsStorage {
        /// Elasticsearch or OpenSearch URL, http:// or https://; several separated by commas.
        "Address" => address: String = "http://127.0.0.1:9200".to_string(), Plain, Check::HttpUrls;
        /// Index the records are written to.
        "Index" => index: String = "huatuo_bamai".to_string(), Plain, Check::Any;
        /// Basic-auth user name.
        "Username" => username: String = String::new(), Plain, Check::Any;
        /// Basic-auth password.
        "Password" => password: String = String::new(), Plain, Check::Any;
        /// PEM file of the CA certificates that sign the cluster's certificate, trusted besides the system roots (ours).
        "CACertPath" => ca_cert_path: String = String::new(), Plain, Check::Any;
        /// Send records and credentials to an https cluster whose certificate does not verify (ours; logged as a warning).
        "InsecureSkipVerify" => insecure_skip_verify: bool = false, Plain, Check::Any;
        /// Directory where records wait while the cluster is unreachable (ours; empty: huatuo-es-spool; `huatuo run --spool-dir` overrides it).
        "SpoolPath" => spool_path: String = "huatuo-es-spool".to_string(), Plain, Check::Any;
        /// Cap on the spool's size on disk; the oldest records are dropped (and counted) past it (ours).
        "SpoolMaxSize" => spool_max_size: i64 = 256, Mebibytes, Check::Range(1, 1 << 20);
        /// File keeping the records the cluster refused for their content (ours; empty: `<SpoolPath>.dead-letter.ndjson`).
        "DeadLetterPath" => dead_letter_path: String = String::new(), Plain, Check::Any;
        /// Cap on the dead-letter file; one rotated file is kept besides (ours).
        "DeadLetterMaxSize" => dead_letter_max_size: i64 = 64, Mebibytes, Check::Range(1, 1 << 20);
    }
    sections {}
}

section! {
    /// `[Storage.LocalFile]`: record files per tracer on the host; off when Path is empty.
    pub struct LocalFileStorage {
        /// Directory of the record files.
        "Path" => path: String = "huatuo-local".to_string(), Plain, Check::Any;
        /// Size at which a tracer's record file is rotated.
        "RotationSize" => rotation_size: i64 = 100, Mebibytes, Check::Range(1, 10_240);
        /// Rotated files kept per tracer.
        "MaxRotation" => max_rotation: i64 = 10, Plain, Check::Range(0, 1000);
    }
    sections {}
}

impl EsStorage {
    /// Whether ES/OS storage is on: Address, Username and Password all set.
    pub fn enabled(&self) -> bool {
        !(self.address.is_empty() || self.username.is_empty() || self.password.is_empty())
    }
}

impl LocalFileStorage {
    /// Whether local record files are written: Path set.
    pub fn enabled(&self) -> bool {
        !self.path.is_empty()
    }
}

section! {
    /// `[AutoTracing]`: threshold-triggered profiling.
    pub struct AutoTracing {
        /// Known-issue tags: `[name, regex]` pairs matched against dload stacks.
        "IssuesList" => issues_list: Vec<KnownIssue> = Vec::new(), Plain, Check::Any;
    }
    sections {
        /// `[AutoTracing.CPUIdle]`.
        "CPUIdle" => cpu_idle: CpuIdle;
        /// `[AutoTracing.CPUSys]`.
        "CPUSys" => cpu_sys: CpuSys;
        /// `[AutoTracing.Dload]`.
        "Dload" => dload: Dload;
        /// `[AutoTracing.IOTracing]`.
        "IOTracing" => io_tracing: IoTracing;
        /// `[AutoTracing.MemoryBurst]`.
        "MemoryBurst" => memory_burst: MemoryBurst;
        /// `[AutoTracing.WaitRate]`.
        "WaitRate" => wait_rate: WaitRate;
    }
}

section! {
    /// `[AutoTracing.CPUIdle]`: sudden high CPU usage in containers.
    pub struct CpuIdle {
        /// Container user CPU usage threshold.
        "UserThreshold" => user_threshold: f64 = 75.0, Percent, Check::Any;
        /// Container system CPU usage threshold.
        "SysThreshold" => sys_threshold: f64 = 45.0, Percent, Check::Any;
        /// Container total CPU usage threshold.
        "UsageThreshold" => usage_threshold: f64 = 90.0, Percent, Check::Any;
        /// Rise of user CPU usage within one interval.
        "DeltaUserThreshold" => delta_user_threshold: f64 = 45.0, Percent, Check::Any;
        /// Rise of system CPU usage within one interval.
        "DeltaSysThreshold" => delta_sys_threshold: f64 = 20.0, Percent, Check::Any;
        /// Rise of total CPU usage within one interval.
        "DeltaUsageThreshold" => delta_usage_threshold: f64 = 55.0, Percent, Check::Any;
        /// Sampling interval of container CPU usage.
        "Interval" => interval: i64 = 10, Seconds, Check::Range(1, 86_400);
        /// Minimum time between two profiling runs.
        "IntervalTracing" => interval_tracing: i64 = 1800, Seconds, Check::Any;
        /// Duration of one profiling run.
        "RunTracingToolTimeout" => run_tracing_tool_timeout: i64 = 10, Seconds, Check::Range(1, 600);
    }
    sections {
        /// `[[AutoTracing.CPUIdle.Filter.Included]]` and `Excluded` rules.
        "Filter" => filter: CpuIdleFilter;
    }
}

section! {
    /// Which containers CPUIdle watches: all when empty; Included is a whitelist, Excluded a blacklist.
    pub struct CpuIdleFilter {
        /// Rules a container must match one of.
        "Included" => included: Vec<FilterRule> = Vec::new(), Plain, Check::Any;
        /// Rules excluding a container when one matches.
        "Excluded" => excluded: Vec<FilterRule> = Vec::new(), Plain, Check::Any;
    }
    sections {}
}

section! {
    /// `[AutoTracing.CPUSys]`: sudden high system CPU on the host.
    pub struct CpuSys {
        /// Host system CPU usage threshold.
        "SysThreshold" => sys_threshold: f64 = 45.0, Percent, Check::Any;
        /// Rise of host system CPU usage within one interval.
        "DeltaSysThreshold" => delta_sys_threshold: f64 = 20.0, Percent, Check::Any;
        /// Sampling interval of host CPU usage.
        "Interval" => interval: i64 = 10, Seconds, Check::Range(1, 86_400);
        /// Duration of one profiling run.
        "RunTracingToolTimeout" => run_tracing_tool_timeout: i64 = 10, Seconds, Check::Range(1, 600);
    }
    sections {}
}

section! {
    /// `[AutoTracing.WaitRate]`: CPU contention of containers: which containers held the
    /// CPUs a container waited for.
    pub struct WaitRate {
        /// Container run-queue wait share (wait per elapsed time, above 100 % when tasks wait together).
        "Threshold" => threshold: f64 = 50.0, Percent, Check::Any;
        /// Sampling interval of the container run-queue latency.
        "Interval" => interval: i64 = 10, Seconds, Check::Range(1, 86_400);
        /// Minimum time between two captures of one container.
        "IntervalTracing" => interval_tracing: i64 = 1800, Seconds, Check::Any;
        /// Duration of one capture.
        "RunTracingToolTimeout" => run_tracing_tool_timeout: i64 = 10, Seconds, Check::Range(1, 600);
    }
    sections {}
}

section! {
    /// `[AutoTracing.Dload]`: D-state task profiling in containers.
    pub struct Dload {
        /// Container D-state load average that triggers profiling.
        "ThresholdLoad" => threshold_load: f64 = 5.0, Plain, Check::Any;
        /// Sampling interval of container load.
        "Interval" => interval: i64 = 10, Seconds, Check::Range(1, 86_400);
        /// Minimum time between two profiling runs.
        "IntervalTracing" => interval_tracing: i64 = 1800, Seconds, Check::Any;
    }
    sections {}
}

section! {
    /// `[AutoTracing.IOTracing]`: IO profiling of containers.
    pub struct IoTracing {
        /// Disk write throughput that triggers IO tracing.
        "WbpsThreshold" => wbps_threshold: i64 = 1500, MebibytesPerSec, Check::Any;
        /// Disk read throughput that triggers IO tracing.
        "RbpsThreshold" => rbps_threshold: i64 = 2000, MebibytesPerSec, Check::Any;
        /// Disk utilization that triggers IO tracing.
        "UtilThreshold" => util_threshold: f64 = 90.0, Percent, Check::Any;
        /// Average IO wait that triggers IO tracing.
        "AwaitThreshold" => await_threshold: i64 = 100, Millis, Check::Any;
        /// Duration of one IO tracing run.
        "RunTracingToolTimeout" => run_tracing_tool_timeout: i64 = 10, Seconds, Check::Range(1, 600);
        /// Processes listed per IO tracing record.
        "MaxProcDump" => max_proc_dump: i64 = 10, Plain, Check::Range(1, 1000);
        /// Files listed per process.
        "MaxFilesPerProcDump" => max_files_per_proc_dump: i64 = 5, Plain, Check::Range(1, 1000);
        /// Filesystem usage (used of used + available, as df) that triggers IO tracing.
        "DiskUsageThreshold" => disk_usage_threshold: f64 = 95.0, Percent, Check::Range(1, 100);
    }
    sections {}
}

section! {
    /// `[AutoTracing.MemoryBurst]`: sudden memory growth on the host.
    pub struct MemoryBurst {
        /// Growth of used memory over the window that counts as a burst.
        "DeltaMemoryBurst" => delta_memory_burst: f64 = 100.0, Percent, Check::Any;
        /// Anonymous memory share of RAM that must also be reached.
        "DeltaAnonThreshold" => delta_anon_threshold: f64 = 70.0, Percent, Check::Any;
        /// Sampling interval of memory usage.
        "Interval" => interval: i64 = 10, Seconds, Check::Range(1, 86_400);
        /// Minimum time between two captures.
        "IntervalTracing" => interval_tracing: i64 = 1800, Seconds, Check::Any;
        /// Number of samples in the comparison window.
        "SlidingWindowLength" => sliding_window_length: i64 = 60, Plain, Check::Range(1, 3600);
        /// Processes dumped per record.
        "DumpProcessMaxNum" => dump_process_max_num: i64 = 10, Plain, Check::Range(1, 1000);
    }
    sections {}
}

section! {
    /// `[EventTracing]`: kernel event capture.
    pub struct EventTracing {
        /// Known-issue tags: `[name, regex]` pairs matched against net_rx_latency events.
        "IssuesList" => issues_list: Vec<KnownIssue> = Vec::new(), Plain, Check::Any;
        /// Leave out events the agent causes itself: its own tasks, and packets of its HTTP port (ours).
        "ExcludedSelf" => excluded_self: bool = true, Plain, Check::Any;
    }
    sections {
        /// `[EventTracing.Softirq]`.
        "Softirq" => softirq: Softirq;
        /// `[EventTracing.Irqoff]` (ours).
        "Irqoff" => irqoff: Irqoff;
        /// `[EventTracing.MemoryReclaim]`.
        "MemoryReclaim" => memory_reclaim: MemoryReclaim;
        /// `[EventTracing.NetRxLatency]`.
        "NetRxLatency" => net_rx_latency: NetRxLatency;
        /// `[EventTracing.Netdev]`.
        "Netdev" => netdev: NetdevEvents;
        /// `[EventTracing.Dropwatch]`.
        "Dropwatch" => dropwatch: Dropwatch;
        /// `[EventTracing.Ras]`.
        "Ras" => ras: Ras;
    }
}

section! {
    /// `[EventTracing.Softirq]`: softirqs disabled for too long.
    pub struct Softirq {
        /// Softirq-off duration that triggers a record.
        "DisabledThreshold" => disabled_threshold: i64 = 10_000_000, Nanos, Check::Any;
    }
    sections {}
}

section! {
    /// `[EventTracing.Irqoff]` (ours): hard interrupts held off for too long.
    pub struct Irqoff {
        /// Interrupts-off duration that triggers a record.
        "DisabledThreshold" => disabled_threshold: i64 = 10_000_000, Nanos, Check::Any;
    }
    sections {}
}

section! {
    /// `[EventTracing.MemoryReclaim]`: tasks blocked in direct reclaim.
    pub struct MemoryReclaim {
        /// Time blocked in reclaim that triggers a record.
        "BlockedThreshold" => blocked_threshold: i64 = 900_000_000, Nanos, Check::Any;
    }
    sections {}
}

section! {
    /// `[EventTracing.NetRxLatency]`: slow TCP receive path.
    pub struct NetRxLatency {
        /// Latency from the driver to netif_receive_skb.
        "Driver2NetRx" => driver2_net_rx: i64 = 5, Millis, Check::Any;
        /// Latency from the driver to tcp_v4_rcv.
        "Driver2TCP" => driver2_tcp: i64 = 10, Millis, Check::Any;
        /// Latency from the driver to the copy to user space.
        "Driver2Userspace" => driver2_userspace: i64 = 115, Millis, Check::Any;
        /// Container QoS classes not watched (guaranteed, burstable, besteffort).
        "ExcludedContainerQos" => excluded_container_qos: Vec<String> = Vec::new(), Plain, Check::OneOf(QOS_CLASSES);
        /// Ignore packets of the host network namespace.
        "ExcludedHostNetnamespace" => excluded_host_netnamespace: bool = true, Plain, Check::Any;
    }
    sections {}
}

section! {
    /// `[EventTracing.Netdev]`: link events of network devices.
    pub struct NetdevEvents {
        /// Devices watched; empty watches none. The default is HUATUO's documented example.
        "DeviceList" => device_list: Vec<String> = strings(&["eth0", "eth1", "bond4", "lo"]), Plain, Check::Any;
    }
    sections {}
}

section! {
    /// `[EventTracing.Dropwatch]`: packet drops in the kernel.
    pub struct Dropwatch {
        /// Ignore drops from neigh_invalidate.
        "ExcludedNeighInvalidate" => excluded_neigh_invalidate: bool = true, Plain, Check::Any;
        /// Resolve `src_hostname`/`dest_hostname` by reverse DNS (off the hot path, cached).
        "ReverseDNS" => reverse_dns: bool = true, Plain, Check::Any;
    }
    sections {}
}

section! {
    /// `[EventTracing.Ras]`: hardware error events.
    pub struct Ras {
        /// Minimum time between two stored MCE threshold events.
        "MceThrBackoff" => mce_thr_backoff: i64 = 1800, Seconds, Check::Any;
    }
    sections {}
}

section! {
    /// `[MetricCollector]`: filters of the metric collectors; Included whitelists, Excluded blacklists.
    pub struct MetricCollector {}
    sections {
        /// `[MetricCollector.NetdevStats]`.
        "NetdevStats" => netdev_stats: NetdevStats;
        /// `[MetricCollector.NetdevDCB]`.
        "NetdevDCB" => netdev_dcb: NetdevDcb;
        /// `[MetricCollector.NetdevHW]`.
        "NetdevHW" => netdev_hw: NetdevHw;
        /// `[MetricCollector.Qdisc]`.
        "Qdisc" => qdisc: Qdisc;
        /// `[MetricCollector.Vmstat]`.
        "Vmstat" => vmstat: Vmstat;
        /// `[MetricCollector.MemoryEvents]`.
        "MemoryEvents" => memory_events: MemoryEvents;
        /// `[MetricCollector.Netstat]`.
        "Netstat" => netstat: Netstat;
        /// `[MetricCollector.MountPointStat]`.
        "MountPointStat" => mount_point_stat: MountPointStat;
    }
}

section! {
    /// `[MetricCollector.NetdevStats]`: network device counters.
    pub struct NetdevStats {
        /// Read counters over netlink instead of /proc/net/dev (host and container namespaces).
        "EnableNetlink" => enable_netlink: bool = false, Plain, Check::Any;
        /// Regex of devices to collect; empty collects all.
        "DeviceIncluded" => device_included: String = String::new(), Plain, Check::Regex;
        /// Regex of devices to skip; empty skips none.
        "DeviceExcluded" => device_excluded: String = String::new(), Plain, Check::Regex;
    }
    sections {}
}

section! {
    /// `[MetricCollector.NetdevDCB]`: DCB PFC counters.
    pub struct NetdevDcb {
        /// Devices collected; empty collects none.
        "DeviceList" => device_list: Vec<String> = Vec::new(), Plain, Check::Any;
    }
    sections {}
}

section! {
    /// `[MetricCollector.NetdevHW]`: hardware drop counters.
    pub struct NetdevHw {
        /// Devices collected; empty collects none.
        "DeviceList" => device_list: Vec<String> = Vec::new(), Plain, Check::Any;
    }
    sections {}
}

section! {
    /// `[MetricCollector.Qdisc]`: queueing discipline counters.
    pub struct Qdisc {
        /// Regex of devices to collect; empty collects all.
        "DeviceIncluded" => device_included: String = String::new(), Plain, Check::Regex;
        /// Regex of devices to skip; empty skips none.
        "DeviceExcluded" => device_excluded: String = String::new(), Plain, Check::Regex;
    }
    sections {}
}

section! {
    /// `[MetricCollector.Vmstat]`: host /proc/vmstat and container memory.stat.
    pub struct Vmstat {
        /// Regex of host vmstat keys to collect.
        "IncludedOnHost" => included_on_host: String = VMSTAT_HOST.to_string(), Plain, Check::Regex;
        /// Regex of host vmstat keys to skip.
        "ExcludedOnHost" => excluded_on_host: String = "total".to_string(), Plain, Check::Regex;
        /// Regex of container memory.stat keys to collect.
        "IncludedOnContainer" => included_on_container: String = VMSTAT_CONTAINER.to_string(), Plain, Check::Regex;
        /// Regex of container memory.stat keys to skip.
        "ExcludedOnContainer" => excluded_on_container: String = "total".to_string(), Plain, Check::Regex;
    }
    sections {}
}

/// The host vmstat keys collected by default.
const VMSTAT_HOST: &str = "allocstall|nr_active_anon|nr_active_file|nr_boost_pages|nr_dirty|\
nr_free_pages|nr_inactive_anon|nr_inactive_file|nr_kswapd_boost|nr_mlock|nr_shmem|\
nr_slab_reclaimable|nr_slab_unreclaimable|nr_unevictable|nr_writeback|numa_pages_migrated|\
pgdeactivate|pgrefill|pgscan_direct|pgscan_kswapd|pgsteal_direct|pgsteal_kswapd";

/// The container memory.stat keys collected by default.
const VMSTAT_CONTAINER: &str = "active_anon|active_file|dirty|inactive_anon|inactive_file|\
pgdeactivate|pgrefill|pgscan_direct|pgscan_kswapd|pgsteal_direct|pgsteal_kswapd|shmem|\
unevictable|writeback|pgscan_globaldirect|pgscan_globalkswapd|pgscan_cswapd|pgsteal_cswapd|\
pgsteal_globaldirect|pgsteal_globalkswapd";

section! {
    /// `[MetricCollector.MemoryEvents]`: memory event counters.
    pub struct MemoryEvents {
        /// Regex of events to collect.
        "Included" => included: String = "watermark_inc|watermark_dec".to_string(), Plain, Check::Regex;
        /// Regex of events to skip.
        "Excluded" => excluded: String = String::new(), Plain, Check::Regex;
    }
    sections {}
}

section! {
    /// `[MetricCollector.Netstat]`: /proc/net/netstat and snmp counters.
    pub struct Netstat {
        /// Regex of counters to collect.
        "Included" => included: String = String::new(), Plain, Check::Regex;
        /// Regex of counters to skip.
        "Excluded" => excluded: String = String::new(), Plain, Check::Regex;
    }
    sections {}
}

section! {
    /// `[MetricCollector.MountPointStat]`: file system usage of mount points.
    pub struct MountPointStat {
        /// Regex of mount points collected.
        "MountPointsIncluded" => mount_points_included: String = "(^/home$)|(^/$)|(^/boot$)".to_string(), Plain, Check::Regex;
    }
    sections {}
}

section! {
    /// `[Pod]`: fetching pods from the kubelet; both ports 0 disables it.
    pub struct Pod {
        /// Kubelet read-only HTTP port; 0 disables it.
        "KubeletReadOnlyPort" => kubelet_read_only_port: i64 = 10255, Plain, Check::Port;
        /// Kubelet authenticated HTTPS port; 0 disables it.
        "KubeletAuthorizedPort" => kubelet_authorized_port: i64 = 10250, Plain, Check::Port;
        /// Client certificate and key: `cert,key` or one PEM file.
        "KubeletClientCertPath" => kubelet_client_cert_path: String = KUBELET_CLIENT_CERT.to_string(), Plain, Check::Any;
        /// CA bundle that signs the kubelet's serving certificate; empty trusts the public roots (ours).
        "KubeletCACertPath" => kubelet_ca_cert_path: String = String::new(), Plain, Check::Any;
        /// Skip verification of the kubelet's serving certificate (ours).
        "KubeletInsecureSkipVerify" => kubelet_insecure_skip_verify: bool = false, Plain, Check::Any;
    }
    sections {}
}

/// The kubelet client certificate and key of a kubeadm node.
const KUBELET_CLIENT_CERT: &str = "/etc/kubernetes/pki/apiserver-kubelet-client.crt,\
/etc/kubernetes/pki/apiserver-kubelet-client.key";

section! {
    /// `[EventsWatch]`: the `POST /v1/events/watch` SSE stream.
    pub struct EventsWatch {
        /// Concurrent watch clients; more are refused with HTTP 429.
        "MaxClients" => max_clients: i64 = 100, Plain, Check::Range(1, 10_000);
        /// Interval of the `: ping` keep-alive comment.
        "KeepAliveInterval" => keep_alive_interval: i64 = 30, Seconds, Check::Range(1, 3600);
        /// Events kept for clients resuming with `Last-Event-ID` (ours); 0 keeps none.
        "ReplayBuffer" => replay_buffer: i64 = 4096, Plain, Check::Range(0, 65536);
    }
    sections {}
}

section! {
    /// `[Rules]` (ours): limits on running the rules' stdlib scripts.
    pub struct Rules {
        /// CPU time one script call may use (wall time: ten times that); a longer call disables its rule.
        "ScriptTimeout" => script_timeout: i64 = 100, Millis, Check::Range(1, 500);
    }
    sections {}
}

section! {
    /// `[Operations]` (ours): on-demand profiles and traces started with `POST /v1/operations`.
    pub struct Operations {
        /// Operations running at once; more are refused with HTTP 429.
        "MaxConcurrent" => max_concurrent: i64 = 2, Plain, Check::Positive;
        /// Longest `duration_seconds` an operation may ask for.
        "MaxDuration" => max_duration: i64 = 600, Seconds, Check::Positive;
        /// Finished operations kept in memory for `GET /v1/operations/{id}`; the oldest go first.
        "Retained" => retained: i64 = 256, Plain, Check::Positive;
    }
    sections {}
}

section! {
    /// `[ContinuousProfiling]` (ours): always-on CPU (and optionally off-CPU) profiles of the host, its containers and chosen processes, kept in memory for `GET /v1/profiles` and pushed to `[Storage.Pyroscope]`.
    pub struct ContinuousProfiling {
        /// Run the always-on CPU profiler.
        "Enable" => enable: bool = false, Plain, Check::Any;
        /// Samples per second per CPU (HUATUO's 99 Hz); the governor lowers it when CPUBudget is passed.
        "Frequency" => frequency: i64 = 99, Plain, Check::Range(1, 1000);
        /// Length of one aggregated profile: stacks are read, symbolized and shipped this often.
        "Interval" => interval: i64 = 10, Seconds, Check::Range(1, 300);
        /// Only stacks of these containers (full or short ids, or names); empty keeps the host and every container.
        "Containers" => containers: Vec<String> = Vec::new(), Plain, Check::Any;
        /// Only stacks of processes whose command (comm) or executable path contains one of these; empty keeps all.
        "Processes" => processes: Vec<String> = Vec::new(), Plain, Check::Any;
        /// Agent CPU time profiling may use, percent of one CPU (kernel sampling programs and the agent's reading and symbolizing); above it the governor halves the rate.
        "CPUBudget" => cpu_budget: f64 = 1.0, Percent, Check::Positive;
        /// Aggregated profiles kept in memory for `GET /v1/profiles` (each interval's CPU and off-CPU profile), oldest dropped first.
        "Retained" => retained: i64 = 360, Plain, Check::Range(1, 8640);
        /// Largest in-memory size of the kept profiles (each kept deflated); the oldest are dropped first beyond it.
        "MaxMemory" => max_memory: i64 = 2, Mebibytes, Check::Range(1, 1024);
        /// Frames the user-space symbol cache holds (per binary and file offset).
        "SymbolCacheFrames" => symbol_cache_frames: i64 = 16_384, Plain, Check::Range(1024, 4_194_304);
    }
    sections {
        /// `[ContinuousProfiling.OffCPU]`.
        "OffCPU" => off_cpu: OffCpuProfiling;
    }
}

section! {
    /// `[ContinuousProfiling.OffCPU]` (ours): time blocked and waiting in the run queue, from sched_switch.
    pub struct OffCpuProfiling {
        /// Run the always-on off-CPU profiler as well (needs ContinuousProfiling.Enable).
        "Enable" => enable: bool = false, Plain, Check::Any;
        /// Stretches off the CPU shorter than this are not counted.
        "MinDuration" => min_duration: i64 = 1, Millis, Check::Range(0, 60_000);
    }
    sections {}
}

/// The routes a config may leave open without a token (ours).
pub const OPEN_PATHS: &[&str] = &["/metrics", "/healthz", "/readyz", "/openapi.json"];

fn open_paths() -> Vec<String> {
    strings(OPEN_PATHS)
}

section! {
    /// `[APIServer]` (ours): limits, authentication and TLS of the HTTP API on port 19704.
    pub struct ApiServer {
        /// Connections served at once; beyond it a connection that never sent a request is closed, else the new one is refused.
        "MaxConnections" => max_connections: i64 = 512, Plain, Check::Range(8, 65536);
        /// Time a client has to send a request's headers, and the longest a kept-alive connection waits for the next request.
        "HeaderReadTimeout" => header_read_timeout: i64 = 10, Seconds, Check::Range(1, 300);
        /// Time a client has to send a request's body.
        "BodyReadTimeout" => body_read_timeout: i64 = 10, Seconds, Check::Range(1, 300);
        /// A connection on which nothing is read or written for this long is closed (above EventsWatch.KeepAliveInterval).
        "IdleTimeout" => idle_timeout: i64 = 120, Seconds, Check::Range(5, 3600);
        /// File of bearer tokens, one a line (`#` comments); empty: token routes answer loopback clients only.
        "TokenFile" => token_file: String = String::new(), Plain, Check::Any;
        /// Routes answered without a token; remove one to put it behind the token.
        "OpenPaths" => open_paths: Vec<String> = open_paths(), Plain, Check::OneOf(OPEN_PATHS);
        /// PEM certificate chain served over TLS; with TLSKeyFile it turns TLS on.
        "TLSCertFile" => tls_cert_file: String = String::new(), Plain, Check::Any;
        /// PEM private key of TLSCertFile.
        "TLSKeyFile" => tls_key_file: String = String::new(), Plain, Check::Any;
        /// PEM CA bundle; when set, every TLS client must present a certificate it signs.
        "ClientCAFile" => client_ca_file: String = String::new(), Plain, Check::Any;
    }
    sections {}
}

//! `huatuo run`: the daemon.

use super::inputs::InputArgs;
use crate::daemon::{self, DaemonOptions};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `huatuo run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    inputs: InputArgs,
    /// Region reported with every record and series.
    #[arg(long, default_value = "")]
    region: String,
    /// Address of the HTTP API (/metrics, /healthz, /status, /v1/events/watch).
    #[arg(long, default_value = "0.0.0.0:19704")]
    listen: SocketAddr,
    /// Read procfs from this directory (a recorded fixture tree).
    #[arg(long, default_value = "/proc", value_name = "DIR")]
    procfs_root: PathBuf,
    /// Read sysfs from this directory.
    #[arg(long, default_value = "/sys", value_name = "DIR")]
    sysfs_root: PathBuf,
    /// Read cgroupfs from this directory.
    #[arg(long, default_value = "/sys/fs/cgroup", value_name = "DIR")]
    cgroup_root: PathBuf,
    /// Read netlink sources from recorded JSON in this directory.
    #[arg(long, value_name = "DIR")]
    netlink_recorded: Option<PathBuf>,
    /// Read GPU sources from recorded JSON in this directory (`metax.json`, `nvidia.json`)
    /// instead of the vendor libraries.
    #[arg(long, value_name = "DIR")]
    gpu_recorded: Option<PathBuf>,
    /// Read XFS log sizes from this recorded JSON (`{"<device>": <bytes>}`) instead of asking
    /// each mounted filesystem (`XFS_IOC_FSGEOMETRY`).
    #[arg(long, value_name = "FILE")]
    xfs_recorded: Option<PathBuf>,
    /// The kernel log device, or a recorded kmsg file.
    #[arg(long, default_value = "/dev/kmsg", value_name = "FILE")]
    kmsg: PathBuf,
    /// Do not load kernel templates (rules that need them get nothing).
    #[arg(long)]
    no_bpf: bool,
    /// Read the templates' maps (histograms, counters) from recorded samples in this file
    /// (JSON lines, as `huatuo replay` reads them) instead of loading templates.
    #[arg(long, value_name = "FILE")]
    bpf_recorded: Option<PathBuf>,
    /// Stop after this many seconds (tests and benchmarks).
    #[arg(long, value_name = "SECONDS")]
    run_for: Option<f64>,
    /// Where records wait on disk while Elasticsearch is unreachable (overrides
    /// `[Storage.ES] SpoolPath`).
    #[arg(long, value_name = "DIR")]
    spool_dir: Option<PathBuf>,
    /// Do not move the agent into its own cgroup (`[RuntimeCgroup]` limits not applied):
    /// for fixture runs beside another agent on the same machine.
    #[arg(long)]
    no_self_limit: bool,
    /// Test hook: wait this many milliseconds after the API serves, before loading templates
    /// (makes the 503 of `/readyz` during start observable).
    #[arg(long, hide = true, default_value_t = 0, value_name = "MS")]
    test_start_delay_ms: u64,
}

/// Runs the daemon until SIGINT/SIGTERM; exit 1 when the rules or config are invalid or the
/// agent cannot start.
pub fn run(args: RunArgs) -> ExitCode {
    crate::logging::init();
    let compiled = match args.inputs.compile() {
        Ok(compiled) => compiled,
        Err(code) => return code,
    };
    let log = &compiled.inputs.config.log;
    crate::logging::apply(log, crate::logging::Rotation::of(log));
    let options = DaemonOptions {
        region: args.region,
        listen: args.listen,
        roots: huatuo_sources::Roots {
            proc: args.procfs_root,
            sys: args.sysfs_root,
        },
        cgroup_root: args.cgroup_root,
        netlink_recorded: args.netlink_recorded,
        gpu_recorded: args.gpu_recorded,
        xfs_recorded: args.xfs_recorded,
        kmsg: args.kmsg,
        bpf: !args.no_bpf,
        bpf_recorded: args.bpf_recorded,
        run_for: args.run_for.map(|s| Duration::from_secs_f64(s.max(0.0))),
        spool_dir: args.spool_dir,
        self_limit: !args.no_self_limit,
        inputs: args.inputs.clone(),
        start_delay: Duration::from_millis(args.test_start_delay_ms),
    };
    match daemon::run(compiled, options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

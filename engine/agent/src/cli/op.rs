//! `huatuo op start|get|stop|flamegraph`: on-demand operations of a running agent over its
//! HTTP API (`/v1/operations`), with an optional bearer token read from a file.

use super::client::{Client, Connection};
use clap::{Args, Subcommand};
use serde_json::{json, Value as Json};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long `--wait` polls beyond the operation's duration.
const WAIT_GRACE: Duration = Duration::from_secs(60);

/// `huatuo op` and its commands.
#[derive(Debug, Args)]
pub struct OpArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: OpCommand,
}

/// The operation commands.
#[derive(Debug, Subcommand)]
pub enum OpCommand {
    /// Start an operation (idempotent per request id) and print it.
    Start(StartArgs),
    /// Print an operation's state.
    Get {
        /// The operation's request id.
        request_id: String,
    },
    /// Ask a running operation to stop and print it.
    Stop {
        /// The operation's request id.
        request_id: String,
    },
    /// Print the SVG flame graph of a finished CPU profile.
    Flamegraph {
        /// The operation's request id.
        request_id: String,
    },
}

/// Flags of `huatuo op start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The request id (the idempotency key); a random one when absent.
    #[arg(long)]
    request_id: Option<String>,
    /// profiling or tracing.
    #[arg(long)]
    kind: String,
    /// spec.type: cpu (profiling); networking_drop, io_tracing, tcp_retransmit (tracing).
    #[arg(long = "type")]
    spec_type: String,
    /// spec.mode of a profile: oncpu or offcpu.
    #[arg(long, default_value = "oncpu")]
    mode: String,
    /// spec.language of a profile.
    #[arg(long)]
    language: Option<String>,
    /// spec.binary_match_path of a profile: only processes whose executable path contains it.
    #[arg(long)]
    binary_match_path: Option<String>,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    duration: i64,
    /// Observe one container (scope container) instead of the host.
    #[arg(long)]
    container: Option<String>,
    /// Poll until the operation is terminal, then print it.
    #[arg(long)]
    wait: bool,
}

/// The start request body the flags describe.
fn start_body(args: &StartArgs) -> Json {
    let spec = if args.kind == "profiling" {
        let mut spec = json!({ "type": args.spec_type, "mode": args.mode });
        if let Some(language) = &args.language {
            spec["language"] = json!(language);
        }
        if let Some(path) = &args.binary_match_path {
            spec["binary_match_path"] = json!(path);
        }
        spec
    } else {
        json!({ "type": args.spec_type })
    };
    let request_id = args.request_id.clone().unwrap_or_else(|| {
        format!(
            "cli-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_millis()
        )
    });
    let mut body = json!({
        "request_id": request_id,
        "kind": args.kind,
        "scope": if args.container.is_some() { "container" } else { "host" },
        "duration_seconds": args.duration,
        "spec": spec,
    });
    if let Some(id) = &args.container {
        body["container_id"] = json!(id);
    }
    body
}

/// The operation `request_id` as the agent reports it.
fn operation(client: &Client, request_id: &str) -> Result<Json, String> {
    let text = client.send("GET", &format!("/v1/operations/{request_id}"), None)?;
    serde_json::from_str(&text).map_err(|e| format!("reply is not JSON: {e}"))
}

/// Polls until the operation is terminal (bounded by its duration plus a grace period).
fn wait_terminal(client: &Client, request_id: &str, duration_s: i64) -> Result<Json, String> {
    let deadline = Instant::now() + Duration::from_secs(duration_s.max(0) as u64) + WAIT_GRACE;
    loop {
        let op = operation(client, request_id)?;
        if op["data"]["status"] == "terminal" {
            return Ok(op);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "operation {request_id} is still {} after waiting",
                op["data"]["status"]
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn execute(args: &OpArgs) -> Result<String, String> {
    let client = Client::new(&args.connection)?;
    match &args.command {
        OpCommand::Start(start) => {
            let body = start_body(start);
            let text = client.send("POST", "/v1/operations", Some(&body))?;
            if !start.wait {
                return Ok(text);
            }
            let id = body["request_id"].as_str().unwrap_or_default();
            wait_terminal(&client, id, start.duration).map(|op| op.to_string())
        }
        OpCommand::Get { request_id } => operation(&client, request_id).map(|op| op.to_string()),
        OpCommand::Stop { request_id } => {
            client.send("POST", &format!("/v1/operations/{request_id}/stop"), None)
        }
        OpCommand::Flamegraph { request_id } => client.send(
            "GET",
            &format!("/v1/operations/{request_id}/flamegraph.svg"),
            None,
        ),
    }
}

/// Runs the command; exit 1 on any error (printed to stderr).
pub fn run(args: OpArgs) -> ExitCode {
    match execute(&args) {
        Ok(text) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

//! `huatuo watch`: streams a running agent's events (`POST /v1/events/watch`) as a readable
//! table or JSON lines; after a disconnect it reconnects with `Last-Event-ID`, so nothing the
//! agent still holds in its replay ring is missed or printed twice.

use super::client::{Client, Connection};
use clap::Args;
use serde_json::{json, Value as Json};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Longest silence on the stream before it is taken for dead (the agent pings far more often).
const READ_TIMEOUT: Duration = Duration::from_secs(90);
/// First and longest wait before reconnecting.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(10));
/// Longest SSE line read (an event is far smaller).
const MAX_LINE: u64 = 4 << 20;
/// Width of the data column of the table.
const DATA_WIDTH: usize = 100;

/// Flags of `huatuo watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    connection: Connection,
    /// Only events whose tracer name matches this regex.
    #[arg(long, value_name = "RE")]
    tracer: Option<String>,
    /// Only events whose container hostname matches this regex.
    #[arg(long, value_name = "RE")]
    container: Option<String>,
    /// One JSON object (the CloudEvent) a line instead of a table.
    #[arg(long)]
    json: bool,
    /// Exit after this many events.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Resume after this event id (as printed with `--json`, `id`).
    #[arg(long, value_name = "ID")]
    last_event_id: Option<String>,
}

/// The watch request body of the flags.
fn request_body(args: &WatchArgs) -> Json {
    let mut filters = serde_json::Map::new();
    if let Some(tracer) = &args.tracer {
        filters.insert("tracer_name".into(), json!(tracer));
    }
    if let Some(container) = &args.container {
        filters.insert("container_hostname".into(), json!(container));
    }
    json!({ "filters": filters })
}

/// One SSE event as read: its `event:` type (empty for events), `id:` and `data:`.
#[derive(Debug, Default, PartialEq)]
struct SseEvent {
    kind: String,
    id: Option<String>,
    data: String,
}

/// Reads SSE events off `reader`, handing each to `on_event`; returns when the stream ends
/// or `on_event` says stop (false).
fn read_events(
    reader: impl std::io::Read,
    mut on_event: impl FnMut(SseEvent) -> bool,
) -> std::io::Result<bool> {
    let mut reader = BufReader::new(reader);
    let mut event = SseEvent::default();
    let mut line = String::new();
    loop {
        line.clear();
        let read = Read::by_ref(&mut reader)
            .take(MAX_LINE)
            .read_line(&mut line)?;
        if read == 0 {
            return Ok(true);
        }
        let text = line.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            let done = std::mem::take(&mut event);
            if (!done.data.is_empty() || !done.kind.is_empty()) && !on_event(done) {
                return Ok(false);
            }
            continue;
        }
        let (field, value) = text.split_once(':').unwrap_or((text, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event.kind = value.to_string(),
            "id" => event.id = Some(value.to_string()),
            "data" => {
                if !event.data.is_empty() {
                    event.data.push('\n');
                }
                event.data.push_str(value);
            }
            _ => {} // comments (`: ping`) and unknown fields
        }
    }
}

/// The table header.
fn header() -> String {
    format!(
        "{:<24} {:<22} {:<16} {:<20} DATA",
        "TIME", "TRACER", "HOST", "CONTAINER"
    )
}

/// One table row of a CloudEvent.
fn row(event: &Json) -> String {
    let data = &event["data"];
    let text = |v: &Json| v.as_str().unwrap_or("-").to_string();
    let time: String = text(&event["time"]).chars().take(23).collect();
    let container = data
        .get("container_hostname")
        .map(text)
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "-".into());
    let mut fields = data["tracer_data"].to_string();
    if fields.chars().count() > DATA_WIDTH {
        fields = fields.chars().take(DATA_WIDTH - 3).collect::<String>() + "...";
    }
    format!(
        "{:<24} {:<22} {:<16} {:<20} {}",
        time,
        text(&data["tracer_name"]),
        text(&data["hostname"]),
        container,
        fields
    )
}

/// Why the stream loop ended.
enum End {
    /// `--count` events printed.
    Done,
    /// The agent refused the request (bad filter, token): no point retrying.
    Refused(String),
}

fn stream(args: &WatchArgs, client: &Client) -> End {
    let body = request_body(args).to_string();
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout_read(READ_TIMEOUT)
        .build();
    let mut last_id = args.last_event_id.clone();
    let mut printed = 0u64;
    let mut backoff = BACKOFF.0;
    let mut stdout = std::io::stdout().lock();
    if !args.json {
        let _ = writeln!(stdout, "{}", header());
    }
    loop {
        let mut request = client
            .authorized(agent.post(&format!("{}/v1/events/watch", client.base)))
            .set("Content-Type", "application/json")
            .set("Accept", "text/event-stream");
        if let Some(id) = &last_id {
            request = request.set("Last-Event-ID", id);
        }
        match request.send_string(&body) {
            Ok(response) => {
                backoff = BACKOFF.0;
                let finished = read_events(response.into_reader(), |event| {
                    match event.kind.as_str() {
                        "" => {
                            let parsed: Json =
                                serde_json::from_str(&event.data).unwrap_or_default();
                            let line = if args.json {
                                event.data.clone()
                            } else {
                                row(&parsed)
                            };
                            if writeln!(stdout, "{line}")
                                .and_then(|_| stdout.flush())
                                .is_err()
                            {
                                // stdout closed (a pipe's reader left): stop.
                                return false;
                            }
                            if event.id.is_some() {
                                last_id = event.id;
                            }
                            printed += 1;
                            args.count.is_none_or(|n| printed < n)
                        }
                        "lost" => {
                            eprintln!("huatuo watch: events lost while away: {}", event.data);
                            true
                        }
                        "dropped" => {
                            eprintln!(
                                "huatuo watch: the agent dropped this stream: {}",
                                event.data
                            );
                            true
                        }
                        _ => true,
                    }
                });
                match finished {
                    Ok(false) => return End::Done,
                    Ok(true) => eprintln!("huatuo watch: stream ended; reconnecting"),
                    Err(e) => eprintln!("huatuo watch: stream broke ({e}); reconnecting"),
                }
            }
            Err(ureq::Error::Status(status, response))
                if (400..500).contains(&status) && status != 429 =>
            {
                let text = response.into_string().unwrap_or_default();
                return End::Refused(format!("HTTP {status}: {}", text.trim()));
            }
            Err(e) => eprintln!("huatuo watch: {e}; retrying in {backoff:?}"),
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(BACKOFF.1);
    }
}

/// Runs the command until `--count` events were printed (or forever); exit 1 when the agent
/// refuses the request.
pub fn run(args: WatchArgs) -> ExitCode {
    let client = match Client::new(&args.connection) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match stream(&args, &client) {
        End::Done => ExitCode::SUCCESS,
        End::Refused(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_comments_and_multi_line_data_are_read() {
        let text = ": ping\n\nid: b-1\ndata: {\"a\":1}\n\nevent: lost\ndata: {\"lost\":3}\n\nid: b-2\ndata: x\ndata: y\n\n";
        let mut seen = Vec::new();
        let ended = read_events(text.as_bytes(), |e| {
            seen.push(e);
            true
        })
        .expect("reads");
        assert!(ended);
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].id.as_deref(), Some("b-1"));
        assert_eq!(seen[1].kind, "lost");
        assert_eq!(seen[2].data, "x\ny");
    }

    #[test]
    fn a_row_shows_time_tracer_host_container_and_data() {
        let event = json!({"time": "2026-12-02T16:00:00.123456789Z", "data": {
            "tracer_name": "oom", "hostname": "node1", "container_hostname": "web-1",
            "tracer_data": {"pid": 7}}});
        let line = row(&event);
        assert!(line.starts_with("2026-12-02T16:00:00.123 "), "{line}");
        for part in ["oom", "node1", "web-1", "{\"pid\":7}"] {
            assert!(line.contains(part), "{part} in {line}");
        }
    }
}

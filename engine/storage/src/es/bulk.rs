//! The `_bulk` request body (NDJSON) and the classification of its response.
//!
//! The bulk API is common to Elasticsearch 7/8 and OpenSearch 2: one action line
//! (`{"index":{"_index":…,"_id":…}}`) then the document source per document, and a response
//! with an `errors` flag and one item per document, in request order.
//!
//! As HUATUO does, each document goes to the daily index `<Index>_cases_YYYY-MM-DD` of the day
//! its record was taken (local time) and carries `es_index_time`, the milliseconds since the
//! epoch when it was sent.

use serde::Deserialize;
use serde_json::{json, Value as Json};

/// One document waiting for delivery: its id (the `tracer_id`), the day of its daily index
/// and its JSON source line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The `_id` to index under, so a replayed document overwrites rather than duplicates.
    pub id: Option<String>,
    /// `YYYY-MM-DD`: the local day of the record (its `time` field), naming its daily index.
    pub day: String,
    /// The document source: one line of JSON without the trailing newline.
    pub line: String,
}

impl Pending {
    /// A pending document from a source line and the record's `time` field
    /// (`2025-06-11 16:05:16.251 +0800`); today when `time` does not start with a date.
    pub fn new(id: Option<String>, time: &str, line: String) -> Pending {
        Pending {
            id,
            day: day_of(time),
            line,
        }
    }

    /// A pending document from a spooled source line; `None` when the line is not a JSON object.
    pub fn from_line(line: String) -> Option<Pending> {
        #[derive(Deserialize)]
        struct Keys {
            tracer_id: Option<String>,
            #[serde(default)]
            time: String,
        }
        let parsed: Keys = serde_json::from_str(&line).ok()?;
        Some(Pending::new(parsed.tracer_id, &parsed.time, line))
    }

    /// The daily index of this document under the `Index` prefix.
    pub fn index(&self, prefix: &str) -> String {
        format!("{prefix}_cases_{}", self.day)
    }
}

/// The `YYYY-MM-DD` a record time starts with, or today's local date.
fn day_of(time: &str) -> String {
    let day = time.get(..10).unwrap_or_default();
    match chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d") {
        Ok(_) => day.to_string(),
        Err(_) => chrono::Local::now().format("%Y-%m-%d").to_string(),
    }
}

/// The source line with `es_index_time` (milliseconds since the epoch) as its first field.
fn with_index_time(line: &str, millis: i64) -> String {
    let field = format!("\"es_index_time\":{millis}");
    match line.strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('}') => format!("{{{field}}}"),
        Some(rest) => format!("{{{field},{rest}"),
        None => line.to_string(),
    }
}

/// The NDJSON body of a bulk request indexing `docs` into their daily indices under
/// `prefix`, stamped with `es_index_time` = `millis`.
pub fn encode(prefix: &str, docs: &[Pending], millis: i64) -> Vec<u8> {
    let mut body = Vec::with_capacity(docs.iter().map(|d| d.line.len() + 128).sum());
    for doc in docs {
        let index = doc.index(prefix);
        let action = match &doc.id {
            Some(id) => json!({ "index": { "_index": index, "_id": id } }),
            None => json!({ "index": { "_index": index } }),
        };
        body.extend_from_slice(action.to_string().as_bytes());
        body.push(b'\n');
        body.extend_from_slice(with_index_time(&doc.line, millis).as_bytes());
        body.push(b'\n');
    }
    body
}

/// What became of one document of a bulk request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Stored (2xx).
    Indexed,
    /// Refused for good (4xx other than 429): the status and the cluster's reason.
    Rejected(u16, String),
    /// Not stored but may succeed later (429, 5xx).
    Retry,
}

/// Why a whole request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The cluster is unreachable, overloaded or answered oddly: send again later.
    Retryable(String),
    /// The cluster refused the credentials (401) or their roles (403): fixable on the
    /// cluster's side without touching the documents, so sent again later, and reported.
    Auth(String),
    /// The request itself was refused; sending it again cannot help.
    Permanent(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Retryable(m) => write!(f, "retryable: {m}"),
            Failure::Auth(m) => write!(f, "refused credentials: {m}"),
            Failure::Permanent(m) => write!(f, "permanent: {m}"),
        }
    }
}

impl Failure {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Failure::Permanent(_))
    }
}

/// Classifies a whole-request answer that is not 2xx.
pub fn request_failure(status: u16, body: &[u8]) -> Failure {
    let reason = format!("HTTP {status}: {}", snippet(body));
    if matches!(status, 401 | 403) {
        Failure::Auth(reason)
    } else if retryable_status(status) || (300..400).contains(&status) {
        Failure::Retryable(reason)
    } else {
        Failure::Permanent(reason)
    }
}

/// Whether an HTTP status, for a whole request or one item, is worth retrying.
fn retryable_status(status: u16) -> bool {
    // 401/403: credentials or roles can be fixed on the cluster side without touching the
    // documents; 408/429: timeouts and back-pressure; 5xx: the cluster is unwell.
    matches!(status, 401 | 403 | 408 | 429) || !(200..500).contains(&status)
}

/// Classifies the answer to a bulk request of `sent` documents.
pub fn classify(status: u16, body: &[u8], sent: usize) -> Result<Vec<ItemOutcome>, Failure> {
    if !(200..300).contains(&status) {
        return Err(request_failure(status, body));
    }
    let parsed: Json = serde_json::from_slice(body)
        .map_err(|e| Failure::Retryable(format!("bulk response is not JSON: {e}")))?;
    let items = parsed
        .get("items")
        .and_then(Json::as_array)
        .ok_or_else(|| Failure::Retryable("bulk response has no items".into()))?;
    if items.len() != sent {
        return Err(Failure::Retryable(format!(
            "bulk response has {} items for {sent} documents",
            items.len()
        )));
    }
    let errors = parsed.get("errors").and_then(Json::as_bool).unwrap_or(true);
    Ok(items
        .iter()
        .map(|item| {
            if errors {
                item_outcome(item)
            } else {
                ItemOutcome::Indexed
            }
        })
        .collect())
}

/// The outcome of one response item (`{"index":{"status":…,"error":{…}}}`).
fn item_outcome(item: &Json) -> ItemOutcome {
    let Some(result) = item.as_object().and_then(|o| o.values().next()) else {
        return ItemOutcome::Retry;
    };
    let status = result
        .get("status")
        .and_then(Json::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(0);
    if (200..300).contains(&status) {
        ItemOutcome::Indexed
    } else if retryable_status(status) {
        ItemOutcome::Retry
    } else {
        let error = result.get("error");
        let kind = error
            .and_then(|e| e.get("type"))
            .and_then(Json::as_str)
            .unwrap_or("error");
        let reason = error
            .and_then(|e| e.get("reason"))
            .and_then(Json::as_str)
            .unwrap_or("");
        ItemOutcome::Rejected(status, format!("{kind}: {reason}"))
    }
}

/// The start of a response body for a log line.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    text.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str) -> Pending {
        Pending::from_line(format!(
            r#"{{"tracer_id":"{id}","time":"2025-06-11 16:05:16.251 +0800"}}"#
        ))
        .expect("object")
    }

    #[test]
    fn body_is_action_then_source_per_document_into_the_daily_index() {
        let body = encode("huatuo_bamai", &[doc("a"), doc("b")], 1_749_629_116_268);
        let body = String::from_utf8(body).unwrap();
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines.len(), 4);
        let action: Json = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(
            action,
            json!({"index": {"_index": "huatuo_bamai_cases_2025-06-11", "_id": "a"}})
        );
        let source: Json = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(
            source,
            json!({"es_index_time": 1_749_629_116_268_i64, "tracer_id": "a",
                   "time": "2025-06-11 16:05:16.251 +0800"})
        );
        assert!(body.ends_with('\n'));
    }

    #[test]
    fn a_document_without_a_record_date_goes_to_today_s_index() {
        let today = chrono::Local::now().format("%Y-%m-%d").to_string();
        let pending = Pending::from_line("{}".into()).unwrap();
        assert_eq!(pending.index("x"), format!("x_cases_{today}"));
        assert_eq!(with_index_time("{}", 5), r#"{"es_index_time":5}"#);
        let bad = Pending::new(None, "yesterday", "{}".into());
        assert_eq!(bad.day, today);
    }

    #[test]
    fn spooled_line_keeps_its_id_and_bad_lines_are_refused() {
        assert_eq!(
            Pending::from_line(r#"{"tracer_id":"x","a":1}"#.into())
                .unwrap()
                .id
                .as_deref(),
            Some("x")
        );
        assert_eq!(Pending::from_line(r#"{"a":1}"#.into()).unwrap().id, None);
        assert!(Pending::from_line("{broken".into()).is_none());
    }

    #[test]
    fn item_statuses_are_classified() {
        let body = br#"{"took":1,"errors":true,"items":[
            {"index":{"status":201}},
            {"index":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}},
            {"index":{"status":429}},
            {"index":{"status":503}}]}"#;
        let items = classify(200, body, 4).unwrap();
        assert_eq!(
            items,
            vec![
                ItemOutcome::Indexed,
                ItemOutcome::Rejected(400, "mapper_parsing_exception: bad".into()),
                ItemOutcome::Retry,
                ItemOutcome::Retry
            ]
        );
    }

    #[test]
    fn request_statuses_are_classified() {
        assert!(matches!(classify(503, b"", 1), Err(Failure::Retryable(_))));
        assert!(matches!(classify(401, b"", 1), Err(Failure::Auth(_))));
        assert!(matches!(classify(403, b"", 1), Err(Failure::Auth(_))));
        assert!(matches!(classify(429, b"", 1), Err(Failure::Retryable(_))));
        assert!(matches!(
            classify(400, b"bad", 1),
            Err(Failure::Permanent(_))
        ));
        assert!(matches!(
            classify(200, b"<html>", 1),
            Err(Failure::Retryable(_))
        ));
        assert!(matches!(
            classify(200, br#"{"errors":false,"items":[]}"#, 1),
            Err(Failure::Retryable(_))
        ));
        assert_eq!(
            classify(
                200,
                br#"{"errors":false,"items":[{"create":{"status":201}}]}"#,
                1
            ),
            Ok(vec![ItemOutcome::Indexed])
        );
    }
}

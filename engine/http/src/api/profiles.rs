//! `GET /v1/profiles`: the continuous profiles kept by the agent, merged over a time range and
//! served as pprof (`profile.proto`, gzip) or folded stacks. The query is parsed and checked
//! here; the agent answers it through a [`ProfilesFn`].

use super::error::ApiError;
use std::collections::HashMap;
use std::sync::Arc;
use warp::http::StatusCode;

/// What a profile counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileType {
    /// On-CPU samples.
    Cpu,
    /// Off-CPU time (blocked and run-queue wait).
    OffCpu,
}

/// Whose stacks a query keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileScope {
    /// Every stack: the host's processes and every container's.
    Host,
    /// Only stacks of processes in containers (one, with `container`).
    Container,
}

/// The encoding of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileFormat {
    /// gzip-compressed `profile.proto` (what `go tool pprof` reads).
    Pprof,
    /// Folded stacks, one `frame;frame;... count` a line (inferno, flamegraph.pl).
    Folded,
}

/// A parsed `GET /v1/profiles` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileQuery {
    /// `type=cpu|offcpu` (default cpu).
    pub kind: ProfileType,
    /// `scope=host|container` (default host; `container=` implies container).
    pub scope: ProfileScope,
    /// `container=`: a full or short container id, or a container name.
    pub container: Option<String>,
    /// `since=`: start of the range, Unix seconds or RFC 3339 (default: everything kept).
    pub since_s: Option<i64>,
    /// `until=`: end of the range, likewise (default: now).
    pub until_s: Option<i64>,
    /// `format=pprof|folded` (default pprof).
    pub format: ProfileFormat,
}

/// An answer body with its content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileBody {
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// The bytes served.
    pub body: Vec<u8>,
}

/// Answers a profile query (called off the async workers: it merges and encodes).
pub type ProfilesFn = Arc<dyn Fn(&ProfileQuery) -> Result<ProfileBody, ApiError> + Send + Sync>;

/// The answer of an agent that runs no continuous profiler.
pub fn disabled() -> ProfilesFn {
    Arc::new(|_: &ProfileQuery| {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "profiling_disabled",
            "continuous profiling is off on this agent ([ContinuousProfiling] Enable = false)",
        ))
    })
}

/// A time as Unix seconds or RFC 3339.
fn parse_time(key: &str, value: &str) -> Result<i64, ApiError> {
    if let Ok(seconds) = value.parse::<i64>() {
        return Ok(seconds);
    }
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp())
        .map_err(|_| {
            ApiError::invalid(format!(
                "{key}: `{value}` is neither Unix seconds nor an RFC 3339 time"
            ))
        })
}

/// Parses the query parameters; unknown keys and bad values are refused naming the key.
pub fn parse_query(params: &HashMap<String, String>) -> Result<ProfileQuery, ApiError> {
    const KEYS: &[&str] = &["type", "scope", "container", "since", "until", "format"];
    if let Some(key) = params.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(ApiError::invalid(format!(
            "{key}: unknown parameter (known: {})",
            KEYS.join(", ")
        )));
    }
    let get = |key: &str| {
        params
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let kind = one_of(
        "type",
        get("type"),
        ProfileType::Cpu,
        &[("cpu", ProfileType::Cpu), ("offcpu", ProfileType::OffCpu)],
    )?;
    let container = get("container").map(str::to_string);
    if let Some(c) = &container {
        if c.len() > 128 {
            return Err(ApiError::invalid("container: longer than 128 characters"));
        }
    }
    let scope = one_of(
        "scope",
        get("scope"),
        if container.is_some() {
            ProfileScope::Container
        } else {
            ProfileScope::Host
        },
        &[
            ("host", ProfileScope::Host),
            ("container", ProfileScope::Container),
        ],
    )?;
    if scope == ProfileScope::Host && container.is_some() {
        return Err(ApiError::invalid(
            "container: only with scope=container (or without scope)",
        ));
    }
    let format = one_of(
        "format",
        get("format"),
        ProfileFormat::Pprof,
        &[
            ("pprof", ProfileFormat::Pprof),
            ("folded", ProfileFormat::Folded),
        ],
    )?;
    let since_s = get("since").map(|v| parse_time("since", v)).transpose()?;
    let until_s = get("until").map(|v| parse_time("until", v)).transpose()?;
    if let (Some(since), Some(until)) = (since_s, until_s) {
        if since > until {
            return Err(ApiError::invalid("since: later than until"));
        }
    }
    Ok(ProfileQuery {
        kind,
        scope,
        container,
        since_s,
        until_s,
        format,
    })
}

/// The value of the enumerated parameter `key`: `default` when it is absent, else the option
/// it names; any other word is an error listing the options.
fn one_of<T: Copy>(
    key: &str,
    value: Option<&str>,
    default: T,
    options: &[(&str, T)],
) -> Result<T, ApiError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match options.iter().find(|(name, _)| *name == value) {
        Some((_, chosen)) => Ok(*chosen),
        None => {
            let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
            Err(ApiError::invalid(format!(
                "{key}: `{value}` is not {}",
                names.join(" or ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Result<ProfileQuery, ApiError> {
        parse_query(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn defaults_and_full_queries() {
        let q = query(&[]).unwrap();
        assert_eq!(
            (q.kind, q.scope, q.format, q.since_s, q.until_s),
            (
                ProfileType::Cpu,
                ProfileScope::Host,
                ProfileFormat::Pprof,
                None,
                None
            )
        );
        let q = query(&[
            ("type", "offcpu"),
            ("container", "abc"),
            ("since", "1700000000"),
            ("until", "2023-11-14T22:13:30Z"),
            ("format", "folded"),
        ])
        .unwrap();
        assert_eq!(q.kind, ProfileType::OffCpu);
        assert_eq!(q.scope, ProfileScope::Container);
        assert_eq!(q.container.as_deref(), Some("abc"));
        assert_eq!(
            (q.since_s, q.until_s),
            (Some(1_700_000_000), Some(1_700_000_010))
        );
        assert_eq!(q.format, ProfileFormat::Folded);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (pairs, key) in [
            (vec![("type", "gpu")], "type:"),
            (vec![("scope", "pod")], "scope:"),
            (vec![("format", "svg")], "format:"),
            (vec![("since", "yesterday")], "since:"),
            (vec![("since", "20"), ("until", "10")], "since:"),
            (vec![("scope", "host"), ("container", "x")], "container:"),
            (vec![("bogus", "1")], "bogus:"),
        ] {
            let err = query(&pairs).unwrap_err();
            assert!(err.message.starts_with(key), "{pairs:?}: {}", err.message);
        }
    }
}

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

/// The keys of a `GET /v1/profiles` query.
const KEYS: &[&str] = &["type", "scope", "container", "since", "until", "format"];

/// The keys of a `GET /v1/profiles/flamegraph.svg` query (always SVG: no `format`).
const FLAME_KEYS: &[&str] = &[
    "type",
    "scope",
    "container",
    "since",
    "until",
    "base_since",
    "base_until",
];

/// Refuses a key outside `known`, naming it and the known ones.
fn known_keys(params: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(key) => Err(ApiError::invalid(format!(
            "{key}: unknown parameter (known: {})",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// A parsed `GET /v1/profiles/flamegraph.svg` query: the range drawn and, when `base_since`
/// or `base_until` is given, the base range it is compared with (same type and scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlameQuery {
    /// The range drawn (folded).
    pub query: ProfileQuery,
    /// The base of a differential graph.
    pub base: Option<ProfileQuery>,
}

/// Parses a flame graph query; unknown keys and bad values are refused naming the key.
pub fn parse_flame_query(params: &HashMap<String, String>) -> Result<FlameQuery, ApiError> {
    known_keys(params, FLAME_KEYS)?;
    let mut range = params.clone();
    let base_since = range.remove("base_since").filter(|v| !v.is_empty());
    let base_until = range.remove("base_until").filter(|v| !v.is_empty());
    let mut query = parse_query(&range)?;
    query.format = ProfileFormat::Folded;
    let base = if base_since.is_some() || base_until.is_some() {
        let since_s = base_since
            .map(|v| parse_time("base_since", &v))
            .transpose()?;
        let until_s = base_until
            .map(|v| parse_time("base_until", &v))
            .transpose()?;
        if let (Some(since), Some(until)) = (since_s, until_s) {
            if since > until {
                return Err(ApiError::invalid("base_since: later than base_until"));
            }
        }
        Some(ProfileQuery {
            since_s,
            until_s,
            ..query.clone()
        })
    } else {
        None
    };
    Ok(FlameQuery { query, base })
}

/// How a range is written in a flame graph's title.
fn range_text(query: &ProfileQuery) -> String {
    let at = |s: Option<i64>, open: &str| {
        s.and_then(|s| chrono::DateTime::from_timestamp(s, 0))
            .map_or_else(
                || open.to_string(),
                |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            )
    };
    format!(
        "{} to {}",
        at(query.since_s, "start"),
        at(query.until_s, "now")
    )
}

/// The SVG flame graph of a range, or the differential graph of the range against its base:
/// the folded answers of `answer`, rendered by [`crate::flame`].
pub fn flamegraph(answer: &ProfilesFn, flame: &FlameQuery) -> Result<String, ApiError> {
    let folded = |query: &ProfileQuery| -> Result<Vec<String>, ApiError> {
        let body = answer(query)?;
        Ok(String::from_utf8_lossy(&body.body)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    };
    let query = &flame.query;
    let (kind, unit) = match query.kind {
        ProfileType::Cpu => ("CPU", "samples"),
        ProfileType::OffCpu => ("off-CPU", "us"),
    };
    let whose = match &query.container {
        Some(c) if super::request::valid_container_id(c) => format!("container {}", &c[..12]),
        Some(c) => format!("container {c}"),
        None if query.scope == ProfileScope::Container => "every container".to_string(),
        None => "the host".to_string(),
    };
    let title = format!("{kind} profile of {whose}, {}", range_text(query));
    let after = folded(query)?;
    let svg = match &flame.base {
        Some(base) => {
            let before = folded(base)?;
            let title = format!("{title} vs {}", range_text(base));
            crate::flame::diff_svg(&before, &after, &title, unit)
        }
        None => crate::flame::svg(&after, &title, unit),
    };
    svg.map_err(|e| ApiError::internal(format!("flame graph: {e}")))
}

/// Parses the query parameters; unknown keys and bad values are refused naming the key.
pub fn parse_query(params: &HashMap<String, String>) -> Result<ProfileQuery, ApiError> {
    known_keys(params, KEYS)?;
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

    fn flame(pairs: &[(&str, &str)]) -> Result<FlameQuery, ApiError> {
        parse_flame_query(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// Answers folded stacks naming the range asked, so a test sees which range was drawn.
    fn by_range() -> ProfilesFn {
        Arc::new(|q: &ProfileQuery| {
            assert_eq!(q.format, ProfileFormat::Folded);
            let frame = match q.since_s {
                Some(100) => "early_fn",
                _ => "late_fn",
            };
            Ok(ProfileBody {
                content_type: "text/plain",
                body: format!("app;main;{frame} 40\napp;main;both_fn 10\n").into_bytes(),
            })
        })
    }

    #[test]
    fn flame_queries_draw_a_range_or_its_diff_against_a_base() {
        let q = flame(&[("type", "offcpu"), ("since", "200"), ("until", "300")]).unwrap();
        assert_eq!(q.base, None);
        assert_eq!(q.query.format, ProfileFormat::Folded);
        let svg = flamegraph(&by_range(), &q).unwrap();
        assert!(
            svg.contains("late_fn") && !svg.contains("early_fn"),
            "{svg}"
        );
        assert!(svg.contains("off-CPU profile of the host"), "title missing");
        assert!(svg.contains("40 us"), "off-CPU counts are microseconds");

        let q = flame(&[
            ("container", "web"),
            ("since", "200"),
            ("base_since", "100"),
            ("base_until", "150"),
        ])
        .unwrap();
        let base = q.base.clone().expect("a base range");
        assert_eq!(
            (base.since_s, base.until_s, base.container.as_deref()),
            (Some(100), Some(150), Some("web"))
        );
        let svg = flamegraph(&by_range(), &q).unwrap();
        assert!(
            svg.contains("CPU profile of container web"),
            "title missing"
        );
        assert!(svg.contains(" vs "), "a diff names its base range");
        // The diff has the shape of the later range: its new frame is drawn, the gone one not.
        assert!(svg.contains("late_fn") && !svg.contains("early_fn"));
    }

    #[test]
    fn bad_flame_queries_name_their_key() {
        for (pairs, key) in [
            (vec![("format", "folded")], "format:"),
            (vec![("base_since", "soon")], "base_since:"),
            (
                vec![("base_since", "20"), ("base_until", "10")],
                "base_since:",
            ),
            (vec![("since", "20"), ("until", "10")], "since:"),
            (vec![("type", "gpu")], "type:"),
        ] {
            let err = flame(&pairs).unwrap_err();
            assert!(err.message.starts_with(key), "{pairs:?}: {}", err.message);
        }
        let err = flamegraph(&disabled(), &flame(&[]).unwrap()).unwrap_err();
        assert_eq!(err.code, "profiling_disabled");
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

//! Reading back what [`crate::local`] wrote: records of every tracer, newest first, in pages
//! with a stable cursor.
//!
//! An in-memory index holds, per record, its time, id, tracer, container and where its JSON
//! line sits. It is kept per file and keyed by the file's inode, so a rotation (a rename)
//! keeps the index of the moved file and appends are indexed from where the last look ended:
//! a query reads only what was written since the previous one, plus the bodies of the page.
//! The index is bounded ([`MAX_ENTRIES`]): newest files first, older ones left out and
//! counted; a text filter reads bodies up to [`MAX_SCAN_BYTES`] per page.

use chrono::DateTime;
use huatuo_dsl::tracer_names;
use regex::Regex;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records the index holds at most, across every file.
pub const MAX_ENTRIES: usize = 200_000;
/// Largest page a query returns.
pub const MAX_LIMIT: usize = 500;
/// Body bytes a text-filtered query reads at most before it returns a partial page.
pub const MAX_SCAN_BYTES: u64 = 64 * 1024 * 1024;
/// Longest record line indexed; longer ones are skipped and counted.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// Where a page ended: the time (ms) and id of its last record. Records strictly after it in
/// the newest-first order come next, whatever was written or rotated in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Record time, milliseconds since the epoch.
    pub time_ms: i64,
    /// The record's `tracer_id`.
    pub id: String,
}

impl Cursor {
    /// The cursor's text form, `<time_ms>_<tracer_id>`.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.time_ms, self.id)
    }

    /// Reads the text form back; the error says what is wrong.
    pub fn decode(text: &str) -> Result<Cursor, String> {
        let (time, id) = text
            .split_once('_')
            .ok_or("cursor: not a cursor this API handed out")?;
        let time_ms = time
            .parse::<i64>()
            .map_err(|_| "cursor: not a cursor this API handed out")?;
        if id.is_empty()
            || id.len() > 128
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("cursor: not a cursor this API handed out".into());
        }
        Ok(Cursor {
            time_ms,
            id: id.to_string(),
        })
    }
}

/// What a history query asks for.
#[derive(Debug, Default)]
pub struct Query {
    /// Only tracers one of whose names (current or HUATUO's older) matches.
    pub tracer: Option<Regex>,
    /// Only records whose `container_id` or `container_hostname` matches.
    pub container: Option<Regex>,
    /// Only records whose JSON text matches.
    pub text: Option<Regex>,
    /// Records at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Records before this time (ms since the epoch).
    pub until_ms: Option<i64>,
    /// Page size, 1 to [`MAX_LIMIT`].
    pub limit: usize,
    /// Continue after this record.
    pub cursor: Option<Cursor>,
}

/// One page of records, newest first.
#[derive(Debug, serde::Serialize)]
pub struct Page {
    /// The stored documents.
    pub records: Vec<Json>,
    /// Where the next page starts; absent on the last page.
    pub next_cursor: Option<String>,
    /// Records the index holds now (all tracers).
    pub indexed: usize,
    /// Record files left out of the index because it is full (their records are older).
    pub unindexed_files: usize,
    /// Record lines that could not be read (not JSON, no time, too long).
    pub unreadable: u64,
    /// The text filter stopped at its read bound: `next_cursor` continues the search.
    pub partial: bool,
}

/// A record id as the index keeps it: the agent's ids (32 lower-case hex digits, a UUID) as
/// their 16 bytes, any other id as its text. Ordered as the text is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RecordId {
    Hex([u8; 16]),
    Text(Box<str>),
}

impl RecordId {
    fn new(id: &str) -> RecordId {
        let digit = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        let bytes = id.as_bytes();
        if bytes.len() == 32 {
            let mut out = [0u8; 16];
            let decoded = out.iter_mut().enumerate().all(|(i, o)| {
                match (digit(bytes[2 * i]), digit(bytes[2 * i + 1])) {
                    (Some(hi), Some(lo)) => {
                        *o = hi << 4 | lo;
                        true
                    }
                    _ => false,
                }
            });
            if decoded {
                return RecordId::Hex(out);
            }
        }
        RecordId::Text(id.into())
    }

    fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            RecordId::Hex(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
            RecordId::Text(text) => std::borrow::Cow::Borrowed(text),
        }
    }
}

impl Ord for RecordId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            // Lower-case hex text sorts as its bytes do.
            (RecordId::Hex(a), RecordId::Hex(b)) => a.cmp(b),
            _ => self.text().cmp(&other.text()),
        }
    }
}

impl PartialOrd for RecordId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One indexed record. Tracer and container names are shared by every record that has them.
#[derive(Debug)]
struct Entry {
    time_ms: i64,
    id: RecordId,
    tracer: Arc<str>,
    container: Arc<str>,
    offset: u64,
    len: u32,
}

#[derive(Debug)]
struct FileIndex {
    file: Arc<File>,
    indexed_to: u64,
    entries: Vec<Entry>,
    unreadable: u64,
}

#[derive(Debug, Default)]
struct Index {
    /// When a query last used the index.
    used: Option<Instant>,
    files: HashMap<(u64, u64), FileIndex>,
    unindexed_files: usize,
    /// The tracer and container names of the indexed records, each kept once.
    names: Names,
}

/// Interned names: a tracer or container name is stored once however many records carry it.
#[derive(Debug, Default)]
struct Names(std::collections::HashSet<Arc<str>>);

impl Names {
    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.0.get(name) {
            return known.clone();
        }
        let name: Arc<str> = name.into();
        self.0.insert(name.clone());
        name
    }

    /// Forgets names no indexed record carries any more.
    fn prune(&mut self) {
        self.0.retain(|name| Arc::strong_count(name) > 1);
    }
}

/// The history of one local record directory.
#[derive(Debug)]
pub struct History {
    dir: PathBuf,
    index: Mutex<Index>,
}

impl History {
    /// The history of the records under `dir` (`[Storage.LocalFile] Path`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        History {
            dir: dir.into(),
            index: Mutex::new(Index::default()),
        }
    }

    /// Brings the index up to date and answers `query` (reads files: call it off the async
    /// workers). The error names the directory or file that could not be read.
    pub fn query(&self, query: &Query) -> Result<Page, String> {
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        index.used = Some(Instant::now());
        refresh(&self.dir, &mut index)?;
        let cursor = query
            .cursor
            .as_ref()
            .map(|c| (c.time_ms, RecordId::new(&c.id)));
        let mut candidates: Vec<(&Entry, &Arc<File>)> = Vec::new();
        let mut indexed = 0;
        let mut unreadable = 0;
        for file in index.files.values() {
            indexed += file.entries.len();
            unreadable += file.unreadable;
            candidates.extend(
                file.entries
                    .iter()
                    .filter(|e| wanted(e, query, cursor.as_ref()))
                    .map(|e| (e, &file.file)),
            );
        }
        candidates.sort_unstable_by(|(a, _), (b, _)| {
            b.time_ms.cmp(&a.time_ms).then_with(|| b.id.cmp(&a.id))
        });
        let limit = query.limit.clamp(1, MAX_LIMIT);
        let mut records = Vec::new();
        let mut scanned = 0u64;
        let mut last = None;
        let mut partial = false;
        for (position, (entry, file)) in candidates.iter().enumerate() {
            if records.len() == limit {
                break;
            }
            if query.text.is_some() && scanned >= MAX_SCAN_BYTES {
                partial = true;
                break;
            }
            last = Some(position);
            scanned += u64::from(entry.len);
            let Some(body) = read_body(file, entry) else {
                unreadable += 1;
                continue;
            };
            if query.text.as_ref().is_some_and(|re| !re.is_match(&body)) {
                continue;
            }
            match serde_json::from_str(&body) {
                Ok(doc) => records.push(doc),
                Err(_) => unreadable += 1,
            }
        }
        let next_cursor = last
            .filter(|p| p + 1 < candidates.len())
            .map(|p| cursor_of(candidates[p].0).encode());
        Ok(Page {
            records,
            next_cursor,
            indexed,
            unindexed_files: index.unindexed_files,
            unreadable,
            partial,
        })
    }
}

impl History {
    /// Drops the index when no query has used it for `idle`, so a console that went away
    /// leaves no memory behind (about 84 bytes a record, up to [`MAX_ENTRIES`]); the next
    /// query indexes the files again. Returns whether it dropped one.
    pub fn release_idle(&self, idle: Duration) -> bool {
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        if index.used.is_some_and(|used| used.elapsed() >= idle) {
            *index = Index::default();
            return true;
        }
        false
    }

    /// Records the index holds now.
    pub fn indexed(&self) -> usize {
        let index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        index.files.values().map(|f| f.entries.len()).sum()
    }

    /// The stored record whose `tracer_id` is `id`, `None` when the index has none.
    pub fn find(&self, id: &str) -> Result<Option<Json>, String> {
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        index.used = Some(Instant::now());
        refresh(&self.dir, &mut index)?;
        let wanted = RecordId::new(id);
        let found = index.files.values().find_map(|file| {
            let entry = file.entries.iter().find(|e| e.id == wanted)?;
            read_body(&file.file, entry)
        });
        Ok(found.and_then(|body| serde_json::from_str(&body).ok()))
    }
}

fn cursor_of(entry: &Entry) -> Cursor {
    Cursor {
        time_ms: entry.time_ms,
        id: entry.id.text().into_owned(),
    }
}

/// Whether `entry` passes the query's index-level filters and comes after `cursor` (the
/// query's, with its id as the index keeps ids).
fn wanted(entry: &Entry, query: &Query, cursor: Option<&(i64, RecordId)>) -> bool {
    if query.since_ms.is_some_and(|s| entry.time_ms < s)
        || query.until_ms.is_some_and(|u| entry.time_ms >= u)
    {
        return false;
    }
    if let Some((time_ms, id)) = cursor {
        let after = entry.time_ms < *time_ms || (entry.time_ms == *time_ms && entry.id < *id);
        if !after {
            return false;
        }
    }
    // Like the watch filter, a tracer matches by any of its names (HUATUO's older ones too).
    let tracer_matches = |re: &Regex| {
        tracer_names::all_names(&entry.tracer)
            .iter()
            .any(|name| re.is_match(name))
    };
    query.tracer.as_ref().is_none_or(tracer_matches)
        && query
            .container
            .as_ref()
            .is_none_or(|re| re.is_match(&entry.container))
}

fn read_body(file: &File, entry: &Entry) -> Option<String> {
    let mut buf = vec![0; entry.len as usize];
    file.read_exact_at(&mut buf, entry.offset).ok()?;
    String::from_utf8(buf).ok()
}

/// Lists the directory and indexes what is new: files not seen, bytes appended since the last
/// look; forgets files that are gone.
fn refresh(dir: &Path, index: &mut Index) -> Result<(), String> {
    let listing = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in listing.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_file() {
            let mtime = meta.modified().ok();
            files.push((path, meta, mtime));
        }
    }
    // Newest first, so a full index keeps the recent records.
    files.sort_by_key(|f| std::cmp::Reverse(f.2));
    let present: Vec<(u64, u64)> = files.iter().map(|(_, m, _)| (m.dev(), m.ino())).collect();
    index.files.retain(|key, _| present.contains(key));
    let mut total: usize = 0;
    index.unindexed_files = 0;
    for (path, meta, _) in files {
        let key = (meta.dev(), meta.ino());
        // A file shorter than what was indexed, or whose first record moved, is not the file
        // indexed under this inode any more (truncated, or a new file on a reused inode).
        let stale = index
            .files
            .get(&key)
            .is_some_and(|f| f.indexed_to > meta.len() || !first_record_in_place(f));
        if stale {
            index.files.remove(&key);
        }
        if !index.files.contains_key(&key) {
            if total >= MAX_ENTRIES {
                index.unindexed_files += 1;
                continue;
            }
            let Ok(file) = File::open(&path) else {
                continue;
            };
            index.files.insert(
                key,
                FileIndex {
                    file: Arc::new(file),
                    indexed_to: 0,
                    entries: Vec::new(),
                    unreadable: 0,
                },
            );
        }
        if let Some(file) = index.files.get_mut(&key) {
            if file.indexed_to < meta.len() && total < MAX_ENTRIES {
                extend(file, &mut index.names, MAX_ENTRIES - total)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            total += file.entries.len();
        }
    }
    index.names.prune();
    Ok(())
}

/// Whether the first indexed record of `index` is still where it was indexed (its bytes
/// still name its id; a text check, no parse, as it runs for every file on every query).
fn first_record_in_place(index: &FileIndex) -> bool {
    index.entries.first().is_none_or(|entry| {
        let id = format!("\"tracer_id\":\"{}\"", entry.id.text());
        read_body(&index.file, entry).is_some_and(|body| body.contains(&id))
    })
}

/// Indexes the complete lines appended to `file` since its last look, `room` records at most;
/// the entries' vector is trimmed to its length after (no spare capacity kept).
fn extend(index: &mut FileIndex, names: &mut Names, room: usize) -> std::io::Result<()> {
    let result = extend_entries(index, names, room);
    index.entries.shrink_to_fit();
    result
}

fn extend_entries(index: &mut FileIndex, names: &mut Names, room: usize) -> std::io::Result<()> {
    let mut reader = BufReader::new(index.file.as_ref());
    reader.seek(SeekFrom::Start(index.indexed_to))?;
    let mut offset = index.indexed_to;
    let mut line = Vec::new();
    let mut added = 0;
    while added < room {
        line.clear();
        let read = reader
            .by_ref()
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if read == 0 || line.last() != Some(&b'\n') {
            if read > MAX_LINE {
                // A line too long to index: skip to its end.
                index.unreadable += 1;
                let mut rest = Vec::new();
                let skipped = reader.read_until(b'\n', &mut rest)?;
                if rest.last() != Some(&b'\n') {
                    break;
                }
                offset += (read + skipped) as u64;
                index.indexed_to = offset;
                continue;
            }
            // End of file or a line still being written: look again next time.
            break;
        }
        let body = &line[..line.len() - 1];
        if body.first() == Some(&b'{') {
            match entry_of(body, offset, names) {
                Some(entry) => {
                    index.entries.push(entry);
                    added += 1;
                }
                None => index.unreadable += 1,
            }
        }
        offset += read as u64;
        index.indexed_to = offset;
    }
    Ok(())
}

/// The index entry of one record line at `offset`, `None` when it has no usable time or id.
fn entry_of(body: &[u8], offset: u64, names: &mut Names) -> Option<Entry> {
    let doc: Json = serde_json::from_slice(body).ok()?;
    let text = |name: &str| doc.get(name).and_then(Json::as_str).unwrap_or("");
    let time_ms = record_time_ms(&doc)?;
    let id = text("tracer_id");
    if id.is_empty() {
        return None;
    }
    Some(Entry {
        time_ms,
        id: RecordId::new(id),
        tracer: names.get(text("tracer_name")),
        container: names.get(&format!(
            "{} {}",
            text("container_id"),
            text("container_hostname")
        )),
        offset,
        len: u32::try_from(body.len()).ok()?,
    })
}

/// When a stored record happened: its `tracer_time` (HUATUO's `2025-06-11 16:05:16.251
/// +0800`), else `time`, else the RFC 3339 `uploaded_time`.
pub fn record_time_ms(doc: &Json) -> Option<i64> {
    let text = |name: &str| doc.get(name).and_then(Json::as_str);
    ["tracer_time", "time"]
        .iter()
        .filter_map(|f| text(f))
        .find_map(|t| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f %z").ok())
        .or_else(|| text("uploaded_time").and_then(|t| DateTime::parse_from_rfc3339(t).ok()))
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_keep_their_text_and_its_order() {
        let uuid = "0123456789abcdef0123456789abcdef";
        let ids = [
            uuid,
            "0123456789abcdef0123456789abcdee",
            "0123456789ABCDEF0123456789ABCDEF",
            "paged00000003",
            "0123",
            "f123456789abcdef0123456789abcdef",
        ];
        for id in ids {
            assert_eq!(RecordId::new(id).text(), id);
        }
        assert!(matches!(RecordId::new(uuid), RecordId::Hex(_)));
        assert!(matches!(
            RecordId::new("0123456789ABCDEF0123456789ABCDEF"),
            RecordId::Text(_)
        ));
        for a in ids {
            for b in ids {
                assert_eq!(
                    RecordId::new(a).cmp(&RecordId::new(b)),
                    a.cmp(b),
                    "{a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn names_are_kept_once_and_forgotten_with_their_records() {
        let mut names = Names::default();
        let a = names.get("web-1");
        let b = names.get("web-1");
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        names.prune();
        assert!(names.0.is_empty());
    }
}

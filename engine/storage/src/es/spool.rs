//! The bounded on-disk spool: documents the cluster could not take yet, replayed in order.
//!
//! Layout: `<dir>/<seq>.ndjson` segment files holding one document source per line, oldest
//! first by sequence number, and `<dir>/cursor` (`<seq> <offset>`) marking how much of the
//! oldest segment the cluster has already confirmed. A segment is deleted once fully
//! confirmed; when the spool would exceed its byte cap, the oldest segment is deleted and
//! its unconfirmed documents are counted in `spool_dropped`. A torn last line (a crash in
//! the middle of a write) is cut off when the spool is opened.

use super::bulk::Pending;
use super::counters::EsCounters;
use super::ratelog::RateLog;
use crate::StorageError;
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Suffix of segment files.
const SEGMENT_SUFFIX: &str = ".ndjson";
/// Name of the file recording the confirmed prefix of the oldest segment.
const CURSOR_FILE: &str = "cursor";
/// Mode of segment and cursor files: documents carry process names, paths and addresses.
const FILE_MODE: u32 = 0o600;

/// One segment file: its sequence number, size and number of documents.
#[derive(Debug, Clone, Copy)]
struct Segment {
    seq: u64,
    bytes: u64,
    docs: u64,
}

/// Documents read from the head of the spool for one replay request.
#[derive(Debug)]
pub struct Chunk {
    /// The segment they were read from.
    seq: u64,
    /// The byte offset just after the last line read.
    end: u64,
    /// The lines read, unreadable ones included, in order.
    lines: u64,
    /// The documents to send.
    pub docs: Vec<Pending>,
}

/// The on-disk spool (see the module documentation).
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    /// Confirmed bytes and lines at the start of the oldest segment.
    head_offset: u64,
    head_lines: u64,
    /// The newest segment, open for appending, when one is.
    active: Option<(u64, File)>,
    next_seq: u64,
    total_bytes: u64,
    counters: Arc<EsCounters>,
    drop_log: RateLog,
}

impl Spool {
    /// Opens (creating) the spool in `dir`, taking over whatever an earlier run left there.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        segment_bytes: u64,
        counters: Arc<EsCounters>,
    ) -> Result<Spool, StorageError> {
        // Documents can carry process names and paths: keep the spool private to the agent.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| StorageError::io(dir, e))?;
        let mut seqs = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
            let entry = entry.map_err(|e| StorageError::io(dir, e))?;
            let name = entry.file_name();
            let seq = name
                .to_str()
                .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(seq) = seq {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: segment_bytes.max(1),
            segments: VecDeque::new(),
            head_offset: 0,
            head_lines: 0,
            active: None,
            next_seq: seqs.last().map_or(1, |s| s + 1),
            total_bytes: 0,
            counters,
            drop_log: RateLog::new("spool"),
        };
        for seq in seqs {
            let path = spool.segment_path(seq);
            let (bytes, docs) = scan(&path, u64::MAX).map_err(|e| StorageError::io(&path, e))?;
            if docs == 0 {
                remove(&path);
                continue;
            }
            truncate_to(&path, bytes).map_err(|e| StorageError::io(&path, e))?;
            spool.segments.push_back(Segment { seq, bytes, docs });
            spool.total_bytes += bytes;
        }
        spool.restore_cursor();
        // The cap may have been lowered since the last run.
        while spool.total_bytes > spool.max_bytes {
            spool.drop_oldest();
        }
        spool.publish();
        Ok(spool)
    }

    /// Documents waiting in the spool.
    pub fn pending_docs(&self) -> u64 {
        self.segments.iter().map(|s| s.docs).sum::<u64>() - self.head_lines
    }

    /// Whether nothing waits in the spool.
    pub fn is_empty(&self) -> bool {
        self.pending_docs() == 0
    }

    /// Appends documents at the tail, dropping the oldest segments to stay within the cap.
    pub fn append(&mut self, docs: &[Pending]) {
        for doc in docs {
            let len = doc.line.len() as u64 + 1;
            if len > self.max_bytes {
                self.drop_log.warn(format_args!(
                    "a {len}-byte document is larger than the whole spool ({} bytes); dropped",
                    self.max_bytes
                ));
                EsCounters::add(&self.counters.spool_dropped, 1);
                continue;
            }
            while self.total_bytes + len > self.max_bytes && !self.segments.is_empty() {
                self.drop_oldest();
            }
            match self.write_line(doc, len) {
                Ok(()) => EsCounters::add(&self.counters.spooled, 1),
                Err(e) => {
                    let dir = self.dir.display();
                    self.drop_log
                        .warn(format_args!("{dir}: {e}; document lost"));
                    EsCounters::add(&self.counters.lost, 1);
                }
            }
        }
        self.publish();
    }

    /// Reads up to `max_docs` documents (and about `max_bytes`) from the head of the spool.
    pub fn peek(&self, max_docs: usize, max_bytes: usize) -> Result<Option<Chunk>, StorageError> {
        let Some(head) = self.segments.front() else {
            return Ok(None);
        };
        let path = self.segment_path(head.seq);
        let io = |e| StorageError::io(&path, e);
        let mut file = File::open(&path).map_err(io)?;
        file.seek(SeekFrom::Start(self.head_offset)).map_err(io)?;
        let mut reader = BufReader::new(file.take(head.bytes.saturating_sub(self.head_offset)));
        let mut chunk = Chunk {
            seq: head.seq,
            end: self.head_offset,
            lines: 0,
            docs: Vec::new(),
        };
        let mut bytes = 0usize;
        let mut buf = Vec::new();
        while chunk.docs.len() < max_docs && (bytes < max_bytes || chunk.docs.is_empty()) {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(io)?;
            if n == 0 || buf.last() != Some(&b'\n') {
                break;
            }
            chunk.end += n as u64;
            chunk.lines += 1;
            bytes += n;
            buf.pop();
            let line = String::from_utf8(std::mem::take(&mut buf)).ok();
            match line.and_then(Pending::from_line) {
                Some(doc) => chunk.docs.push(doc),
                None => {
                    log::warn!(
                        "Storage.ES spool {}: unreadable line dropped",
                        path.display()
                    );
                    EsCounters::add(&self.counters.spool_dropped, 1);
                }
            }
        }
        Ok(Some(chunk))
    }

    /// Marks a chunk as confirmed: its documents leave the spool.
    pub fn commit(&mut self, chunk: &Chunk) {
        let Some(head) = self.segments.front().copied() else {
            return;
        };
        if head.seq != chunk.seq || chunk.end < self.head_offset {
            // The segment was dropped (spool full) while the chunk was in flight.
            return;
        }
        self.head_offset = chunk.end;
        self.head_lines += chunk.lines;
        if self.head_offset >= head.bytes {
            self.remove_head();
        } else if let Err(e) = self.save_cursor() {
            log::warn!("Storage.ES spool cursor: {e}; confirmed documents may be sent again");
        }
        self.publish();
    }

    /// Appends one line, starting a new segment when the current one is full.
    fn write_line(&mut self, doc: &Pending, len: u64) -> std::io::Result<()> {
        let active_bytes = match (&self.active, self.segments.back()) {
            (Some((seq, _)), Some(last)) if *seq == last.seq => Some(last.bytes),
            _ => None,
        };
        if active_bytes.is_none_or(|b| b > 0 && b + len > self.segment_bytes) {
            let seq = self.next_seq;
            self.next_seq += 1;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(FILE_MODE)
                .open(self.segment_path(seq))?;
            self.active = Some((seq, file));
            self.segments.push_back(Segment {
                seq,
                bytes: 0,
                docs: 0,
            });
        }
        let (Some((_, file)), Some(last)) = (self.active.as_mut(), self.segments.back_mut()) else {
            return Err(std::io::Error::other("no active spool segment"));
        };
        let mut line = Vec::with_capacity(len as usize);
        line.extend_from_slice(doc.line.as_bytes());
        line.push(b'\n');
        if let Err(e) = file.write_all(&line) {
            // Cut a partial write so the segment stays whole lines.
            let _ = file.set_len(last.bytes);
            self.active = None;
            return Err(e);
        }
        last.bytes += len;
        last.docs += 1;
        self.total_bytes += len;
        Ok(())
    }

    /// Deletes the oldest segment, counting its unconfirmed documents as dropped.
    pub fn drop_oldest(&mut self) {
        if let Some(head) = self.segments.front() {
            let dropped = head.docs - self.head_lines;
            self.drop_log.warn(format_args!(
                "dropped the oldest {dropped} documents (cap {} bytes or unreadable)",
                self.max_bytes
            ));
            EsCounters::add(&self.counters.spool_dropped, dropped);
        }
        self.remove_head();
        self.publish();
    }

    /// Deletes the oldest segment file and resets the cursor.
    fn remove_head(&mut self) {
        let Some(head) = self.segments.pop_front() else {
            return;
        };
        if self
            .active
            .as_ref()
            .is_some_and(|(seq, _)| *seq == head.seq)
        {
            self.active = None;
        }
        remove(&self.segment_path(head.seq));
        remove(&self.dir.join(CURSOR_FILE));
        self.total_bytes -= head.bytes;
        self.head_offset = 0;
        self.head_lines = 0;
    }

    /// Writes the cursor atomically (temporary file, then rename).
    fn save_cursor(&self) -> std::io::Result<()> {
        let Some(head) = self.segments.front() else {
            return Ok(());
        };
        let tmp = self.dir.join(format!("{CURSOR_FILE}.tmp"));
        OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp)?
            .write_all(format!("{} {}\n", head.seq, self.head_offset).as_bytes())?;
        fs::rename(&tmp, self.dir.join(CURSOR_FILE))
    }

    /// Reads the cursor left by an earlier run; a stale or damaged one is ignored.
    fn restore_cursor(&mut self) {
        let path = self.dir.join(CURSOR_FILE);
        let Ok(text) = fs::read_to_string(&path) else {
            return;
        };
        let mut parts = text.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(seq)), Some(Ok(offset))) = (parts.next(), parts.next()) else {
            log::warn!(
                "Storage.ES spool: damaged cursor {} ignored",
                path.display()
            );
            return;
        };
        let Some(head) = self.segments.front().copied() else {
            return;
        };
        if head.seq != seq || offset > head.bytes {
            return;
        }
        let segment = self.segment_path(seq);
        match scan(&segment, offset) {
            Ok((bytes, lines)) if bytes == offset => {
                self.head_offset = offset;
                self.head_lines = lines;
                if offset == head.bytes {
                    self.remove_head();
                }
            }
            Ok(_) => log::warn!("Storage.ES spool: cursor not on a line boundary, ignored"),
            Err(e) => log::warn!("Storage.ES spool {}: {e}", segment.display()),
        }
    }

    /// Publishes the spool's size to the counters.
    fn publish(&self) {
        let counters = &self.counters;
        counters
            .spool_bytes
            .store(self.total_bytes, Ordering::Relaxed);
        counters
            .spool_docs
            .store(self.pending_docs(), Ordering::Relaxed);
    }

    /// The file of segment `seq`.
    fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}{SEGMENT_SUFFIX}"))
    }
}

/// Within the first `limit` bytes of a file: the length up to the last newline and the
/// number of newlines.
fn scan(path: &Path, limit: u64) -> std::io::Result<(u64, u64)> {
    let mut reader = BufReader::new(File::open(path)?.take(limit));
    let (mut pos, mut whole, mut lines) = (0u64, 0u64, 0u64);
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok((whole, lines));
        }
        for (i, b) in buf.iter().enumerate() {
            if *b == b'\n' {
                lines += 1;
                whole = pos + i as u64 + 1;
            }
        }
        let n = buf.len();
        pos += n as u64;
        reader.consume(n);
    }
}

/// Cuts a file to `len` bytes when it is longer (a torn last line).
fn truncate_to(path: &Path, len: u64) -> std::io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    if file.metadata()?.len() > len {
        log::warn!("Storage.ES spool {}: torn last line cut", path.display());
        file.set_len(len)?;
    }
    Ok(())
}

/// Removes a file, logging (not failing) when it cannot be removed.
fn remove(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("Storage.ES spool {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(n: u32) -> Pending {
        Pending::from_line(format!(r#"{{"tracer_id":"id{n:04}","n":"{n:04}"}}"#))
            .expect("a JSON object")
    }

    /// Bytes one `doc(n)` takes in a segment.
    fn line_len() -> u64 {
        doc(0).line.len() as u64 + 1
    }

    fn open(dir: &Path, max: u64, segment: u64) -> (Spool, Arc<EsCounters>) {
        let counters = Arc::new(EsCounters::default());
        (
            Spool::open(dir, max, segment, Arc::clone(&counters)).unwrap(),
            counters,
        )
    }

    fn ids(chunk: &Chunk) -> Vec<String> {
        chunk.docs.iter().filter_map(|d| d.id.clone()).collect()
    }

    #[test]
    fn documents_come_back_in_order_and_leave_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, counters) = open(dir.path(), 1 << 20, 3 * line_len());
        spool.append(&(0..7).map(doc).collect::<Vec<_>>());
        assert_eq!(spool.pending_docs(), 7);
        assert_eq!(EsCounters::get(&counters.spool_bytes), 7 * line_len());
        let mut seen = Vec::new();
        while let Some(chunk) = spool.peek(2, usize::MAX).unwrap() {
            seen.extend(ids(&chunk));
            spool.commit(&chunk);
        }
        let expected: Vec<String> = (0..7).map(|n| format!("id{n:04}")).collect();
        assert_eq!(seen, expected);
        assert!(spool.is_empty());
        assert_eq!(EsCounters::get(&counters.spool_bytes), 0);
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn an_uncommitted_chunk_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, _) = open(dir.path(), 1 << 20, 1 << 20);
        spool.append(&[doc(1), doc(2)]);
        let first = spool.peek(1, usize::MAX).unwrap().unwrap();
        let again = spool.peek(1, usize::MAX).unwrap().unwrap();
        assert_eq!(ids(&first), ids(&again));
    }

    #[test]
    fn the_cursor_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut spool, _) = open(dir.path(), 1 << 20, 1 << 20);
            spool.append(&(0..5).map(doc).collect::<Vec<_>>());
            let chunk = spool.peek(2, usize::MAX).unwrap().unwrap();
            spool.commit(&chunk);
        }
        let (mut spool, counters) = open(dir.path(), 1 << 20, 1 << 20);
        assert_eq!(spool.pending_docs(), 3);
        assert_eq!(EsCounters::get(&counters.spool_docs), 3);
        let chunk = spool.peek(10, usize::MAX).unwrap().unwrap();
        assert_eq!(ids(&chunk), ["id0002", "id0003", "id0004"]);
        // New documents go to a new segment, after the old ones.
        spool.append(&[doc(9)]);
        spool.commit(&chunk);
        let chunk = spool.peek(10, usize::MAX).unwrap().unwrap();
        assert_eq!(ids(&chunk), ["id0009"]);
    }

    #[test]
    fn a_full_spool_drops_its_oldest_segment_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let l = line_len();
        let (mut spool, counters) = open(dir.path(), 9 * l, 3 * l);
        spool.append(&(0..20).map(doc).collect::<Vec<_>>());
        // Segments of 3; at 9 documents the next one drops the oldest 3: drops at 9, 12, 15, 18.
        assert_eq!(EsCounters::get(&counters.spool_dropped), 12);
        assert_eq!(EsCounters::get(&counters.spooled), 20);
        assert_eq!(spool.pending_docs(), 8);
        assert!(EsCounters::get(&counters.spool_bytes) <= 9 * l);
        let chunk = spool.peek(100, usize::MAX).unwrap().unwrap();
        assert_eq!(ids(&chunk), ["id0012", "id0013", "id0014"]);
    }

    #[test]
    fn a_lowered_cap_is_enforced_when_the_spool_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let l = line_len();
        {
            let (mut spool, _) = open(dir.path(), 1 << 20, 2 * l);
            spool.append(&(0..6).map(doc).collect::<Vec<_>>());
        }
        let (spool, counters) = open(dir.path(), 4 * l, 2 * l);
        assert_eq!(EsCounters::get(&counters.spool_dropped), 2);
        assert_eq!(spool.pending_docs(), 4);
        let chunk = spool.peek(1, usize::MAX).unwrap().unwrap();
        assert_eq!(ids(&chunk), ["id0002"]);
    }

    #[test]
    fn a_vanished_segment_is_an_error_and_can_be_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, counters) = open(dir.path(), 1 << 20, 2 * line_len());
        spool.append(&(0..3).map(doc).collect::<Vec<_>>());
        fs::remove_file(spool.segment_path(1)).unwrap();
        let err = spool.peek(10, usize::MAX).unwrap_err().to_string();
        assert!(err.contains("00000000000000000001.ndjson"), "{err}");
        spool.drop_oldest();
        assert_eq!(EsCounters::get(&counters.spool_dropped), 2);
        let chunk = spool.peek(10, usize::MAX).unwrap().unwrap();
        assert_eq!(ids(&chunk), ["id0002"]);
    }

    #[test]
    fn the_spool_directory_and_its_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("es-spool");
        let (mut spool, _) = open(&spool_dir, 1 << 20, 1 << 20);
        assert_eq!(mode(&spool_dir), 0o700);
        spool.append(&[doc(1), doc(2)]);
        let chunk = spool.peek(1, usize::MAX).unwrap().unwrap();
        spool.commit(&chunk);
        assert_eq!(mode(&spool.segment_path(1)), 0o600);
        assert_eq!(mode(&spool_dir.join(CURSOR_FILE)), 0o600);
    }

    #[test]
    fn a_document_larger_than_the_spool_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, counters) = open(dir.path(), 10, 10);
        spool.append(&[doc(1)]);
        assert_eq!(EsCounters::get(&counters.spool_dropped), 1);
        assert!(spool.is_empty());
    }

    #[test]
    fn a_torn_last_line_is_cut_and_a_bad_line_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let good = format!("{}\nnot json\n{}\n", doc(1).line, doc(2).line);
        fs::write(
            dir.path().join("00000000000000000007.ndjson"),
            format!("{good}{{\"tracer_id\":\"to"),
        )
        .unwrap();
        fs::write(dir.path().join("stray.txt"), "ignored").unwrap();
        let (spool, counters) = open(dir.path(), 1 << 20, 1 << 20);
        assert_eq!(spool.pending_docs(), 3);
        let path = dir.path().join("00000000000000000007.ndjson");
        assert_eq!(fs::read_to_string(path).unwrap(), good);
        let chunk = spool.peek(10, usize::MAX).unwrap().unwrap();
        assert_eq!(ids(&chunk), ["id0001", "id0002"]);
        assert_eq!(EsCounters::get(&counters.spool_dropped), 1);
    }

    #[test]
    fn a_damaged_cursor_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut spool, _) = open(dir.path(), 1 << 20, 1 << 20);
            spool.append(&[doc(1), doc(2)]);
        }
        fs::write(dir.path().join(CURSOR_FILE), "1 5\n").unwrap();
        let (spool, _) = open(dir.path(), 1 << 20, 1 << 20);
        assert_eq!(spool.pending_docs(), 2);
    }
}

//! The embedded durable log: Kafka's model (topics of ordered, offset-numbered records, consumer
//! groups with committed offsets) in files under one directory, for the single-process default.
//!
//! Layout:
//! ```text
//! <dir>/LOCK                                 held (flock) by the one process using the log
//! <dir>/topics/<topic>/<base offset:020>.seg segment files, append-only
//! <dir>/groups/<group>.offsets               committed offsets, `topic partition offset` lines
//! ```
//! Each topic has one partition (0). A segment holds consecutive records as frames:
//! ```text
//! magic 0x4C | body length u32 LE | CRC-32C of body u32 LE | body
//! body = offset u64 | timestamp i64 | key length i32 (-1: no key) | key
//!      | value length u32 | value | header count u32 | (name length u16 | name | length u32 | bytes)*
//! ```
//! Durability promise: [`Bus::publish`] returns after the frames are written and, with `fsync`
//! on (the default), `fdatasync`'d; a crash can only tear the frames of an append that was never
//! acknowledged, and opening the log truncates such a torn tail of the newest segment. Damage
//! anywhere else is reported ([`BusError::Corrupt`]), never skipped. Committed offsets are
//! written to a temporary file, fsync'd and renamed over the old ones.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::record::validate_topic_name;
use crate::{Bus, BusError, Consumer, Delivered, Position, Record, Result};

const MAGIC: u8 = 0x4C;
const FRAME_HEADER: usize = 9;
/// Largest encoded record body accepted.
pub(crate) const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;
/// A sparse index entry is kept every this many bytes of a segment.
const INDEX_INTERVAL: u64 = 4096;

/// Tuning of the embedded log.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedLogOptions {
    /// A segment is closed and a new one started once it reaches this size.
    pub segment_bytes: u64,
    /// `fdatasync` before acknowledging an append.
    pub fsync: bool,
}

impl Default for EmbeddedLogOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
            fsync: true,
        }
    }
}

/// The embedded durable log; cheap to clone (all clones share the files and the lock).
#[derive(Debug, Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    options: EmbeddedLogOptions,
    topics: Mutex<HashMap<String, Arc<Topic>>>,
    /// Bumped after every append, so waiting consumers wake up.
    appended: watch::Sender<u64>,
    groups: Mutex<()>,
    _lock: File,
}

#[derive(Debug)]
struct Topic {
    dir: PathBuf,
    state: Mutex<TopicState>,
}

#[derive(Debug)]
struct TopicState {
    segments: Vec<Segment>,
    writer: Option<File>,
    next_offset: u64,
}

#[derive(Debug, Clone)]
struct Segment {
    base: u64,
    path: PathBuf,
    /// Bytes of whole, verified frames.
    len: u64,
    /// Offset after the last record in the segment.
    end: u64,
    /// (offset, byte position) every [`INDEX_INTERVAL`] bytes, starting with the first record.
    index: Vec<(u64, u64)>,
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BusError + use<> {
    let path = path.display().to_string();
    move |source| BusError::Io {
        action,
        path,
        source,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves files consistent (frames are verified on read), so a
    // poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl EmbeddedLog {
    /// Opens (creating when missing) the log in `dir`, recovering every topic.
    ///
    /// # Errors
    /// The directory cannot be used, another process holds it, or a segment is damaged other
    /// than by a torn final append.
    pub fn open(dir: impl Into<PathBuf>, options: EmbeddedLogOptions) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(dir.join("topics")).map_err(io_err("create", &dir))?;
        fs::create_dir_all(dir.join("groups")).map_err(io_err("create", &dir))?;
        let lock_path = dir.join("LOCK");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(BusError::Locked(dir.display().to_string()));
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", &lock_path)(e)),
        }
        let mut topics = HashMap::new();
        let topics_dir = dir.join("topics");
        for entry in fs::read_dir(&topics_dir).map_err(io_err("list", &topics_dir))? {
            let entry = entry.map_err(io_err("list", &topics_dir))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if validate_topic_name(&name).is_err() {
                continue;
            }
            let topic = Topic::recover(entry.path())?;
            topics.insert(name, Arc::new(topic));
        }
        let (appended, _) = watch::channel(0);
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                options,
                topics: Mutex::new(topics),
                appended,
                groups: Mutex::new(()),
                _lock: lock_file,
            }),
        })
    }

    /// The directory the log lives in.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Names of the topics that exist, sorted.
    #[must_use]
    pub fn topics(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.inner.topics).keys().cloned().collect();
        names.sort();
        names
    }

    fn topic(&self, name: &str, create: bool) -> Result<Option<Arc<Topic>>> {
        validate_topic_name(name)?;
        let mut topics = lock(&self.inner.topics);
        if let Some(t) = topics.get(name) {
            return Ok(Some(Arc::clone(t)));
        }
        if !create {
            return Ok(None);
        }
        let dir = self.inner.dir.join("topics").join(name);
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        sync_dir(&self.inner.dir.join("topics"))?;
        let topic = Arc::new(Topic::recover(dir)?);
        topics.insert(name.to_owned(), Arc::clone(&topic));
        Ok(Some(topic))
    }

    fn append_blocking(&self, topic: &str, records: &[Record]) -> Result<Vec<Position>> {
        let topic = self
            .topic(topic, true)?
            .ok_or_else(|| BusError::InvalidTopic(topic.into()))?;
        let positions = topic.append(records, self.inner.options)?;
        self.inner.appended.send_modify(|n| *n = n.wrapping_add(1));
        Ok(positions)
    }

    fn read_blocking(&self, topic: &str, from: u64, max: usize) -> Result<Vec<Delivered>> {
        match self.topic(topic, false)? {
            Some(t) => t.read(topic, from, max),
            None => Ok(Vec::new()),
        }
    }

    fn group_path(&self, group: &str) -> PathBuf {
        self.inner
            .dir
            .join("groups")
            .join(format!("{group}.offsets"))
    }

    fn load_group(&self, group: &str) -> Result<BTreeMap<(String, i32), u64>> {
        let path = self.group_path(group);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let mut offsets = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let parts: Vec<&str> = line.split(' ').collect();
            let parsed = match parts.as_slice() {
                [topic, partition, offset] => partition
                    .parse::<i32>()
                    .ok()
                    .zip(offset.parse::<u64>().ok())
                    .map(|(p, o)| ((*topic).to_owned(), p, o)),
                _ => None,
            };
            let (topic, partition, offset) = parsed.ok_or_else(|| {
                BusError::Corrupt(format!(
                    "{}: line {} is not `topic partition offset`",
                    path.display(),
                    n + 1
                ))
            })?;
            offsets.insert((topic, partition), offset);
        }
        Ok(offsets)
    }

    fn commit_blocking(&self, group: &str, topic: &str, partition: i32, next: u64) -> Result<()> {
        let _guard = lock(&self.inner.groups);
        let mut offsets = self.load_group(group)?;
        offsets.insert((topic.to_owned(), partition), next);
        let text: String = offsets
            .iter()
            .map(|((t, p), o)| format!("{t} {p} {o}\n"))
            .collect();
        let path = self.group_path(group);
        let tmp = path.with_extension("offsets.tmp");
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(text.as_bytes())
            .map_err(io_err("write", &tmp))?;
        f.sync_data().map_err(io_err("sync", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
        sync_dir(&self.inner.dir.join("groups"))
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(EmbeddedLog) -> Result<T> + Send + 'static,
    {
        let log = self.clone();
        tokio::task::spawn_blocking(move || f(log))
            .await
            .map_err(|e| BusError::Corrupt(format!("embedded log task failed: {e}")))?
    }
}

/// Below this many free bytes the log's disk counts as full (its health says so).
const MIN_FREE_BYTES: u64 = 4 << 20;

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

impl Topic {
    /// Scans the segments, verifying every frame; a torn tail of the newest segment (an append
    /// that was never acknowledged) is cut off, anything else damaged is an error.
    fn recover(dir: PathBuf) -> Result<Self> {
        let mut bases: Vec<u64> = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
            let entry = entry.map_err(io_err("list", &dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(base) = name
                .strip_suffix(".seg")
                .and_then(|b| b.parse::<u64>().ok())
            {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let mut segments = Vec::with_capacity(bases.len());
        let last = bases.len().saturating_sub(1);
        for (i, base) in bases.iter().enumerate() {
            let path = dir.join(segment_file_name(*base));
            let seg = scan_segment(&path, *base, i == last)?;
            if let Some(prev) = segments.last().map(|s: &Segment| s.end)
                && prev != *base
            {
                return Err(BusError::Corrupt(format!(
                    "{}: starts at offset {base} but the previous segment ends at {prev}",
                    path.display()
                )));
            }
            segments.push(seg);
        }
        let next_offset = segments.last().map_or(0, |s| s.end);
        Ok(Self {
            dir,
            state: Mutex::new(TopicState {
                segments,
                writer: None,
                next_offset,
            }),
        })
    }

    fn append(&self, records: &[Record], options: EmbeddedLogOptions) -> Result<Vec<Position>> {
        let mut state = lock(&self.state);
        // Frames go to the file in pieces of about WRITE_CHUNK bytes: one buffer of the whole
        // batch (megabytes) was fresh memory from the system for every batch, faulted in page
        // by page; a buffer this size is reused by the allocator.
        let mut buf = Vec::with_capacity(
            records
                .iter()
                .map(frame_size_hint)
                .sum::<usize>()
                .min(2 * WRITE_CHUNK),
        );
        let mut positions = Vec::with_capacity(records.len());
        let roll = state
            .segments
            .last()
            .is_none_or(|s| s.len >= options.segment_bytes);
        if roll {
            let base = state.next_offset;
            let path = self.dir.join(segment_file_name(base));
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io_err("create", &path))?;
            sync_dir(&self.dir)?;
            state.segments.push(Segment {
                base,
                path,
                len: 0,
                end: base,
                index: Vec::new(),
            });
            state.writer = Some(file);
        }
        let TopicState {
            segments,
            writer,
            next_offset,
        } = &mut *state;
        let Some(seg) = segments.last_mut() else {
            return Err(BusError::Corrupt("no segment to append to".into()));
        };
        if writer.is_none() {
            *writer = Some(
                OpenOptions::new()
                    .append(true)
                    .open(&seg.path)
                    .map_err(io_err("open", &seg.path))?,
            );
        }
        let mut index = Vec::new();
        let mut last_indexed = seg.index.last().map(|(_, p)| *p);
        let Some(file) = writer.as_mut() else {
            return Err(BusError::Corrupt("segment writer missing".into()));
        };
        // Bytes of this batch already in the file.
        let mut flushed = 0u64;
        let mut write = || -> Result<()> {
            for (i, record) in records.iter().enumerate() {
                let offset = *next_offset + i as u64;
                let pos = seg.len + flushed + buf.len() as u64;
                if last_indexed.is_none_or(|p| pos - p >= INDEX_INTERVAL) {
                    index.push((offset, pos));
                    last_indexed = Some(pos);
                }
                encode_frame(&mut buf, offset, record)?;
                positions.push(Position {
                    partition: 0,
                    offset,
                });
                if buf.len() >= WRITE_CHUNK {
                    file.write_all(&buf)
                        .map_err(io_err("append to", &seg.path))?;
                    flushed += buf.len() as u64;
                    buf.clear();
                }
            }
            file.write_all(&buf)
                .map_err(io_err("append to", &seg.path))?;
            flushed += buf.len() as u64;
            if options.fsync {
                file.sync_data().map_err(io_err("append to", &seg.path))?;
            }
            Ok(())
        };
        if let Err(e) = write() {
            // Leave no partial frames behind: cut the file back to the last acknowledged byte.
            // If even that fails, the next open truncates the torn tail.
            let _ = file.set_len(seg.len);
            *writer = None;
            return Err(e);
        }
        seg.len += flushed;
        seg.end += records.len() as u64;
        seg.index.extend(index);
        *next_offset += records.len() as u64;
        Ok(positions)
    }

    fn read(&self, topic: &str, from: u64, max: usize) -> Result<Vec<Delivered>> {
        // Snapshot the verified extent under the lock; bytes below `len` never change.
        let (seg_list, next) = {
            let state = lock(&self.state);
            (state.segments.clone(), state.next_offset)
        };
        let mut out = Vec::with_capacity(
            usize::try_from(next.saturating_sub(from))
                .unwrap_or(max)
                .min(max),
        );
        let mut offset = from;
        let first = seg_list.partition_point(|s| s.end <= offset);
        for seg in &seg_list[first..] {
            if out.len() >= max || offset >= next {
                break;
            }
            offset = offset.max(seg.base);
            let start = seg
                .index
                .partition_point(|(o, _)| *o <= offset)
                .checked_sub(1)
                .map_or(0, |i| seg.index[i].1);
            let file = File::open(&seg.path).map_err(io_err("open", &seg.path))?;
            let mut reader = BufReader::with_capacity(1 << 16, file);
            reader
                .seek(SeekFrom::Start(start))
                .map_err(io_err("seek", &seg.path))?;
            let mut pos = start;
            while pos < seg.len && out.len() < max {
                let (rec_offset, record, size) = read_frame(&mut reader)
                    .map_err(io_err("read", &seg.path))?
                    .ok_or_else(|| {
                        BusError::Corrupt(format!(
                            "{}: damaged frame at byte {pos}",
                            seg.path.display()
                        ))
                    })?;
                pos += size;
                if rec_offset >= offset {
                    out.push(Delivered {
                        topic: topic.to_owned(),
                        partition: 0,
                        offset: rec_offset,
                        record,
                    });
                    offset = rec_offset + 1;
                }
            }
        }
        Ok(out)
    }
}

fn segment_file_name(base: u64) -> String {
    format!("{base:020}.seg")
}

fn scan_segment(path: &Path, base: u64, is_last: bool) -> Result<Segment> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let file_len = file.metadata().map_err(io_err("stat", path))?.len();
    let mut reader = BufReader::new(file);
    let mut seg = Segment {
        base,
        path: path.to_owned(),
        len: 0,
        end: base,
        index: Vec::new(),
    };
    while seg.len < file_len {
        let frame = read_frame(&mut reader).map_err(io_err("read", path))?;
        match frame {
            Some((offset, _, size)) if offset == seg.end => {
                if seg
                    .index
                    .last()
                    .is_none_or(|(_, p)| seg.len - p >= INDEX_INTERVAL)
                {
                    seg.index.push((offset, seg.len));
                }
                seg.len += size;
                seg.end += 1;
            }
            _ if is_last => {
                tracing::warn!(
                    segment = %path.display(),
                    kept_bytes = seg.len,
                    dropped_bytes = file_len - seg.len,
                    "embedded log: cutting a torn, unacknowledged append from the end of the log"
                );
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io_err("open", path))?;
                f.set_len(seg.len).map_err(io_err("truncate", path))?;
                f.sync_all().map_err(io_err("sync", path))?;
                break;
            }
            _ => {
                return Err(BusError::Corrupt(format!(
                    "{}: damaged frame at byte {} (offset {}); restore the data directory from a backup",
                    path.display(),
                    seg.len,
                    seg.end
                )));
            }
        }
    }
    Ok(seg)
}

/// Bytes of frames written to a segment at a time.
const WRITE_CHUNK: usize = 256 * 1024;

/// About the bytes `encode_frame` writes for `r` (to size buffers).
fn frame_size_hint(r: &Record) -> usize {
    64 + r.value.len()
        + r.key.as_ref().map_or(0, Vec::len)
        + r.headers
            .iter()
            .map(|(name, value)| 6 + name.len() + value.len())
            .sum::<usize>()
}

fn encode_frame(buf: &mut Vec<u8>, offset: u64, r: &Record) -> Result<()> {
    let mut body = Vec::with_capacity(32 + r.value.len() + r.key.as_ref().map_or(0, Vec::len));
    body.extend_from_slice(&offset.to_le_bytes());
    body.extend_from_slice(&r.timestamp_ms.to_le_bytes());
    match &r.key {
        Some(k) => {
            body.extend_from_slice(&len_i32(k.len())?.to_le_bytes());
            body.extend_from_slice(k);
        }
        None => body.extend_from_slice(&(-1i32).to_le_bytes()),
    }
    body.extend_from_slice(&len_u32(r.value.len())?.to_le_bytes());
    body.extend_from_slice(&r.value);
    body.extend_from_slice(&len_u32(r.headers.len())?.to_le_bytes());
    for (name, value) in &r.headers {
        let name_len = u16::try_from(name.len()).map_err(|_| BusError::TooLarge {
            size: name.len(),
            limit: usize::from(u16::MAX),
        })?;
        body.extend_from_slice(&name_len.to_le_bytes());
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(&len_u32(value.len())?.to_le_bytes());
        body.extend_from_slice(value);
    }
    if body.len() > MAX_RECORD_BYTES {
        return Err(BusError::TooLarge {
            size: body.len(),
            limit: MAX_RECORD_BYTES,
        });
    }
    buf.push(MAGIC);
    buf.extend_from_slice(&len_u32(body.len())?.to_le_bytes());
    buf.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    buf.extend_from_slice(&body);
    Ok(())
}

fn len_u32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| BusError::TooLarge {
        size: n,
        limit: MAX_RECORD_BYTES,
    })
}

fn len_i32(n: usize) -> Result<i32> {
    i32::try_from(n).map_err(|_| BusError::TooLarge {
        size: n,
        limit: MAX_RECORD_BYTES,
    })
}

/// Reads one frame: `Ok(None)` when it is torn or fails its checksum, else the record's offset,
/// the record and the frame's size in bytes.
fn read_frame(r: &mut impl Read) -> std::io::Result<Option<(u64, Record, u64)>> {
    let mut header = [0u8; FRAME_HEADER];
    if !read_full(r, &mut header)? || header[0] != MAGIC {
        return Ok(None);
    }
    let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let crc = u32::from_le_bytes([header[5], header[6], header[7], header[8]]);
    if len > MAX_RECORD_BYTES {
        return Ok(None);
    }
    let mut body = vec![0u8; len];
    if !read_full(r, &mut body)? || crc32c::crc32c(&body) != crc {
        return Ok(None);
    }
    Ok(decode_body(&body).map(|(offset, record)| (offset, record, (FRAME_HEADER + len) as u64)))
}

/// Fills `buf`; `false` when the input ends first.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }
}

fn decode_body(body: &[u8]) -> Option<(u64, Record)> {
    let mut c = Cursor(body);
    let offset = u64::from_le_bytes(c.array()?);
    let timestamp_ms = i64::from_le_bytes(c.array()?);
    let key_len = i32::from_le_bytes(c.array()?);
    let key = if key_len < 0 {
        None
    } else {
        Some(c.take(usize::try_from(key_len).ok()?)?.to_vec())
    };
    let value_len = u32::from_le_bytes(c.array()?) as usize;
    let value = c.take(value_len)?.to_vec();
    let count = u32::from_le_bytes(c.array()?);
    let mut headers = Vec::new();
    for _ in 0..count {
        let name_len = usize::from(u16::from_le_bytes(c.array()?));
        let name = String::from_utf8(c.take(name_len)?.to_vec()).ok()?;
        let len = u32::from_le_bytes(c.array()?) as usize;
        headers.push((name, c.take(len)?.to_vec()));
    }
    c.0.is_empty().then_some((
        offset,
        Record {
            key,
            value,
            headers,
            timestamp_ms,
        },
    ))
}

#[async_trait]
impl Bus for EmbeddedLog {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn publish(&self, topic: &str, records: Vec<Record>) -> Result<Vec<Position>> {
        validate_topic_name(topic)?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let topic = topic.to_owned();
        self.blocking(move |log| log.append_blocking(&topic, &records))
            .await
    }

    async fn subscribe(&self, group: &str, topics: &[String]) -> Result<Box<dyn Consumer>> {
        validate_topic_name(group)?;
        for t in topics {
            validate_topic_name(t)?;
        }
        let g = group.to_owned();
        let committed = self.blocking(move |log| log.load_group(&g)).await?;
        let positions = topics
            .iter()
            .map(|t| {
                let next = committed.get(&(t.clone(), 0)).copied().unwrap_or(0);
                (t.clone(), next)
            })
            .collect();
        Ok(Box::new(EmbeddedConsumer {
            log: self.clone(),
            group: group.to_owned(),
            positions,
            appended: self.inner.appended.subscribe(),
        }))
    }

    async fn read(
        &self,
        topic: &str,
        partition: i32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Delivered>> {
        validate_topic_name(topic)?;
        if partition != 0 {
            return Ok(Vec::new());
        }
        let topic = topic.to_owned();
        self.blocking(move |log| log.read_blocking(&topic, from, max))
            .await
    }

    async fn end_offset(&self, topic: &str, _partition: i32) -> Result<u64> {
        Ok(self
            .topic(topic, false)?
            .map_or(0, |t| lock(&t.state).next_offset))
    }

    async fn health(&self) -> Result<String> {
        let dir = self.inner.dir.clone();
        let probe = dir.join("LOCK");
        let stat = dir.clone();
        let free = tokio::task::spawn_blocking(move || {
            fs::metadata(&probe).map_err(io_err("stat", &probe))?;
            rustix::fs::statvfs(&stat)
                .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
                .map_err(|e| BusError::Io {
                    action: "statvfs",
                    path: stat.display().to_string(),
                    source: e.into(),
                })
        })
        .await
        .map_err(|e| BusError::Corrupt(e.to_string()))??;
        if free < MIN_FREE_BYTES {
            return Err(BusError::Io {
                action: "check the free space of",
                path: dir.display().to_string(),
                source: std::io::Error::new(
                    ErrorKind::StorageFull,
                    format!(
                        "the disk is full ({free} bytes left); appends fail until space returns"
                    ),
                ),
            });
        }
        Ok(format!(
            "embedded log at {}, topics: {}",
            dir.display(),
            lock(&self.inner.topics).len()
        ))
    }
}

/// A consumer of the embedded log. The log has one partition per topic, so a group is meant to
/// have one active member; members of one group share its committed offsets.
#[derive(Debug)]
struct EmbeddedConsumer {
    log: EmbeddedLog,
    group: String,
    /// Next offset to read, per topic, in subscription order.
    positions: Vec<(String, u64)>,
    appended: watch::Receiver<u64>,
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivered>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Mark the current append count as seen *before* reading, so an append that lands
            // after the read wakes the wait below.
            self.appended.borrow_and_update();
            let positions = self.positions.clone();
            let batch = self
                .log
                .blocking(move |log| {
                    let mut out = Vec::new();
                    for (topic, from) in &positions {
                        if out.len() >= max {
                            break;
                        }
                        out.extend(log.read_blocking(topic, *from, max - out.len())?);
                    }
                    Ok(out)
                })
                .await?;
            if !batch.is_empty() {
                for d in &batch {
                    if let Some(p) = self.positions.iter_mut().find(|(t, _)| *t == d.topic) {
                        p.1 = d.offset + 1;
                    }
                }
                return Ok(batch);
            }
            match tokio::time::timeout_at(deadline, self.appended.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Ok(Vec::new()),
            }
        }
    }

    async fn commit(&mut self, topic: &str, partition: i32, next_offset: u64) -> Result<()> {
        validate_topic_name(topic)?;
        let (group, topic) = (self.group.clone(), topic.to_owned());
        self.log
            .blocking(move |log| log.commit_blocking(&group, &topic, partition, next_offset))
            .await
    }
}

#[cfg(test)]
mod tests;

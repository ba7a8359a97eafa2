//! The embedded event log: Quickwit's `mrecordlog` in the data directory, one queue (and one
//! partition) per topic.
//!
//! `mrecordlog` writes through a buffered file and "syncs" by flushing to the OS, which survives
//! a killed process but not a power cut. An append here is acknowledged only after the write-ahead
//! files are `fsync`ed, and appends that arrive together share one `fsync` (group commit): a
//! dedicated writer task drains every waiting request, appends them, syncs once and answers all.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Buf;
use mrecordlog::{MultiRecordLog, SyncPolicy};
use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use tracing::{debug, warn};

use crate::log::{Consumed, EventLog, LogError, LogReader, LogResult, Position, Record, Topic};

/// The only partition of each topic.
const PARTITION: i32 = 0;
/// How long `open` waits for a directory lock held by a log that is closing.
const LOCK_GRACE: Duration = Duration::from_secs(2);
/// Most requests one group commit takes.
const MAX_GROUP: usize = 1024;

struct AppendRequest {
    topic: Topic,
    records: Vec<Record>,
    reply: oneshot::Sender<LogResult<Vec<Position>>>,
}

struct Shared {
    /// Held (locked) for as long as the log is open.
    _lock: std::fs::File,
    log: Mutex<MultiRecordLog>,
    dir: PathBuf,
    /// Woken after every durable append, so readers need not spin.
    appended: Notify,
    /// Per topic, the offset below which every record is fsynced: readers never see past it, so
    /// nothing reaches the lake that the log could still lose.
    durable_end: std::sync::Mutex<HashMap<Topic, u64>>,
}

/// A durable log in a local directory (see the module docs).
pub struct EmbeddedLog {
    shared: Arc<Shared>,
    requests: mpsc::Sender<AppendRequest>,
}

impl EmbeddedLog {
    /// Opens (or creates) the log in `dir`, replaying what is on disk. Only one process may
    /// open a directory at a time.
    pub async fn open(dir: &Path) -> LogResult<EmbeddedLog> {
        tokio::fs::create_dir_all(dir).await.map_err(|err| unavailable(dir, err))?;
        // mrecordlog assumes it is alone in its directory: a second process appending to the same
        // files would corrupt both. The OS drops the lock when the holder dies, even by SIGKILL.
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("voxpop.lock"))
            .map_err(|err| unavailable(dir, err))?;
        // A log closed a moment ago in this process releases the lock when its writer task
        // notices: give that a short grace period before calling the directory busy.
        let deadline = std::time::Instant::now() + LOCK_GRACE;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(LogError::Fatal(format!(
                        "the log in `{}` is in use by another voxpop process",
                        dir.display()
                    )));
                }
                Err(std::fs::TryLockError::Error(err)) => return Err(unavailable(dir, err)),
            }
        }
        // Flushing is driven by the writer task below, once per group; an hour means "never on
        // your own".
        let mut log = MultiRecordLog::open_with_prefs(dir, SyncPolicy::OnDelay(Duration::from_secs(3600)))
            .await
            .map_err(|err| LogError::Fatal(format!("cannot replay the log in `{}`: {err}", dir.display())))?;
        for topic in Topic::ALL {
            if !log.queue_exists(topic.name()) {
                log.create_queue(topic.name())
                    .await
                    .map_err(|err| LogError::Fatal(format!("cannot create queue `{}`: {err}", topic.name())))?;
            }
        }
        log.sync().await.map_err(|err| unavailable(dir, err))?;
        let durable_end = Topic::ALL
            .into_iter()
            .map(|topic| {
                let end = log.range(topic.name(), ..).ok().and_then(|r| r.last()).map_or(0, |(p, _)| p + 1);
                (topic, end)
            })
            .collect();
        let shared = Arc::new(Shared {
            _lock: lock,
            log: Mutex::new(log),
            dir: dir.to_owned(),
            appended: Notify::new(),
            durable_end: std::sync::Mutex::new(durable_end),
        });
        fsync_dir(dir).map_err(|err| unavailable(dir, err))?;
        let (requests, receiver) = mpsc::channel(MAX_GROUP * 4);
        tokio::spawn(writer_loop(shared.clone(), receiver));
        Ok(EmbeddedLog { shared, requests })
    }
}

fn unavailable(dir: &Path, err: std::io::Error) -> LogError {
    LogError::Unavailable(format!("log directory `{}`: {err}", dir.display()))
}

/// Frames a record as `[key length: u32 LE][key][payload]` (mrecordlog stores plain bytes),
/// as a chain of the three parts: mrecordlog copies them into its buffers without a framed copy
/// of each record first.
fn encode(record: &Record) -> impl Buf + '_ {
    let length = (record.key.len() as u32).to_le_bytes();
    std::io::Cursor::new(length).chain(&record.key[..]).chain(&record.payload[..])
}

fn decode(framed: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let key_len = u32::from_le_bytes(framed.get(..4)?.try_into().ok()?) as usize;
    let key = framed.get(4..4 + key_len)?.to_vec();
    let payload = framed.get(4 + key_len..)?.to_vec();
    Some((key, payload))
}

async fn writer_loop(shared: Arc<Shared>, mut receiver: mpsc::Receiver<AppendRequest>) {
    let mut synced_files: HashMap<PathBuf, std::fs::File> = HashMap::new();
    while let Some(first) = receiver.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let mut outcomes: Vec<LogResult<Vec<Position>>> = Vec::with_capacity(group.len());
        {
            let mut log = shared.log.lock().await;
            for request in &group {
                outcomes.push(append_locked(&mut log, request.topic, &request.records).await);
            }
            if let Err(err) = log.sync().await {
                let message = format!("flushing the log failed: {err}");
                outcomes.iter_mut().for_each(|outcome| *outcome = Err(LogError::Unavailable(message.clone())));
            }
        }
        // fsync outside the lock: readers may go on reading what is already in memory, and the
        // records are not acknowledged (nor read by the pipeline, see `poll`) before it is done.
        let dir = shared.dir.clone();
        let files = std::mem::take(&mut synced_files);
        let (files, synced) = tokio::task::spawn_blocking(move || fsync_wal(&dir, files))
            .await
            .unwrap_or_else(|err| (HashMap::new(), Err(std::io::Error::other(err.to_string()))));
        synced_files = files;
        if let Err(err) = synced {
            warn!(error = %err, "fsync of the embedded log failed");
            let message = format!("fsync of the log failed: {err}");
            outcomes.iter_mut().for_each(|outcome| *outcome = Err(LogError::Unavailable(message.clone())));
        }
        {
            let mut durable_end = shared.durable_end.lock().expect("durable_end lock");
            for (request, outcome) in group.iter().zip(&outcomes) {
                if let Ok(positions) = outcome
                    && let Some(last) = positions.last()
                {
                    let end = durable_end.entry(request.topic).or_insert(0);
                    *end = (*end).max(last.offset as u64 + 1);
                }
            }
        }
        debug!(requests = group.len(), elapsed_us = started.elapsed().as_micros() as u64, "group commit");
        shared.appended.notify_waiters();
        for (request, outcome) in group.into_iter().zip(outcomes) {
            // The caller may have given up (client disconnected): the record is durable anyway.
            let _ = request.reply.send(outcome);
        }
    }
}

async fn append_locked(log: &mut MultiRecordLog, topic: Topic, records: &[Record]) -> LogResult<Vec<Position>> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let last = log
        .append_records(topic.name(), None, records.iter().map(encode))
        .await
        .map_err(|err| LogError::Unavailable(format!("append to `{}` failed: {err}", topic.name())))?
        .ok_or_else(|| LogError::Fatal("the log refused a non-empty append".into()))?;
    let first = last + 1 - records.len() as u64;
    Ok((first..=last).map(|offset| Position { partition: PARTITION, offset: offset as i64 }).collect())
}

/// fsyncs the write-ahead files that may hold unsynced data (the newest two: an append can
/// straddle a file roll-over) and, when a file is new, the directory that lists it.
fn fsync_wal(
    dir: &Path,
    mut open: HashMap<PathBuf, std::fs::File>,
) -> (HashMap<PathBuf, std::fs::File>, std::io::Result<()>) {
    let result = (|| {
        let mut wal_files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("wal-")))
            .collect();
        wal_files.sort();
        let newest: Vec<PathBuf> = wal_files.iter().rev().take(2).cloned().collect();
        open.retain(|path, _| newest.contains(path));
        let mut new_file = false;
        for path in &newest {
            if !open.contains_key(path) {
                open.insert(path.clone(), std::fs::File::open(path)?);
                new_file = true;
            }
            open[path].sync_data()?;
        }
        if new_file {
            fsync_dir(dir)?;
        }
        Ok(())
    })();
    (open, result)
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[async_trait]
impl EventLog for EmbeddedLog {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn append(&self, topic: Topic, records: Vec<Record>) -> LogResult<Vec<Position>> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(AppendRequest { topic, records, reply })
            .await
            .map_err(|_| LogError::Unavailable("the log writer has stopped".into()))?;
        answer.await.map_err(|_| LogError::Unavailable("the log writer has stopped".into()))?
    }

    async fn partitions(&self, _topic: Topic) -> LogResult<Vec<i32>> {
        Ok(vec![PARTITION])
    }

    async fn reader(&self, topic: Topic, start: &BTreeMap<i32, i64>) -> LogResult<Box<dyn LogReader>> {
        let next = start.get(&PARTITION).copied().unwrap_or(0).max(0) as u64;
        Ok(Box::new(EmbeddedReader { shared: self.shared.clone(), topic, next }))
    }

    async fn release(&self, topic: Topic, partition: i32, offset: i64) -> LogResult<()> {
        if partition != PARTITION || offset <= 0 {
            return Ok(());
        }
        let mut log = self.shared.log.lock().await;
        log.truncate(topic.name(), (offset - 1) as u64)
            .await
            .map_err(|err| LogError::Unavailable(format!("truncating `{}` failed: {err}", topic.name())))?;
        Ok(())
    }
}

struct EmbeddedReader {
    shared: Arc<Shared>,
    topic: Topic,
    next: u64,
}

impl EmbeddedReader {
    async fn take(&mut self, max: usize) -> LogResult<Vec<Consumed>> {
        let end = self.shared.durable_end.lock().expect("durable_end lock").get(&self.topic).copied().unwrap_or(0);
        if end <= self.next {
            return Ok(Vec::new());
        }
        let log = self.shared.log.lock().await;
        let records = log
            .range(self.topic.name(), self.next..end)
            .map_err(|err| LogError::Fatal(format!("queue missing: {err:?}")))?
            .take(max);
        let mut consumed = Vec::new();
        for (position, framed) in records {
            let (key, payload) = decode(&framed).ok_or_else(|| {
                LogError::Fatal(format!("record {position} of `{}` is not framed", self.topic.name()))
            })?;
            consumed.push(Consumed {
                position: Position { partition: PARTITION, offset: position as i64 },
                key,
                payload,
            });
            self.next = position + 1;
        }
        Ok(consumed)
    }
}

#[async_trait]
impl LogReader for EmbeddedReader {
    async fn poll(&mut self, max: usize, wait: Duration) -> LogResult<Vec<Consumed>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let shared = self.shared.clone();
            let notified = shared.appended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let consumed = self.take(max).await?;
            if !consumed.is_empty() {
                return Ok(consumed);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = EmbeddedLog::open(dir.path()).await.unwrap();
        let Err(LogError::Fatal(message)) = EmbeddedLog::open(dir.path()).await else {
            panic!("a second open must be refused");
        };
        assert!(message.contains("in use"), "{message}");
        drop(first);
        EmbeddedLog::open(dir.path()).await.expect("free again once the first is closed");
    }
}

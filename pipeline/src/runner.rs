//! The pipeline loop: log -> validate -> enrich -> lake (exactly once) -> index.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Serialize;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};
use voxpop_index::PetitionIndex;
use voxpop_schema::{FieldError, Petition, Units};

use crate::assign::TopicAssigner;
use crate::enrich::Enricher;
use crate::lake::PetitionLake;
use crate::log::{Consumed, EventLog, LogError, Record, Topic};
use crate::{PipelineError, PipelineResult};

/// How the pipeline cuts the log into micro-batches.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Most records in one lake commit.
    pub batch_size: usize,
    /// Longest a record waits for its batch to fill before the batch is committed anyway.
    pub batch_interval: Duration,
    /// Compact the table's small files every this many commits (0: never).
    pub compact_every: u64,
    /// While petitions keep coming, the index commits at most this often ([`IndexFeeder`]).
    pub index_commit_interval: Duration,
}

/// Default most records per lake commit. Under a backlog, larger batches mean fewer Delta commits
/// and fewer, larger index segments: 20,000 -> 50,000 raised the ingest benchmark from about
/// 21,000 to 23,000-24,000 petitions/s (docs/BENCHMARKS.md). A trickle is still committed
/// every [`DEFAULT_BATCH_INTERVAL_MS`]: batches only grow when records wait.
pub const DEFAULT_BATCH_SIZE: usize = 50_000;
/// Default longest wait of a record for its batch, in milliseconds.
pub const DEFAULT_BATCH_INTERVAL_MS: u64 = 250;
/// Default [`PipelineConfig::index_commit_interval`], in milliseconds. Each tantivy commit writes
/// a new segment per indexing thread, and many small segments cost merges during the very burst
/// they came from (docs/BENCHMARKS.md).
pub const DEFAULT_INDEX_COMMIT_INTERVAL_MS: u64 = 1_000;

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            batch_size: DEFAULT_BATCH_SIZE,
            batch_interval: Duration::from_millis(DEFAULT_BATCH_INTERVAL_MS),
            compact_every: 100,
            index_commit_interval: Duration::from_millis(DEFAULT_INDEX_COMMIT_INTERVAL_MS),
        }
    }
}

/// Counters the API reports and the benchmarks read.
#[derive(Debug, Default)]
pub struct PipelineStats {
    pub consumed: AtomicU64,
    pub written: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub batches: AtomicU64,
    /// Lake version of the last commit (-1 before the first).
    pub lake_version: AtomicI64,
    /// Lake version the index has applied (-1 before the first).
    pub index_version: AtomicI64,
    /// Time spent per stage, in microseconds: decoding, validation and enrichment (summed over
    /// the chunks, which run in parallel and while a batch is read); Delta commits; index updates
    /// (overlaps the next batch).
    pub enrich_micros: AtomicU64,
    pub lake_micros: AtomicU64,
    pub index_micros: AtomicU64,
    /// Records read from the log whose batch has not reached the index yet: the index defers
    /// its commit while there are some ([`PipelineConfig::index_commit_interval`]).
    pub reading: AtomicU64,
    /// tantivy commits made by the index feeder (each writes one segment per indexing thread).
    pub index_commits: AtomicU64,
}

/// What a dead-letter record carries: why, where from, and the original bytes.
#[derive(Debug, Serialize)]
pub struct DeadLetter<'a> {
    pub reason: String,
    pub errors: Vec<FieldError>,
    pub topic: &'static str,
    pub partition: i32,
    pub offset: i64,
    /// The record's key and payload exactly as read, base64-encoded.
    pub key_base64: String,
    pub original_base64: String,
    /// The payload as text, when it was valid UTF-8 (for people reading the topic).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_text: Option<&'a str>,
}

pub struct Pipeline {
    log: Arc<dyn EventLog>,
    lake: PetitionLake,
    index: Option<Arc<PetitionIndex>>,
    enricher: Arc<Enricher>,
    assigner: TopicAssigner,
    config: PipelineConfig,
    stats: Arc<PipelineStats>,
    index_feeder: Option<IndexFeeder>,
}

/// Lake commits that wait for the index at most; beyond that the pipeline waits too, which
/// bounds the petitions held in memory (batches of up to `batch_size`).
/// Two batches of [`DEFAULT_BATCH_SIZE`] are ~300 MB of petitions.
const INDEX_QUEUE_BATCHES: usize = 2;

/// Feeds the index in lake order from a background task. Each lake version's petitions are added
/// as they come; they are committed (searchable, and the index's checkpoint moves) at once when
/// no further batch is being read, and otherwise together with the next batches, at most
/// [`PipelineConfig::index_commit_interval`] after the previous commit. A trickle is searchable
/// as soon as it is in the lake; a burst makes fewer, larger segments. Lake versions that queue
/// up while the index is busy are added in one step.
struct IndexFeeder {
    sender: tokio::sync::mpsc::Sender<(Vec<Petition>, i64)>,
    task: tokio::task::JoinHandle<PipelineResult<()>>,
}

impl IndexFeeder {
    fn start(index: Arc<PetitionIndex>, stats: Arc<PipelineStats>, interval: Duration) -> IndexFeeder {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<(Vec<Petition>, i64)>(INDEX_QUEUE_BATCHES);
        let task = tokio::spawn(async move {
            // The newest lake version added but not committed yet.
            let mut uncommitted: Option<i64> = None;
            let mut last_commit: Option<Instant> = None;
            loop {
                let next = match (uncommitted, last_commit) {
                    (Some(_), Some(last)) => {
                        let deadline = tokio::time::Instant::from_std(last + interval);
                        tokio::time::timeout_at(deadline, receiver.recv()).await.ok()
                    }
                    _ => Some(receiver.recv().await),
                };
                let stopped = matches!(next, Some(None));
                if let Some(Some((mut petitions, mut version))) = next {
                    while let Ok((more, newer)) = receiver.try_recv() {
                        petitions.extend(more);
                        version = newer;
                    }
                    let started = Instant::now();
                    let index = index.clone();
                    on_index_thread(move || index.add_new(&petitions, version)).await?;
                    stats.index_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    uncommitted = Some(version);
                    let reading = stats.reading.load(Ordering::Relaxed) > 0;
                    let due = last_commit.is_none_or(|last| last.elapsed() >= interval);
                    if reading && !due {
                        continue;
                    }
                }
                // Nothing more is being read, the interval is up, or the pipeline stopped.
                if let Some(mut version) = uncommitted.take() {
                    let started = Instant::now();
                    // Lake versions that came while the last ones were added share this commit
                    // (one set of segments) rather than wait for another.
                    let mut late = Vec::new();
                    while let Ok((more, newer)) = receiver.try_recv() {
                        late.extend(more);
                        version = newer;
                    }
                    let index = index.clone();
                    on_index_thread(move || {
                        if !late.is_empty() {
                            index.add_new(&late, version)?;
                        }
                        index.commit(version)
                    })
                    .await?;
                    stats.index_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    stats.index_version.store(version, Ordering::Relaxed);
                    stats.index_commits.fetch_add(1, Ordering::Relaxed);
                    last_commit = Some(Instant::now());
                }
                if stopped {
                    return Ok(());
                }
            }
        });
        IndexFeeder { sender, task }
    }

    /// Waits until everything sent is applied; the error of a failed update, if any.
    async fn finish(self) -> PipelineResult<()> {
        drop(self.sender);
        self.task.await.map_err(|err| PipelineError::Internal(format!("index task failed: {err}")))?
    }
}

impl Pipeline {
    pub fn new(
        log: Arc<dyn EventLog>,
        lake: PetitionLake,
        index: Option<Arc<PetitionIndex>>,
        config: PipelineConfig,
    ) -> Pipeline {
        let stats = Arc::new(PipelineStats::default());
        stats.lake_version.store(lake.version(), Ordering::Relaxed);
        Pipeline {
            log,
            lake,
            index,
            enricher: Arc::new(Enricher::new(Units::embedded())),
            assigner: TopicAssigner::new(Arc::new(voxpop_schema::topics::Taxonomy::default_embedded().clone())),
            config,
            stats,
            index_feeder: None,
        }
    }

    /// Assigns topics with `assigner` instead of the default taxonomy's rules alone.
    pub fn with_topics(mut self, assigner: TopicAssigner) -> Pipeline {
        self.assigner = assigner;
        self
    }

    pub fn stats(&self) -> Arc<PipelineStats> {
        self.stats.clone()
    }

    /// Brings the index up to the lake's version: the records of commits made before a crash
    /// that the index had not applied yet.
    pub async fn catch_up_index(&mut self) -> PipelineResult<()> {
        let Some(index) = self.index.clone() else {
            return Ok(());
        };
        let applied = index.checkpoint().unwrap_or(-1);
        let lake_version = self.lake.version();
        self.stats.index_version.store(applied, Ordering::Relaxed);
        if applied >= lake_version {
            return Ok(());
        }
        let petitions = self.lake.petitions_added_since(applied).await?;
        info!(from = applied, to = lake_version, petitions = petitions.len(), "index catching up with the lake");
        apply_to_index(&index, petitions, lake_version).await?;
        self.stats.index_version.store(lake_version, Ordering::Relaxed);
        Ok(())
    }

    /// Runs until `shutdown` turns true. Errors from the log or the lake are retried: the loop
    /// starts over from the positions the lake recorded, so nothing is lost or doubled.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> PipelineResult<()> {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.run_until_error(&mut shutdown).await {
                Ok(()) => return Ok(()),
                Err(err) => {
                    error!(error = %err, retry_in_ms = backoff.as_millis() as u64, "pipeline failed; restarting from the lake's positions");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return Ok(()),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    self.lake = PetitionLake::open_or_create(self.lake.path()).await?;
                }
            }
        }
    }

    async fn run_until_error(&mut self, shutdown: &mut watch::Receiver<bool>) -> PipelineResult<()> {
        // A failed background index update from before a restart of this loop: the lake is
        // ahead, and the catch-up below replays the difference.
        if let Err(err) = self.wait_for_index().await {
            warn!(error = %err, "index update failed; catching up from the lake");
        }
        self.catch_up_index().await?;
        // Records of a batch abandoned by an error are read again below.
        self.stats.reading.store(0, Ordering::Relaxed);
        let partitions = self.log.partitions(Topic::Petitions).await?;
        let start = self.lake.committed_positions(Topic::Petitions, &partitions).await?;
        info!(log = self.log.kind(), ?start, lake_version = self.lake.version(), "pipeline starting");
        for (&partition, &offset) in &start {
            self.log.release(Topic::Petitions, partition, offset).await?;
        }
        let mut reader = self.log.reader(Topic::Petitions, &start).await?;
        while !*shutdown.borrow() {
            let mut batch = EnrichingBatch::new(self.enricher.clone(), self.assigner.clone(), self.stats.clone());
            let deadline = tokio::time::Instant::now() + self.config.batch_interval;
            while batch.consumed < self.config.batch_size {
                let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
                let polled = tokio::select! {
                    polled = reader.poll(self.config.batch_size - batch.consumed, wait) => polled?,
                    _ = shutdown.changed() => break,
                };
                if polled.is_empty() {
                    break;
                }
                batch.push(polled);
            }
            if batch.consumed == 0 {
                continue;
            }
            self.commit(batch.finish().await?).await?;
        }
        self.wait_for_index().await
    }

    /// Commits one enriched micro-batch ([`EnrichingBatch`]): dead letters, then the lake; the
    /// index is fed in the background ([`IndexFeeder`]) while the next batches are read and
    /// written, in lake order.
    async fn commit(&mut self, batch: EnrichedBatch) -> PipelineResult<()> {
        let EnrichedBatch { accepted, dead, next_positions, consumed } = batch;
        if !dead.is_empty() {
            // Before the lake commit: a crash in between re-sends these dead letters (at least
            // once on the dead-letter topic) but never loses one.
            self.log.append(Topic::DeadLetter, dead.clone()).await?;
        }
        let started = Instant::now();
        let version = self.lake.append(Topic::Petitions, &accepted, &next_positions).await?;
        self.stats.lake_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.stats.lake_version.store(version, Ordering::Relaxed);
        self.stats.consumed.fetch_add(consumed as u64, Ordering::Relaxed);
        self.stats.written.fetch_add(accepted.len() as u64, Ordering::Relaxed);
        self.stats.dead_lettered.fetch_add(dead.len() as u64, Ordering::Relaxed);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        debug!(version, written = accepted.len(), dead = dead.len(), "lake commit");
        let batches = self.stats.batches.load(Ordering::Relaxed);
        if self.config.compact_every > 0 && batches.is_multiple_of(self.config.compact_every) {
            // Micro-batches under a trickle of petitions write many small files; readers pay
            // for each one. Only this pipeline writes the table, so the rewrite cannot conflict.
            if let Err(err) = self.lake.compact().await {
                warn!(error = %err, "compaction failed; will try again later");
            }
        }
        let _ = self.stats.reading.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |reading| {
            Some(reading.saturating_sub(consumed as u64))
        });
        if let Some(index) = self.index.clone() {
            let stats = self.stats.clone();
            let interval = self.config.index_commit_interval;
            let feeder = self.index_feeder.get_or_insert_with(|| IndexFeeder::start(index, stats, interval));
            if feeder.sender.send((accepted, version)).await.is_err() {
                // The feeder stopped on an error: report it; the restart catches up from the lake.
                self.wait_for_index().await?;
                return Err(PipelineError::Internal("the index feeder stopped".to_owned()));
            }
        }
        for (partition, offset) in next_positions {
            if let Err(err) = self.log.release(Topic::Petitions, partition, offset).await {
                // Only space is at stake: the lake already holds the position.
                warn!(partition, offset, error = %err, "could not release log records");
            }
        }
        Ok(())
    }

    /// Waits until the index has applied every committed batch.
    pub async fn wait_for_index(&mut self) -> PipelineResult<()> {
        match self.index_feeder.take() {
            Some(feeder) => feeder.finish().await,
            None => Ok(()),
        }
    }
}

/// Records per enrichment task while a batch is read.
const ENRICH_CHUNK: usize = 4_096;

/// A micro-batch while it is read from the log: its records are decoded, validated and enriched
/// in chunks as they arrive, on the blocking pool, instead of all at once when the batch closes.
/// The CPU then works while the batch interval runs (at the start of a burst only intake ran in
/// that time), and a large batch polled at once is enriched on every core. Chunks come back in
/// log order.
struct EnrichingBatch {
    enricher: Arc<Enricher>,
    assigner: TopicAssigner,
    stats: Arc<PipelineStats>,
    /// Records read so far.
    consumed: usize,
    next_positions: BTreeMap<i32, i64>,
    /// Read but not yet handed to a task (fewer than [`ENRICH_CHUNK`]).
    pending: Vec<Consumed>,
    chunks: Vec<tokio::task::JoinHandle<(Vec<Petition>, Vec<Record>)>>,
}

/// A batch ready for the lake.
struct EnrichedBatch {
    accepted: Vec<Petition>,
    dead: Vec<Record>,
    /// The next offset per log partition once this batch is committed.
    next_positions: BTreeMap<i32, i64>,
    consumed: usize,
}

impl EnrichingBatch {
    fn new(enricher: Arc<Enricher>, assigner: TopicAssigner, stats: Arc<PipelineStats>) -> EnrichingBatch {
        EnrichingBatch {
            enricher,
            assigner,
            stats,
            consumed: 0,
            next_positions: BTreeMap::new(),
            pending: Vec::new(),
            chunks: Vec::new(),
        }
    }

    fn push(&mut self, records: Vec<Consumed>) {
        for record in &records {
            let next = self.next_positions.entry(record.position.partition).or_insert(0);
            *next = (*next).max(record.position.offset + 1);
        }
        self.consumed += records.len();
        self.stats.reading.fetch_add(records.len() as u64, Ordering::Relaxed);
        if self.pending.is_empty() && records.len() < ENRICH_CHUNK {
            self.pending = records;
        } else {
            self.pending.extend(records);
        }
        if self.pending.len() >= ENRICH_CHUNK {
            // Whole chunks go to tasks (each record moved once); the rest waits for more.
            let rest = self.pending.split_off(self.pending.len() / ENRICH_CHUNK * ENRICH_CHUNK);
            let mut ready = std::mem::replace(&mut self.pending, rest).into_iter();
            while ready.len() > 0 {
                let chunk: Vec<Consumed> = ready.by_ref().take(ENRICH_CHUNK).collect();
                self.spawn(chunk);
            }
        }
    }

    fn spawn(&mut self, chunk: Vec<Consumed>) {
        let (enricher, assigner, stats) = (self.enricher.clone(), self.assigner.clone(), self.stats.clone());
        self.chunks.push(tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let enriched = enrich_batch(&enricher, &assigner, &chunk);
            stats.enrich_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            enriched
        }));
    }

    async fn finish(mut self) -> PipelineResult<EnrichedBatch> {
        if !self.pending.is_empty() {
            let chunk = std::mem::take(&mut self.pending);
            self.spawn(chunk);
        }
        let mut accepted = Vec::with_capacity(self.consumed);
        let mut dead = Vec::new();
        for chunk in self.chunks {
            let (chunk_accepted, chunk_dead) =
                chunk.await.map_err(|err| PipelineError::Internal(format!("enrichment task failed: {err}")))?;
            accepted.extend(chunk_accepted);
            dead.extend(chunk_dead);
        }
        Ok(EnrichedBatch { accepted, dead, next_positions: self.next_positions, consumed: self.consumed })
    }
}

/// Decodes, checks and enriches a batch: language and topic (CPU-bound: runs on a blocking thread).
fn enrich_batch(enricher: &Enricher, assigner: &TopicAssigner, batch: &[Consumed]) -> (Vec<Petition>, Vec<Record>) {
    let mut accepted: Vec<Petition> = Vec::with_capacity(batch.len());
    let mut dead: Vec<Record> = Vec::new();
    for record in batch {
        match enricher.prepare(&record.payload) {
            Ok(petition) => accepted.push(petition),
            Err((reason, errors)) => {
                warn!(partition = record.position.partition, offset = record.position.offset, %reason, "dead-lettering a record");
                dead.push(dead_letter(record, reason, errors));
            }
        }
    }
    enricher.detect_languages(&mut accepted);
    // Chunks already run side by side on the blocking pool.
    assigner.assign_each(&mut accepted);
    (accepted, dead)
}

/// Runs one blocking index operation off the async workers.
async fn on_index_thread<F>(work: F) -> PipelineResult<()>
where
    F: FnOnce() -> Result<(), voxpop_index::IndexError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| PipelineError::Internal(format!("index task panicked: {err}")))??;
    Ok(())
}

async fn apply_to_index(index: &Arc<PetitionIndex>, petitions: Vec<Petition>, version: i64) -> PipelineResult<()> {
    let index = index.clone();
    on_index_thread(move || index.apply(&petitions, version)).await
}

fn dead_letter(record: &Consumed, reason: String, errors: Vec<FieldError>) -> Record {
    DeadLetter::record(Topic::Petitions, record, reason, errors)
}

impl DeadLetter<'_> {
    /// The dead-letter record of `record`, read from `topic`, refused for `reason`. Every
    /// pipeline writes the same shape to `voxpop.dead-letter`.
    pub fn record(topic: Topic, record: &Consumed, reason: String, errors: Vec<FieldError>) -> Record {
        let engine = base64::engine::general_purpose::STANDARD;
        let letter = DeadLetter {
            reason,
            errors,
            topic: topic.name(),
            partition: record.position.partition,
            offset: record.position.offset,
            key_base64: engine.encode(&record.key),
            original_base64: engine.encode(&record.payload),
            original_text: std::str::from_utf8(&record.payload).ok(),
        };
        Record { key: record.key.clone(), payload: serde_json::to_vec(&letter).unwrap_or_default() }
    }
}

/// Runs `once` until it returns `Ok` (at `shutdown`); after an error it waits (200 ms, doubling
/// up to 10 s) and runs it again, so a pipeline resumes from the positions its lake recorded.
pub async fn restarting<F, Fut>(
    what: &'static str,
    mut shutdown: watch::Receiver<bool>,
    mut once: F,
) -> PipelineResult<()>
where
    F: FnMut(watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = PipelineResult<()>>,
{
    let mut backoff = Duration::from_millis(200);
    loop {
        match once(shutdown.clone()).await {
            Ok(()) => return Ok(()),
            Err(err) => {
                error!(error = %err, pipeline = what, retry_in_ms = backoff.as_millis() as u64, "pipeline failed; restarting from the lake's positions");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

impl From<LogError> for PipelineError {
    fn from(err: LogError) -> Self {
        PipelineError::Log(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Position;

    fn record(partition: i32, offset: i64, payload: Vec<u8>) -> Consumed {
        Consumed { position: Position { partition, offset }, key: offset.to_string().into_bytes(), payload }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_read_in_pieces_is_enriched_in_log_order() {
        let taxonomy = Arc::new(voxpop_schema::topics::Taxonomy::default_embedded().clone());
        let mut batch = EnrichingBatch::new(
            Arc::new(Enricher::new(Units::embedded())),
            TopicAssigner::new(taxonomy),
            Arc::new(PipelineStats::default()),
        );
        let petitions: Vec<Petition> = (0..2 * ENRICH_CHUNK + 7)
            .map(|i| {
                Petition::builder().title(&format!("Bãi rác số {i}")).body("Bãi rác gây ô nhiễm môi trường").build()
            })
            .collect();
        // Pieces smaller than a chunk, one spanning several chunks, and a bad record in between.
        let sizes = [1, ENRICH_CHUNK - 1, 5, ENRICH_CHUNK + 1, petitions.len()];
        let mut offset = 0usize;
        let mut payloads = petitions.iter().map(Petition::to_json_bytes);
        for size in sizes {
            let records: Vec<Consumed> = payloads
                .by_ref()
                .take(size)
                .map(|payload| {
                    offset += 1;
                    record((offset % 3) as i32, offset as i64, payload)
                })
                .collect();
            batch.push(records);
            if size == 5 {
                offset += 1;
                batch.push(vec![record((offset % 3) as i32, offset as i64, b"{not json".to_vec())]);
            }
        }
        assert_eq!(batch.stats.reading.load(Ordering::Relaxed), petitions.len() as u64 + 1);
        let enriched = batch.finish().await.unwrap();
        assert_eq!(enriched.consumed, petitions.len() + 1);
        let ids: Vec<_> = enriched.accepted.iter().map(|p| p.id).collect();
        assert_eq!(ids, petitions.iter().map(|p| p.id).collect::<Vec<_>>(), "log order kept");
        assert!(enriched.accepted.iter().all(|p| p.language.as_deref() == Some("vi") && p.topic.is_some()));
        assert_eq!(enriched.dead.len(), 1);
        let next: Vec<(i32, i64)> = enriched.next_positions.into_iter().collect();
        let last = offset as i64;
        let expected: Vec<(i32, i64)> =
            (0..3).map(|p| (p, (0..=last).filter(|o| o % 3 == i64::from(p)).max().unwrap() + 1)).collect();
        assert_eq!(next, expected);
    }
}

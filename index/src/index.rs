//! [`PetitionIndex`]: opening, writing with a lake checkpoint, and reading stored petitions.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::directory::error::OpenDirectoryError;
use tantivy::indexer::{IndexWriterOptions, UserOperation};
use tantivy::query::{QueryParser, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::tokenizer::TokenizerManager;
use tantivy::{Index, IndexBuilder, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, TantivyError, Term};
use tracing::{debug, error, warn};
use uuid::Uuid;
use voxpop_schema::Petition;

use crate::analysis;
use crate::error::{IndexError, IndexResult};
use crate::schema::{IndexedPetition, PetitionFields};
use crate::search::build_query_parser;

/// Documents handed to tantivy's indexing threads in one message ([`PetitionIndex::add_new`],
/// [`PetitionIndex::add_bulk`]). One message per document cost a channel operation, and often a
/// thread wake-up, per petition. A group goes to one indexing thread whole, and tantivy checks a
/// thread's memory budget between groups, with a 1 MB margin: 50,000 benchmark petitions fit in
/// one thread's 100 MB without a flush (under 2 KB each), so 256 (under 0.5 MB) stay inside that
/// margin. 256 rather than 64: fewer hand-overs between the feeder and the indexing threads took
/// 3.4% off the CPU of ingest end to end (docs/BENCHMARKS.md, ninth session).
const ADD_GROUP: usize = 256;

/// Default memory budget of the writer, shared by its indexing threads. A thread flushes a
/// segment when its share is full, so a larger budget means fewer, larger segments and fewer merges.
pub const DEFAULT_MEMORY_BUDGET_BYTES: usize = 200_000_000;
/// tantivy refuses an indexing thread less than this (its `MEMORY_BUDGET_NUM_BYTES_MIN`).
const MIN_MEMORY_PER_THREAD_BYTES: usize = 15_000_000;
/// tantivy's own ceiling on indexing threads; more only adds segments to merge.
const MAX_INDEXING_THREADS: usize = 8;

/// How the writer of a [`PetitionIndex`] uses the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterOptions {
    /// Indexing threads. Clamped to 1..=8 and to what the memory budget can feed (15 MB each).
    pub num_threads: usize,
    /// Memory for all indexing threads together, in bytes.
    pub memory_budget_bytes: usize,
}

impl Default for WriterOptions {
    /// [`DEFAULT_MEMORY_BUDGET_BYTES`] and one thread per core, up to 4: indexing shares the
    /// machine with the pipeline and the API.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        WriterOptions { num_threads: cores.min(4), memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES }
    }
}

impl WriterOptions {
    /// The thread count and per-thread budget tantivy accepts for these options.
    fn effective(&self) -> (usize, usize) {
        let budget = self.memory_budget_bytes.max(MIN_MEMORY_PER_THREAD_BYTES);
        let affordable_threads = (budget / MIN_MEMORY_PER_THREAD_BYTES).max(1);
        let num_threads = self.num_threads.clamp(1, MAX_INDEXING_THREADS).min(affordable_threads);
        (num_threads, budget / num_threads)
    }

    fn tantivy_options(&self) -> IndexWriterOptions {
        let (num_threads, budget_per_thread) = self.effective();
        IndexWriterOptions::builder()
            .num_worker_threads(num_threads)
            .memory_budget_per_thread(budget_per_thread)
            // Merges run in the background of a process that also serves requests.
            .num_merge_threads(2)
            .build()
    }
}

/// The commit payload: what the lake had reached when these documents were committed.
#[derive(Debug, Serialize, Deserialize)]
struct CommitPayload {
    lake_version: i64,
}

/// Most threads one search reads its segments on.
pub const MAX_SEARCH_THREADS: usize = 4;

/// One thread per core, at most [`MAX_SEARCH_THREADS`]. A broad query over a million
/// petitions spends its time scoring every match, segment by segment; on an idle machine a
/// second core nearly halves that, and under concurrent searches the threads take turns as the
/// searches would anyway (`voxpop bench search`, docs/BENCHMARKS.md).
fn default_search_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_SEARCH_THREADS)
}

fn search_executor(threads: usize) -> IndexResult<tantivy::Executor> {
    Ok(if threads > 1 {
        tantivy::Executor::multi_thread(threads, "voxpop-search-")?
    } else {
        tantivy::Executor::single_thread()
    })
}

fn parse_checkpoint(payload: Option<&str>) -> IndexResult<Option<i64>> {
    let Some(payload) = payload else {
        return Ok(None);
    };
    serde_json::from_str::<CommitPayload>(payload)
        .map(|parsed| Some(parsed.lake_version))
        .map_err(|_| IndexError::BadCheckpoint { payload: payload.to_owned() })
}

/// The petition index in one directory: a writer (unless read-only) and a searcher.
///
/// Every method takes `&self`; share it in an `Arc` and call it from `spawn_blocking`, since
/// commits and searches block.
pub struct PetitionIndex {
    dir: PathBuf,
    index: Index,
    pub(crate) fields: PetitionFields,
    pub(crate) reader: IndexReader,
    pub(crate) query_parser: QueryParser,
    /// `None` when opened read-only. One writer per directory (tantivy holds a lock file), and
    /// the mutex makes each `apply` one atomic step among threads.
    writer: Option<Mutex<IndexWriter<TantivyDocument>>>,
    /// The last committed lake version, kept here so that `checkpoint` never touches the disk
    /// on the writer's side.
    committed_version: Mutex<Option<i64>>,
    /// Where documents take their handling state from (the handling desk); `received` without.
    states: std::sync::RwLock<Option<std::sync::Arc<dyn StateSource>>>,
    /// The threads a search reads its segments on ([`PetitionIndex::set_search_threads`]).
    pub(crate) executor: std::sync::Arc<tantivy::Executor>,
}

/// Says which handling state a petition is in, for the documents the index (re)builds.
pub trait StateSource: Send + Sync {
    fn state_of(&self, id: &Uuid) -> Option<&'static str>;
}

fn open_directory(dir: &Path) -> IndexResult<MmapDirectory> {
    MmapDirectory::open(dir).map_err(|err| {
        let kind = match err {
            OpenDirectoryError::DoesNotExist(_) => std::io::ErrorKind::NotFound,
            _ => std::io::ErrorKind::Other,
        };
        IndexError::Directory { dir: dir.to_owned(), source: std::io::Error::new(kind, err.to_string()) }
    })
}

fn tokenizers() -> TokenizerManager {
    let manager = TokenizerManager::default();
    analysis::register(&manager);
    manager
}

impl PetitionIndex {
    /// Opens the index in `dir`, creating the directory and an empty index if needed, with the
    /// default [`WriterOptions`].
    pub fn open_or_create(dir: &Path) -> IndexResult<Self> {
        PetitionIndex::open_or_create_with(dir, &WriterOptions::default())
    }

    /// Like [`PetitionIndex::open_or_create`] with explicit writer options.
    pub fn open_or_create_with(dir: &Path, options: &WriterOptions) -> IndexResult<Self> {
        std::fs::create_dir_all(dir).map_err(|source| IndexError::Directory { dir: dir.to_owned(), source })?;
        let directory = open_directory(dir)?;
        let fields = PetitionFields::new();
        let index = IndexBuilder::new()
            .schema(fields.schema.clone())
            // Stored fields are compressed by the indexing thread that wrote them instead of by one
            // more thread per segment: on 2 cores shared with intake and the pipeline, the extra
            // threads only took turns on the same cores. Eight alternating pairs of
            // `voxpop bench ingest`: 23,930 -> 24,651/s end to end, tantivy alone 4.78 -> 4.59
            // CPU-s per 100,000 (docs/BENCHMARKS.md). Read at creation only: older indexes keep
            // the dedicated thread, which changes nothing but speed.
            .settings(tantivy::IndexSettings { docstore_compress_dedicated_thread: false, ..Default::default() })
            .tokenizers(tokenizers())
            .open_or_create(directory)
            .map_err(|err| match err {
                TantivyError::SchemaError(reason) => IndexError::SchemaMismatch { dir: dir.to_owned(), reason },
                other => IndexError::Tantivy(other),
            })?;
        let writer = index.writer_with_options(options.tantivy_options()).map_err(|err| match err {
            TantivyError::LockFailure(..) => IndexError::Locked { dir: dir.to_owned() },
            other => IndexError::Tantivy(other),
        })?;
        // Manual: `apply` reloads right after its commit, so a caller sees its own writes the
        // moment `apply` returns instead of after a file-watcher delay.
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        PetitionIndex::assemble(dir, index, fields, reader, Some(writer))
    }

    /// Like [`PetitionIndex::open_or_create`], but an index written with another schema (by an
    /// older version of voxpop) is deleted and created empty: the index is derived data, rebuilt
    /// from the lake (its checkpoint is then `None`, so the pipeline replays every lake version).
    /// Returns whether that happened.
    pub fn open_or_recreate(dir: &Path) -> IndexResult<(Self, bool)> {
        match PetitionIndex::open_or_create(dir) {
            Err(IndexError::SchemaMismatch { reason, .. }) => {
                warn!(dir = %dir.display(), %reason, "the index has an older schema; rebuilding it from the lake");
                std::fs::remove_dir_all(dir).map_err(|source| IndexError::Directory { dir: dir.to_owned(), source })?;
                Ok((PetitionIndex::open_or_create(dir)?, true))
            }
            other => other.map(|index| (index, false)),
        }
    }

    /// Opens an existing index for searching only, e.g. from a second process while the writer
    /// runs; it follows the writer's commits within a second or so.
    pub fn open_read_only(dir: &Path) -> IndexResult<Self> {
        let directory = open_directory(dir)?;
        if !Index::exists(&directory).map_err(TantivyError::from)? {
            return Err(IndexError::NoIndex { dir: dir.to_owned() });
        }
        let mut index = Index::open(directory)?;
        index.set_tokenizers(tokenizers());
        let fields = PetitionFields::new();
        if index.schema() != fields.schema {
            return Err(IndexError::SchemaMismatch {
                dir: dir.to_owned(),
                reason: "the schema on disk differs from this version's".to_owned(),
            });
        }
        let reader = index.reader_builder().reload_policy(ReloadPolicy::OnCommitWithDelay).try_into()?;
        PetitionIndex::assemble(dir, index, fields, reader, None)
    }

    fn assemble(
        dir: &Path,
        index: Index,
        fields: PetitionFields,
        reader: IndexReader,
        writer: Option<IndexWriter<TantivyDocument>>,
    ) -> IndexResult<Self> {
        let committed_version = parse_checkpoint(index.load_metas()?.payload.as_deref())?;
        let query_parser = build_query_parser(&index, &fields);
        Ok(PetitionIndex {
            dir: dir.to_owned(),
            index,
            fields,
            reader,
            query_parser,
            writer: writer.map(Mutex::new),
            committed_version: Mutex::new(committed_version),
            states: std::sync::RwLock::new(None),
            executor: std::sync::Arc::new(search_executor(default_search_threads())?),
        })
    }

    /// Reads each search's segments on `threads` threads (1: on the caller's thread alone).
    /// The default is one per core, at most [`MAX_SEARCH_THREADS`].
    pub fn set_search_threads(&mut self, threads: usize) -> IndexResult<()> {
        self.executor = std::sync::Arc::new(search_executor(threads)?);
        Ok(())
    }

    /// Documents built from now on take their handling state from `source`.
    pub fn set_state_source(&self, source: std::sync::Arc<dyn StateSource>) {
        *self.states.write().unwrap_or_else(|p| p.into_inner()) = Some(source);
    }

    fn document(&self, petition: &Petition) -> TantivyDocument {
        let states = self.states.read().unwrap_or_else(|p| p.into_inner());
        let state =
            states.as_ref().and_then(|source| source.state_of(&petition.id)).unwrap_or(crate::schema::DEFAULT_STATE);
        self.fields.document(petition, state)
    }

    /// Re-indexes petitions whose handling state changed, keeping the recorded lake version
    /// (the petitions' text is unchanged; only the state moves).
    pub fn update_states(&self, petitions: &[(Petition, &str)]) -> IndexResult<()> {
        if petitions.is_empty() {
            return Ok(());
        }
        let mut writer = self.lock_writer()?;
        let outcome = (|| {
            for (petition, state) in petitions {
                writer.delete_term(self.id_term(&petition.id));
                writer.add_document(self.fields.document(petition, state))?;
            }
            let version = self.checkpoint().unwrap_or(-1);
            self.commit_locked(&mut writer, version)
        })();
        if outcome.is_err() {
            rollback(&mut writer);
        }
        outcome
    }

    /// The directory the index lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lake (Delta) version whose petitions the index holds, committed atomically with
    /// them; `None` for an index that never committed. Resume the lake from the next version.
    pub fn checkpoint(&self) -> Option<i64> {
        if self.writer.is_some() {
            return *self.committed_version.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        // Read-only: another process writes, so ask the disk each time.
        match self
            .index
            .load_metas()
            .map_err(IndexError::from)
            .and_then(|meta| parse_checkpoint(meta.payload.as_deref()))
        {
            Ok(version) => version,
            Err(err) => {
                warn!(dir = %self.dir.display(), error = %err, "cannot read the index checkpoint");
                None
            }
        }
    }

    fn lock_writer(&self) -> IndexResult<MutexGuard<'_, IndexWriter<TantivyDocument>>> {
        let writer = self.writer.as_ref().ok_or(IndexError::ReadOnly)?;
        writer.lock().map_err(|_| IndexError::WriterPoisoned)
    }

    fn id_term(&self, id: &Uuid) -> Term {
        Term::from_field_text(self.fields.id, &id.to_string())
    }

    /// Upserts `petitions` and records `lake_version` in the same commit, then makes them
    /// searchable before returning. Idempotent: replaying a version leaves the same documents.
    ///
    /// On error nothing of this call is committed (the writer rolls back), so the caller can
    /// retry the same batch.
    pub fn apply(&self, petitions: &[Petition], lake_version: i64) -> IndexResult<()> {
        let mut writer = self.lock_writer()?;
        let outcome = self.apply_locked(&mut writer, petitions, lake_version);
        if outcome.is_err() {
            rollback(&mut writer);
        }
        outcome
    }

    /// Adds petitions that are new to the index (the rows of one lake commit, fed in lake order)
    /// and commits at `lake_version`. Cheaper than [`PetitionIndex::apply`]: no delete per
    /// document. Safe against replays because the checkpoint moves with the documents: a lake
    /// version at or below [`PetitionIndex::checkpoint`] is refused, never applied twice.
    pub fn append(&self, petitions: &[Petition], lake_version: i64) -> IndexResult<()> {
        self.add_new(petitions, lake_version)?;
        self.commit(lake_version)
    }

    /// The first half of [`PetitionIndex::append`]: adds the petitions of lake version
    /// `lake_version` without committing, so that several lake versions can share one commit
    /// (and one set of segments). They become searchable, and the checkpoint moves, with the
    /// next [`PetitionIndex::commit`]; a crash before it loses them from the index only, and the
    /// pipeline's catch-up replays them from the lake. On an error everything uncommitted is
    /// dropped.
    pub fn add_new(&self, petitions: &[Petition], lake_version: i64) -> IndexResult<()> {
        let mut writer = self.lock_writer()?;
        if let Some(checkpoint) = self.checkpoint()
            && checkpoint >= lake_version
        {
            return Err(IndexError::AlreadyApplied { lake_version, checkpoint });
        }
        let outcome = self.add_grouped(&writer, petitions);
        if outcome.is_err() {
            rollback(&mut writer);
        }
        Ok(outcome?)
    }

    fn apply_locked(
        &self,
        writer: &mut IndexWriter<TantivyDocument>,
        petitions: &[Petition],
        lake_version: i64,
    ) -> IndexResult<()> {
        for petition in petitions {
            // Delete then add, per petition: tantivy orders the two by opstamp, so a petition
            // twice in one batch keeps only its last version.
            writer.delete_term(self.id_term(&petition.id));
            writer.add_document(self.document(petition))?;
        }
        self.commit_locked(writer, lake_version)
    }

    fn commit_locked(&self, writer: &mut IndexWriter<TantivyDocument>, lake_version: i64) -> IndexResult<()> {
        let payload = serde_json::to_string(&CommitPayload { lake_version }).expect("an i64 always serialises");
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        *self.committed_version.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(lake_version);
        self.reader.reload()?;
        debug!(lake_version, "index committed");
        Ok(())
    }

    /// Drops every document, committed or pending, for a rebuild; visible at the next
    /// [`PetitionIndex::commit`]. Until then searches still see the old index.
    pub fn clear(&self) -> IndexResult<()> {
        let mut writer = self.lock_writer()?;
        writer.rollback()?;
        writer.delete_all_documents()?;
        Ok(())
    }

    /// Adds petitions without deleting earlier versions: for rebuilds after [`clear`], where
    /// ids are known to be new. Nothing is visible until [`commit`].
    ///
    /// Do not interleave with [`apply`] from another thread: its commit would publish these
    /// documents under its own lake version.
    ///
    /// [`clear`]: PetitionIndex::clear
    /// [`commit`]: PetitionIndex::commit
    /// [`apply`]: PetitionIndex::apply
    pub fn add_bulk(&self, petitions: &[Petition]) -> IndexResult<()> {
        let writer = self.lock_writer()?;
        Ok(self.add_grouped(&writer, petitions)?)
    }

    /// Adds `petitions` in groups of [`ADD_GROUP`], each one message to the indexing threads.
    fn add_grouped(&self, writer: &IndexWriter<TantivyDocument>, petitions: &[Petition]) -> tantivy::Result<()> {
        for group in petitions.chunks(ADD_GROUP) {
            writer.run(group.iter().map(|petition| UserOperation::Add(self.document(petition))))?;
        }
        Ok(())
    }

    /// Commits everything added since the last commit, recording `lake_version`, and makes it
    /// searchable.
    pub fn commit(&self, lake_version: i64) -> IndexResult<()> {
        let mut writer = self.lock_writer()?;
        let outcome = self.commit_locked(&mut writer, lake_version);
        if outcome.is_err() {
            rollback(&mut writer);
        }
        outcome
    }

    /// Number of searchable petitions.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The stored petition with this id, if the index holds it.
    pub fn get(&self, id: &Uuid) -> IndexResult<Option<IndexedPetition>> {
        let searcher = self.reader.searcher();
        let query = TermQuery::new(self.id_term(id), IndexRecordOption::Basic);
        let found = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
        let Some((_, address)) = found.first() else {
            return Ok(None);
        };
        let doc: TantivyDocument = searcher.doc(*address)?;
        self.fields.stored(&doc).map(Some)
    }

    /// The petition with this tracking code (as [`voxpop_schema::petition::tracking_code`]
    /// writes it), if the index has it.
    pub fn get_by_tracking_code(&self, code: &str) -> IndexResult<Option<IndexedPetition>> {
        let searcher = self.reader.searcher();
        let term = tantivy::Term::from_field_text(self.fields.tracking_code, code);
        let query = TermQuery::new(term, IndexRecordOption::Basic);
        let found = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
        let Some((_, address)) = found.first() else {
            return Ok(None);
        };
        let doc: TantivyDocument = searcher.doc(*address)?;
        self.fields.stored(&doc).map(Some)
    }
}

fn rollback(writer: &mut IndexWriter<TantivyDocument>) {
    if let Err(err) = writer.rollback() {
        // The next commit would publish a half-applied batch; the caller sees the original error,
        // the operator this one.
        error!(error = %err, "index rollback failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_options_respect_tantivy_limits() {
        let starved = WriterOptions { num_threads: 16, memory_budget_bytes: 20_000_000 };
        assert_eq!(starved.effective(), (1, 20_000_000));
        let zero = WriterOptions { num_threads: 0, memory_budget_bytes: 0 };
        assert_eq!(zero.effective(), (1, MIN_MEMORY_PER_THREAD_BYTES));
        let default_budget = WriterOptions { num_threads: 64, memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES };
        assert_eq!(default_budget.effective(), (8, 25_000_000));
    }

    #[test]
    fn checkpoint_payload_round_trips() {
        let payload = serde_json::to_string(&CommitPayload { lake_version: 42 }).unwrap();
        assert_eq!(parse_checkpoint(Some(&payload)).unwrap(), Some(42));
        assert_eq!(parse_checkpoint(None).unwrap(), None);
        assert!(matches!(parse_checkpoint(Some("garbage")), Err(IndexError::BadCheckpoint { .. })));
    }
}

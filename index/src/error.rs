//! The errors of the petition index.

use std::path::PathBuf;

/// Everything that can go wrong opening, writing or searching the petition index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The directory could not be created or opened: a deployment problem.
    #[error("cannot open index directory `{dir}`")]
    Directory {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A read-only open found no index: the writer has not created it yet.
    #[error("no index at `{dir}`")]
    NoIndex { dir: PathBuf },
    /// The index on disk was built with another schema or analysis: rebuild it from the lake.
    #[error("index at `{dir}` was built with another schema, rebuild it from the lake: {reason}")]
    SchemaMismatch { dir: PathBuf, reason: String },
    /// Another writer (this or another process) holds the index lock.
    #[error("index at `{dir}` is locked by another writer")]
    Locked { dir: PathBuf },
    /// A write was attempted on an index opened with [`crate::PetitionIndex::open_read_only`].
    #[error("index was opened read-only")]
    ReadOnly,
    /// A previous write panicked while holding the writer; the process should restart.
    #[error("index writer is unusable after a panic in another thread")]
    WriterPoisoned,
    /// The commit payload is not one this crate wrote: the checkpoint cannot be trusted.
    #[error("lake version {lake_version} is already in the index (checkpoint {checkpoint})")]
    AlreadyApplied { lake_version: i64, checkpoint: i64 },
    #[error("unreadable index checkpoint `{payload}`")]
    BadCheckpoint { payload: String },
    /// The caller's fault: the query text is longer than any sensible search.
    #[error("query has {chars} characters, at most {max} are accepted")]
    QueryTooLong { chars: usize, max: usize },
    /// A stored document lacks what every indexed petition has: the index is damaged.
    #[error("corrupt index document: {reason}")]
    CorruptDocument { reason: String },
    /// Any other failure inside tantivy (I/O, merges, a damaged segment).
    #[error("index operation failed")]
    Tantivy(#[from] tantivy::TantivyError),
}

pub type IndexResult<T> = Result<T, IndexError>;

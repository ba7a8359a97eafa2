//! The event log and the pipeline that turns it into the lake and the index.
//!
//! In: records on the log ([`log::EventLog`]: [`embedded::EmbeddedLog`] by default,
//! [`kafka::KafkaLog`] at scale), appended by the connectors.
//! Out: rows in the Delta table `petitions` ([`lake::PetitionLake`]), documents in the tantivy
//! index, and dead letters (with the reason and the original bytes) on `voxpop.dead-letter`.
//! Guarantees: every record appended to the log reaches the lake exactly once, across crashes:
//! the consumed positions are committed in the same Delta commit as the rows, and the pipeline
//! resumes from them. The index follows the lake and records the lake version it has applied.

pub mod assign;
pub mod embedded;
pub mod enrich;
pub mod handling;
pub mod kafka;
pub mod lake;
pub mod log;
pub mod registers;
pub mod reports;
pub mod runner;
pub mod topics;

pub use log::{Consumed, EventLog, LogError, LogReader, LogResult, Position, Record, Topic};
pub use runner::{
    DEFAULT_BATCH_INTERVAL_MS, DEFAULT_BATCH_SIZE, DEFAULT_INDEX_COMMIT_INTERVAL_MS, Pipeline, PipelineConfig,
    PipelineStats,
};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Log(LogError),
    #[error(transparent)]
    Lake(#[from] lake::LakeError),
    #[error("index: {0}")]
    Index(#[from] voxpop_index::IndexError),
    #[error("internal: {0}")]
    Internal(String),
}

pub type PipelineResult<T> = Result<T, PipelineError>;

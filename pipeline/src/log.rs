//! The event log: the one seam between the outside world and the lake.
//!
//! Two implementations hold the same contract (`tests/` runs one suite against both):
//! [`crate::embedded::EmbeddedLog`] (a write-ahead log in the data directory, the single-machine
//! default) and [`crate::kafka::KafkaLog`] (a Kafka cluster, for deployments that outgrow one
//! machine). Positions are `(partition, offset)` pairs; offsets grow by one per record within a
//! partition. The log never decides what is "done": the pipeline records consumed positions in the
//! lake and tells the log with [`EventLog::release`] what it may reclaim.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

/// The streams voxpop writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// Accepted petitions, one JSON [`voxpop_schema::Petition`] per record, keyed by petition id.
    Petitions,
    /// Records the pipeline could not accept, with the reason and the original bytes.
    DeadLetter,
    /// Values of weekly reports, one JSON [`voxpop_schema::reports::ReportValue`] per record,
    /// keyed by unit code.
    Reports,
    /// Handling events (a state change of a petition, a rating), one JSON
    /// [`voxpop_schema::workflow::Event`] per record, keyed by petition id so that the events of
    /// one petition keep their order.
    Events,
    /// One JSON [`voxpop_schema::workflow::Notification`] per applied state change, for SMS,
    /// Zalo and e-mail gateways and the webhook dispatcher; keyed by petition id.
    Notifications,
    /// Entries of the registers of officers and members and of the villages register, one JSON
    /// [`voxpop_schema::registers::RegisterRecord`] per record, keyed by the unit code (the
    /// person's unit, the village's code) so that the entries of one unit keep their order.
    Registers,
}

impl Topic {
    pub const ALL: [Topic; 6] =
        [Topic::Petitions, Topic::DeadLetter, Topic::Reports, Topic::Events, Topic::Notifications, Topic::Registers];

    /// The topic's name on Kafka and the queue's name in the embedded log.
    pub fn name(self) -> &'static str {
        match self {
            Topic::Petitions => "voxpop.petitions",
            Topic::DeadLetter => "voxpop.dead-letter",
            Topic::Reports => "voxpop.reports",
            Topic::Events => "voxpop.events",
            Topic::Notifications => "voxpop.notifications",
            Topic::Registers => "voxpop.registers",
        }
    }
}

/// A record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Partitioning key (the petition id for petitions); records with one key keep their order.
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
}

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub position: Position,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log cannot take or serve records right now (broker down, disk full): retry later.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// The log's files or the broker said something that makes no sense: not retryable.
    #[error("event log corrupted or misconfigured: {0}")]
    Fatal(String),
}

pub type LogResult<T> = Result<T, LogError>;

/// A durable, partitioned, append-only log.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// `"embedded"` or `"kafka"`, for logs and metrics.
    fn kind(&self) -> &'static str;

    /// Appends `records` to `topic` and returns once every one of them is durable (fsynced on
    /// disk, or acknowledged by all in-sync replicas), with the position of each, in order.
    async fn append(&self, topic: Topic, records: Vec<Record>) -> LogResult<Vec<Position>>;

    /// The partitions of `topic`.
    async fn partitions(&self, topic: Topic) -> LogResult<Vec<i32>>;

    /// Opens a reader on every partition of `topic`. `start` maps a partition to the next offset
    /// to read; a partition not in `start` is read from its earliest retained record.
    async fn reader(&self, topic: Topic, start: &BTreeMap<i32, i64>) -> LogResult<Box<dyn LogReader>>;

    /// Says that every record of `partition` below `offset` is safely in the lake, so the log may
    /// reclaim it. Advisory: a log may keep records longer (Kafka keeps them for its retention).
    async fn release(&self, topic: Topic, partition: i32, offset: i64) -> LogResult<()>;
}

/// Reads records in offset order per partition.
#[async_trait]
pub trait LogReader: Send {
    /// Returns up to `max` records, waiting at most `wait` when none is available yet; an empty
    /// vector means nothing arrived in time.
    async fn poll(&mut self, max: usize, wait: Duration) -> LogResult<Vec<Consumed>>;
}

//! The event log on a Kafka cluster (or any broker speaking the Kafka protocol, such as tansu).
//!
//! In: records to append, keyed by petition id. Out: the same records, read back per partition in
//! offset order. Guarantees: [`KafkaLog::append`] returns only once every record is acknowledged by
//! all in-sync replicas (`acks=all`), and the idempotent producer keeps records with one key in
//! their append order even across retries.
//!
//! What this log deliberately does not do:
//! - no consumer groups: a reader is assigned every partition explicitly, starting where the
//!   pipeline says; the lake, not Kafka, owns consumed positions (see [`EventLog::release`]);
//! - no transactions: exactly-once comes from the pipeline committing positions with its Parquet
//!   writes, and some Kafka-protocol brokers (tansu) do not honour transactional isolation;
//! - no topic auto-creation: [`KafkaLog::connect`] creates the topics with the configured
//!   partition count, so a typo in a broker config cannot yield a one-partition topic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::join_all;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::log::{Consumed, EventLog, LogError, LogReader, LogResult, Position, Record, Topic};

/// The `group.id` readers present to the broker. librdkafka insists on one, but readers never
/// join the group (partitions are assigned explicitly) and never commit offsets.
const CONSUMER_GROUP: &str = "voxpop-pipeline";

/// Upper bound on a producer batch's wait for company: short enough not to be felt in an HTTP
/// request, long enough that the records of one `append` leave in a few produce requests.
const LINGER: Duration = Duration::from_millis(5);

/// Longest pause between attempts to reach a broker that went away.
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How long to wait for room in librdkafka's local queue before trying again.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(10);

/// Where the Kafka cluster is and how to create voxpop's topics on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// Bootstrap servers, e.g. `"k1:9092,k2:9092"`.
    pub brokers: String,
    /// Partitions per topic when [`KafkaLog::connect`] creates the topics; existing topics keep
    /// theirs. Petitions are spread over partitions by key.
    pub partitions: i32,
    /// Replication factor when creating the topics; 1 only suits a single-broker setup.
    pub replication: i32,
    /// How long the producer keeps retrying a record before `append` gives up with
    /// [`LogError::Unavailable`]; also bounds metadata and admin requests.
    pub message_timeout: Duration,
}

impl KafkaConfig {
    /// A config for `brokers` with 3 partitions, replication 1 and a 10 s message timeout.
    pub fn new(brokers: impl Into<String>) -> KafkaConfig {
        KafkaConfig { brokers: brokers.into(), partitions: 3, replication: 1, message_timeout: Duration::from_secs(10) }
    }

    /// Settings every client (producer, consumer, admin) shares.
    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            // A metadata request for a missing topic must not create it with the broker's
            // defaults: topics are created by `connect`, with our partition count, or not at all.
            .set("allow.auto.create.topics", "false")
            // librdkafka notices timed-out messages of a partition only when the thread of its
            // leader wakes up; with the default 10 s reconnect backoff, an `append` to a dead
            // broker took up to 12 s to fail instead of `message_timeout`. One second also means
            // a restarted broker is found again within a second.
            .set("reconnect.backoff.max.ms", RECONNECT_BACKOFF_MAX.as_millis().to_string());
        config
    }

    fn producer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config
            // Idempotence keeps per-partition order and avoids duplicates when a produce request
            // is retried; it implies `acks=all`, which we also say outright because durability
            // ("acknowledged by all in-sync replicas") is the `append` contract.
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", self.message_timeout.as_millis().to_string())
            .set("linger.ms", LINGER.as_millis().to_string())
            // Petitions are Vietnamese text in JSON: LZ4 makes a batch less than half the bytes
            // (2.4x on 110 KB of news-text petitions) for the broker to receive, store and
            // serve, at little CPU here. With tansu on the same machine, its CPU per 100,000
            // petitions fell from 1.0-1.1 to 0.6-0.7 CPU-s and the ingest benchmark rose 4.7%
            // (docs/BENCHMARKS.md). Every Kafka client reads LZ4.
            .set("compression.type", "lz4");
        config
    }

    fn consumer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("group.id", CONSUMER_GROUP)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // Without transactions, committed and uncommitted reads see the same records; asking
            // for uncommitted ones keeps us off the last stable offset, which brokers that do not
            // implement transactions need not report faithfully (tansu 0.6 reads correctly either
            // way, but its `ListOffsets` high watermark lags by up to a batch).
            .set("isolation.level", "read_uncommitted")
            // A start offset outside the retained range means records the lake never saw were
            // deleted, or the broker is not the one the lake was fed from: say so rather than
            // silently jumping to the earliest or latest record.
            .set("auto.offset.reset", "error")
            // Kafka answers a parked fetch as soon as records arrive, tansu 0.6 only when this
            // expires: 100 ms keeps the delay before a reader sees a fresh record around 50 ms
            // there, at the cost of ten idle fetches a second.
            .set("fetch.wait.max.ms", "100");
        config
    }
}

/// [`EventLog`] on Kafka. Cheap to share: one producer serves every `append`.
pub struct KafkaLog {
    config: KafkaConfig,
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("KafkaLog").field("config", &self.config).finish_non_exhaustive()
    }
}

impl KafkaLog {
    /// Connects to the cluster and makes sure every [`Topic`] exists, creating missing ones with
    /// `config.partitions` partitions. Fails with [`LogError::Unavailable`] when the brokers do
    /// not answer within `config.message_timeout`.
    pub async fn connect(config: KafkaConfig) -> LogResult<KafkaLog> {
        let producer: FutureProducer = config.producer_config().create().map_err(classify)?;
        let log = KafkaLog { config, producer };
        log.ensure_topics().await?;
        info!(brokers = %log.config.brokers, "connected to kafka");
        Ok(log)
    }

    /// The configuration this log was connected with.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    async fn ensure_topics(&self) -> LogResult<()> {
        let admin: AdminClient<DefaultClientContext> = self.config.client_config().create().map_err(classify)?;
        let new_topics: Vec<NewTopic<'_>> = Topic::ALL
            .iter()
            .map(|topic| {
                NewTopic::new(topic.name(), self.config.partitions, TopicReplication::Fixed(self.config.replication))
            })
            .collect();
        let options = AdminOptions::new()
            .request_timeout(Some(self.config.message_timeout))
            .operation_timeout(Some(self.config.message_timeout));
        let results = admin.create_topics(&new_topics, &options).await.map_err(classify)?;
        for result in results {
            match result {
                Ok(name) => {
                    info!(topic = %name, partitions = self.config.partitions, "created kafka topic")
                }
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    debug!(topic = %name, "kafka topic exists")
                }
                // Brokers that cannot create topics (an old protocol version, a managed cluster
                // with creation disabled) are fine as long as someone created them beforehand.
                Err((name, code)) if creation_refused(code) => {
                    warn!(topic = %name, error = %code, "broker refused to create topic, checking it exists");
                    let topic = topic_named(&name)
                        .ok_or_else(|| LogError::Fatal(format!("broker answered for unknown topic `{name}`")))?;
                    self.partitions(topic).await?;
                }
                Err((name, code)) => {
                    return Err(classify_code(code, &format!("cannot create topic `{name}`")));
                }
            }
        }
        Ok(())
    }

    /// The partitions of `topic`, fetched without blocking the async runtime.
    async fn fetch_partitions(&self, topic: Topic) -> LogResult<Vec<i32>> {
        let producer = self.producer.clone();
        let timeout = self.config.message_timeout;
        tokio::task::spawn_blocking(move || partitions_blocking(producer.client(), topic, timeout))
            .await
            .map_err(|join_error| LogError::Fatal(format!("metadata task failed: {join_error}")))?
    }
}

/// The partitions of `topic` in ascending order, from a metadata request that blocks up to `timeout`.
fn partitions_blocking<C: ClientContext>(client: &Client<C>, topic: Topic, timeout: Duration) -> LogResult<Vec<i32>> {
    let metadata = client.fetch_metadata(Some(topic.name()), timeout).map_err(classify)?;
    let Some(topic_metadata) = metadata.topics().iter().find(|candidate| candidate.name() == topic.name()) else {
        return Err(LogError::Fatal(format!("topic `{}` does not exist", topic.name())));
    };
    if let Some(error) = topic_metadata.error() {
        let code = RDKafkaErrorCode::from(error);
        return Err(classify_code(code, &format!("no metadata for topic `{}`", topic.name())));
    }
    let mut partitions: Vec<i32> = topic_metadata.partitions().iter().map(|partition| partition.id()).collect();
    if partitions.is_empty() {
        return Err(LogError::Fatal(format!("topic `{}` has no partitions", topic.name())));
    }
    partitions.sort_unstable();
    Ok(partitions)
}

#[async_trait]
impl EventLog for KafkaLog {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    async fn append(&self, topic: Topic, records: Vec<Record>) -> LogResult<Vec<Position>> {
        // Enqueue in input order first, then await all delivery reports together: librdkafka
        // batches what is queued, and records with one key reach their partition in this order.
        let deadline = Instant::now() + self.config.message_timeout;
        let mut deliveries = Vec::with_capacity(records.len());
        for record in &records {
            let mut pending = FutureRecord::to(topic.name()).key(&record.key[..]).payload(&record.payload[..]);
            loop {
                match self.producer.send_result(pending) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    // Waiting in place, rather than skipping ahead, keeps the input order.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned))
                        if Instant::now() < deadline =>
                    {
                        pending = returned;
                        tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                    }
                    Err((error, _)) => return Err(unavailable(topic, &error)),
                }
            }
        }

        let reports = join_all(deliveries).await;
        let mut positions = Vec::with_capacity(reports.len());
        for report in reports {
            match report {
                Ok(Ok(delivery)) => positions.push(Position { partition: delivery.partition, offset: delivery.offset }),
                Ok(Err((error, _message))) => return Err(unavailable(topic, &error)),
                // The producer outlives the futures (we hold it), so a cancelled report means
                // librdkafka dropped the message without telling why.
                Err(_canceled) => {
                    return Err(LogError::Unavailable(format!(
                        "delivery report for topic `{}` was lost",
                        topic.name()
                    )));
                }
            }
        }
        debug_assert_eq!(positions.len(), records.len());
        Ok(positions)
    }

    async fn partitions(&self, topic: Topic) -> LogResult<Vec<i32>> {
        self.fetch_partitions(topic).await
    }

    async fn reader(&self, topic: Topic, start: &BTreeMap<i32, i64>) -> LogResult<Box<dyn LogReader>> {
        let consumer: BaseConsumer = self.config.consumer_config().create().map_err(classify)?;
        let start = start.clone();
        let timeout = self.config.message_timeout;
        let consumer = tokio::task::spawn_blocking(move || {
            assign_blocking(&consumer, topic, &start, timeout)?;
            Ok::<_, LogError>(consumer)
        })
        .await
        .map_err(|join_error| LogError::Fatal(format!("reader setup task failed: {join_error}")))??;
        debug!(topic = topic.name(), "opened kafka reader");
        Ok(Box::new(KafkaReader { topic, consumer: Arc::new(consumer), in_flight: None }))
    }

    /// A no-op: Kafka reclaims records by its own retention, and committing offsets to a
    /// consumer group would create a second record of consumed positions next to the lake's,
    /// one that nothing reads and that could only drift from the truth.
    async fn release(&self, _topic: Topic, _partition: i32, _offset: i64) -> LogResult<()> {
        Ok(())
    }
}

/// Assigns every partition of `topic` to `consumer`, each at its offset in `start` or else at the
/// beginning. The metadata request goes through `consumer` itself on purpose: a consumer that
/// knows the partition leaders resolves `Offset::Beginning` at once, while one that does not yet
/// parks the lookup on librdkafka's 500 ms offset-query retry timer.
fn assign_blocking(
    consumer: &BaseConsumer,
    topic: Topic,
    start: &BTreeMap<i32, i64>,
    timeout: Duration,
) -> LogResult<()> {
    let partitions = partitions_blocking(consumer.client(), topic, timeout)?;
    for (&partition, &offset) in start {
        if !partitions.contains(&partition) {
            return Err(LogError::Fatal(format!(
                "cannot read topic `{}` from partition {partition}: it has partitions {partitions:?}",
                topic.name()
            )));
        }
        if offset < 0 {
            return Err(LogError::Fatal(format!(
                "cannot read topic `{}` partition {partition} from negative offset {offset}",
                topic.name()
            )));
        }
    }
    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        let offset = start.get(&partition).map_or(Offset::Beginning, |&offset| Offset::Offset(offset));
        assignment.add_partition_offset(topic.name(), partition, offset).map_err(classify)?;
    }
    consumer.assign(&assignment).map_err(classify)
}

/// Reads every partition of one topic; see [`EventLog::reader`].
struct KafkaReader {
    topic: Topic,
    consumer: Arc<BaseConsumer>,
    /// A poll whose caller stopped waiting (its future was dropped, e.g. by `select!`). The
    /// blocking task still takes records off the consumer, so the next `poll` returns its result
    /// instead of starting afresh: otherwise those records would be skipped.
    in_flight: Option<JoinHandle<LogResult<Vec<Consumed>>>>,
}

#[async_trait]
impl LogReader for KafkaReader {
    async fn poll(&mut self, max: usize, wait: Duration) -> LogResult<Vec<Consumed>> {
        // A poll left over from a cancelled call is returned as is, with its own `max` and `wait`.
        let task = self.in_flight.get_or_insert_with(|| {
            let consumer = Arc::clone(&self.consumer);
            let topic = self.topic;
            tokio::task::spawn_blocking(move || poll_blocking(&consumer, topic, max, wait))
        });
        let outcome = task.await;
        self.in_flight = None;
        outcome.map_err(|join_error| LogError::Fatal(format!("kafka poll task failed: {join_error}")))?
    }
}

/// Takes up to `max` records off `consumer`, waiting up to `wait` for the first one only.
fn poll_blocking(consumer: &BaseConsumer, topic: Topic, max: usize, wait: Duration) -> LogResult<Vec<Consumed>> {
    let deadline = Instant::now() + wait;
    let mut batch = Vec::new();
    while batch.len() < max {
        let timeout =
            if batch.is_empty() { deadline.saturating_duration_since(Instant::now()) } else { Duration::ZERO };
        match consumer.poll(timeout) {
            Some(Ok(message)) => batch.push(consumed(&message)),
            // Records already taken off the consumer must reach the caller, so an error after
            // some records is only logged; librdkafka reports it again if it persists.
            Some(Err(error)) if !batch.is_empty() => {
                warn!(topic = topic.name(), error = %error, "kafka consumer error after a partial batch");
                break;
            }
            Some(Err(error)) => return Err(consume_error(topic, &error)),
            // `poll` may return early after serving an internal event: keep waiting until the deadline.
            None if batch.is_empty() && Instant::now() < deadline => {}
            None => break,
        }
    }
    Ok(batch)
}

fn consumed(message: &BorrowedMessage<'_>) -> Consumed {
    Consumed {
        position: Position { partition: message.partition(), offset: message.offset() },
        key: message.key().map(<[u8]>::to_vec).unwrap_or_default(),
        payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
    }
}

fn consume_error(topic: Topic, error: &KafkaError) -> LogError {
    if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AutoOffsetReset) {
        return LogError::Fatal(format!("start offset out of range on topic `{}`: {error}", topic.name()));
    }
    LogError::Unavailable(format!("cannot read topic `{}`: {error}", topic.name()))
}

fn unavailable(topic: Topic, error: &KafkaError) -> LogError {
    LogError::Unavailable(format!("cannot append to topic `{}`: {error}", topic.name()))
}

/// Whose fault a client-side error is: bad configuration is fatal, the rest is the network's.
fn classify(error: KafkaError) -> LogError {
    match &error {
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) | KafkaError::AdminOpCreation(_) => {
            LogError::Fatal(error.to_string())
        }
        _ => match error.rdkafka_error_code() {
            Some(code) => classify_code(code, "kafka request failed"),
            None => LogError::Unavailable(error.to_string()),
        },
    }
}

fn classify_code(code: RDKafkaErrorCode, context: &str) -> LogError {
    let fatal = matches!(
        code,
        RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::InvalidPartitions
            | RDKafkaErrorCode::InvalidReplicationFactor
            | RDKafkaErrorCode::InvalidConfig
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::PolicyViolation
            | RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownPartition
            | RDKafkaErrorCode::Fatal
    );
    if fatal {
        LogError::Fatal(format!("{context}: {code}"))
    } else {
        LogError::Unavailable(format!("{context}: {code}"))
    }
}

/// Broker answers to `CreateTopics` that mean "I will not create topics", not "this topic is wrong".
fn creation_refused(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::UnsupportedVersion
            | RDKafkaErrorCode::UnsupportedFeature
            | RDKafkaErrorCode::InvalidRequest
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::PolicyViolation
    )
}

fn topic_named(name: &str) -> Option<Topic> {
    Topic::ALL.into_iter().find(|topic| topic.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults() {
        let config = KafkaConfig::new("k1:9092");
        assert_eq!(config.brokers, "k1:9092");
        assert_eq!(config.partitions, 3);
        assert_eq!(config.replication, 1);
        assert_eq!(config.message_timeout, Duration::from_secs(10));
    }

    #[test]
    fn producer_is_idempotent_and_waits_for_all_replicas() {
        let mut config = KafkaConfig::new("k1:9092");
        config.message_timeout = Duration::from_millis(2500);
        let producer = config.producer_config();
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        assert_eq!(producer.get("acks"), Some("all"));
        assert_eq!(producer.get("message.timeout.ms"), Some("2500"));
        assert_eq!(producer.get("allow.auto.create.topics"), Some("false"));
    }

    #[test]
    fn consumer_never_commits() {
        let consumer = KafkaConfig::new("k1:9092").consumer_config();
        assert_eq!(consumer.get("enable.auto.commit"), Some("false"));
        assert_eq!(consumer.get("group.id"), Some(CONSUMER_GROUP));
    }

    #[test]
    fn refusals_and_fatal_codes() {
        assert!(creation_refused(RDKafkaErrorCode::UnsupportedVersion));
        assert!(!creation_refused(RDKafkaErrorCode::TopicAlreadyExists));
        assert!(matches!(classify_code(RDKafkaErrorCode::BrokerTransportFailure, "x"), LogError::Unavailable(_)));
        assert!(matches!(classify_code(RDKafkaErrorCode::InvalidReplicationFactor, "x"), LogError::Fatal(_)));
        assert_eq!(topic_named("voxpop.dead-letter"), Some(Topic::DeadLetter));
        assert_eq!(topic_named("other"), None);
    }
}

//! The event-log contract ([`voxpop_pipeline::log`]): one suite, written once against
//! `dyn EventLog`, run against every implementation.
//!
//! Each case takes a [`Fixture`] that opens logs on fresh storage (a tansu broker of its own, an
//! empty directory), so cases run in parallel without seeing each other's records. Records are
//! synthetic: keys like `petition-3`, payloads saying `synthetic record ...`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use voxpop_pipeline::log::{Consumed, EventLog, LogReader, Position, Record, Topic};

/// Opens logs on storage that belongs to one test.
pub trait Fixture: Send + Sync {
    /// A log on this fixture's storage. Calling it again opens a new instance on the same storage,
    /// as a restarted process would.
    fn open(&self) -> impl Future<Output = Arc<dyn EventLog>> + Send;
}

/// Longest a case waits for records it appended; generous, because a loaded CI machine is slow,
/// and never reached when the log works.
const READ_DEADLINE: Duration = Duration::from_secs(15);
/// How long "nothing more" is waited for before the case believes it.
const QUIET_WAIT: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------------
// The cases.

pub async fn append_returns_increasing_offsets(fixture: &impl Fixture) {
    let log = fixture.open().await;
    let partitions = log.partitions(Topic::Petitions).await.expect("partitions");
    assert!(!partitions.is_empty(), "a topic has at least one partition");

    let mut next_offset: BTreeMap<i32, i64> = BTreeMap::new();
    for batch in 0..3 {
        let records = synthetic_records(&format!("batch {batch}"), 20, 7);
        let positions = log.append(Topic::Petitions, records.clone()).await.expect("append");
        assert_eq!(positions.len(), records.len(), "one position per record");
        for position in positions {
            assert!(partitions.contains(&position.partition), "{position:?} is not in partitions {partitions:?}");
            // Offsets grow by one per record within a partition, across calls too.
            if let Some(&expected) = next_offset.get(&position.partition) {
                assert_eq!(position.offset, expected, "offsets of partition {} must be contiguous", position.partition);
            }
            next_offset.insert(position.partition, position.offset + 1);
        }
    }
}

pub async fn reads_back_everything_in_order(fixture: &impl Fixture) {
    let log = fixture.open().await;
    let mut appended = append_all(&*log, Topic::Petitions, synthetic_records("first", 30, 10)).await;
    appended.extend(append_all(&*log, Topic::Petitions, synthetic_records("second", 20, 10)).await);

    let mut reader = log.reader(Topic::Petitions, &BTreeMap::new()).await.expect("reader");
    let consumed = read_exactly(&mut *reader, appended.len()).await;
    assert_same_records(consumed, appended);
    assert_quiet(&mut *reader).await;
}

pub async fn reader_from_offset_sees_exactly_the_rest(fixture: &impl Fixture) {
    let log = fixture.open().await;
    let appended = append_all(&*log, Topic::Petitions, synthetic_records("offsets", 40, 8)).await;

    // Start every partition that has records at its middle record.
    let mut start = BTreeMap::new();
    for (partition, records) in by_partition(&appended) {
        start.insert(partition, records[records.len() / 2].position.offset);
    }
    let expected: Vec<Consumed> =
        appended.iter().filter(|record| record.position.offset >= start[&record.position.partition]).cloned().collect();
    let mut reader = log.reader(Topic::Petitions, &start).await.expect("reader from offsets");
    let consumed = read_exactly(&mut *reader, expected.len()).await;
    assert_same_records(consumed, expected);
    assert_quiet(&mut *reader).await;

    // Starting at the end of the log is legal: nothing yet, then whatever comes next.
    let mut end = BTreeMap::new();
    for (partition, records) in by_partition(&appended) {
        end.insert(partition, records.last().expect("non-empty").position.offset + 1);
    }
    let mut tail_reader = log.reader(Topic::Petitions, &end).await.expect("reader at the end");
    assert_quiet(&mut *tail_reader).await;
    let later = append_all(&*log, Topic::Petitions, synthetic_records("later", 6, 3)).await;
    let consumed_later = read_exactly(&mut *tail_reader, later.len()).await;
    assert_same_records(consumed_later, later);
}

pub async fn empty_poll_returns_after_wait(fixture: &impl Fixture) {
    let log = fixture.open().await;
    let mut reader = log.reader(Topic::Petitions, &BTreeMap::new()).await.expect("reader");
    let wait = Duration::from_millis(500);
    for _ in 0..2 {
        let started = Instant::now();
        let batch = reader.poll(10, wait).await.expect("poll");
        let elapsed = started.elapsed();
        assert!(batch.is_empty(), "nothing was appended, got {batch:?}");
        assert!(elapsed < wait + Duration::from_secs(3), "poll took {elapsed:?} for a {wait:?} wait");
        // Returning at once would turn every idle consumer into a busy loop.
        assert!(elapsed >= wait / 2, "poll returned after {elapsed:?}, well before its {wait:?} wait");
    }
}

pub async fn records_appended_after_open_are_seen(fixture: &impl Fixture) {
    let log = fixture.open().await;
    let mut reader = log.reader(Topic::Petitions, &BTreeMap::new()).await.expect("reader");
    assert_quiet(&mut *reader).await;
    let appended = append_all(&*log, Topic::Petitions, synthetic_records("late", 5, 5)).await;
    let consumed = read_exactly(&mut *reader, appended.len()).await;
    assert_same_records(consumed, appended);
}

pub async fn reopened_log_serves_earlier_records(fixture: &impl Fixture) {
    let first_instance = fixture.open().await;
    let mut appended = append_all(&*first_instance, Topic::Petitions, synthetic_records("before", 10, 4)).await;
    drop(first_instance);

    let second_instance = fixture.open().await;
    let after = append_all(&*second_instance, Topic::Petitions, synthetic_records("after", 10, 4)).await;
    let before_max = max_offsets(&appended);
    for record in &after {
        if let Some(&previous) = before_max.get(&record.position.partition) {
            assert!(record.position.offset > previous, "{:?} reuses an offset of the first instance", record.position);
        }
    }
    appended.extend(after);

    let mut reader = second_instance.reader(Topic::Petitions, &BTreeMap::new()).await.expect("reader");
    let consumed = read_exactly(&mut *reader, appended.len()).await;
    assert_same_records(consumed, appended);
}

pub async fn same_key_keeps_order_in_one_partition(fixture: &impl Fixture) {
    let log = fixture.open().await;
    // Several writers at once, each with its own key, each appending several batches.
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let key = format!("petition-{writer}").into_bytes();
                let mut positions = Vec::new();
                let mut payloads = Vec::new();
                for batch in 0..5 {
                    let records: Vec<Record> = (0..10)
                        .map(|index| Record {
                            key: key.clone(),
                            payload: format!("synthetic record {writer}/{batch}/{index}").into_bytes(),
                        })
                        .collect();
                    payloads.extend(records.iter().map(|record| record.payload.clone()));
                    positions.extend(log.append(Topic::Petitions, records).await.expect("append"));
                }
                (key, positions, payloads)
            })
        })
        .collect();
    let mut appended_by_key = Vec::new();
    for writer in writers {
        let (key, positions, payloads) = writer.await.expect("writer task");
        let partition = positions[0].partition;
        assert!(
            positions.iter().all(|position| position.partition == partition),
            "one key, one partition: {positions:?}"
        );
        assert!(positions.windows(2).all(|pair| pair[0].offset < pair[1].offset), "offsets follow append order");
        appended_by_key.push((key, partition, payloads));
    }

    let mut reader = log.reader(Topic::Petitions, &BTreeMap::new()).await.expect("reader");
    let consumed = read_exactly(&mut *reader, 4 * 5 * 10).await;
    for (key, partition, payloads) in appended_by_key {
        let read_payloads: Vec<Vec<u8>> = consumed
            .iter()
            .filter(|record| record.key == key)
            .inspect(|record| assert_eq!(record.position.partition, partition))
            .map(|record| record.payload.clone())
            .collect();
        assert_eq!(read_payloads, payloads, "records of key {:?} out of order", String::from_utf8_lossy(&key));
    }
}

pub async fn dead_letter_is_independent(fixture: &impl Fixture) {
    let log = fixture.open().await;
    let petitions = append_all(&*log, Topic::Petitions, synthetic_records("petition", 5, 5)).await;
    let dead_letters = append_all(&*log, Topic::DeadLetter, synthetic_records("dead letter", 3, 3)).await;
    assert!(!log.partitions(Topic::DeadLetter).await.expect("partitions").is_empty());

    let mut dead_letter_reader = log.reader(Topic::DeadLetter, &BTreeMap::new()).await.expect("reader");
    let consumed_dead_letters = read_exactly(&mut *dead_letter_reader, dead_letters.len()).await;
    assert_same_records(consumed_dead_letters, dead_letters);
    assert_quiet(&mut *dead_letter_reader).await;

    let mut petition_reader = log.reader(Topic::Petitions, &BTreeMap::new()).await.expect("reader");
    let consumed_petitions = read_exactly(&mut *petition_reader, petitions.len()).await;
    assert_same_records(consumed_petitions, petitions);
    assert_quiet(&mut *petition_reader).await;
}

pub async fn release_keeps_later_records_readable(fixture: &impl Fixture) {
    let log = fixture.open().await;
    let appended = append_all(&*log, Topic::Petitions, synthetic_records("release", 12, 3)).await;
    let mut start = BTreeMap::new();
    for (partition, records) in by_partition(&appended) {
        let released_below = records[records.len() / 2].position.offset;
        log.release(Topic::Petitions, partition, released_below).await.expect("release");
        start.insert(partition, released_below);
    }
    // Released records may be gone; the ones at and after the released offset must not be.
    let expected: Vec<Consumed> =
        appended.into_iter().filter(|record| record.position.offset >= start[&record.position.partition]).collect();
    let mut reader = log.reader(Topic::Petitions, &start).await.expect("reader");
    let consumed = read_exactly(&mut *reader, expected.len()).await;
    assert_same_records(consumed, expected);
}

pub async fn big_batch_round_trips(fixture: &impl Fixture) {
    const RECORDS: usize = 5_000;
    let log = fixture.open().await;
    let records: Vec<Record> = (0..RECORDS)
        .map(|index| Record {
            key: format!("petition-{}", index % 97).into_bytes(),
            // About 300 bytes, the size of a short petition.
            payload: format!("synthetic record {index:05} {}", "x".repeat(280)).into_bytes(),
        })
        .collect();
    let started = Instant::now();
    let appended = append_all(&*log, Topic::Petitions, records).await;
    let append_time = started.elapsed();

    let started = Instant::now();
    let mut reader = log.reader(Topic::Petitions, &BTreeMap::new()).await.expect("reader");
    let consumed = read_exactly(&mut *reader, RECORDS).await;
    let read_time = started.elapsed();
    eprintln!("{} log: appended {RECORDS} records in {append_time:?}, read them in {read_time:?}", log.kind());
    assert_same_records(consumed, appended);
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// `count` records over `keys` distinct keys; `label` keeps payloads of different calls apart.
fn synthetic_records(label: &str, count: usize, keys: usize) -> Vec<Record> {
    (0..count)
        .map(|index| Record {
            key: format!("petition-{}", index % keys).into_bytes(),
            payload: format!("synthetic record {label} #{index}").into_bytes(),
        })
        .collect()
}

/// Appends `records` and returns them as the log should serve them back.
async fn append_all(log: &dyn EventLog, topic: Topic, records: Vec<Record>) -> Vec<Consumed> {
    let positions = log.append(topic, records.clone()).await.expect("append");
    assert_eq!(positions.len(), records.len(), "one position per record");
    positions
        .into_iter()
        .zip(records)
        .map(|(position, record)| Consumed { position, key: record.key, payload: record.payload })
        .collect()
}

/// Polls until `count` records arrived, failing after [`READ_DEADLINE`] or on any extra record.
async fn read_exactly(reader: &mut dyn LogReader, count: usize) -> Vec<Consumed> {
    let deadline = Instant::now() + READ_DEADLINE;
    let mut consumed = Vec::with_capacity(count);
    while consumed.len() < count {
        assert!(Instant::now() < deadline, "read {} of {count} records within {READ_DEADLINE:?}", consumed.len());
        let batch = reader.poll(count - consumed.len(), Duration::from_millis(200)).await.expect("poll");
        consumed.extend(batch);
    }
    assert_eq!(consumed.len(), count, "poll returned more than `max` records");
    consumed
}

/// Nothing more arrives within [`QUIET_WAIT`].
async fn assert_quiet(reader: &mut dyn LogReader) {
    let extra = reader.poll(100, QUIET_WAIT).await.expect("poll");
    assert!(extra.is_empty(), "unexpected records: {extra:?}");
}

/// Same records, and each partition read in offset order.
fn assert_same_records(consumed: Vec<Consumed>, appended: Vec<Consumed>) {
    for (partition, records) in by_partition(&consumed) {
        assert!(
            records.windows(2).all(|pair| pair[0].position.offset < pair[1].position.offset),
            "partition {partition} read out of order"
        );
    }
    let read: BTreeSet<(Position, Vec<u8>, Vec<u8>)> = consumed.into_iter().map(as_tuple).collect();
    let written: BTreeSet<(Position, Vec<u8>, Vec<u8>)> = appended.into_iter().map(as_tuple).collect();
    assert_eq!(read.len(), written.len(), "duplicate positions");
    let missing: Vec<_> = written.difference(&read).take(3).collect();
    let unexpected: Vec<_> = read.difference(&written).take(3).collect();
    assert!(missing.is_empty() && unexpected.is_empty(), "missing {missing:?}, unexpected {unexpected:?}");
}

fn as_tuple(record: Consumed) -> (Position, Vec<u8>, Vec<u8>) {
    (record.position, record.key, record.payload)
}

/// Records per partition, in the order given.
fn by_partition(records: &[Consumed]) -> BTreeMap<i32, Vec<Consumed>> {
    let mut partitions: BTreeMap<i32, Vec<Consumed>> = BTreeMap::new();
    for record in records {
        partitions.entry(record.position.partition).or_default().push(record.clone());
    }
    partitions
}

fn max_offsets(records: &[Consumed]) -> BTreeMap<i32, i64> {
    let mut max = BTreeMap::new();
    for record in records {
        let entry = max.entry(record.position.partition).or_insert(record.position.offset);
        *entry = (*entry).max(record.position.offset);
    }
    max
}

// ---------------------------------------------------------------------------------------------
// The implementations.

/// One `#[tokio::test]` per case for the fixture `$fixture`; a macro because a function cannot
/// declare tests.
macro_rules! contract_tests {
    ($fixture:expr) => {
        contract_tests!(@cases $fixture;
            append_returns_increasing_offsets,
            reads_back_everything_in_order,
            reader_from_offset_sees_exactly_the_rest,
            empty_poll_returns_after_wait,
            records_appended_after_open_are_seen,
            reopened_log_serves_earlier_records,
            same_key_keeps_order_in_one_partition,
            dead_letter_is_independent,
            release_keeps_later_records_readable,
            big_batch_round_trips,
        );
    };
    (@cases $fixture:expr; $($case:ident,)+) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $case() {
                let fixture = $fixture;
                super::$case(&fixture).await;
            }
        )+
    };
}

/// [`voxpop_pipeline::kafka::KafkaLog`] on a tansu broker of its own.
mod kafka {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use voxpop_pipeline::kafka::{KafkaConfig, KafkaLog};
    use voxpop_pipeline::log::{EventLog, LogError, Record, Topic};
    use voxpop_tests::broker::Tansu;

    struct KafkaFixture {
        broker: Tansu,
    }

    impl KafkaFixture {
        fn start() -> KafkaFixture {
            KafkaFixture { broker: Tansu::start() }
        }
    }

    impl super::Fixture for KafkaFixture {
        async fn open(&self) -> Arc<dyn EventLog> {
            let mut config = KafkaConfig::new(self.broker.brokers());
            // Short enough that a broken broker fails the test quickly, long enough for a loaded machine.
            config.message_timeout = Duration::from_secs(5);
            let log = KafkaLog::connect(config)
                .await
                .unwrap_or_else(|error| panic!("connect to tansu: {error}\n{}", self.broker.output()));
            Arc::new(log)
        }
    }

    contract_tests!(KafkaFixture::start());

    // Kafka-only behaviour that the contract leaves open but the rest of voxpop relies on.

    fn config_for(broker: &Tansu, message_timeout: Duration) -> KafkaConfig {
        let mut config = KafkaConfig::new(broker.brokers());
        config.message_timeout = message_timeout;
        config
    }

    /// The API turns `Unavailable` into 503 + Retry-After, so a dead broker must say exactly that.
    #[tokio::test(flavor = "multi_thread")]
    async fn connect_to_nothing_is_unavailable() {
        let broker = Tansu::start();
        let config = config_for(&broker, Duration::from_secs(1));
        drop(broker);
        let started = Instant::now();
        let outcome = KafkaLog::connect(config).await;
        assert!(matches!(outcome, Err(LogError::Unavailable(_))), "got {outcome:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "gave up after {:?}", started.elapsed());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn append_to_a_dead_broker_is_unavailable() {
        let message_timeout = Duration::from_secs(2);
        let broker = Tansu::start();
        let log = KafkaLog::connect(config_for(&broker, message_timeout)).await.expect("connect");
        let record = Record { key: b"petition-1".to_vec(), payload: b"synthetic record".to_vec() };
        log.append(Topic::Petitions, vec![record.clone()]).await.expect("append while the broker is up");
        drop(broker);
        let started = Instant::now();
        let outcome = log.append(Topic::Petitions, vec![record]).await;
        assert!(matches!(outcome, Err(LogError::Unavailable(_))), "got {outcome:?}");
        // An HTTP client waits on this: the message timeout, not librdkafka's reconnect backoff
        // (up to 10 s by default), bounds it.
        let elapsed = started.elapsed();
        assert!(elapsed < message_timeout * 3, "gave up after {elapsed:?}");
    }

    /// The pipeline polls inside `select!` with its shutdown signal; a poll abandoned there must
    /// not take records with it, or the lake would silently skip them.
    #[tokio::test(flavor = "multi_thread")]
    async fn cancelled_poll_loses_no_records() {
        let broker = Tansu::start();
        let log = KafkaLog::connect(config_for(&broker, Duration::from_secs(5))).await.expect("connect");
        let mut reader = log.reader(Topic::Petitions, &BTreeMap::new()).await.expect("reader");
        let abandoned = tokio::time::timeout(Duration::from_millis(50), reader.poll(100, Duration::from_secs(2))).await;
        assert!(abandoned.is_err(), "the poll should still have been waiting");
        let appended = super::append_all(&log, Topic::Petitions, super::synthetic_records("cancel", 10, 3)).await;
        let consumed = super::read_exactly(&mut *reader, appended.len()).await;
        super::assert_same_records(consumed, appended);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn topics_get_the_configured_partitions() {
        let broker = Tansu::start();
        let mut config = config_for(&broker, Duration::from_secs(5));
        config.partitions = 4;
        let log = KafkaLog::connect(config).await.expect("connect");
        for topic in Topic::ALL {
            assert_eq!(log.partitions(topic).await.expect("partitions"), vec![0, 1, 2, 3], "{topic:?}");
        }
        // Existing topics are left as they are, whatever the config says.
        let mut smaller = config_for(&broker, Duration::from_secs(5));
        smaller.partitions = 2;
        let reconnected = KafkaLog::connect(smaller).await.expect("reconnect");
        assert_eq!(reconnected.partitions(Topic::Petitions).await.expect("partitions"), vec![0, 1, 2, 3]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn reader_rejects_unknown_partitions_and_negative_offsets() {
        let broker = Tansu::start();
        let log = KafkaLog::connect(config_for(&broker, Duration::from_secs(5))).await.expect("connect");
        for (partition, offset) in [(99, 0), (0, -1)] {
            let start = BTreeMap::from([(partition, offset)]);
            let outcome = log.reader(Topic::Petitions, &start).await;
            assert!(matches!(outcome, Err(LogError::Fatal(_))), "start {start:?} accepted");
        }
    }
}

/// [`voxpop_pipeline::embedded::EmbeddedLog`] in a temporary directory.
mod embedded {
    use std::sync::Arc;

    use voxpop_pipeline::embedded::EmbeddedLog;
    use voxpop_pipeline::log::EventLog;

    struct EmbeddedFixture {
        dir: tempfile::TempDir,
    }

    impl EmbeddedFixture {
        fn new() -> EmbeddedFixture {
            EmbeddedFixture { dir: tempfile::tempdir().expect("temporary directory") }
        }
    }

    impl super::Fixture for EmbeddedFixture {
        async fn open(&self) -> Arc<dyn EventLog> {
            let log = EmbeddedLog::open(self.dir.path()).await.expect("open the embedded log");
            Arc::new(log)
        }
    }

    contract_tests!(EmbeddedFixture::new());
}

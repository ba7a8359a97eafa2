//! The registers on the same path as weekly reports: `voxpop.registers` on the event log,
//! re-validated here, written exactly once to the Delta table `register_entries` (partitioned by
//! `kind`: `person` or `village`) with the consumed log positions in the same commit, invalid
//! records dead-lettered with the reason.
//!
//! People and villages share one table so that one commit holds a batch of both and its
//! positions. Every entry is a row; the latest entry per person or village supersedes the earlier
//! ones when read ([`voxpop_schema::registers::latest_people`],
//! [`voxpop_schema::registers::latest_villages`]), and the history stays.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};
use voxpop_schema::registers::{self, RegisterIntake, RegisterRecord};
use voxpop_schema::reports::CENTRAL_CODE;
use voxpop_schema::{FieldError, Units};

use crate::PipelineResult;
use crate::lake::{AppendLake, LakeResult};
use crate::log::{EventLog, Topic};

/// Path of the `register_entries` table under a lake directory.
pub fn registers_table_path(lake_dir: &Path) -> PathBuf {
    lake_dir.join(registers::TABLE_NAME)
}

/// The `register_entries` table, opened for appending.
pub struct RegistersLake(AppendLake);

impl RegistersLake {
    /// Opens the table at `path`, creating it on first use.
    pub async fn open_or_create(path: &Path) -> LakeResult<RegistersLake> {
        let lake = AppendLake::open_or_create(
            path,
            Topic::Registers,
            registers::TABLE_NAME,
            "Registers of officers and members, and villages (one row per entry)",
            &registers::arrow_schema(),
            Some(registers::PARTITION_COLUMN),
        )
        .await?;
        Ok(RegistersLake(lake))
    }

    /// The table version (0 right after creation).
    pub fn version(&self) -> i64 {
        self.0.version()
    }

    /// The next offset to read per partition of `voxpop.registers`, as the lake recorded it.
    pub async fn committed_positions(&self, partitions: &[i32]) -> LakeResult<BTreeMap<i32, i64>> {
        self.0.committed_positions(partitions).await
    }

    /// Appends `rows` and records `next_positions` in the same commit.
    pub async fn append(&mut self, rows: &[RegisterRecord], next_positions: &BTreeMap<i32, i64>) -> LakeResult<i64> {
        let batch = if rows.is_empty() { None } else { Some(registers::to_record_batch(rows)?) };
        self.0.append(batch, next_positions).await
    }
}

/// Counters of the registers pipeline.
#[derive(Debug, Default)]
pub struct RegistersStats {
    /// Entries written to the lake (people and villages).
    pub written: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub lake_version: AtomicI64,
}

/// Checks one record from the log: decodes it and validates it as the central level would (the
/// sender's scope and the villages register were checked at intake; a village may be created
/// and used within one batch, so villages are not looked up here).
fn prepare(payload: &[u8], units: &Units) -> Result<RegisterRecord, (String, Vec<FieldError>)> {
    let record: RegisterRecord =
        serde_json::from_slice(payload).map_err(|err| (format!("malformed register entry: {err}"), Vec::new()))?;
    let intake = RegisterIntake {
        units,
        scope: CENTRAL_CODE,
        // Entries are stamped at intake; the clock here only bounds dates, with a margin for a
        // log read a while after it was written.
        now: chrono::Utc::now() + chrono::Duration::days(7),
        submitted_by: None,
        villages: None,
    };
    let problems = match &record {
        RegisterRecord::Person(person) => intake.validate_person(person),
        RegisterRecord::Village(village) => intake.validate_village(village),
    };
    if problems.is_empty() {
        return Ok(record);
    }
    let reason = problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; ");
    Err((format!("invalid register entry: {reason}"), problems.iter().map(|p| p.to_field_error()).collect()))
}

/// Runs until `shutdown`; errors restart the loop from the positions the lake recorded.
pub async fn run(
    log: Arc<dyn EventLog>,
    path: PathBuf,
    stats: Arc<RegistersStats>,
    shutdown: watch::Receiver<bool>,
) -> PipelineResult<()> {
    crate::runner::restarting("registers", shutdown, |mut shutdown| {
        let (log, path, stats) = (log.clone(), path.clone(), stats.clone());
        async move { run_once(log, &path, &stats, &mut shutdown).await }
    })
    .await
}

async fn run_once(
    log: Arc<dyn EventLog>,
    path: &Path,
    stats: &RegistersStats,
    shutdown: &mut watch::Receiver<bool>,
) -> PipelineResult<()> {
    let mut lake = RegistersLake::open_or_create(path).await?;
    stats.lake_version.store(lake.version(), Ordering::Relaxed);
    let partitions = log.partitions(Topic::Registers).await?;
    let start = lake.committed_positions(&partitions).await?;
    let mut reader = log.reader(Topic::Registers, &start).await?;
    let units = Units::embedded();
    while !*shutdown.borrow() {
        let polled = tokio::select! {
            polled = reader.poll(50_000, Duration::from_millis(250)) => polled?,
            _ = shutdown.changed() => break,
        };
        if polled.is_empty() {
            continue;
        }
        let mut next_positions: BTreeMap<i32, i64> = BTreeMap::new();
        let mut rows = Vec::with_capacity(polled.len());
        let mut dead = Vec::new();
        for record in &polled {
            let next = next_positions.entry(record.position.partition).or_insert(0);
            *next = (*next).max(record.position.offset + 1);
            match prepare(&record.payload, units) {
                Ok(row) => rows.push(row),
                Err((reason, errors)) => {
                    warn!(offset = record.position.offset, %reason, "dead-lettering a register entry");
                    dead.push(crate::runner::DeadLetter::record(Topic::Registers, record, reason, errors));
                }
            }
        }
        if !dead.is_empty() {
            log.append(Topic::DeadLetter, dead.clone()).await?;
        }
        let version = lake.append(&rows, &next_positions).await?;
        let villages = rows.iter().filter(|row| matches!(row, RegisterRecord::Village(_))).count();
        info!(
            people = rows.len() - villages,
            villages,
            dead_lettered = dead.len(),
            lake_version = version,
            "register entries written"
        );
        stats.written.fetch_add(rows.len() as u64, Ordering::Relaxed);
        stats.dead_lettered.fetch_add(dead.len() as u64, Ordering::Relaxed);
        stats.lake_version.store(version, Ordering::Relaxed);
        for (partition, offset) in next_positions {
            if let Err(err) = log.release(Topic::Registers, partition, offset).await {
                warn!(partition, offset, error = %err, "could not release register records");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedLog;
    use crate::lake::open_table;
    use crate::log::Record;
    use voxpop_schema::registers::{EntrySource, PersonEntry, Register, VillageEntry};

    fn person(unit: &str, id: &str, role: &str) -> RegisterRecord {
        RegisterRecord::Person(PersonEntry {
            entry_id: uuid::Uuid::now_v7(),
            register: Register::Officer,
            person_id: id.to_owned(),
            unit: unit.to_owned(),
            full_name: "Nguyễn Văn An".to_owned(),
            role: role.to_owned(),
            gender: None,
            birth_year: None,
            phone: None,
            term_start: chrono::NaiveDate::from_ymd_opt(2024, 10, 1).unwrap(),
            term_end: None,
            removed: false,
            submitted_by: Some("test".to_owned()),
            submitted_at: chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6),
            source: EntrySource::Api,
        })
    }

    fn record(entry: &RegisterRecord) -> Record {
        Record { key: entry.unit_code().as_bytes().to_vec(), payload: serde_json::to_vec(entry).unwrap() }
    }

    async fn rows_in(path: &Path) -> Vec<RegisterRecord> {
        use deltalake::datafusion::prelude::SessionContext;
        let table = open_table(path).await.unwrap();
        let ctx = SessionContext::new();
        table.update_datafusion_session(&ctx.state()).unwrap();
        let frame = ctx.read_table(table.table_provider().await.unwrap()).unwrap();
        let mut rows = Vec::new();
        for batch in frame.collect().await.unwrap() {
            rows.extend(registers::from_record_batch(&batch).unwrap());
        }
        rows
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn registers_pipeline_writes_once_and_dead_letters_bad_entries() {
        let dir = tempfile::tempdir().unwrap();
        let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(&dir.path().join("log")).await.unwrap());
        let village = RegisterRecord::Village(VillageEntry {
            entry_id: uuid::Uuid::now_v7(),
            code: "00004-001".to_owned(),
            name: "Tổ dân phố số 1".to_owned(),
            commune_code: "00004".to_owned(),
            removed: false,
            submitted_by: None,
            submitted_at: chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6),
            source: EntrySource::Import,
        });
        let good =
            [person("00004", "1", "Chủ tịch"), person("00004-001", "2", "Trưởng ban công tác Mặt trận"), village];
        let mut records: Vec<Record> = good.iter().map(record).collect();
        records.push(record(&person("99999", "3", "Ủy viên")));
        records.push(Record { key: b"x".to_vec(), payload: b"not json".to_vec() });
        log.append(Topic::Registers, records).await.unwrap();

        let path = registers_table_path(&dir.path().join("lake"));
        let stats = Arc::new(RegistersStats::default());
        for round in 0..2 {
            // A restart reads from the lake's positions: nothing is written twice.
            let (stop, stop_rx) = watch::channel(false);
            let task = tokio::spawn(run(log.clone(), path.clone(), stats.clone(), stop_rx));
            if round == 1 {
                tokio::time::sleep(Duration::from_millis(800)).await;
            }
            for _ in 0..100 {
                if stats.written.load(Ordering::Relaxed) >= 3 && stats.dead_lettered.load(Ordering::Relaxed) >= 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            stop.send(true).unwrap();
            task.await.unwrap().unwrap();
        }
        assert_eq!((stats.written.load(Ordering::Relaxed), stats.dead_lettered.load(Ordering::Relaxed)), (3, 2));
        let mut written = rows_in(&path).await;
        written.sort_by(|a, b| a.unit_code().cmp(b.unit_code()).then(a.kind().cmp(b.kind())));
        let mut expected = good.to_vec();
        expected.sort_by(|a, b| a.unit_code().cmp(b.unit_code()).then(a.kind().cmp(b.kind())));
        assert_eq!(written, expected);
        let letters =
            log.reader(Topic::DeadLetter, &BTreeMap::new()).await.unwrap().poll(10, Duration::from_secs(1)).await;
        let reasons: Vec<String> = letters
            .unwrap()
            .iter()
            .map(|letter| serde_json::from_slice::<serde_json::Value>(&letter.payload).unwrap()["reason"].to_string())
            .collect();
        assert!(reasons.iter().any(|r| r.contains("unknown") || r.contains("99999")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("malformed register entry")), "{reasons:?}");
    }
}

//! Weekly reports on the same path as petitions: `voxpop.reports` on the event log, re-validated
//! here, written exactly once to the Delta table `weekly_reports` (partitioned by ISO week) with
//! the consumed log positions in the same commit, invalid records dead-lettered with the reason.
//!
//! Every submitted value is a row; a later value for the same unit, week and indicator supersedes
//! the earlier one when read ([`voxpop_schema::reports::latest_values`]), and the history stays.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;
use voxpop_schema::reports::{self, Catalogue, ReportValue};
use voxpop_schema::{FieldError, Units};

use crate::PipelineResult;
use crate::lake::{AppendLake, LakeResult};
use crate::log::{EventLog, Topic};

/// Path of the `weekly_reports` table under a lake directory.
pub fn reports_table_path(lake_dir: &Path) -> PathBuf {
    lake_dir.join(reports::TABLE_NAME)
}

/// The `weekly_reports` table, opened for appending.
pub struct ReportsLake(AppendLake);

impl ReportsLake {
    pub async fn open_or_create(path: &Path) -> LakeResult<ReportsLake> {
        let lake = AppendLake::open_or_create(
            path,
            Topic::Reports,
            reports::TABLE_NAME,
            "Weekly reports of units at four levels (one row per value)",
            &reports::arrow_schema(),
            Some(reports::PARTITION_COLUMN),
        )
        .await?;
        Ok(ReportsLake(lake))
    }

    pub fn version(&self) -> i64 {
        self.0.version()
    }

    pub async fn committed_positions(&self, partitions: &[i32]) -> LakeResult<BTreeMap<i32, i64>> {
        self.0.committed_positions(partitions).await
    }

    /// Appends `rows` and records `next_positions` in the same commit.
    pub async fn append(&mut self, rows: &[ReportValue], next_positions: &BTreeMap<i32, i64>) -> LakeResult<i64> {
        let batch = if rows.is_empty() { None } else { Some(reports::to_record_batch(rows)?) };
        self.0.append(batch, next_positions).await
    }
}

/// Counters of the reports pipeline.
#[derive(Debug, Default)]
pub struct ReportsStats {
    pub written: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub lake_version: AtomicI64,
}

/// Checks one record from the log: decodes it and validates it as the central level would (the
/// sender's scope was checked at intake).
fn prepare(payload: &[u8], units: &Units, catalogue: &Catalogue) -> Result<ReportValue, (String, Vec<FieldError>)> {
    let row: ReportValue =
        serde_json::from_slice(payload).map_err(|err| (format!("malformed report value: {err}"), Vec::new()))?;
    let intake = reports::Intake {
        units,
        catalogue,
        scope: reports::CENTRAL_CODE,
        now: chrono::Utc::now() + chrono::Duration::days(7),
        submitted_by: None,
        villages: None,
    };
    let problems = intake.validate_row(&row);
    if problems.is_empty() {
        Ok(row)
    } else {
        let reason = problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; ");
        Err((format!("invalid report value: {reason}"), problems.iter().map(|p| p.to_field_error()).collect()))
    }
}

/// Runs until `shutdown`; errors restart the loop from the positions the lake recorded.
pub async fn run(
    log: Arc<dyn EventLog>,
    path: PathBuf,
    stats: Arc<ReportsStats>,
    shutdown: watch::Receiver<bool>,
) -> PipelineResult<()> {
    crate::runner::restarting("reports", shutdown, |mut shutdown| {
        let (log, path, stats) = (log.clone(), path.clone(), stats.clone());
        async move { run_once(log, &path, &stats, &mut shutdown).await }
    })
    .await
}

async fn run_once(
    log: Arc<dyn EventLog>,
    path: &Path,
    stats: &ReportsStats,
    shutdown: &mut watch::Receiver<bool>,
) -> PipelineResult<()> {
    let mut lake = ReportsLake::open_or_create(path).await?;
    stats.lake_version.store(lake.version(), Ordering::Relaxed);
    let partitions = log.partitions(Topic::Reports).await?;
    let start = lake.committed_positions(&partitions).await?;
    let mut reader = log.reader(Topic::Reports, &start).await?;
    let (units, catalogue) = (Units::embedded(), Catalogue::default_embedded());
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
            match prepare(&record.payload, units, catalogue) {
                Ok(row) => rows.push(row),
                Err((reason, errors)) => {
                    warn!(offset = record.position.offset, %reason, "dead-lettering a report value");
                    dead.push(crate::runner::DeadLetter::record(Topic::Reports, record, reason, errors));
                }
            }
        }
        if !dead.is_empty() {
            log.append(Topic::DeadLetter, dead.clone()).await?;
        }
        let version = lake.append(&rows, &next_positions).await?;
        stats.written.fetch_add(rows.len() as u64, Ordering::Relaxed);
        stats.dead_lettered.fetch_add(dead.len() as u64, Ordering::Relaxed);
        stats.lake_version.store(version, Ordering::Relaxed);
        for (partition, offset) in next_positions {
            if let Err(err) = log.release(Topic::Reports, partition, offset).await {
                warn!(partition, offset, error = %err, "could not release report records");
            }
        }
    }
    Ok(())
}

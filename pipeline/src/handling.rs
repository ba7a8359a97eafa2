//! Handling events on the same path as everything else: `voxpop.events` on the log, re-validated
//! here against the state machine, written exactly once to the append-only Delta table
//! `petition_events` (with the consumed log positions in the same commit), folded into the
//! current-state table `petition_status`, and announced on `voxpop.notifications`.
//!
//! `petition_status` is derived: each of its commits records the `petition_events` version it
//! reflects (a Delta application transaction). After a crash between the two commits the status
//! table is rebuilt from the events, so it never disagrees with them. Notifications are appended
//! before the events commit: a crash in between sends them again (at least once; consumers
//! deduplicate on `notification_id`, the event's id).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use datafusion::prelude::{SessionContext, col};
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;
use voxpop_schema::workflow::rows::{self, LoggedEvent};
use voxpop_schema::workflow::{self, Event, Handling, Notification, Status};

use crate::PipelineResult;
use crate::lake::{LakeError, LakeResult, commit_positions_only};
use crate::log::{EventLog, Record, Topic};

/// The application transaction of `petition_status` that records the events version it reflects.
const STATUS_MARKER: &str = "voxpop-pipeline/petition_status/events-version";

pub fn events_table_path(lake_dir: &Path) -> PathBuf {
    lake_dir.join(workflow::EVENTS_TABLE)
}

pub fn status_table_path(lake_dir: &Path) -> PathBuf {
    lake_dir.join(workflow::STATUS_TABLE)
}

async fn read_all(table: &DeltaTable, path: &Path) -> Result<Vec<deltalake::arrow::array::RecordBatch>, LakeError> {
    let ctx = SessionContext::new();
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|err| LakeError::Delta { path: path.to_owned(), source: err })?;
    let provider = table
        .table_provider()
        .await
        .map_err(|err| LakeError::Delta { path: path.to_owned(), source: DeltaTableError::Generic(err.to_string()) })?;
    Ok(ctx.read_table(provider)?.collect().await?)
}

/// The two handling tables.
pub struct HandlingLake {
    events_path: PathBuf,
    status_path: PathBuf,
    events: crate::lake::AppendLake,
    status: DeltaTable,
}

impl HandlingLake {
    pub async fn open_or_create(lake_dir: &Path) -> LakeResult<HandlingLake> {
        let (events_path, status_path) = (events_table_path(lake_dir), status_table_path(lake_dir));
        let events = crate::lake::AppendLake::open_or_create(
            &events_path,
            Topic::Events,
            workflow::EVENTS_TABLE,
            "Handling events of petitions (append-only)",
            &rows::events_schema(),
            None,
        )
        .await?;
        let status = crate::lake::open_or_create_table(
            &status_path,
            workflow::STATUS_TABLE,
            "Current handling status of petitions (derived from petition_events)",
            &rows::status_schema(),
            &[],
        )
        .await?;
        Ok(HandlingLake { events_path, status_path, events, status })
    }

    pub fn events_version(&self) -> i64 {
        self.events.version()
    }

    /// The next offset to read per partition of `voxpop.events`, as the events table records it.
    pub async fn committed_positions(&self, partitions: &[i32]) -> LakeResult<BTreeMap<i32, i64>> {
        self.events.committed_positions(partitions).await
    }

    fn status_error(&self, source: DeltaTableError) -> LakeError {
        LakeError::Delta { path: self.status_path.clone(), source }
    }

    /// The events version the status table reflects.
    async fn status_marker(&self) -> LakeResult<Option<i64>> {
        let snapshot = self.status.snapshot().map_err(|err| self.status_error(err))?;
        snapshot
            .transaction_version(self.status.log_store().as_ref(), STATUS_MARKER)
            .await
            .map_err(|err| self.status_error(err))
    }

    /// Every status row.
    pub async fn statuses(&self) -> LakeResult<HashMap<Uuid, Status>> {
        let mut all = HashMap::new();
        for batch in read_all(&self.status, &self.status_path).await? {
            for status in rows::status_from_batch(&batch)? {
                all.insert(status.petition_id, status);
            }
        }
        Ok(all)
    }

    /// Every event, in log order.
    pub async fn events(&self) -> LakeResult<Vec<LoggedEvent>> {
        let mut all = Vec::new();
        for batch in read_all(self.events.table(), &self.events_path).await? {
            all.extend(rows::events_from_batch(&batch)?);
        }
        all.sort_by_key(|logged| (logged.partition, logged.offset));
        Ok(all)
    }

    /// Appends events with the log positions they came from (one commit).
    async fn append_events(&mut self, events: &[LoggedEvent], next_positions: &BTreeMap<i32, i64>) -> LakeResult<i64> {
        let batch = if events.is_empty() { None } else { Some(rows::events_to_batch(events)?) };
        self.events.append(batch, next_positions).await
    }

    fn marker(events_version: i64) -> CommitProperties {
        CommitProperties::default().with_application_transaction(Transaction::new(STATUS_MARKER, events_version))
    }

    /// Upserts `statuses` (Delta MERGE on petition_id) and records the events version.
    async fn merge_status(&mut self, statuses: &[Status], events_version: i64) -> LakeResult<()> {
        if statuses.is_empty() {
            commit_positions_only(&mut self.status, Self::marker(events_version))
                .await
                .map_err(|err| self.status_error(err))?;
            return Ok(());
        }
        let batch = rows::status_to_batch(statuses)?;
        let ctx = SessionContext::new();
        let source = ctx.read_batch(batch)?;
        let columns: Vec<String> = rows::status_schema().fields().iter().map(|f| f.name().clone()).collect();
        let (table, _metrics) = self
            .status
            .clone()
            .merge(source, col("target.petition_id").eq(col("source.petition_id")))
            .with_source_alias("source")
            .with_target_alias("target")
            .with_commit_properties(Self::marker(events_version))
            .when_matched_update(|update| {
                columns.iter().fold(update, |update, name| update.update(name.as_str(), col(format!("source.{name}"))))
            })
            .map_err(|err| self.status_error(err))?
            .when_not_matched_insert(|insert| {
                columns.iter().fold(insert, |insert, name| insert.set(name.as_str(), col(format!("source.{name}"))))
            })
            .map_err(|err| self.status_error(err))?
            .await
            .map_err(|err| self.status_error(err))?;
        self.status = table;
        Ok(())
    }

    /// Makes `petition_status` reflect every event of `petition_events` (rebuilding it when a
    /// crash came between the two commits); true when it had to.
    pub async fn ensure_status_current(&mut self, handling: &Handling) -> PipelineResult<bool> {
        if self.events_version() > 0 && self.status_marker().await? != Some(self.events_version()) {
            self.rebuild_status(handling).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Rebuilds `petition_status` from every event (after a crash between the two commits, or
    /// after the time limits changed).
    pub async fn rebuild_status(&mut self, handling: &Handling) -> PipelineResult<usize> {
        let rules = handling.rules();
        let mut statuses: HashMap<Uuid, Status> = HashMap::new();
        for logged in self.events().await? {
            let event = &logged.event;
            let current = statuses
                .remove(&event.petition_id)
                .unwrap_or_else(|| Status::initial(event.petition_id, &event.petition, &rules));
            match current.apply(event, &rules) {
                Ok(next) => statuses.insert(event.petition_id, next),
                Err(err) => {
                    warn!(event = %event.event_id, error = %err, "an event in the lake does not fit; skipped");
                    statuses.insert(event.petition_id, current)
                }
            };
        }
        let rows: Vec<Status> = statuses.into_values().collect();
        let version = self.events_version();
        let batch = rows::status_to_batch(&rows).map_err(LakeError::from)?;
        self.status = self
            .status
            .clone()
            .write(vec![batch])
            .with_save_mode(SaveMode::Overwrite)
            .with_commit_properties(Self::marker(version))
            .await
            .map_err(|err| self.status_error(err))?;
        info!(petitions = rows.len(), events_version = version, "rebuilt petition_status from petition_events");
        Ok(rows.len())
    }
}

/// Counters of the handling pipeline.
#[derive(Debug, Default)]
pub struct HandlingStats {
    pub applied: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub notified: AtomicU64,
    /// Version of `petition_events` the status table reflects.
    pub events_version: AtomicI64,
}

/// Re-indexes `moved` petitions with their new state.
async fn follow_in_index(
    index: &voxpop_index::PetitionIndex,
    lake_dir: &Path,
    moved: &[&Status],
) -> PipelineResult<()> {
    if moved.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = moved.iter().map(|s| s.petition_id).collect();
    let weeks: Vec<String> = moved.iter().flat_map(|s| voxpop_schema::petition::weeks_holding(s.received_at)).collect();
    let petitions = crate::lake::read_petitions(&crate::lake::petitions_table_path(lake_dir), &ids, &weeks).await?;
    let states: HashMap<Uuid, &'static str> = moved.iter().map(|s| (s.petition_id, s.state.as_str())).collect();
    let pairs: Vec<(voxpop_schema::Petition, &str)> =
        petitions.into_iter().filter_map(|p| states.get(&p.id).map(|state| (p, *state))).collect();
    index.update_states(&pairs)?;
    Ok(())
}

/// Runs until `shutdown`; errors restart the loop from what the lake recorded.
pub async fn run(
    log: Arc<dyn EventLog>,
    lake_dir: PathBuf,
    handling: Arc<Handling>,
    index: Option<Arc<voxpop_index::PetitionIndex>>,
    stats: Arc<HandlingStats>,
    shutdown: watch::Receiver<bool>,
) -> PipelineResult<()> {
    crate::runner::restarting("handling", shutdown, |mut shutdown| {
        let (log, lake_dir, handling, index, stats) =
            (log.clone(), lake_dir.clone(), handling.clone(), index.clone(), stats.clone());
        async move { run_once(log, &lake_dir, &handling, index.as_deref(), &stats, &mut shutdown).await }
    })
    .await
}

async fn run_once(
    log: Arc<dyn EventLog>,
    lake_dir: &Path,
    handling: &Handling,
    index: Option<&voxpop_index::PetitionIndex>,
    stats: &HandlingStats,
    shutdown: &mut watch::Receiver<bool>,
) -> PipelineResult<()> {
    let mut lake = HandlingLake::open_or_create(lake_dir).await?;
    lake.ensure_status_current(handling).await?;
    let mut statuses = lake.statuses().await?;
    stats.events_version.store(lake.events_version(), Ordering::Relaxed);
    let partitions = log.partitions(Topic::Events).await?;
    let start = lake.committed_positions(&partitions).await?;
    let mut reader = log.reader(Topic::Events, &start).await?;
    let rules = handling.rules();
    while !*shutdown.borrow() {
        let polled = tokio::select! {
            polled = reader.poll(10_000, Duration::from_millis(250)) => polled?,
            _ = shutdown.changed() => break,
        };
        if polled.is_empty() {
            continue;
        }
        let mut next_positions: BTreeMap<i32, i64> = BTreeMap::new();
        let mut changed: HashMap<Uuid, Status> = HashMap::new();
        let (mut applied, mut notifications, mut dead) = (Vec::new(), Vec::new(), Vec::new());
        for record in &polled {
            let next = next_positions.entry(record.position.partition).or_insert(0);
            *next = (*next).max(record.position.offset + 1);
            let event: Event = match serde_json::from_slice(&record.payload) {
                Ok(event) => event,
                Err(err) => {
                    dead.push(crate::runner::DeadLetter::record(
                        Topic::Events,
                        record,
                        format!("malformed handling event: {err}"),
                        Vec::new(),
                    ));
                    continue;
                }
            };
            let current = changed
                .get(&event.petition_id)
                .or_else(|| statuses.get(&event.petition_id))
                .cloned()
                .unwrap_or_else(|| Status::initial(event.petition_id, &event.petition, &rules));
            match current.apply(&event, &rules) {
                Ok(next) => {
                    let notification = Notification::of(&event, &next);
                    notifications.push(Record {
                        key: event.petition_id.to_string().into_bytes(),
                        payload: serde_json::to_vec(&notification).expect("notifications serialise"),
                    });
                    changed.insert(event.petition_id, next);
                    applied.push(LoggedEvent {
                        event,
                        partition: record.position.partition,
                        offset: record.position.offset,
                    });
                }
                Err(err) => {
                    warn!(event = %event.event_id, error = %err, "dead-lettering a handling event");
                    dead.push(crate::runner::DeadLetter::record(
                        Topic::Events,
                        record,
                        format!("handling event does not fit the petition's state: {err}"),
                        Vec::new(),
                    ));
                }
            }
        }
        if !notifications.is_empty() {
            log.append(Topic::Notifications, notifications.clone()).await?;
        }
        if !dead.is_empty() {
            log.append(Topic::DeadLetter, dead.clone()).await?;
        }
        let version = lake.append_events(&applied, &next_positions).await?;
        let rows: Vec<Status> = changed.values().cloned().collect();
        lake.merge_status(&rows, version).await?;
        if let Some(index) = index {
            // The index follows: petitions whose state moved are re-indexed with it. A failure
            // here leaves a stale state in search results until the next change or rebuild.
            let moved: Vec<&Status> =
                rows.iter().filter(|s| statuses.get(&s.petition_id).is_none_or(|old| old.state != s.state)).collect();
            if let Err(err) = follow_in_index(index, lake_dir, &moved).await {
                warn!(error = %err, petitions = moved.len(), "could not update handling states in the index");
            }
        }
        statuses.extend(changed);
        stats.applied.fetch_add(applied.len() as u64, Ordering::Relaxed);
        stats.notified.fetch_add(notifications.len() as u64, Ordering::Relaxed);
        stats.dead_lettered.fetch_add(dead.len() as u64, Ordering::Relaxed);
        stats.events_version.store(version, Ordering::Relaxed);
        for (partition, offset) in next_positions {
            if let Err(err) = log.release(Topic::Events, partition, offset).await {
                warn!(partition, offset, error = %err, "could not release handling events");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxpop_schema::workflow::{ActionRequest, Actor, PetitionRef, State};

    #[tokio::test(flavor = "multi_thread")]
    async fn handling_status_is_rebuilt_when_a_crash_came_between_the_two_commits() {
        let dir = tempfile::tempdir().unwrap();
        let handling = Handling::default_embedded();
        let rules = handling.rules();
        let petition = PetitionRef {
            tracking_code: "K7M2-9QXD-4HTR".to_owned(),
            received_at: chrono::Utc::now() - chrono::Duration::hours(3),
            province_code: "01".to_owned(),
            commune_code: "00004".to_owned(),
            topic: None,
            title: "Bãi rác".to_owned(),
        };
        let id = Uuid::now_v7();
        let officer = Actor { id: "t".to_owned(), role: "officer".to_owned(), unit: "00004".to_owned() };
        let mut status = Status::initial(id, &petition, &rules);
        let mut events = Vec::new();
        for action in ["accept", "start"] {
            let request = ActionRequest { action: action.to_owned(), ..Default::default() };
            let event = status.decide(&request, &officer, chrono::Utc::now(), &rules).unwrap();
            status = status.apply(&event, &rules).unwrap();
            events.push(LoggedEvent { event, partition: 0, offset: events.len() as i64 });
        }
        let mut lake = HandlingLake::open_or_create(dir.path()).await.unwrap();
        // The first event reached both tables; the second only the events table (a crash).
        let version = lake.append_events(&events[..1], &BTreeMap::from([(0, 1)])).await.unwrap();
        let first = Status::initial(id, &petition, &rules).apply(&events[0].event, &rules).unwrap();
        lake.merge_status(std::slice::from_ref(&first), version).await.unwrap();
        lake.append_events(&events[1..], &BTreeMap::from([(0, 2)])).await.unwrap();
        assert_eq!(lake.statuses().await.unwrap()[&id].state, State::Accepted, "stale before");

        let mut reopened = HandlingLake::open_or_create(dir.path()).await.unwrap();
        assert!(reopened.ensure_status_current(&handling).await.unwrap());
        assert_eq!(reopened.statuses().await.unwrap()[&id].state, State::InProgress);
        assert!(!reopened.ensure_status_current(&handling).await.unwrap(), "current now: nothing to do");
        assert_eq!(reopened.committed_positions(&[0]).await.unwrap(), BTreeMap::from([(0, 2)]));
    }
}

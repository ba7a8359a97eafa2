//! Reading the handling tables: a petition's timeline, the petitions nobody has acted on yet
//! (they have no row in `petition_status`), and how many of them are past their acceptance
//! deadline, per commune.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::prelude::{SessionContext, col, lit};
use deltalake::{DeltaTable, DeltaTableError};
use uuid::Uuid;
use voxpop_schema::workflow::rows;
use voxpop_schema::workflow::{self, Event, PetitionRef};

use crate::{PetitionQueries, QueryError, QueryResult};

/// A petition without handling events yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Unhandled {
    pub id: Uuid,
    pub petition: PetitionRef,
}

/// Queries over `petition_events` and `petition_status`, next to `petitions`.
pub struct HandlingQueries {
    events_path: PathBuf,
    status_path: PathBuf,
}

async fn open(path: &Path) -> QueryResult<Option<DeltaTable>> {
    if !path.join("_delta_log").exists() {
        return Ok(None);
    }
    let delta = |source| QueryError::Delta { path: path.to_owned(), source };
    let absolute = std::fs::canonicalize(path).map_err(|err| delta(DeltaTableError::Generic(err.to_string())))?;
    let url = deltalake::ensure_table_uri(absolute.to_string_lossy()).map_err(delta)?;
    let table = DeltaTable::try_from_url(url).await.map_err(delta)?;
    Ok(table.version().is_some().then_some(table))
}

async fn register(ctx: &SessionContext, name: &str, path: &Path) -> QueryResult<bool> {
    let Some(table) = open(path).await? else {
        return Ok(false);
    };
    let delta = |source| QueryError::Delta { path: path.to_owned(), source };
    table.update_datafusion_session(&ctx.state()).map_err(delta)?;
    let provider = table.table_provider().await.map_err(|err| delta(DeltaTableError::Generic(err.to_string())))?;
    ctx.register_table(name, provider)?;
    Ok(true)
}

impl HandlingQueries {
    pub fn new(lake_dir: &Path) -> HandlingQueries {
        HandlingQueries {
            events_path: lake_dir.join(workflow::EVENTS_TABLE),
            status_path: lake_dir.join(workflow::STATUS_TABLE),
        }
    }

    /// The events of one petition in the order they happened.
    pub async fn history(&self, petition_id: &Uuid) -> QueryResult<Vec<Event>> {
        let ctx = SessionContext::new();
        if !register(&ctx, workflow::EVENTS_TABLE, &self.events_path).await? {
            return Ok(Vec::new());
        }
        let batches = ctx
            .table(workflow::EVENTS_TABLE)
            .await?
            .filter(col("petition_id").eq(lit(petition_id.to_string())))?
            .collect()
            .await?;
        let mut events = Vec::new();
        for batch in &batches {
            events.extend(rows::events_from_batch(batch)?);
        }
        events.sort_by_key(|logged| (logged.partition, logged.offset));
        Ok(events.into_iter().map(|logged| logged.event).collect())
    }

    /// Petitions of a province and/or commune (or all) that have no status row yet, oldest
    /// first: the ones whose acceptance deadline comes first.
    pub async fn unhandled(
        &self,
        petitions: &PetitionQueries,
        province: Option<&str>,
        commune: Option<&str>,
        received_before: Option<DateTime<Utc>>,
        limit: usize,
    ) -> QueryResult<Vec<Unhandled>> {
        let Some(ctx) = petitions.session().await? else {
            return Ok(Vec::new());
        };
        let mut frame = ctx.table(voxpop_schema::petition::TABLE_NAME).await?;
        if let Some(province) = province {
            frame = frame.filter(col("province_code").eq(lit(province)))?;
        }
        if let Some(commune) = commune {
            frame = frame.filter(col("commune_code").eq(lit(commune)))?;
        }
        if let Some(before) = received_before {
            frame = frame.filter(col("received_at").lt(lit(datafusion::scalar::ScalarValue::TimestampMicrosecond(
                Some(before.timestamp_micros()),
                Some("UTC".into()),
            ))))?;
        }
        frame = frame.select_columns(&[
            "id",
            "tracking_code",
            "title",
            "received_at",
            "province_code",
            "commune_code",
            "topic",
        ])?;
        if register(&ctx, workflow::STATUS_TABLE, &self.status_path).await? {
            let handled = ctx.table(workflow::STATUS_TABLE).await?.select_columns(&["petition_id"])?;
            frame = frame.join(handled, datafusion::common::JoinType::LeftAnti, &["id"], &["petition_id"], None)?;
        }
        let batches = frame.sort(vec![col("received_at").sort(true, false)])?.limit(0, Some(limit))?.collect().await?;
        let mut found = Vec::new();
        let timestamp = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        for batch in &batches {
            let text = |name: &str| -> QueryResult<Vec<Option<String>>> { crate::string_column(batch, name) };
            let (ids, codes, titles, provinces, communes, topics) = (
                text("id")?,
                text("tracking_code")?,
                text("title")?,
                text("province_code")?,
                text("commune_code")?,
                text("topic")?,
            );
            let received = datafusion::arrow::compute::cast(
                batch.column_by_name("received_at").ok_or_else(|| QueryError::Export("no received_at".into()))?,
                &timestamp,
            )
            .map_err(datafusion::error::DataFusionError::from)?;
            let received = received.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
            for i in 0..batch.num_rows() {
                let Some(Ok(id)) = ids[i].as_deref().map(Uuid::parse_str) else {
                    continue;
                };
                if received.is_null(i) {
                    continue;
                }
                let Some(received_at) = DateTime::<Utc>::from_timestamp_micros(received.value(i)) else {
                    continue;
                };
                found.push(Unhandled {
                    id,
                    petition: PetitionRef {
                        tracking_code: codes[i].clone().unwrap_or_default(),
                        received_at,
                        province_code: provinces[i].clone().unwrap_or_default(),
                        commune_code: communes[i].clone().unwrap_or_default(),
                        topic: topics[i].clone(),
                        title: titles[i].clone().unwrap_or_default(),
                    },
                });
            }
        }
        Ok(found)
    }

    /// Petitions without a status row per (province, commune, topic), and how many of them were
    /// received before `overdue_before` (their acceptance deadline has passed).
    pub async fn unhandled_counts(
        &self,
        petitions: &PetitionQueries,
        overdue_before: DateTime<Utc>,
        province: Option<&str>,
        commune: Option<&str>,
    ) -> QueryResult<Vec<UnhandledCount>> {
        let Some(ctx) = petitions.session().await? else {
            return Ok(Vec::new());
        };
        let handled = register(&ctx, workflow::STATUS_TABLE, &self.status_path).await?;
        let mut conditions = Vec::new();
        if handled {
            conditions.push("id NOT IN (SELECT petition_id FROM petition_status)".to_owned());
        }
        // Codes are digits (checked against the code lists by the callers): safe to inline.
        for (column, code) in [("province_code", province), ("commune_code", commune)] {
            if let Some(code) = code.filter(|c| c.bytes().all(|b| b.is_ascii_digit())) {
                conditions.push(format!("{column} = '{code}'"));
            }
        }
        let filter = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
        let sql = format!(
            "SELECT province_code, commune_code, topic, count(*) AS open, \
             sum(CASE WHEN received_at < to_timestamp_micros({}) THEN 1 ELSE 0 END) AS overdue \
             FROM petitions {filter} GROUP BY province_code, commune_code, topic",
            overdue_before.timestamp_micros()
        );
        let batches = ctx.sql(&sql).await?.collect().await?;
        let mut counts = Vec::new();
        for batch in &batches {
            let text = |name: &str| -> QueryResult<Vec<Option<String>>> { crate::string_column(batch, name) };
            let (provinces, communes, topics) = (text("province_code")?, text("commune_code")?, text("topic")?);
            let int = |name: &str| -> QueryResult<Vec<i64>> {
                let array = batch.column_by_name(name).ok_or_else(|| QueryError::Export(format!("no {name}")))?;
                let array = datafusion::arrow::compute::cast(array, &DataType::Int64)
                    .map_err(datafusion::error::DataFusionError::from)?;
                let array = array.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                Ok((0..array.len()).map(|i| if array.is_null(i) { 0 } else { array.value(i) }).collect())
            };
            let (open, overdue) = (int("open")?, int("overdue")?);
            for i in 0..batch.num_rows() {
                counts.push(UnhandledCount {
                    province_code: provinces[i].clone().unwrap_or_default(),
                    commune_code: communes[i].clone().unwrap_or_default(),
                    topic: topics[i].clone(),
                    open: open[i] as u64,
                    overdue: overdue[i] as u64,
                });
            }
        }
        Ok(counts)
    }
}

/// See [`HandlingQueries::unhandled_counts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnhandledCount {
    pub province_code: String,
    pub commune_code: String,
    pub topic: Option<String>,
    pub open: u64,
    pub overdue: u64,
}

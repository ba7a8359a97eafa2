//! Reading the lake with DataFusion.
//!
//! In: the Delta tables the pipeline writes under the lake directory.
//! Out: petitions by id, the facts intake needs after a restart, the weekly summary
//! ([`summary`]), and (later) more named queries and SQL.
//! Guarantees: every query sees the latest committed table version at the time it starts; the
//! lake is only read here, never written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::{SessionContext, col, lit};
use deltalake::{DeltaTable, DeltaTableError};
use tokio::sync::Mutex;
use uuid::Uuid;
use voxpop_schema::petition::{self, PARTITION_COLUMN};
use voxpop_schema::{Channel, Petition};

pub mod campaigns;
mod codes;
pub mod export;
pub mod handling;
mod live_files;
pub mod registers;
pub mod reports;
pub mod sql;
pub mod summary;
pub mod synthesis;
pub mod trends;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The caller asked for something that cannot exist (an unknown province, a bad week).
    #[error("{field}: {message}")]
    BadRequest { field: &'static str, message: String },
    #[error("delta table `{path}`: {source}")]
    Delta {
        path: PathBuf,
        #[source]
        source: DeltaTableError,
    },
    #[error("query failed: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("petition rows: {0}")]
    Schema(#[from] voxpop_schema::SchemaError),
    #[error("export: {0}")]
    Export(String),
    /// The server cannot do the work now for want of a resource that may come back (a full
    /// disk): the caller may retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

pub type QueryResult<T> = Result<T, QueryError>;

/// A petition accepted earlier, as intake needs it to deduplicate external ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownExternalId {
    pub channel: Channel,
    pub external_id: String,
    pub id: Uuid,
    pub tracking_code: String,
}

/// The `petitions` table as grouping queries read it (strings as views); same snapshot, same rows.
pub const GROUPING_TABLE: &str = "petitions_for_grouping";
/// The same files with strings as dictionaries, for counting per combination of codes
/// ([`codes`]); registered where the live-files scan applies.
pub const CODES_TABLE: &str = "petitions_codes";

/// Read access to the `petitions` table.
pub struct PetitionQueries {
    path: PathBuf,
    table: Mutex<Option<DeltaTable>>,
    /// Shared by every session of this table: its cache of Parquet footers outlives one query
    /// (the table's data files never change once written).
    runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
    /// Footers that read the codes as dictionaries ([`CODES_TABLE`]), kept like `runtime`'s.
    hinted_footers: live_files::HintedFooters,
    /// Where user SQL runs: in child processes once set ([`sql::worker`]), in this process
    /// otherwise.
    sql_workers: std::sync::OnceLock<sql::worker::SqlWorkers>,
}

impl PetitionQueries {
    /// Reads the table at `path` (`<lake>/petitions`); until the pipeline has created it, every
    /// query answers as over an empty table.
    pub fn new(path: &Path) -> PetitionQueries {
        PetitionQueries {
            path: path.to_owned(),
            table: Mutex::new(None),
            runtime: Arc::default(),
            hinted_footers: Arc::default(),
            sql_workers: std::sync::OnceLock::new(),
        }
    }

    /// From now on, user SQL ([`PetitionQueries::sql`]) runs in child processes started by
    /// `workers`, each with its own memory limit and killed at its time limit. Set once; a
    /// second call is ignored.
    pub fn run_sql_in(&self, workers: sql::worker::SqlWorkers) {
        let _ = self.sql_workers.set(workers);
    }

    fn delta_error(&self, source: DeltaTableError) -> QueryError {
        QueryError::Delta { path: self.path.clone(), source }
    }

    /// A session with `petitions` registered at the latest version, or `None` with no table yet.
    pub async fn session(&self) -> QueryResult<Option<SessionContext>> {
        let mut cached = self.table.lock().await;
        if cached.is_none() {
            if !self.path.join("_delta_log").exists() {
                return Ok(None);
            }
            let absolute = std::fs::canonicalize(&self.path)
                .map_err(|err| self.delta_error(DeltaTableError::Generic(err.to_string())))?;
            let url = deltalake::ensure_table_uri(absolute.to_string_lossy()).map_err(|err| self.delta_error(err))?;
            let table = DeltaTable::try_from_url(url).await.map_err(|err| self.delta_error(err))?;
            if table.version().is_none() {
                return Ok(None);
            }
            *cached = Some(table);
        }
        let table = cached.as_mut().expect("loaded above");
        table.update_incremental(None).await.map_err(|err| self.delta_error(err))?;
        // Plain Utf8 strings, as the record types and the export writers take them: the view
        // types DataFusion reads by default would be copied back to Utf8 on every batch.
        let mut config = datafusion::prelude::SessionConfig::new();
        config.options_mut().execution.parquet.schema_force_view_types = false;
        // The aggregations here end with at most tens of thousands of groups: merging the
        // partial results in one partition is cheaper than repartitioning them by hash.
        config.options_mut().optimizer.repartition_aggregations = false;
        let ctx = SessionContext::new_with_config_rt(config, self.runtime.clone());
        table.update_datafusion_session(&ctx.state()).map_err(|err| self.delta_error(err))?;
        // The scan delta-rs builds by default hands the partition column (the week) out as a
        // dictionary and strings as views; plain strings group faster (see docs/BENCHMARKS.md).
        let snapshot = table.snapshot().map_err(|err| self.delta_error(err))?.snapshot().clone();
        let scan = |views: bool| {
            let mut config = deltalake::delta_datafusion::DeltaScanConfig::new().with_wrap_partition_values(false);
            config.schema_force_view_types = views;
            deltalake::delta_datafusion::DeltaScanNext::new(snapshot.clone(), config)
        };
        ctx.register_table(petition::TABLE_NAME, Arc::new(scan(false)?))?;
        // The same snapshot with strings as views, for grouping: Parquet's dictionary-encoded
        // codes (province, commune, topic, language) become views into the dictionary page
        // without a copy per row, and short codes compare inline; read by DataFusion's own
        // Parquet scan over the snapshot's live files where the table allows (docs/BENCHMARKS.md).
        let live = std::fs::canonicalize(&self.path)
            .ok()
            .and_then(|dir| live_files::LiveFiles::from_snapshot(&snapshot, &dir));
        match live {
            Some(files) => {
                ctx.register_table(CODES_TABLE, Arc::new(files.with_dictionary_strings(self.hinted_footers.clone())))?;
                ctx.register_table(GROUPING_TABLE, Arc::new(files))?
            }
            None => ctx.register_table(GROUPING_TABLE, Arc::new(scan(true)?))?,
        };
        Ok(Some(ctx))
    }

    /// The table version queries currently see (-1 with no table).
    pub async fn version(&self) -> QueryResult<i64> {
        if self.session().await?.is_none() {
            return Ok(-1);
        }
        Ok(self.table.lock().await.as_ref().and_then(DeltaTable::version).map_or(-1, |v| v as i64))
    }

    /// One petition by id. The time it was received (e.g. from the index) narrows the scan to the
    /// partitions that may hold it ([`petition::weeks_holding`]); without it every partition's
    /// `id` column is scanned.
    pub async fn petition(
        &self,
        id: &Uuid,
        received_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> QueryResult<Option<Petition>> {
        let Some(ctx) = self.session().await? else {
            return Ok(None);
        };
        let mut frame = ctx.table(petition::TABLE_NAME).await?.filter(col("id").eq(lit(id.to_string())))?;
        if let Some(at) = received_at {
            let weeks = petition::weeks_holding(at).into_iter().map(lit).collect();
            frame = frame.filter(col(PARTITION_COLUMN).in_list(weeks, false))?;
        }
        let batches = frame.limit(0, Some(1))?.collect().await?;
        for batch in &batches {
            if let Some(found) = petition::from_record_batch(batch)?.into_iter().next() {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Number of petitions in the lake.
    pub async fn count(&self) -> QueryResult<usize> {
        let Some(ctx) = self.session().await? else {
            return Ok(0);
        };
        Ok(ctx.table(petition::TABLE_NAME).await?.count().await?)
    }

    /// Every `(channel, external_id)` in the lake with its petition's id and tracking code.
    pub async fn known_external_ids(&self) -> QueryResult<Vec<KnownExternalId>> {
        let Some(ctx) = self.session().await? else {
            return Ok(Vec::new());
        };
        let batches = ctx
            .table(petition::TABLE_NAME)
            .await?
            .filter(col("external_id").is_not_null())?
            .select_columns(&["channel", "external_id", "id", "tracking_code"])?
            .collect()
            .await?;
        let mut known = Vec::new();
        for batch in &batches {
            let strings = |name: &str| -> QueryResult<Vec<Option<String>>> { string_column(batch, name) };
            let (channels, externals, ids, codes) =
                (strings("channel")?, strings("external_id")?, strings("id")?, strings("tracking_code")?);
            for i in 0..batch.num_rows() {
                let (Some(channel), Some(external_id), Some(id), Some(tracking_code)) =
                    (&channels[i], &externals[i], &ids[i], &codes[i])
                else {
                    continue;
                };
                let (Some(channel), Ok(id)) = (Channel::parse(channel), Uuid::parse_str(id)) else {
                    continue;
                };
                known.push(KnownExternalId {
                    channel,
                    external_id: external_id.clone(),
                    id,
                    tracking_code: tracking_code.clone(),
                });
            }
        }
        Ok(known)
    }
}

/// A string column of any Arrow string type as owned values.
pub fn string_column(batch: &RecordBatch, name: &str) -> QueryResult<Vec<Option<String>>> {
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| datafusion::error::DataFusionError::Plan(format!("column `{name}` missing")))?;
    let array: Arc<dyn Array> =
        datafusion::arrow::compute::cast(array, &DataType::Utf8).map_err(datafusion::error::DataFusionError::from)?;
    let strings = array.as_string::<i32>();
    Ok((0..strings.len()).map(|i| (!strings.is_null(i)).then(|| strings.value(i).to_owned())).collect())
}

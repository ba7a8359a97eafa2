//! The `petitions` Delta table: appends that carry the log positions they consumed.
//!
//! Exactly once is owned here: every commit holds, next to its rows, one Delta application
//! transaction per log partition (`app_id` = `voxpop-pipeline/<topic>/<partition>`, `version` =
//! the next offset to read). Rows and positions become visible in one atomic commit, so after a
//! crash the pipeline resumes exactly where the lake says it stopped.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use deltalake::datafusion::catalog::Session;
use deltalake::datafusion::physical_plan::collect;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::delta_datafusion::DeltaSessionContext;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{StructField, Transaction};
use deltalake::operations::write::SchemaMode;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::{EnabledStatistics, WriterProperties};
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableError, TableProperty};
use tracing::info;
use voxpop_schema::Petition;
use voxpop_schema::petition::{self, PARTITION_COLUMN};

use crate::log::Topic;

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("delta table `{path}`: {source}")]
    Delta {
        path: PathBuf,
        #[source]
        source: DeltaTableError,
    },
    #[error("petition rows: {0}")]
    Schema(#[from] voxpop_schema::SchemaError),
    #[error("reading changes: {0}")]
    DataFusion(#[from] deltalake::datafusion::error::DataFusionError),
}

pub type LakeResult<T> = Result<T, LakeError>;

/// The Delta transaction id under which a log partition's position is recorded.
pub fn app_id(topic: Topic, partition: i32) -> String {
    format!("voxpop-pipeline/{}/{partition}", topic.name())
}

/// Path of the `petitions` table under a lake directory.
pub fn petitions_table_path(lake_dir: &Path) -> PathBuf {
    lake_dir.join(petition::TABLE_NAME)
}

/// Opens the Delta table at `path` (creating the directory), whether or not a table exists yet.
pub(crate) async fn open_table(path: &Path) -> Result<DeltaTable, DeltaTableError> {
    std::fs::create_dir_all(path)
        .map_err(|err| DeltaTableError::Generic(format!("cannot create `{}`: {err}", path.display())))?;
    let absolute = std::fs::canonicalize(path).map_err(|err| DeltaTableError::Generic(err.to_string()))?;
    let url = deltalake::ensure_table_uri(absolute.to_string_lossy())?;
    if !path.join("_delta_log").exists() {
        // No table yet: an unloaded handle to create it with (loading would only log an error).
        return deltalake::DeltaTableBuilder::from_url(url)?.build();
    }
    DeltaTable::try_from_url(url).await
}

/// Columns of free text or unique values: a dictionary never pays off (each value is new) and
/// min/max statistics of 1 KB strings prune nothing, so both are off for them.
const FREE_TEXT_COLUMNS: [&str; 7] =
    ["id", "tracking_code", "title", "body", "contact_name", "contact_phone", "contact_email"];

/// Parquet settings of the files the pipeline writes: Snappy (cheap to write and to read), and
/// dictionaries and statistics only where they help (codes, channel, language, dates).
fn writer_properties() -> WriterProperties {
    let mut builder = WriterProperties::builder().set_compression(Compression::SNAPPY);
    for column in FREE_TEXT_COLUMNS {
        let path = ColumnPath::from(column);
        builder = builder
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_statistics_enabled(path, EnabledStatistics::None);
    }
    builder.build()
}

/// The DataFusion session of the pipeline's appends: one stream. A micro-batch arrives as one
/// Arrow batch; with the default of one stream per core, the write plan splits it round-robin and
/// then hash-repartitions it by week, copying every column once more, only to write the one or
/// two weeks a batch holds (docs/BENCHMARKS.md). The writer still splits a batch by week itself.
fn append_session() -> Arc<dyn Session> {
    let options = HashMap::from([("datafusion.execution.target_partitions".to_owned(), "1".to_owned())]);
    let context = DeltaSessionContext::new_with_session_overrides(&options).expect("a known DataFusion option");
    Arc::new(context.state())
}

/// The next offset to read per log partition, as the table's application transactions record
/// it; partitions the table has never seen are absent. Shared by every table the pipelines write.
pub(crate) async fn committed_positions(
    table: &DeltaTable,
    topic: Topic,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>, DeltaTableError> {
    let snapshot = table.snapshot()?;
    let log_store = table.log_store();
    let mut positions = BTreeMap::new();
    for &partition in partitions {
        if let Some(next_offset) = snapshot.transaction_version(log_store.as_ref(), app_id(topic, partition)).await? {
            positions.insert(partition, next_offset);
        }
    }
    Ok(positions)
}

/// Commit properties recording `next_positions` (partition -> next offset) of `topic`.
pub(crate) fn positions_commit(topic: Topic, next_positions: &BTreeMap<i32, i64>) -> CommitProperties {
    let transactions: Vec<Transaction> = next_positions
        .iter()
        .map(|(&partition, &next_offset)| Transaction::new(app_id(topic, partition), next_offset))
        .collect();
    CommitProperties::default().with_application_transactions(transactions)
}

/// A commit with positions and no rows: a batch that was all dead letters still moves the
/// pipeline on.
pub(crate) async fn commit_positions_only(
    table: &mut DeltaTable,
    properties: CommitProperties,
) -> Result<(), DeltaTableError> {
    let snapshot = table.snapshot()?;
    let operation = DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None };
    CommitBuilder::from(properties)
        .with_actions(Vec::new())
        .build(Some(snapshot), table.log_store(), operation)
        .await?;
    table.update_incremental(None).await
}

/// Opens the Delta table at `path`, creating it on first use with the columns of `schema`
/// (partitioned by `partitions`, change data feed on). Shared by the tables the event pipelines
/// keep besides `petitions`.
pub(crate) async fn open_or_create_table(
    path: &Path,
    name: &str,
    comment: &str,
    schema: &deltalake::arrow::datatypes::Schema,
    partitions: &[&str],
) -> LakeResult<DeltaTable> {
    use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
    let delta = |source| LakeError::Delta { path: path.to_owned(), source };
    let table = open_table(path).await.map_err(delta)?;
    if table.version().is_some() {
        return Ok(table);
    }
    let mut columns: Vec<StructField> = Vec::new();
    for field in schema.fields() {
        columns.push(field.as_ref().try_into_kernel().map_err(|err| delta(DeltaTableError::Generic(err.to_string())))?);
    }
    info!(path = %path.display(), "creating the {name} table");
    let mut create = table
        .create()
        .with_table_name(name)
        .with_comment(comment)
        .with_columns(columns)
        .with_configuration_property(TableProperty::EnableChangeDataFeed, Some("true"))
        .with_save_mode(SaveMode::Ignore);
    if !partitions.is_empty() {
        create = create.with_partition_columns(partitions.iter().copied());
    }
    create.await.map_err(delta)
}

/// An append-only table of one event stream: every commit holds a batch of rows and the log
/// positions they were read from (exactly once, as for petitions). The tables of weekly reports,
/// registers and handling events are such tables.
pub struct AppendLake {
    path: PathBuf,
    table: DeltaTable,
    topic: Topic,
    partition: Option<&'static str>,
}

impl AppendLake {
    /// Opens the table at `path` for `topic`, creating it on first use (see
    /// [`open_or_create_table`]).
    pub async fn open_or_create(
        path: &Path,
        topic: Topic,
        name: &str,
        comment: &str,
        schema: &deltalake::arrow::datatypes::Schema,
        partition: Option<&'static str>,
    ) -> LakeResult<AppendLake> {
        let partitions: Vec<&str> = partition.into_iter().collect();
        let table = open_or_create_table(path, name, comment, schema, &partitions).await?;
        Ok(AppendLake { path: path.to_owned(), table, topic, partition })
    }

    fn delta_error(&self, source: DeltaTableError) -> LakeError {
        LakeError::Delta { path: self.path.clone(), source }
    }

    /// The table version (0 right after creation, -1 before).
    pub fn version(&self) -> i64 {
        self.table.version().map_or(-1, |v| v as i64)
    }

    /// The Delta table, to read it.
    pub fn table(&self) -> &DeltaTable {
        &self.table
    }

    /// The next offset to read per partition of the topic, as the table recorded it.
    pub async fn committed_positions(&self, partitions: &[i32]) -> LakeResult<BTreeMap<i32, i64>> {
        committed_positions(&self.table, self.topic, partitions).await.map_err(|err| self.delta_error(err))
    }

    /// Appends `batch` (none: positions only) and records `next_positions` in the same commit;
    /// the new version.
    pub async fn append(
        &mut self,
        batch: Option<deltalake::arrow::array::RecordBatch>,
        next_positions: &BTreeMap<i32, i64>,
    ) -> LakeResult<i64> {
        let properties = positions_commit(self.topic, next_positions);
        let Some(batch) = batch.filter(|b| b.num_rows() > 0) else {
            commit_positions_only(&mut self.table, properties).await.map_err(|err| self.delta_error(err))?;
            return Ok(self.version());
        };
        let mut write =
            self.table.clone().write(vec![batch]).with_save_mode(SaveMode::Append).with_session_state(append_session());
        if let Some(partition) = self.partition {
            write = write.with_partition_columns([partition]);
        }
        self.table = write.with_commit_properties(properties).await.map_err(|err| self.delta_error(err))?;
        Ok(self.version())
    }
}

/// The petitions with these ids, read from the table at `path`; `weeks` (their partitions)
/// narrow the scan to a few files. Petitions not in the table are absent from the answer.
pub async fn read_petitions(path: &Path, ids: &[uuid::Uuid], weeks: &[String]) -> LakeResult<Vec<Petition>> {
    use deltalake::datafusion::prelude::{col, lit};
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let delta = |source| LakeError::Delta { path: path.to_owned(), source };
    let table = open_table(path).await.map_err(delta)?;
    if table.version().is_none() {
        return Ok(Vec::new());
    }
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state()).map_err(delta)?;
    let provider = table.table_provider().await.map_err(|err| delta(DeltaTableError::Generic(err.to_string())))?;
    let mut weeks: Vec<_> = weeks.iter().map(|w| lit(w.as_str())).collect();
    weeks.dedup();
    let frame = ctx
        .read_table(provider)?
        .filter(col(PARTITION_COLUMN).in_list(weeks, false))?
        .filter(col("id").in_list(ids.iter().map(|id| lit(id.to_string())).collect(), false))?;
    let mut petitions = Vec::new();
    for batch in frame.collect().await? {
        petitions.extend(petition::from_record_batch(&batch)?);
    }
    Ok(petitions)
}

/// The petitions table, opened for appending.
pub struct PetitionLake {
    path: PathBuf,
    table: DeltaTable,
}

impl PetitionLake {
    /// Opens the table at `path`, creating it (with change data feed on, for incremental
    /// readers) on first use.
    pub async fn open_or_create(path: &Path) -> LakeResult<PetitionLake> {
        let delta = |source| LakeError::Delta { path: path.to_owned(), source };
        let table = open_table(path).await.map_err(delta)?;
        let table = if table.version().is_some() {
            table
        } else {
            let columns: Vec<StructField> = arrow_to_delta_fields()?;
            info!(path = %path.display(), "creating the petitions table");
            table
                .create()
                .with_table_name(petition::TABLE_NAME)
                .with_comment("Petitions (phản ánh, kiến nghị), national schema version 1")
                .with_columns(columns)
                .with_partition_columns([PARTITION_COLUMN])
                .with_configuration_property(TableProperty::EnableChangeDataFeed, Some("true"))
                .with_save_mode(SaveMode::Ignore)
                .await
                .map_err(delta)?
        };
        Ok(PetitionLake { path: path.to_owned(), table })
    }

    fn delta_error(&self, source: DeltaTableError) -> LakeError {
        LakeError::Delta { path: self.path.clone(), source }
    }

    /// The table version (0 right after creation).
    pub fn version(&self) -> i64 {
        self.table.version().map_or(-1, |v| v as i64)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn table(&self) -> &DeltaTable {
        &self.table
    }

    /// The next offset to read per partition, as recorded by the last commits; partitions the
    /// lake has never seen are absent.
    pub async fn committed_positions(&self, topic: Topic, partitions: &[i32]) -> LakeResult<BTreeMap<i32, i64>> {
        committed_positions(&self.table, topic, partitions).await.map_err(|err| self.delta_error(err))
    }

    /// Appends `petitions` and records `next_positions` (partition -> next offset to read) in the
    /// same commit. Returns the new table version. With no petitions, commits the positions alone
    /// (a batch that was all dead letters still moves the pipeline on).
    pub async fn append(
        &mut self,
        topic: Topic,
        petitions: &[Petition],
        next_positions: &BTreeMap<i32, i64>,
    ) -> LakeResult<i64> {
        let properties = positions_commit(topic, next_positions);
        if petitions.is_empty() {
            commit_positions_only(&mut self.table, properties).await.map_err(|err| self.delta_error(err))?;
            return Ok(self.version());
        }
        let mut sorted: Vec<&Petition> = petitions.iter().collect();
        // Sorted by province then commune within each file: row-group statistics then prune the
        // regional queries that do not hit the partition column.
        sorted.sort_by(|a, b| {
            (&a.province_code, &a.commune_code, a.received_at).cmp(&(&b.province_code, &b.commune_code, b.received_at))
        });
        let batch = petition::to_record_batch(&sorted)?;
        let table = self
            .table
            .clone()
            .write(vec![batch])
            .with_save_mode(SaveMode::Append)
            .with_session_state(append_session())
            .with_partition_columns([PARTITION_COLUMN])
            .with_writer_properties(writer_properties())
            // Tables written before a column existed (e.g. `topic`) take it on the next append.
            .with_schema_mode(SchemaMode::Merge)
            .with_commit_properties(properties)
            .await
            .map_err(|err| self.delta_error(err))?;
        self.table = table;
        Ok(self.version())
    }

    /// Rewrites the small files that micro-batches leave behind into larger ones (Delta
    /// OPTIMIZE, bin-packing). The rows, the recorded log positions and the change data feed are
    /// unchanged (the rewrite is not a data change). Returns the number of files removed.
    pub async fn compact(&mut self) -> LakeResult<u64> {
        let (table, metrics) = self.table.clone().optimize().await.map_err(|err| self.delta_error(err))?;
        self.table = table;
        if metrics.num_files_removed > 0 {
            info!(
                removed = metrics.num_files_removed,
                added = metrics.num_files_added,
                version = self.version(),
                "compacted the petitions table"
            );
        }
        Ok(metrics.num_files_removed)
    }

    /// Number of data files in the current version.
    pub fn file_count(&self) -> LakeResult<usize> {
        Ok(self.table.snapshot().map_err(|err| self.delta_error(err))?.log_data().num_files())
    }

    /// Every petition added after table version `after` (exclusive) up to the current version,
    /// read from the change data feed: how the index catches up after a crash.
    pub async fn petitions_added_since(&self, after: i64) -> LakeResult<Vec<Petition>> {
        if after >= self.version() {
            return Ok(Vec::new());
        }
        let ctx = SessionContext::new();
        let plan = self
            .table
            .clone()
            .scan_cdf()
            .with_starting_version((after + 1) as u64)
            .build(&ctx.state(), None)
            .await
            .map_err(|err| self.delta_error(err))?;
        let batches = collect(plan, ctx.task_ctx()).await?;
        let mut petitions = Vec::new();
        for batch in &batches {
            petitions.extend(petition::from_record_batch(batch)?);
        }
        Ok(petitions)
    }

    /// Every petition in the table (for a full reindex), in batches handed to `each`.
    pub async fn scan_all(
        &self,
        mut each: impl FnMut(Vec<Petition>) -> crate::PipelineResult<()>,
    ) -> crate::PipelineResult<()> {
        use futures::StreamExt;
        let ctx = SessionContext::new();
        self.table.update_datafusion_session(&ctx.state()).map_err(|err| self.delta_error(err))?;
        let provider = self
            .table
            .table_provider()
            .await
            .map_err(|err| self.delta_error(DeltaTableError::Generic(err.to_string())))?;
        let frame = ctx.read_table(provider).map_err(LakeError::from)?;
        let mut stream = frame.execute_stream().await.map_err(LakeError::from)?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(LakeError::from)?;
            each(petition::from_record_batch(&batch).map_err(LakeError::from)?)?;
        }
        Ok(())
    }

    /// Rewrites every row through `change` in one commit (Delta overwrite: readers see the old
    /// rows or the new ones, never a mix), keeping the recorded log positions. For maintenance
    /// such as re-applying a changed topic taxonomy; the rows are held in memory meanwhile
    /// (~1.5 GB per million petitions). Returns the new version and the rows rewritten.
    pub async fn rewrite_all(
        &mut self,
        mut change: impl FnMut(&mut [Petition]),
    ) -> crate::PipelineResult<(i64, usize)> {
        let mut batches = Vec::new();
        let mut rows = 0;
        self.scan_all(|mut petitions| {
            change(&mut petitions);
            rows += petitions.len();
            batches.push(petition::to_record_batch(&petitions).map_err(LakeError::from)?);
            Ok(())
        })
        .await?;
        let table = self
            .table
            .clone()
            .write(batches)
            .with_save_mode(SaveMode::Overwrite)
            .with_partition_columns([PARTITION_COLUMN])
            .with_writer_properties(writer_properties())
            .with_schema_mode(SchemaMode::Merge)
            .await
            .map_err(|err| self.delta_error(err))?;
        self.table = table;
        Ok((self.version(), rows))
    }

    /// Number of rows in the table.
    pub async fn count(&self) -> LakeResult<usize> {
        let ctx = SessionContext::new();
        self.table.update_datafusion_session(&ctx.state()).map_err(|err| self.delta_error(err))?;
        let provider = self
            .table
            .table_provider()
            .await
            .map_err(|err| self.delta_error(DeltaTableError::Generic(err.to_string())))?;
        Ok(ctx.read_table(provider)?.count().await?)
    }
}

fn arrow_to_delta_fields() -> LakeResult<Vec<StructField>> {
    use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
    let schema = petition::arrow_schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let field: StructField = field.as_ref().try_into_kernel().map_err(|err| LakeError::Delta {
            path: PathBuf::new(),
            source: DeltaTableError::Generic(err.to_string()),
        })?;
        fields.push(field);
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn compaction_keeps_rows_positions_and_change_feed() {
        let dir = tempfile::tempdir().unwrap();
        let mut lake = PetitionLake::open_or_create(&dir.path().join("petitions")).await.unwrap();
        let at = chrono::DateTime::parse_from_rfc3339("2025-09-15T08:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let mut all = Vec::new();
        for batch in 0..5i64 {
            let petitions: Vec<Petition> = (0..3)
                .map(|n| Petition::builder().received_at(at + chrono::Duration::minutes(batch * 10 + n)).build())
                .collect();
            all.extend(petitions.clone());
            lake.append(Topic::Petitions, &petitions, &BTreeMap::from([(0, (batch + 1) * 3)])).await.unwrap();
        }
        assert_eq!(lake.file_count().unwrap(), 5);
        let before = lake.version();
        assert_eq!(lake.compact().await.unwrap(), 5);
        assert_eq!(lake.file_count().unwrap(), 1);
        assert_eq!(lake.count().await.unwrap(), 15);
        assert_eq!(lake.committed_positions(Topic::Petitions, &[0]).await.unwrap(), BTreeMap::from([(0, 15)]));
        // The rewrite is not new data: an index that had applied `before` has nothing to catch up.
        assert!(lake.petitions_added_since(before).await.unwrap().is_empty());
        assert_eq!(lake.petitions_added_since(-1).await.unwrap().len(), 15);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_table_from_before_topics_takes_the_new_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("petitions");
        let old_columns = petition::arrow_schema().fields().len() - 2;
        let old = Petition::builder().title("Đường hỏng").build();
        {
            // The table as the first version wrote it: no topic columns.
            let fields = arrow_to_delta_fields().unwrap()[..old_columns].to_vec();
            let table = open_table(&path).await.unwrap();
            let table = table
                .create()
                .with_columns(fields)
                .with_partition_columns([PARTITION_COLUMN])
                .with_configuration_property(TableProperty::EnableChangeDataFeed, Some("true"))
                .await
                .unwrap();
            let batch = petition::to_record_batch(std::slice::from_ref(&old)).unwrap();
            let batch = batch.project(&(0..old_columns).collect::<Vec<_>>()).unwrap();
            table.write(vec![batch]).with_partition_columns([PARTITION_COLUMN]).await.unwrap();
        }
        let mut lake = PetitionLake::open_or_create(&path).await.unwrap();
        let new = Petition::builder().title("Thu hồi đất").topic("land", 1.0).build();
        lake.append(Topic::Petitions, std::slice::from_ref(&new), &BTreeMap::from([(0, 1)])).await.unwrap();
        let mut read = Vec::new();
        lake.scan_all(|petitions| {
            read.extend(petitions);
            Ok(())
        })
        .await
        .unwrap();
        read.sort_by_key(|p| p.title.clone());
        let mut expected = vec![old, new];
        expected.sort_by_key(|p| p.title.clone());
        assert_eq!(read, expected);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn rewriting_keeps_rows_and_positions() {
        let dir = tempfile::tempdir().unwrap();
        let mut lake = PetitionLake::open_or_create(&dir.path().join("petitions")).await.unwrap();
        let petitions: Vec<Petition> = (0..4).map(|_| Petition::builder().title("Thu hồi đất").build()).collect();
        lake.append(Topic::Petitions, &petitions, &BTreeMap::from([(0, 4)])).await.unwrap();
        let (version, rows) =
            lake.rewrite_all(|rows| rows.iter_mut().for_each(|p| p.topic = Some("land".to_owned()))).await.unwrap();
        assert_eq!((version, rows), (2, 4));
        assert_eq!(lake.count().await.unwrap(), 4);
        assert_eq!(lake.committed_positions(Topic::Petitions, &[0]).await.unwrap(), BTreeMap::from([(0, 4)]));
        let mut read = Vec::new();
        lake.scan_all(|p| {
            read.extend(p);
            Ok(())
        })
        .await
        .unwrap();
        assert!(read.iter().all(|p| p.topic.as_deref() == Some("land")));
    }
}

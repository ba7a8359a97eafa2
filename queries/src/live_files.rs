//! The live Parquet files of one Delta snapshot as a plain DataFusion file scan, for the
//! grouping reads of the summaries.
//!
//! delta-rs's scan wraps DataFusion's Parquet scan in a stage that splits every batch by source
//! file and re-projects it (for deletion vectors, column mapping and partition values): about
//! 6 ms of CPU per 830,000 rows read for nothing on a table that uses none of them
//! (docs/BENCHMARKS.md). [`LiveFiles`] takes the file list (and each file's week) from the
//! snapshot, so files that a compaction replaced are never read, and hands it to DataFusion's
//! own Parquet scan. It is only used for tables without deletion vectors or column mapping
//! ([`LiveFiles::from_snapshot`] says `None` otherwise).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::object_store::ObjectMeta;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::physical_plan::ExecutionPlan;
use deltalake::kernel::EagerSnapshot;
use voxpop_schema::petition::PARTITION_COLUMN;

/// One data file: where it is, its size and its partition (the week).
#[derive(Debug, Clone)]
struct LiveFile {
    location: ObjectPath,
    size: u64,
    week: String,
}

/// The live files of a snapshot of a table partitioned by [`PARTITION_COLUMN`], strings read
/// as views.
#[derive(Debug)]
pub struct LiveFiles {
    /// The table's columns (strings as views) and the week last (plain Utf8).
    schema: SchemaRef,
    /// The columns stored in the files (the table's without the week).
    file_schema: SchemaRef,
    files: Vec<LiveFile>,
}

impl LiveFiles {
    /// The files of `snapshot` of the table at `table_dir` (a local directory); `None` when the
    /// table uses deletion vectors or column mapping, or has no week partition, which only
    /// delta-rs's scan reads correctly.
    pub fn from_snapshot(snapshot: &EagerSnapshot, table_dir: &std::path::Path) -> Option<LiveFiles> {
        let table_schema = snapshot.arrow_schema();
        let column_mapping = table_schema
            .fields()
            .iter()
            .any(|field| field.metadata().keys().any(|key| key.starts_with("delta.columnMapping")));
        if column_mapping || table_schema.field_with_name(PARTITION_COLUMN).is_err() {
            return None;
        }
        let mut files = Vec::new();
        for file in snapshot.log_data() {
            if file.deletion_vector_descriptor().is_some() {
                return None;
            }
            let week = file.partition_values_map().get(PARTITION_COLUMN).cloned().flatten()?;
            let location = ObjectPath::from_absolute_path(table_dir.join(file.path().as_ref())).ok()?;
            files.push(LiveFile { location, size: u64::try_from(file.size()).ok()?, week });
        }
        let as_view = |field: &Arc<Field>| match field.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 => {
                Arc::new(field.as_ref().clone().with_data_type(DataType::Utf8View).with_metadata(Default::default()))
            }
            _ => Arc::new(field.as_ref().clone().with_metadata(Default::default())),
        };
        let stored: Vec<Arc<Field>> =
            table_schema.fields().iter().filter(|field| field.name() != PARTITION_COLUMN).map(as_view).collect();
        let file_schema = Arc::new(Schema::new(stored.clone()));
        let mut all = stored;
        all.push(Arc::new(Field::new(PARTITION_COLUMN, DataType::Utf8, false)));
        Some(LiveFiles { schema: Arc::new(Schema::new(all)), file_schema, files })
    }
}

/// The weeks a filter keeps when it only tests the week (`week = '…'`, `week IN (…)`).
fn weeks_of(filter: &Expr) -> Option<HashSet<String>> {
    let is_week = |expr: &Expr| matches!(expr, Expr::Column(column) if column.name == PARTITION_COLUMN);
    let text = |expr: &Expr| match expr {
        Expr::Literal(ScalarValue::Utf8(Some(value)) | ScalarValue::Utf8View(Some(value)), _) => Some(value.clone()),
        _ => None,
    };
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) if is_week(left) => {
            text(right).map(|week| HashSet::from([week]))
        }
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) if is_week(right) => {
            text(left).map(|week| HashSet::from([week]))
        }
        Expr::InList(list) if !list.negated && is_week(&list.expr) => list.list.iter().map(text).collect(),
        _ => None,
    }
}

#[async_trait::async_trait]
impl TableProvider for LiveFiles {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Week filters are applied exactly by choosing files; DataFusion applies the others above.
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|filter| {
                if weeks_of(filter).is_some() {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let wanted: Vec<HashSet<String>> = filters.iter().filter_map(weeks_of).collect();
        let mut files: Vec<&LiveFile> =
            self.files.iter().filter(|file| wanted.iter().all(|weeks| weeks.contains(&file.week))).collect();
        // Largest first, each to the lightest group: the groups (one per thread) read about
        // as many bytes each.
        files.sort_by(|a, b| b.size.cmp(&a.size));
        let groups_wanted = state.config().target_partitions().clamp(1, files.len().max(1));
        let mut groups: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, Vec::new()); groups_wanted];
        for file in files {
            let lightest = groups.iter_mut().min_by_key(|(bytes, _)| *bytes).expect("at least one group");
            lightest.0 += file.size;
            let meta = ObjectMeta {
                location: file.location.clone(),
                last_modified: chrono::DateTime::<chrono::Utc>::MIN_UTC,
                size: file.size,
                e_tag: None,
                version: None,
            };
            lightest.1.push(
                PartitionedFile::new_from_meta(meta)
                    .with_partition_values(vec![ScalarValue::Utf8(Some(file.week.clone()))]),
            );
        }
        let groups: Vec<FileGroup> =
            groups.into_iter().filter(|(_, files)| !files.is_empty()).map(|(_, files)| FileGroup::new(files)).collect();
        let table_schema = datafusion::datasource::table_schema::TableSchema::builder(self.file_schema.clone())
            .with_table_partition_cols(vec![Arc::new(Field::new(PARTITION_COLUMN, DataType::Utf8, false))])
            .build();
        let mut options = datafusion::config::TableParquetOptions::default();
        options.global = state.config_options().execution.parquet.clone();
        options.global.schema_force_view_types = true;
        // Footers read once per file and kept in the runtime's metadata cache (the files are
        // immutable), as DataFusion's own listing tables do.
        let store = state.runtime_env().object_store(ObjectStoreUrl::local_filesystem())?;
        let footers = state.runtime_env().cache_manager.get_file_metadata_cache();
        let source = ParquetSource::new(table_schema)
            .with_table_parquet_options(options)
            .with_parquet_file_reader_factory(Arc::new(CachedParquetFileReaderFactory::new(store, footers)));
        let config = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
            .with_file_groups(groups)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{col, lit};

    use super::*;

    #[test]
    fn only_filters_on_the_week_alone_choose_files() {
        let weeks =
            |filter: Expr| weeks_of(&filter).map(|set| set.into_iter().collect::<std::collections::BTreeSet<_>>());
        let one = |w: &str| Some([w.to_owned()].into_iter().collect());
        assert_eq!(weeks(col(PARTITION_COLUMN).eq(lit("2025-W38"))), one("2025-W38"));
        assert_eq!(weeks(lit("2025-W38").eq(col(PARTITION_COLUMN))), one("2025-W38"));
        assert_eq!(
            weeks(col(PARTITION_COLUMN).in_list(vec![lit("2025-W37"), lit("2025-W38")], false)),
            Some(["2025-W37".to_owned(), "2025-W38".to_owned()].into_iter().collect())
        );
        // Anything else is left to DataFusion, which applies it above the scan.
        assert_eq!(weeks(col(PARTITION_COLUMN).in_list(vec![lit("2025-W37")], true)), None);
        assert_eq!(weeks(col(PARTITION_COLUMN).gt(lit("2025-W37"))), None);
        assert_eq!(weeks(col("province_code").eq(lit("01"))), None);
        assert_eq!(weeks(col(PARTITION_COLUMN).in_list(vec![lit("2025-W37"), col("topic")], false)), None);
    }
}

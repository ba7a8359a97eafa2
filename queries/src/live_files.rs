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
use datafusion::datasource::physical_plan::parquet::{CachedParquetFileReaderFactory, ParquetFileReaderFactory};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::object_store::ObjectMeta;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::errors::Result as ParquetResult;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use deltalake::kernel::EagerSnapshot;
use futures::future::BoxFuture;
use voxpop_schema::petition::PARTITION_COLUMN;

/// One data file: where it is, its size and its partition (the week).
#[derive(Debug, Clone)]
struct LiveFile {
    location: ObjectPath,
    size: u64,
    week: String,
}

/// The live files of a snapshot of a table partitioned by [`PARTITION_COLUMN`], strings read
/// as views, or as dictionaries ([`LiveFiles::with_dictionary_strings`]).
#[derive(Debug, Clone)]
pub struct LiveFiles {
    /// The table's columns and the week last.
    schema: SchemaRef,
    /// The columns stored in the files (the table's without the week).
    file_schema: SchemaRef,
    files: Arc<Vec<LiveFile>>,
    /// Strings (the week included) read as `Dictionary(Int32, Utf8)`, with the footers that
    /// say so (see [`DictionaryHintFactory`]).
    dictionaries: Option<HintedFooters>,
}

/// Footers rewritten to read strings as dictionaries, by file; shared by the sessions of a
/// table like DataFusion's own footer cache (data files never change once written).
pub type HintedFooters = Arc<std::sync::Mutex<std::collections::HashMap<ObjectPath, Arc<ParquetMetaData>>>>;

/// The type strings are read as by [`LiveFiles::with_dictionary_strings`].
fn dictionary_string_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
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
        let (schema, file_schema) = schemas(&table_schema, DataType::Utf8View, DataType::Utf8);
        Some(LiveFiles { schema, file_schema, files: Arc::new(files), dictionaries: None })
    }

    /// The same files with every string column, the week included, read as a dictionary
    /// (`Dictionary(Int32, Utf8)`): Parquet's dictionary-encoded columns (the codes) arrive as
    /// their dictionary page and one key per row, which [`crate::codes`] counts without
    /// hashing a string per row. Only for code columns: a free-text column would be turned into
    /// a dictionary of its own.
    pub fn with_dictionary_strings(&self, footers: HintedFooters) -> LiveFiles {
        // Footers of files no longer live (replaced by a compaction) are dropped.
        if let Ok(mut hinted) = footers.lock() {
            let live: HashSet<&ObjectPath> = self.files.iter().map(|file| &file.location).collect();
            hinted.retain(|location, _| live.contains(location));
        }
        let table_schema = Schema::new(self.file_schema.fields().iter().cloned().collect::<Vec<_>>());
        let (schema, file_schema) = schemas(&table_schema, dictionary_string_type(), dictionary_string_type());
        LiveFiles { schema, file_schema, files: self.files.clone(), dictionaries: Some(footers) }
    }

    fn week_field(&self) -> Arc<Field> {
        let week_type = if self.dictionaries.is_some() { dictionary_string_type() } else { DataType::Utf8 };
        Arc::new(Field::new(PARTITION_COLUMN, week_type, false))
    }

    fn week_value(&self, week: &str) -> ScalarValue {
        let value = ScalarValue::Utf8(Some(week.to_owned()));
        match self.dictionaries {
            Some(_) => ScalarValue::Dictionary(Box::new(DataType::Int32), Box::new(value)),
            None => value,
        }
    }
}

/// The table schema (stored columns, then the week) and the file schema, strings as `strings`,
/// the week as `week`.
fn schemas(table_schema: &Schema, strings: DataType, week: DataType) -> (SchemaRef, SchemaRef) {
    let convert = |field: &Arc<Field>| match field.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            Arc::new(field.as_ref().clone().with_data_type(strings.clone()).with_metadata(Default::default()))
        }
        _ => Arc::new(field.as_ref().clone().with_metadata(Default::default())),
    };
    let stored: Vec<Arc<Field>> =
        table_schema.fields().iter().filter(|field| field.name() != PARTITION_COLUMN).map(convert).collect();
    let file_schema = Arc::new(Schema::new(stored.clone()));
    let mut all = stored;
    all.push(Arc::new(Field::new(PARTITION_COLUMN, week, false)));
    (Arc::new(Schema::new(all)), file_schema)
}

/// The weeks a filter keeps when it only tests the week (`week = '…'`, `week IN (…)`).
fn weeks_of(filter: &Expr) -> Option<HashSet<String>> {
    // Type coercion may have cast the week (read as a dictionary) or the literal.
    let uncast = |expr: &Expr| match expr {
        Expr::Cast(cast) => cast.expr.as_ref().clone(),
        Expr::TryCast(cast) => cast.expr.as_ref().clone(),
        other => other.clone(),
    };
    let is_week = |expr: &Expr| matches!(uncast(expr), Expr::Column(column) if column.name == PARTITION_COLUMN);
    fn text_of(value: &ScalarValue) -> Option<String> {
        match value {
            ScalarValue::Utf8(Some(value)) | ScalarValue::Utf8View(Some(value)) => Some(value.clone()),
            ScalarValue::Dictionary(_, value) => text_of(value),
            _ => None,
        }
    }
    let text = |expr: &Expr| match uncast(expr) {
        Expr::Literal(value, _) => text_of(&value),
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
        files.sort_by_key(|file| std::cmp::Reverse(file.size));
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
            lightest
                .1
                .push(PartitionedFile::new_from_meta(meta).with_partition_values(vec![self.week_value(&file.week)]));
        }
        let groups: Vec<FileGroup> =
            groups.into_iter().filter(|(_, files)| !files.is_empty()).map(|(_, files)| FileGroup::new(files)).collect();
        let table_schema = datafusion::datasource::table_schema::TableSchema::builder(self.file_schema.clone())
            .with_table_partition_cols(vec![self.week_field()])
            .build();
        let mut options = datafusion::config::TableParquetOptions::default();
        options.global = state.config_options().execution.parquet.clone();
        options.global.schema_force_view_types = self.dictionaries.is_none();
        // Footers read once per file and kept in the runtime's metadata cache (the files are
        // immutable), as DataFusion's own listing tables do.
        let store = state.runtime_env().object_store(ObjectStoreUrl::local_filesystem())?;
        let footers = state.runtime_env().cache_manager.get_file_metadata_cache();
        let cached = CachedParquetFileReaderFactory::new(store, footers);
        let factory: Arc<dyn ParquetFileReaderFactory> = match &self.dictionaries {
            Some(hinted) => Arc::new(DictionaryHintFactory { inner: cached, hinted: hinted.clone() }),
            None => Arc::new(cached),
        };
        let source = ParquetSource::new(table_schema)
            .with_table_parquet_options(options)
            .with_parquet_file_reader_factory(factory);
        let config = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
            .with_file_groups(groups)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// Readers whose footers ask arrow's Parquet reader for string columns as dictionaries.
///
/// DataFusion reads a file's columns with the types its footer implies (an embedded Arrow
/// schema, else the Parquet types: strings as `Utf8`) and casts them to the table's types
/// afterwards; a string column asked for as a dictionary would be read as strings, then packed
/// into a dictionary again, row by row. The footers handed out here carry an Arrow schema
/// (`ARROW:schema`) saying `Dictionary(Int32, Utf8)` for every string column, so the reader
/// keeps each column chunk's dictionary page and hands out its keys.
#[derive(Debug)]
struct DictionaryHintFactory {
    inner: CachedParquetFileReaderFactory,
    hinted: HintedFooters,
}

impl ParquetFileReaderFactory for DictionaryHintFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let location = file.object_meta.location.clone();
        let inner = self.inner.create_reader(partition_index, file, metadata_size_hint, metrics)?;
        Ok(Box::new(DictionaryHintReader { inner, location, hinted: self.hinted.clone() }))
    }
}

struct DictionaryHintReader {
    inner: Box<dyn AsyncFileReader + Send>,
    location: ObjectPath,
    hinted: HintedFooters,
}

impl AsyncFileReader for DictionaryHintReader {
    fn get_bytes(&mut self, range: std::ops::Range<u64>) -> BoxFuture<'_, ParquetResult<bytes::Bytes>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> BoxFuture<'_, ParquetResult<Vec<bytes::Bytes>>> {
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, ParquetResult<Arc<ParquetMetaData>>> {
        Box::pin(async move {
            let known = self.hinted.lock().ok().and_then(|hinted| hinted.get(&self.location).cloned());
            if let Some(metadata) = known {
                return Ok(metadata);
            }
            let original = self.inner.get_metadata(options).await?;
            let metadata = Arc::new(with_dictionary_hint(&original)?);
            if let Ok(mut hinted) = self.hinted.lock() {
                hinted.insert(self.location.clone(), metadata.clone());
            }
            Ok(metadata)
        })
    }
}

/// `metadata` with an Arrow schema that reads every string column as `Dictionary(Int32, Utf8)`.
fn with_dictionary_hint(metadata: &ParquetMetaData) -> ParquetResult<ParquetMetaData> {
    use datafusion::parquet::file::metadata::{FileMetaData, KeyValue, ParquetMetaDataBuilder};
    let file = metadata.file_metadata();
    let native = datafusion::parquet::arrow::parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())?;
    let fields: Vec<Arc<Field>> = native
        .fields()
        .iter()
        .map(|field| match field.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 => {
                Arc::new(field.as_ref().clone().with_data_type(dictionary_string_type()))
            }
            _ => field.clone(),
        })
        .collect();
    let encoded = datafusion::parquet::arrow::encode_arrow_schema(&Schema::new(fields));
    let mut key_values: Vec<KeyValue> = file.key_value_metadata().cloned().unwrap_or_default();
    key_values.retain(|entry| entry.key != datafusion::parquet::arrow::ARROW_SCHEMA_META_KEY);
    key_values.push(KeyValue::new(datafusion::parquet::arrow::ARROW_SCHEMA_META_KEY.to_owned(), encoded));
    let file_metadata = FileMetaData::new(
        file.version(),
        file.num_rows(),
        file.created_by().map(str::to_owned),
        Some(key_values),
        file.schema_descr_ptr(),
        file.column_orders().cloned(),
    );
    let mut original = ParquetMetaDataBuilder::new_from_metadata(metadata.clone());
    Ok(ParquetMetaDataBuilder::new(file_metadata)
        .set_row_groups(original.take_row_groups())
        .set_column_index(original.take_column_index())
        .set_offset_index(original.take_offset_index())
        .build())
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{col, lit};

    use super::*;

    #[test]
    fn hinted_footers_make_the_reader_keep_dictionary_pages() {
        use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringArray};
        use datafusion::arrow::datatypes::Int32Type;
        use datafusion::parquet::arrow::ArrowWriter;
        use datafusion::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
        use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

        // 1,000 rows of three codes, written as the lake writes codes (dictionary-encoded).
        let codes: Vec<&str> = (0..1_000).map(|i| ["01", "79", "92"][i % 3]).collect();
        let schema = Arc::new(Schema::new(vec![Field::new("province_code", DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(codes.clone()))]).unwrap();
        let mut file = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut file, schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let file = bytes::Bytes::from(file);

        let footer = SerializedFileReader::new(file.clone()).unwrap().metadata().clone();
        let hinted =
            ArrowReaderMetadata::try_new(Arc::new(with_dictionary_hint(&footer).unwrap()), Default::default()).unwrap();
        assert_eq!(hinted.schema().field(0).data_type(), &dictionary_string_type());
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, hinted).build().unwrap();
        let mut rows = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let column = batch.column(0).as_dictionary::<Int32Type>();
            // The dictionary page itself: three values, not one per row.
            assert_eq!(column.values().len(), 3);
            let values = column.values().as_string::<i32>();
            rows.extend(column.keys().iter().map(|key| values.value(key.unwrap() as usize).to_owned()));
        }
        assert_eq!(rows, codes);
    }

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

//! Exports as Data Packages: what data engineers hand to national databases.
//!
//! A package is a directory with the data files under `data/` and a `datapackage.json`
//! (Frictionless Tabular Data Package) holding, for every file, its Table Schema (generated from
//! the code, see [`voxpop_schema::datasets`]), row count, size and SHA-256, plus what a catalogue
//! needs (a DCAT-style description: title, publisher, temporal and spatial coverage, licence)
//! and what voxpop knows of the export: the lake versions it covers and the masking applied.
//!
//! The lake's tables are exported from their Delta tables: `petitions`, the handling tables
//! `petition_events` and `petition_status` (next to `petitions` under the lake directory) and
//! `weekly_reports`; the code lists from the reference data compiled in. A package of petitions or
//! of handling rows also carries the code lists its foreign keys point to (provinces and
//! communes), so a validator checks every code; a foreign key to a dataset the package does not
//! carry (the handling rows' `petition_id` → `petitions.id`) is listed in the resource's
//! `foreign_keys_outside_package` instead of its Table Schema, since a validator could not check
//! it. `since_version` exports exactly the rows added or changed after that version of the
//! dataset's table, read from the Delta change data feed.
//!
//! Scope and masking follow the SQL views: the petitions and the handling rows are limited to the
//! caller's province or commune (the petition's place), weekly reports to the units under it;
//! without personal data the contact fields are shortened and phone and ID numbers in the free
//! text ([`masked_text_columns`]) masked.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int32Type, TimeUnit, TimestampMicrosecondType, UInt32Type,
};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{col, lit};
use deltalake::{DeltaTable, DeltaTableError};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use voxpop_schema::datasets::{self, DatasetSpec};
use voxpop_schema::privacy::{mask_contact, mask_numbers};
use voxpop_schema::{Contact, Units};

use crate::{PetitionQueries, QueryError, QueryResult};

/// Rows an XLSX sheet can hold below its header.
pub const XLSX_MAX_ROWS: usize = 1_048_575;

/// The first day `from`/`to` may name. Petitions are of this era; a day far outside it (chrono
/// reads years up to +262142) would only overflow the day arithmetic of the filter.
pub const FIRST_EXPORT_DAY: NaiveDate = match NaiveDate::from_ymd_opt(1900, 1, 1) {
    Some(day) => day,
    None => panic!("a valid day"),
};

/// The last day `from`/`to` may name: the last of four-digit years, as `YYYY-MM-DD` writes them.
pub const LAST_EXPORT_DAY: NaiveDate = match NaiveDate::from_ymd_opt(9999, 12, 31) {
    Some(day) => day,
    None => panic!("a valid day"),
};

/// Why `day` cannot be the `field` (`from` or `to`) of an export, if it cannot: it must lie from
/// [`FIRST_EXPORT_DAY`] to [`LAST_EXPORT_DAY`].
pub fn export_day_problem(field: &str, day: NaiveDate) -> Option<String> {
    (!(FIRST_EXPORT_DAY..=LAST_EXPORT_DAY).contains(&day))
        .then(|| format!("`{field}` ({day}) must be a day from {FIRST_EXPORT_DAY} to {LAST_EXPORT_DAY}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Parquet,
    Csv,
    Xlsx,
}

impl ExportFormat {
    pub fn parse(value: &str) -> Option<ExportFormat> {
        match value {
            "parquet" => Some(ExportFormat::Parquet),
            "csv" => Some(ExportFormat::Csv),
            "xlsx" => Some(ExportFormat::Xlsx),
            _ => None,
        }
    }

    fn extension(self) -> &'static str {
        match self {
            ExportFormat::Parquet => "parquet",
            ExportFormat::Csv => "csv",
            ExportFormat::Xlsx => "xlsx",
        }
    }

    fn mediatype(self) -> &'static str {
        match self {
            ExportFormat::Parquet => "application/vnd.apache.parquet",
            ExportFormat::Csv => "text/csv",
            ExportFormat::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// A dataset of [`datasets::datasets`].
    pub dataset: String,
    pub format: ExportFormat,
    /// Rows on or after this day (UTC) of the dataset's [`time_column`]: petitions received,
    /// events taken, statuses last updated, report values submitted.
    pub from: Option<NaiveDate>,
    /// Rows on or before this day (UTC) of the dataset's [`time_column`].
    pub to: Option<NaiveDate>,
    /// Only the rows added or changed after this version of the dataset's Delta table.
    pub since_version: Option<i64>,
    /// Personal data in clear (contact fields, numbers in the text); only for roles allowed to
    /// see it. Masked otherwise.
    pub personal_data: bool,
    /// Limits the rows to one province (the caller's scope): petitions and handling rows by the
    /// petition's place, weekly reports to the province's units.
    pub province: Option<String>,
    /// Limits the rows to one commune (the caller's scope), as `province`.
    pub commune: Option<String>,
    pub publisher: String,
    pub license: String,
}

impl ExportRequest {
    pub fn new(dataset: &str, format: ExportFormat) -> ExportRequest {
        ExportRequest {
            dataset: dataset.to_owned(),
            format,
            from: None,
            to: None,
            since_version: None,
            personal_data: false,
            province: None,
            commune: None,
            publisher: "voxpop".to_owned(),
            license: "CC-BY-4.0".to_owned(),
        }
    }
}

/// One file written.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExportedFile {
    pub resource: String,
    /// Relative to the package directory.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub dataset: String,
    pub rows: u64,
    pub files: Vec<ExportedFile>,
    /// Lake versions covered: the rows are those of `lake_version_to`, or the changes after
    /// `since_version` up to it.
    pub lake_version_to: i64,
    pub since_version: Option<i64>,
    pub elapsed: Duration,
}

/// Writes rows of one resource in one format.
enum Sink {
    Parquet(ArrowWriter<BufWriter<File>>),
    Csv(csv::Writer<BufWriter<File>>),
    Xlsx(Box<rust_xlsxwriter::Workbook>, usize, PathBuf),
}

impl Sink {
    fn create(path: &Path, format: ExportFormat, spec: &DatasetSpec) -> QueryResult<Sink> {
        let io = |err: std::io::Error| QueryError::Export(format!("{}: {err}", path.display()));
        match format {
            ExportFormat::Parquet => {
                let file = BufWriter::new(File::create(path).map_err(io)?);
                // As in the lake: dictionaries and statistics only where they help.
                let mut builder = WriterProperties::builder().set_compression(Compression::LZ4_RAW);
                for column in [
                    "id",
                    "event_id",
                    "petition_id",
                    "tracking_code",
                    "title",
                    "body",
                    "note",
                    "answer",
                    "contact_name",
                    "contact_phone",
                    "contact_email",
                ] {
                    let path = datafusion::parquet::schema::types::ColumnPath::from(column);
                    builder = builder.set_column_dictionary_enabled(path.clone(), false).set_column_statistics_enabled(
                        path,
                        datafusion::parquet::file::properties::EnabledStatistics::None,
                    );
                }
                let properties = builder.build();
                let writer = ArrowWriter::try_new(file, spec.schema.clone(), Some(properties))
                    .map_err(|err| QueryError::Export(err.to_string()))?;
                Ok(Sink::Parquet(writer))
            }
            ExportFormat::Csv => {
                let mut file = BufWriter::new(File::create(path).map_err(io)?);
                // The BOM makes Excel read UTF-8 (and so the diacritics) correctly.
                file.write_all("\u{feff}".as_bytes()).map_err(io)?;
                let mut writer = csv::Writer::from_writer(file);
                writer
                    .write_record(spec.schema.fields().iter().map(|f| f.name().as_str()))
                    .map_err(|err| QueryError::Export(err.to_string()))?;
                Ok(Sink::Csv(writer))
            }
            ExportFormat::Xlsx => {
                let mut workbook = rust_xlsxwriter::Workbook::new();
                let sheet = workbook.add_worksheet();
                let bold = rust_xlsxwriter::Format::new().set_bold();
                for (i, field) in spec.schema.fields().iter().enumerate() {
                    sheet
                        .write_string_with_format(0, i as u16, field.name(), &bold)
                        .map_err(|err| QueryError::Export(err.to_string()))?;
                }
                Ok(Sink::Xlsx(Box::new(workbook), 0, path.to_owned()))
            }
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> QueryResult<()> {
        let export = |err: &dyn std::fmt::Display| QueryError::Export(err.to_string());
        match self {
            Sink::Parquet(writer) => writer.write(batch).map_err(|err| export(&err)),
            Sink::Csv(writer) => {
                let columns: Vec<Vec<Option<String>>> =
                    batch.columns().iter().map(text_cells).collect::<QueryResult<_>>()?;
                for row in 0..batch.num_rows() {
                    writer
                        .write_record(columns.iter().map(|column| column[row].as_deref().unwrap_or("")))
                        .map_err(|err| export(&err))?;
                }
                Ok(())
            }
            Sink::Xlsx(workbook, written, _) => {
                if *written + batch.num_rows() > XLSX_MAX_ROWS {
                    return Err(QueryError::Export(format!(
                        "more than {XLSX_MAX_ROWS} rows do not fit an XLSX sheet: export Parquet or CSV, or narrow the dates"
                    )));
                }
                let sheet = workbook.worksheet_from_index(0).map_err(|err| export(&err))?;
                for (c, array) in batch.columns().iter().enumerate() {
                    let numbers = matches!(
                        array.data_type(),
                        DataType::Float64 | DataType::Float32 | DataType::Int32 | DataType::Int64 | DataType::UInt32
                    );
                    for (r, cell) in text_cells(array)?.into_iter().enumerate() {
                        let row = (*written + r + 1) as u32;
                        let Some(cell) = cell else { continue };
                        match cell.parse::<f64>() {
                            Ok(number) if numbers => sheet.write_number(row, c as u16, number),
                            _ => sheet.write_string(row, c as u16, &cell),
                        }
                        .map_err(|err| export(&err))?;
                    }
                }
                *written += batch.num_rows();
                Ok(())
            }
        }
    }

    fn finish(self) -> QueryResult<()> {
        let export = |err: &dyn std::fmt::Display| QueryError::Export(err.to_string());
        match self {
            Sink::Parquet(writer) => writer.close().map(|_| ()).map_err(|err| export(&err)),
            Sink::Csv(mut writer) => writer.flush().map_err(|err| export(&err)),
            Sink::Xlsx(mut workbook, _, path) => workbook.save(&path).map_err(|err| export(&err)),
        }
    }
}

/// Cells as text: what CSV and XLSX hold. Datetimes in RFC 3339 UTC, dates as YYYY-MM-DD.
///
/// A value no calendar holds (a date or timestamp past chrono's range, which a table may hold
/// since Parquet stores the number, not the date) fails the export with an error naming it, never
/// a panic and never an empty cell that reads as a missing value.
fn text_cells(array: &ArrayRef) -> QueryResult<Vec<Option<String>>> {
    let n = array.len();
    let valid = |i: usize| !array.is_null(i);
    let cells = match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            (0..n).map(|i| valid(i).then(|| a.value(i).to_owned())).collect()
        }
        DataType::Boolean => {
            let a = array.as_boolean();
            (0..n).map(|i| valid(i).then(|| a.value(i).to_string())).collect()
        }
        DataType::Int32 => {
            let a = array.as_primitive::<Int32Type>();
            (0..n).map(|i| valid(i).then(|| a.value(i).to_string())).collect()
        }
        DataType::UInt32 => {
            let a = array.as_primitive::<UInt32Type>();
            (0..n).map(|i| valid(i).then(|| a.value(i).to_string())).collect()
        }
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            (0..n).map(|i| valid(i).then(|| a.value(i).to_string())).collect()
        }
        DataType::Float32 => {
            let a = array.as_primitive::<Float32Type>();
            (0..n).map(|i| valid(i).then(|| a.value(i).to_string())).collect()
        }
        DataType::Date32 => {
            let a = array.as_primitive::<Date32Type>();
            (0..n).map(|i| valid(i).then(|| date32_text(a.value(i))).transpose()).collect::<QueryResult<Vec<_>>>()?
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let a = array.as_primitive::<TimestampMicrosecondType>();
            (0..n)
                .map(|i| valid(i).then(|| timestamp_micros_text(a.value(i))).transpose())
                .collect::<QueryResult<Vec<_>>>()?
        }
        data_type if datafusion::arrow::compute::can_cast_types(data_type, &DataType::Utf8) => {
            // Arrow's own text; a value it cannot write (a date of another width past the
            // calendar) fails the cast rather than leaving the cell empty.
            let strings = datafusion::arrow::compute::cast(array, &DataType::Utf8).map_err(|err| {
                QueryError::Export(format!("a value of type {data_type} cannot be written as text: {err}"))
            })?;
            text_cells(&strings)?
        }
        // No dataset has a column Arrow cannot write as text; were there one, it stays empty.
        _ => vec![None; n],
    };
    Ok(cells)
}

/// A Date32 value (days since 1970-01-01) as YYYY-MM-DD, or an error naming it where it lies
/// past the calendar.
fn date32_text(days: i32) -> QueryResult<String> {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|epoch| epoch.checked_add_signed(chrono::TimeDelta::try_days(i64::from(days))?))
        .map(|day| day.to_string())
        .ok_or_else(|| {
            QueryError::Export(format!(
                "a date {days} days from 1970-01-01 lies past the calendar and cannot be written"
            ))
        })
}

/// A timestamp in microseconds since 1970-01-01 UTC as RFC 3339, or an error naming it where it
/// lies past the calendar.
fn timestamp_micros_text(micros: i64) -> QueryResult<String> {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .ok_or_else(|| {
            QueryError::Export(format!(
                "a timestamp {micros} µs from 1970-01-01 lies past the calendar and cannot be written"
            ))
        })
}

/// The free-text columns of `dataset` whose phone and ID numbers are masked for readers without
/// access to personal data (as in the SQL views).
pub fn masked_text_columns(dataset: &str) -> &'static [&'static str] {
    match dataset {
        "petitions" => &["title", "body"],
        "petition_events" => &["title", "note", "answer"],
        "petition_status" => &["title", "answer"],
        _ => &[],
    }
}

/// The column of `dataset` that `from`/`to` select on, if any.
pub fn time_column(dataset: &str) -> Option<&'static str> {
    match dataset {
        "petitions" => Some("received_at"),
        "petition_events" => Some("at"),
        "petition_status" => Some("updated_at"),
        "weekly_reports" => Some("submitted_at"),
        _ => None,
    }
}

/// The petitions as a reader without access to personal data sees them: contact fields
/// shortened, phone and ID numbers in the text masked (see [`voxpop_schema::privacy`]).
pub fn mask_batch(batch: &RecordBatch) -> QueryResult<RecordBatch> {
    mask_texts(batch, masked_text_columns("petitions"))
}

/// `batch` with the numbers in the `texts` columns masked and, where it has them, the contact
/// fields shortened.
pub fn mask_texts(batch: &RecordBatch, texts: &[&str]) -> QueryResult<RecordBatch> {
    let schema = batch.schema();
    let strings = |name: &str| -> Option<StringArray> {
        let array = batch.column_by_name(name)?;
        datafusion::arrow::compute::cast(array, &DataType::Utf8).ok().map(|a| a.as_string::<i32>().clone())
    };
    let (names, phones, emails) = (strings("contact_name"), strings("contact_phone"), strings("contact_email"));
    let value = |array: &Option<StringArray>, i: usize| {
        array.as_ref().and_then(|a| (!a.is_null(i)).then(|| a.value(i).to_owned()))
    };
    let has_contact = names.is_some() || phones.is_some() || emails.is_some();
    let masked_contacts: Vec<Contact> = if has_contact {
        (0..batch.num_rows())
            .map(|i| {
                mask_contact(&Contact { name: value(&names, i), phone: value(&phones, i), email: value(&emails, i) })
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        let column: ArrayRef = match field.name().as_str() {
            name if texts.contains(&name) => {
                let text = strings(name).expect("string column");
                Arc::new(text.iter().map(|v| v.map(mask_numbers)).collect::<StringArray>())
            }
            "contact_name" => Arc::new(masked_contacts.iter().map(|c| c.name.clone()).collect::<StringArray>()),
            "contact_phone" => Arc::new(masked_contacts.iter().map(|c| c.phone.clone()).collect::<StringArray>()),
            "contact_email" => Arc::new(masked_contacts.iter().map(|c| c.email.clone()).collect::<StringArray>()),
            _ => array.clone(),
        };
        let column = if column.data_type() == field.data_type() {
            column
        } else {
            datafusion::arrow::compute::cast(&column, field.data_type())
                .map_err(datafusion::error::DataFusionError::from)?
        };
        columns.push(column);
    }
    Ok(RecordBatch::try_new(schema, columns).map_err(datafusion::error::DataFusionError::from)?)
}

/// Conforms a lake batch to the dataset's column order and types (the lake may return
/// dictionary or view strings, CDF columns, or lack columns added later).
fn conform(batch: &RecordBatch, spec: &DatasetSpec) -> QueryResult<RecordBatch> {
    let mut columns = Vec::with_capacity(spec.schema.fields().len());
    for field in spec.schema.fields() {
        let column = match batch.column_by_name(field.name()) {
            Some(array) => datafusion::arrow::compute::cast(array, field.data_type())
                .map_err(datafusion::error::DataFusionError::from)?,
            None => datafusion::arrow::array::new_null_array(field.data_type(), batch.num_rows()),
        };
        columns.push(column);
    }
    Ok(RecordBatch::try_new(spec.schema.clone(), columns).map_err(datafusion::error::DataFusionError::from)?)
}

fn sha256_of(path: &Path) -> QueryResult<(u64, String)> {
    let io = |err: std::io::Error| QueryError::Export(format!("{}: {err}", path.display()));
    let mut file = File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let read = file.read(&mut buffer).map_err(io)?;
        if read == 0 {
            break;
        }
        bytes += read as u64;
        hasher.update(&buffer[..read]);
    }
    let hex: String = hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect();
    Ok((bytes, hex))
}

/// Opens the Delta table at `path`; `None` until the pipeline has created it.
async fn open_table(path: &Path) -> QueryResult<Option<DeltaTable>> {
    if !path.join("_delta_log").exists() {
        return Ok(None);
    }
    let delta = |source| QueryError::Delta { path: path.to_owned(), source };
    let absolute = std::fs::canonicalize(path).map_err(|err| delta(DeltaTableError::Generic(err.to_string())))?;
    let url = deltalake::ensure_table_uri(absolute.to_string_lossy()).map_err(delta)?;
    let table = DeltaTable::try_from_url(url).await.map_err(delta)?;
    Ok(table.version().is_some().then_some(table))
}

/// Keeps the weekly report rows of units under `scope` (a province or a commune).
fn within_scope(batch: &RecordBatch, scope: &str) -> QueryResult<RecordBatch> {
    let Some(units) = batch.column_by_name("unit_code") else {
        return Ok(batch.clone());
    };
    let keep: BooleanArray = text_cells(units)?
        .into_iter()
        .map(|unit| Some(unit.is_some_and(|unit| voxpop_schema::workflow::covers(Units::embedded(), scope, &unit))))
        .collect();
    Ok(datafusion::arrow::compute::filter_record_batch(batch, &keep)
        .map_err(datafusion::error::DataFusionError::from)?)
}

impl PetitionQueries {
    /// Where the Delta table of a lake dataset lives: `petitions` itself, the others next to it.
    fn dataset_path(&self, name: &str) -> PathBuf {
        if name == voxpop_schema::petition::TABLE_NAME {
            return self.path.clone();
        }
        self.path.parent().map_or_else(|| PathBuf::from(name), |lake| lake.join(name))
    }

    /// The Delta table of a lake dataset at its latest version, `None` while it does not exist.
    async fn dataset_table(&self, spec: &DatasetSpec) -> QueryResult<Option<DeltaTable>> {
        if spec.name == voxpop_schema::petition::TABLE_NAME {
            if self.session().await?.is_none() {
                return Ok(None);
            }
            return Ok(self.table.lock().await.clone());
        }
        open_table(&self.dataset_path(spec.name)).await
    }

    /// The lake version an export of `request` covers, or the problem with the request: an
    /// unknown dataset, `to` before `from`, a `since_version` below 0 or above the version of
    /// the dataset's table. Everything [`Self::export`] would refuse of the request itself,
    /// checked before a job starts so that the caller hears it at once.
    pub async fn check_export(&self, request: &ExportRequest) -> QueryResult<i64> {
        let spec = export_spec(request)?;
        let table = if spec.in_lake() { self.dataset_table(&spec).await? } else { None };
        let version = self.checked_version(request, &spec, &table).await?;
        // A sheet holds so many rows: counted first rather than failing after minutes of
        // writing. Weekly reports scoped to a unit are filtered row by row while written, so
        // their count here would be too high: the job itself refuses those.
        let unchanged = request.since_version.is_some_and(|since| since >= version);
        let filtered_while_written = spec.name == voxpop_schema::reports::TABLE_NAME
            && (request.province.is_some() || request.commune.is_some());
        if request.format == ExportFormat::Xlsx
            && !unchanged
            && !filtered_while_written
            && let Some(table) = &table
        {
            let rows = self.lake_frame(request, &spec, table).await?.count().await?;
            if rows > XLSX_MAX_ROWS {
                return Err(QueryError::BadRequest {
                    field: "format",
                    message: format!(
                        "{rows} rows do not fit an XLSX sheet (at most {XLSX_MAX_ROWS}): export Parquet or CSV, \
                         or narrow the dates"
                    ),
                });
            }
        }
        Ok(version)
    }

    /// The checks of [`Self::check_export`] on the request itself, with the dataset's table
    /// opened (`None` while it does not exist).
    async fn checked_version(
        &self,
        request: &ExportRequest,
        spec: &DatasetSpec,
        table: &Option<DeltaTable>,
    ) -> QueryResult<i64> {
        for (field, day) in [("from", request.from), ("to", request.to)] {
            if let Some(message) = day.and_then(|day| export_day_problem(field, day)) {
                return Err(QueryError::BadRequest { field, message });
            }
        }
        if let (Some(from), Some(to)) = (request.from, request.to)
            && from > to
        {
            return Err(QueryError::BadRequest {
                field: "to",
                message: format!("`to` ({to}) is before `from` ({from})"),
            });
        }
        if let Some(since) = request.since_version
            && since < 0
        {
            return Err(QueryError::BadRequest {
                field: "since_version",
                message: format!("`since_version` is a table version, 0 or more, not {since}"),
            });
        }
        // The version of the dataset's own table (a code list reports the petitions' version).
        let version = match (table, spec.in_lake()) {
            (Some(table), _) => table.version().map_or(-1, |v| v as i64),
            (None, true) => -1,
            (None, false) => self.version().await?,
        };
        if let Some(since) = request.since_version
            && since > version.max(0)
        {
            return Err(QueryError::BadRequest {
                field: "since_version",
                message: format!(
                    "the `{}` table is at version {version}; `since_version` must be at most that",
                    spec.name
                ),
            });
        }
        Ok(version)
    }

    /// Writes the package of `request` into `out_dir` (created if needed; existing files of the
    /// same names are replaced). `progress` receives the rows written so far.
    pub async fn export(
        &self,
        request: &ExportRequest,
        out_dir: &Path,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> QueryResult<ExportReport> {
        let started = Instant::now();
        let spec = export_spec(request)?;
        let table = if spec.in_lake() { self.dataset_table(&spec).await? } else { None };
        let version = self.checked_version(request, &spec, &table).await?;
        // Nothing was added or changed after the table's current version: no rows to read (the
        // change feed has no version after the last).
        let unchanged = request.since_version.is_some_and(|since| since >= version);
        let data_dir = out_dir.join("data");
        std::fs::create_dir_all(&data_dir)
            .map_err(|err| QueryError::Export(format!("{}: {err}", data_dir.display())))?;
        let mut files = Vec::new();
        let mut coverage = (None::<DateTime<Utc>>, None::<DateTime<Utc>>, std::collections::BTreeSet::new());
        let units = Units::embedded();
        let mut resources = vec![spec.clone()];
        // The code lists the foreign keys point to travel with the rows.
        for fk in &spec.foreign_keys {
            if let Some(target) = datasets::dataset(fk.resource)
                && !target.in_lake()
                && !resources.iter().any(|r| r.name == target.name)
            {
                resources.push(target);
            }
        }
        for resource in &resources {
            let relative = format!("data/{}.{}", resource.name, request.format.extension());
            let path = out_dir.join(&relative);
            let mut sink = Sink::create(&path, request.format, resource)?;
            let mut rows = 0u64;
            if resource.in_lake() {
                // Reading and decoding (DataFusion's threads) overlap with masking and writing
                // (this blocking thread): the two halves of an export cost about the same.
                let (sender, mut receiver) = tokio::sync::mpsc::channel::<RecordBatch>(4);
                let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
                let texts = if request.personal_data { &[][..] } else { masked_text_columns(resource.name) };
                // Weekly reports carry a unit code, not a place: scoped here, row by row.
                let scope = (resource.name == voxpop_schema::reports::TABLE_NAME)
                    .then(|| request.commune.clone().or_else(|| request.province.clone()))
                    .flatten();
                let time = time_column(resource.name);
                let counter = written.clone();
                let writer = tokio::task::spawn_blocking(move || -> QueryResult<(Sink, Coverage)> {
                    let mut coverage: Coverage = (None, None, std::collections::BTreeSet::new());
                    while let Some(batch) = receiver.blocking_recv() {
                        let mut batch = batch;
                        if let Some(scope) = &scope {
                            batch = within_scope(&batch, scope)?;
                        }
                        note_coverage(&batch, time, &mut coverage)?;
                        sink.write(&batch)?;
                        counter.fetch_add(batch.num_rows() as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok((sink, coverage))
                });
                if let Some(table) = table.as_ref().filter(|_| !unchanged) {
                    let mut stream = self.lake_batches(request, resource, table).await?;
                    while let Some(batch) = stream.next().await {
                        // Conforming and masking here, on the reading side, balance the two
                        // halves: the writer thread encodes and compresses.
                        let mut batch = conform(&batch?, resource)?;
                        if !texts.is_empty() {
                            batch = mask_texts(&batch, texts)?;
                        }
                        if sender.send(batch).await.is_err() {
                            break; // the writer failed: its error is reported below
                        }
                        progress(written.load(std::sync::atomic::Ordering::Relaxed));
                    }
                }
                drop(sender);
                let (finished, rows_coverage) =
                    writer.await.map_err(|err| QueryError::Export(format!("export writer failed: {err}")))??;
                sink = finished;
                coverage = rows_coverage;
                rows = written.load(std::sync::atomic::Ordering::Relaxed);
                progress(rows);
            } else if let Some(batch) = resource.reference_batch(units) {
                sink.write(&batch)?;
                rows = batch.num_rows() as u64;
            }
            sink.finish()?;
            let (bytes, sha256) = sha256_of(&path)?;
            files.push(ExportedFile { resource: resource.name.to_owned(), path: relative, rows, bytes, sha256 });
        }
        let report = ExportReport {
            dataset: spec.name.to_owned(),
            rows: files.first().map_or(0, |f| f.rows),
            files,
            lake_version_to: version,
            since_version: request.since_version,
            elapsed: started.elapsed(),
        };
        let package = data_package(request, &resources, &report, &coverage);
        let descriptor = out_dir.join("datapackage.json");
        std::fs::write(&descriptor, serde_json::to_vec_pretty(&package).expect("json serialises"))
            .map_err(|err| QueryError::Export(format!("{}: {err}", descriptor.display())))?;
        Ok(report)
    }

    /// Streams the rows of a lake dataset the request selects, batch by batch.
    async fn lake_batches(
        &self,
        request: &ExportRequest,
        spec: &DatasetSpec,
        table: &DeltaTable,
    ) -> QueryResult<datafusion::physical_plan::SendableRecordBatchStream> {
        Ok(self.lake_frame(request, spec, table).await?.execute_stream().await?)
    }

    /// The rows of a lake dataset the request selects.
    async fn lake_frame(
        &self,
        request: &ExportRequest,
        spec: &DatasetSpec,
        table: &DeltaTable,
    ) -> QueryResult<datafusion::dataframe::DataFrame> {
        let path = self.dataset_path(spec.name);
        let delta = |source| QueryError::Delta { path: path.clone(), source };
        // Plain Utf8 strings, as the export writers take them (see `PetitionQueries::session`).
        let mut config = datafusion::prelude::SessionConfig::new();
        config.options_mut().execution.parquet.schema_force_view_types = false;
        let ctx = datafusion::prelude::SessionContext::new_with_config(config);
        table.update_datafusion_session(&ctx.state()).map_err(delta)?;
        let mut frame = match request.since_version {
            None => {
                let provider =
                    table.table_provider().await.map_err(|err| delta(DeltaTableError::Generic(err.to_string())))?;
                ctx.read_table(provider)?
            }
            Some(since) => {
                let provider = deltalake::delta_datafusion::DeltaCdfTableProvider::try_new(
                    table.clone().scan_cdf().with_starting_version((since + 1) as u64),
                )
                .map_err(delta)?;
                // Rows added or changed after `since`: inserts and update post-images.
                ctx.read_table(Arc::new(provider))?
                    .filter(col("_change_type").in_list(vec![lit("insert"), lit("update_postimage")], false))?
            }
        };
        // Days are Vietnam's days (from 00:00 at UTC+7), as the weeks and the handling deadlines.
        let day_start =
            |day: NaiveDate| voxpop_schema::calendar::vietnam_day_start(day).expect("a day `checked_version` accepted");
        let instant = |at: DateTime<Utc>| {
            lit(datafusion::scalar::ScalarValue::TimestampMicrosecond(Some(at.timestamp_micros()), Some("UTC".into())))
        };
        if let Some(time) = time_column(spec.name) {
            if let Some(from) = request.from {
                frame = frame.filter(col(time).gt_eq(instant(day_start(from))))?;
            }
            // The day after `to` starts after every row; past the last day chrono reads, no row
            // is later anyway (and `checked_version` refuses such days before this).
            if let Some(next) = request.to.and_then(|to| to.succ_opt()) {
                frame = frame.filter(col(time).lt(instant(day_start(next))))?;
            }
        }
        // Petitions and handling rows are scoped by the petition's place.
        let has = |name: &str| spec.schema.field_with_name(name).is_ok();
        if let Some(province) = &request.province
            && has("province_code")
        {
            frame = frame.filter(col("province_code").eq(lit(province.as_str())))?;
        }
        if let Some(commune) = &request.commune
            && has("commune_code")
        {
            frame = frame.filter(col("commune_code").eq(lit(commune.as_str())))?;
        }
        Ok(frame)
    }
}

/// The dataset `request` names, or the problem naming `dataset`.
fn export_spec(request: &ExportRequest) -> QueryResult<DatasetSpec> {
    datasets::dataset(&request.dataset).ok_or_else(|| {
        let known: Vec<&str> = datasets::datasets().iter().map(|d| d.name).collect();
        QueryError::BadRequest {
            field: "dataset",
            message: format!("unknown dataset `{}`, expected one of {}", request.dataset, known.join(", ")),
        }
    })
}

type Coverage = (Option<DateTime<Utc>>, Option<DateTime<Utc>>, std::collections::BTreeSet<String>);

fn note_coverage(batch: &RecordBatch, time: Option<&str>, coverage: &mut Coverage) -> QueryResult<()> {
    if let Some(times) = time.and_then(|name| batch.column_by_name(name))
        && let Some(times) = times.as_any().downcast_ref::<TimestampMicrosecondArray>()
    {
        for i in 0..times.len() {
            if times.is_null(i) {
                continue;
            }
            if let Some(at) = DateTime::<Utc>::from_timestamp_micros(times.value(i)) {
                coverage.0 = Some(coverage.0.map_or(at, |first: DateTime<Utc>| first.min(at)));
                coverage.1 = Some(coverage.1.map_or(at, |last: DateTime<Utc>| last.max(at)));
            }
        }
    }
    if let Some(provinces) = batch.column_by_name("province_code") {
        for code in text_cells(provinces)?.into_iter().flatten() {
            coverage.2.insert(code);
        }
    }
    Ok(())
}

fn data_package(request: &ExportRequest, specs: &[DatasetSpec], report: &ExportReport, coverage: &Coverage) -> Value {
    let main = &specs[0];
    let resources: Vec<Value> = specs
        .iter()
        .zip(&report.files)
        .map(|(spec, file)| {
            // A foreign key is checkable only against a resource of the package; the others are
            // stated beside the Table Schema.
            let mut schema = spec.table_schema();
            let mut outside = Vec::new();
            if let Some(keys) = schema.get_mut("foreignKeys").and_then(Value::as_array_mut) {
                keys.retain(|fk| {
                    let inside = specs.iter().any(|s| fk["reference"]["resource"] == s.name);
                    if !inside {
                        outside.push(fk.clone());
                    }
                    inside
                });
                if keys.is_empty() {
                    schema.as_object_mut().expect("a table schema is an object").remove("foreignKeys");
                }
            }
            let mut resource = json!({
                "name": spec.name,
                "path": file.path,
                "profile": "tabular-data-resource",
                "format": request.format.extension(),
                "mediatype": request.format.mediatype(),
                "bytes": file.bytes,
                "hash": format!("sha256:{}", file.sha256),
                "rows": file.rows,
                "title": spec.title_vi,
                "description": spec.description_vi,
                "title_en": spec.title_en,
                "schema": schema,
            });
            if !outside.is_empty() {
                resource["foreign_keys_outside_package"] = json!(outside);
            }
            if request.format == ExportFormat::Csv {
                // The file starts with a byte-order mark for Excel; `utf-8-sig` tells readers.
                resource["encoding"] = json!("utf-8-sig");
                resource["dialect"] = json!({"delimiter": ",", "header": true, "quoteChar": "\""});
            }
            resource
        })
        .collect();
    let (start, end, provinces) = coverage;
    let masking = if request.personal_data {
        json!({"contact": "none", "numbers_in_text": "none"})
    } else {
        json!({
            "contact": "masked (initials, last 3 digits, first letter of e-mail)",
            "numbers_in_text": "masked (runs of 8+ digits keep their last 3)",
            "text_columns": masked_text_columns(main.name),
        })
    };
    let created = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let temporal = json!({"start": start.map(|t| t.to_rfc3339()), "end": end.map(|t| t.to_rfc3339())});
    let spatial: Vec<&String> = provinces.iter().collect();
    json!({
        "profile": "tabular-data-package",
        "name": format!("voxpop-{}", main.name.replace('_', "-")),
        "title": main.title_vi,
        "description": main.description_vi,
        "created": created,
        "licenses": [{"name": request.license}],
        "contributors": [{"title": request.publisher, "role": "publisher"}],
        "keywords": ["phản ánh", "kiến nghị", main.name],
        "resources": resources,
        "voxpop": {
            "dataset": main.name,
            "schema_version": voxpop_schema::SCHEMA_VERSION,
            "lake_version_to": report.lake_version_to,
            "since_version": report.since_version,
            "from": request.from.map(|d| d.to_string()),
            "to": request.to.map(|d| d.to_string()),
            "province": request.province,
            "commune": request.commune,
            "time_column": time_column(main.name),
            "masking": masking,
        },
        "dcat": {
            "@type": "dcat:Dataset",
            "dct:title": main.title_vi,
            "dct:description": main.description_vi,
            "dct:publisher": request.publisher,
            "dct:issued": created,
            "dct:license": request.license,
            "dct:temporal": temporal,
            "dct:spatial": {"country": "VN", "provinces": spatial},
            "dcat:keyword": ["phản ánh", "kiến nghị"],
            "dcat:distribution": report.files.iter().map(|f| json!({
                "dcat:downloadURL": f.path, "dcat:mediaType": request.format.mediatype(), "dcat:byteSize": f.bytes,
                "spdx:checksum": {"spdx:algorithm": "sha256", "spdx:checksumValue": f.sha256},
            })).collect::<Vec<_>>(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn export_requests_are_checked_before_a_job_starts() {
        let dir = tempfile::tempdir().unwrap();
        let queries = PetitionQueries::new(&dir.path().join("lake").join("petitions"));
        let field = |result: QueryResult<i64>| match result {
            Err(QueryError::BadRequest { field, .. }) => field,
            other => panic!("expected a bad request, got {other:?}"),
        };
        let mut request = ExportRequest::new("petitions", ExportFormat::Csv);
        assert_eq!(queries.check_export(&request).await.unwrap(), -1);
        request.from = NaiveDate::from_ymd_opt(2025, 9, 10);
        request.to = NaiveDate::from_ymd_opt(2025, 9, 1);
        assert_eq!(field(queries.check_export(&request).await), "to");
        let mut request = ExportRequest::new("petitions", ExportFormat::Csv);
        for since in [-1, 1, i64::MAX] {
            request.since_version = Some(since);
            assert_eq!(field(queries.check_export(&request).await), "since_version", "{since}");
        }
        request.since_version = Some(0);
        assert!(queries.check_export(&request).await.is_ok());
        // Days far away are refused, naming the field, rather than overflowing in the job.
        for (from, to, expected) in [
            (None, NaiveDate::from_ymd_opt(262142, 12, 31), "to"),
            (None, Some(NaiveDate::MAX), "to"),
            (Some(NaiveDate::MIN), None, "from"),
            (NaiveDate::from_ymd_opt(1899, 12, 31), None, "from"),
            (None, NaiveDate::from_ymd_opt(10000, 1, 1), "to"),
        ] {
            let mut request = ExportRequest::new("petition_events", ExportFormat::Csv);
            (request.from, request.to) = (from, to);
            assert_eq!(field(queries.check_export(&request).await), expected, "{from:?} {to:?}");
        }
        let mut request = ExportRequest::new("petitions", ExportFormat::Csv);
        (request.from, request.to) = (Some(FIRST_EXPORT_DAY), Some(LAST_EXPORT_DAY));
        assert!(queries.check_export(&request).await.is_ok());
        assert_eq!(field(queries.check_export(&ExportRequest::new("people", ExportFormat::Csv)).await), "dataset");
    }

    #[test]
    fn export_text_cells_refuse_dates_past_the_calendar_without_panicking() {
        use datafusion::arrow::array::{Date32Array, Date64Array};
        let cells = |array: ArrayRef| text_cells(&array);
        let dates = Arc::new(Date32Array::from(vec![Some(20_347), None, Some(-719_162)])) as ArrayRef;
        assert_eq!(cells(dates).unwrap(), [Some("2025-09-16".to_owned()), None, Some("0001-01-01".to_owned())]);
        let times = Arc::new(TimestampMicrosecondArray::from(vec![1_757_980_800_000_000]).with_timezone("UTC"));
        assert_eq!(cells(times).unwrap(), [Some("2025-09-16T00:00:00.000000Z".to_owned())]);
        for (array, expected) in [
            (Arc::new(Date32Array::from(vec![Some(0), Some(i32::MAX)])) as ArrayRef, "2147483647 days"),
            (Arc::new(Date32Array::from(vec![i32::MIN])), "-2147483648 days"),
            (Arc::new(TimestampMicrosecondArray::from(vec![i64::MAX])), "9223372036854775807 µs"),
            (Arc::new(TimestampMicrosecondArray::from(vec![i64::MIN]).with_timezone("UTC")), "µs"),
            (Arc::new(Date64Array::from(vec![i64::MAX])), "Date64"),
        ] {
            match cells(array.clone()) {
                Err(QueryError::Export(message)) => assert!(message.contains(expected), "{message}"),
                other => panic!("{}: {other:?}", array.data_type()),
            }
        }
        // The writers pass the error on: a CSV export of such a date fails, naming it.
        let dir = tempfile::tempdir().unwrap();
        let schema =
            Arc::new(datafusion::arrow::datatypes::Schema::new(vec![datafusion::arrow::datatypes::Field::new(
                "day",
                DataType::Date32,
                true,
            )]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Date32Array::from(vec![i32::MAX])) as ArrayRef]).unwrap();
        let file = BufWriter::new(File::create(dir.path().join("days.csv")).unwrap());
        let mut sink = Sink::Csv(csv::Writer::from_writer(file));
        match sink.write(&batch) {
            Err(QueryError::Export(message)) => assert!(message.contains("past the calendar"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}

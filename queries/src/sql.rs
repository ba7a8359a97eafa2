//! Read-only SQL over the lake for data engineers (DataFusion's dialect).
//!
//! Each query runs in a fresh session that holds only what the caller may read: `petitions` as
//! a view (limited to the caller's province when scoped, personal data masked unless the role
//! allows it; the underlying Delta table is registered under no name, so SQL cannot reach
//! around the view), `weekly_reports` when units have reported, and the code lists `provinces`,
//! `communes`, `communes_pre2025` and `unit_crosswalk_2025`, and the handling tables
//! `petition_events` and `petition_status` (scoped and masked like the petitions). DDL, DML, `COPY` and other
//! statements are refused before planning finishes, URLs and file paths are not tables, and
//! every query has a row limit and a time limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::cast::as_string_array;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::prelude::{Expr, SessionContext, col, lit};
use futures::StreamExt;
use voxpop_schema::datasets;
use voxpop_schema::privacy::{mask_contact, mask_numbers};
use voxpop_schema::{Contact, Units};

use crate::{PetitionQueries, QueryError, QueryResult};

/// Rows returned when the caller does not say.
pub const DEFAULT_MAX_ROWS: usize = 10_000;
/// Most rows one query may return.
pub const MAX_ROWS: usize = 1_000_000;
/// Longest a query may run when the caller does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a query may run at all.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct SqlRequest {
    pub sql: String,
    pub max_rows: usize,
    pub timeout: Duration,
    /// Contact fields and numbers in the text in clear.
    pub personal_data: bool,
    /// Only this province's petitions are visible.
    pub province: Option<String>,
    /// Only this commune's petitions are visible.
    pub commune: Option<String>,
}

impl SqlRequest {
    pub fn new(sql: &str) -> SqlRequest {
        SqlRequest {
            sql: sql.to_owned(),
            max_rows: DEFAULT_MAX_ROWS,
            timeout: DEFAULT_TIMEOUT,
            personal_data: false,
            province: None,
            commune: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SqlResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    /// More rows existed than `max_rows`.
    pub truncated: bool,
    pub elapsed: Duration,
}

fn bad(message: impl Into<String>) -> QueryError {
    QueryError::BadRequest { field: "sql", message: message.into() }
}

/// A string UDF applying `f` to every non-null value.
fn string_udf(name: &str, f: fn(&str) -> String) -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        name,
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let input = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
            let input = as_string_array(&input)?;
            let output: StringArray = input.iter().map(|value| value.map(f)).collect();
            Ok(ColumnarValue::Array(Arc::new(output) as ArrayRef))
        }),
    )
}

fn mask_name(name: &str) -> String {
    mask_contact(&Contact { name: Some(name.to_owned()), phone: None, email: None }).name.unwrap_or_default()
}

fn mask_email(email: &str) -> String {
    mask_contact(&Contact { name: None, phone: None, email: Some(email.to_owned()) }).email.unwrap_or_default()
}

/// A Delta table of the lake read in `ctx`, if it exists.
async fn lake_frame(
    ctx: &SessionContext,
    path: &std::path::Path,
) -> QueryResult<Option<datafusion::dataframe::DataFrame>> {
    if !path.join("_delta_log").exists() {
        return Ok(None);
    }
    let delta = |source: deltalake::DeltaTableError| QueryError::Delta { path: path.to_owned(), source };
    let absolute =
        std::fs::canonicalize(path).map_err(|err| delta(deltalake::DeltaTableError::Generic(err.to_string())))?;
    let url = deltalake::ensure_table_uri(absolute.to_string_lossy()).map_err(delta)?;
    let table = deltalake::DeltaTable::try_from_url(url).await.map_err(delta)?;
    if table.version().is_none() {
        return Ok(None);
    }
    table.update_datafusion_session(&ctx.state()).map_err(delta)?;
    let provider =
        table.table_provider().await.map_err(|err| delta(deltalake::DeltaTableError::Generic(err.to_string())))?;
    Ok(Some(ctx.read_table(provider)?))
}

/// The rows of `frame` (a table with `province_code` and `commune_code`) in the caller's
/// province or commune.
fn scoped(
    frame: datafusion::dataframe::DataFrame,
    request: &SqlRequest,
) -> QueryResult<datafusion::dataframe::DataFrame> {
    let mut frame = frame;
    if let Some(province) = &request.province {
        frame = frame.filter(col("province_code").eq(lit(province.as_str())))?;
    }
    if let Some(commune) = &request.commune {
        frame = frame.filter(col("commune_code").eq(lit(commune.as_str())))?;
    }
    Ok(frame)
}

impl PetitionQueries {
    /// The session a query runs in: the caller's view of the lake and the code lists.
    async fn sql_session(&self, request: &SqlRequest) -> QueryResult<SessionContext> {
        let ctx = SessionContext::new();
        let units = Units::embedded();
        for spec in datasets::datasets() {
            if let Some(batch) = spec.reference_batch(units) {
                let table = MemTable::try_new(spec.schema.clone(), vec![vec![batch]])?;
                ctx.register_table(spec.name, Arc::new(table))?;
            }
        }
        let spec = datasets::dataset("petitions").expect("petitions is a dataset");
        let frame = match self.session().await? {
            Some(lake) => {
                let frame = lake.table(voxpop_schema::petition::TABLE_NAME).await?;
                // The lake's own session stays private; the view is rebuilt here.
                let plan = frame.into_optimized_plan()?;
                datafusion::dataframe::DataFrame::new(ctx.state(), plan)
            }
            None => {
                let empty = MemTable::try_new(spec.schema.clone(), vec![vec![]])?;
                ctx.read_table(Arc::new(empty))?
            }
        };
        let frame = scoped(frame, request)?;
        let (numbers, name, email) = (
            string_udf("mask_numbers", mask_numbers),
            string_udf("mask_name", mask_name),
            string_udf("mask_email", mask_email),
        );
        let columns: Vec<Expr> = spec
            .schema
            .fields()
            .iter()
            .map(|field| {
                let name_ = field.name().as_str();
                let column = col(name_);
                if request.personal_data {
                    return column;
                }
                match name_ {
                    "title" | "body" | "contact_phone" => numbers.call(vec![column]).alias(name_),
                    "contact_name" => name.call(vec![column]).alias(name_),
                    "contact_email" => email.call(vec![column]).alias(name_),
                    _ => column,
                }
            })
            .collect();
        let view = frame.select(columns)?;
        ctx.register_table(voxpop_schema::petition::TABLE_NAME, view.into_view())?;
        let Some(lake) = self.path.parent() else {
            return Ok(ctx);
        };
        // The weekly reports, next to the petitions table in the lake (no personal data).
        if let Some(frame) = lake_frame(&ctx, &lake.join(voxpop_schema::reports::TABLE_NAME)).await? {
            ctx.register_table(voxpop_schema::reports::TABLE_NAME, frame.into_view())?;
        }
        // Handling events and statuses, limited like the petitions they are about; the free
        // text (titles, notes, answers) masked like the petitions' text.
        for (name, texts) in [
            (voxpop_schema::workflow::EVENTS_TABLE, &["title", "note", "answer"][..]),
            (voxpop_schema::workflow::STATUS_TABLE, &["title", "answer"][..]),
        ] {
            let Some(frame) = lake_frame(&ctx, &lake.join(name)).await? else {
                continue;
            };
            let frame = scoped(frame, request)?;
            let fields: Vec<String> = frame.schema().fields().iter().map(|f| f.name().clone()).collect();
            let columns: Vec<Expr> = fields
                .iter()
                .map(|field| {
                    if !request.personal_data && texts.contains(&field.as_str()) {
                        numbers.call(vec![col(field.as_str())]).alias(field.as_str())
                    } else {
                        col(field.as_str())
                    }
                })
                .collect();
            ctx.register_table(name, frame.select(columns)?.into_view())?;
        }
        // The registers of officers and members (and villages), limited like the petitions;
        // without personal data, names as initials, the digits of phones and ID numbers hidden
        // but the last three, birth years left out.
        if let Some(frame) = lake_frame(&ctx, &lake.join(voxpop_schema::registers::TABLE_NAME)).await? {
            let frame = scoped(frame, request)?;
            let fields: Vec<String> = frame.schema().fields().iter().map(|f| f.name().clone()).collect();
            let columns: Vec<Expr> = fields
                .iter()
                .map(|field| match field.as_str() {
                    _ if request.personal_data => col(field.as_str()),
                    "name" => name.call(vec![col("name")]).alias("name"),
                    "phone" | "person_id" => numbers.call(vec![col(field.as_str())]).alias(field.as_str()),
                    "birth_year" => lit(datafusion::scalar::ScalarValue::Int32(None)).alias("birth_year"),
                    _ => col(field.as_str()),
                })
                .collect();
            ctx.register_table(voxpop_schema::registers::TABLE_NAME, frame.select(columns)?.into_view())?;
        }
        Ok(ctx)
    }

    /// Runs one read-only query.
    pub async fn sql(&self, request: &SqlRequest) -> QueryResult<SqlResult> {
        let started = Instant::now();
        if request.sql.trim().is_empty() {
            return Err(bad("empty query"));
        }
        if request.max_rows > MAX_ROWS {
            return Err(QueryError::BadRequest {
                field: "max_rows",
                message: format!("at most {MAX_ROWS} rows per query; page with LIMIT/OFFSET or export the dataset"),
            });
        }
        let timeout = request.timeout.min(MAX_TIMEOUT);
        let ctx = self.sql_session(request).await?;
        let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
        let frame = ctx.sql_with_options(&request.sql, options).await.map_err(|err| {
            let message = err.to_string();
            if message.contains("not supported") {
                bad(format!("read-only SQL: only queries (SELECT, WITH, VALUES, EXPLAIN) are allowed ({message})"))
            } else {
                bad(message)
            }
        })?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let run = async {
            let mut stream = frame.execute_stream().await?;
            let mut batches = Vec::new();
            let mut rows = 0usize;
            let mut truncated = false;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                if rows + batch.num_rows() > request.max_rows {
                    let keep = request.max_rows - rows;
                    batches.push(batch.slice(0, keep));
                    rows += keep;
                    truncated = true;
                    break;
                }
                rows += batch.num_rows();
                batches.push(batch);
            }
            Ok::<_, QueryError>((batches, rows, truncated))
        };
        let (batches, rows, truncated) =
            tokio::time::timeout(timeout, run).await.map_err(|_| QueryError::BadRequest {
                field: "sql",
                message: format!(
                    "the query ran longer than {} s; narrow it (WHERE on received_week helps)",
                    timeout.as_secs()
                ),
            })??;
        Ok(SqlResult { schema, batches, rows, truncated, elapsed: started.elapsed() })
    }
}

/// Rows as JSON objects.
pub fn to_json_rows(result: &SqlResult) -> QueryResult<serde_json::Value> {
    let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
    for batch in &result.batches {
        writer.write(batch).map_err(datafusion::error::DataFusionError::from)?;
    }
    writer.finish().map_err(datafusion::error::DataFusionError::from)?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(serde_json::Value::Array(Vec::new()));
    }
    serde_json::from_slice(&bytes).map_err(|err| QueryError::Export(err.to_string()))
}

/// Rows as CSV with a header.
pub fn to_csv(result: &SqlResult) -> QueryResult<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut writer = datafusion::arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
        for batch in &result.batches {
            writer.write(batch).map_err(datafusion::error::DataFusionError::from)?;
        }
    }
    if result.batches.is_empty() {
        let header: Vec<&str> = result.schema.fields().iter().map(|f| f.name().as_str()).collect();
        out.extend_from_slice(header.join(",").as_bytes());
        out.push(b'\n');
    }
    Ok(out)
}

/// Rows as an Arrow IPC stream (what pandas, polars and ADBC read without conversion).
pub fn to_arrow_ipc(result: &SqlResult) -> QueryResult<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut writer = datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut out, &result.schema)
            .map_err(datafusion::error::DataFusionError::from)?;
        for batch in &result.batches {
            writer.write(batch).map_err(datafusion::error::DataFusionError::from)?;
        }
        writer.finish().map_err(datafusion::error::DataFusionError::from)?;
    }
    Ok(out)
}

/// Rows as one Parquet file.
pub fn to_parquet(result: &SqlResult) -> QueryResult<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(&mut out, result.schema.clone(), None)
            .map_err(|err| QueryError::Export(err.to_string()))?;
        for batch in &result.batches {
            writer.write(batch).map_err(|err| QueryError::Export(err.to_string()))?;
        }
        writer.close().map_err(|err| QueryError::Export(err.to_string()))?;
    }
    Ok(out)
}

/// A text table for terminals.
pub fn to_table(result: &SqlResult) -> QueryResult<String> {
    Ok(datafusion::arrow::util::pretty::pretty_format_batches(&result.batches)
        .map_err(datafusion::error::DataFusionError::from)?
        .to_string())
}

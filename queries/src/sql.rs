//! Read-only SQL over the lake for data engineers (DataFusion's dialect).
//!
//! Each query runs in a fresh session that holds only what the caller may read: `petitions` as
//! a view (limited to the caller's province when scoped, personal data masked unless the role
//! allows it; the underlying Delta table is registered under no name, so SQL cannot reach
//! around the view), `weekly_reports` when units have reported (the caller's unit and the units
//! under it, like exports), and the code lists `provinces`,
//! `communes`, `communes_pre2025` and `unit_crosswalk_2025`, and the handling tables
//! `petition_events` and `petition_status` (scoped and masked like the petitions). DDL, DML, `COPY` and other
//! statements are refused before planning finishes, `EXPLAIN` shows the logical plan alone (no
//! files, no metrics; see [`check_explain`]), URLs and file paths are not tables, and
//! every query has a row limit, a byte limit on its result ([`MAX_RESULT_BYTES`]), a memory
//! limit for its sorts, aggregations and joins ([`MEMORY_LIMIT_BYTES`]) and a time limit that
//! cancels it. The functions whose output grows with their arguments (`repeat`, `range`, ...)
//! check each batch before computing it (`guarded`), since neither the memory pool nor the time
//! limit can stop one call; expressions nest at most [`MAX_EXPRESSION_DEPTH`] deep and a
//! `GROUP BY` makes at most [`MAX_GROUPING_SETS`] grouping sets.
//!
//! Parsing, planning and running happen on threads of their own with large stacks, apart from
//! the server's: a panic of the engine on a query ends that query alone, as a problem naming `sql`.
//!
//! A query that fails because of its own text or the data it computes on (a plan error, a cast
//! of a title to a number, a division by zero, an overflow, the memory limit) is the caller's
//! fault wherever it fails (a `WHERE` fails inside the Parquet reader, which wraps its error) and
//! comes back as [`QueryError::BadRequest`] naming `sql`, with DataFusion's message; a value the
//! answer's format cannot print (a date past the calendar) is one naming `format`;
//! I/O and DataFusion's own faults stay [`QueryError::DataFusion`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, new_null_array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::common::cast::as_string_array;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{ColumnarValue, LogicalPlan, Volatility, create_udf};
use datafusion::optimizer::simplify_expressions::SimplifyExpressions;
use datafusion::optimizer::{ApplyOrder, Optimizer, OptimizerConfig, OptimizerRule};
use datafusion::prelude::{Expr, SessionConfig, SessionContext, col, lit, when};
use futures::StreamExt;
use voxpop_schema::datasets;
use voxpop_schema::privacy::{mask_contact, mask_numbers, mask_phone};
use voxpop_schema::{Contact, Units};

use crate::{PetitionQueries, QueryError, QueryResult};

mod guarded;
pub mod worker;

/// Rows returned when the caller does not say.
pub const DEFAULT_MAX_ROWS: usize = 10_000;
/// Most rows one query may return.
pub const MAX_ROWS: usize = 1_000_000;
/// Longest a query may run when the caller does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a query may run at all.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// Most Arrow data one result may hold (64 MiB), counted batch by batch while the result is
/// read, before anything is encoded: `max_rows` bounds the rows, this their size, so neither one
/// long value (`repeat('a', 2000000000)`) nor many wide rows can exhaust the server while the
/// result is turned into JSON, CSV or Parquet.
pub const MAX_RESULT_BYTES: usize = 64 * 1024 * 1024;
/// Memory one query may hold for its sorts, aggregations and joins (1 GiB). Sorts and
/// aggregations spill to disk beyond it; what cannot spill fails as the caller's fault, so one
/// query cannot take the server's memory.
pub const MEMORY_LIMIT_BYTES: usize = 1024 * 1024 * 1024;
/// Temporary files one query may write when its sorts, aggregations and joins spill beyond
/// [`MEMORY_LIMIT_BYTES`] (2 GiB). Without a bound a query that keeps growing (a recursive
/// `WITH` doubling a string) fills the server's disk and fails every other query and write
/// with "No space left on device"; beyond it the query fails alone as the caller's fault.
pub const MAX_SPILL_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// The encodings a result is answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlFormat {
    Json,
    Csv,
    Arrow,
    Parquet,
}

impl SqlFormat {
    pub fn parse(value: &str) -> Option<SqlFormat> {
        match value {
            "json" => Some(SqlFormat::Json),
            "csv" => Some(SqlFormat::Csv),
            "arrow" => Some(SqlFormat::Arrow),
            "parquet" => Some(SqlFormat::Parquet),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SqlFormat::Json => "json",
            SqlFormat::Csv => "csv",
            SqlFormat::Arrow => "arrow",
            SqlFormat::Parquet => "parquet",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            SqlFormat::Json => "application/json",
            SqlFormat::Csv => "text/csv; charset=utf-8",
            SqlFormat::Arrow => "application/vnd.apache.arrow.stream",
            SqlFormat::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// The result encoded: rows as a JSON array for `Json` (the HTTP answer wraps it), the whole
    /// file for the others.
    pub fn encode(self, result: &SqlResult) -> QueryResult<Vec<u8>> {
        self.encode_capped(result, usize::MAX)
    }

    /// [`SqlFormat::encode`], refused as the query's fault once the encoding passes `cap` bytes:
    /// a result small as Arrow can be large as text (a dictionary's one value on every row, a
    /// bit of a boolean as `"a0":true,`), and it is refused while it is written, not after.
    pub fn encode_capped(self, result: &SqlResult, cap: usize) -> QueryResult<Vec<u8>> {
        let mut out = CappedBuffer { bytes: Vec::new(), cap, exceeded: false };
        let written = match self {
            SqlFormat::Json => write_json_array(result, &mut out),
            SqlFormat::Csv => write_csv(result, &mut out),
            SqlFormat::Arrow => write_arrow_ipc(result, &mut out),
            SqlFormat::Parquet => write_parquet(result, &mut out),
        };
        if out.exceeded {
            return Err(bad(format!(
                "the result is larger than {} MiB as {}; select fewer or shorter columns, or add a LIMIT",
                cap >> 20,
                self.name()
            )));
        }
        // The buffer takes every other write, and the types the format cannot hold were refused
        // before the query ran ([`SqlFormat::check`]): what fails here is a value of the result
        // (a date past what the text formats can print), the query's to change.
        written.map_err(|err| match err {
            QueryError::DataFusion(err) => QueryError::BadRequest {
                field: "format",
                message: format!(
                    "a value of the result cannot be written as {}: {}; cast it, filter it out, or ask for \
                     format=arrow",
                    self.name(),
                    err.find_root().strip_backtrace()
                ),
            },
            other => other,
        })?;
        Ok(out.bytes)
    }

    /// The first column of `schema` this format cannot hold (CSV has no nested values, Parquet
    /// no month-day-nano intervals, ...), with its type. Found by encoding one null value of each
    /// column with the writer itself, so the answer follows the writers rather than a list.
    pub fn unsupported_column(self, schema: &Schema) -> Option<(String, DataType)> {
        schema.fields().iter().find_map(|field| {
            let probe = Arc::new(Schema::new(vec![Field::new(field.name(), field.data_type().clone(), true)]));
            let batch = RecordBatch::try_new(probe.clone(), vec![new_null_array(field.data_type(), 1)])
                .unwrap_or_else(|_| RecordBatch::new_empty(probe.clone()));
            let rows = batch.num_rows();
            let result =
                SqlResult { schema: probe, batches: vec![batch], rows, truncated: false, elapsed: Duration::ZERO };
            self.encode(&result).is_err().then(|| (field.name().clone(), field.data_type().clone()))
        })
    }

    /// A problem naming `format` when the result of `schema` cannot be written in this format:
    /// found before the query runs, not halfway through writing the answer.
    pub fn check(self, schema: &Schema) -> QueryResult<()> {
        match self.unsupported_column(schema) {
            None => Ok(()),
            Some((column, data_type)) => Err(QueryError::BadRequest {
                field: "format",
                message: format!(
                    "{} cannot hold column `{column}` of type {data_type}: cast it (e.g. to a string), \
                     leave it out, or ask for format=arrow",
                    self.name()
                ),
            }),
        }
    }
}

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
    /// The encoding the result will be answered in, when known: a result it cannot hold is
    /// refused before the query runs.
    pub format: Option<SqlFormat>,
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
            format: None,
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

/// A result as it is answered: encoded in the format asked for, with what the answer says of it.
#[derive(Debug, Clone)]
pub struct EncodedResult {
    /// Each column's name and Arrow type, as text.
    pub columns: Vec<(String, String)>,
    pub rows: usize,
    pub truncated: bool,
    pub elapsed: Duration,
    /// The rows as a JSON array for [`SqlFormat::Json`], the whole file for the others; at most
    /// [`MAX_ENCODED_BYTES`].
    pub body: Vec<u8>,
}

impl EncodedResult {
    /// `result` encoded in `format`, refused past [`MAX_ENCODED_BYTES`].
    pub fn of(result: &SqlResult, format: SqlFormat) -> QueryResult<EncodedResult> {
        Ok(EncodedResult {
            columns: result.schema.fields().iter().map(|f| (f.name().clone(), f.data_type().to_string())).collect(),
            rows: result.rows,
            truncated: result.truncated,
            elapsed: result.elapsed,
            body: format.encode_capped(result, MAX_ENCODED_BYTES)?,
        })
    }
}

fn bad(message: impl Into<String>) -> QueryError {
    QueryError::BadRequest { field: "sql", message: message.into() }
}

/// The answer to a query that ran out of time (also for the time spent encoding its result).
pub fn timed_out(timeout: Duration) -> QueryError {
    bad(format!("the query ran longer than {} s; narrow it (WHERE on received_week helps)", timeout.as_secs()))
}

/// Whether a failed query is the caller's fault: what its text or the data it computes on
/// caused (planning, SQL, execution, casts, division by zero, overflow, schema errors, features
/// DataFusion lacks, the memory limit). Read at the root of the error, under the `Context` and
/// `Diagnostic` wrappers the optimizer and planner add, and under the readers' wrappers
/// ([`wrapped_expression_error`]): a `WHERE` pushed into the Parquet reader fails there, and its
/// error arrives as Parquet's. I/O, the object store, Parquet decoding, joins of tasks and
/// DataFusion's internal errors are ours.
fn callers_fault(root: &DataFusionError) -> bool {
    if wraps(root) {
        return wrapped_expression_error(root).is_some();
    }
    matches!(
        root,
        DataFusionError::ArrowError(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SQL(..)
            | DataFusionError::Execution(_)
            | DataFusionError::NotImplemented(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::ResourcesExhausted(_)
    )
}

/// Whether `root` is a reader's, a stream's or a foreign library's error, which may hold an
/// error of the query's expressions ([`wrapped_expression_error`]) or one of our own.
fn wraps(root: &DataFusionError) -> bool {
    match root {
        DataFusionError::ArrowError(arrow, _) => matches!(
            arrow.as_ref(),
            ArrowError::IoError(..)
                | ArrowError::ExternalError(_)
                | ArrowError::CDataInterface(_)
                | ArrowError::IpcError(_)
                | ArrowError::CsvError(_)
                | ArrowError::JsonError(_)
                | ArrowError::AvroError(_)
                | ArrowError::ParquetError(_)
        ),
        DataFusionError::ParquetError(_) | DataFusionError::External(_) => true,
        _ => false,
    }
}

/// What DataFusion's Parquet row filter says when the query's predicate fails on a batch it
/// reads (its `DatafusionArrowPredicate`): the predicate's own error follows, as text.
const ROW_FILTER_FAILED: &str = "Error evaluating filter predicate";

/// The error of the query's own expressions (a cast, a division, an overflow) that a reader
/// wrapped in its own: the Parquet reader evaluates a pushed-down `WHERE` itself, and its error
/// arrives as `ParquetError::External` holding an `ArrowError::ComputeError`, or as text when an
/// Arrow stream turned it into a string. Found by walking the sources under `root`; Parquet's
/// own failures (a corrupt page, a short read) are none of these and stay ours.
fn wrapped_expression_error(root: &DataFusionError) -> Option<&ArrowError> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(root);
    while let Some(err) = next {
        let arrow = err.downcast_ref::<ArrowError>().or_else(|| match err.downcast_ref::<DataFusionError>() {
            Some(DataFusionError::ArrowError(arrow, _)) => Some(arrow.as_ref()),
            _ => None,
        });
        match arrow {
            Some(
                arrow @ (ArrowError::ComputeError(_)
                | ArrowError::DivideByZero
                | ArrowError::ArithmeticOverflow(_)
                | ArrowError::CastError(_)
                | ArrowError::ParseError(_)),
            ) => return Some(arrow),
            Some(arrow @ ArrowError::ParquetError(message)) if message.contains(ROW_FILTER_FAILED) => {
                return Some(arrow);
            }
            _ => {}
        }
        next = err.source();
    }
    None
}

/// A failed query as its caller sees it: a problem naming `sql` with DataFusion's message where
/// the query is at fault (see [`callers_fault`]), our error otherwise.
fn query_error(err: DataFusionError) -> QueryError {
    let root = err.find_root();
    if disk_full(root) {
        return QueryError::Unavailable(format!(
            "the server's disk is full, so the query could not spill its sorts and joins; retry later ({})",
            root.strip_backtrace()
        ));
    }
    if !callers_fault(root) {
        return QueryError::DataFusion(err);
    }
    if matches!(root, DataFusionError::ResourcesExhausted(_)) {
        return bad(format!(
            "the query needs more than the {} MiB of memory (and {} MiB of disk to spill to) a query \
             may use: filter or aggregate sooner, join smaller inputs, or add a LIMIT ({})",
            MEMORY_LIMIT_BYTES >> 20,
            MAX_SPILL_BYTES >> 20,
            root.strip_backtrace()
        ));
    }
    // An error a reader wrapped is told as the expression's, without the reader's prefixes.
    match wraps(root).then(|| wrapped_expression_error(root)).flatten() {
        Some(ArrowError::ComputeError(text)) if text.starts_with(ROW_FILTER_FAILED) => {
            bad(format!("a condition of the query failed on a row it read: {}", predicate_message(text)))
        }
        Some(ArrowError::ParquetError(text)) => {
            let text = text.find(ROW_FILTER_FAILED).map_or(text.as_str(), |at| &text[at..]);
            bad(format!("a condition of the query failed on a row it read: {}", predicate_message(text)))
        }
        Some(arrow) => bad(arrow.to_string()),
        None => bad(root.strip_backtrace()),
    }
}

/// The predicate's own message in the Parquet row filter's text, which holds DataFusion's error
/// in its `Debug` form (`... ArrowError(CastError("Cannot cast string 'a' ..."), Some(""))`): the
/// first quoted message, unescaped, or the text as it is.
fn predicate_message(text: &str) -> String {
    if text.contains("ArrowError(DivideByZero") {
        return "Divide by zero error".to_owned();
    }
    let Some(start) = text.find("(\"") else {
        return text.to_owned();
    };
    let mut message = String::new();
    let mut chars = text[start + 2..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => message.extend(chars.next()),
            '"' => break,
            c => message.push(c),
        }
    }
    if message.is_empty() { text.to_owned() } else { message }
}

/// Whether a query failed on a full disk (its spill files could not be written): no fault of the
/// query's, nor a fault of ours to answer with a 500.
fn disk_full(root: &DataFusionError) -> bool {
    let full = |err: &std::io::Error| err.kind() == std::io::ErrorKind::StorageFull || err.raw_os_error() == Some(28);
    match root {
        DataFusionError::IoError(err) => full(err),
        DataFusionError::ArrowError(arrow, _) => match arrow.as_ref() {
            ArrowError::IoError(_, err) => full(err),
            other => other.to_string().contains("No space left on device"),
        },
        other => other.to_string().contains("No space left on device"),
    }
}

/// The bytes of Arrow data `batch` holds: the slices' own bytes (a `LIMIT 5` of a large batch
/// counts five rows, columns read back from one IPC message count their own parts of it), the whole buffers where a type has no slice size or the slice size leaves
/// data out (a dictionary's values, the strings behind views).
pub fn result_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|column| {
            let whole =
                matches!(column.data_type(), DataType::Dictionary(..) | DataType::Utf8View | DataType::BinaryView);
            let slice = if whole { None } else { column.to_data().get_slice_memory_size().ok() };
            slice.unwrap_or_else(|| column.get_array_memory_size())
        })
        .sum()
}

/// The optimizer's constant folding, refusing a constant larger than a result may be.
///
/// `SELECT repeat('a', 2000000000)` folds into one 2 GB literal while the query is planned,
/// and every later rewrite of the plan copies it: gigabytes and minutes before a single batch
/// exists to be measured. Refused as soon as it is folded, the query costs one such value.
#[derive(Debug)]
struct BoundedConstants(Arc<dyn OptimizerRule + Send + Sync>);

impl OptimizerRule for BoundedConstants {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        self.0.apply_order()
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> datafusion::error::Result<Transformed<LogicalPlan>> {
        let rewritten = self.0.rewrite(plan, config)?;
        rewritten.data.apply_expressions(|expr| {
            expr.apply(|expr| match expr {
                Expr::Literal(value, _) if value.size() > MAX_RESULT_BYTES => Err(DataFusionError::Plan(format!(
                    "a value of the query is larger than the {} MiB a result may hold; make it shorter",
                    MAX_RESULT_BYTES >> 20
                ))),
                _ => Ok(TreeNodeRecursion::Continue),
            })
        })?;
        Ok(rewritten)
    }
}

/// The default optimizer rules, constant folding bounded by [`BoundedConstants`].
fn optimizer_rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    Optimizer::new()
        .rules
        .into_iter()
        .map(|rule| -> Arc<dyn OptimizerRule + Send + Sync> {
            if rule.name() == SimplifyExpressions::new().name() { Arc::new(BoundedConstants(rule)) } else { rule }
        })
        .collect()
}

/// Deepest a query's expressions may nest: `1+1+...+1` with a thousand terms, or a thousand
/// `OR`s. The parser builds a chain of any length without recursing, but planning, optimizing,
/// naming and dropping it all recurse, so a chain of 100,000 terms (a 256 KiB body) could
/// overflow even the SQL threads' stacks; refused after parsing, before any of that. A longer
/// list of alternatives fits in `IN (...)`, which does not nest.
pub const MAX_EXPRESSION_DEPTH: usize = 1_000;
/// Most grouping sets one `GROUP BY` may make (DataFusion's own limit for mixed grouping sets):
/// `CUBE` of n columns makes 2^n of them, enumerated in memory and each aggregated over every
/// input row, so `CUBE` takes at most 12 columns.
pub const MAX_GROUPING_SETS: u128 = 4_096;
/// Longest a query's text may be (512 KiB; the HTTP API's bodies are smaller still, Arrow
/// Flight's may be larger). The parser builds a chain of operators as long as the text without
/// recursing, and a refused chain is dropped recursively on the SQL thread's stack: a 1 MiB chain
/// fits in [`SQL_STACK_BYTES`], 4 MiB does not.
pub const MAX_SQL_BYTES: usize = 512 * 1024;
/// The stack of each SQL thread (64 MiB; reserved address space, touched only as used): room for
/// DataFusion's recursive walks over plans as deep as [`MAX_EXPRESSION_DEPTH`] allows, and for
/// dropping the parsed text of a deeper one before it is refused.
const SQL_STACK_BYTES: usize = 64 * 1024 * 1024;

/// The first place where `statement` nests deeper than [`MAX_EXPRESSION_DEPTH`]: expressions
/// within expressions, or set operations (`UNION`, ...) within set operations. The walk stops at
/// the limit, so it recurses no deeper than a query that is allowed.
fn too_deep(statement: &datafusion::sql::parser::Statement) -> Option<String> {
    use datafusion::sql::parser::Statement;
    use datafusion::sql::sqlparser::ast::{SetExpr, Visit, Visitor};
    use std::ops::ControlFlow;

    struct Depth(usize);
    impl Visitor for Depth {
        type Break = String;

        fn pre_visit_query(&mut self, query: &datafusion::sql::sqlparser::ast::Query) -> ControlFlow<String> {
            // A chain of set operations, walked with a stack of its own.
            let mut pending = vec![(query.body.as_ref(), 1usize)];
            while let Some((body, depth)) = pending.pop() {
                if depth > MAX_EXPRESSION_DEPTH {
                    return ControlFlow::Break(format!(
                        "set operations (UNION, ...) nested more than {MAX_EXPRESSION_DEPTH} deep"
                    ));
                }
                if let SetExpr::SetOperation { left, right, .. } = body {
                    pending.push((left, depth + 1));
                    pending.push((right, depth + 1));
                }
            }
            ControlFlow::Continue(())
        }

        fn pre_visit_expr(&mut self, _: &datafusion::sql::sqlparser::ast::Expr) -> ControlFlow<String> {
            self.0 += 1;
            if self.0 > MAX_EXPRESSION_DEPTH {
                return ControlFlow::Break(format!(
                    "expressions nested more than {MAX_EXPRESSION_DEPTH} deep (a long chain of operators \
                     such as `a OR b OR ...` or `1 + 1 + ...` nests one level per operator); \
                     use `IN (...)` for a list of values, or shorten the expression"
                ));
            }
            ControlFlow::Continue(())
        }

        fn post_visit_expr(&mut self, _: &datafusion::sql::sqlparser::ast::Expr) -> ControlFlow<String> {
            self.0 -= 1;
            ControlFlow::Continue(())
        }
    }

    let mut statement = statement;
    loop {
        match statement {
            Statement::Statement(inner) => return inner.visit(&mut Depth(0)).break_value(),
            Statement::Explain(explain) => statement = &explain.statement,
            // Refused as statements that are not queries.
            _ => return None,
        }
    }
}

/// Refuses the forms of `EXPLAIN` that show more than the caller may read. `EXPLAIN ANALYZE`
/// runs the query and reports the scan's metrics, counted before the caller's scope applies
/// (rows pruned across every unit's files) and naming the server's files; `EXPLAIN VERBOSE` and
/// `EXPLAIN FORMAT TREE` show the physical plan, which lists those files. Plain `EXPLAIN` shows
/// the logical plan alone (the session sets `datafusion.explain.logical_plan_only`): tables,
/// filters and projections, no paths and no statistics.
fn check_explain(plan: &LogicalPlan) -> QueryResult<()> {
    use datafusion::common::format::ExplainFormat;
    let refused = match plan {
        LogicalPlan::Analyze(_) => Some("EXPLAIN ANALYZE"),
        LogicalPlan::Explain(explain) if explain.verbose => Some("EXPLAIN VERBOSE"),
        LogicalPlan::Explain(explain) if matches!(explain.explain_format, ExplainFormat::Tree) => {
            Some("EXPLAIN FORMAT TREE")
        }
        _ => None,
    };
    match refused {
        Some(what) => Err(bad(format!(
            "{what} is not available: it shows the server's files and counts rows outside what you may \
             read; use plain EXPLAIN for the logical plan"
        ))),
        None => Ok(()),
    }
}

/// Refuses a `GROUP BY` that makes more than [`MAX_GROUPING_SETS`] grouping sets.
fn check_grouping_sets(plan: &LogicalPlan) -> QueryResult<()> {
    use datafusion::logical_expr::GroupingSet;
    let mut refused = None;
    plan.apply_with_subqueries(|node| {
        let LogicalPlan::Aggregate(aggregate) = node else {
            return Ok(TreeNodeRecursion::Continue);
        };
        let sets = aggregate.group_expr.iter().fold(1u128, |sets, expr| {
            let these = match expr {
                Expr::GroupingSet(GroupingSet::Cube(columns)) => {
                    1u128.checked_shl(columns.len() as u32).unwrap_or(u128::MAX)
                }
                Expr::GroupingSet(GroupingSet::Rollup(columns)) => columns.len() as u128 + 1,
                Expr::GroupingSet(GroupingSet::GroupingSets(sets)) => sets.len() as u128,
                _ => 1,
            };
            sets.saturating_mul(these)
        });
        if sets > MAX_GROUPING_SETS {
            refused = Some(format!(
                "the GROUP BY makes more than {MAX_GROUPING_SETS} grouping sets (CUBE of n columns makes 2^n); \
                 group by fewer columns"
            ));
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    match refused {
        Some(message) => Err(bad(message)),
        None => Ok(()),
    }
}

/// The message of a panic, as `panic!` or an `unwrap` left it.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// The end of a query's task that returned nothing: a panic of the query engine on this query
/// is the query's (a bug DataFusion or Arrow has with what it asks, e.g. a cast to a dictionary
/// of strings keyed by strings); a task cancelled otherwise is ours.
fn join_error(err: tokio::task::JoinError) -> QueryError {
    if !err.is_panic() {
        return QueryError::DataFusion(DataFusionError::ExecutionJoin(Box::new(err)));
    }
    let message = panic_message(err.into_panic().as_ref());
    tracing::warn!(panic = %message, "the query engine panicked on a query");
    bad(format!("the query engine failed on this query: {message}"))
}

/// The threads user queries run on, apart from the server's own: a query that computes for
/// long without yielding (folding a huge constant, a cross join) cannot be interrupted, but it
/// then holds one of these threads, not the ones that answer requests and fire time limits. Their
/// stacks are large ([`SQL_STACK_BYTES`]): parsing, planning and optimizing recurse over the
/// query, and a stack overflow aborts the whole process rather than failing the query.
fn sql_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        // A few more threads than cores: a short query still gets one while a long batch runs.
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get).max(2) + 2;
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("voxpop-sql")
            .thread_stack_size(SQL_STACK_BYTES)
            .enable_all()
            .build()
            .expect("the SQL runtime starts")
    })
}

/// Aborts the task of a running query when the query's future is dropped: on the time limit,
/// or when the client that asked goes away.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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

/// Whether a unit code (`unit_code` of the weekly reports) is `scope` or a unit under it: a
/// commune's villages (`00004-001`), a province's communes and their villages. The same test as
/// exports apply ([`voxpop_schema::workflow::covers`]); a commune's province is found in the code
/// lists, not in its code.
fn within_unit(scope: &str) -> datafusion::logical_expr::ScalarUDF {
    let scope = scope.to_owned();
    create_udf(
        "within_unit",
        vec![DataType::Utf8],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let input = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
            let units = Units::embedded();
            let output: BooleanArray = as_string_array(&input)?
                .iter()
                .map(|unit| Some(unit.is_some_and(|unit| voxpop_schema::workflow::covers(units, &scope, unit))))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(output) as ArrayRef))
        }),
    )
}

impl PetitionQueries {
    /// The session a query runs in: the caller's view of the lake and the code lists.
    async fn sql_session(&self, request: &SqlRequest) -> QueryResult<SessionContext> {
        // A runtime of its own per query: its memory pool and its spill files bound this query alone.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(MEMORY_LIMIT_BYTES, 1.0)
            .with_max_temp_directory_size(MAX_SPILL_BYTES)
            .build_arc()?;
        // `EXPLAIN` shows the logical plan alone: the physical plan names the lake's files.
        let mut config = SessionConfig::new();
        config.options_mut().explain.logical_plan_only = true;
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_optimizer_rules(optimizer_rules())
            .build();
        let ctx = SessionContext::new_with_state(state);
        guarded::register(&ctx);
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
        let (numbers, name, email, phone) = (
            string_udf("mask_numbers", mask_numbers),
            string_udf("mask_name", mask_name),
            string_udf("mask_email", mask_email),
            // A phone in a field of its own is hidden whatever its separators, as the API
            // hides it (`0912  345 678` reads as two short runs to the free-text masking).
            string_udf("mask_phone", mask_phone),
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
                    "title" | "body" => numbers.call(vec![column]).alias(name_),
                    "contact_phone" => phone.call(vec![column]).alias(name_),
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
        // The weekly reports, next to the petitions table in the lake (no personal data): a row
        // per unit, so limited to the caller's unit and the units under it, as exports are.
        if let Some(frame) = lake_frame(&ctx, &lake.join(voxpop_schema::reports::TABLE_NAME)).await? {
            let frame = match request.commune.as_ref().or(request.province.as_ref()) {
                Some(scope) => frame.filter(within_unit(scope).call(vec![col("unit_code")]))?,
                None => frame,
            };
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
        // without personal data, people's names as initials (a village's name is no one's), the
        // digits of phones and ID numbers hidden but the last three, birth years left out: as
        // the registers API shows them.
        if let Some(frame) = lake_frame(&ctx, &lake.join(voxpop_schema::registers::TABLE_NAME)).await? {
            let frame = scoped(frame, request)?;
            let people_named =
                when(col(voxpop_schema::registers::PARTITION_COLUMN).eq(lit("person")), name.call(vec![col("name")]))
                    .otherwise(col("name"))?
                    .alias("name");
            let fields: Vec<String> = frame.schema().fields().iter().map(|f| f.name().clone()).collect();
            let columns: Vec<Expr> = fields
                .iter()
                .map(|field| match field.as_str() {
                    _ if request.personal_data => col(field.as_str()),
                    "name" => people_named.clone(),
                    "phone" => phone.call(vec![col("phone")]).alias("phone"),
                    "person_id" => string_udf("mask_person_id", voxpop_schema::privacy::mask_person_id)
                        .call(vec![col("person_id")])
                        .alias("person_id"),
                    "birth_year" => lit(datafusion::scalar::ScalarValue::Int32(None)).alias("birth_year"),
                    _ => col(field.as_str()),
                })
                .collect();
            ctx.register_table(voxpop_schema::registers::TABLE_NAME, frame.select(columns)?.into_view())?;
        }
        Ok(ctx)
    }

    /// Runs one read-only query within its time limit: planning, execution and reading the
    /// result all count, and on the limit the query's task is aborted, not left running.
    pub async fn sql(&self, request: &SqlRequest) -> QueryResult<SqlResult> {
        check_request(request)?;
        let timeout = request.timeout.min(MAX_TIMEOUT);
        if let Some(workers) = self.sql_workers.get() {
            return workers.run(request, timeout).await;
        }
        tokio::time::timeout(timeout, self.run_sql(request)).await.map_err(|_| timed_out(timeout))?
    }

    /// [`PetitionQueries::sql`] with the result encoded in `format` within the same time limit,
    /// where the query ran: in its worker process when there is one, so that the memory encoding
    /// takes is bounded with the query's, and the work ends at the time limit.
    pub async fn sql_encoded(&self, request: &SqlRequest, format: SqlFormat) -> QueryResult<EncodedResult> {
        let mut request = request.clone();
        request.format = Some(format);
        check_request(&request)?;
        let timeout = request.timeout.min(MAX_TIMEOUT);
        if let Some(workers) = self.sql_workers.get() {
            return workers.run_encoded(&request, format, timeout).await;
        }
        let started = Instant::now();
        let answer = async {
            let result = self.run_sql(&request).await?;
            // Encoding is CPU work: off the async workers (bounded by the cap, not cancelled).
            let mut encoded =
                tokio::task::spawn_blocking(move || EncodedResult::of(&result, format)).await.map_err(join_error)??;
            encoded.elapsed = started.elapsed();
            Ok(encoded)
        };
        tokio::time::timeout(timeout, answer).await.map_err(|_| timed_out(timeout))?
    }

    async fn run_sql(&self, request: &SqlRequest) -> QueryResult<SqlResult> {
        let started = Instant::now();
        let ctx = self.sql_session(request).await?;
        let (sql, format, max_rows) = (request.sql.clone(), request.format, request.max_rows);
        // Everything the query's text drives (parsing, planning, optimizing, executing) runs as
        // a task of its own on the SQL threads: their stacks hold deep plans, a panic of the
        // engine ends this task and not a thread of the server, the time limit holds while an
        // operator computes without yielding, and dropping this future aborts the task.
        let task = sql_runtime().spawn(async move {
            let frame = plan(&ctx, &sql).await?;
            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            if let Some(format) = format {
                format.check(&schema)?;
            }
            let mut stream = frame.execute_stream().await.map_err(query_error)?;
            let mut batches = Vec::new();
            let (mut rows, mut bytes, mut truncated) = (0usize, 0usize, false);
            while let Some(batch) = stream.next().await {
                let mut batch = batch.map_err(query_error)?;
                if rows + batch.num_rows() > max_rows {
                    batch = batch.slice(0, max_rows - rows);
                    truncated = true;
                }
                bytes += result_bytes(&batch);
                if bytes > MAX_RESULT_BYTES {
                    return Err(bad(format!(
                        "the result is larger than {} MiB; select fewer or shorter columns, or add a LIMIT",
                        MAX_RESULT_BYTES >> 20
                    )));
                }
                rows += batch.num_rows();
                batches.push(batch);
                if truncated {
                    break;
                }
            }
            Ok::<_, QueryError>((schema, batches, rows, truncated))
        });
        let _abort = AbortOnDrop(task.abort_handle());
        let (schema, batches, rows, truncated) = task.await.map_err(join_error)??;
        Ok(SqlResult { schema, batches, rows, truncated, elapsed: started.elapsed() })
    }
}

/// What is refused before a query is started anywhere.
fn check_request(request: &SqlRequest) -> QueryResult<()> {
    if request.sql.trim().is_empty() {
        return Err(bad("empty query"));
    }
    if request.sql.len() > MAX_SQL_BYTES {
        return Err(bad(format!("at most {} KiB of query text", MAX_SQL_BYTES >> 10)));
    }
    if request.max_rows > MAX_ROWS {
        return Err(QueryError::BadRequest {
            field: "max_rows",
            message: format!("at most {MAX_ROWS} rows per query; page with LIMIT/OFFSET or export the dataset"),
        });
    }
    Ok(())
}

/// The read-only plan of `sql` in `ctx`, refused where the text nests too deep
/// ([`too_deep`]), is not a query, or groups by too many grouping sets.
async fn plan(ctx: &SessionContext, sql: &str) -> QueryResult<datafusion::dataframe::DataFrame> {
    let state = ctx.state();
    let refused = |err: DataFusionError| {
        let message = err.find_root().strip_backtrace();
        if message.contains("not supported") {
            bad(format!("read-only SQL: only queries (SELECT, WITH, VALUES, EXPLAIN) are allowed ({message})"))
        } else {
            bad(message)
        }
    };
    let dialect = state.config().options().sql_parser.dialect;
    let statement = state.sql_to_statement(sql, &dialect).map_err(refused)?;
    if let Some(what) = too_deep(&statement) {
        return Err(bad(format!("the query is too deep to plan: {what}")));
    }
    let plan = state.statement_to_plan(statement).await.map_err(refused)?;
    let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
    options.verify_plan(&plan).map_err(refused)?;
    check_explain(&plan)?;
    check_grouping_sets(&plan)?;
    Ok(datafusion::dataframe::DataFrame::new(state, plan))
}

/// Rows as JSON objects: [`SqlFormat::Json`]'s encoding read back, with its refusals.
pub fn to_json_rows(result: &SqlResult) -> QueryResult<serde_json::Value> {
    let bytes = SqlFormat::Json.encode(result)?;
    serde_json::from_slice(&bytes).map_err(|err| QueryError::Export(err.to_string()))
}

/// Rows as one JSON array of objects, as bytes: what the HTTP answer embeds without building a
/// tree of every value in memory.
pub fn to_json_array(result: &SqlResult) -> QueryResult<Vec<u8>> {
    SqlFormat::Json.encode(result)
}

/// Rows as CSV with a header.
pub fn to_csv(result: &SqlResult) -> QueryResult<Vec<u8>> {
    SqlFormat::Csv.encode(result)
}

/// Rows as an Arrow IPC stream (what pandas, polars and ADBC read without conversion).
pub fn to_arrow_ipc(result: &SqlResult) -> QueryResult<Vec<u8>> {
    SqlFormat::Arrow.encode(result)
}

/// Rows as one Parquet file.
pub fn to_parquet(result: &SqlResult) -> QueryResult<Vec<u8>> {
    SqlFormat::Parquet.encode(result)
}

/// Most bytes one encoded answer may take (256 MiB): the result's Arrow data is at most
/// [`MAX_RESULT_BYTES`], but text can take many times more.
pub const MAX_ENCODED_BYTES: usize = 256 * 1024 * 1024;

/// Rows the text encoders take at a time: they build each piece whole before writing it out, and
/// a batch of 8,192 rows of a dictionary holding one long value is gigabytes as text.
const TEXT_ROWS_AT_ONCE: usize = 256;

/// A buffer that fails the writer writing into it once it would pass `cap` bytes.
struct CappedBuffer {
    bytes: Vec<u8>,
    cap: usize,
    exceeded: bool,
}

impl std::io::Write for CappedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len().saturating_add(buf.len()) > self.cap {
            self.exceeded = true;
            return Err(std::io::Error::other("the encoded result passed its cap"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The rows of `result`, [`TEXT_ROWS_AT_ONCE`] at a time (zero-copy slices).
fn text_pieces(result: &SqlResult) -> impl Iterator<Item = RecordBatch> + '_ {
    result.batches.iter().flat_map(|batch| {
        (0..batch.num_rows())
            .step_by(TEXT_ROWS_AT_ONCE)
            .map(move |offset| batch.slice(offset, TEXT_ROWS_AT_ONCE.min(batch.num_rows() - offset)))
    })
}

fn write_json_array(result: &SqlResult, out: &mut CappedBuffer) -> QueryResult<()> {
    let temporal = TemporalEncoders::default();
    let failed = temporal.failed.clone();
    let mut writer = datafusion::arrow::json::WriterBuilder::new()
        .with_encoder_factory(Arc::new(temporal))
        .build::<_, datafusion::arrow::json::writer::JsonArray>(&mut *out);
    for piece in text_pieces(result) {
        writer.write(&piece).map_err(DataFusionError::from)?;
        if let Some(err) = TemporalEncoders::take(&failed) {
            return Err(DataFusionError::from(err).into());
        }
    }
    writer.finish().map_err(DataFusionError::from)?;
    drop(writer);
    if out.bytes.is_empty() {
        out.bytes.extend_from_slice(b"[]");
        return Ok(());
    }
    // Checked without building it: what is embedded must be JSON.
    serde_json::from_slice::<serde::de::IgnoredAny>(&out.bytes).map_err(|err| QueryError::Export(err.to_string()))?;
    Ok(())
}

/// The JSON writer's encoders of dates, times, timestamps, durations and intervals, which fail
/// on a value Arrow cannot format (a date past chrono's range). arrow-json's own encoders print
/// such a value as the text `"ERROR: ..."` inside the row and have no option to fail instead;
/// these format the same way and keep the first failure for the writer's caller, who refuses
/// the answer ([`SqlFormat::encode_capped`]) as CSV's writer does. Other types keep arrow-json's
/// encoders: the factory is asked once per column and piece, not per value.
#[derive(Debug, Default)]
struct TemporalEncoders {
    failed: Arc<std::sync::Mutex<Option<ArrowError>>>,
}

impl TemporalEncoders {
    /// The first failure since the last call, if any.
    fn take(failed: &std::sync::Mutex<Option<ArrowError>>) -> Option<ArrowError> {
        failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

impl datafusion::arrow::json::EncoderFactory for TemporalEncoders {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a datafusion::arrow::datatypes::FieldRef,
        array: &'a dyn Array,
        _options: &'a datafusion::arrow::json::EncoderOptions,
    ) -> Result<Option<datafusion::arrow::json::writer::NullableEncoder<'a>>, ArrowError> {
        if !array.data_type().is_temporal() {
            return Ok(None);
        }
        let options = datafusion::arrow::util::display::FormatOptions::new().with_display_error(false);
        let formatter = datafusion::arrow::util::display::ArrayFormatter::try_new(array, &options)?;
        let encoder = TemporalEncoder { formatter, failed: self.failed.clone() };
        Ok(Some(datafusion::arrow::json::writer::NullableEncoder::new(Box::new(encoder), array.nulls().cloned())))
    }
}

/// One column of temporal values as JSON strings (see [`TemporalEncoders`]).
struct TemporalEncoder<'a> {
    formatter: datafusion::arrow::util::display::ArrayFormatter<'a>,
    failed: Arc<std::sync::Mutex<Option<ArrowError>>>,
}

impl datafusion::arrow::json::Encoder for TemporalEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        /// Formatted text straight into the output (temporal values need no JSON escaping).
        struct Text<'b>(&'b mut Vec<u8>);
        impl std::fmt::Write for Text<'_> {
            fn write_str(&mut self, text: &str) -> std::fmt::Result {
                self.0.extend_from_slice(text.as_bytes());
                Ok(())
            }
        }
        out.push(b'"');
        if let Err(err) = self.formatter.value(idx).write(&mut Text(out)) {
            self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_or_insert(err);
        }
        out.push(b'"');
    }
}

fn write_csv(result: &SqlResult, out: &mut CappedBuffer) -> QueryResult<()> {
    let mut pieces = text_pieces(result).peekable();
    if pieces.peek().is_none() {
        let header: Vec<&str> = result.schema.fields().iter().map(|f| f.name().as_str()).collect();
        std::io::Write::write_all(out, format!("{}\n", header.join(",")).as_bytes())
            .map_err(|err| DataFusionError::from(ArrowError::from(err)))?;
        return Ok(());
    }
    let mut writer = datafusion::arrow::csv::WriterBuilder::new().with_header(true).build(&mut *out);
    for piece in pieces {
        writer.write(&piece).map_err(DataFusionError::from)?;
    }
    Ok(())
}

fn write_arrow_ipc(result: &SqlResult, out: &mut CappedBuffer) -> QueryResult<()> {
    let mut writer = datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut *out, &result.schema)
        .map_err(DataFusionError::from)?;
    for batch in &result.batches {
        writer.write(batch).map_err(DataFusionError::from)?;
    }
    writer.finish().map_err(DataFusionError::from)?;
    Ok(())
}

fn write_parquet(result: &SqlResult, out: &mut CappedBuffer) -> QueryResult<()> {
    let export = |err: datafusion::parquet::errors::ParquetError| QueryError::Export(err.to_string());
    let mut writer =
        datafusion::parquet::arrow::ArrowWriter::try_new(&mut *out, result.schema.clone(), None).map_err(export)?;
    for batch in &result.batches {
        writer.write(batch).map_err(export)?;
    }
    writer.close().map_err(export)?;
    Ok(())
}

/// A text table for terminals.
pub fn to_table(result: &SqlResult) -> QueryResult<String> {
    Ok(datafusion::arrow::util::pretty::pretty_format_batches(&result.batches)
        .map_err(datafusion::error::DataFusionError::from)?
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queries(dir: &tempfile::TempDir) -> PetitionQueries {
        PetitionQueries::new(&dir.path().join("lake").join("petitions"))
    }

    async fn refused(queries: &PetitionQueries, request: &SqlRequest) -> (&'static str, String) {
        match queries.sql(request).await {
            Err(QueryError::BadRequest { field, message }) => (field, message),
            other => panic!("{}: expected a bad request, got {other:?}", request.sql),
        }
    }

    /// A lake holding `petitions` in its `petitions` table, written as the pipeline writes it
    /// (Delta, partitioned by week), and the queries over it.
    async fn lake_with(dir: &tempfile::TempDir, petitions: &[voxpop_schema::Petition]) -> PetitionQueries {
        let path = dir.path().join("lake").join("petitions");
        std::fs::create_dir_all(&path).unwrap();
        let url = deltalake::ensure_table_uri(std::fs::canonicalize(&path).unwrap().to_string_lossy()).unwrap();
        let table = deltalake::DeltaTableBuilder::from_url(url).unwrap().build().unwrap();
        let batch = voxpop_schema::petition::to_record_batch(petitions).unwrap();
        table.write(vec![batch]).with_partition_columns([voxpop_schema::petition::PARTITION_COLUMN]).await.unwrap();
        PetitionQueries::new(&path)
    }

    /// Three demo petitions of commune 00004 and two web petitions of another province's
    /// commune, all received in week 2025-W38.
    fn two_communes() -> Vec<voxpop_schema::Petition> {
        let at = chrono::DateTime::parse_from_rfc3339("2025-09-16T08:00:00Z").unwrap().to_utc();
        let ours = (0..3).map(|n| {
            voxpop_schema::Petition::builder().title(&format!("Kiến nghị {n}")).commune("00004").received_at(at).build()
        });
        let theirs = (0..2).map(|n| {
            voxpop_schema::Petition::builder()
                .title(&format!("Bí mật {n}"))
                .commune("21529")
                .channel(voxpop_schema::Channel::Web)
                .received_at(at)
                .build()
        });
        ours.chain(theirs).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runtime_errors_of_the_query_are_the_callers() {
        let dir = tempfile::tempdir().unwrap();
        let queries = queries(&dir);
        for (sql, expected) in [
            ("SELECT 1/0", "Divide by zero"),
            ("SELECT CAST('abc' AS INT)", "Cannot cast string 'abc'"),
            ("SELECT CAST('notadate' AS TIMESTAMP)", "notadate"),
            ("SELECT regexp_match('a','(')", "unclosed group"),
            ("SELECT sqrt(-1)", "square root"),
            ("SELECT CAST(1e38 AS DECIMAL(38,0))*10", "Overflow"),
            ("SELECT to_timestamp(9223372036854775807)", "exceeds"),
            ("SELECT substr('abc',-5,-1)", "negative"),
            ("SELECT chr(99999999)", "Unicode"),
            ("SELECT to_char(now(),'%Q')", "Format error"),
            ("SELECT date_trunc('fortnight',now())", "fortnight"),
            ("SELECT CAST(name AS INT) FROM provinces", "Cannot cast string"),
        ] {
            let (field, message) = refused(&queries, &SqlRequest::new(sql)).await;
            assert_eq!(field, "sql", "{sql}");
            assert!(message.contains(expected), "{sql}: {message}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn filters_that_fail_inside_the_parquet_reader_are_the_callers() {
        let dir = tempfile::tempdir().unwrap();
        let queries = lake_with(&dir, &two_communes()).await;
        for (sql, expected) in [
            ("SELECT count(*) FROM petitions WHERE CAST(title AS INT) = 1", "row it read: Cannot cast string 'Kiến"),
            ("SELECT count(*) FROM petitions WHERE to_timestamp(title) > now()", "parsing timestamp from 'Kiến"),
            ("SELECT count(*) FROM petitions WHERE 1/(CASE WHEN channel='demo' THEN 1 ELSE 0 END)=1", "Divide by zero"),
        ] {
            let (field, message) = refused(&queries, &SqlRequest::new(sql)).await;
            assert_eq!(field, "sql", "{sql}");
            assert!(message.contains(expected), "{sql}: {message}");
        }
        // The same filters over rows they hold for run as before.
        let result = queries
            .sql(&SqlRequest::new(
                "SELECT count(*) AS n FROM petitions WHERE 1/(CASE WHEN channel='demo' THEN 1 ELSE 2 END)=1",
            ))
            .await
            .unwrap();
        assert_eq!(to_json_rows(&result).unwrap(), serde_json::json!([{"n": 3}]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn explain_shows_a_scoped_caller_the_logical_plan_alone() {
        let dir = tempfile::tempdir().unwrap();
        let queries = lake_with(&dir, &two_communes()).await;
        let scoped = |sql: &str| {
            let mut request = SqlRequest::new(sql);
            request.commune = Some("00004".into());
            request.province = Some("01".into());
            request
        };
        let query = "SELECT count(*) FROM petitions WHERE received_week = '2025-W38'";
        for (explain, named) in [
            ("EXPLAIN ANALYZE", "EXPLAIN ANALYZE"),
            ("EXPLAIN ANALYZE VERBOSE", "EXPLAIN ANALYZE"),
            ("EXPLAIN VERBOSE", "EXPLAIN VERBOSE"),
            ("EXPLAIN FORMAT TREE", "EXPLAIN FORMAT TREE"),
            ("explain analyze", "EXPLAIN ANALYZE"),
        ] {
            let (field, message) = refused(&queries, &scoped(&format!("{explain} {query}"))).await;
            assert_eq!(field, "sql", "{explain}");
            assert!(message.contains(named) && message.contains("plain EXPLAIN"), "{explain}: {message}");
        }
        let lake = std::fs::canonicalize(dir.path()).unwrap();
        for explain in ["EXPLAIN", "EXPLAIN FORMAT INDENT", "EXPLAIN FORMAT PGJSON", "EXPLAIN FORMAT GRAPHVIZ"] {
            let result = queries.sql(&scoped(&format!("{explain} {query}"))).await.unwrap();
            let text = to_json_rows(&result).unwrap().to_string();
            assert!(text.contains("logical_plan") || text.contains("Plan"), "{explain}: {text}");
            for leak in ["physical_plan", ".parquet", "file_groups", "rows_pruned", "statistics"] {
                assert!(!text.contains(leak), "{explain} shows {leak}: {text}");
            }
            assert!(!text.contains(lake.to_string_lossy().as_ref()), "{explain} shows the lake's path: {text}");
            assert!(!text.contains(dir.path().to_string_lossy().as_ref()), "{explain} shows the lake's path: {text}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sql_results_are_bounded_in_bytes_before_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let queries = queries(&dir);
        // A literal count too large is refused before it is folded into one huge constant.
        for sql in ["SELECT repeat('a', 2000000000)", "SELECT lpad('a', 2147483647)", "SELECT rpad('a', 200000000)"] {
            let (field, message) = refused(&queries, &SqlRequest::new(sql)).await;
            assert_eq!(field, "sql");
            assert!(message.contains("64 MiB"), "{sql}: {message}");
        }
        // A constant folded larger than a result may be.
        let (_, message) = refused(&queries, &SqlRequest::new("SELECT repeat('ab', 40000000)")).await;
        assert!(message.contains("64 MiB"), "{message}");
        // Many rows of moderate values: counted batch by batch.
        let mut request = SqlRequest::new("SELECT repeat('a', 1000) AS r FROM generate_series(1, 200000)");
        request.max_rows = MAX_ROWS;
        let (_, message) = refused(&queries, &request).await;
        assert!(message.contains("LIMIT"), "{message}");
        // Under the limit the rows come back.
        let mut request = SqlRequest::new("SELECT repeat('a', 1000) AS r FROM generate_series(1, 1000)");
        request.max_rows = MAX_ROWS;
        assert_eq!(queries.sql(&request).await.unwrap().rows, 1000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sql_time_limit_answers_on_time() {
        let dir = tempfile::tempdir().unwrap();
        let queries = queries(&dir);
        let mut request = SqlRequest::new(
            "SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b WHERE a.value + b.value = 7",
        );
        request.timeout = Duration::from_secs(1);
        let started = Instant::now();
        let (field, message) = refused(&queries, &request).await;
        assert_eq!(field, "sql");
        assert!(message.contains("longer than 1 s"), "{message}");
        assert!(started.elapsed() < Duration::from_secs(3), "answered after {:?}", started.elapsed());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deep_expressions_are_refused_before_planning() {
        let dir = tempfile::tempdir().unwrap();
        let queries = queries(&dir);
        let chain = |terms: usize, term: &str, operator: &str| vec![term; terms].join(operator);
        for sql in [
            format!("SELECT {}", chain(2_000, "1", "+")),
            format!("SELECT * FROM petitions WHERE {}", chain(3_000, "id='0'", " OR ")),
            // What a 256 KiB body holds, and twice that.
            format!("SELECT {}", chain(100_000, "1", "+")),
            format!("SELECT {}", chain(MAX_SQL_BYTES / 2 - 8, "1", "+")),
            chain(1_500, "SELECT 1", " UNION ALL "),
        ] {
            let (field, message) = refused(&queries, &SqlRequest::new(&sql)).await;
            assert_eq!(field, "sql");
            assert!(message.contains("1000 deep"), "{}: {message}", &sql[..40]);
        }
        let (field, message) =
            refused(&queries, &SqlRequest::new(&format!("SELECT {}", chain(MAX_SQL_BYTES, "1", "+")))).await;
        assert_eq!(field, "sql");
        assert!(message.contains("512 KiB"), "{message}");
        // Within the limit the query runs.
        let result = queries.sql(&SqlRequest::new(&format!("SELECT {} AS n", chain(500, "1", "+")))).await.unwrap();
        assert_eq!(result.rows, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn panics_of_the_engine_are_the_querys_fault() {
        let dir = tempfile::tempdir().unwrap();
        let queries = queries(&dir);
        // Arrow cannot make even a null of a dictionary keyed by strings, and panics trying: here
        // while the result's type is checked against the format.
        let mut request = SqlRequest::new("SELECT arrow_cast(1, 'Dictionary(Utf8, Int32)')");
        request.format = Some(SqlFormat::Json);
        let (field, message) = refused(&queries, &request).await;
        assert_eq!(field, "sql");
        assert!(message.starts_with("the query engine failed on this query: "), "{message}");
        // The SQL threads are still there for the next query.
        assert_eq!(queries.sql(&SqlRequest::new("SELECT 1")).await.unwrap().rows, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn growing_functions_are_refused_before_they_compute() {
        let dir = tempfile::tempdir().unwrap();
        let queries = queries(&dir);
        let started = Instant::now();
        for (sql, expected) in [
            ("SELECT length(range(1, 1000000000))", "`range`"),
            ("SELECT range(1, 1000000000)", "`range`"),
            ("SELECT generate_series(1, 1000000000)", "`generate_series`"),
            ("SELECT cardinality(array_repeat(1, 1000000000))", "`array_repeat`"),
            ("SELECT levenshtein(repeat('a', 100000), repeat('b', 100000))", "`levenshtein`"),
            // Counts from columns, which no literal check sees.
            ("SELECT length(repeat(name, CAST(code AS INT) * 1000)) FROM communes", "`repeat`"),
            ("SELECT length(lpad(name, 100000)) FROM communes", "`lpad`"),
            ("SELECT cardinality(range(0, CAST(code AS BIGINT) * 1000)) FROM communes", "`range`"),
        ] {
            let (field, message) = refused(&queries, &SqlRequest::new(sql)).await;
            assert_eq!(field, "sql");
            assert!(message.contains(expected), "{sql}: {message}");
        }
        assert!(started.elapsed() < Duration::from_secs(10), "answered after {:?}", started.elapsed());
        // Within the limits they answer as before.
        let result = queries.sql(&SqlRequest::new("SELECT cardinality(range(1, 1000)) AS n, levenshtein('kitten', 'sitting') AS d, lpad('7', 3, '0') AS p")).await.unwrap();
        let json = to_json_rows(&result).unwrap();
        assert_eq!(json, serde_json::json!([{"n": 999, "d": 3, "p": "007"}]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn copying_functions_are_refused_beyond_what_a_result_may_hold() {
        let dir = tempfile::tempdir().unwrap();
        let queries = queries(&dir);
        let started = Instant::now();
        let forty = |term: &str| vec![term; 40].join(",");
        for (sql, expected) in [
            // Sizes that take an unoptimised build no more than a second to make: the guards
            // refuse by what the function would add, whatever the arguments' own sizes.
            ("SELECT length(replace(repeat('a',1000),'a',repeat('b',100000)))".to_owned(), "`replace`"),
            (format!("SELECT length(replace(repeat('a',700000),'a','{}'))", "b".repeat(100)), "`replace`"),
            (
                format!("SELECT length(regexp_replace(repeat('a',2000000),'a','{}','g'))", "b".repeat(59)),
                "`regexp_replace`",
            ),
            (
                "SELECT length(regexp_replace(repeat('a',1000000),'a',repeat('b',10000),'g'))".to_owned(),
                "`regexp_replace`",
            ),
            // Three arguments of 60 MB add 120 MB to the largest: past the limit, without the
            // seconds an unoptimised build takes to fold forty of them first.
            (format!("SELECT length(concat({}))", ["repeat('b',60000000)"; 3].join(",")), "`concat`"),
            (format!("SELECT length(concat_ws(repeat('b',60000000),{}))", forty("'x'")), "`concat_ws`"),
            (
                "SELECT length(array_to_string(array_repeat(repeat('x',1000),100),repeat('y',1000000)))".to_owned(),
                "`array_to_string`",
            ),
            // From a column, past constant folding.
            ("SELECT length(replace(name, 'a', repeat('b', 10000000))) FROM communes".to_owned(), "`replace`"),
        ] {
            let (field, message) = refused(&queries, &SqlRequest::new(&sql)).await;
            assert_eq!(field, "sql");
            assert!(message.contains(expected), "{}: {message}", &sql[..60]);
        }
        assert!(started.elapsed() < Duration::from_secs(60), "answered after {:?}", started.elapsed());
        // Ordinary uses answer as before.
        let sql = "SELECT length(regexp_replace(repeat('a  b ', 4000), '\\s+', ' ', 'g')) AS r, \
                   replace('a-b', '-', '+') AS p, concat('a', NULL, 'b') AS c, concat_ws('/', 'x', name) AS w, \
                   array_to_string([1, 2, 3], ',') AS s FROM provinces LIMIT 1";
        let result = queries.sql(&SqlRequest::new(sql)).await.unwrap();
        let row = &to_json_rows(&result).unwrap()[0];
        assert_eq!(
            (&row["r"], &row["p"], &row["c"], &row["s"]),
            (
                &serde_json::json!(16000),
                &serde_json::json!("a+b"),
                &serde_json::json!("ab"),
                &serde_json::json!("1,2,3")
            ),
            "{row}"
        );
        assert!(row["w"].as_str().unwrap().starts_with("x/"), "{row}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grouping_sets_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let queries = queries(&dir);
        let columns: Vec<String> = (0..14).map(|n| format!("c{n}")).collect();
        let sql = format!(
            "SELECT count(*) FROM (SELECT {}) GROUP BY CUBE ({})",
            columns.iter().map(|c| format!("1 AS {c}")).collect::<Vec<_>>().join(", "),
            columns.join(", ")
        );
        let (field, message) = refused(&queries, &SqlRequest::new(&sql)).await;
        assert_eq!(field, "sql");
        assert!(message.contains("4096 grouping sets"), "{message}");
        let result = queries
            .sql(&SqlRequest::new("SELECT code, count(*) FROM provinces GROUP BY CUBE (code, name)"))
            .await
            .unwrap();
        assert!(result.rows > 0);
    }

    #[test]
    fn weekly_reports_are_seen_from_the_unit_down() {
        let unit_codes = Arc::new(StringArray::from(vec![
            Some("00004"),
            Some("00004-001"),
            Some("00127"),
            Some("01"),
            Some("00"),
            Some("000041"),
            None,
        ]));
        let visible = |scope: &str| -> Vec<bool> {
            let ColumnarValue::Array(array) = within_unit(scope)
                .invoke_with_args(datafusion::logical_expr::ScalarFunctionArgs {
                    args: vec![ColumnarValue::Array(unit_codes.clone())],
                    arg_fields: vec![Arc::new(Field::new("unit_code", DataType::Utf8, true))],
                    number_rows: unit_codes.len(),
                    return_field: Arc::new(Field::new("within", DataType::Boolean, true)),
                    config_options: Arc::new(datafusion::config::ConfigOptions::default()),
                })
                .unwrap()
            else {
                panic!("an array");
            };
            array.as_any().downcast_ref::<BooleanArray>().unwrap().iter().map(|v| v.unwrap()).collect()
        };
        assert_eq!(visible("00004"), [true, true, false, false, false, false, false]);
        // 00004 is a commune of Hà Nội (01); 00127 is not.
        let province = Units::embedded().commune("00004").unwrap().province_code.clone();
        assert_eq!(
            visible(&province),
            [
                true,
                true,
                Units::embedded().commune("00127").is_some_and(|c| c.province_code == province),
                true,
                false,
                false,
                false
            ]
        );
    }

    #[test]
    fn sql_errors_are_classified_at_their_root() {
        use datafusion::parquet::errors::ParquetError;
        let arrow = |err| DataFusionError::ArrowError(Box::new(err), None);
        let callers = [
            arrow(ArrowError::DivideByZero).context("Optimizer rule 'simplify_expressions' failed"),
            DataFusionError::Execution("negative count".into()),
            DataFusionError::ResourcesExhausted("Failed to allocate".into()),
            DataFusionError::Shared(Arc::new(DataFusionError::Plan("no such column".into()))),
            // A filter pushed into the Parquet reader fails there: its error comes back wrapped.
            DataFusionError::ParquetError(Box::new(ParquetError::External(Box::new(ArrowError::ComputeError(
                "Error evaluating filter predicate: ArrowError(DivideByZero, None)".into(),
            )))))
            .context("reading petitions"),
            arrow(ArrowError::ParquetError(
                "External: Compute error: Error evaluating filter predicate: Execution(\"bad\")".into(),
            )),
            arrow(ArrowError::ExternalError(Box::new(ParquetError::External(Box::new(ArrowError::CastError(
                "Cannot cast string 'a' to value of Int32 type".into(),
            )))))),
            DataFusionError::External(Box::new(ArrowError::DivideByZero)),
        ];
        for err in callers {
            let shown = err.to_string();
            assert!(matches!(query_error(err), QueryError::BadRequest { field: "sql", .. }), "{shown}");
        }
        match query_error(DataFusionError::ParquetError(Box::new(ParquetError::External(Box::new(
            ArrowError::ComputeError("Error evaluating filter predicate: ArrowError(DivideByZero, None)".into()),
        ))))) {
            QueryError::BadRequest { message, .. } => {
                assert_eq!(message, "a condition of the query failed on a row it read: Divide by zero error");
            }
            other => panic!("{other:?}"),
        }
        let text = r#"External: Compute error: Error evaluating filter predicate: ArrowError(CastError("Cannot cast string 'a \"b\"' to value of Int32 type"), Some(""))"#;
        match query_error(arrow(ArrowError::ParquetError(text.into()))) {
            QueryError::BadRequest { message, .. } => {
                assert_eq!(
                    message,
                    r#"a condition of the query failed on a row it read: Cannot cast string 'a "b"' to value of Int32 type"#
                );
            }
            other => panic!("{other:?}"),
        }
        let ours = [
            DataFusionError::Internal("bug".into()),
            DataFusionError::IoError(std::io::Error::other("disk")),
            arrow(ArrowError::IoError("read".into(), std::io::Error::other("disk"))).context("reading"),
            // The reader's own failures: a corrupt or short file, a failed read.
            DataFusionError::ParquetError(Box::new(ParquetError::General("corrupt page header".into()))),
            DataFusionError::ParquetError(Box::new(ParquetError::EOF("unexpected end of file".into()))),
            DataFusionError::ParquetError(Box::new(ParquetError::External(Box::new(std::io::Error::other("read"))))),
            DataFusionError::ParquetError(Box::new(ParquetError::External(Box::new(ArrowError::IoError(
                "read".into(),
                std::io::Error::other("disk"),
            ))))),
            arrow(ArrowError::ParquetError("EOF: file too small".into())),
            arrow(ArrowError::ExternalError(Box::new(std::io::Error::other("read")))),
            DataFusionError::External(Box::new(std::io::Error::other("object store"))),
        ];
        for err in ours {
            assert!(matches!(query_error(err), QueryError::DataFusion(_)));
        }
        match query_error(DataFusionError::ResourcesExhausted("Failed to allocate".into())) {
            QueryError::BadRequest { message, .. } => assert!(message.contains("1024 MiB"), "{message}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_full_disk_is_unavailable_not_the_querys_fault_nor_a_500() {
        let full = || std::io::Error::from_raw_os_error(28);
        let wrapped = DataFusionError::Context("spilling".into(), Box::new(DataFusionError::IoError(full())));
        for err in [
            wrapped,
            DataFusionError::ArrowError(Box::new(ArrowError::IoError("spill".into(), full())), None),
            DataFusionError::Execution("writing a spill file: No space left on device (os error 28)".into()),
        ] {
            match query_error(err) {
                QueryError::Unavailable(message) => assert!(message.contains("disk is full"), "{message}"),
                other => panic!("{other:?}"),
            }
        }
        let other_io = DataFusionError::IoError(std::io::Error::from_raw_os_error(5));
        assert!(matches!(query_error(other_io), QueryError::DataFusion(_)));
    }

    #[test]
    fn values_a_text_format_cannot_print_are_the_querys_fault() {
        let schema = Arc::new(Schema::new(vec![Field::new("t", DataType::Date32, true)]));
        let column = Arc::new(datafusion::arrow::array::Date32Array::from(vec![i32::MAX])) as ArrayRef;
        let batch = RecordBatch::try_new(schema.clone(), vec![column]).unwrap();
        let result = SqlResult { schema, batches: vec![batch], rows: 1, truncated: false, elapsed: Duration::ZERO };
        match SqlFormat::Csv.encode(&result) {
            Err(QueryError::BadRequest { field: "format", message }) => {
                assert!(message.contains("as csv"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(SqlFormat::Arrow.encode(&result).is_ok());
    }

    /// A result of one column `t` holding `column`.
    fn one_column(column: ArrayRef) -> SqlResult {
        let schema = Arc::new(Schema::new(vec![Field::new("t", column.data_type().clone(), true)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![column]).unwrap();
        SqlResult { schema, rows: batch.num_rows(), batches: vec![batch], truncated: false, elapsed: Duration::ZERO }
    }

    #[test]
    fn json_refuses_values_it_cannot_print_rather_than_printing_errors() {
        use datafusion::arrow::array::{
            Date32Array, Date64Array, ListArray, Time32SecondArray, TimestampMicrosecondArray, TimestampSecondArray,
        };
        use datafusion::arrow::datatypes::Date32Type;
        let dates = ListArray::from_iter_primitive::<Date32Type, _, _>([Some([Some(0), Some(i32::MAX)])]);
        for column in [
            Arc::new(Date32Array::from(vec![Some(0), None, Some(i32::MAX)])) as ArrayRef,
            Arc::new(Date32Array::from(vec![i32::MIN])),
            Arc::new(Date64Array::from(vec![i64::MAX])),
            Arc::new(TimestampSecondArray::from(vec![i64::MAX])),
            Arc::new(TimestampMicrosecondArray::from(vec![i64::MIN]).with_timezone("+07:00")),
            Arc::new(Time32SecondArray::from(vec![100_000])),
            Arc::new(dates),
        ] {
            let result = one_column(column.clone());
            for format in [SqlFormat::Json, SqlFormat::Csv] {
                match format.encode(&result) {
                    Err(QueryError::BadRequest { field: "format", message }) => {
                        assert!(message.contains(&format!("as {}", format.name())), "{message}");
                        assert!(!message.contains("ERROR:"), "{message}");
                    }
                    Ok(body) => panic!("{}: {}", column.data_type(), String::from_utf8_lossy(&body)),
                    other => panic!("{}: {other:?}", column.data_type()),
                }
            }
            assert!(
                matches!(to_json_rows(&result), Err(QueryError::BadRequest { field: "format", .. })),
                "{}",
                column.data_type()
            );
        }
    }

    #[test]
    fn json_writes_temporal_values_as_arrow_json_does() {
        use datafusion::arrow::array::{
            Date32Array, Date64Array, DurationMillisecondArray, IntervalMonthDayNanoArray, IntervalYearMonthArray,
            Time64MicrosecondArray, TimestampMicrosecondArray, TimestampNanosecondArray,
        };
        use datafusion::arrow::datatypes::IntervalMonthDayNano;
        for column in [
            Arc::new(Date32Array::from(vec![Some(20_346), None, Some(-719_162)])) as ArrayRef,
            Arc::new(Date64Array::from(vec![1_757_980_800_000])),
            Arc::new(TimestampMicrosecondArray::from(vec![Some(1_757_980_800_123_456), None])),
            Arc::new(TimestampNanosecondArray::from(vec![1_757_980_800_000_000_001]).with_timezone("+07:00")),
            Arc::new(Time64MicrosecondArray::from(vec![3_600_000_001])),
            Arc::new(DurationMillisecondArray::from(vec![-90_061_001])),
            Arc::new(IntervalMonthDayNanoArray::from(vec![IntervalMonthDayNano::new(14, 3, 5_000_000_000)])),
            Arc::new(IntervalYearMonthArray::from(vec![-13])),
        ] {
            let result = one_column(column.clone());
            let mut expected = datafusion::arrow::json::ArrayWriter::new(Vec::new());
            expected.write(&result.batches[0]).unwrap();
            expected.finish().unwrap();
            let expected = String::from_utf8(expected.into_inner()).unwrap();
            assert!(!expected.contains("ERROR"), "{expected}");
            let written = String::from_utf8(SqlFormat::Json.encode(&result).unwrap()).unwrap();
            assert_eq!(written, expected, "{}", column.data_type());
        }
    }

    #[test]
    fn sql_formats_name_the_column_they_cannot_hold() {
        let schema = |data_type: DataType| {
            Schema::new(vec![Field::new("n", DataType::Int64, false), Field::new("c", data_type, true)])
        };
        let map = DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(
                    vec![Field::new("key", DataType::Utf8, false), Field::new("value", DataType::Int64, true)].into(),
                ),
                false,
            )),
            false,
        );
        let structure = DataType::Struct(vec![Field::new("a", DataType::Int64, true)].into());
        let interval = DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano);
        for data_type in [map.clone(), structure.clone()] {
            let err = SqlFormat::Csv.check(&schema(data_type)).unwrap_err();
            assert!(matches!(&err, QueryError::BadRequest { field: "format", message } if message.contains("`c`")));
        }
        assert!(SqlFormat::Parquet.check(&schema(interval.clone())).is_err());
        assert!(SqlFormat::Csv.check(&schema(interval.clone())).is_ok());
        for format in [SqlFormat::Json, SqlFormat::Arrow] {
            for data_type in [map.clone(), structure.clone(), interval.clone()] {
                assert!(format.check(&schema(data_type)).is_ok());
            }
        }
        for format in [SqlFormat::Json, SqlFormat::Csv, SqlFormat::Arrow, SqlFormat::Parquet] {
            assert_eq!(format.unsupported_column(&schema(DataType::Utf8)), None);
        }
    }
}

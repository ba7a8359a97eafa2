//! Data exchange over HTTP: read-only SQL (`POST /api/v1/sql`) and exports as background jobs
//! (`POST /api/v1/exports`, then poll `GET /api/v1/exports/{id}` and download the files).
//!
//! An export can take minutes, so the request only starts it: the answer is `202 Accepted` with
//! the job's URL, which reports the rows written so far and, once done, a download link for
//! `datapackage.json` and each data file.
//!
//! At most [`MAX_RUNNING_EXPORTS`] jobs run at once; past that a new one is a `503` with
//! `Retry-After`. A finished job and its files are kept for [`EXPORT_RETENTION`], then removed
//! (every [`EXPORT_SWEEP_INTERVAL`], when a later job starts, and at server start for the
//! directories earlier processes left).
//! A failed job's files are removed at once.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;
use voxpop_queries::QueryError;
use voxpop_queries::export::{ExportFormat, ExportReport, ExportRequest};
use voxpop_queries::sql::{self, EncodedResult, SqlFormat, SqlRequest};
use voxpop_schema::FieldError;

use crate::http::AppState;
use crate::params::{body_members, member};
use crate::problem::Problem;

fn query_problem(err: QueryError) -> Response {
    match err {
        QueryError::BadRequest { field, message } => Problem::bad_parameter(field, message).into_response(),
        QueryError::Unavailable(message) => {
            tracing::warn!(%message, "a query could not run now");
            Problem::unavailable(message, 60).into_response()
        }
        other => Problem::internal(&other).into_response(),
    }
}

/// The largest `POST /api/v1/sql` body: a query text of [`sql::MAX_SQL_BYTES`] written with
/// JSON's escapes (up to 6 bytes a character), and the other members.
pub const MAX_SQL_REQUEST_BYTES: usize = 6 * sql::MAX_SQL_BYTES + 64 * 1024;

/// A `POST /api/v1/sql` body: `{"sql": "...", "max_rows": .., "timeout_s": ..}`.
#[derive(Debug)]
pub struct SqlBody {
    pub sql: String,
    pub max_rows: Option<usize>,
    pub timeout_s: Option<u64>,
}

impl SqlBody {
    /// Every problem of the body at once, each naming its field.
    pub fn parse(bytes: &[u8]) -> Result<SqlBody, Vec<FieldError>> {
        let (members, mut errors) = body_members(bytes, &["sql", "max_rows", "timeout_s"])?;
        let sql = member::<String>(&members, "sql", "a string holding one query, e.g. \"SELECT ...\"", &mut errors);
        if sql.is_none() && !errors.iter().any(|e| e.field == "sql") {
            errors.push(FieldError::required("sql"));
        }
        let max_rows: Option<usize> =
            member(&members, "max_rows", &format!("a whole number from 0 to {}", sql::MAX_ROWS), &mut errors);
        if max_rows.is_some_and(|rows| rows > sql::MAX_ROWS) {
            let message =
                format!("`max_rows` must be from 0 to {}; page with LIMIT/OFFSET or export the dataset", sql::MAX_ROWS);
            errors.push(FieldError::new("max_rows", "range", message));
        }
        let limit = sql::MAX_TIMEOUT.as_secs();
        let timeout_s: Option<u64> =
            member(&members, "timeout_s", &format!("a whole number of seconds from 1 to {limit}"), &mut errors);
        if timeout_s.is_some_and(|seconds| seconds == 0 || seconds > limit) {
            errors.push(FieldError::new("timeout_s", "range", format!("`timeout_s` must be from 1 to {limit}")));
        }
        match sql {
            Some(sql) if errors.is_empty() => Ok(SqlBody { sql, max_rows, timeout_s }),
            _ => Err(errors),
        }
    }
}

/// `POST /api/v1/sql[?format=json|csv|arrow|parquet]` with `{"sql": "...", "max_rows": .., "timeout_s": ..}`.
///
/// The time limit covers the whole answer: planning, running, reading and encoding the result,
/// all in the query's worker process (the result is at most [`sql::MAX_RESULT_BYTES`] of Arrow
/// data and [`sql::MAX_ENCODED_BYTES`] encoded).
pub async fn run_sql(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: Bytes,
) -> Response {
    let params = match crate::params::known_params(query.as_deref(), &["format"]) {
        Ok(params) => params,
        Err(problem) => return problem.into_response(),
    };
    let format = params.get("format").map_or("json", String::as_str);
    let Some(format) = SqlFormat::parse(format) else {
        return Problem::bad_parameter("format", "`format` must be json, csv, arrow or parquet").into_response();
    };
    let body = match SqlBody::parse(&body) {
        Ok(body) => body,
        Err(errors) => return Problem::invalid(&errors).into_response(),
    };
    let mut request = SqlRequest::new(&body.sql);
    request.max_rows = body.max_rows.unwrap_or(sql::DEFAULT_MAX_ROWS);
    request.timeout = body.timeout_s.map_or(sql::DEFAULT_TIMEOUT, Duration::from_secs);
    request.province = caller.province();
    request.commune = caller.commune();
    request.personal_data = caller.personal_data();
    request.format = Some(format);
    // The time limit covers running and encoding, both where the query ran (its worker process).
    let encoded = match state.queries.sql_encoded(&request, format).await {
        Ok(encoded) => encoded,
        Err(err) => return query_problem(err),
    };
    let truncated = if encoded.truncated { "true" } else { "false" };
    let parts = match format {
        SqlFormat::Json => json_answer(encoded),
        _ => vec![Bytes::from(encoded.body)],
    };
    let length: usize = parts.iter().map(Bytes::len).sum();
    let body = match held_while_sent(parts) {
        Ok(body) => body,
        Err(problem) => return problem.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
            (header::HeaderName::from_static("x-truncated"), truncated.to_owned()),
        ],
        body,
    )
        .into_response()
}

/// The most bytes of SQL answers the server holds while it sends them (1 GiB). One answer is at
/// most [`sql::MAX_ENCODED_BYTES`], but a client may read it as slowly as it likes (only a
/// client that stops reading is cut, `listener::WRITE_STALL_TIMEOUT`): without a bound, a few
/// slow clients could keep gigabytes. Past it a query's answer is a 503, to retry.
const MAX_ANSWERS_HELD_BYTES: usize = 1 << 30;

/// The budget of [`MAX_ANSWERS_HELD_BYTES`], in KiB.
fn answers_held() -> &'static Arc<tokio::sync::Semaphore> {
    static HELD: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    HELD.get_or_init(|| Arc::new(tokio::sync::Semaphore::new(MAX_ANSWERS_HELD_BYTES >> 10)))
}

/// A body sending `parts` in pieces of 256 KiB (slices, no copies) that holds their bytes against
/// [`MAX_ANSWERS_HELD_BYTES`] until it is dropped: sent, or its client gone.
fn held_while_sent(parts: Vec<Bytes>) -> Result<axum::body::Body, Problem> {
    const PIECE: usize = 256 * 1024;
    let size: usize = parts.iter().map(Bytes::len).sum();
    let kib = u32::try_from(size.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
    let held = answers_held().clone().try_acquire_many_owned(kib).map_err(|_| {
        Problem::unavailable(
            format!(
                "the server holds {} MiB of SQL answers that clients are still reading; retry in a minute",
                MAX_ANSWERS_HELD_BYTES >> 20
            ),
            60,
        )
    })?;
    let pieces: Vec<Bytes> = parts
        .into_iter()
        .flat_map(|part| (0..part.len()).step_by(PIECE).map(move |at| part.slice(at..part.len().min(at + PIECE))))
        .collect();
    let stream = futures::stream::iter(pieces).map(move |piece| {
        let _held = &held;
        Ok::<_, std::convert::Infallible>(piece)
    });
    Ok(axum::body::Body::from_stream(stream))
}

/// The JSON answer: the columns, the counts, then the rows as the Arrow JSON writer wrote them,
/// in parts sent one after the other (no tree of every value, no copy of the rows).
fn json_answer(result: EncodedResult) -> Vec<Bytes> {
    let head = json!({
        "columns": result.columns.iter().map(|(name, data_type)| json!({"name": name, "type": data_type})).collect::<Vec<_>>(),
        "row_count": result.rows,
        "truncated": result.truncated,
        "elapsed_ms": result.elapsed.as_millis() as u64,
    });
    let mut head = head.to_string().into_bytes();
    head.pop(); // the object's closing brace: the rows follow
    head.extend_from_slice(b",\"rows\":");
    vec![Bytes::from(head), Bytes::from(result.body), Bytes::from_static(b"}")]
}

/// Where an export job stands.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Running,
    Done,
    Failed,
}

/// How many exports may run at once. Each holds a DataFusion scan, a writer thread and files
/// being written to the data disk: more at once would only share the same CPUs and disk, slow
/// every one of them and the API beside them, and fill the disk faster than the retention
/// empties it. Past this a new export is refused with `503` and `Retry-After`.
pub const MAX_RUNNING_EXPORTS: usize = 2;

/// The `Retry-After` of an export refused while [`MAX_RUNNING_EXPORTS`] run.
pub const EXPORT_RETRY_AFTER_SECONDS: u64 = 30;

/// How long a finished export (its status and its files under `<data>/exports/<id>/`) is kept
/// for its download: a day. Older ones are removed every [`EXPORT_SWEEP_INTERVAL`], when a new
/// export starts, and at server start (directories left by an earlier process, whose jobs this
/// one does not know).
pub const EXPORT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// How often a running server removes expired exports, so that a server nobody exports from
/// again does not keep yesterday's files for ever.
pub const EXPORT_SWEEP_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// The size of the chunks an export file is sent in: a download the client does not read holds
/// about one chunk, not the file.
const DOWNLOAD_CHUNK_BYTES: usize = 64 * 1024;

struct Job {
    status: JobStatus,
    started_at: DateTime<Utc>,
    /// When it ended (done or failed): the retention counts from here.
    finished: Option<std::time::Instant>,
    rows_written: Arc<AtomicU64>,
    report: Option<ExportReport>,
    error: Option<String>,
    dir: PathBuf,
    /// Who started it: only the same token (or anyone in open mode) reads its status and files.
    owner: Option<String>,
}

impl Job {
    fn running(dir: PathBuf, rows_written: Arc<AtomicU64>, owner: Option<String>) -> Job {
        Job {
            status: JobStatus::Running,
            started_at: Utc::now(),
            finished: None,
            rows_written,
            report: None,
            error: None,
            dir,
            owner,
        }
    }
}

/// The export jobs of this process; their files live under `<data>/exports/<id>/`.
pub struct ExportJobs {
    root: PathBuf,
    jobs: Mutex<HashMap<Uuid, Job>>,
}

impl ExportJobs {
    /// The jobs of a starting server: none yet, so the directories under `root` are those of
    /// earlier processes, removed here once older than [`EXPORT_RETENTION`].
    pub fn new(root: PathBuf) -> ExportJobs {
        let jobs = ExportJobs { root, jobs: Mutex::new(HashMap::new()) };
        jobs.remove_expired(EXPORT_RETENTION);
        jobs
    }

    /// Removes the exports older than `retention` every `every` while the server runs (the
    /// server passes [`EXPORT_SWEEP_INTERVAL`] and [`EXPORT_RETENTION`]).
    pub fn spawn_sweeper(jobs: Arc<ExportJobs>, every: Duration, retention: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is at once, and `new` has just swept.
            tick.tick().await;
            loop {
                tick.tick().await;
                let sweeper = jobs.clone();
                match tokio::task::spawn_blocking(move || sweeper.remove_expired(retention)).await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "expired exports removed"),
                    Err(err) => tracing::warn!(error = %err, "removing expired exports failed"),
                }
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Job>> {
        self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The jobs still running.
    fn running(&self) -> usize {
        self.lock().values().filter(|job| matches!(job.status, JobStatus::Running)).count()
    }

    /// Adds the running job `id`, unless [`MAX_RUNNING_EXPORTS`] already run.
    fn admit(&self, id: Uuid, job: Job) -> bool {
        let mut jobs = self.lock();
        if jobs.values().filter(|job| matches!(job.status, JobStatus::Running)).count() >= MAX_RUNNING_EXPORTS {
            return false;
        }
        jobs.insert(id, job);
        true
    }

    /// Forgets the jobs finished more than `retention` ago and removes their directories, and
    /// the directories under the root no job knows of (an earlier process's) last changed more
    /// than `retention` ago. Returns how many directories it removed.
    fn remove_expired(&self, retention: Duration) -> usize {
        let (mut expired, known) = {
            let mut jobs = self.lock();
            let mut expired = Vec::new();
            jobs.retain(|_, job| {
                let keep = job.finished.is_none_or(|at| at.elapsed() < retention);
                if !keep {
                    expired.push(job.dir.clone());
                }
                keep
            });
            (expired, jobs.values().map(|job| job.dir.clone()).collect::<HashSet<_>>())
        };
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for entry in entries.flatten() {
                let path = entry.path();
                let old = entry
                    .metadata()
                    .and_then(|meta| meta.modified())
                    .ok()
                    .and_then(|modified| modified.elapsed().ok())
                    .is_some_and(|age| age >= retention);
                if old && !known.contains(&path) && !expired.contains(&path) {
                    expired.push(path);
                }
            }
        }
        expired.retain(|dir| remove_export_dir(dir));
        if !expired.is_empty() {
            tracing::info!(removed = expired.len(), "removed expired exports");
        }
        expired.len()
    }

    /// Records how the job `id` ended; a failed job's partial files are removed.
    fn finish(&self, id: Uuid, outcome: Result<ExportReport, String>) {
        let failed_dir = {
            let mut jobs = self.lock();
            let Some(job) = jobs.get_mut(&id) else { return };
            job.finished = Some(std::time::Instant::now());
            match outcome {
                Ok(report) => {
                    job.status = JobStatus::Done;
                    job.report = Some(report);
                    None
                }
                Err(error) => {
                    tracing::warn!(%id, %error, "export failed");
                    job.status = JobStatus::Failed;
                    job.error = Some(error);
                    Some(job.dir.clone())
                }
            }
        };
        if let Some(dir) = failed_dir {
            remove_export_dir(&dir);
        }
    }
}

/// Removes an export's directory (or a stray file in its place); whether something was there.
fn remove_export_dir(dir: &FsPath) -> bool {
    let removed = if dir.is_dir() { std::fs::remove_dir_all(dir) } else { std::fs::remove_file(dir) };
    match removed {
        Ok(()) => true,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
        Err(err) => {
            tracing::warn!(dir = %dir.display(), error = %err, "could not remove an export");
            false
        }
    }
}

/// The `503` for an export asked while [`MAX_RUNNING_EXPORTS`] run.
fn exports_busy() -> Response {
    Problem::unavailable(
        format!("{MAX_RUNNING_EXPORTS} exports are running, the most at once; try again later"),
        EXPORT_RETRY_AFTER_SECONDS,
    )
    .into_response()
}

/// A `POST /api/v1/exports` body.
#[derive(Debug)]
pub struct ExportBody {
    pub dataset: String,
    pub format: ExportFormat,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub since_version: Option<i64>,
}

impl ExportBody {
    /// Every problem of the body at once, each naming its field.
    pub fn parse(bytes: &[u8]) -> Result<ExportBody, Vec<FieldError>> {
        let (members, mut errors) = body_members(bytes, &["dataset", "format", "from", "to", "since_version"])?;
        let dataset = member::<String>(&members, "dataset", "the name of a dataset, e.g. \"petitions\"", &mut errors);
        match &dataset {
            None if !errors.iter().any(|e| e.field == "dataset") => errors.push(FieldError::required("dataset")),
            Some(name) if voxpop_schema::datasets::dataset(name).is_none() => {
                let known: Vec<&str> = voxpop_schema::datasets::datasets().iter().map(|d| d.name).collect();
                errors.push(FieldError::new(
                    "dataset",
                    "unknown_dataset",
                    format!("unknown dataset `{name}`, expected one of {}", known.join(", ")),
                ));
            }
            _ => {}
        }
        let format = member::<String>(&members, "format", "parquet, csv or xlsx", &mut errors);
        let format = match format.as_deref().map(ExportFormat::parse) {
            None => Some(ExportFormat::Parquet),
            Some(Some(format)) => Some(format),
            Some(None) => {
                errors.push(FieldError::new("format", "invalid", "`format` must be parquet, csv or xlsx"));
                None
            }
        };
        let from = member(&members, "from", "a date YYYY-MM-DD", &mut errors);
        let to = member(&members, "to", "a date YYYY-MM-DD", &mut errors);
        for (field, day) in [("from", from), ("to", to)] {
            if let Some(message) = day.and_then(|day| voxpop_queries::export::export_day_problem(field, day)) {
                errors.push(FieldError::new(field, "range", message));
            }
        }
        let since_version = member::<i64>(&members, "since_version", "a table version (a whole number)", &mut errors);
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            errors.push(FieldError::new("to", "range", format!("`to` ({to}) is before `from` ({from})")));
        }
        if let Some(since) = since_version {
            if since < 0 {
                errors.push(FieldError::new(
                    "since_version",
                    "range",
                    format!("`since_version` is a table version, 0 or more, not {since}"),
                ));
            }
            if from.is_some() || to.is_some() {
                errors.push(FieldError::new("since_version", "conflict", "give either `since_version` or `from`/`to`"));
            }
        }
        match (dataset, format) {
            (Some(dataset), Some(format)) if errors.is_empty() => {
                Ok(ExportBody { dataset, format, from, to, since_version })
            }
            _ => Err(errors),
        }
    }
}

/// `POST /api/v1/exports`: starts an export, answers `202` with the job's URL. What the job
/// would refuse (a `since_version` above the table's version, an XLSX sheet too long, a day
/// outside the years 1900 to 9999) is refused here, before the job starts; while
/// [`MAX_RUNNING_EXPORTS`] run, the answer is `503` with `Retry-After`. Starting a job removes
/// the exports older than [`EXPORT_RETENTION`].
pub async fn start_export(State(state): State<AppState>, caller: crate::auth::Caller, body: Bytes) -> Response {
    let body = match ExportBody::parse(&body) {
        Ok(body) => body,
        Err(errors) => return Problem::invalid(&errors).into_response(),
    };
    // Before the checks, which may count the rows; counted again below, under the lock.
    if state.exports.running() >= MAX_RUNNING_EXPORTS {
        return exports_busy();
    }
    let mut request = ExportRequest::new(&body.dataset, body.format);
    request.from = body.from;
    request.to = body.to;
    request.since_version = body.since_version;
    request.province = caller.province();
    request.commune = caller.commune();
    request.personal_data = caller.personal_data();
    match state.queries.check_export(&request).await {
        Ok(_) => {}
        Err(QueryError::BadRequest { field, message }) => {
            return Problem::invalid(&[FieldError::new(field, "invalid", message)]).into_response();
        }
        Err(err) => return Problem::internal(&err).into_response(),
    }
    let id = Uuid::now_v7();
    let dir = state.exports.root.join(id.to_string());
    let rows_written = Arc::new(AtomicU64::new(0));
    if !state.exports.admit(id, Job::running(dir.clone(), rows_written.clone(), caller.token_id.clone())) {
        return exports_busy();
    }
    let exports = state.exports.clone();
    let queries = state.queries.clone();
    tokio::spawn(async move {
        let sweeper = exports.clone();
        if let Err(err) = tokio::task::spawn_blocking(move || sweeper.remove_expired(EXPORT_RETENTION)).await {
            tracing::warn!(error = %err, "removing expired exports failed");
        }
        let progress = move |rows: u64| rows_written.store(rows, Ordering::Relaxed);
        // Whatever happens in the export, even a panic, the job ends `done` or `failed`.
        let outcome = match AssertUnwindSafe(queries.export(&request, &dir, &progress)).catch_unwind().await {
            Ok(outcome) => outcome.map_err(|err| err.to_string()),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(%id, panic = %message, "export panicked");
                Err("the export stopped on an internal error".to_owned())
            }
        };
        let finisher = exports.clone();
        if tokio::task::spawn_blocking(move || finisher.finish(id, outcome)).await.is_err() {
            exports.finish(id, Err("the export stopped on an internal error".to_owned()));
        }
    });
    let url = format!("/api/v1/exports/{id}");
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, url.clone())],
        Json(json!({"id": id, "status": JobStatus::Running, "status_url": url})),
    )
        .into_response()
}

/// `GET /api/v1/exports/{id}`: progress, then the download links.
pub async fn export_status(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return Problem::bad_parameter("id", format!("`{id}` is not an export id")).into_response();
    };
    let jobs = state.exports.lock();
    // Another caller's job is not there for this one: the same answer as an unknown id.
    let Some(job) = jobs.get(&id).filter(|job| job.owner == caller.token_id) else {
        return Problem::not_found(format!(
            "no export `{id}` (finished exports are kept for {} hours, and not across a restart)",
            EXPORT_RETENTION.as_secs() / 3600
        ))
        .into_response();
    };
    let base = format!("/api/v1/exports/{id}/files");
    let files = job.report.as_ref().map(|report| {
        report
            .files
            .iter()
            .map(|f| json!({"path": f.path, "url": format!("{base}/{}", f.path), "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256}))
            .collect::<Vec<_>>()
    });
    Json(json!({
        "id": id,
        "status": job.status,
        "started_at": job.started_at,
        "rows_written": job.rows_written.load(Ordering::Relaxed),
        "error": job.error,
        "datapackage_url": job.report.as_ref().map(|_| format!("{base}/datapackage.json")),
        "files": files,
        "lake_version_to": job.report.as_ref().map(|r| r.lake_version_to),
    }))
    .into_response()
}

/// `GET /api/v1/exports/{id}/files/{*path}`: one file of a finished export, streamed from the
/// disk in chunks of [`DOWNLOAD_CHUNK_BYTES`] with its `Content-Length`.
pub async fn export_file(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
    Path((id, path)): Path<(String, String)>,
) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return Problem::bad_parameter("id", format!("`{id}` is not an export id")).into_response();
    };
    let (dir, allowed) = {
        let jobs = state.exports.lock();
        let Some(job) = jobs.get(&id).filter(|job| job.owner == caller.token_id) else {
            return Problem::not_found(format!("no export `{id}`")).into_response();
        };
        let Some(report) = &job.report else {
            return Problem::new(
                StatusCode::CONFLICT,
                "export-running",
                "The export has not finished",
                "poll the job URL",
            )
            .into_response();
        };
        // Only the files the job wrote: no path from the URL reaches the disk unchecked.
        let allowed = path == "datapackage.json" || report.files.iter().any(|f| f.path == path);
        (job.dir.clone(), allowed)
    };
    if !allowed {
        return Problem::not_found(format!("export `{id}` has no file `{path}`")).into_response();
    }
    let content_type = match path.rsplit('.').next() {
        Some("json") => "application/json",
        Some("csv") => "text/csv; charset=utf-8",
        Some("parquet") => "application/vnd.apache.parquet",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    };
    let file = match tokio::fs::File::open(dir.join(&path)).await {
        Ok(file) => file,
        // Removed after its retention since the check above.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Problem::not_found(format!("export `{id}` has no file `{path}`")).into_response();
        }
        Err(err) => return Problem::internal(&err).into_response(),
    };
    let length = match file.metadata().await {
        Ok(meta) => meta.len(),
        Err(err) => return Problem::internal(&err).into_response(),
    };
    ([(header::CONTENT_TYPE, content_type.to_owned()), (header::CONTENT_LENGTH, length.to_string())], file_body(file))
        .into_response()
}

/// The body sending `file` from where it stands, one chunk read at a time as the client takes
/// them.
fn file_body(file: tokio::fs::File) -> axum::body::Body {
    use tokio::io::AsyncReadExt;
    let chunks = futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut chunk = vec![0u8; DOWNLOAD_CHUNK_BYTES];
        match file.read(&mut chunk).await {
            Ok(0) => None,
            Ok(read) => {
                chunk.truncate(read);
                Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), Some(file)))
            }
            Err(err) => Some((Err(err), None)),
        }
    });
    axum::body::Body::from_stream(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[tokio::test]
    async fn answers_are_held_against_the_budget_until_sent_or_dropped() {
        let budget = answers_held().available_permits();
        let parts =
            vec![Bytes::from(vec![b'a'; 600 * 1024]), Bytes::from_static(b"{}"), Bytes::from(vec![b'b'; 300_000])];
        let expected: Vec<u8> = parts.iter().flat_map(|part| part.to_vec()).collect();
        let body = held_while_sent(parts.clone()).unwrap();
        assert_eq!(answers_held().available_permits(), budget - expected.len().div_ceil(1024));
        let sent = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        assert_eq!(sent, expected);
        assert_eq!(answers_held().available_permits(), budget, "released once sent");
        let dropped = held_while_sent(parts).unwrap();
        drop(dropped);
        assert_eq!(answers_held().available_permits(), budget, "released when the client is gone");
        let too_much = vec![Bytes::from(vec![0u8; MAX_ANSWERS_HELD_BYTES + 1])];
        let problem = held_while_sent(too_much).unwrap_err();
        assert_eq!(problem.status, 503);
    }

    #[test]
    fn sql_body_errors_name_the_field() {
        assert_eq!(fields(SqlBody::parse(br#"{"sql": "SELECT 1", "max_rows": -1}"#).unwrap_err()), ["max_rows"]);
        assert_eq!(fields(SqlBody::parse(br#"{"sql": "SELECT 1", "timeout_s": 0}"#).unwrap_err()), ["timeout_s"]);
        assert_eq!(fields(SqlBody::parse(br#"{"sql": "SELECT 1", "timeout_s": 301}"#).unwrap_err()), ["timeout_s"]);
        assert_eq!(fields(SqlBody::parse(br#"{"sql": "SELECT 1", "max_rows": 1000001}"#).unwrap_err()), ["max_rows"]);
        assert_eq!(fields(SqlBody::parse(br#"{"sql": "SELECT 1", "sql": "SELECT 2"}"#).unwrap_err()), ["sql"]);
        assert_eq!(fields(SqlBody::parse(br#"{"sql": 1}"#).unwrap_err()), ["sql"]);
        assert_eq!(fields(SqlBody::parse(br#"{"query": "SELECT 1"}"#).unwrap_err()), ["query", "sql"]);
        assert_eq!(fields(SqlBody::parse(b"{").unwrap_err()), [""]);
        let body = SqlBody::parse(br#"{"sql": "SELECT 1", "max_rows": 5, "timeout_s": null}"#).unwrap();
        assert_eq!((body.sql.as_str(), body.max_rows, body.timeout_s), ("SELECT 1", Some(5), None));
    }

    #[test]
    fn export_body_errors_name_the_field() {
        let cases: [(&[u8], &[&str]); 7] = [
            (br#"{"dataset": "petitions", "x": 1}"#, &["x"]),
            (br#"{"dataset": "petitions", "from": "2025-13-01"}"#, &["from"]),
            (br#"{"dataset": 1}"#, &["dataset"]),
            (br#"{"dataset": "petitions", "from": "2025-09-10", "to": "2025-09-01"}"#, &["to"]),
            (br#"{"dataset": "petitions", "since_version": -1}"#, &["since_version"]),
            (br#"{"dataset": "petitions", "format": "xls"}"#, &["format"]),
            (br#"{"format": "csv"}"#, &["dataset"]),
        ];
        for (body, expected) in cases {
            let errors = ExportBody::parse(body).unwrap_err();
            assert_eq!(fields(errors), expected, "{}", String::from_utf8_lossy(body));
        }
        let body = ExportBody::parse(br#"{"dataset": "petitions", "since_version": 3}"#).unwrap();
        assert_eq!((body.format, body.since_version), (ExportFormat::Parquet, Some(3)));
    }

    #[test]
    fn export_days_far_away_are_refused_naming_the_field() {
        let cases: [(&[u8], &[&str]); 5] = [
            (br#"{"dataset": "petitions", "to": "+262142-12-31"}"#, &["to"]),
            (br#"{"dataset": "petition_events", "from": "-0001-01-01"}"#, &["from"]),
            (br#"{"dataset": "weekly_reports", "from": "1899-12-31", "to": "+10000-01-01"}"#, &["from", "to"]),
            (br#"{"dataset": "petitions", "from": "+262142-12-31", "to": "2025-01-01"}"#, &["from", "to"]),
            (br#"{"dataset": "petitions", "to": "+262143-01-01"}"#, &["to"]),
        ];
        for (body, expected) in cases {
            let errors = ExportBody::parse(body).unwrap_err();
            assert_eq!(fields(errors), expected, "{}", String::from_utf8_lossy(body));
        }
        let body = ExportBody::parse(br#"{"dataset": "petitions", "from": "1900-01-01", "to": "9999-12-31"}"#).unwrap();
        assert_eq!(
            (body.from.unwrap().to_string(), body.to.unwrap().to_string()),
            ("1900-01-01".into(), "9999-12-31".into())
        );
    }

    fn new_job(exports: &ExportJobs) -> (Uuid, Job) {
        let id = Uuid::now_v7();
        (id, Job::running(exports.root.join(id.to_string()), Arc::default(), None))
    }

    #[test]
    fn only_so_many_exports_run_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let exports = ExportJobs::new(dir.path().join("exports"));
        let mut ids = Vec::new();
        for _ in 0..MAX_RUNNING_EXPORTS {
            let (id, job) = new_job(&exports);
            assert!(exports.admit(id, job));
            ids.push(id);
        }
        let (id, extra) = new_job(&exports);
        assert!(!exports.admit(id, extra), "one more than {MAX_RUNNING_EXPORTS}");
        assert_eq!(exports.running(), MAX_RUNNING_EXPORTS);
        // A failed job frees its place as a finished one does.
        exports.finish(ids[0], Err("no disk".into()));
        let (id, job) = new_job(&exports);
        assert!(exports.admit(id, job));
        assert!(matches!(exports.lock()[&ids[0]].status, JobStatus::Failed));
        assert_eq!(exports.lock()[&ids[0]].error.as_deref(), Some("no disk"));
    }

    #[tokio::test]
    async fn a_job_that_panics_ends_failed() {
        let dir = tempfile::tempdir().unwrap();
        let exports = Arc::new(ExportJobs::new(dir.path().join("exports")));
        let (id, job) = new_job(&exports);
        std::fs::create_dir_all(&job.dir).unwrap();
        let job_dir = job.dir.clone();
        assert!(exports.admit(id, job));
        let outcome = AssertUnwindSafe(async { panic!("overflow") }).catch_unwind().await;
        let outcome: Result<ExportReport, String> = outcome.map_err(|_| "the export stopped".to_owned());
        exports.finish(id, outcome);
        assert!(matches!(exports.lock()[&id].status, JobStatus::Failed));
        assert!(!job_dir.exists(), "a failed job's partial files are removed");
        assert_eq!(exports.running(), 0);
    }

    #[test]
    fn expired_exports_are_removed_with_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("exports");
        // An earlier process's export, no job of this one.
        let orphan = root.join(Uuid::now_v7().to_string());
        std::fs::create_dir_all(orphan.join("data")).unwrap();
        let exports = ExportJobs::new(root.clone());
        assert!(orphan.exists(), "younger than the retention: kept at start");
        let (done, job) = new_job(&exports);
        std::fs::create_dir_all(job.dir.join("data")).unwrap();
        let done_dir = job.dir.clone();
        assert!(exports.admit(done, job));
        let (running, job) = new_job(&exports);
        std::fs::create_dir_all(&job.dir).unwrap();
        let running_dir = job.dir.clone();
        assert!(exports.admit(running, job));
        exports.lock().get_mut(&done).unwrap().finished = Some(std::time::Instant::now());
        exports.lock().get_mut(&done).unwrap().status = JobStatus::Done;
        assert_eq!(exports.remove_expired(EXPORT_RETENTION), 0);
        assert_eq!(exports.remove_expired(Duration::ZERO), 2, "the finished job's and the orphan");
        assert!(!orphan.exists() && !done_dir.exists());
        assert!(running_dir.exists(), "a running job keeps its files");
        assert!(exports.lock().get(&done).is_none() && exports.lock().contains_key(&running));
        // A server starting later removes what is older than the retention, and nothing younger.
        drop(exports);
        assert!(running_dir.exists());
        let later = ExportJobs { root: root.clone(), jobs: Mutex::new(HashMap::new()) };
        assert_eq!(later.remove_expired(Duration::ZERO), 1);
        assert!(!running_dir.exists());
    }

    #[tokio::test]
    async fn a_running_server_removes_expired_exports_without_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let exports = Arc::new(ExportJobs::new(dir.path().join("exports")));
        let (done, job) = new_job(&exports);
        std::fs::create_dir_all(job.dir.join("data")).unwrap();
        let done_dir = job.dir.clone();
        assert!(exports.admit(done, job));
        exports.lock().get_mut(&done).unwrap().finished = Some(std::time::Instant::now());
        exports.lock().get_mut(&done).unwrap().status = JobStatus::Done;
        let sweeper = ExportJobs::spawn_sweeper(exports.clone(), Duration::from_millis(20), Duration::from_millis(50));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while done_dir.exists() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sweeper.abort();
        assert!(!done_dir.exists(), "a finished export's files outlived its retention");
        assert!(exports.lock().get(&done).is_none());
    }

    #[tokio::test]
    async fn export_files_are_streamed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.csv");
        let content: Vec<u8> = (0..3 * DOWNLOAD_CHUNK_BYTES + 17).map(|n| (n % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let body = file_body(tokio::fs::File::open(&path).await.unwrap());
        let sent = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        assert_eq!(sent, content);
    }
}

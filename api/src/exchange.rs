//! Data exchange over HTTP: read-only SQL (`POST /api/v1/sql`) and exports as background jobs
//! (`POST /api/v1/exports`, then poll `GET /api/v1/exports/{id}` and download the files).
//!
//! An export can take minutes, so the request only starts it: the answer is `202 Accepted` with
//! the job's URL, which reports the rows written so far and, once done, a download link for
//! `datapackage.json` and each data file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use voxpop_queries::QueryError;
use voxpop_queries::export::{ExportFormat, ExportReport, ExportRequest};
use voxpop_queries::sql::{self, SqlRequest};
use voxpop_schema::FieldError;

use crate::http::AppState;
use crate::problem::Problem;

fn query_problem(err: QueryError) -> Response {
    match err {
        QueryError::BadRequest { field, message } => Problem::bad_parameter(field, message).into_response(),
        other => Problem::internal(&other).into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlBody {
    pub sql: String,
    pub max_rows: Option<usize>,
    pub timeout_s: Option<u64>,
}

/// `POST /api/v1/sql[?format=json|csv|arrow|parquet]` with `{"sql": "...", "max_rows": .., "timeout_s": ..}`.
pub async fn run_sql(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let body: SqlBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => {
            let field = if err.to_string().contains("missing field `sql`") { "sql" } else { "body" };
            return Problem::invalid(&[FieldError::new(
                field,
                "invalid",
                format!("expected {{\"sql\": \"SELECT ...\"}}: {err}"),
            )])
            .into_response();
        }
    };
    let format = params.get("format").map_or("json", String::as_str);
    if !matches!(format, "json" | "csv" | "arrow" | "parquet") {
        return Problem::bad_parameter("format", "`format` must be json, csv, arrow or parquet").into_response();
    }
    let mut request = SqlRequest::new(&body.sql);
    request.max_rows = body.max_rows.unwrap_or(sql::DEFAULT_MAX_ROWS);
    request.timeout = body.timeout_s.map_or(sql::DEFAULT_TIMEOUT, Duration::from_secs);
    request.province = caller.province();
    request.commune = caller.commune();
    request.personal_data = caller.personal_data();
    let result = match state.queries.sql(&request).await {
        Ok(result) => result,
        Err(err) => return query_problem(err),
    };
    let truncated = if result.truncated { "true" } else { "false" };
    let encoded = match format {
        "csv" => sql::to_csv(&result).map(|bytes| ("text/csv; charset=utf-8", bytes)),
        "arrow" => sql::to_arrow_ipc(&result).map(|bytes| ("application/vnd.apache.arrow.stream", bytes)),
        "parquet" => sql::to_parquet(&result).map(|bytes| ("application/vnd.apache.parquet", bytes)),
        _ => {
            return match sql::to_json_rows(&result) {
                Ok(rows) => Json(json!({
                    "columns": result.schema.fields().iter()
                        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
                        .collect::<Vec<_>>(),
                    "rows": rows,
                    "row_count": result.rows,
                    "truncated": result.truncated,
                    "elapsed_ms": result.elapsed.as_millis() as u64,
                }))
                .into_response(),
                Err(err) => query_problem(err),
            };
        }
    };
    match encoded {
        Ok((content_type, bytes)) => {
            ([(header::CONTENT_TYPE, content_type), (header::HeaderName::from_static("x-truncated"), truncated)], bytes)
                .into_response()
        }
        Err(err) => query_problem(err),
    }
}

/// Where an export job stands.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Running,
    Done,
    Failed,
}

struct Job {
    status: JobStatus,
    started_at: DateTime<Utc>,
    rows_written: Arc<AtomicU64>,
    report: Option<ExportReport>,
    error: Option<String>,
    dir: PathBuf,
    /// Who started it: only the same token (or anyone in open mode) reads its status and files.
    owner: Option<String>,
}

/// The export jobs of this process; their files live under `<data>/exports/<id>/`.
pub struct ExportJobs {
    root: PathBuf,
    jobs: Mutex<HashMap<Uuid, Job>>,
}

impl ExportJobs {
    pub fn new(root: PathBuf) -> ExportJobs {
        ExportJobs { root, jobs: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Job>> {
        self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportBody {
    pub dataset: String,
    #[serde(default)]
    pub format: Option<String>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub since_version: Option<i64>,
}

/// `POST /api/v1/exports`: starts an export, answers `202` with the job's URL.
pub async fn start_export(State(state): State<AppState>, caller: crate::auth::Caller, body: Bytes) -> Response {
    let body: ExportBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => {
            let field = if err.to_string().contains("dataset") { "dataset" } else { "body" };
            return Problem::invalid(&[FieldError::new(field, "invalid", err.to_string())]).into_response();
        }
    };
    let mut errors = Vec::new();
    let format = body.format.as_deref().unwrap_or("parquet");
    let Some(format) = ExportFormat::parse(format) else {
        errors.push(FieldError::new("format", "invalid", "`format` must be parquet, csv or xlsx"));
        return Problem::invalid(&errors).into_response();
    };
    if voxpop_schema::datasets::dataset(&body.dataset).is_none() {
        let known: Vec<&str> = voxpop_schema::datasets::datasets().iter().map(|d| d.name).collect();
        errors.push(FieldError::new(
            "dataset",
            "unknown_dataset",
            format!("unknown dataset `{}`, expected one of {}", body.dataset, known.join(", ")),
        ));
    }
    if body.since_version.is_some() && (body.from.is_some() || body.to.is_some()) {
        errors.push(FieldError::new("since_version", "conflict", "give either `since_version` or `from`/`to`"));
    }
    if !errors.is_empty() {
        return Problem::invalid(&errors).into_response();
    }
    let mut request = ExportRequest::new(&body.dataset, format);
    request.from = body.from;
    request.to = body.to;
    request.since_version = body.since_version;
    request.province = caller.province();
    request.commune = caller.commune();
    request.personal_data = caller.personal_data();
    let id = Uuid::now_v7();
    let dir = state.exports.root.join(id.to_string());
    let rows_written = Arc::new(AtomicU64::new(0));
    state.exports.lock().insert(
        id,
        Job {
            status: JobStatus::Running,
            started_at: Utc::now(),
            rows_written: rows_written.clone(),
            report: None,
            error: None,
            dir: dir.clone(),
            owner: caller.token_id.clone(),
        },
    );
    let exports = state.exports.clone();
    let queries = state.queries.clone();
    tokio::spawn(async move {
        let progress = move |rows: u64| rows_written.store(rows, Ordering::Relaxed);
        let outcome = queries.export(&request, &dir, &progress).await;
        let mut jobs = exports.lock();
        if let Some(job) = jobs.get_mut(&id) {
            match outcome {
                Ok(report) => {
                    job.status = JobStatus::Done;
                    job.report = Some(report);
                }
                Err(err) => {
                    tracing::warn!(%id, error = %err, "export failed");
                    job.status = JobStatus::Failed;
                    job.error = Some(err.to_string());
                }
            }
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
        return Problem::not_found(format!("no export `{id}` (jobs are kept until the server restarts)"))
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

/// `GET /api/v1/exports/{id}/files/{*path}`: one file of a finished export.
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
    match tokio::fs::read(dir.join(&path)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type)], bytes).into_response(),
        Err(err) => Problem::internal(&err).into_response(),
    }
}

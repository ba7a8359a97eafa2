//! Weekly reports over HTTP: entering them (JSON, or an XLSX/CSV upload as offices keep them),
//! the template to fill in, and the synthesis for any unit.
//!
//! Accepted values are appended to `voxpop.reports` before the answer (durable, like petitions);
//! the reports pipeline writes them to the lake. A rejected upload names the row, column and
//! reason of every problem and accepts nothing unless `partial=true`.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;
use voxpop_pipeline::{Record, Topic};
use voxpop_schema::Units;
use voxpop_schema::reports::{self, Catalogue, ReportError, ReportValue};

use crate::http::AppState;
use crate::problem::Problem;

/// Everyone is central until roles exist (the handling issue): scope `00`.
const SCOPE: &str = reports::CENTRAL_CODE;

fn report_problem(errors: &[ReportError]) -> Response {
    let body = json!({
        "type": "https://voxpop.example/problems/validation",
        "title": "The report has invalid values",
        "status": 422,
        "detail": format!("{} problem(s); nothing was accepted", errors.len()),
        "errors": errors,
    });
    (StatusCode::UNPROCESSABLE_ENTITY, [(header::CONTENT_TYPE, "application/problem+json")], Json(body)).into_response()
}

async fn append(state: &AppState, rows: &[ReportValue]) -> Result<(), Response> {
    let records: Vec<Record> = rows
        .iter()
        .map(|row| Record {
            key: row.unit_code.clone().into_bytes(),
            payload: serde_json::to_vec(row).expect("report values serialise"),
        })
        .collect();
    for chunk in records.chunks(10_000) {
        if let Err(err) = state.log.append(Topic::Reports, chunk.to_vec()).await {
            return Err(Problem::unavailable(format!("the report was not accepted: {err}"), 5).into_response());
        }
    }
    Ok(())
}

/// `POST /api/v1/reports`: `{"unit": "00004", "week": "2025-W38", "values": {"meetings_held": 3}}`.
pub async fn submit(State(state): State<AppState>, body: Bytes) -> Response {
    let intake = reports::Intake {
        units: Units::embedded(),
        catalogue: Catalogue::default_embedded(),
        scope: SCOPE,
        now: Utc::now(),
        submitted_by: None,
    };
    match intake.parse_json_bytes(&body) {
        Err(errors) => report_problem(&errors),
        Ok(rows) => match append(&state, &rows).await {
            Ok(()) => (StatusCode::CREATED, Json(json!({"accepted_values": rows.len(), "status": "received"})))
                .into_response(),
            Err(response) => response,
        },
    }
}

/// `POST /api/v1/reports/upload?format=xlsx|csv[&partial=true]` with the file as the body.
pub async fn upload(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let partial = matches!(params.get("partial").map(String::as_str), Some("true" | "1"));
    let intake = reports::Intake {
        units: Units::embedded(),
        catalogue: Catalogue::default_embedded(),
        scope: SCOPE,
        now: Utc::now(),
        submitted_by: None,
    };
    let outcome = match params.get("format").map(String::as_str) {
        Some("xlsx") => intake.parse_xlsx(&body, partial),
        Some("csv") => intake.parse_csv(&body, partial),
        _ => return Problem::bad_parameter("format", "`format` must be xlsx or csv").into_response(),
    };
    if outcome.rows.is_empty() && !outcome.errors.is_empty() {
        return report_problem(&outcome.errors);
    }
    if let Err(response) = append(&state, &outcome.rows).await {
        return response;
    }
    let status = if outcome.errors.is_empty() { StatusCode::CREATED } else { StatusCode::OK };
    (
        status,
        Json(json!({
            "accepted_values": outcome.rows.len(),
            "data_rows": outcome.data_rows,
            "rejected_rows": outcome.rejected_rows,
            "errors": outcome.errors,
        })),
    )
        .into_response()
}

/// `GET /api/v1/reports/template?unit=00004[&week=2025-W38]`: the XLSX a unit fills in for itself
/// and the units below it.
pub async fn template(State(state): State<AppState>, Query(params): Query<HashMap<String, String>>) -> Response {
    let unit = params.get("unit").map_or(SCOPE, String::as_str);
    let villages = voxpop_queries::reports::read_villages(&state.villages).unwrap_or_default();
    match reports::template_xlsx(
        Catalogue::default_embedded(),
        Units::embedded(),
        unit,
        params.get("week").map(String::as_str),
        &villages,
    ) {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_owned()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"bao-cao-tuan-{unit}.xlsx\"")),
            ],
            bytes,
        )
            .into_response(),
        Err(err) => Problem::bad_parameter("unit", err.to_string()).into_response(),
    }
}

/// `GET /api/v1/reports/weekly?week=2025-W38[&unit=00]`: the synthesis for one unit.
pub async fn weekly(State(state): State<AppState>, Query(params): Query<HashMap<String, String>>) -> Response {
    let Some(week) = params.get("week") else {
        return Problem::bad_parameter("week", "`week` is required, e.g. 2025-W38").into_response();
    };
    let unit = params.get("unit").map_or(SCOPE, String::as_str);
    let villages = voxpop_queries::reports::read_villages(&state.villages).unwrap_or_default();
    match state.reports.weekly(week, unit, &villages).await {
        Ok(synthesis) => Json(synthesis).into_response(),
        Err(voxpop_queries::QueryError::BadRequest { field, message }) => {
            Problem::bad_parameter(field, message).into_response()
        }
        Err(err) => Problem::internal(&err).into_response(),
    }
}

//! Registers over HTTP: the officers and members of every unit (entered as JSON or as the
//! spreadsheets offices keep), the villages communes register, the counts per level with the
//! share of units whose lists were updated, and `voxpop import --villages`.
//!
//! Entries are appended to `voxpop.registers` before the answer (durable, like reports); the
//! registers pipeline writes them to the lake, where reads find them within a second or two.
//! Writes are limited to the caller's unit and the units below it, and to roles that keep lists
//! (officers, leaders, admins; not data engineers). Reads are limited to the same subtree; names,
//! phones and birth years are masked unless the caller's role may see personal data.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use serde_json::json;
use tracing::info;
use voxpop_pipeline::{EventLog, PipelineConfig, Record, Topic};
use voxpop_queries::registers::{ListRequest, Period, RegisterSummary};
use voxpop_queries::summary::IsoWeek;
use voxpop_schema::Units;
use voxpop_schema::registers::{
    EARLIEST_DATE, IntakeOutcome, LATEST_DATE, Register, RegisterError, RegisterIntake, RegisterRecord,
};
use voxpop_schema::reports::{Level, UnitRef};

use crate::auth::Caller;
use crate::http::AppState;
use crate::params::{flag, known_params};
use crate::problem::Problem;

/// Entries in one listing page unless `limit` says otherwise.
const DEFAULT_PAGE: usize = 100;

/// The caller's unit as a unit of the tree.
fn caller_scope(caller: &Caller) -> Result<UnitRef, Response> {
    UnitRef::parse(&caller.unit, Units::embedded()).map_err(|err| {
        Problem::new(StatusCode::FORBIDDEN, "out-of-scope", "Unknown unit", err.to_string()).into_response()
    })
}

fn out_of_scope(detail: String) -> Response {
    Problem::new(StatusCode::FORBIDDEN, "out-of-scope", "Outside your unit", detail).into_response()
}

/// The unit a read asks about (`unit=`, the caller's own by default): 400 when it is not a
/// unit, 403 when it is outside the caller's subtree, 400 for a village the register never held
/// (a removed village is still read: its history is there).
async fn asked_unit(state: &AppState, caller: &Caller, params: &HashMap<String, String>) -> Result<UnitRef, Response> {
    let scope = caller_scope(caller)?;
    let Some(code) = params.get("unit").map(|code| code.trim()).filter(|code| !code.is_empty()) else {
        return Ok(scope);
    };
    let unit = UnitRef::parse(code, Units::embedded())
        .map_err(|err| Problem::bad_parameter("unit", err.to_string()).into_response())?;
    if !scope.contains(&unit) {
        return Err(out_of_scope(format!("unit `{code}` is outside unit {}", caller.unit)));
    }
    if unit.level() == Level::Village {
        let taken =
            state.registers.village_codes_taken().await.map_err(|err| Problem::internal(&err).into_response())?;
        if !taken.contains(&unit.code()) {
            return Err(Problem::bad_parameter(
                "unit",
                format!("unknown village `{code}`: not in the villages register of its commune"),
            )
            .into_response());
        }
    }
    Ok(unit)
}

/// The query parameters of a request, or the 400 naming every repeated or unknown one.
fn params_of(raw: Option<String>, known: &[&str]) -> Result<HashMap<String, String>, Response> {
    known_params(raw.as_deref(), known).map_err(IntoResponse::into_response)
}

/// Lists are kept by the units' officers and leaders (and admins); data engineers exchange
/// datasets and do not write them. Open mode (no tokens) writes as the central level, like
/// weekly reports.
fn may_write(caller: &Caller) -> Result<(), Response> {
    crate::auth::keeps_unit_records(caller, "registers")
}

fn register_problem(errors: &[RegisterError]) -> Response {
    crate::reports_api::rows_problem(errors, "Entries outside your unit", "The register entries have invalid values")
}

async fn append(log: &dyn EventLog, records: &[RegisterRecord]) -> anyhow::Result<()> {
    let mut encoded = Vec::with_capacity(records.len());
    for record in records {
        encoded.push(Record { key: record.unit_code().as_bytes().to_vec(), payload: serde_json::to_vec(record)? });
    }
    for chunk in encoded.chunks(10_000) {
        log.append(Topic::Registers, chunk.to_vec()).await?;
    }
    Ok(())
}

async fn append_or_503(state: &AppState, records: &[RegisterRecord]) -> Result<(), Response> {
    append(state.log.as_ref(), records)
        .await
        .map_err(|err| Problem::unavailable(format!("the entries were not accepted: {err}"), 5).into_response())
}

/// The codes of the villages in the register now (CSV and lake, removed ones dropped).
async fn known_villages(state: &AppState) -> Result<HashSet<String>, Response> {
    match state.registers.villages().await {
        Ok(villages) => Ok(villages.into_iter().map(|v| v.code).collect()),
        Err(err) => Err(Problem::internal(&err).into_response()),
    }
}

/// `POST /api/v1/registers`: a JSON array of people, e.g.
/// `[{"register": "officer", "person_id": "BD-001", "unit": "00004", "full_name": "Nguyễn Văn An",
/// "role": "Chủ tịch", "term_start": "2024-10-01"}]`. All or nothing.
pub async fn submit(State(state): State<AppState>, caller: Caller, body: Bytes) -> Response {
    if let Some(problem) = crate::params::repeated_members_problem(&body) {
        return problem.into_response();
    }
    if let Err(response) = may_write(&caller) {
        return response;
    }
    let villages = match known_villages(&state).await {
        Ok(villages) => villages,
        Err(response) => return response,
    };
    let submitted_by = crate::auth::sender(&caller);
    let intake = RegisterIntake {
        units: Units::embedded(),
        scope: &caller.unit,
        now: Utc::now(),
        submitted_by: Some(&submitted_by),
        villages: Some(&villages),
    };
    let people = match intake.parse_people_json(&body) {
        Ok(people) => people,
        Err(errors) => return register_problem(&errors),
    };
    let entry_ids: Vec<String> = people.iter().map(|p| p.entry_id.to_string()).collect();
    let records: Vec<RegisterRecord> = people.into_iter().map(RegisterRecord::Person).collect();
    if let Err(response) = append_or_503(&state, &records).await {
        return response;
    }
    info!(entries = records.len(), unit = %caller.unit, "register entries accepted");
    (
        StatusCode::CREATED,
        Json(json!({"accepted_entries": records.len(), "entry_ids": entry_ids, "status": "received"})),
    )
        .into_response()
}

/// `POST /api/v1/registers/upload?format=xlsx|csv[&register=officer|member][&partial=true]` with
/// the file as the body (the format is sniffed when not given). `register` is the list of every
/// row when the sheet has no `register` column.
pub async fn upload(State(state): State<AppState>, caller: Caller, RawQuery(query): RawQuery, body: Bytes) -> Response {
    if let Err(response) = may_write(&caller) {
        return response;
    }
    let params = match params_of(query, &["format", "register", "partial"]) {
        Ok(params) => params,
        Err(response) => return response,
    };
    let partial = match flag(&params, "partial") {
        Ok(partial) => partial,
        Err(problem) => return problem.into_response(),
    };
    let default_register = match params.get("register") {
        None => None,
        Some(text) => match Register::parse(text) {
            Some(register) => Some(register),
            None => return Problem::bad_parameter("register", "`register` must be officer or member").into_response(),
        },
    };
    let format = match params.get("format").map(String::as_str) {
        Some(format @ ("xlsx" | "csv")) => format,
        Some(_) => return Problem::bad_parameter("format", "`format` must be xlsx or csv").into_response(),
        // An XLSX file is a zip archive.
        None if body.starts_with(b"PK") => "xlsx",
        None => "csv",
    };
    let villages = match known_villages(&state).await {
        Ok(villages) => villages,
        Err(response) => return response,
    };
    let submitted_by = crate::auth::sender(&caller);
    // Parsing a sheet is CPU work (a workbook is inflated and read cell by cell): off the
    // runtime's threads, so that uploads do not stall other requests.
    let (scope, xlsx) = (caller.unit.clone(), format == "xlsx");
    let parsed = tokio::task::spawn_blocking(move || {
        if !xlsx && let Some(error) = crate::reports_api::csv_beyond_columns(&body) {
            return IntakeOutcome { errors: vec![error], ..IntakeOutcome::default() };
        }
        let intake = RegisterIntake {
            units: Units::embedded(),
            scope: &scope,
            now: Utc::now(),
            submitted_by: Some(&submitted_by),
            villages: Some(&villages),
        };
        if xlsx {
            intake.parse_people_xlsx(&body, default_register, partial)
        } else {
            intake.parse_people_csv(&body, default_register, partial)
        }
    })
    .await;
    let outcome = match parsed {
        Ok(outcome) => outcome,
        Err(err) => return Problem::internal(&err).into_response(),
    };
    if outcome.entries.is_empty() && !outcome.errors.is_empty() {
        return register_problem(&outcome.errors);
    }
    let records: Vec<RegisterRecord> = outcome.entries.into_iter().map(RegisterRecord::Person).collect();
    if let Err(response) = append_or_503(&state, &records).await {
        return response;
    }
    info!(entries = records.len(), rejected_rows = outcome.rejected_rows, format, "register upload accepted");
    let status = if outcome.errors.is_empty() { StatusCode::CREATED } else { StatusCode::OK };
    (
        status,
        Json(json!({
            "accepted_entries": records.len(),
            "data_rows": outcome.data_rows,
            "rejected_rows": outcome.rejected_rows,
            "errors": outcome.errors,
        })),
    )
        .into_response()
}

/// `GET /api/v1/registers/template?register=officer|member`: the XLSX to fill in.
pub async fn template(RawQuery(query): RawQuery) -> Response {
    let params = match params_of(query, &["register"]) {
        Ok(params) => params,
        Err(response) => return response,
    };
    let register = match params.get("register").map(|text| Register::parse(text)) {
        None => Register::Officer,
        Some(Some(register)) => register,
        Some(None) => {
            return Problem::bad_parameter("register", "`register` must be officer or member").into_response();
        }
    };
    match voxpop_schema::registers::template_xlsx(register) {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_owned()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"danh-sach-{}.xlsx\"", register.as_str())),
            ],
            bytes,
        )
            .into_response(),
        Err(err) => Problem::internal(&err).into_response(),
    }
}

fn number(params: &HashMap<String, String>, name: &str, default: usize, max: usize) -> Result<usize, Response> {
    match params.get(name) {
        None => Ok(default),
        Some(raw) => {
            match raw.parse::<usize>() {
                Ok(value) if value <= max => Ok(value),
                _ => Err(Problem::bad_parameter(name, format!("`{name}` must be an integer from 0 to {max}"))
                    .into_response()),
            }
        }
    }
}

/// `GET /api/v1/registers?unit=00004[&register=officer|member][&include_removed=true]
/// [&limit=100&offset=0]`: the current entries of the unit and the units below it.
pub async fn list(State(state): State<AppState>, caller: Caller, RawQuery(query): RawQuery) -> Response {
    let params = match params_of(query, &["unit", "register", "include_removed", "limit", "offset"]) {
        Ok(params) => params,
        Err(response) => return response,
    };
    let unit = match asked_unit(&state, &caller, &params).await {
        Ok(unit) => unit,
        Err(response) => return response,
    };
    let register = match params.get("register").map(|text| Register::parse(text)) {
        None => None,
        Some(Some(register)) => Some(register),
        Some(None) => {
            return Problem::bad_parameter("register", "`register` must be officer or member").into_response();
        }
    };
    let (limit, offset) = match (
        number(&params, "limit", DEFAULT_PAGE, voxpop_queries::registers::MAX_PAGE),
        number(&params, "offset", 0, 10_000_000),
    ) {
        (Ok(limit), Ok(offset)) => (limit, offset),
        (Err(response), _) | (_, Err(response)) => return response,
    };
    let include_removed = match flag(&params, "include_removed") {
        Ok(include_removed) => include_removed,
        Err(problem) => return problem.into_response(),
    };
    let request = ListRequest {
        unit,
        register,
        include_removed,
        // Every entry listed is within the caller's unit: the role alone decides.
        personal_data: caller.personal_data(),
        limit,
        offset,
    };
    match state.registers.list(&request).await {
        Ok(page) => Json(page).into_response(),
        Err(err) => Problem::internal(&err).into_response(),
    }
}

/// The period of `from`/`to` (dates, inclusive) or `week`; the current week by default. `from`
/// alone runs to today, `to` alone covers the 7 days up to it. Every day of the period lies
/// within the dates a register accepts ([`EARLIEST_DATE`] to [`LATEST_DATE`]): outside them a
/// date is a typing error, and near the ends of the calendar its arithmetic would overflow.
fn period(params: &HashMap<String, String>) -> Result<Period, Response> {
    let bad = |name: &str, message: String| Problem::bad_parameter(name, message).into_response();
    let out_of_range = |name: &str| bad(name, format!("`{name}` must be from {EARLIEST_DATE} to {LATEST_DATE}"));
    let date = |name: &str| -> Result<Option<NaiveDate>, Response> {
        match params.get(name) {
            None => Ok(None),
            Some(raw) => match crate::params::iso_date(raw).ok_or(()) {
                Ok(date) if (EARLIEST_DATE..=LATEST_DATE).contains(&date) => Ok(Some(date)),
                Ok(_) => Err(out_of_range(name)),
                Err(_) => Err(bad(name, format!("`{name}` must be a date such as 2025-09-15"))),
            },
        }
    };
    let (from, to) = (date("from")?, date("to")?);
    let today = voxpop_schema::registers::vietnam_date(Utc::now());
    let checked = |from: NaiveDate, to: NaiveDate| {
        Period::new(from, to).map_err(|err| Problem::bad_parameter("to", err.to_string()).into_response())
    };
    match (params.get("week"), from, to) {
        (Some(week), None, None) => match IsoWeek::parse(week).map(Period::week) {
            Some(period) if period.from >= EARLIEST_DATE && period.to <= LATEST_DATE => Ok(period),
            Some(_) => Err(out_of_range("week")),
            None => Err(bad("week", format!("`{week}` is not an ISO week such as 2025-W38"))),
        },
        (Some(_), _, _) => Err(Problem::bad_parameter("week", "give `week` or `from`/`to`, not both").into_response()),
        (None, None, None) => Ok(Period::week_of(Utc::now())),
        (None, Some(from), None) => checked(from, today.max(from)),
        (None, None, Some(to)) => match to.checked_sub_days(chrono::Days::new(6)) {
            Some(from) => checked(from.max(EARLIEST_DATE), to),
            None => Err(out_of_range("to")),
        },
        (None, Some(from), Some(to)) => checked(from, to),
    }
}

/// `GET /api/v1/registers/summary?unit=01[&from=2025-09-01&to=2025-09-30 | &week=2025-W38]`:
/// officers and members per level, and the share of units of each level that updated their
/// lists in the period.
pub async fn summary(State(state): State<AppState>, caller: Caller, RawQuery(query): RawQuery) -> Response {
    let params = match params_of(query, &["unit", "from", "to", "week"]) {
        Ok(params) => params,
        Err(response) => return response,
    };
    let unit = match asked_unit(&state, &caller, &params).await {
        Ok(unit) => unit,
        Err(response) => return response,
    };
    let period = match period(&params) {
        Ok(period) => period,
        Err(response) => return response,
    };
    match state.registers.summary(&unit.code(), period).await {
        Ok(summary) => Json(summary).into_response(),
        Err(voxpop_queries::QueryError::BadRequest { field, message }) => {
            Problem::bad_parameter(field, message).into_response()
        }
        Err(err) => Problem::internal(&err).into_response(),
    }
}

/// `POST /api/v1/villages`: villages of the caller's commune (or, for a province or the central
/// level, of the commune each names), e.g. `[{"name": "Thôn Đông"}]` (numbered after the
/// commune's existing villages), `[{"code": "00004-012", "name": "Tổ dân phố số 12"}]`, or with
/// `"removed": true` to take one off the register. All or nothing.
pub async fn create_villages(State(state): State<AppState>, caller: Caller, body: Bytes) -> Response {
    if let Some(problem) = crate::params::repeated_members_problem(&body) {
        return problem.into_response();
    }
    if let Err(response) = may_write(&caller) {
        return response;
    }
    let taken = match state.registers.village_codes_taken().await {
        Ok(taken) => taken,
        Err(err) => return Problem::internal(&err).into_response(),
    };
    let submitted_by = crate::auth::sender(&caller);
    let intake = RegisterIntake {
        units: Units::embedded(),
        scope: &caller.unit,
        now: Utc::now(),
        submitted_by: Some(&submitted_by),
        villages: None,
    };
    let villages = match intake.parse_villages_json(&body, &taken) {
        Ok(villages) => villages,
        Err(errors) => return register_problem(&errors),
    };
    let created: Vec<serde_json::Value> =
        villages.iter().map(|v| json!({"code": v.code, "name": v.name, "removed": v.removed})).collect();
    let records: Vec<RegisterRecord> = villages.into_iter().map(RegisterRecord::Village).collect();
    if let Err(response) = append_or_503(&state, &records).await {
        return response;
    }
    info!(villages = records.len(), unit = %caller.unit, "village entries accepted");
    (StatusCode::CREATED, Json(json!({"accepted_entries": records.len(), "villages": created, "status": "received"})))
        .into_response()
}

/// `GET /api/v1/villages[?unit=00004]`: the villages register within the caller's unit.
pub async fn list_villages(State(state): State<AppState>, caller: Caller, RawQuery(query): RawQuery) -> Response {
    let params = match params_of(query, &["unit"]) {
        Ok(params) => params,
        Err(response) => return response,
    };
    let unit = match asked_unit(&state, &caller, &params).await {
        Ok(unit) => unit,
        Err(response) => return response,
    };
    match state.registers.villages().await {
        Ok(villages) => {
            let units = Units::embedded();
            let inside: Vec<_> = villages
                .into_iter()
                .filter(|village| UnitRef::parse(&village.code, units).is_ok_and(|found| unit.contains(&found)))
                .collect();
            Json(json!({"unit": unit.code(), "total": inside.len(), "villages": inside})).into_response()
        }
        Err(err) => Problem::internal(&err).into_response(),
    }
}

/// The leaders' page section "Danh sách cán bộ, hội viên": counts per level, the coverage of
/// updated lists as staff write it, and a chart of the shares. Returns the HTML and the script
/// that draws the chart (Chart.js, loaded by the page).
pub fn page_section(summary: &RegisterSummary) -> (String, String) {
    use voxpop_index::html_escape as escape;
    use voxpop_queries::summary::thousands;
    let mut html = String::with_capacity(4096);
    let _ = write!(
        html,
        "<section id=\"registers\"><h2>Danh sách cán bộ, hội viên</h2>\
         <p>Kỳ {from} – {to}: <strong>{officers}</strong> cán bộ, <strong>{members}</strong> hội viên đang trong \
         danh sách ({name} và các đơn vị trực thuộc).</p>\
         <table id=\"registers-levels\"><tr><th>Cấp</th><th>Số đơn vị</th><th>Cán bộ</th><th>Hội viên</th>\
         <th>Đã cập nhật danh sách cán bộ</th><th>Đã cập nhật danh sách hội viên</th></tr>",
        from = summary.period.from.format("%d/%m/%Y"),
        to = summary.period.to.format("%d/%m/%Y"),
        officers = thousands(summary.total.officers),
        members = thousands(summary.total.members),
        name = escape(&summary.name),
    );
    for level in &summary.levels {
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&level.label),
            thousands(level.units),
            thousands(level.counts.officers),
            thousands(level.counts.members),
            escape(&level.officer_lists_updated.text),
            escape(&level.member_lists_updated.text),
        );
    }
    html.push_str("</table><ul id=\"registers-coverage\">");
    for level in summary.levels.iter().filter(|level| level.level != summary.level) {
        for register in Register::ALL {
            let _ = write!(html, "<li>{}</li>", escape(&level.sentence_vi(register)));
        }
    }
    html.push_str("</ul><canvas id=\"registers-chart\" height=\"90\"></canvas></section>");
    let share = |coverage: &voxpop_queries::summary::Coverage| {
        if coverage.total == 0 { 0.0 } else { 100.0 * coverage.count as f64 / coverage.total as f64 }
    };
    let labels: Vec<&str> = summary.levels.iter().map(|level| level.label.as_str()).collect();
    let officers: Vec<f64> = summary.levels.iter().map(|level| share(&level.officer_lists_updated)).collect();
    let members: Vec<f64> = summary.levels.iter().map(|level| share(&level.member_lists_updated)).collect();
    let data = json!({"labels": labels, "officers": officers, "members": members}).to_string().replace("</", "<\\/");
    let script = format!(
        "const r = {data};\
         new Chart(document.getElementById('registers-chart'), {{type: 'bar', data: {{labels: r.labels, datasets: [\
         {{label: '% đơn vị đã cập nhật danh sách cán bộ', data: r.officers, backgroundColor: '#b3261e'}},\
         {{label: '% đơn vị đã cập nhật danh sách hội viên', data: r.members, backgroundColor: '#f2b8b5'}}]}},\
         options: {{indexAxis: 'y', scales: {{x: {{min: 0, max: 100}}}}}}}});"
    );
    (html, script)
}

/// `voxpop import --villages FILE.csv`: a villages register (`code,name`, optionally
/// `commune_code` and `removed`) appended to the log as village entries and written to the lake
/// by the registers pipeline; all or nothing, every problem printed with its line and column.
/// With the embedded log, run it while the server is stopped (the log is one process's).
pub async fn import_villages(data_dir: &Path, source: &Path, kafka: Option<String>) -> anyhow::Result<()> {
    use crate::stack::{DataLayout, Stack, StackConfig};
    let bytes = std::fs::read(source).with_context(|| format!("reading {}", source.display()))?;
    let layout = DataLayout::new(data_dir);
    let queries = voxpop_queries::registers::RegisterQueries::new(&layout.lake(), &layout.villages());
    let taken = queries.village_codes_taken().await?;
    let file_name =
        source.file_name().map_or_else(|| source.display().to_string(), |n| n.to_string_lossy().into_owned());
    let submitted_by = format!("import:{file_name}");
    let intake = RegisterIntake {
        units: Units::embedded(),
        scope: voxpop_schema::reports::CENTRAL_CODE,
        now: Utc::now(),
        submitted_by: Some(&submitted_by),
        villages: None,
    };
    let outcome = intake.parse_villages_csv(&bytes, &taken, false);
    for error in &outcome.errors {
        println!("rejected {file_name} {error}");
    }
    anyhow::ensure!(
        outcome.errors.is_empty(),
        "{} problem(s) in {file_name}: nothing was imported",
        outcome.errors.len()
    );
    let records: Vec<RegisterRecord> = outcome.entries.into_iter().map(RegisterRecord::Village).collect();
    if records.is_empty() {
        println!("{file_name}: no villages");
        return Ok(());
    }
    let stack = Stack::start(StackConfig {
        data_dir: data_dir.to_owned(),
        kafka,
        pipeline: PipelineConfig::default(),
        run_pipeline: true,
        topics: None,
    })
    .await?;
    let written_before = stack.registers_stats.written.load(Ordering::Relaxed);
    append(stack.log.as_ref(), &records).await?;
    // Done when the registers pipeline has written them.
    let started = std::time::Instant::now();
    while stack.registers_stats.written.load(Ordering::Relaxed) - written_before < records.len() as u64 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "the villages are on the log but not yet in the lake; they will be written on the next start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack.stop().await;
    info!(villages = records.len(), file = %file_name, "villages imported");
    println!("{} villages imported from {file_name}", records.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period_of(query: &[(&str, &str)]) -> Result<Period, u16> {
        let params = query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        period(&params).map_err(|response| response.status().as_u16())
    }

    #[test]
    fn registers_periods_at_the_ends_of_the_calendar_are_refused_not_overflowed() {
        for query in [
            [("to", "-262143-01-01")],
            [("to", "-262143-01-03")],
            [("to", "+262142-12-31")],
            [("from", "-262143-01-01")],
            [("from", "+262142-12-31")],
            [("to", "1929-12-31")],
            [("week", "9999-W52")],
            [("week", "1900-W01")],
        ] {
            assert_eq!(period_of(&query), Err(400), "{query:?}");
        }
        let to = NaiveDate::from_ymd_opt(1930, 1, 3).unwrap();
        assert_eq!(period_of(&[("to", "1930-01-03")]), Ok(Period { from: EARLIEST_DATE, to }));
        let to = NaiveDate::from_ymd_opt(2025, 9, 21).unwrap();
        let from = NaiveDate::from_ymd_opt(2025, 9, 15).unwrap();
        assert_eq!(period_of(&[("to", "2025-09-21")]), Ok(Period { from, to }));
        assert_eq!(period_of(&[("week", "2025-W38")]), Ok(Period { from, to }));
    }
}

//! Weekly reports over HTTP: entering them (JSON, or an XLSX/CSV upload as offices keep them),
//! the template to fill in, and the synthesis for any unit.
//!
//! Accepted values are appended to `voxpop.reports` before the answer (durable, like petitions);
//! the reports pipeline writes them to the lake. A rejected upload names the row, column and
//! reason of every problem and accepts nothing unless `partial=true`.

use std::collections::{HashMap, HashSet};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;
use voxpop_pipeline::{Record, Topic};
use voxpop_schema::Units;
use voxpop_schema::reports::{self, Catalogue, Level, ReportError, ReportValue, UnitRef};

use crate::http::AppState;
use crate::params::{flag, known_params};
use crate::problem::Problem;

/// The central unit, every caller's unit in open mode (no tokens): the whole country.
const SCOPE: &str = reports::CENTRAL_CODE;

fn report_problem(errors: &[ReportError]) -> Response {
    rows_problem(errors, "Values outside your unit", "The report has invalid values")
}

/// The answer to rows refused (weekly report values, register entries): 403 when one is
/// outside the sender's unit, 400 for a body that could not be read at all, 422 for any other
/// problem; every problem named, with its row and column for spreadsheets.
pub(crate) fn rows_problem(errors: &[ReportError], outside: &str, invalid: &str) -> Response {
    let out_of_scope = errors.iter().any(|e| e.code == "out_of_scope");
    let unreadable = errors
        .iter()
        .any(|e| e.field.is_empty() && matches!(e.code.as_str(), "malformed_json" | "invalid_utf8" | "type"));
    let (status, kind, title) = if out_of_scope {
        (StatusCode::FORBIDDEN, "out-of-scope", outside)
    } else if unreadable {
        (StatusCode::BAD_REQUEST, "validation", "The body could not be read")
    } else {
        (StatusCode::UNPROCESSABLE_ENTITY, "validation", invalid)
    };
    let body = json!({
        "type": format!("https://voxpop.vn/problems/{kind}"),
        "title": title,
        "status": status.as_u16(),
        "detail": format!("{} problem(s); nothing was accepted", errors.len()),
        "errors": errors,
    });
    (status, [(header::CONTENT_TYPE, crate::problem::PROBLEM_JSON)], Json(body)).into_response()
}

/// The codes of the villages the weekly synthesis knows (the CSV register with the lake's
/// entries on top, removed ones dropped): a report is accepted for those villages only, so that
/// what is accepted can be read back.
async fn known_villages(state: &AppState) -> Result<HashSet<String>, Response> {
    let register = voxpop_queries::reports::read_villages(&state.villages).unwrap_or_default();
    match state.reports.villages(&register).await {
        Ok(villages) => Ok(villages.into_iter().map(|village| village.code).collect()),
        Err(err) => Err(Problem::internal(&err).into_response()),
    }
}

/// Whether a JSON report names a village as its unit: only then is the villages register read.
fn names_village(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).ok().is_some_and(|value| {
        value.get("unit").and_then(|unit| unit.as_str()).and_then(|unit| Level::of_code(unit.trim()))
            == Some(Level::Village)
    })
}

/// The query parameters of a request, or the 400 naming every repeated or unknown one.
fn params_of(raw: Option<String>, known: &[&str]) -> Result<HashMap<String, String>, Response> {
    known_params(raw.as_deref(), known).map_err(IntoResponse::into_response)
}

/// A week a read asks about: an ISO week (`2025-W38`) no later than the current one, in Vietnam
/// time, as reports are accepted for; its canonical label.
fn asked_week(raw: &str) -> Result<String, Response> {
    let Some(week) = reports::parse_week(raw) else {
        return Err(
            Problem::bad_parameter("week", format!("`{raw}` is not an ISO week such as 2025-W38")).into_response()
        );
    };
    let current = reports::current_week(Utc::now());
    // Labels are `YYYY-Www` with four-digit years: their order is the weeks' order.
    if week > current {
        return Err(Problem::bad_parameter("week", format!("week {week} has not begun (this is week {current})"))
            .into_response());
    }
    Ok(week)
}

/// The unit a request asks about (the caller's own unit when none is given, so that a commune
/// officer's plain request is about its commune, not the whole country it may not read): 400
/// unless it is a unit of the tree (a village the register holds), 403 outside the caller's unit.
async fn asked_unit(
    state: &AppState,
    caller: &crate::auth::Caller,
    params: &HashMap<String, String>,
) -> Result<String, Response> {
    let code = params.get("unit").map_or(caller.unit.as_str(), |unit| unit.trim());
    let unit = UnitRef::parse(code, Units::embedded())
        .map_err(|err| Problem::bad_parameter("unit", err.to_string()).into_response())?;
    if !in_scope(caller, &unit) {
        return Err(out_of_scope());
    }
    if unit.level() == Level::Village && !known_villages(state).await?.contains(code) {
        return Err(Problem::bad_parameter(
            "unit",
            format!("unknown unit `{code}`: 00, a province, a commune or a registered village code"),
        )
        .into_response());
    }
    Ok(unit.code())
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
pub async fn submit(State(state): State<AppState>, caller: crate::auth::Caller, body: Bytes) -> Response {
    if let Err(response) = crate::auth::keeps_unit_records(&caller, "weekly reports") {
        return response;
    }
    if let Some(problem) = crate::params::repeated_members_problem(&body) {
        return problem.into_response();
    }
    let villages = if names_village(&body) {
        match known_villages(&state).await {
            Ok(villages) => Some(villages),
            Err(response) => return response,
        }
    } else {
        None
    };
    // Units report, not citizens: the sender's token sets what it may report for.
    let sender = crate::auth::sender(&caller);
    let intake = reports::Intake {
        units: Units::embedded(),
        catalogue: Catalogue::default_embedded(),
        scope: &caller.unit,
        now: Utc::now(),
        submitted_by: Some(&sender),
        villages: villages.as_ref(),
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
    caller: crate::auth::Caller,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if let Err(response) = crate::auth::keeps_unit_records(&caller, "weekly reports") {
        return response;
    }
    let params = match params_of(query, &["format", "partial"]) {
        Ok(params) => params,
        Err(response) => return response,
    };
    let partial = match flag(&params, "partial") {
        Ok(partial) => partial,
        Err(problem) => return problem.into_response(),
    };
    let xlsx = match params.get("format").map(String::as_str) {
        Some("xlsx") => true,
        Some("csv") => false,
        _ => return Problem::bad_parameter("format", "`format` must be xlsx or csv").into_response(),
    };
    let villages = match known_villages(&state).await {
        Ok(villages) => villages,
        Err(response) => return response,
    };
    // Parsing a sheet is CPU work (a workbook is inflated and read cell by cell): off the
    // runtime's threads, so that uploads do not stall other requests.
    let (scope, sender) = (caller.unit.clone(), crate::auth::sender(&caller));
    let parsed = tokio::task::spawn_blocking(move || {
        if !xlsx && let Some(error) = csv_beyond_columns(&body) {
            return reports::SheetOutcome { errors: vec![error], ..reports::SheetOutcome::default() };
        }
        let intake = reports::Intake {
            units: Units::embedded(),
            catalogue: Catalogue::default_embedded(),
            scope: &scope,
            now: Utc::now(),
            submitted_by: Some(&sender),
            villages: Some(&villages),
        };
        if xlsx { intake.parse_xlsx(&body, partial) } else { intake.parse_csv(&body, partial) }
    })
    .await;
    let outcome = match parsed {
        Ok(outcome) => outcome,
        Err(err) => return Problem::internal(&err).into_response(),
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

/// `0` -> `A`, `25` -> `Z`, `26` -> `AA`, as spreadsheets name their columns.
fn column_letter(index: usize) -> String {
    let mut letters = Vec::new();
    let mut rest = index + 1;
    while rest > 0 {
        letters.push(char::from(b'A' + ((rest - 1) % 26) as u8));
        rest = (rest - 1) / 26;
    }
    letters.iter().rev().collect()
}

/// The first value of a CSV upload (a report or a register) past column
/// [`reports::MAX_SHEET_COLUMNS`], as the one 422 error naming its cell (`too_many_columns`), as
/// the XLSX reader refuses such a cell; the CSV parsers have no such bound (a header of 80,000
/// names gave 80,000 errors). Blank fields past the bound are ignored, as blank cells are in a
/// workbook. The file is read as the parsers read it: UTF-8 with or without a byte-order mark,
/// the separator (`,` `;` or tab) taken from the first line, records read by the `csv` crate,
/// rows numbered by the line they start on. A file the parsers refuse for another reason (not
/// UTF-8, a quote left open at the end) passes through to them.
pub(crate) fn csv_beyond_columns(bytes: &[u8]) -> Option<ReportError> {
    use reports::MAX_SHEET_COLUMNS;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).ok()?;
    let first_line = text.lines().next().unwrap_or("");
    let delimiter = [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|&candidate| (first_line.matches(char::from(candidate)).count(), candidate == b','))
        .unwrap_or(b',');
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(text.as_bytes());
    let mut record = csv::ByteRecord::new();
    // A record the parsers would refuse (a quote left open) ends the scan: theirs to name.
    while reader.read_byte_record(&mut record).ok()? {
        let Some(column) = (MAX_SHEET_COLUMNS..record.len())
            .find(|&column| record.get(column).is_some_and(|field| !field.trim_ascii().is_empty()))
        else {
            continue;
        };
        let row = record.position().map_or(1, |position| position.line() as usize);
        return Some(ReportError {
            row: Some(row),
            column: Some(column_letter(column)),
            field: String::new(),
            code: "too_many_columns".to_owned(),
            message: format!(
                "ô `{}{row}` của tệp CSV nằm ngoài giới hạn (tối đa {MAX_SHEET_COLUMNS} cột, A đến {}): hãy xoá các ô thừa hoặc chia thành nhiều tệp",
                column_letter(column),
                column_letter(MAX_SHEET_COLUMNS - 1)
            ),
        });
    }
    None
}

/// `GET /api/v1/reports/template?unit=00004[&week=2025-W38]`: the XLSX a unit fills in for itself
/// and the units below it. It lists the units and villages below `unit`, so it is read within the
/// caller's unit like the synthesis.
pub async fn template(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match params_of(query, &["unit", "week"]) {
        Ok(params) => params,
        Err(response) => return response,
    };
    let week = match params.get("week").map(|raw| asked_week(raw)).transpose() {
        Ok(week) => week,
        Err(response) => return response,
    };
    let unit = match asked_unit(&state, &caller, &params).await {
        Ok(unit) => unit,
        Err(response) => return response,
    };
    let unit = unit.as_str();
    // The CSV register with the villages created through the API or an import.
    let register = voxpop_queries::reports::read_villages(&state.villages).unwrap_or_default();
    let villages = match state.reports.villages(&register).await {
        Ok(villages) => villages,
        Err(err) => return Problem::internal(&err).into_response(),
    };
    match reports::template_xlsx(Catalogue::default_embedded(), Units::embedded(), unit, week.as_deref(), &villages) {
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

/// Whether `caller` may read the reports of `unit` (its own unit or one below it).
fn in_scope(caller: &crate::auth::Caller, unit: &UnitRef) -> bool {
    UnitRef::parse(&caller.unit, Units::embedded()).is_ok_and(|scope| scope.contains(unit))
}

/// The 403 for a unit outside the caller's, naming `unit` in `errors` as a 400 would.
fn out_of_scope() -> Response {
    let message = "`unit` is outside your unit";
    Problem::new(StatusCode::FORBIDDEN, "out-of-scope", "Outside your unit", message)
        .naming("unit", "out_of_scope", message)
        .into_response()
}

/// `GET /api/v1/reports/weekly?week=2025-W38[&unit=00]`: the synthesis for one unit, the caller's
/// own when none is named.
pub async fn weekly(State(state): State<AppState>, caller: crate::auth::Caller, RawQuery(query): RawQuery) -> Response {
    let params = match params_of(query, &["unit", "week"]) {
        Ok(params) => params,
        Err(response) => return response,
    };
    let Some(week) = params.get("week") else {
        return Problem::bad_parameter("week", "`week` is required, e.g. 2025-W38").into_response();
    };
    let week = match asked_week(week) {
        Ok(week) => week,
        Err(response) => return response,
    };
    let unit = match asked_unit(&state, &caller, &params).await {
        Ok(unit) => unit,
        Err(response) => return response,
    };
    let villages = voxpop_queries::reports::read_villages(&state.villages).unwrap_or_default();
    match state.reports.weekly(&week, &unit, &villages).await {
        Ok(synthesis) => Json(synthesis).into_response(),
        Err(voxpop_queries::QueryError::BadRequest { field, message }) => {
            Problem::bad_parameter(field, message).into_response()
        }
        Err(err) => Problem::internal(&err).into_response(),
    }
}

fn value_text(value: &Option<reports::Value>) -> String {
    match value {
        None => "—".to_owned(),
        Some(reports::Value::Bool(true)) => "có".to_owned(),
        Some(reports::Value::Bool(false)) => "không".to_owned(),
        Some(reports::Value::Number(n)) => number_text(*n),
        Some(reports::Value::Text(text)) => text.clone(),
    }
}

/// A number as leaders read it: thousands grouped, at most two decimals (`83,194.20`, `1,465`).
fn number_text(n: f64) -> String {
    let cents = (n.abs() * 100.0).round() as u64;
    let sign = if n < 0.0 && cents > 0 { "-" } else { "" };
    let whole = voxpop_queries::summary::thousands(cents / 100);
    match cents % 100 {
        0 => format!("{sign}{whole}"),
        fraction => format!("{sign}{whole}.{fraction:02}"),
    }
}

/// Whether no unit of the synthesis reported anything for its week: neither the unit itself
/// nor any unit below it.
fn nothing_reported(synthesis: &voxpop_queries::synthesis::UnitSynthesis) -> bool {
    !synthesis.reported && synthesis.coverage.iter().all(|level| level.coverage.count == 0)
}

/// The synthesis as an XLSX workbook for leaders: coverage per level, indicators, missing units.
pub fn synthesis_xlsx(synthesis: &voxpop_queries::synthesis::UnitSynthesis) -> anyhow::Result<Vec<u8>> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let sheet = workbook.add_worksheet().set_name("Tổng hợp")?;
    sheet.write_string_with_format(
        0,
        0,
        format!("Tổng hợp báo cáo tuần {} — {}", synthesis.week, synthesis.name),
        &bold,
    )?;
    sheet.write_string_with_format(2, 0, "Cấp", &bold)?;
    sheet.write_string_with_format(2, 1, "Đã báo cáo / tổng số", &bold)?;
    for (i, level) in synthesis.coverage.iter().enumerate() {
        sheet.write_string(3 + i as u32, 0, &level.label)?;
        sheet.write_string(3 + i as u32, 1, &level.coverage.text)?;
    }
    let start = 5 + synthesis.coverage.len() as u32;
    for (c, title) in ["Chỉ tiêu", "Đơn vị tính", "Tuần này", "Tuần trước", "Thay đổi"].iter().enumerate()
    {
        sheet.write_string_with_format(start, c as u16, *title, &bold)?;
    }
    for (i, indicator) in synthesis.indicators.iter().enumerate() {
        let row = start + 1 + i as u32;
        sheet.write_string(row, 0, &indicator.label)?;
        sheet.write_string(row, 1, &indicator.unit)?;
        sheet.write_string(row, 2, value_text(&indicator.value))?;
        sheet.write_string(row, 3, value_text(&indicator.previous))?;
        sheet.write_string(row, 4, indicator.change.map_or(String::new(), |c| format!("{c:+}")))?;
    }
    sheet.set_column_width(0, 48)?;
    let missing = workbook.add_worksheet().set_name("Chưa báo cáo")?;
    missing.write_string_with_format(0, 0, "Mã", &bold)?;
    missing.write_string_with_format(0, 1, "Đơn vị", &bold)?;
    for (i, unit) in synthesis.missing.iter().enumerate() {
        missing.write_string(1 + i as u32, 0, &unit.code)?;
        missing.write_string(1 + i as u32, 1, &unit.name)?;
    }
    Ok(workbook.save_to_buffer()?)
}

/// `GET /bao-cao?week=2025-W38[&unit=00]`: the synthesis for leaders, with a chart of coverage
/// per level; `&format=xlsx` downloads it as a workbook.
pub async fn page(
    State(state): State<AppState>,
    crate::auth::PageCaller(caller): crate::auth::PageCaller,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    // Without `unit`, the caller's own unit, as the API answers.
    let unit = params.get("unit").map_or(caller.unit.as_str(), String::as_str);
    let in_scope =
        UnitRef::parse(unit, Units::embedded()).map_or(caller.unit == SCOPE, |unit| in_scope(&caller, &unit));
    if !in_scope {
        return out_of_scope();
    }
    use std::fmt::Write;
    use voxpop_index::html_escape as escape;
    let asked = params.get("week");
    let week = asked.cloned().unwrap_or_else(|| reports::current_week(Utc::now()));
    let villages = voxpop_queries::reports::read_villages(&state.villages).unwrap_or_default();
    let read = |week: String| {
        let (state, villages) = (&state, &villages);
        async move {
            match state.reports.weekly(&week, unit, villages).await {
                Ok(synthesis) => Ok(synthesis),
                Err(voxpop_queries::QueryError::BadRequest { field, message }) => {
                    let body = format!(
                        "<!doctype html><html lang=\"vi\"><meta charset=\"utf-8\"><p class=\"error\">Tham số không hợp lệ — {field}: {}</p></html>",
                        escape(&message)
                    );
                    Err((StatusCode::BAD_REQUEST, axum::response::Html(body)).into_response())
                }
                Err(err) => Err(Problem::internal(&err).into_response()),
            }
        }
    };
    let mut synthesis = match read(week).await {
        Ok(synthesis) => synthesis,
        Err(response) => return response,
    };
    // Units report through the week: early in a week nobody has yet, and a page of zeros says
    // nothing. Without `week`, such a week gives way to the one before, and the page says so.
    let mut notice = String::new();
    if asked.is_none() && nothing_reported(&synthesis) {
        let this_week = synthesis.week.clone();
        match read(synthesis.previous_week.clone()).await {
            Ok(earlier) => {
                notice = format!(
                    "<p class=\"notice\" id=\"notice\">Tuần {this} chưa có đơn vị nào báo cáo; trang cho xem tuần {shown}. \
                     <a href=\"/bao-cao?week={this}&amp;unit={unit}\">Xem tuần {this}</a></p>",
                    this = escape(&this_week),
                    shown = escape(&earlier.week),
                    unit = escape(unit),
                );
                synthesis = earlier;
            }
            Err(response) => return response,
        }
    }
    if params.get("format").map(String::as_str) == Some("xlsx") {
        return match synthesis_xlsx(&synthesis) {
            Ok(bytes) => (
                [
                    (
                        header::CONTENT_TYPE,
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_owned(),
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"tong-hop-{}-{unit}.xlsx\"", synthesis.week),
                    ),
                ],
                bytes,
            )
                .into_response(),
            Err(err) => Problem::internal(&err).into_response(),
        };
    }
    // The week's days, and links to the weeks before and after (none to a week not begun).
    let (days, nav) = match voxpop_queries::summary::IsoWeek::parse(&synthesis.week) {
        Some(parsed) => (
            format!(" ({})", crate::pages::week_days(parsed)),
            crate::pages::week_nav("/bao-cao", parsed, &format!("&unit={}", escape(unit))),
        ),
        None => (String::new(), String::new()),
    };
    let mut html = String::with_capacity(16 * 1024);
    let _ = write!(
        html,
        "<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\"><title>Báo cáo tuần {week}</title>\
         <style>body{{font-family:system-ui,Arial,sans-serif;margin:0;background:#f5f6f8;color:#1d2733}}\
         header{{background:#b3261e;color:#fff;padding:14px 24px}}header h1{{margin:0;font-size:20px}}\
         section{{background:#fff;border-radius:6px;margin:16px 24px;padding:12px 16px}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #eee;padding:4px 8px;text-align:left}}td.n{{text-align:right}}\
         .weeks{{display:flex;gap:16px;padding:12px 24px 0}}.weeks a{{color:#b3261e}}\
         .notice{{margin:12px 24px 0;padding:8px 12px;background:#fff4e5;border-left:4px solid #e0a100}}.notice a{{color:#b3261e}}\
         @media print{{section{{break-inside:avoid}}.weeks{{display:none}}}}</style><script src=\"/assets/chart.umd.min.js\"></script></head><body>\
         <header><h1>Tổng hợp báo cáo tuần {week}{days} — {name}</h1></header>{nav}{notice}\
         <section><h2>Tiến độ báo cáo, chuyển đổi số theo cấp</h2><table id=\"coverage\"><tr><th>Cấp</th><th>Đã báo cáo / tổng số</th></tr>",
        week = escape(&synthesis.week),
        name = escape(&synthesis.name),
    );
    for level in &synthesis.coverage {
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
            escape(&level.label),
            escape(&level.coverage.text)
        );
    }
    html.push_str("</table><canvas id=\"coverage-chart\" height=\"90\"></canvas></section><section><h2>Chỉ tiêu</h2><table id=\"indicators\"><tr><th>Chỉ tiêu</th><th>Tuần này</th><th>Tuần trước</th><th>Thay đổi</th></tr>");
    for indicator in &synthesis.indicators {
        let _ = write!(
            html,
            "<tr><td>{} ({})</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&indicator.label),
            escape(&indicator.unit),
            escape(&value_text(&indicator.value)),
            escape(&value_text(&indicator.previous)),
            indicator.change.map_or(String::new(), |c| format!("{}{}", if c > 0.0 { "+" } else { "" }, number_text(c)))
        );
    }
    let _ = write!(
        html,
        "</table></section><section><h2>Đơn vị chưa báo cáo ({})</h2><ul id=\"missing\">",
        synthesis.missing.len()
    );
    for missing in synthesis.missing.iter().take(200) {
        let _ = write!(html, "<li>{} — {}</li>", escape(&missing.code), escape(&missing.name));
    }
    let labels: Vec<&str> = synthesis.coverage.iter().map(|c| c.label.as_str()).collect();
    let shares: Vec<f64> = synthesis
        .coverage
        .iter()
        .map(|c| if c.coverage.total == 0 { 0.0 } else { 100.0 * c.coverage.count as f64 / c.coverage.total as f64 })
        .collect();
    let data = json!({"labels": labels, "shares": shares}).to_string().replace("</", "<\\/");
    // The registers of officers and members over the days of the week shown.
    let period = voxpop_queries::summary::IsoWeek::parse(&synthesis.week)
        .map(voxpop_queries::registers::Period::week)
        .unwrap_or_else(|| voxpop_queries::registers::Period::week_of(Utc::now()));
    let (registers_html, registers_script) = match state.registers.summary(&synthesis.code, period).await {
        Ok(summary) => crate::registers_api::page_section(&summary),
        Err(err) => {
            tracing::warn!(error = %err, unit = %synthesis.code, "registers summary unavailable for the reports page");
            (
                "<section id=\"registers\"><h2>Danh sách cán bộ, hội viên</h2><p class=\"error\">Chưa đọc được danh sách.</p></section>"
                    .to_owned(),
                String::new(),
            )
        }
    };
    let _ = write!(
        html,
        "</ul><p><a href=\"/bao-cao?week={week}&unit={unit}&format=xlsx\">Tải bảng tổng hợp (Excel)</a></p></section>\
         {registers_html}\
         <script>const d = {data}; Chart.defaults.animation = false;\
         new Chart(document.getElementById('coverage-chart'), {{type: 'bar', data: {{labels: d.labels, datasets: [{{label: '% đơn vị đã báo cáo', data: d.shares, backgroundColor: '#b3261e'}}]}},\
         options: {{indexAxis: 'y', scales: {{x: {{min: 0, max: 100}}}}}}}});\
         {registers_script}\
         document.body.dataset.chartsReady = 'yes';</script></body></html>",
        week = escape(&synthesis.week),
        unit = escape(&synthesis.code),
    );
    axum::response::Html(html).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_with_thousands_and_two_decimals_at_most() {
        assert_eq!(number_text(83194.2), "83,194.20");
        assert_eq!(number_text(1465.0), "1,465");
        assert_eq!(number_text(68.89), "68.89");
        assert_eq!(number_text(0.1 + 0.2), "0.30");
        assert_eq!(number_text(-1234.5), "-1,234.50");
        assert_eq!(number_text(-0.001), "0");
        assert_eq!(value_text(&Some(reports::Value::Number(2_280.0))), "2,280");
        assert_eq!(value_text(&None), "—");
    }
}

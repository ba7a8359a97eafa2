//! The HTTP API: translation between HTTP and the core, nothing more.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;
use voxpop_connectors::{Accepted, Intake, IntakeError};
use voxpop_index::{PetitionIndex, SearchRequest};
use voxpop_pipeline::PipelineStats;
use voxpop_queries::PetitionQueries;
use voxpop_schema::topics::Taxonomy;

use crate::problem::Problem;

/// Largest request body accepted by `POST /api/v1/petitions`: the body limit of 20,000
/// characters is at most 80 KB of UTF-8, plus the other fields and JSON escaping.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;
/// Most hits one search page returns.
pub const MAX_SEARCH_LIMIT: usize = 100;

#[derive(Clone)]
pub struct AppState {
    pub intake: Arc<Intake>,
    pub index: Arc<PetitionIndex>,
    pub queries: Arc<PetitionQueries>,
    pub stats: Arc<PipelineStats>,
    pub log_kind: &'static str,
    pub ready: Arc<AtomicBool>,
    pub exports: Arc<crate::exchange::ExportJobs>,
    pub log: Arc<dyn voxpop_pipeline::EventLog>,
    pub reports: Arc<voxpop_queries::reports::ReportQueries>,
    /// The villages register of the data directory.
    pub villages: std::path::PathBuf,
    /// The registers of officers and members and the merged villages register.
    pub registers: Arc<voxpop_queries::registers::RegisterQueries>,
    pub tokens: Arc<crate::auth::TokenStore>,
    /// Decides handling actions and holds current statuses.
    pub desk: Arc<crate::handling::Desk>,
    pub handling_queries: Arc<voxpop_queries::handling::HandlingQueries>,
    /// Limits petitions per client on the public intake.
    pub intake_limit: Arc<crate::ratelimit::IntakeLimit>,
    pub webhooks: Arc<crate::webhooks::DeliveryBoard>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(crate::pages::search_page))
        .route("/tong-hop", get(crate::pages::summary_page))
        .route("/kien-nghi/{id}", get(crate::pages::petition_page))
        .route("/bao-cao", get(crate::pages::report_page))
        .route("/dang-nhap", get(crate::staff_pages::sign_in_form).post(crate::staff_pages::sign_in))
        .route("/dang-xuat", get(crate::staff_pages::sign_out))
        .route("/xu-ly", get(crate::staff_pages::inbox_page))
        .route("/xu-ly/{id}", get(crate::staff_pages::handle_page).post(crate::staff_pages::handle_action))
        .route("/assets/chart.umd.min.js", get(crate::pages::chart_js))
        .route("/assets/vietnam-communes.js", get(crate::pages::vietnam_communes_js))
        .route("/healthz", get(healthz))
        .route("/api/v1/petitions", post(submit_petition))
        .route("/api/v1/petitions/{id}", get(get_petition))
        .route("/api/v1/petitions/{id}/actions", post(crate::handling::act))
        .route("/api/v1/petitions/{id}/history", get(crate::handling::history))
        .route("/api/v1/inbox", get(crate::handling::inbox))
        .route("/api/v1/handling/performance", get(crate::handling::performance))
        .route("/api/v1/track/{code}", get(crate::handling::track))
        .route("/api/v1/track/{code}/actions", post(crate::handling::track_act))
        .route("/api/v1/search", get(search))
        .route("/api/v1/summaries/weekly", get(weekly_summary))
        // Its own body limit: a query text may take 512 KiB, more once escaped as JSON.
        .route(
            "/api/v1/sql",
            post(crate::exchange::run_sql).layer(DefaultBodyLimit::max(crate::exchange::MAX_SQL_REQUEST_BYTES)),
        )
        .route("/api/v1/reports", post(crate::reports_api::submit))
        .route("/api/v1/reports/upload", post(crate::reports_api::upload))
        .route("/api/v1/reports/template", get(crate::reports_api::template))
        .route("/api/v1/reports/weekly", get(crate::reports_api::weekly))
        .route("/api/v1/registers", get(crate::registers_api::list).post(crate::registers_api::submit))
        .route("/api/v1/registers/upload", post(crate::registers_api::upload))
        .route("/api/v1/registers/summary", get(crate::registers_api::summary))
        .route("/api/v1/registers/template", get(crate::registers_api::template))
        .route("/api/v1/villages", get(crate::registers_api::list_villages).post(crate::registers_api::create_villages))
        .route("/api/v1/exports", post(crate::exchange::start_export))
        .route("/api/v1/exports/{id}", get(crate::exchange::export_status))
        .route("/api/v1/exports/{id}/files/{*path}", get(crate::exchange::export_file))
        .nest("/open311/v2", crate::open311::router())
        .route("/api/v1/notifications/deliveries", get(crate::webhooks::deliveries))
        .fallback(|| async { Problem::not_found("no such resource") })
        .method_not_allowed_fallback(|| async {
            Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed", "")
        })
        .layer(axum::middleware::map_response(crate::problem::plain_rejections_as_problems))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(axum::middleware::from_fn(crate::problem::close_after_refused_body))
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Response {
    let ready = state.ready.load(Ordering::Acquire);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ready { "ready" } else { "starting" },
        "log": state.log_kind,
        "lake_version": state.stats.lake_version.load(Ordering::Relaxed),
        "index_version": state.stats.index_version.load(Ordering::Relaxed),
        "petitions_written": state.stats.written.load(Ordering::Relaxed),
        "dead_lettered": state.stats.dead_lettered.load(Ordering::Relaxed),
    });
    (status, Json(body)).into_response()
}

/// A body declared as something other than JSON (a form, multipart, text in another encoding) is
/// refused with 415 rather than read as JSON anyway; no `Content-Type` at all is taken as JSON,
/// as command-line clients send it.
fn json_content_type(headers: &axum::http::HeaderMap) -> Result<(), Problem> {
    // A compressed body would be read as bytes that are not JSON: say what is wrong instead.
    let encodings: Vec<&str> = headers
        .get_all(axum::http::header::CONTENT_ENCODING)
        .iter()
        .map(|value| value.to_str().unwrap_or("?").trim())
        .filter(|encoding| !encoding.eq_ignore_ascii_case("identity"))
        .collect();
    if !encodings.is_empty() {
        let problem = Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "media-type",
            "The body must not be compressed",
            format!("`Content-Encoding: {}`: send the petition uncompressed", encodings.join(", ")),
        );
        return Err(problem.naming(
            "Content-Encoding",
            "unsupported_encoding",
            "petitions are small: send them without Content-Encoding",
        ));
    }
    let Some(value) = headers.get(axum::http::header::CONTENT_TYPE) else {
        return Ok(());
    };
    let declared = value.to_str().unwrap_or_default();
    let mut parts = declared.split(';').map(str::trim);
    let media_type = parts.next().unwrap_or_default().to_ascii_lowercase();
    let json =
        media_type == "application/json" || (media_type.starts_with("application/") && media_type.ends_with("+json"));
    let utf8 = parts.all(|parameter| match parameter.split_once('=') {
        Some((name, charset)) if name.trim().eq_ignore_ascii_case("charset") => {
            charset.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    });
    if json && utf8 {
        return Ok(());
    }
    let problem = Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "media-type",
        "The body must be JSON",
        format!("`Content-Type: {declared}`: send the petition as application/json in UTF-8"),
    );
    Err(problem.naming("Content-Type", "unsupported_media_type", "expected application/json (charset utf-8)"))
}

async fn submit_petition(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    extensions: axum::http::Extensions,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(problem) = state.intake_limit.check(&headers, &extensions) {
        return problem.into_response();
    }
    if let Err(problem) = json_content_type(&headers) {
        return problem.into_response();
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let detail = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("request body is larger than {MAX_REQUEST_BYTES} bytes")
            } else {
                rejection.body_text()
            };
            return Problem::new(status, "request-body", "The request body could not be read", detail).into_response();
        }
    };
    match state.intake.submit_json(&body).await {
        Ok(Accepted::Created(receipt)) => (StatusCode::CREATED, Json(receipt)).into_response(),
        Ok(Accepted::Duplicate(receipt)) => (StatusCode::OK, Json(receipt)).into_response(),
        Err(IntakeError::Invalid(errors)) => Problem::invalid(&errors).into_response(),
        Err(IntakeError::Unavailable(reason)) => {
            Problem::unavailable(format!("the petition was not accepted: {reason}"), 5).into_response()
        }
    }
}

async fn get_petition(State(state): State<AppState>, caller: crate::auth::Caller, Path(id): Path<String>) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return Problem::bad_parameter("id", format!("`{id}` is not a petition id (UUID)")).into_response();
    };
    // The index knows when the petition was received, which narrows the lake scan to its week.
    let received_at = match state.index.get(&id) {
        Ok(found) => found.map(|hit| hit.received_at),
        Err(err) => return Problem::internal(&err).into_response(),
    };
    match state.queries.petition(&id, received_at).await {
        // No caller is entitled to personal data until roles exist: contact fields and numbers
        // in the text are masked on this public path.
        // Another unit's petition is not there for this caller: the same answer as a wrong id.
        Ok(Some(petition)) if reads_petition(&state, &caller, &petition) => {
            if caller.personal_data() {
                Json(petition).into_response()
            } else {
                Json(voxpop_schema::privacy::mask_petition(&petition)).into_response()
            }
        }
        Ok(Some(_)) => Problem::not_found(format!("no petition `{id}` in your unit")).into_response(),
        Ok(None) => Problem::not_found(format!(
            "no petition `{id}` in the lake (a petition just accepted appears within seconds)"
        ))
        .into_response(),
        Err(err) => Problem::internal(&err).into_response(),
    }
}

/// Whether `caller` may read `petition` by its id: it lies in the caller's unit, or the caller's
/// unit handles it now (placed elsewhere, then transferred or escalated), as on the inbox and
/// the petition's history.
pub fn reads_petition(
    state: &AppState,
    caller: &crate::auth::Caller,
    petition: &voxpop_schema::petition::Petition,
) -> bool {
    caller.sees(&petition.province_code, &petition.commune_code)
        || state.desk.status(&petition.id).is_some_and(|status| {
            voxpop_schema::workflow::covers(voxpop_schema::units::Units::embedded(), &caller.unit, &status.unit)
        })
}

/// The request narrowed to the caller's scope; 403 when it asks for another unit's petitions.
pub fn scoped_search(mut request: SearchRequest, caller: &crate::auth::Caller) -> Result<SearchRequest, Problem> {
    let forbidden = |field: &str| {
        Problem::new(
            StatusCode::FORBIDDEN,
            "out-of-scope",
            "Outside your unit",
            format!("`{field}` is outside unit {}", caller.unit),
        )
    };
    if let Some(province) = caller.province() {
        if request.province.as_ref().is_some_and(|asked| *asked != province) {
            return Err(forbidden("province"));
        }
        request.province = Some(province);
    }
    if let Some(commune) = caller.commune() {
        if request.commune.as_ref().is_some_and(|asked| *asked != commune) {
            return Err(forbidden("commune"));
        }
        request.commune = Some(commune);
    }
    private_query(&request.q, caller)?;
    Ok(request)
}

/// Refuses a query that would find personal data the caller may not see. The index holds the
/// text unmasked, so without this a search for a phone number answers whether, where and when
/// someone wrote it, even with every snippet masked; [`voxpop_schema::privacy::personal_query`]
/// says which queries could. Callers with personal data search as they like.
fn private_query(q: &str, caller: &crate::auth::Caller) -> Result<(), Problem> {
    use voxpop_schema::privacy::PersonalQuery;
    if caller.personal_data() {
        return Ok(());
    }
    let Some(found) = voxpop_schema::privacy::personal_query(q) else {
        return Ok(());
    };
    let what = match found {
        PersonalQuery::Email => "an email address",
        PersonalQuery::Number => "a phone or ID number",
        PersonalQuery::NumberPart => {
            "digits that could be part of a phone or ID number (a group of 3 or more starting with 0, \
             or groups of 6 digits or more together)"
        }
    };
    let message = format!("`q` holds {what}, which your role may not see: search by the matter's words instead");
    let problem =
        Problem::new(StatusCode::FORBIDDEN, "personal-data", "Personal data cannot be searched", message.clone());
    Err(problem.naming("q", "personal_data", message))
}

async fn search(State(state): State<AppState>, caller: crate::auth::Caller, RawQuery(query): RawQuery) -> Response {
    let request = match crate::params::query_params(query.as_deref())
        .and_then(|params| search_request(&params))
        .and_then(|request| scoped_search(request, &caller))
    {
        Ok(request) => request,
        Err(problem) => return problem.into_response(),
    };
    let index = state.index.clone();
    match tokio::task::spawn_blocking(move || index.search(&request)).await {
        Ok(Ok(mut results)) => {
            // Snippets are cut out of the body, and some titles are cut to length: what touches
            // a cut is hidden too.
            for hit in &mut results.hits {
                hit.title = voxpop_schema::privacy::mask_excerpt(&hit.title);
                hit.snippet = voxpop_schema::privacy::mask_excerpt(&hit.snippet);
            }
            Json(results).into_response()
        }
        Ok(Err(err)) => Problem::internal(&err).into_response(),
        Err(err) => Problem::internal(&err).into_response(),
    }
}

async fn weekly_summary(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
    RawQuery(query): RawQuery,
) -> Response {
    let mut params = match crate::params::known_params(query.as_deref(), &["week", "province", "commune"]) {
        Ok(params) => params,
        Err(problem) => return problem.into_response(),
    };
    // A commune named by its pre-2025 code is the commune it became, as in search; an unknown
    // one is named before the scope is checked.
    let mut commune_province = None;
    if let Some(raw) = params.get("commune").cloned() {
        match voxpop_schema::units::Units::embedded().resolve_commune(&raw, None) {
            Ok(resolved) => {
                commune_province = Some(resolved.province.code.clone());
                params.insert("commune".to_owned(), resolved.commune.code.clone());
            }
            Err(err) => return Problem::bad_parameter("commune", err.to_string()).into_response(),
        }
    }
    // A commune's staff read their commune's summary; a province's, their province's: another
    // unit's is a 403, whichever parameter names it.
    let outside_province =
        caller.province().is_some_and(|mine| commune_province.as_ref().is_some_and(|asked| *asked != mine));
    for (key, mine) in [("province", caller.province()), ("commune", caller.commune())] {
        if let Some(mine) = mine {
            if params.get(key).is_some_and(|asked| *asked != mine) || (key == "province" && outside_province) {
                return Problem::new(
                    StatusCode::FORBIDDEN,
                    "out-of-scope",
                    "Outside your unit",
                    format!("`{key}` is outside your unit"),
                )
                .into_response();
            }
            params.insert(key.to_owned(), mine);
        }
    }
    let week = match params.get("week") {
        None => voxpop_queries::summary::IsoWeek::last_ended(chrono::Utc::now()),
        Some(raw) => match voxpop_queries::summary::IsoWeek::parse(raw) {
            Some(week) => week,
            None => {
                return Problem::bad_parameter("week", format!("`{raw}` is not an ISO week such as 2025-W38"))
                    .into_response();
            }
        },
    };
    let (province, commune) = (params.get("province").map(String::as_str), params.get("commune").map(String::as_str));
    match state.queries.weekly_summary_in(week, province, commune).await {
        Ok(summary) => Json(summary).into_response(),
        Err(voxpop_queries::QueryError::BadRequest { field, message }) => {
            Problem::bad_parameter(field, message).into_response()
        }
        Err(err) => Problem::internal(&err).into_response(),
    }
}

/// The `province` and `commune` filters of a search, checked against the unit lists: an unknown
/// code is an error rather than a search that can only come back empty, and a commune named by
/// its pre-2025 code finds the petitions of the commune it became (as intake files them).
fn search_place(
    params: &HashMap<String, String>,
    errors: &mut Vec<voxpop_schema::FieldError>,
) -> (Option<String>, Option<String>) {
    let units = voxpop_schema::units::Units::embedded();
    let province = params.get("province").filter(|p| !p.is_empty()).cloned();
    if let Some(code) = &province
        && units.province(code).is_none()
    {
        errors.push(voxpop_schema::FieldError::new(
            "province",
            "unknown_province",
            format!("unknown province code `{code}`"),
        ));
        return (None, None);
    }
    let Some(raw) = params.get("commune").filter(|c| !c.is_empty()) else {
        return (province, None);
    };
    match units.resolve_commune(raw, None) {
        Ok(resolved) => {
            if let Some(asked) = &province
                && *asked != resolved.province.code
            {
                errors.push(voxpop_schema::FieldError::new(
                    "commune",
                    "not_in_province",
                    format!("commune {raw} is not in province {asked}"),
                ));
            }
            (province, Some(resolved.commune.code.clone()))
        }
        Err(err) => {
            errors.push(voxpop_schema::FieldError::new("commune", "unknown_commune", err.to_string()));
            (province, None)
        }
    }
}

/// Reads the search parameters, naming every bad one.
pub fn search_request(params: &HashMap<String, String>) -> Result<SearchRequest, Problem> {
    const KNOWN: [&str; 10] =
        ["q", "province", "commune", "topic", "state", "from", "to", "limit", "offset", "proximity"];
    let mut errors = crate::params::unknown_parameters(params, &KNOWN);
    let mut number = |name: &str, default: usize, max: usize| -> usize {
        match params.get(name) {
            None => default,
            Some(raw) => match raw.parse::<usize>() {
                Ok(value) if value <= max => value,
                _ => {
                    errors.push(voxpop_schema::FieldError::new(
                        name,
                        "invalid",
                        format!("`{name}` must be an integer from 0 to {max}"),
                    ));
                    default
                }
            },
        }
    };
    let limit = number("limit", 20, MAX_SEARCH_LIMIT);
    let offset = number("offset", 0, 10_000);
    let mut date = |name: &str, end_of_day: bool| -> Option<DateTime<Utc>> {
        let raw = params.get(name)?;
        if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
            return Some(at.with_timezone(&Utc));
        }
        // A day is Vietnam's day, as staff mean it: from its first moment, or to its last.
        if let Some(day) = crate::params::iso_date(raw) {
            let start = if end_of_day { day.succ_opt() } else { Some(day) };
            let start = start.and_then(voxpop_schema::calendar::vietnam_day_start);
            return start.map(|at| if end_of_day { at - chrono::Duration::microseconds(1) } else { at });
        }
        errors.push(voxpop_schema::FieldError::new(
            name,
            "format",
            format!("`{name}` must be a date (2025-09-15) or an RFC 3339 date-time"),
        ));
        None
    };
    let from = date("from", false);
    let to = date("to", true);
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        errors.push(voxpop_schema::FieldError::new("to", "range", "`to` is before `from`"));
    }
    let topic = params.get("topic").filter(|t| !t.is_empty()).cloned();
    if let Some(topic) = &topic
        && Taxonomy::default_embedded().topic(topic).is_none()
    {
        let known: Vec<&str> = Taxonomy::default_embedded().topics().iter().map(|t| t.code.as_str()).collect();
        errors.push(voxpop_schema::FieldError::new(
            "topic",
            "unknown_topic",
            format!("unknown topic `{topic}`, expected one of {}", known.join(", ")),
        ));
    }
    let state = params.get("state").filter(|s| !s.is_empty()).cloned();
    if let Some(state) = &state
        && voxpop_schema::workflow::State::parse(state).is_none()
    {
        let known: Vec<&str> = voxpop_schema::workflow::State::ALL.iter().map(|s| s.as_str()).collect();
        errors.push(voxpop_schema::FieldError::new(
            "state",
            "unknown_state",
            format!("unknown state `{state}`, expected one of {}", known.join(", ")),
        ));
    }
    let proximity = match params.get("proximity").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => {
            errors.push(voxpop_schema::FieldError::new("proximity", "invalid", "`proximity` must be true or false"));
            false
        }
    };
    let q = params.get("q").cloned().unwrap_or_default();
    let chars = q.chars().count();
    if chars > voxpop_index::MAX_QUERY_CHARS {
        errors.push(voxpop_schema::FieldError::new(
            "q",
            "too_long",
            format!("`q` has {chars} characters, at most {} are accepted", voxpop_index::MAX_QUERY_CHARS),
        ));
    }
    let (province, commune) = search_place(params, &mut errors);
    if !errors.is_empty() {
        return Err(Problem::invalid(&errors).with_status(StatusCode::BAD_REQUEST));
    }
    Ok(SearchRequest { proximity, q, province, commune, topic, state, from, to, limit, offset })
}

//! The pages staff work in (Vietnamese): sign in with an API token, the unit's inbox (overdue
//! first, with the on-time and satisfaction figures of the units below), and one petition with
//! its history and the actions its state allows.
//!
//! Pages are rendered on the server and work without scripts; forms post
//! `application/x-www-form-urlencoded` and answer with a redirect (303) after an action, so a
//! reload never repeats it. The sign-in cookie is HttpOnly and SameSite=Strict (no cross-site
//! form can act with it).

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;
use voxpop_index::html_escape as escape;
use voxpop_queries::summary::thousands;
use voxpop_schema::calendar::Deadlines;
use voxpop_schema::text::{is_blank, stray_control};
use voxpop_schema::workflow::{self, Action, ActionRequest, State as Stage};
use voxpop_schema::{FieldError, Units};

use crate::auth::{Caller, PageCaller, SESSION_COOKIE};
use crate::handling::{InboxParams, inbox_items, masked_for, performance_rows, unit_name};
use crate::http::AppState;
use crate::pages::{STYLE, problem_heading, problem_html, problem_status};
use crate::params::{known_params, query_params};
use crate::problem::{Problem, ProblemField};

const EXTRA_STYLE: &str = "
table{border-collapse:collapse;background:#fff;width:100%;font-size:14px}th,td{padding:6px 10px;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
th{background:#eef0f3}tr.overdue td{background:#fdecea}.badge{display:inline-block;padding:1px 8px;border-radius:10px;background:#e8eaed;font-size:12px}
.badge.overdue{background:#b3261e;color:#fff}.panel{background:#fff;border-radius:6px;padding:16px 20px;margin:16px 24px}
.panel form{padding:8px 0;border:0;background:none}.ok{color:#1e7b34;font-weight:600}nav a{color:#fff;margin-left:16px}
header{display:flex;justify-content:space-between;align-items:center}textarea{width:100%;min-height:70px;font:inherit}
ol.timeline{padding-left:20px}ol.timeline li{margin-bottom:6px}.chart{max-width:900px}
";

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{STYLE}{EXTRA_STYLE}</style></head><body>\
         <header><h1>{}</h1><nav><a href=\"/xu-ly\">Hộp xử lý</a><a href=\"/\">Tra cứu</a><a href=\"/tong-hop\">Tổng hợp</a>\
         <a href=\"/bao-cao\">Báo cáo tuần</a><a href=\"/dang-xuat\">Đăng xuất</a></nav></header>{body}</body></html>",
        escape(title),
        escape(title)
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// Only a path of this site may follow a sign-in (no open redirect).
fn safe_next(next: &str) -> &str {
    // A path of this site only: not another host (`//host`, `/\\host`), and nothing that cannot
    // stand in a `Location` header (control characters such as a CR LF would end it).
    let valid = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && HeaderValue::from_str(next).is_ok()
        && !next.chars().any(char::is_control);
    if valid { next } else { "/xu-ly" }
}

/// The sign-in page (also what a page answers, with 401, to a request without a valid token).
pub fn sign_in_page(status: StatusCode, next: &str, message: Option<&str>) -> Response {
    let message = message.map_or(String::new(), |m| format!("<p class=\"error\">{}</p>", escape(m)));
    sign_in_page_with(status, next, &message)
}

/// The sign-in page with `message_html` (already escaped) above the form.
fn sign_in_page_with(status: StatusCode, next: &str, message: &str) -> Response {
    let body = format!(
        "<section class=\"panel\"><h2>Đăng nhập bằng mã truy cập</h2>{message}\
         <p>Mã truy cập do quản trị viên cấp (<code>voxpop token create</code>), dạng <code>vxp_…</code>.</p>\
         <form method=\"post\" action=\"/dang-nhap\"><input type=\"hidden\" name=\"next\" value=\"{}\">\
         <input type=\"password\" name=\"token\" id=\"token\" aria-label=\"Mã truy cập\" size=\"60\" required autocomplete=\"off\">\
         <button type=\"submit\" id=\"sign-in\">Đăng nhập</button></form></section>",
        escape(safe_next(next))
    );
    page(status, "Đăng nhập", &body)
}

/// `GET /dang-nhap[?next=/xu-ly/...]`: a repeated or unknown parameter is a 400 naming it.
pub async fn sign_in_form(RawQuery(raw): RawQuery) -> Response {
    match known_params(raw.as_deref(), &["next"]) {
        Ok(params) => sign_in_page(StatusCode::OK, params.get("next").map_or("/xu-ly", String::as_str), None),
        Err(problem) => {
            sign_in_page_with(problem_status(&problem), "/xu-ly", &problem_html("Tham số không hợp lệ", &problem))
        }
    }
}

/// The sign-in form's fields (lenient: the sign-in only reads `token` and `next`).
fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// The fields the action forms of [`render_petition`] send (each form some of them).
const ACTION_FIELDS: [&str; 5] = ["action", "note", "answer", "unit", "days"];
/// The free-text fields, typed in a textarea: the only ones where line breaks and tabs belong.
const FREE_TEXT_FIELDS: [&str; 2] = ["note", "answer"];
/// Longest field name an error repeats back (a name is the sender's text, of any length).
const MAX_NAMED_CHARS: usize = 64;

/// Reads an action form (`application/x-www-form-urlencoded`) as strictly as the actions API
/// reads its JSON: a repeated or unknown field, a name or value that is not UTF-8, a control
/// character (but the line breaks and tabs of a free text) and a field that shows nothing are
/// refused, each named, and never guessed at (a map keeps the last of two values; a lossy decoding
/// stores U+FFFD; NUL counts as a reason). 400 when the body cannot be read as text, 422
/// otherwise.
/// `deadlines` give the range of `days` that a refusal states.
fn action_form(body: &[u8], deadlines: &Deadlines) -> Result<ActionRequest, Problem> {
    let mut fields: HashMap<&str, String> = HashMap::new();
    let mut errors: Vec<FieldError> = Vec::new();
    let mut reported: HashSet<(String, &str)> = HashSet::new();
    let mut report = |errors: &mut Vec<FieldError>, field: &str, code: &'static str, message: String| {
        let field: String = field.chars().take(MAX_NAMED_CHARS).collect();
        if reported.insert((field.clone(), code)) {
            errors.push(FieldError::new(&field, code, message));
        }
    };
    let mut unreadable = false;
    // Names read so far, a value unreadable or not: a second one is a repeat either way.
    let mut seen: HashSet<&str> = HashSet::new();
    for pair in body.split(|&byte| byte == b'&').filter(|pair| !pair.is_empty()) {
        let (name, value) = match pair.iter().position(|&byte| byte == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        let name = match String::from_utf8(form_decode(name)) {
            Ok(name) => name,
            Err(err) => {
                unreadable = true;
                let name = String::from_utf8_lossy(err.as_bytes()).into_owned();
                report(&mut errors, &name, "invalid_utf8", "the field name is not valid UTF-8".to_owned());
                continue;
            }
        };
        let Some(known) = ACTION_FIELDS.iter().copied().find(|known| *known == name) else {
            let shown: String = name.chars().take(MAX_NAMED_CHARS).collect();
            let message = format!("unknown field `{shown}`, expected one of {}", ACTION_FIELDS.join(", "));
            report(&mut errors, &name, "unknown_field", message);
            continue;
        };
        if !seen.insert(known) {
            report(&mut errors, known, "duplicate_field", format!("`{known}` is given more than once"));
            continue;
        }
        match String::from_utf8(form_decode(value)) {
            Ok(value) => {
                fields.insert(known, value);
            }
            Err(_) => {
                unreadable = true;
                report(&mut errors, known, "invalid_utf8", format!("`{known}` is not valid UTF-8"));
            }
        }
    }
    for name in ACTION_FIELDS {
        let Some(value) = fields.get(name) else { continue };
        if let Some(control) = stray_control(value, FREE_TEXT_FIELDS.contains(&name)) {
            let message = format!("`{name}` holds the control character U+{:04X}", u32::from(control));
            report(&mut errors, name, "control_character", message);
        } else if is_blank(value) {
            let message = format!("`{name}` shows nothing (only white space or invisible characters)");
            report(&mut errors, name, "blank", message);
        }
    }
    if !fields.contains_key("action") && !errors.iter().any(|e| e.field == "action") {
        report(&mut errors, "action", "required", "`action` is required".to_owned());
    }
    let days = match fields.get("days").filter(|_| !errors.iter().any(|e| e.field == "days")) {
        None => None,
        Some(raw) => match raw.trim().parse::<u32>() {
            Ok(days) => Some(days),
            // A whole number beyond what `days` can hold is out of its range, as the state
            // machine says of one within it.
            Err(_) if !raw.trim().is_empty() && raw.trim().bytes().all(|b| b.is_ascii_digit()) => {
                let error = workflow::out_of_range("days", &raw.trim(), deadlines);
                report(&mut errors, "days", "out_of_range", error.message);
                None
            }
            Err(_) => {
                let range = workflow::whole_range("days", deadlines).unwrap_or(1..=1);
                let message =
                    format!("`days` must be a whole number of working days from {} to {}", range.start(), range.end());
                report(&mut errors, "days", "invalid", message);
                None
            }
        },
    };
    if !errors.is_empty() {
        let problem = Problem::invalid(&errors);
        return Err(if unreadable { problem.with_status(StatusCode::BAD_REQUEST) } else { problem });
    }
    let text = |name: &str| fields.get(name).map(|value| value.trim().to_owned());
    Ok(ActionRequest {
        action: text("action").unwrap_or_default(),
        note: text("note"),
        answer: text("answer"),
        unit: text("unit"),
        days,
        rating: None,
        null_members: Vec::new(),
    })
}

/// The longest part of a declared `Content-Type` a refusal repeats back.
const MAX_SHOWN_CONTENT_TYPE: usize = 100;

/// An action form must be declared `application/x-www-form-urlencoded`, with no charset or
/// `charset=utf-8` (names and values in any case): what browsers send for the page's forms, as
/// the page is UTF-8. Anything else is a 415 naming `Content-Type` (in Vietnamese, on the page)
/// rather than a body read anyway: with no `Content-Type` the body may be anything, and the
/// bytes of another charset (`iso-8859-1`) read as UTF-8 would store a reason nobody wrote, or
/// blame a field for bytes it never held.
fn form_content_type(headers: &HeaderMap) -> Result<(), Problem> {
    let declared =
        headers.get(header::CONTENT_TYPE).map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let accepted = declared.as_deref().is_some_and(|declared| {
        let mut parts = declared.split(';').map(str::trim);
        let media_type = parts.next().unwrap_or_default();
        media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded")
            && parts.all(|parameter| match parameter.split_once('=') {
                Some((name, charset)) if name.trim().eq_ignore_ascii_case("charset") => {
                    charset.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
                }
                _ => true,
            })
    });
    if accepted {
        return Ok(());
    }
    let expected = "application/x-www-form-urlencoded (UTF-8)";
    let (detail, message) = match declared {
        None => (
            format!("no `Content-Type`: send the form as {expected}"),
            format!("yêu cầu không có Content-Type; biểu mẫu phải được gửi dạng {expected}"),
        ),
        Some(declared) => {
            let mut shown: String = declared.chars().take(MAX_SHOWN_CONTENT_TYPE).collect();
            if shown.len() < declared.len() {
                shown.push('…');
            }
            (
                format!("`Content-Type: {shown}`: send the form as {expected}"),
                format!("biểu mẫu được gửi dạng `{shown}`, nhưng phải là {expected}"),
            )
        }
    };
    let problem =
        Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "media-type", "The form must be URL-encoded UTF-8", detail);
    Err(problem.naming("Content-Type", "unsupported_media_type", message))
}

/// One name or value of a form body, decoded to bytes: `+` is a space, `%XX` the byte XX (a `%`
/// not followed by two hex digits stands for itself, as browsers and `form_urlencoded` read it).
fn form_decode(input: &[u8]) -> Vec<u8> {
    let hex = |byte: u8| (byte as char).to_digit(16).map(|digit| digit as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => match (input.get(i + 1).copied().and_then(hex), input.get(i + 2).copied().and_then(hex)) {
                (Some(high), Some(low)) => {
                    out.push((high << 4) | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    out
}

/// `POST /dang-nhap`: checks the token and keeps it in the session cookie.
pub async fn sign_in(State(state): State<AppState>, body: Bytes) -> Response {
    let fields = form(&body);
    let token = fields.get("token").map(|t| t.trim().to_owned()).unwrap_or_default();
    let next = safe_next(fields.get("next").map_or("/xu-ly", String::as_str)).to_owned();
    let mut headers = HeaderMap::new();
    if let Ok(value) = format!("Bearer {token}").parse() {
        headers.insert(header::AUTHORIZATION, value);
    }
    match state.tokens.caller(&headers) {
        Ok(caller) if caller.authenticated => {
            let cookie = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200");
            (StatusCode::SEE_OTHER, [(header::LOCATION, next), (header::SET_COOKIE, cookie)]).into_response()
        }
        Ok(_) => {
            sign_in_page(StatusCode::BAD_REQUEST, &next, Some("Chưa có mã truy cập nào: hệ thống đang ở chế độ mở."))
        }
        Err(_) => sign_in_page(StatusCode::UNAUTHORIZED, &next, Some("Mã truy cập không đúng hoặc đã bị thu hồi.")),
    }
}

/// `GET /dang-xuat`.
pub async fn sign_out() -> Response {
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/dang-nhap".to_owned()), (header::SET_COOKIE, cookie)]).into_response()
}

fn date(at: DateTime<Utc>) -> String {
    at.with_timezone(&voxpop_schema::calendar::vietnam_offset()).format("%d/%m/%Y").to_string()
}

fn date_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&voxpop_schema::calendar::vietnam_offset()).format("%H:%M %d/%m/%Y").to_string()
}

/// Petitions the inbox page lists when the link does not say (`limit`).
const INBOX_PAGE_LIMIT: usize = 200;

/// `GET /xu-ly?state=&overdue=1&unit=&limit=`: the petitions the unit must act on, overdue
/// first. The parameters are the inbox API's, read as strictly: a repeated, unknown or bad one
/// (`overdue=yes`) is a 400 naming it.
pub async fn inbox_page(
    State(state): State<AppState>,
    PageCaller(caller): PageCaller,
    RawQuery(raw): RawQuery,
) -> Response {
    let units = Units::embedded();
    let inbox = match query_params(raw.as_deref()).and_then(|params| InboxParams::from_query(&params)) {
        Ok(inbox) => InboxParams { limit: inbox.limit.or(Some(INBOX_PAGE_LIMIT)), ..inbox },
        Err(problem) => return problem_panel("Hộp xử lý", &problem),
    };
    let (unit, items) = match inbox_items(&state, &caller, &inbox).await {
        Ok(found) => found,
        // The inbox's only parameter that can lie outside the caller's unit is `unit`.
        Err(problem) => return problem_panel("Hộp xử lý", &naming("unit", problem)),
    };
    let now = Utc::now();
    let mut html = String::with_capacity(32 * 1024);
    let overdue = items.iter().filter(|s| s.overdue(now)).count();
    // The list holds at most `limit` petitions; the unit's open and overdue petitions are
    // counted in full (those nobody has acted on yet included), so that a long queue is not
    // read as a short one.
    let performance = performance_rows(&state, &caller, Some(&unit)).await;
    let filtered = inbox.state.as_deref().is_some_and(|s| !s.is_empty()) || inbox.overdue == Some(true);
    let limit = inbox.limit.unwrap_or(INBOX_PAGE_LIMIT);
    let counts = match &performance {
        Ok((total, _)) if !filtered => {
            let shown = if (items.len() as u64) < total.open {
                format!(" Danh sách dưới đây gồm {} kiến nghị đầu tiên (quá hạn trước, hạn gần trước).", items.len())
            } else {
                String::new()
            };
            format!(
                "{} kiến nghị đang mở, trong đó <strong>{}</strong> quá hạn.{shown}",
                thousands(total.open),
                thousands(total.overdue)
            )
        }
        _ => {
            let more = if items.len() >= limit {
                format!(" (hiển thị tối đa {limit}, lọc thêm để thu hẹp)")
            } else {
                String::new()
            };
            format!("{} kiến nghị phù hợp, trong đó <strong>{overdue}</strong> quá hạn{more}.", items.len())
        }
    };
    html.push_str("<script src=\"/assets/chart.umd.min.js\"></script>");
    let _ = write!(
        html,
        "<section class=\"panel\"><h2 id=\"unit\">{}</h2><p id=\"counts\">{counts}</p>\
         <form method=\"get\" action=\"/xu-ly\"><input type=\"hidden\" name=\"unit\" value=\"{}\"><select name=\"state\" aria-label=\"Trạng thái\">\
         <option value=\"\">Đang mở</option>",
        escape(&unit_name(units, &unit)),
        escape(&unit)
    );
    for stage in Stage::ALL {
        let selected = if inbox.state.as_deref() == Some(stage.as_str()) { " selected" } else { "" };
        let _ = write!(html, "<option value=\"{}\"{selected}>{}</option>", stage.as_str(), stage.label_vi());
    }
    let checked = if inbox.overdue == Some(true) { " checked" } else { "" };
    let _ = write!(
        html,
        "</select><label><input type=\"checkbox\" name=\"overdue\" value=\"1\"{checked}> Chỉ quá hạn</label>\
         <button type=\"submit\">Lọc</button></form>\
         <table id=\"inbox\"><thead><tr><th>Mã theo dõi</th><th>Tiêu đề</th><th>Ngày nhận</th><th>Đơn vị xử lý</th>\
         <th>Trạng thái</th><th>Hạn</th></tr></thead><tbody>"
    );
    for status in &items {
        let late = status.overdue(now);
        let due = status.due_at.map_or("—".to_owned(), date);
        let badge = if late { "<span class=\"badge overdue\">Quá hạn</span> " } else { "" };
        let _ = write!(
            html,
            "<tr class=\"{}\" data-id=\"{}\"><td>{}</td><td><a href=\"/xu-ly/{}\">{}</a></td><td>{}</td><td>{}</td>\
             <td><span class=\"badge\">{}</span></td><td>{badge}{due}</td></tr>",
            if late { "overdue" } else { "" },
            status.petition_id,
            escape(&status.tracking_code),
            status.petition_id,
            escape(&voxpop_schema::privacy::mask_numbers(&status.title)),
            date(status.received_at),
            escape(&unit_name(units, &status.unit)),
            status.state.label_vi(),
        );
    }
    html.push_str("</tbody></table>");
    // How the unit's open petitions stand, at a glance.
    let mut by_state: Vec<(&str, usize)> = Vec::new();
    for stage in Stage::ALL {
        let count = items.iter().filter(|s| s.state == stage).count();
        if count > 0 {
            by_state.push((stage.label_vi(), count));
        }
    }
    if !by_state.is_empty() {
        let labels: Vec<&str> = by_state.iter().map(|(label, _)| *label).collect();
        let counts: Vec<usize> = by_state.iter().map(|(_, count)| *count).collect();
        let _ = write!(
            html,
            "<div class=\"chart\" style=\"max-width:360px\"><canvas id=\"state-chart\" height=\"220\"></canvas></div>\
             <script>new Chart(document.getElementById('state-chart'),\
             {{type:'doughnut',data:{{labels:{},datasets:[{{data:{},backgroundColor:['#b3261e','#e8710a','#f9ab00','#1e8e3e','#1a73e8','#9334e6','#5f6368','#12b5cb']}}]}},\
             options:{{animation:false,plugins:{{title:{{display:true,text:'Theo trạng thái'}}}}}}}});</script>",
            serde_json::to_string(&labels).unwrap_or_default(),
            serde_json::to_string(&counts).unwrap_or_default(),
        );
    }
    html.push_str("</section>");
    // The units below: on time, satisfied, reopened (a chart and the table).
    if let Ok((total, children)) = performance {
        let percent =
            |rate: Option<f64>| rate.map_or("—".to_owned(), |r| format!("{:.1}%", r * 100.0).replace('.', ","));
        let _ = write!(
            html,
            "<section class=\"panel\"><h2>Kết quả xử lý</h2><p id=\"performance\">Đúng hạn: <strong>{}</strong> · \
             Hài lòng: <strong>{}</strong> · Mở lại: <strong>{}</strong> · Đang quá hạn: <strong>{}</strong></p>",
            percent(total.on_time_rate),
            percent(total.satisfied_rate),
            percent(total.reopen_rate),
            total.overdue
        );
        if !children.is_empty() {
            let mut rows: Vec<_> = children.iter().collect();
            rows.sort_by_key(|p| std::cmp::Reverse(p.overdue));
            rows.truncate(30);
            let labels: Vec<&str> = rows.iter().map(|p| p.unit_name.as_str()).collect();
            let overdue: Vec<u64> = rows.iter().map(|p| p.overdue).collect();
            let open: Vec<u64> = rows.iter().map(|p| p.open - p.overdue.min(p.open)).collect();
            let _ = write!(
                html,
                "<div class=\"chart\"><canvas id=\"overdue-chart\" height=\"120\"></canvas></div><script>\
                 new Chart(document.getElementById('overdue-chart'),{{type:'bar',data:{{labels:{},datasets:[\
                 {{label:'Quá hạn',data:{},backgroundColor:'#b3261e'}},{{label:'Trong hạn',data:{},backgroundColor:'#7a9cc6'}}]}},\
                 options:{{animation:false,indexAxis:'y',scales:{{x:{{stacked:true}},y:{{stacked:true}}}}}}}});</script>\
                 <table id=\"units\"><thead><tr><th>Đơn vị</th><th>Đang mở</th><th>Quá hạn</th><th>Đã trả lời</th>\
                 <th>Đúng hạn</th><th>Hài lòng</th><th>Mở lại</th></tr></thead><tbody>",
                serde_json::to_string(&labels).unwrap_or_default().replace("</", "<\\/"),
                serde_json::to_string(&overdue).unwrap_or_default(),
                serde_json::to_string(&open).unwrap_or_default(),
            );
            for p in &rows {
                let _ = write!(
                    html,
                    "<tr><td><a href=\"/xu-ly?unit={}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&p.unit),
                    escape(&p.unit_name),
                    p.open,
                    p.overdue,
                    p.answered,
                    percent(p.on_time_rate),
                    percent(p.satisfied_rate),
                    percent(p.reopen_rate)
                );
            }
            html.push_str("</tbody></table>");
        }
        html.push_str("</section>");
    }
    page(StatusCode::OK, "Hộp xử lý kiến nghị", &html)
}

/// A page of the staff layout for a request it cannot answer: the problem's status, each
/// parameter at fault named in Vietnamese.
fn problem_panel(title: &str, problem: &Problem) -> Response {
    let body = format!("<section class=\"panel\">{}</section>", problem_html(&problem_heading(problem), problem));
    page(problem_status(problem), title, &body)
}

/// A problem that names no field (a 403 of the handling API) with `field` named.
fn naming(field: &str, mut problem: Problem) -> Problem {
    if problem.errors.is_empty() && problem.status == StatusCode::FORBIDDEN.as_u16() {
        problem.errors.push(ProblemField::from(&FieldError::new(field, "out_of_scope", problem.detail.clone())));
    }
    problem
}

/// The petition id of a page's path, or the 400 naming `id` (as the API answers).
fn petition_id(raw: &str) -> Result<Uuid, Response> {
    Uuid::parse_str(raw).map_err(|_| {
        let problem = Problem::bad_parameter("id", format!("`{raw}` is not a petition id (UUID)"));
        page(
            StatusCode::BAD_REQUEST,
            "Không hợp lệ",
            &format!("<section class=\"panel\">{}</section>", problem_html("Mã kiến nghị không hợp lệ", &problem)),
        )
    })
}

/// `GET /xu-ly/{id}[?ok=accept]`: one petition, its history and the actions its state allows;
/// `ok` (set by the redirect after an action) says which action was recorded.
pub async fn handle_page(
    State(state): State<AppState>,
    PageCaller(caller): PageCaller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let id = match petition_id(&id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let done = match known_params(raw.as_deref(), &["ok"]) {
        Ok(params) => match params.get("ok") {
            None => None,
            Some(raw) => match Action::parse(raw) {
                Some(action) => Some(action),
                None => {
                    let problem = Problem::bad_parameter("ok", format!("unknown action `{raw}`"));
                    return problem_panel("Xử lý kiến nghị", &problem);
                }
            },
        },
        Err(problem) => return problem_panel("Xử lý kiến nghị", &problem),
    };
    render_petition(&state, &caller, id, done, None).await
}

/// The petition's page; with `error`, that problem above it and its status.
async fn render_petition(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    done: Option<Action>,
    error: Option<&Problem>,
) -> Response {
    let missing = || {
        page(
            StatusCode::NOT_FOUND,
            "Không tìm thấy",
            "<p class=\"panel error\">Không tìm thấy kiến nghị này trong đơn vị của bạn.</p>",
        )
    };
    let received_at = state.index.get(&id).ok().flatten().map(|hit| hit.received_at);
    let Ok(Some(petition)) = state.queries.petition(&id, received_at).await else {
        return missing();
    };
    let reference = voxpop_schema::workflow::PetitionRef {
        tracking_code: petition.tracking_code.clone(),
        received_at: petition.received_at,
        province_code: petition.province_code.clone(),
        commune_code: petition.commune_code.clone(),
        topic: petition.topic.clone(),
        title: petition.title.clone(),
    };
    let status = state.desk.status_or_initial(id, &reference);
    if !crate::handling::visible(caller, &reference, state.desk.status(&id).as_ref()) {
        return missing();
    }
    let petition = if caller.personal_data() { petition } else { voxpop_schema::privacy::mask_petition(&petition) };
    // Staff write what citizens tell them into answers and notes, phone and ID numbers included:
    // the status and every event are shown as the caller may see them, as the API shows them.
    let status = masked_for(caller, status);
    let units = Units::embedded();
    let now = Utc::now();
    let mut html = String::with_capacity(16 * 1024);
    if let Some(action) = done {
        let _ = write!(html, "<p class=\"panel ok\" id=\"done\">Đã ghi nhận: {}.</p>", action.label_vi());
    }
    if let Some(problem) = error {
        let _ = write!(html, "<section class=\"panel\">{}</section>", problem_html("Không thực hiện được", problem));
    }
    let due = status.due_at.map_or("—".to_owned(), date);
    let late = if status.overdue(now) { " <span class=\"badge overdue\">Quá hạn</span>" } else { "" };
    let contact = [&petition.contact.name, &petition.contact.phone, &petition.contact.email]
        .iter()
        .filter_map(|v| v.as_deref())
        .collect::<Vec<_>>()
        .join(" · ");
    let _ = write!(
        html,
        "<section class=\"panel\"><h2>{}</h2><dl><dt>Mã theo dõi</dt><dd>{}</dd><dt>Ngày nhận</dt><dd>{}</dd>\
         <dt>Nơi phát sinh</dt><dd>{}</dd><dt>Người gửi</dt><dd>{}</dd><dt>Trạng thái</dt><dd id=\"state\" data-state=\"{}\">{}</dd>\
         <dt>Đơn vị xử lý</dt><dd id=\"handler\">{}</dd><dt>Hạn xử lý</dt><dd>{due}{late}</dd></dl><p>{}</p>",
        escape(&petition.title),
        escape(&petition.tracking_code),
        date_time(petition.received_at),
        escape(&unit_name(units, &petition.commune_code)),
        if contact.is_empty() { "—".to_owned() } else { escape(&contact) },
        status.state.as_str(),
        status.state.label_vi(),
        escape(&unit_name(units, &status.unit)),
        escape(&petition.body)
    );
    if let Some(answer) = &status.answer {
        let _ = write!(html, "<h3>Trả lời</h3><p id=\"answer\">{}</p>", escape(answer));
    }
    if let Some(rating) = status.rating {
        let _ = write!(html, "<p>Người dân đánh giá: <strong>{rating}/5</strong></p>");
    }
    html.push_str("</section><section class=\"panel\"><h3>Quá trình xử lý</h3><ol class=\"timeline\" id=\"history\">");
    let _ = write!(html, "<li>{} — Tiếp nhận</li>", date_time(status.received_at));
    if let Ok(events) = state.handling_queries.history(&id).await {
        for event in state.desk.complete_history(&id, events).into_iter().map(|event| masked_for(caller, event)) {
            let note =
                event.note.as_deref().or(event.answer.as_deref()).map_or(String::new(), |n| format!(": {}", escape(n)));
            let _ = write!(
                html,
                "<li>{} — {} ({}){note}</li>",
                date_time(event.at),
                event.action.label_vi(),
                escape(&unit_name(units, &event.unit))
            );
        }
    }
    html.push_str("</ol></section>");
    let staff_actions: Vec<Action> =
        status.state.allowed().into_iter().filter(|a| a.taker() == voxpop_schema::workflow::Taker::Staff).collect();
    let may_act = caller.authenticated && caller.role != crate::auth::Role::DataEngineer;
    if !staff_actions.is_empty() && !may_act {
        html.push_str(
            "<section class=\"panel\" id=\"actions\"><p>Đăng nhập bằng mã truy cập của cán bộ đơn vị xử lý \
             (<a href=\"/dang-nhap\">Đăng nhập</a>) để thụ lý, giao, trả lời hoặc chuyển kiến nghị này.</p></section>",
        );
    } else if !staff_actions.is_empty() {
        html.push_str("<section class=\"panel\" id=\"actions\"><h3>Xử lý</h3>");
        let picks_unit = staff_actions.iter().any(|a| matches!(a, Action::Assign | Action::Transfer));
        for action in staff_actions {
            let fields = match action {
                Action::Decline | Action::Escalate => {
                    "<textarea name=\"note\" required placeholder=\"Lý do\" aria-label=\"Lý do\"></textarea>".to_owned()
                }
                // The codes are typed or picked by name: the communes of the petition's province
                // and the provinces are offered as the field is typed into.
                Action::Assign => "<input name=\"unit\" required list=\"units\" placeholder=\"Mã hoặc tên đơn vị (xã; thôn ccccc-nnn)\" aria-label=\"Đơn vị\">".to_owned(),
                Action::Transfer => "<input name=\"unit\" required list=\"units\" placeholder=\"Mã hoặc tên đơn vị nhận\" aria-label=\"Đơn vị nhận\">\
                     <textarea name=\"note\" required placeholder=\"Lý do chuyển\" aria-label=\"Lý do chuyển\"></textarea>"
                    .to_owned(),
                Action::Answer => "<textarea name=\"answer\" required placeholder=\"Nội dung trả lời\" aria-label=\"Nội dung trả lời\"></textarea>".to_owned(),
                Action::Extend => "<input name=\"days\" type=\"number\" min=\"1\" required placeholder=\"Số ngày làm việc\" aria-label=\"Số ngày\">\
                     <textarea name=\"note\" required placeholder=\"Lý do gia hạn\" aria-label=\"Lý do gia hạn\"></textarea>"
                    .to_owned(),
                _ => String::new(),
            };
            let _ = write!(
                html,
                "<form method=\"post\" action=\"/xu-ly/{id}\" id=\"form-{0}\"><input type=\"hidden\" name=\"action\" value=\"{0}\">{fields}\
                 <button type=\"submit\" id=\"do-{0}\">{1}</button></form>",
                action.as_str(),
                action.label_vi()
            );
        }
        if picks_unit {
            html.push_str(&unit_choices(units, &petition.province_code));
        }
        html.push_str("</section>");
    }
    let status = error.map_or(StatusCode::OK, problem_status);
    page(status, "Xử lý kiến nghị", &html)
}

/// The units a petition is most often assigned or transferred to, by name, for the forms' unit
/// fields: the communes of its province, the province, the other provinces and the central
/// committee. Any other code may still be typed.
fn unit_choices(units: &Units, province: &str) -> String {
    let mut html = String::from("<datalist id=\"units\">");
    let mut option = |code: &str, name: &str| {
        let _ = write!(html, "<option value=\"{}\">{}</option>", escape(code), escape(name));
    };
    for commune in units.communes().iter().filter(|c| c.province_code == province) {
        option(&commune.code, &commune.name);
    }
    for other in units.provinces() {
        option(&other.code, &other.name);
    }
    option(workflow::CENTRAL, "Ủy ban Trung ương");
    html.push_str("</datalist>");
    html
}

/// `POST /xu-ly/{id}`: one action from the page's forms; back to the page (303) when recorded,
/// otherwise the page again with the problem's status (4xx) and what was wrong, in Vietnamese.
pub async fn handle_action(
    State(state): State<AppState>,
    PageCaller(caller): PageCaller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = match petition_id(&id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    if let Err(problem) = form_content_type(&headers) {
        return render_petition(&state, &caller, id, None, Some(&problem)).await;
    }
    let request = match action_form(&body, &state.desk.handling.deadlines) {
        Ok(request) => request,
        Err(problem) => return render_petition(&state, &caller, id, None, Some(&problem)).await,
    };
    match crate::handling::act_as(&state, &caller, id, &request).await {
        Ok((event, _)) => {
            (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/xu-ly/{id}?ok={}", event.action.as_str()))])
                .into_response()
        }
        Err(problem) => render_petition(&state, &caller, id, None, Some(&problem)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::{Deadlines, action_form, form_content_type, form_decode, safe_next};
    use axum::http::{HeaderMap, HeaderValue, header};

    /// The (field, code) pairs of a refused form, and its status.
    fn refused(body: &str) -> (u16, Vec<(String, String)>) {
        let problem = action_form(body.as_bytes(), Deadlines::default_embedded()).unwrap_err();
        (problem.status, problem.errors.iter().map(|e| (e.field.clone(), e.code.clone())).collect())
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected.iter().map(|(field, code)| (field.to_string(), code.to_string())).collect()
    }

    #[test]
    fn action_forms_are_read_strictly() {
        let request = action_form(
            b"action=extend&days=+3+&note=C%E1%BA%A7n+x%C3%A1c+minh%0D%0A%09th%C3%AAm",
            Deadlines::default_embedded(),
        )
        .unwrap();
        assert_eq!((request.action.as_str(), request.days), ("extend", Some(3)));
        assert_eq!(request.note.as_deref(), Some("Cần xác minh\r\n\tthêm"));
        assert_eq!((request.answer, request.unit, request.rating), (None, None, None));
        for (body, status, expected) in [
            ("action=extend&days=2&note=%00", 422, &[("note", "control_character")][..]),
            ("action=extend&unit=00004%0D%0A&note=x", 422, &[("unit", "control_character")]),
            ("action=extend&days=2&note=x&note=y&note=z", 422, &[("note", "duplicate_field")]),
            ("action=extend&days=2&days=3&note=x", 422, &[("days", "duplicate_field")]),
            ("action=accept&foo=1&rating=5&foo=2", 422, &[("foo", "unknown_field"), ("rating", "unknown_field")]),
            ("action=extend&days=2&note=%FF%FE", 400, &[("note", "invalid_utf8")]),
            ("action=extend&note=%FF&note=ok", 400, &[("note", "invalid_utf8"), ("note", "duplicate_field")]),
            ("action=extend&days=2&note=%E2%80%8B+%C2%AD", 422, &[("note", "blank")]),
            ("action=answer&answer=", 422, &[("answer", "blank")]),
            ("action=extend&days=-1&note=x", 422, &[("days", "invalid")]),
            ("action=extend&days=4294967296&note=x", 422, &[("days", "out_of_range")]),
            ("note=x", 422, &[("action", "required")]),
            ("", 422, &[("action", "required")]),
        ] {
            assert_eq!(refused(body), (status, pairs(expected)), "{body}");
        }
        // The range of `days` is the one extensions take, not the one of its type.
        let max = Deadlines::default_embedded().max_extension();
        for body in ["action=extend&days=hai&note=x", "action=extend&days=99999999999&note=x"] {
            let problem = action_form(body.as_bytes(), Deadlines::default_embedded()).unwrap_err();
            let message = &problem.errors[0].message;
            assert!(message.contains(&format!("from 1 to {max}")) && !message.contains("4294967295"), "{message}");
        }
        // A name that is not UTF-8 is named as far as it can be read; a long one, shortened.
        assert_eq!(refused("action=accept&n%FF=1").1, pairs(&[("n\u{FFFD}", "invalid_utf8")]));
        let long = format!("action=accept&{}=1", "x".repeat(10_000));
        assert_eq!(refused(&long).1[0].0.chars().count(), super::MAX_NAMED_CHARS);
    }

    #[test]
    fn staff_action_forms_must_be_declared_url_encoded_utf8() {
        let declared = |content_type: Option<&[u8]>| {
            let mut headers = HeaderMap::new();
            if let Some(value) = content_type {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_bytes(value).unwrap());
            }
            form_content_type(&headers)
        };
        for accepted in [
            &b"application/x-www-form-urlencoded"[..],
            b"Application/X-WWW-Form-URLEncoded",
            b"application/x-www-form-urlencoded; charset=utf-8",
            b"application/x-www-form-urlencoded;charset=\"UTF-8\"",
            b"application/x-www-form-urlencoded; charset=UTF-8;",
        ] {
            assert!(declared(Some(accepted)).is_ok(), "{}", String::from_utf8_lossy(accepted));
        }
        for (refused, shown) in [
            (None, "không có Content-Type"),
            (Some(&b"application/x-www-form-urlencoded; charset=iso-8859-1"[..]), "charset=iso-8859-1"),
            (Some(b"text/plain"), "`text/plain`"),
            (Some(b"multipart/form-data; boundary=x"), "`multipart/form-data; boundary=x`"),
            (Some(b"application/json"), "`application/json`"),
            (Some(b"application/x-www-form-urlencoded-x"), "urlencoded-x"),
            (Some(b"caf\xe9"), "caf\u{FFFD}"),
        ] {
            let problem = declared(refused).unwrap_err();
            assert_eq!(problem.status, 415);
            let error = &problem.errors[0];
            assert_eq!((error.field.as_str(), error.code.as_str()), ("Content-Type", "unsupported_media_type"));
            assert!(error.message.contains(shown), "{shown}: {}", error.message);
        }
        let long = format!("text/{}", "x".repeat(10_000));
        let message = declared(Some(long.as_bytes())).unwrap_err().errors[0].message.clone();
        assert!(message.chars().count() < 300, "{message}");
    }

    #[test]
    fn form_decoding_is_byte_exact() {
        assert_eq!(form_decode(b"a+b%20c%2B%41"), b"a b c+A");
        assert_eq!(form_decode(b"100%+%4"), b"100% %4");
        assert_eq!(form_decode(b"%ff%FE"), [0xFF, 0xFE]);
    }

    #[test]
    fn sign_in_returns_only_to_a_path_of_this_site() {
        assert_eq!(safe_next("/xu-ly/0199?tab=1"), "/xu-ly/0199?tab=1");
        for unsafe_next in ["https://evil.example", "//evil.example", "/\\evil.example", "/\r\nX: y", "/a\u{7f}", ""] {
            assert_eq!(safe_next(unsafe_next), "/xu-ly", "{unsafe_next:?}");
        }
    }
}

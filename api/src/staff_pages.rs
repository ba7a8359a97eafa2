//! The pages staff work in (Vietnamese): sign in with an API token, the unit's inbox (overdue
//! first, with the on-time and satisfaction figures of the units below), and one petition with
//! its history and the actions its state allows.
//!
//! Pages are rendered on the server and work without scripts; forms post
//! `application/x-www-form-urlencoded` and answer with a redirect (303) after an action, so a
//! reload never repeats it. The sign-in cookie is HttpOnly and SameSite=Strict (no cross-site
//! form can act with it).

use std::collections::HashMap;
use std::fmt::Write;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;
use voxpop_index::html_escape as escape;
use voxpop_schema::Units;
use voxpop_schema::workflow::{Action, ActionRequest, State as Stage};

use crate::auth::{PageCaller, SESSION_COOKIE};
use crate::handling::{InboxParams, inbox_items, performance_rows, unit_name};
use crate::http::AppState;
use crate::pages::STYLE;

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

/// `GET /dang-nhap`.
pub async fn sign_in_form(Query(params): Query<HashMap<String, String>>) -> Response {
    sign_in_page(StatusCode::OK, params.get("next").map_or("/xu-ly", String::as_str), None)
}

fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
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

/// `GET /xu-ly?state=&overdue=1&unit=`: the petitions the unit must act on, overdue first.
pub async fn inbox_page(
    State(state): State<AppState>,
    PageCaller(caller): PageCaller,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let units = Units::embedded();
    let inbox = InboxParams {
        unit: params.get("unit").filter(|u| !u.is_empty()).cloned(),
        state: params.get("state").filter(|s| !s.is_empty()).cloned(),
        overdue: params.get("overdue").map(|v| v == "1"),
        limit: Some(200),
    };
    let (unit, items) = match inbox_items(&state, &caller, &inbox).await {
        Ok(found) => found,
        Err(problem) => {
            let body = format!("<p class=\"panel error\">{}</p>", escape(&problem.detail));
            return page(StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST), "Hộp xử lý", &body);
        }
    };
    let now = Utc::now();
    let mut html = String::with_capacity(32 * 1024);
    let overdue = items.iter().filter(|s| s.overdue(now)).count();
    html.push_str("<script src=\"/assets/chart.umd.min.js\"></script>");
    let _ = write!(
        html,
        "<section class=\"panel\"><h2 id=\"unit\">{}</h2><p id=\"counts\">{} kiến nghị cần xử lý, trong đó <strong>{overdue}</strong> quá hạn.</p>\
         <form method=\"get\" action=\"/xu-ly\"><input type=\"hidden\" name=\"unit\" value=\"{}\"><select name=\"state\" aria-label=\"Trạng thái\">\
         <option value=\"\">Đang mở</option>",
        escape(&unit_name(units, &unit)),
        items.len(),
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
    if let Ok((total, children)) = performance_rows(&state, &caller, Some(&unit)).await {
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

/// `GET /xu-ly/{id}`: one petition, its history and the actions its state allows.
pub async fn handle_page(
    State(state): State<AppState>,
    PageCaller(caller): PageCaller,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    render_petition(&state, &caller, &id, params.get("ok").map(String::as_str), None).await
}

async fn render_petition(
    state: &AppState,
    caller: &crate::auth::Caller,
    raw_id: &str,
    done: Option<&str>,
    error: Option<&str>,
) -> Response {
    let missing = || {
        page(
            StatusCode::NOT_FOUND,
            "Không tìm thấy",
            "<p class=\"panel error\">Không tìm thấy kiến nghị này trong đơn vị của bạn.</p>",
        )
    };
    let Ok(id) = Uuid::parse_str(raw_id) else {
        return missing();
    };
    let week = state.index.get(&id).ok().flatten().map(|hit| voxpop_schema::petition::iso_week(hit.received_at));
    let Ok(Some(petition)) = state.queries.petition(&id, week.as_deref()).await else {
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
    let units = Units::embedded();
    let now = Utc::now();
    let mut html = String::with_capacity(16 * 1024);
    if let Some(action) = done.and_then(Action::parse) {
        let _ = write!(html, "<p class=\"panel ok\" id=\"done\">Đã ghi nhận: {}.</p>", action.label_vi());
    }
    if let Some(error) = error {
        let _ = write!(html, "<p class=\"panel error\" id=\"error\">{}</p>", escape(error));
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
        for event in state.desk.complete_history(&id, events) {
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
        for action in staff_actions {
            let fields = match action {
                Action::Decline | Action::Escalate => {
                    "<textarea name=\"note\" required placeholder=\"Lý do\" aria-label=\"Lý do\"></textarea>".to_owned()
                }
                Action::Assign => "<input name=\"unit\" required placeholder=\"Mã đơn vị (xã hoặc thôn ccccc-nnn)\" aria-label=\"Đơn vị\">".to_owned(),
                Action::Transfer => "<input name=\"unit\" required placeholder=\"Mã đơn vị nhận\" aria-label=\"Đơn vị nhận\">\
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
        html.push_str("</section>");
    }
    page(StatusCode::OK, "Xử lý kiến nghị", &html)
}

/// `POST /xu-ly/{id}`: one action from the page's forms; back to the page (303) when recorded.
pub async fn handle_action(
    State(state): State<AppState>,
    PageCaller(caller): PageCaller,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let text = |key: &str| fields.get(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let request = ActionRequest {
        action: text("action").unwrap_or_default(),
        note: text("note"),
        answer: text("answer"),
        unit: text("unit"),
        days: text("days").and_then(|d| d.parse().ok()),
        rating: None,
    };
    let Ok(uuid) = Uuid::parse_str(&id) else {
        return render_petition(&state, &caller, &id, None, None).await;
    };
    let outcome = crate::handling::act_as(&state, &caller, uuid, &request).await;
    match outcome {
        Ok(_) => {
            (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/xu-ly/{id}?ok={}", request.action))]).into_response()
        }
        Err(problem) => {
            let mut message = problem.detail.clone();
            for error in &problem.errors {
                let _ = write!(message, " ({}: {})", error.field, error.message);
            }
            if !problem.allowed.is_empty() {
                let allowed: Vec<&str> =
                    problem.allowed.iter().filter_map(|a| Action::parse(a)).map(|a| a.label_vi()).collect();
                let _ = write!(message, " — được phép: {}", allowed.join(", "));
            }
            render_petition(&state, &caller, &id, None, Some(&format!("Không thực hiện được: {message}"))).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn sign_in_returns_only_to_a_path_of_this_site() {
        assert_eq!(safe_next("/xu-ly/0199?tab=1"), "/xu-ly/0199?tab=1");
        for unsafe_next in ["https://evil.example", "//evil.example", "/\\evil.example", "/\r\nX: y", "/a\u{7f}", ""] {
            assert_eq!(safe_next(unsafe_next), "/xu-ly", "{unsafe_next:?}");
        }
    }
}

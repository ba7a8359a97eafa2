//! Web pages for staff, in Vietnamese, rendered on the server (no script needed to read them).

use std::collections::HashMap;
use std::fmt::Write;

use axum::extract::{Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use voxpop_index::{SearchRequest, SearchResults};
use voxpop_schema::privacy::mask_excerpt;
use voxpop_schema::{FieldError, Units};

use crate::auth::Caller;
use crate::http::{AppState, search_request};
use crate::params::{known_params, query_params};
use crate::problem::{Problem, ProblemField};

use voxpop_index::html_escape as escape;

pub(crate) const STYLE: &str = "
body{font-family:system-ui,'Segoe UI',Roboto,Arial,sans-serif;margin:0;color:#1d2733;background:#f5f6f8}
header{background:#b3261e;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
main{display:flex;gap:24px;padding:20px 24px;max-width:1200px}
form{display:flex;flex-wrap:wrap;gap:8px;padding:16px 24px;background:#fff;border-bottom:1px solid #dde}
input,select,button{font-size:15px;padding:6px 8px}input[name=q]{flex:1;min-width:260px}
button{background:#b3261e;color:#fff;border:0;border-radius:4px;padding:6px 16px}
.results{flex:3}.facets{flex:1;background:#fff;padding:12px 16px;border-radius:6px;align-self:flex-start}
.hit{background:#fff;padding:12px 16px;margin-bottom:10px;border-radius:6px}
.hit a{font-weight:600;color:#0b57d0;text-decoration:none}.meta{color:#5f6b7a;font-size:13px;margin:4px 0}
mark{background:#ffe08a}.error{color:#b3261e;font-weight:600}
.facets ul{list-style:none;padding:0}.facets li{display:flex;justify-content:space-between;padding:2px 0}
@media print{form,.facets{display:none}body{background:#fff}.hit{break-inside:avoid}}
";

/// The fields of the search form, which a browser sends empty when nothing is chosen: there,
/// empty means not given.
const SEARCH_FORM_FIELDS: [&str; 6] = ["q", "province", "topic", "state", "from", "to"];

/// `GET /`: search petitions by theme, province and date. Its parameters are the search API's,
/// read as strictly: a repeated, unknown or bad one is a 400 naming it, a place outside the
/// caller's unit a 403.
pub async fn search_page(
    State(state): State<AppState>,
    crate::auth::PageCaller(caller): crate::auth::PageCaller,
    RawQuery(raw): RawQuery,
) -> Response {
    let (mut params, repeated) = match query_params(raw.as_deref()) {
        Ok(params) => (params, None),
        Err(problem) => (HashMap::new(), Some(problem)),
    };
    params.retain(|name, value| !(value.is_empty() && SEARCH_FORM_FIELDS.contains(&name.as_str())));
    let units = Units::embedded();
    let value = |key: &str| params.get(key).map(String::as_str).unwrap_or_default();
    let mut html = String::with_capacity(16 * 1024);
    let _ = write!(
        html,
        "<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\"><title>Tra cứu phản ánh, kiến nghị</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{STYLE}</style></head><body>\
         <header><h1>Tra cứu phản ánh, kiến nghị của Nhân dân</h1></header>\
         <form method=\"get\" action=\"/\"><input name=\"q\" value=\"{}\" placeholder=\"Ví dụ: đất đai, ô nhiễm bãi rác, dat dai\" aria-label=\"Từ khóa\">\
         <select name=\"province\" aria-label=\"Tỉnh, thành phố\"><option value=\"\">Tất cả tỉnh, thành phố</option>",
        escape(value("q"))
    );
    for province in units.provinces() {
        let selected = if value("province") == province.code { " selected" } else { "" };
        let _ = write!(html, "<option value=\"{}\"{selected}>{}</option>", province.code, escape(&province.name));
    }
    html.push_str("</select><select name=\"topic\" aria-label=\"Chủ đề\"><option value=\"\">Tất cả chủ đề</option>");
    for topic in voxpop_schema::Taxonomy::default_embedded().topics() {
        let selected = if value("topic") == topic.code { " selected" } else { "" };
        let _ = write!(html, "<option value=\"{}\"{selected}>{}</option>", topic.code, escape(&topic.vi));
    }
    html.push_str(
        "</select><select name=\"state\" aria-label=\"Trạng thái xử lý\"><option value=\"\">Mọi trạng thái</option>",
    );
    for stage in voxpop_schema::workflow::State::ALL {
        let selected = if value("state") == stage.as_str() { " selected" } else { "" };
        let _ = write!(html, "<option value=\"{}\"{selected}>{}</option>", stage.as_str(), stage.label_vi());
    }
    let _ = write!(
        html,
        "</select><label>Từ ngày <input type=\"date\" name=\"from\" value=\"{}\"></label>\
         <label>Đến ngày <input type=\"date\" name=\"to\" value=\"{}\"></label><button type=\"submit\">Tìm kiếm</button></form><main>",
        escape(value("from")),
        escape(value("to"))
    );
    let mut status = StatusCode::OK;
    let request = match repeated {
        Some(problem) => Err(problem),
        None => search_request(&params).and_then(|request| scoped(request, &caller)),
    };
    match request {
        Err(problem) => {
            status = problem_status(&problem);
            // A query refused for the personal data it holds is not about the caller's unit.
            let heading = if problem.errors.iter().any(|error| error.code == "personal_data") {
                "Không thể tìm theo thông tin cá nhân".to_owned()
            } else {
                problem_heading(&problem)
            };
            let _ = write!(html, "<section class=\"results\">{}</section>", problem_html(&heading, &problem));
        }
        Ok(request) => {
            let index = state.index.clone();
            match tokio::task::spawn_blocking(move || index.search(&request)).await {
                Ok(Ok(results)) => render_results(&mut html, &results, &params),
                _ => {
                    status = StatusCode::INTERNAL_SERVER_ERROR;
                    html.push_str("<section class=\"results\"><p class=\"error\">Không thể tìm kiếm lúc này, xin thử lại.</p></section>");
                }
            }
        }
    }
    html.push_str("</main></body></html>");
    (status, Html(html)).into_response()
}

fn render_results(html: &mut String, results: &SearchResults, params: &HashMap<String, String>) {
    let units = Units::embedded();
    let _ = write!(
        html,
        "<section class=\"results\"><p id=\"total\">Tìm thấy <strong>{}</strong> kiến nghị</p>",
        voxpop_queries::summary::thousands(results.total as u64)
    );
    for hit in &results.hits {
        let province = units.province(&hit.province_code).map_or(hit.province_code.as_str(), |p| p.name.as_str());
        let commune = units.commune(&hit.commune_code).map_or(hit.commune_code.as_str(), |c| c.name.as_str());
        let _ = write!(
            html,
            "<article class=\"hit\"><a href=\"/kien-nghi/{}\">{}</a><div class=\"meta\">{} · {} · {}{} · <span class=\"state\">{}</span></div><div>{}</div></article>",
            hit.id,
            escape(&mask_excerpt(&hit.title)),
            hit.received_at.with_timezone(&voxpop_schema::calendar::vietnam_offset()).format("%d/%m/%Y"),
            escape(commune),
            escape(province),
            hit.topic
                .as_deref()
                .and_then(|code| voxpop_schema::Taxonomy::default_embedded().topic(code))
                .map_or(String::new(), |t| format!(" · {}", escape(&t.vi))),
            voxpop_schema::workflow::State::parse(&hit.state).map_or(hit.state.as_str(), |s| s.label_vi()),
            // The index escapes the snippet's text and adds only <mark> tags; the snippet is cut
            // out of the body, so what touches a cut is hidden too.
            mask_excerpt(&hit.snippet)
        );
    }
    // Next page, keeping every filter.
    let offset: usize = params.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let limit: usize = params.get("limit").and_then(|l| l.parse().ok()).unwrap_or(voxpop_index::DEFAULT_LIMIT);
    if offset + results.hits.len() < results.total && !results.hits.is_empty() {
        let _ = write!(
            html,
            "<p><a id=\"next\" href=\"/?{}\">Trang sau →</a></p>",
            escape(&link_with(params, "offset", &(offset + limit).to_string()))
        );
    }
    html.push_str("</section><aside class=\"facets\"><h2>Theo tỉnh, thành phố</h2><ul>");
    for facet in &results.province_facets {
        let name = units.province(&facet.province_code).map_or(facet.province_code.as_str(), |p| p.name.as_str());
        let _ = write!(
            html,
            "<li><a href=\"/?{}\">{}</a><span>{}</span></li>",
            escape(&link_with(params, "province", &facet.province_code)),
            escape(name),
            voxpop_queries::summary::thousands(facet.count)
        );
    }
    html.push_str("</ul><h2>Theo chủ đề</h2><ul id=\"topic-facets\">");
    for facet in &results.topic_facets {
        let label = voxpop_schema::Taxonomy::default_embedded()
            .topic(&facet.topic)
            .map_or(facet.topic.as_str(), |t| t.vi.as_str());
        let _ = write!(
            html,
            "<li><a href=\"/?{}\">{}</a><span>{}</span></li>",
            escape(&link_with(params, "topic", &facet.topic)),
            escape(label),
            voxpop_queries::summary::thousands(facet.count)
        );
    }
    html.push_str("</ul></aside>");
}

/// [`crate::http::scoped_search`], its 403 naming the parameter outside the caller's unit (the
/// province is checked first, as there).
fn scoped(request: SearchRequest, caller: &Caller) -> Result<SearchRequest, Problem> {
    let asked_province = request.province.clone();
    crate::http::scoped_search(request, caller).map_err(|problem| {
        let other_province = caller.province().is_some_and(|mine| asked_province.is_some_and(|asked| asked != mine));
        out_of_scope(if other_province { "province" } else { "commune" }, problem)
    })
}

/// A 403 of the API (which names the parameter only in its detail) with the parameter named.
fn out_of_scope(field: &str, mut problem: Problem) -> Problem {
    if problem.errors.is_empty() {
        problem.errors.push(ProblemField::from(&FieldError::new(field, "out_of_scope", problem.detail.clone())));
    }
    problem
}

/// The current search's query string with `key` set to `value` (and back to the first page
/// unless `key` is the page offset).
fn link_with(params: &HashMap<String, String>, key: &str, value: &str) -> String {
    let mut link: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k.as_str() != key && (key == "offset" || k.as_str() != "offset"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    link.push((key.to_owned(), value.to_owned()));
    link.sort();
    link.iter().map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v))).collect::<Vec<_>>().join("&")
}

/// `GET /kien-nghi/{id}`: one petition as staff read it (personal data masked).
pub async fn petition_page(
    State(state): State<AppState>,
    crate::auth::PageCaller(caller): crate::auth::PageCaller,
    axum::extract::Path(id): axum::extract::Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let page = |status: StatusCode, title: &str, body: String| {
        let html = format!(
            "<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\"><title>{title}</title><style>{STYLE}\
             .petition{{background:#fff;border-radius:6px;padding:16px 24px;margin:20px 24px;max-width:900px}}\
             .petition p{{white-space:pre-wrap;line-height:1.5}}dl{{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px}}\
             dt{{color:#5f6b7a}}</style></head><body><header><h1>Phản ánh, kiến nghị</h1></header>{body}</body></html>"
        );
        (status, Html(html)).into_response()
    };
    let Ok(id) = uuid::Uuid::parse_str(&id) else {
        let problem = Problem::bad_parameter("id", format!("`{id}` is not a petition id (UUID)"));
        return page(StatusCode::BAD_REQUEST, "Không hợp lệ", problem_html("Mã kiến nghị không hợp lệ", &problem));
    };
    // The page takes no parameters: one given is a mistake in the link, said rather than ignored.
    if let Err(problem) = known_params(raw.as_deref(), &[]) {
        return page(problem_status(&problem), "Không hợp lệ", problem_html("Tham số không hợp lệ", &problem));
    }
    let received_at = state.index.get(&id).ok().flatten().map(|hit| hit.received_at);
    let petition = match state.queries.petition(&id, received_at).await {
        Ok(Some(petition)) if crate::http::reads_petition(&state, &caller, &petition) => {
            voxpop_schema::privacy::mask_petition(&petition)
        }
        Ok(Some(_)) => {
            let body = "<p class=\"error\">Không tìm thấy kiến nghị này.</p>".to_owned();
            return page(StatusCode::NOT_FOUND, "Không tìm thấy", body);
        }
        Ok(None) => {
            return page(
                StatusCode::NOT_FOUND,
                "Không tìm thấy",
                "<p class=\"error\">Không tìm thấy kiến nghị này.</p>".to_owned(),
            );
        }
        Err(err) => return crate::problem::Problem::internal(&err).into_response(),
    };
    let units = Units::embedded();
    let commune = units.commune(&petition.commune_code).map_or(petition.commune_code.clone(), |c| c.name.clone());
    let province = units.province(&petition.province_code).map_or(petition.province_code.clone(), |p| p.name.clone());
    let topic = petition
        .topic
        .as_deref()
        .and_then(|code| voxpop_schema::Taxonomy::default_embedded().topic(code))
        .map_or("Chưa phân loại".to_owned(), |t| t.vi.clone());
    let body = format!(
        "<article class=\"petition\"><h2 id=\"title\">{}</h2><dl>\
         <dt>Mã tra cứu</dt><dd>{}</dd><dt>Tiếp nhận</dt><dd>{}</dd><dt>Địa bàn</dt><dd>{}, {}</dd>\
         <dt>Chủ đề</dt><dd>{}</dd><dt>Kênh</dt><dd>{}</dd><dt>Người gửi</dt><dd>{}</dd></dl><p>{}</p>\
         <p><a href=\"/\">← Quay lại tra cứu</a></p></article>",
        escape(&petition.title),
        escape(&petition.tracking_code),
        petition.received_at.with_timezone(&voxpop_schema::calendar::vietnam_offset()).format("%H:%M %d/%m/%Y"),
        escape(&commune),
        escape(&province),
        escape(&topic),
        escape(petition.channel.label_vi()),
        escape(petition.contact.name.as_deref().unwrap_or("(không ghi)")),
        escape(&petition.body),
    );
    page(StatusCode::OK, &escape(&petition.title), body)
}

fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The parameters of the reports page: those of the weekly reports API, and the page's `format`.
const REPORT_PARAMS: [&str; 3] = ["week", "unit", "format"];

/// `GET /bao-cao?week=2025-W38[&unit=00][&format=xlsx]`: [`crate::reports_api::page`] after its
/// parameters are read strictly: a repeated or unknown parameter, or a `format` other than
/// `html` (the default) or `xlsx`, is a 400 naming it rather than an HTML page nobody asked for.
pub async fn report_page(
    State(state): State<AppState>,
    crate::auth::PageCaller(caller): crate::auth::PageCaller,
    RawQuery(raw): RawQuery,
) -> Response {
    match report_params(raw.as_deref()) {
        Ok(params) => crate::reports_api::page(State(state), crate::auth::PageCaller(caller), Query(params)).await,
        Err(problem) => problem_page("Báo cáo tuần", &problem),
    }
}

/// The reports page's parameters, or the 400 naming every one at fault.
fn report_params(raw: Option<&str>) -> Result<HashMap<String, String>, Problem> {
    let params = known_params(raw, &REPORT_PARAMS)?;
    match params.get("format").map(String::as_str) {
        None | Some("html" | "xlsx") => Ok(params),
        Some(other) => {
            Err(Problem::bad_parameter("format", format!("unknown format `{other}`, expected html or xlsx")))
        }
    }
}

/// The status a page answers a problem with.
pub(crate) fn problem_status(problem: &Problem) -> StatusCode {
    StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST)
}

/// What a page says first about a problem with its request.
pub(crate) fn problem_heading(problem: &Problem) -> String {
    match problem.status {
        403 => "Ngoài phạm vi đơn vị của bạn",
        404 => "Không tìm thấy",
        400 | 422 => "Tham số không hợp lệ",
        _ => "Không thực hiện được",
    }
    .to_owned()
}

/// A page of its own for a request the page cannot answer: the problem's status, and what is
/// wrong with each parameter, in Vietnamese.
pub(crate) fn problem_page(title: &str, problem: &Problem) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{STYLE}\
         .panel{{background:#fff;border-radius:6px;padding:16px 20px;margin:16px 24px}}</style></head><body>\
         <header><h1>{title}</h1></header><section class=\"panel\">{}</section></body></html>",
        problem_html(&problem_heading(problem), problem),
        title = escape(title),
    );
    (problem_status(problem), [(axum::http::header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// A problem as the pages show it: `heading`, then one Vietnamese sentence per field at fault,
/// each naming its field (as the API's problem does; `data-field` too, for scripts and tests).
/// A problem without fields says why by its status, and a 409 lists what the state allows.
pub(crate) fn problem_html(heading: &str, problem: &Problem) -> String {
    let mut html =
        format!("<div class=\"error\" id=\"error\" data-status=\"{}\"><p>{}", problem.status, escape(heading));
    if problem.errors.is_empty() {
        let _ = write!(html, " — {}", escape(&status_vi(problem)));
        html.push_str("</p>");
    } else {
        html.push_str(":</p><ul>");
        for error in &problem.errors {
            let _ = write!(
                html,
                "<li data-field=\"{0}\"><code>{0}</code>: {1}</li>",
                escape(&error.field),
                escape(&field_vi(error))
            );
        }
        html.push_str("</ul>");
    }
    if !problem.allowed.is_empty() {
        let allowed: Vec<&str> = problem
            .allowed
            .iter()
            .map(|a| voxpop_schema::workflow::Action::parse(a).map_or(a.as_str(), |a| a.label_vi()))
            .collect();
        let _ = write!(html, "<p id=\"allowed\">Được phép: {}.</p>", escape(&allowed.join(", ")));
    }
    html.push_str("</div>");
    html
}

/// Why a request failed, for a problem that names no field.
fn status_vi(problem: &Problem) -> String {
    match problem.status {
        403 if problem.kind.ends_with("/role") => {
            "chỉ cán bộ, lãnh đạo hoặc quản trị viên của đơn vị xử lý được thực hiện việc này".to_owned()
        }
        403 => "việc này nằm ngoài thẩm quyền của đơn vị bạn".to_owned(),
        404 => "không tìm thấy kiến nghị này trong đơn vị của bạn".to_owned(),
        409 => "trạng thái hiện tại của kiến nghị không cho phép việc này".to_owned(),
        503 => "hệ thống tạm thời chưa ghi nhận được, xin thử lại sau ít giây".to_owned(),
        _ => format!("yêu cầu không thực hiện được ({})", problem.detail),
    }
}

/// What is wrong with one field or parameter, in Vietnamese. The codes of [`crate::params`], of
/// the search API and of the action forms are said in full; for the others, the value is said to
/// be wrong and the (English) detail follows, so nothing is lost.
fn field_vi(error: &ProblemField) -> String {
    let message = error.message.as_str();
    // The list of what is expected, as `crate::params` writes it ("..., expected one of a, b").
    let expected = message.rsplit_once("expected one of ").map(|(_, list)| list.trim()).filter(|l| !l.is_empty());
    match error.code.as_str() {
        "duplicate_parameter" => "được gửi nhiều lần; mỗi tham số chỉ được gửi một lần".to_owned(),
        "duplicate_field" => "được gửi nhiều lần; mỗi trường chỉ được gửi một lần".to_owned(),
        "unknown_parameter" => match expected {
            Some(list) => format!("không phải tham số của trang này (trang nhận: {list})"),
            None => "trang này không nhận tham số nào".to_owned(),
        },
        "unknown_field" => match expected {
            Some(list) => format!("không phải trường của biểu mẫu (biểu mẫu có: {list})"),
            None => "không phải trường của biểu mẫu".to_owned(),
        },
        "invalid_utf8" => "không phải văn bản UTF-8 hợp lệ".to_owned(),
        "control_character" => "chứa ký tự điều khiển (như NUL), không được phép".to_owned(),
        "blank" => "không có nội dung hiển thị (chỉ có khoảng trắng hoặc ký tự vô hình)".to_owned(),
        "required" => "chưa nhập".to_owned(),
        "out_of_scope" => "ngoài phạm vi đơn vị của bạn".to_owned(),
        "personal_data" => "chứa số điện thoại, số định danh, địa chỉ thư điện tử hoặc một phần của chúng; \
                            vai trò của bạn không được xem thông tin cá nhân, xin tìm theo nội dung kiến nghị"
            .to_owned(),
        "unknown_topic" => format!("không có chủ đề này (có: {})", expected.unwrap_or_default()),
        "unknown_state" => format!("không có trạng thái này (có: {})", expected.unwrap_or_default()),
        "unknown_province" => "không có tỉnh, thành phố mang mã này".to_owned(),
        "not_in_province" => "xã, phường này không thuộc tỉnh, thành phố đã chọn".to_owned(),
        "too_long" => "quá dài".to_owned(),
        "range" => "ngày kết thúc trước ngày bắt đầu".to_owned(),
        "format" if matches!(error.field.as_str(), "from" | "to") => "phải là một ngày, ví dụ 2025-09-15".to_owned(),
        _ if message.ends_with(" is required") => "chưa nhập".to_owned(),
        _ => match error.field.as_str() {
            "week" => format!("không phải tuần ISO, ví dụ 2025-W38 ({message})"),
            "overdue" | "proximity" => "phải là true hoặc false (1 hoặc 0)".to_owned(),
            "limit" | "offset" => format!("phải là số nguyên trong giới hạn ({message})"),
            "format" => "chỉ nhận html hoặc xlsx".to_owned(),
            "ok" => "không phải một việc xử lý kiến nghị".to_owned(),
            "id" => "không phải mã kiến nghị (UUID)".to_owned(),
            "days" => format!("số ngày làm việc không hợp lệ ({message})"),
            "unit" => format!("mã đơn vị không hợp lệ ({message})"),
            _ => format!("giá trị không hợp lệ ({message})"),
        },
    }
}

/// Chart.js, vendored (see `assets/PROVENANCE.md`).
const CHART_JS: &str = include_str!("../assets/chart.umd.min.js");

/// `GET /assets/chart.umd.min.js`.
pub async fn chart_js() -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        CHART_JS,
    )
        .into_response()
}

/// The days of a week as leaders write them: `15/09–21/09/2025`.
pub fn week_days(week: voxpop_queries::summary::IsoWeek) -> String {
    let monday = week.monday();
    format!("{}–{}", monday.format("%d/%m"), (monday + chrono::Duration::days(6)).format("%d/%m/%Y"))
}

/// Links from a weekly page (`path`) to the week before and the week after, with the page's
/// other parameters (`scope_query`, `&name=value`..., escaped); none to a week not begun.
pub fn week_nav(path: &str, week: voxpop_queries::summary::IsoWeek, scope_query: &str) -> String {
    let link = |id: &str, to: voxpop_queries::summary::IsoWeek, text: String| {
        format!("<a id=\"{id}\" href=\"{path}?week={}{scope_query}\">{text}</a>", to.label())
    };
    let mut nav = String::from("<nav class=\"weeks\">");
    nav.push_str(&link("previous-week", week.previous(), format!("← Tuần {}", week.previous().label())));
    if week.next().start() <= chrono::Utc::now() {
        nav.push_str(&link("next-week", week.next(), format!("Tuần {} →", week.next().label())));
    }
    nav.push_str("</nav>");
    nav
}

/// Communes east of this longitude are the Hoàng Sa and Trường Sa archipelagos: drawn on the map
/// and named, but left out of their provinces' centroids.
const ARCHIPELAGO_LONGITUDE: f64 = 111.0;

/// `GET /assets/vietnam-communes.js`: the 3,321 communes' coordinates as `[lon, lat]` pairs
/// (`VIETNAM_COMMUNES`), whose dots draw the country under the summary's map, the Hoàng Sa and
/// Trường Sa special zones included. Built once from the embedded reference data.
pub async fn vietnam_communes_js() -> Response {
    static SCRIPT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let script = SCRIPT.get_or_init(|| {
        let points: Vec<String> = Units::embedded()
            .communes()
            .iter()
            .filter_map(|c| Some(format!("[{:.2},{:.2}]", c.lon?, c.lat?)))
            .collect();
        format!("const VIETNAM_COMMUNES=[{}];", points.join(","))
    });
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        script.as_str(),
    )
        .into_response()
}

/// The parameters of the leaders' summary page (those of the weekly summary API).
const SUMMARY_PARAMS: [&str; 3] = ["week", "province", "commune"];

/// `GET /tong-hop?week=2025-W38[&province=01]`: the leaders' weekly summary, with charts. A
/// repeated, unknown or bad parameter is a 400 naming it, as the API answers.
pub async fn summary_page(
    State(state): State<AppState>,
    crate::auth::PageCaller(caller): crate::auth::PageCaller,
    RawQuery(raw): RawQuery,
) -> Response {
    const TITLE: &str = "Tổng hợp phản ánh, kiến nghị";
    let mut params = match known_params(raw.as_deref(), &SUMMARY_PARAMS) {
        Ok(params) => params,
        Err(problem) => return problem_page(TITLE, &problem),
    };
    for (key, mine) in [("province", caller.province()), ("commune", caller.commune())] {
        if let Some(mine) = mine {
            if params.get(key).is_some_and(|asked| !asked.is_empty() && *asked != mine) {
                let problem = Problem::new(
                    StatusCode::FORBIDDEN,
                    "out-of-scope",
                    "Outside your unit",
                    format!("`{key}` is outside your unit"),
                );
                return problem_page(TITLE, &out_of_scope(key, problem));
            }
            params.insert(key.to_owned(), mine);
        }
    }
    use voxpop_queries::summary::{IsoWeek, thousands};
    let week = match params.get("week").filter(|w| !w.is_empty()) {
        None => IsoWeek::last_ended(chrono::Utc::now()),
        Some(raw) => match IsoWeek::parse(raw) {
            Some(week) => week,
            None => {
                let problem = Problem::bad_parameter("week", format!("`{raw}` is not an ISO week such as 2025-W38"));
                return problem_page(TITLE, &problem);
            }
        },
    };
    let province = params.get("province").filter(|p| !p.is_empty()).map(String::as_str);
    let commune = params.get("commune").filter(|c| !c.is_empty()).map(String::as_str);
    let summary = match state.queries.weekly_summary_in(week, province, commune).await {
        Ok(summary) => summary,
        Err(voxpop_queries::QueryError::BadRequest { field, message }) => {
            return problem_page(TITLE, &Problem::bad_parameter(field, message));
        }
        Err(err) => return crate::problem::Problem::internal(&err).into_response(),
    };
    // Province centroids from the communes' coordinates (the archipelagos left out, so that Đà
    // Nẵng and Khánh Hòa sit on the mainland): bubbles over the communes of Vietnam, which draw
    // its shape (`/assets/vietnam-communes.js`).
    let units = Units::embedded();
    let mut map_points = Vec::new();
    for row in &summary.by_province {
        let communes: Vec<_> = units
            .communes()
            .iter()
            .filter(|c| c.province_code == row.province_code && c.lat.is_some())
            .filter(|c| c.lon.is_some_and(|lon| lon < ARCHIPELAGO_LONGITUDE))
            .collect();
        if communes.is_empty() {
            continue;
        }
        let lat = communes.iter().filter_map(|c| c.lat).sum::<f64>() / communes.len() as f64;
        let lon = communes.iter().filter_map(|c| c.lon).sum::<f64>() / communes.len() as f64;
        map_points.push(serde_json::json!({"x": lon, "y": lat, "count": row.count, "name": row.province_name}));
    }
    let top: Vec<_> = summary.by_province.iter().take(15).collect();
    let data = serde_json::json!({
        "provinces": top.iter().map(|r| &r.province_name).collect::<Vec<_>>(),
        "counts": top.iter().map(|r| r.count).collect::<Vec<_>>(),
        "previous": top.iter().map(|r| r.previous).collect::<Vec<_>>(),
        "languages": summary.by_language.iter().map(|s| &s.label).collect::<Vec<_>>(),
        "language_counts": summary.by_language.iter().map(|s| s.count).collect::<Vec<_>>(),
        "map": map_points,
        "topics": summary.by_topic.iter().map(|t| &t.label).collect::<Vec<_>>(),
        "topic_counts": summary.by_topic.iter().map(|t| t.count).collect::<Vec<_>>(),
        "topic_previous": summary.by_topic.iter().map(|t| t.previous).collect::<Vec<_>>(),
        "trend_weeks": &summary.trend_weeks,
        "complete": summary.complete,
        "trends": summary.by_topic.iter().filter(|t| t.code != voxpop_queries::summary::UNCLASSIFIED).take(5)
            .map(|t| serde_json::json!({"label": t.label, "data": t.weekly})).collect::<Vec<_>>(),
    });
    let heat_map = heat_map_html(&summary, units);
    let signals = signals_html(&summary);
    let change = summary.change_percent.map_or("—".to_owned(), |p| format!("{p:+.1}%"));
    let vietnam = voxpop_schema::calendar::vietnam_offset();
    let days = week_days(week);
    // The same scope on the neighbouring weeks.
    let scope_query: String = ["province", "commune"]
        .iter()
        .filter_map(|key| params.get(*key).filter(|v| !v.is_empty()).map(|v| format!("&{key}={}", escape(v))))
        .collect();
    let nav = week_nav("/tong-hop", week, &scope_query);
    let (comparison, in_progress) = match (summary.counted_until, summary.previous_to_date) {
        (Some(until), Some(to_date)) => {
            let until = until.with_timezone(&vietnam).format("%H:%M ngày %d/%m/%Y");
            (
                format!(
                    "cùng kỳ tuần trước {} ({change})<br>cả tuần trước {}",
                    thousands(to_date),
                    thousands(summary.previous_total)
                ),
                format!(
                    "<p class=\"notice\" id=\"in-progress\">Tuần {week_label} chưa kết thúc: số liệu tính đến {until} (giờ Việt Nam). \
                     Các số liệu được so với cùng kỳ tuần trước (đến cùng thời điểm); xu hướng 12 tuần tính cả tuần trước.</p>",
                    week_label = escape(&summary.week)
                ),
            )
        }
        _ => (format!("tuần trước {} ({change})", thousands(summary.previous_total)), String::new()),
    };
    let mut html = String::with_capacity(8 * 1024);
    let _ = write!(
        html,
        "<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\"><title>Tổng hợp dư luận tuần {week}</title><style>{STYLE}\
         .cards{{display:flex;gap:16px;padding:16px 24px;flex-wrap:wrap}}.card{{background:#fff;border-radius:6px;padding:12px 18px;min-width:200px}}\
         .card b{{display:block;font-size:28px}}.charts{{display:grid;grid-template-columns:1fr 1fr;gap:16px;padding:0 24px 24px}}\
         .chart{{background:#fff;border-radius:6px;padding:12px}}@page{{size:A4;margin:12mm}}\
         .heat{{background:#fff;border-radius:6px;margin:0 24px 24px;padding:12px;overflow-x:auto}}\
         .heat table{{border-collapse:collapse;font-size:12px}}.heat th,.heat td{{border:1px solid #eee;padding:4px 6px;text-align:right}}\
         .heat th{{font-weight:normal;white-space:nowrap}}.heat th.topic,.heat td.topic{{text-align:left}}\
         .term{{display:inline-block;background:#fde7e5;border-radius:12px;padding:2px 10px;margin:2px}}\
         .weeks{{display:flex;gap:16px;padding:12px 24px 0}}.weeks a{{color:#b3261e}}\
         .notice{{margin:12px 24px 0;padding:8px 12px;background:#fff4d6;border-left:4px solid #e0a800;border-radius:4px}}\
         @media print{{.charts{{grid-template-columns:1fr}}.chart{{break-inside:avoid}}.weeks{{display:none}}}}</style>\
         <script src=\"/assets/chart.umd.min.js\"></script><script src=\"/assets/vietnam-communes.js\"></script></head><body>\
         <header><h1>Tổng hợp phản ánh, kiến nghị — tuần {week} ({days}){scope}</h1></header>{nav}{in_progress}\
         <section class=\"cards\"><div class=\"card\">Kiến nghị trong tuần<b id=\"total\">{total}</b>{comparison}</div>\
         <div class=\"card\">Xã, phường, đặc khu có kiến nghị<b id=\"coverage\">{coverage}</b></div></section>\
         <section class=\"charts\"><div class=\"chart\"><h2>Bản đồ số kiến nghị theo tỉnh, thành phố</h2><canvas id=\"map\"></canvas></div>\
         <div class=\"chart\"><h2>15 tỉnh, thành phố nhiều kiến nghị nhất</h2><canvas id=\"provinces\"></canvas></div>\
         <div class=\"chart\"><h2>Kiến nghị theo chủ đề</h2><canvas id=\"topics\"></canvas></div>\
         <div class=\"chart\"><h2>Xu hướng 12 tuần của 5 chủ đề lớn nhất</h2><canvas id=\"trends\"></canvas></div>\
         <div class=\"chart\"><h2>Ngôn ngữ</h2><canvas id=\"languages\"></canvas></div></section>\
         <section class=\"heat\"><h2>Chủ đề × tỉnh, thành phố (tuần {week})</h2>{heat_map}</section>\
         {signals}\
         <script id=\"summary-data\" type=\"application/json\">{data}</script>\
         <script>{SUMMARY_SCRIPT}</script></body></html>",
        week = escape(&summary.week),
        scope = province
            .map(|code| units.province(code).map_or(String::new(), |p| format!(" — {}", escape(&p.name))))
            .unwrap_or_default(),
        total = thousands(summary.total),
        coverage = escape(&summary.communes_with_petitions.text),
        heat_map = heat_map,
        signals = signals,
        // JSON inside <script>: only `</` could end the element early.
        data = data.to_string().replace("</", "<\\/"),
    );
    Html(html).into_response()
}

/// Spikes, rising terms and campaigns: what is new or growing, in words a leader reads quickly.
fn signals_html(summary: &voxpop_queries::summary::WeeklySummary) -> String {
    use voxpop_queries::summary::thousands;
    let mut html = String::from("<section class=\"heat\" id=\"signals\"><h2>Điểm nóng trong tuần</h2>");
    if summary.spikes.is_empty() {
        html.push_str("<p>Không có chủ đề nào tăng đột biến so với 8 tuần trước.</p>");
    } else {
        html.push_str("<table id=\"spikes\"><thead><tr><th class=\"topic\">Chủ đề</th><th class=\"topic\">Tỉnh, thành phố</th><th>Tuần này</th><th>Trung bình 8 tuần</th><th>Tăng</th></tr></thead><tbody>");
        for row in summary.spikes.iter().take(10) {
            let _ = write!(
                html,
                "<tr><td class=\"topic\">{}</td><td class=\"topic\">{}</td><td>{}</td><td>{:.1}</td><td>{}</td></tr>",
                escape(&row.topic_label),
                escape(&row.province_name),
                thousands(row.count),
                row.baseline_mean,
                row.change_percent.map_or("mới".to_owned(), |p| format!("{p:+.0}%"))
            );
        }
        html.push_str("</tbody></table>");
    }
    html.push_str("<h2>Từ ngữ nổi lên</h2>");
    if summary.rising_terms.is_empty() {
        html.push_str("<p>Chưa có từ ngữ nào nổi lên rõ rệt.</p>");
    } else {
        html.push_str("<p id=\"rising-terms\">");
        for term in summary.rising_terms.iter().take(15) {
            let _ = write!(
                html,
                "<span class=\"term\" title=\"{} kiến nghị tuần này, {} trong 8 tuần trước\">{}</span> ",
                term.current_docs,
                term.baseline_docs,
                escape(&term.term)
            );
        }
        html.push_str("</p>");
    }
    let _ = write!(
        html,
        "<h2>Vụ việc nhiều người cùng phản ánh</h2><p>{} kiến nghị trong tuần tương ứng với khoảng {} vụ việc khác nhau.</p>",
        thousands(summary.total),
        thousands(summary.distinct_matters)
    );
    if !summary.campaigns.is_empty() {
        html.push_str("<table id=\"campaigns\"><thead><tr><th>Số kiến nghị</th><th>Số người</th><th class=\"topic\">Nơi</th><th class=\"topic\">Nội dung tiêu biểu</th></tr></thead><tbody>");
        for campaign in &summary.campaigns {
            let units = Units::embedded();
            let places: Vec<String> = campaign
                .communes
                .iter()
                .take(3)
                .map(|code| units.commune(code).map_or(code.clone(), |c| c.name.clone()))
                .collect();
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td class=\"topic\">{}</td><td class=\"topic\"><b>{}</b><br>{}…</td></tr>",
                campaign.size,
                campaign.citizens,
                escape(&places.join(", ")),
                escape(&campaign.title),
                escape(&campaign.excerpt)
            );
        }
        html.push_str("</tbody></table>");
    }
    html.push_str("</section>");
    html
}

/// Provinces shown as columns of the heat map: the busiest of the week.
const HEAT_MAP_PROVINCES: usize = 15;

/// The topic × province matrix as a table whose cells are shaded by count: readable at a
/// glance, printable, and without a script.
fn heat_map_html(summary: &voxpop_queries::summary::WeeklySummary, units: &Units) -> String {
    let matrix = &summary.topic_matrix;
    let columns = matrix.provinces.len().min(HEAT_MAP_PROVINCES);
    let largest = matrix.counts.iter().flat_map(|row| row[..columns].iter()).copied().max().unwrap_or(0).max(1);
    let mut html = String::from("<table id=\"heat-map\"><thead><tr><th class=\"topic\">Chủ đề</th>");
    for code in &matrix.provinces[..columns] {
        let name = units.province(code).map_or(code.as_str(), |p| p.name.as_str());
        let _ = write!(html, "<th>{}</th>", escape(name));
    }
    html.push_str("</tr></thead><tbody>");
    for (topic, row) in summary.by_topic.iter().zip(&matrix.counts) {
        let _ = write!(html, "<tr><th class=\"topic\">{}</th>", escape(&topic.label));
        for &count in &row[..columns] {
            let alpha = if count == 0 { 0.0 } else { 0.12 + 0.88 * count as f64 / largest as f64 };
            let ink = if alpha > 0.55 { "#fff" } else { "#222" };
            let _ = write!(
                html,
                "<td style=\"background:rgba(179,38,30,{alpha:.2});color:{ink}\">{}</td>",
                if count == 0 { String::new() } else { count.to_string() }
            );
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    html
}

const SUMMARY_SCRIPT: &str = r#"
const data = JSON.parse(document.getElementById('summary-data').textContent);
const red = '#b3261e', grey = '#9aa5b1';
Chart.defaults.animation = false;
new Chart(document.getElementById('provinces'), {type: 'bar',
  data: {labels: data.provinces, datasets: [
    {label: 'Tuần này', data: data.counts, backgroundColor: red},
    {label: data.complete ? 'Tuần trước' : 'Cùng kỳ tuần trước', data: data.previous, backgroundColor: grey}]},
  options: {indexAxis: 'y', scales: {y: {ticks: {autoSkip: false}}}}});
new Chart(document.getElementById('languages'), {type: 'doughnut',
  data: {labels: data.languages, datasets: [{data: data.language_counts}]}, options: {aspectRatio: 2}});
const largest = Math.max(1, ...data.map.map(p => p.count));
// The map: every commune a grey dot (the shape of Vietnam, the archipelagos included), each
// province a bubble at its communes' centre, sized by its petitions; the five largest and the
// archipelagos named, so that the map reads on paper too. Degrees of longitude are drawn
// shorter than degrees of latitude by cos(16°), as on a map of Vietnam.
const bounds = {west: 102, east: 117, south: 8, north: 23.6};
const labels = {id: 'labels', afterDatasetsDraw(chart) {
  const {ctx, scales: {x, y}} = chart;
  ctx.save(); ctx.font = '11px sans-serif'; ctx.fillStyle = '#333'; ctx.textAlign = 'center';
  // The archipelagos as clusters of islets: a single commune's dot would not show them.
  [[111.6, 16.6], [112.0, 16.9], [112.3, 16.5], [112.7, 16.2], [112.1, 16.05], [111.9, 16.45],
   [114.1, 10.0], [114.5, 9.7], [114.9, 9.3], [115.4, 8.9], [113.9, 9.2], [114.3, 8.7], [115.1, 10.2]]
    .forEach(([lon, lat]) => { ctx.beginPath(); ctx.arc(x.getPixelForValue(lon), y.getPixelForValue(lat), 1.8, 0, 2 * Math.PI); ctx.fill(); });
  [[112.1, 17.5, 'Quần đảo Hoàng Sa'], [112.1, 17.05, '(Đà Nẵng)'],
   [114.5, 11.0, 'Quần đảo Trường Sa'], [114.5, 10.55, '(Khánh Hòa)']]
    .forEach(([lon, lat, text]) => ctx.fillText(text, x.getPixelForValue(lon), y.getPixelForValue(lat)));
  ctx.textAlign = 'left'; ctx.font = 'bold 11px sans-serif';
  [...data.map].sort((a, b) => b.count - a.count).slice(0, 5).filter(p => p.count > 0).forEach(p =>
    ctx.fillText(p.name.replace(/^(Tỉnh|Thành phố) /, ''), x.getPixelForValue(p.x) + 6 + 17 * Math.sqrt(p.count / largest) * 0.7, y.getPixelForValue(p.y) + 4));
  ctx.restore();
}};
new Chart(document.getElementById('map'), {type: 'bubble', plugins: [labels],
  data: {datasets: [
    {label: 'Số kiến nghị', backgroundColor: 'rgba(179,38,30,0.55)', borderColor: 'rgba(179,38,30,0.9)',
      data: data.map.map(p => ({x: p.x, y: p.y, r: 3 + 17 * Math.sqrt(p.count / largest), name: p.name, count: p.count}))},
    {label: 'Xã, phường, đặc khu', backgroundColor: '#9aa5b1', borderWidth: 0, hoverRadius: 0,
      data: VIETNAM_COMMUNES.map(([x, y]) => ({x, y, r: 1.3}))}]},
  options: {aspectRatio: ((bounds.east - bounds.west) * Math.cos(16 * Math.PI / 180)) / (bounds.north - bounds.south),
    scales: {x: {min: bounds.west, max: bounds.east, display: false}, y: {min: bounds.south, max: bounds.north, display: false}},
    plugins: {legend: {labels: {filter: item => item.datasetIndex === 0}},
      tooltip: {filter: item => item.datasetIndex === 0, callbacks: {label: c => c.raw.name + ': ' + c.raw.count.toLocaleString('en-US')}}}}});
new Chart(document.getElementById('topics'), {type: 'bar',
  data: {labels: data.topics, datasets: [
    {label: 'Tuần này', data: data.topic_counts, backgroundColor: red},
    {label: data.complete ? 'Tuần trước' : 'Cùng kỳ tuần trước', data: data.topic_previous, backgroundColor: grey}]},
  options: {indexAxis: 'y', scales: {y: {ticks: {autoSkip: false}}}}});
new Chart(document.getElementById('trends'), {type: 'line',
  // A week in progress is the last point: its segment is dashed, as it will still grow.
  data: {labels: data.trend_weeks.map((w, i) => !data.complete && i === data.trend_weeks.length - 1 ? w + ' (chưa hết tuần)' : w),
    datasets: data.trends.map(t => ({label: t.label, data: t.data, tension: 0.2,
      segment: {borderDash: c => !data.complete && c.p1DataIndex === data.trend_weeks.length - 1 ? [6, 4] : undefined}}))},
  options: {scales: {y: {beginAtZero: true}}}});
document.getElementById('map').dataset.communes = VIETNAM_COMMUNES.length;
document.body.dataset.chartsReady = 'yes';
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_parameters_and_formats_are_named_when_wrong() {
        let fields = |problem: Problem| -> Vec<(String, String)> {
            problem.errors.iter().map(|e| (e.field.clone(), e.code.clone())).collect()
        };
        assert!(report_params(Some("week=2025-W38&unit=00004&format=xlsx")).is_ok());
        assert!(report_params(Some("format=html")).is_ok() && report_params(None).is_ok());
        let pdf = report_params(Some("week=2025-W38&format=pdf")).unwrap_err();
        assert_eq!(pdf.status, 400);
        assert_eq!(fields(pdf), [("format".to_owned(), "invalid".to_owned())]);
        let repeated = report_params(Some("week=2025-W38&week=2025-W39")).unwrap_err();
        assert_eq!(fields(repeated), [("week".to_owned(), "duplicate_parameter".to_owned())]);
        let unknown = report_params(Some("foo=1")).unwrap_err();
        assert_eq!(fields(unknown), [("foo".to_owned(), "unknown_parameter".to_owned())]);
    }

    #[test]
    fn problems_are_shown_in_vietnamese_naming_each_field() {
        let problem = known_params(Some("week=1&week=2&<b>=1"), &["week"]).unwrap_err();
        let html = problem_html("Tham số không hợp lệ", &problem);
        assert!(html.contains("<li data-field=\"week\"><code>week</code>: được gửi nhiều lần"), "{html}");
        let problem = known_params(Some("x=1"), &["week", "province"]).unwrap_err();
        let html = problem_html("Tham số không hợp lệ", &problem);
        assert!(html.contains("data-field=\"x\"") && html.contains("(trang nhận: week, province)"), "{html}");
        let html = problem_html("Tham số không hợp lệ", &known_params(Some("%3Cb%3E=1"), &[]).unwrap_err());
        assert!(html.contains("data-field=\"&lt;b&gt;\"") && html.contains("không nhận tham số nào"), "{html}");
        let forbidden = out_of_scope("province", Problem::new(StatusCode::FORBIDDEN, "out-of-scope", "Outside", "x"));
        assert_eq!(problem_heading(&forbidden), "Ngoài phạm vi đơn vị của bạn");
        assert!(problem_html("", &forbidden).contains("data-field=\"province\""));
        let mut conflict = Problem::new(StatusCode::CONFLICT, "invalid-transition", "Not allowed", "x");
        conflict.allowed = vec!["extend".to_owned(), "transfer".to_owned()];
        let html = problem_html("Không thực hiện được", &conflict);
        assert!(html.contains("không cho phép") && html.contains("Được phép: Gia hạn, Chuyển đơn vị khác."), "{html}");
    }

    #[test]
    fn search_counts_are_grouped_by_thousands() {
        let results = SearchResults {
            total: 2271,
            hits: Vec::new(),
            province_facets: vec![voxpop_index::FacetCount { province_code: "01".to_owned(), count: 1400 }],
            topic_facets: vec![voxpop_index::TopicCount { topic: "land".to_owned(), count: 12_345 }],
        };
        let mut html = String::new();
        render_results(&mut html, &results, &HashMap::new());
        assert!(html.contains("Tìm thấy <strong>2,271</strong> kiến nghị"), "{html}");
        assert!(html.contains("<span>1,400</span>") && html.contains("<span>12,345</span>"), "{html}");
    }

    #[test]
    fn escaping_and_encoding() {
        assert_eq!(escape("<b>\"x\" & 'y'</b>"), "&lt;b&gt;&quot;x&quot; &amp; &#x27;y&#x27;&lt;/b&gt;");
        assert_eq!(url_encode("đất đai"), "%C4%91%E1%BA%A5t%20%C4%91ai");
    }
}

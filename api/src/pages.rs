//! Web pages for staff, in Vietnamese, rendered on the server (no script needed to read them).

use std::collections::HashMap;
use std::fmt::Write;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use voxpop_index::SearchResults;
use voxpop_schema::Units;
use voxpop_schema::privacy::mask_numbers;

use crate::http::{AppState, search_request};

/// HTML-escapes text for element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

const STYLE: &str = "
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

/// `GET /`: search petitions by theme, province and date.
pub async fn search_page(State(state): State<AppState>, Query(params): Query<HashMap<String, String>>) -> Response {
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
    let _ = write!(
        html,
        "</select><label>Từ ngày <input type=\"date\" name=\"from\" value=\"{}\"></label>\
         <label>Đến ngày <input type=\"date\" name=\"to\" value=\"{}\"></label><button type=\"submit\">Tìm kiếm</button></form><main>",
        escape(value("from")),
        escape(value("to"))
    );
    let mut status = StatusCode::OK;
    match search_request(&params) {
        Err(problem) => {
            status = StatusCode::BAD_REQUEST;
            let fields: Vec<String> = problem.errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
            let _ = write!(
                html,
                "<section class=\"results\"><p class=\"error\">Tham số không hợp lệ — {}</p></section>",
                escape(&fields.join("; "))
            );
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
        results.total
    );
    for hit in &results.hits {
        let province = units.province(&hit.province_code).map_or(hit.province_code.as_str(), |p| p.name.as_str());
        let commune = units.commune(&hit.commune_code).map_or(hit.commune_code.as_str(), |c| c.name.as_str());
        let _ = write!(
            html,
            "<article class=\"hit\"><a href=\"/api/v1/petitions/{}\">{}</a><div class=\"meta\">{} · {} · {}</div><div>{}</div></article>",
            hit.id,
            escape(&mask_numbers(&hit.title)),
            hit.received_at.format("%d/%m/%Y"),
            escape(commune),
            escape(province),
            // The index escapes the snippet's text and adds only <mark> tags.
            mask_numbers(&hit.snippet)
        );
    }
    html.push_str("</section><aside class=\"facets\"><h2>Theo tỉnh, thành phố</h2><ul>");
    for facet in &results.province_facets {
        let name = units.province(&facet.province_code).map_or(facet.province_code.as_str(), |p| p.name.as_str());
        let mut link: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| k.as_str() != "province" && k.as_str() != "offset")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        link.push(("province".to_owned(), facet.province_code.clone()));
        link.sort();
        let query: Vec<String> = link.iter().map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v))).collect();
        let _ = write!(
            html,
            "<li><a href=\"/?{}\">{}</a><span>{}</span></li>",
            escape(&query.join("&")),
            escape(name),
            facet.count
        );
    }
    html.push_str("</ul></aside>");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_encoding() {
        assert_eq!(escape("<b>\"x\" & 'y'</b>"), "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;");
        assert_eq!(url_encode("đất đai"), "%C4%91%E1%BA%A5t%20%C4%91ai");
    }
}

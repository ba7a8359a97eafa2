//! The staff search page in a real headless browser (Debian's chromium).

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use voxpop_tests::paths::{py_script, python};
use voxpop_tests::server::Server;

/// Runs headless chromium with the flags that need no network; returns stdout.
fn chromium(args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    let output = Command::new(&binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run `{binary}` (scripts/test.sh installs Debian's chromium): {err}"));
    assert!(output.status.success(), "chromium failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn search_page_shows_highlighted_results_and_facets_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None).await;
    let mut acked = HashSet::new();
    for (title, commune) in
        [("Tranh chấp đất đai kéo dài", "00004"), ("Ô nhiễm bãi rác", "00976"), ("Bồi thường đất đai thấp", "21529")]
    {
        let petition = json!({"title": title, "body": format!("{title}: đề nghị xem xét giải quyết. Liên hệ 0912 345 678."), "commune_code": commune});
        acked.insert(server.submit(&petition).await);
    }
    server.wait_for_ids(&acked, Duration::from_secs(30)).await;

    let url = server.url("/?q=dat+dai");
    let dom = chromium(&["--dump-dom", &url]);
    assert!(dom.contains("Tra cứu phản ánh, kiến nghị"), "{dom}");
    assert!(dom.contains("Tìm thấy <strong>2</strong> kiến nghị"), "{dom}");
    assert!(dom.contains("<mark>"), "matches are highlighted: {dom}");
    assert!(dom.contains("Thành phố Hà Nội") && dom.contains("Tỉnh Quảng Ngãi"), "facets name the provinces: {dom}");
    assert!(!dom.contains("0912 345 678"), "phone numbers are masked on the page");
    let filtered = chromium(&["--dump-dom", &server.url("/?q=dat+dai&province=51")]);
    assert!(filtered.contains("Tìm thấy <strong>1</strong> kiến nghị"), "{filtered}");
    // Topics: a facet with counts and a filter ("đất đai" is a land rule; the landfill is not land).
    assert!(dom.contains("Đất đai, giải phóng mặt bằng và bồi thường</a><span>2</span>"), "{dom}");
    let by_topic = chromium(&["--dump-dom", &server.url("/?topic=environment")]);
    assert!(
        by_topic.contains("Tìm thấy <strong>1</strong> kiến nghị") && by_topic.contains("Ô nhiễm bãi rác"),
        "{by_topic}"
    );
    // Each result links to its petition's page, personal data masked there too.
    let link = dom.split("href=\"/kien-nghi/").nth(1).and_then(|rest| rest.split('"').next()).expect("a petition link");
    let petition = chromium(&["--dump-dom", &server.url(&format!("/kien-nghi/{link}"))]);
    assert!(petition.contains("id=\"title\"") && petition.contains("đề nghị xem xét giải quyết"), "{petition}");
    assert!(!petition.contains("0912 345 678"), "{petition}");
    let missing = reqwest::get(server.url("/kien-nghi/0190b1c2-0000-7000-8000-000000000000")).await.unwrap();
    assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);
    let bad = reqwest::get(server.url("/?from=hôm-qua")).await.unwrap();
    assert_eq!(bad.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("Tham số không hợp lệ"));

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("search-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&["--window-size=1280,900", &format!("--screenshot={}", shot.display()), &url]);
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "screenshot {} has {size} bytes", shot.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn leaders_summary_page_draws_its_charts_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None).await;
    let mut acked = HashSet::new();
    for (n, (commune, at)) in [
        ("00004", "2025-09-16T10:00:00+07:00"),
        ("00976", "2025-09-17T10:00:00+07:00"),
        ("00004", "2025-09-09T10:00:00+07:00"),
    ]
    .iter()
    .enumerate()
    {
        let petition = json!({"title": "Kiến nghị về đường giao thông", "body": "Đường xuống cấp. Dữ liệu tổng hợp.",
            "commune_code": commune, "channel": "import", "external_id": format!("page-{n}"), "submitted_at": at});
        acked.insert(server.submit(&petition).await);
    }
    server.wait_for_ids(&acked, Duration::from_secs(30)).await;
    let url = server.url("/tong-hop?week=2025-W38");
    // Virtual time lets the page's script load Chart.js from the server and draw before the dump.
    let dom = chromium(&["--virtual-time-budget=5000", "--dump-dom", &url]);
    assert!(dom.contains("Tổng hợp phản ánh, kiến nghị — tuần 2025-W38"), "{dom}");
    assert!(dom.contains("<b id=\"total\">2</b>"), "{dom}");
    assert!(dom.contains("2/3,321 (0.06%)"), "{dom}");
    assert!(dom.contains("data-charts-ready=\"yes\""), "the charts script ran to the end: {dom}");
    assert_eq!(dom.matches("<canvas").count(), 5);
    // The map's dots: every commune, the archipelagos' special zones included.
    assert!(dom.contains("data-communes=\"3321\""), "{dom}");
    // The neighbouring weeks, and no notice of a week in progress for a week long ended.
    assert!(dom.contains("href=\"/tong-hop?week=2025-W37\""), "{dom}");
    assert!(dom.contains("href=\"/tong-hop?week=2025-W39\""), "{dom}");
    assert!(!dom.contains("id=\"in-progress\""), "{dom}");
    // The heat map: "xuống cấp" files the petitions under infrastructure, 1 in Hà Nội this week.
    assert!(dom.contains("<th class=\"topic\">Đường sá và hạ tầng</th>"), "{dom}");
    assert!(dom.contains("id=\"heat-map\""), "{dom}");
    let bad = reqwest::get(server.url("/tong-hop?week=38")).await.unwrap();
    assert_eq!(bad.status(), reqwest::StatusCode::BAD_REQUEST);

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("summary-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&[
        "--virtual-time-budget=5000",
        "--window-size=1280,1400",
        &format!("--screenshot={}", shot.display()),
        &url,
    ]);
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "screenshot {} has {size} bytes", shot.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_page_shows_coverage_and_indicators_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(data_dir.join("reference")).unwrap();
    std::fs::write(
        data_dir.join("reference/villages.csv"),
        "code,name\n00004-001,Tổ dân phố số 1\n00004-002,Tổ dân phố số 2\n",
    )
    .unwrap();
    let server = Server::start(&data_dir, None).await;
    let client = reqwest::Client::new();
    for (unit, meetings) in [("00004", 2), ("00004-001", 3)] {
        let response = client
            .post(server.url("/api/v1/reports"))
            .json(&json!({"unit": unit, "week": "2025-W38", "values": {"meetings_held": meetings}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    }
    for _ in 0..100 {
        let synthesis = server.get_json("/api/v1/reports/weekly", &[("week", "2025-W38"), ("unit", "00004")]).await;
        if synthesis["coverage"][0]["coverage"]["count"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = server.url("/bao-cao?week=2025-W38&unit=00004");
    let dom = chromium(&["--virtual-time-budget=5000", "--dump-dom", &url]);
    assert!(dom.contains("Tổng hợp báo cáo tuần 2025-W38 (15/09–21/09/2025)"), "{dom}");
    assert!(dom.contains("href=\"/bao-cao?week=2025-W37&amp;unit=00004\""), "the week before: {dom}");
    assert!(dom.contains("1/2 (50.00%)"), "village coverage: {dom}");
    assert!(dom.contains("00004-002"), "the missing village is listed: {dom}");
    assert!(dom.contains("data-charts-ready=\"yes\""), "{dom}");
    assert!(
        dom.contains("Danh sách cán bộ, hội viên")
            && dom.contains("0/2 (0.00%) thôn, tổ dân phố đã cập nhật danh sách cán bộ trong kỳ"),
        "the registers section: {dom}"
    );
    let workbook = client.get(format!("{url}&format=xlsx")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&workbook[..2], b"PK");
    let output = Command::new(voxpop_tests::server::voxpop_bin())
        .args(["report", "weekly", "--week", "2025-W38", "--unit", "00004", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && text.contains("1/2 (50.00%)"),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_sign_in_and_handle_petitions_from_the_inbox_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let token = voxpop_tests::server::create_token(&data_dir, "00004", "officer");
    // The village the browser assigns a petition to is in the register (an unregistered one is refused).
    std::fs::create_dir_all(data_dir.join("reference")).unwrap();
    std::fs::write(data_dir.join("reference/villages.csv"), "code,name\n00004-001,Tổ dân phố số 1\n").unwrap();
    let server = Server::start(&data_dir, None).await;
    let first = server
        .submit(
            &json!({"title": "Bãi rác tự phát", "body": "Bãi rác cạnh trường học gây mùi.", "commune_code": "00004"}),
        )
        .await;
    let second = server
        .submit(
            &json!({"title": "Cống thoát nước", "body": "Cống tắc ở tổ dân phố giáp ranh.", "commune_code": "00004"}),
        )
        .await;
    // Received long ago (an imported record): overdue, so first in the inbox.
    let late = server
        .submit(&json!({"title": "Đường hỏng", "body": "Đường liên thôn hỏng.", "commune_code": "00004",
            "channel": "import", "external_id": "old-1", "submitted_at": "2026-01-05T02:00:00Z"}))
        .await;
    server.wait_written(3, Duration::from_secs(30)).await;

    let script = py_script("staff_pages.py");
    let output = Command::new(python()).arg(script).args([&server.url(""), &token, &first, &second]).output().unwrap();
    assert!(
        output.status.success(),
        "browser run failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["unauthenticated_status"], 401, "{report}");
    assert!(report["inbox_url"].as_str().unwrap().ends_with("/xu-ly"), "{report}");
    assert!(report["inbox_unit"].as_str().unwrap().contains("Ủy ban MTTQ Việt Nam"), "{report}");
    assert_eq!(report["inbox_first_row"], late.as_str(), "overdue first: {report}");
    assert_eq!(report["overdue_rows"], json!([late]), "{report}");
    assert!(report["inbox_counts"].as_str().unwrap().starts_with("3 kiến nghị"), "{report}");
    assert_eq!(report["chart_drawn"], true, "{report}");
    assert_eq!(report["opened_state"], "received");
    assert_eq!(
        [&report["after_accept"], &report["after_assign"], &report["after_answer"]],
        [&json!("accepted"), &json!("assigned"), &json!("answered")],
        "{report}"
    );
    assert!(report["handler_after_assign"].as_str().unwrap().contains("thôn/tổ dân phố 001"), "{report}");
    assert_eq!(report["answer"], "Đã thu gom rác và lắp biển cấm đổ rác.");
    assert_eq!(report["transfer_list"], "units", "{report}");
    assert!(report["transfer_choice"].as_str().is_some_and(|name| name.starts_with("Phường")), "{report}");
    assert_eq!(report["after_transfer"], "received");
    assert!(report["handler_after_transfer"].as_str().unwrap().contains("Ủy ban MTTQ Việt Nam"), "{report}");
    // The API agrees: the first petition answered by the commune's officer, on time.
    let client = reqwest::Client::new();
    let history = history(&client, &server, &first, &token).await;
    assert_eq!(history["status"]["state"], "answered", "{history}");
    assert_eq!(history["status"]["answered_on_time"], true);
}

/// The handling history of petition `id` as `token` reads it from the API.
async fn history(client: &reqwest::Client, server: &Server, id: &str, token: &str) -> serde_json::Value {
    let url = server.url(&format!("/api/v1/petitions/{id}/history"));
    client.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap()
}

/// The actions of a [`history`], in order.
fn history_actions(history: &serde_json::Value) -> Vec<&str> {
    history["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect()
}

/// A page fetched as a test reads it: status, content type and text.
async fn fetch(request: reqwest::RequestBuilder) -> (reqwest::StatusCode, String, String) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

/// Asserts that a page refused its request with `status` in an HTML page naming `field`.
fn assert_refused(page: &(reqwest::StatusCode, String, String), status: u16, field: &str, what: &str) {
    let (got, content_type, text) = page;
    assert_eq!(got.as_u16(), status, "{what}: {text}");
    assert!(content_type.starts_with("text/html"), "{what}: {content_type}");
    assert!(text.contains(&format!("data-field=\"{field}\"")), "{what} names `{field}`: {text}");
    assert!(text.contains("lang=\"vi\""), "{what}: a Vietnamese page: {text}");
}

/// A client that shows redirects rather than following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A form post to a handling page, as a browser sends it.
fn post_form(client: &reqwest::Client, url: String, token: &str, body: &'static str) -> reqwest::RequestBuilder {
    client
        .post(url)
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_handling_page_masks_answers_and_notes_for_a_data_engineer() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let officer = voxpop_tests::server::create_token(&data_dir, "00004", "officer");
    let engineer = voxpop_tests::server::create_token(&data_dir, "00", "data_engineer");
    let server = Server::start(&data_dir, None).await;
    // Synthetic phone and ID numbers, as citizens and staff write them.
    let id = server
        .submit(&json!({"title": "Khiếu nại gọi 0912345678", "body": "Xin gọi lại số 0912345678.",
            "commune_code": "00004"}))
        .await;
    server.wait_written(1, Duration::from_secs(30)).await;
    let client = reqwest::Client::new();
    for step in [
        json!({"action": "accept", "note": "Đã gọi 0912345678, CCCD 001203004567"}),
        json!({"action": "start", "note": "Hẹn gặp, mang CCCD 001203004567"}),
        json!({"action": "answer", "answer": "Liên hệ 0912345678, mang CCCD 001203004567.", "note": "Gọi 0912345678"}),
    ] {
        let response = client
            .post(server.url(&format!("/api/v1/petitions/{id}/actions")))
            .bearer_auth(&officer)
            .json(&step)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{}", response.text().await.unwrap());
    }
    let url = server.url(&format!("/xu-ly/{id}"));
    let (status, _, page) = fetch(client.get(&url).bearer_auth(&engineer)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    assert!(page.contains("id=\"history\""), "{page}");
    assert!(!page.contains("0912345678") && !page.contains("001203004567"), "numbers in clear: {page}");
    assert!(page.contains("Liên hệ *******678, mang CCCD *********567."), "the answer, masked: {page}");
    assert!(page.contains("Đã gọi *******678, CCCD *********567"), "a note, masked: {page}");
    // The officer who acted reads them in clear.
    let (status, _, page) = fetch(client.get(&url).bearer_auth(&officer)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    assert!(page.contains("Liên hệ 0912345678, mang CCCD 001203004567."), "{page}");
    assert!(page.contains("Hẹn gặp, mang CCCD 001203004567"), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_action_form_refuses_repeated_unknown_and_unreadable_fields_with_a_vietnamese_page() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let officer = voxpop_tests::server::create_token(&data_dir, "00004", "officer");
    let engineer = voxpop_tests::server::create_token(&data_dir, "00", "data_engineer");
    let server = Server::start(&data_dir, None).await;
    let id = server
        .submit(&json!({"title": "Cống thoát nước", "body": "Cống tắc nhiều ngày.", "commune_code": "00004"}))
        .await;
    server.wait_written(1, Duration::from_secs(30)).await;
    let client = no_redirects();
    let url = server.url(&format!("/xu-ly/{id}"));
    let accepted = fetch(post_form(&client, url.clone(), &officer, "action=accept")).await;
    assert_eq!(accepted.0, reqwest::StatusCode::SEE_OTHER, "{}", accepted.2);

    for (body, status, field, what) in [
        ("action=extend&days=2&note=%00", 422, "note", "ký tự điều khiển"),
        ("action=extend&days=2&note=x&note=y", 422, "note", "được gửi nhiều lần"),
        ("action=extend&days=2&days=3&note=ly+do", 422, "days", "được gửi nhiều lần"),
        ("action=extend&days=2&note=ly+do&foo=1", 422, "foo", "không phải trường của biểu mẫu"),
        ("action=extend&days=2&note=%FF%FE", 400, "note", "UTF-8"),
        ("action=extend&days=2&note=%E2%80%8B+%09", 422, "note", "không có nội dung hiển thị"),
        ("action=extend&days=hai&note=ly+do", 422, "days", "số ngày làm việc"),
        ("action=extend&days=2", 422, "note", "chưa nhập"),
        ("days=2&note=ly+do", 422, "action", "chưa nhập"),
    ] {
        let page = fetch(post_form(&client, url.clone(), &officer, body)).await;
        assert_refused(&page, status, field, body);
        assert!(page.2.contains("Không thực hiện được") && page.2.contains(what), "{body}: {}", page.2);
        assert!(page.2.contains("id=\"history\""), "{body}: the petition's page again: {}", page.2);
    }
    // What the state or the role does not allow: the page again, with the API's status.
    let page = fetch(post_form(&client, url.clone(), &officer, "action=answer&answer=Xong")).await;
    assert_eq!(page.0, reqwest::StatusCode::CONFLICT, "{}", page.2);
    assert!(page.2.contains("id=\"allowed\"") && page.2.contains("Gia hạn"), "{}", page.2);
    let page = fetch(post_form(&client, url.clone(), &engineer, "action=extend&days=2&note=ly+do")).await;
    assert_eq!(page.0, reqwest::StatusCode::FORBIDDEN, "{}", page.2);
    assert!(page.2.contains("Không thực hiện được"), "{}", page.2);
    // A malformed id is a 400 naming `id`, as the API answers.
    let page = fetch(post_form(&client, server.url("/xu-ly/khong-phai-ma"), &officer, "action=accept")).await;
    assert_refused(&page, 400, "id", "POST /xu-ly/{malformed}");

    // A reason on two lines (a textarea's CR LF) is recorded; nothing refused above was.
    let done = fetch(post_form(
        &client,
        url.clone(),
        &officer,
        "action=extend&days=2&note=C%E1%BA%A7n+x%C3%A1c+minh%0D%0Ath%C3%AAm",
    ))
    .await;
    assert_eq!(done.0, reqwest::StatusCode::SEE_OTHER, "{}", done.2);
    let history = history(&client, &server, &id, &officer).await;
    let actions = history_actions(&history);
    assert_eq!(actions, ["accept", "extend"], "{history}");
    assert!(history["events"][1]["note"].as_str().unwrap().starts_with("Cần xác minh"), "{history}");
    assert_eq!(history["events"][1]["days"], 2, "{history}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_refuse_repeated_unknown_and_bad_parameters_and_keep_their_own_links_working() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let officer = voxpop_tests::server::create_token(&data_dir, "00004", "officer");
    // A commune officer of another province (Quảng Ngãi).
    let elsewhere = voxpop_tests::server::create_token(&data_dir, "21529", "officer");
    let server = Server::start(&data_dir, None).await;
    let mut acked = HashSet::new();
    for title in ["Tranh chấp đất đai kéo dài", "Bồi thường đất đai thấp"] {
        let petition = json!({"title": title, "body": format!("{title}: đề nghị xem xét."), "commune_code": "00004"});
        acked.insert(server.submit(&petition).await);
    }
    server.wait_for_ids(&acked, Duration::from_secs(30)).await;
    let id = acked.iter().next().unwrap().clone();
    let client = no_redirects();
    let get = |path: &str, token: &str| client.get(server.url(path)).bearer_auth(token.to_owned());

    for (path, status, field) in [
        ("/?q=dat&q=dai", 400, "q"),
        ("/?q=dat&foo=1", 400, "foo"),
        ("/?proximity=yes", 400, "proximity"),
        ("/?from=h%C3%B4m-qua", 400, "from"),
        ("/tong-hop?week=2026-W45&week=2026-W44", 400, "week"),
        ("/tong-hop?week=2026-W45&foo=1", 400, "foo"),
        ("/tong-hop?week=38", 400, "week"),
        ("/tong-hop?province=51", 403, "province"),
        ("/xu-ly?overdue=yes", 400, "overdue"),
        ("/xu-ly?unit=00004&unit=00004", 400, "unit"),
        ("/xu-ly?limit=0", 400, "limit"),
        ("/xu-ly?foo=1", 400, "foo"),
        ("/xu-ly?unit=01", 403, "unit"),
        ("/xu-ly/khong-phai-ma", 400, "id"),
        ("/dang-nhap?next=/xu-ly&next=/", 400, "next"),
        ("/dang-nhap?foo=1", 400, "foo"),
    ] {
        assert_refused(&fetch(get(path, &officer)).await, status, field, path);
    }
    for path in [format!("/xu-ly/{id}?ok=nope"), format!("/xu-ly/{id}?ok=accept&x=1"), format!("/kien-nghi/{id}?x=1")] {
        let field = if path.contains("nope") { "ok" } else { "x" };
        assert_refused(&fetch(get(&path, &officer)).await, 400, field, &path);
    }
    let repeated = fetch(get("/tong-hop?week=2026-W45&week=2026-W44", &officer)).await.2;
    assert!(repeated.contains("Tham số không hợp lệ") && repeated.contains("được gửi nhiều lần"), "{repeated}");
    // Outside the caller's unit is a 403, as the search API answers, not a 400.
    assert_refused(&fetch(get("/?q=dat&province=01", &elsewhere)).await, 403, "province", "another province");

    // What the pages' own forms and links send is accepted.
    let (status, _, page) = fetch(get("/?q=dat+dai&province=&topic=&state=&from=&to=", &officer)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "the search form with nothing chosen: {page}");
    assert!(page.contains("Tìm thấy <strong>2</strong> kiến nghị"), "{page}");
    let (_, _, page) = fetch(get("/?q=dat+dai&limit=1", &officer)).await;
    let next = page.split("id=\"next\" href=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("a next link");
    let (status, _, next_page) = fetch(get(&next.replace("&amp;", "&"), &officer)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{next}: {next_page}");
    assert!(next_page.contains("Tìm thấy <strong>2</strong> kiến nghị"), "{next_page}");
    let facet = page.split("<li><a href=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("a facet link");
    assert_eq!(fetch(get(&facet.replace("&amp;", "&"), &officer)).await.0, reqwest::StatusCode::OK, "{facet}");
    for path in [
        "/xu-ly?unit=00004&state=&overdue=1",
        "/xu-ly?overdue=true",
        "/tong-hop?week=2026-W45",
        "/dang-nhap?next=%2Fxu-ly%3Foverdue%3D1",
    ] {
        let (status, _, page) = fetch(get(path, &officer)).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{path}: {page}");
    }
    let (status, _, page) = fetch(get("/xu-ly?limit=1", &officer)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    // `limit` is read; the count is of all the unit's open petitions, not of those listed.
    assert!(page.contains("<p id=\"counts\">2 kiến nghị đang mở"), "{page}");
    assert!(page.contains("gồm 1 kiến nghị đầu tiên"), "`limit` is read: {page}");
    assert_eq!(page.matches("<tr class=").count(), 1, "{page}");
    let (_, _, page) = fetch(get("/xu-ly?state=received", &officer)).await;
    assert!(page.contains("<p id=\"counts\">2 kiến nghị phù hợp"), "{page}");
    let (status, _, page) = fetch(get(&format!("/xu-ly/{id}?ok=accept"), &officer)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    // Signing in goes back to the page asked for, its parameters with it.
    let (status, _, page) = fetch(client.get(server.url("/xu-ly?overdue=1"))).await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "{page}");
    assert!(page.contains("name=\"next\" value=\"/xu-ly?overdue=1\""), "{page}");
    let signed_in = client
        .post(server.url("/dang-nhap"))
        .form(&[("token", officer.as_str()), ("next", "/xu-ly?overdue=1")])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), reqwest::StatusCode::SEE_OTHER);
    assert_eq!(signed_in.headers()[reqwest::header::LOCATION], "/xu-ly?overdue=1");
    let cookie =
        signed_in.headers()[reqwest::header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let (status, _, page) =
        fetch(client.get(server.url("/xu-ly?overdue=1")).header(reqwest::header::COOKIE, cookie)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_page_without_a_week_shows_the_week_before_until_a_unit_reports_this_week() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None).await;
    let client = reqwest::Client::new();
    let this_week = voxpop_schema::reports::current_week(chrono::Utc::now());
    let week_before = voxpop_schema::reports::current_week(chrono::Utc::now() - chrono::Duration::days(7));
    let (status, _, page) = fetch(client.get(server.url("/bao-cao?unit=00004"))).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    assert!(page.contains(&format!("Tổng hợp báo cáo tuần {week_before} (")), "the week before: {page}");
    assert!(
        page.contains(&format!("Tuần {this_week} chưa có đơn vị nào báo cáo; trang cho xem tuần {week_before}"))
            && page.contains(&format!("href=\"/bao-cao?week={this_week}&amp;unit=00004\"")),
        "the notice links to this week: {page}"
    );
    // A week asked for is shown as it is, reported or not.
    let (_, _, asked) = fetch(client.get(server.url(&format!("/bao-cao?week={this_week}&unit=00004")))).await;
    assert!(asked.contains(&format!("Tổng hợp báo cáo tuần {this_week} (")) && !asked.contains("id=\"notice\""));
    let response = client
        .post(server.url("/api/v1/reports"))
        .json(&json!({"unit": "00004", "week": this_week, "values": {"meetings_held": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let mut shown = String::new();
    for _ in 0..100 {
        shown = fetch(client.get(server.url("/bao-cao?unit=00004"))).await.2;
        if shown.contains(&format!("Tổng hợp báo cáo tuần {this_week} (")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(shown.contains(&format!("Tổng hợp báo cáo tuần {this_week} (")), "this week once reported: {shown}");
    assert!(!shown.contains("id=\"notice\""), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_page_refuses_an_unknown_format_and_repeated_or_unknown_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None).await;
    let client = reqwest::Client::new();
    for (path, field) in [
        ("/bao-cao?week=2025-W38&format=pdf", "format"),
        ("/bao-cao?week=2025-W38&week=2025-W39", "week"),
        ("/bao-cao?week=2025-W38&foo=1", "foo"),
    ] {
        assert_refused(&fetch(client.get(server.url(path))).await, 400, field, path);
    }
    let (status, content_type, page) = fetch(client.get(server.url("/bao-cao?week=2025-W38&unit=00004"))).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    assert!(content_type.starts_with("text/html") && page.contains("format=xlsx"), "{page}");
    let workbook = client.get(server.url("/bao-cao?week=2025-W38&unit=00004&format=xlsx")).send().await.unwrap();
    assert_eq!(workbook.status(), reqwest::StatusCode::OK);
    assert_eq!(&workbook.bytes().await.unwrap()[..2], b"PK");
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_action_form_is_refused_with_415_unless_url_encoded_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let officer = voxpop_tests::server::create_token(&data_dir, "00004", "officer");
    let server = Server::start(&data_dir, None).await;
    let id = server
        .submit(&json!({"title": "Cây đổ chắn đường", "body": "Cây đổ sau bão chắn ngõ.", "commune_code": "00004"}))
        .await;
    server.wait_written(1, Duration::from_secs(30)).await;
    let client = no_redirects();
    let url = server.url(&format!("/xu-ly/{id}"));
    let post = |content_type: Option<&str>, body: &'static [u8]| {
        let mut request = client.post(url.clone()).bearer_auth(&officer).body(body);
        if let Some(content_type) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        request
    };

    // "Cần" in ISO-8859-1 would not be the bytes the form meant: refused, not read as UTF-8.
    for (content_type, body, named) in [
        (None, &b"action=accept"[..], "không có Content-Type"),
        (
            Some("application/x-www-form-urlencoded; charset=iso-8859-1"),
            b"action=extend&days=2&note=C%E2n",
            "iso-8859-1",
        ),
        (Some("text/plain"), b"action=accept", "text/plain"),
        (Some("application/json"), br#"{"action":"accept"}"#, "application/json"),
    ] {
        let page = fetch(post(content_type, body)).await;
        assert_refused(&page, 415, "Content-Type", &format!("{content_type:?}"));
        assert!(page.2.contains(named), "{content_type:?}: {}", page.2);
        assert!(page.2.contains("id=\"history\""), "{content_type:?}: the petition's page again: {}", page.2);
    }
    // Nothing refused was recorded; the form as browsers send it is, whatever the case.
    let done = fetch(post(Some("Application/X-WWW-Form-URLEncoded; Charset=\"UTF-8\""), b"action=accept")).await;
    assert_eq!(done.0, reqwest::StatusCode::SEE_OTHER, "{}", done.2);
    let history = history(&client, &server, &id, &officer).await;
    let actions = history_actions(&history);
    assert_eq!(actions, ["accept"], "{history}");
}

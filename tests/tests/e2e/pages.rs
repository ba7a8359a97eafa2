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
    assert!(dom.contains("Tổng hợp báo cáo tuần 2025-W38"), "{dom}");
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
    assert_eq!(report["after_transfer"], "received");
    assert!(report["handler_after_transfer"].as_str().unwrap().contains("Ủy ban MTTQ Việt Nam"), "{report}");
    // The API agrees: the first petition answered by the commune's officer, on time.
    let client = reqwest::Client::new();
    let history: serde_json::Value = client
        .get(server.url(&format!("/api/v1/petitions/{first}/history")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history["status"]["state"], "answered", "{history}");
    assert_eq!(history["status"]["answered_on_time"], true);
}

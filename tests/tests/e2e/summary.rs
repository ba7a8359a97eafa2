//! The weekly summary over the lake, through the API and the CLI.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use voxpop_tests::server::{Server, voxpop_bin};

#[tokio::test(flavor = "multi_thread")]
async fn weekly_summary_counts_changes_and_coverage() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None).await;
    let client = reqwest::Client::new();
    // Imported records keep the time the other system received them.
    let rows = [
        ("00004", "2025-09-16T10:00:00+07:00"),
        ("00004", "2025-09-18T09:30:00+07:00"),
        ("00976", "2025-09-20T15:00:00+07:00"),
        ("00004", "2025-09-10T08:00:00+07:00"),
    ];
    let mut acked = HashSet::new();
    for (n, (commune, at)) in rows.iter().enumerate() {
        let petition = json!({
            "title": format!("Kiến nghị nhập từ hệ thống khác số {n}"),
            "body": "Đề nghị sửa chữa đường giao thông nông thôn bị xuống cấp. Dữ liệu tổng hợp.",
            "commune_code": commune, "channel": "import", "external_id": format!("lgsp-{n}"), "submitted_at": at,
        });
        acked.insert(server.submit(&petition).await);
    }
    server.wait_for_ids(&acked, Duration::from_secs(30)).await;

    let summary = server.get_json("/api/v1/summaries/weekly", &[("week", "2025-W38")]).await;
    assert_eq!(summary["total"], 3, "{summary}");
    assert_eq!(summary["previous_week"], "2025-W37");
    assert_eq!(summary["previous_total"], 1);
    assert_eq!(summary["change_percent"], 200.0);
    assert_eq!(summary["by_province"][0]["province_code"], "01");
    assert_eq!(summary["by_province"][0]["count"], 2);
    assert_eq!(summary["by_province"][0]["previous"], 1);
    assert_eq!(summary["by_province"].as_array().unwrap().len(), 34, "every province, zeros included");
    assert_eq!(summary["communes_with_petitions"]["text"], "2/3,321 (0.06%)");
    assert_eq!(summary["by_language"][0]["key"], "vi");
    assert_eq!(summary["by_channel"][0]["key"], "import");
    // "xuống cấp" is a rule of the infrastructure topic: assigned by the pipeline.
    let top = &summary["by_topic"][0];
    assert_eq!(
        (top["code"].as_str(), top["count"].as_u64(), top["previous"].as_u64()),
        (Some("infrastructure"), Some(3), Some(1))
    );
    assert_eq!(top["label"], "Đường sá và hạ tầng");
    let weekly = top["weekly"].as_array().unwrap();
    assert_eq!(weekly.len(), 12);
    assert_eq!(weekly[10..], [json!(1), json!(3)]);
    assert_eq!(summary["trend_weeks"][11], "2025-W38");
    assert_eq!(summary["topic_matrix"]["topics"][0], "infrastructure");
    assert_eq!(summary["topic_matrix"]["provinces"][0], "01");
    assert_eq!(summary["topic_matrix"]["counts"][0][0], 2);

    let hanoi = server.get_json("/api/v1/summaries/weekly", &[("week", "2025-W38"), ("province", "01")]).await;
    assert_eq!(hanoi["total"], 2, "{hanoi}");
    assert_eq!(hanoi["communes_with_petitions"]["text"], "1/126 (0.79%)");

    for (query, field) in [("week=2025-38", "week"), ("week=2025-W38&province=99", "province"), ("weeks=1", "weeks")] {
        let response = client.get(server.url(&format!("/api/v1/summaries/weekly?{query}"))).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
    }

    let output = Command::new(voxpop_bin())
        .args(["summary", "--week", "2025-W38", "--data-dir"])
        .arg(&server.data_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("Tuần 2025-W38: 3 kiến nghị (tuần 2025-W37: 1, +200.0%)"), "{text}");
    assert!(text.contains("2/3,321 (0.06%)"), "{text}");
}

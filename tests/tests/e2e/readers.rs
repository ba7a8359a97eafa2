//! The lake read back by a reader that shares no code with voxpop: the Delta log replayed in
//! Python and the Parquet files read by pyarrow (installed by `scripts/test.sh`).

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use voxpop_tests::paths::{py_script, python};
use voxpop_tests::server::Server;

#[tokio::test(flavor = "multi_thread")]
async fn pyarrow_reads_every_acknowledged_petition_from_the_delta_table() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None).await;
    let mut acked = HashSet::new();
    let communes = ["00004", "00976", "21529", "29785"];
    for n in 0..40 {
        let commune = communes[n % communes.len()];
        let petition = json!({
            "title": format!("Phản ánh số {n} về chiếu sáng công cộng"),
            "body": "Đèn đường hỏng nhiều tháng, khu dân cư tối om. Dữ liệu tổng hợp.",
            "commune_code": commune,
        });
        acked.insert(server.submit(&petition).await);
    }
    server.wait_for_ids(&acked, Duration::from_secs(30)).await;

    let script = py_script("read_delta.py");
    let output = Command::new(python())
        .arg(script)
        .arg(server.data_dir.join("lake").join("petitions"))
        .output()
        .expect("run python (installed by scripts/test.sh)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["rows"], 40, "{report}");
    let ids: HashSet<String> =
        report["ids"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, acked);
    let this_week = voxpop_schema::petition::iso_week(chrono::Utc::now());
    assert_eq!(report["weeks"], json!([this_week]), "partition values name the ISO week");
    let schema = &report["schema"];
    assert_eq!(schema["received_at"], "timestamp[us, tz=UTC]");
    assert_eq!(schema["lat"], "double");
    assert_eq!(schema["schema_version"], "int32");
    for column in ["tracking_code", "title", "body", "language", "province_code", "commune_code", "contact_phone"] {
        assert!(schema[column].is_string(), "column {column} missing: {schema}");
    }
}

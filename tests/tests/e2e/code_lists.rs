//! Updates of the administrative code lists through the real binary: a list exported by voxpop,
//! edited elsewhere (a commune renamed, a commune added) and imported back as a new version that
//! `voxpop serve` then uses for intake and SQL; a bad update rejected with line and field and
//! nothing stored.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use voxpop_tests::server::{Server, voxpop_bin};

/// Runs `voxpop ARGS --data-dir DATA`: success, and stdout + stderr.
fn voxpop(data_dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(voxpop_bin())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "info,delta_kernel=warn,deltalake_core=warn")
        .output()
        .expect("run voxpop");
    (
        output.status.success(),
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    )
}

async fn sql(server: &Server, query: &str) -> Value {
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/sql"))
        .json(&json!({ "sql": query }))
        .send()
        .await
        .expect("POST /api/v1/sql");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("a JSON body")
}

#[tokio::test(flavor = "multi_thread")]
async fn code_lists_update_is_versioned_and_used_by_serve() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let versions = data.join("reference").join("units");

    // The communes list as voxpop exports it (with the provinces its foreign key points to).
    let package = dir.path().join("communes-package");
    let (ok, output) =
        voxpop(&data, &["export", "--dataset", "communes", "--format", "csv", "--out", package.to_str().unwrap()]);
    assert!(ok, "{output}");
    let exported = std::fs::read_to_string(package.join("data/communes.csv")).unwrap();
    assert!(exported.contains("\n00004,Phường Ba Đình,Phường,01,"), "{}", &exported[..300]);

    // A bad package: an edited row whose province code is no code, a commune deleted instead of
    // retired (and the checksum dropped, as an editor would). Rejected whole, nothing stored.
    let bad = dir.path().join("bad-package");
    std::fs::create_dir_all(bad.join("data")).unwrap();
    let bad_csv: String = exported
        .replace("\n00008,Phường Ngọc Hà,Phường,01,", "\n00008,Phường Ngọc Hà,Phường,1,")
        .lines()
        .filter(|line| !line.starts_with("00025,"))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(bad.join("data/communes.csv"), bad_csv).unwrap();
    let mut descriptor: Value =
        serde_json::from_slice(&std::fs::read(package.join("datapackage.json")).unwrap()).unwrap();
    for resource in descriptor["resources"].as_array_mut().unwrap() {
        resource.as_object_mut().unwrap().remove("hash");
    }
    std::fs::write(bad.join("datapackage.json"), descriptor.to_string()).unwrap();
    std::fs::copy(package.join("data/provinces.csv"), bad.join("data/provinces.csv")).unwrap();
    let (ok, output) = voxpop(&data, &["import", "--code-lists", bad.to_str().unwrap()]);
    assert!(!ok, "{output}");
    // Line 3: the header is line 1, 00004 line 2, 00008 line 3.
    assert!(output.contains("rejected data/communes.csv line 3: province_code:"), "{output}");
    assert!(output.contains("commune `00025` is in force and missing"), "{output}");
    assert!(output.contains("nothing stored"), "{output}");
    assert!(!versions.exists(), "a rejected update stored something");

    // The good update: one commune renamed, one retired (its last field, valid_to, set), one
    // added, in a single CSV file.
    let edited: String = exported
        .replace("\n00004,Phường Ba Đình,", "\n00004,Phường Ba Đình Mới,")
        .lines()
        .map(|line| if line.starts_with("00025,") { format!("{line}2026-01-31\n") } else { format!("{line}\n") })
        .collect::<String>()
        + "99001,Xã Thử Nghiệm,Xã,01,21.05,105.8,10.5,,\n";
    assert!(edited.contains("2026-01-31\n"), "00025 is not in the export");
    let update = dir.path().join("cap-nhat-xa.csv");
    std::fs::write(&update, edited).unwrap();
    let (ok, output) = voxpop(&data, &["import", "--code-lists", update.to_str().unwrap(), "--dataset", "communes"]);
    assert!(ok, "{output}");
    assert!(output.contains("code lists version 1 stored"), "{output}");
    let manifest: Value = serde_json::from_slice(&std::fs::read(versions.join("v1/version.json")).unwrap()).unwrap();
    assert_eq!(manifest["number"], 1);
    assert_eq!(manifest["rows"]["communes"], 3_322);
    assert_eq!(manifest["changes"]["communes"]["added"], json!(["99001"]));
    assert_eq!(manifest["changes"]["communes"]["changed"], json!(["00004", "00025"]));
    assert_eq!(manifest["changes"]["communes"]["retired"], json!(["00025"]));

    // The server uses version 1: a petition naming the new commune is accepted.
    let server = Server::start(&data, None).await;
    assert!(server.output().contains("code lists: using version 1"), "{}", server.output());
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/petitions"))
        .json(&json!({
            "title": "Đường vào xã mới bị sạt lở",
            "body": "Đoạn đường liên thôn của xã mới thành lập bị sạt lở sau mưa lớn, đề nghị sửa chữa sớm.",
            "commune_code": "99001",
        }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    // The retired commune names no unit that could handle a petition today: 422 naming the field.
    let refused = reqwest::Client::new()
        .post(server.url("/api/v1/petitions"))
        .json(&json!({"title": "Xã đã sáp nhập", "body": "Kiến nghị gửi theo mã xã đã hết hiệu lực.", "commune_code": "00025"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "commune_code", "{problem}");
    assert_eq!(problem["errors"][0]["code"], "retired_commune", "{problem}");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("2026-01-31"), "{problem}");
    // Pre-2025 codes still resolve.
    let old = server
        .submit(
            &json!({"title": "Mã xã cũ", "body": "Kiến nghị gửi theo mã xã trước năm 2025.", "commune_code": "00001"}),
        )
        .await;
    let ids: std::collections::HashSet<String> =
        [receipt["id"].as_str().unwrap().to_owned(), old].into_iter().collect();
    server.wait_for_ids(&ids, Duration::from_secs(60)).await;

    // SQL reads the installed lists.
    let renamed = sql(&server, "SELECT name FROM communes WHERE code = '00004'").await;
    assert_eq!(renamed["rows"][0]["name"], "Phường Ba Đình Mới", "{renamed}");
    let joined = sql(
        &server,
        "SELECT c.name, c.province_code, p.commune_code FROM petitions p JOIN communes c ON c.code = p.commune_code \
         ORDER BY p.commune_code",
    )
    .await;
    assert_eq!(joined["rows"][0]["commune_code"], "00097", "{joined}");
    assert_eq!(joined["rows"][1]["name"], "Xã Thử Nghiệm", "{joined}");
    let count = sql(&server, "SELECT commune_count FROM provinces WHERE code = '01'").await;
    // 126 communes in force before, one added, one retired.
    assert_eq!(count["rows"][0]["commune_count"], 126, "{count}");
}

//! Data exchange: exported Data Packages read back by tools nobody here wrote — the Frictionless
//! validator, pyarrow and DuckDB (installed by `scripts/test.sh`) — and incremental exports.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use voxpop_tests::server::{Server, voxpop_bin};

fn python() -> String {
    let venv = std::env::var("VOXPOP_VENV").unwrap_or_else(|_| "/root/.cache/voxpop-venv".to_owned());
    format!("{venv}/bin/python")
}

fn export(data_dir: &Path, out: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(voxpop_bin())
        .arg("export")
        .args(args)
        .arg("--out")
        .arg(out)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run voxpop export");
    (
        output.status.success(),
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    )
}

/// The package as frictionless, pyarrow and DuckDB see it.
fn check(package: &Path) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/py/check_export.py");
    let output = Command::new(python()).arg(script).arg(package).output().expect("run python");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn descriptor(package: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(package.join("datapackage.json")).unwrap()).unwrap()
}

async fn submit_batch(server: &Server, from: usize, count: usize) -> HashSet<String> {
    let communes = ["00004", "00976", "21529"];
    let mut acked = HashSet::new();
    for n in from..from + count {
        let petition = json!({
            "title": format!("Kiến nghị số {n} về nước sạch"),
            "body": "Khu dân cư thiếu nước sạch nhiều tuần. Liên hệ 0912345678. Dữ liệu tổng hợp.",
            "commune_code": communes[n % communes.len()],
            "contact": {"name": "Nguyễn Văn An", "phone": "0987654321", "email": "an.nguyen@example.vn"},
        });
        acked.insert(server.submit(&petition).await);
    }
    server.wait_for_ids(&acked, Duration::from_secs(30)).await;
    acked
}

#[tokio::test(flavor = "multi_thread")]
async fn exported_packages_validate_and_read_back_with_the_same_counts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None).await;
    let first = submit_batch(&server, 0, 30).await;

    // CSV: valid Frictionless package, BOM for Excel, personal data masked by default.
    let csv = dir.path().join("csv");
    let (ok, output) = export(&server.data_dir, &csv, &["--dataset", "petitions", "--format", "csv"]);
    assert!(ok, "{output}");
    let report = check(&csv);
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["resources"]["petitions"]["declared_rows"], 30);
    assert_eq!(report["resources"]["communes"]["declared_rows"], 3321);
    let bytes = std::fs::read(csv.join("data/petitions.csv")).unwrap();
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF", "UTF-8 BOM for Excel");
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("nước sạch"));
    for secret in ["0912345678", "0987654321", "Nguyễn Văn An", "an.nguyen@"] {
        assert!(!text.contains(secret), "{secret} leaked into a masked export");
    }
    let package = descriptor(&csv);
    assert!(package["voxpop"]["masking"]["contact"].as_str().unwrap().starts_with("masked"));
    assert_eq!(package["resources"][0]["hash"].as_str().unwrap().len(), "sha256:".len() + 64);
    assert_eq!(package["dcat"]["dct:spatial"]["provinces"], json!(["01", "08", "51"]), "{package}");
    let version = package["voxpop"]["lake_version_to"].as_i64().unwrap();
    assert!(version >= 1);

    // With personal data allowed, the numbers are there.
    let clear = dir.path().join("clear");
    let (ok, output) =
        export(&server.data_dir, &clear, &["--dataset", "petitions", "--format", "csv", "--personal-data"]);
    assert!(ok, "{output}");
    let text = std::fs::read_to_string(clear.join("data/petitions.csv")).unwrap();
    assert!(text.contains("0912345678") && text.contains("Nguyễn Văn An"));
    assert_eq!(descriptor(&clear)["voxpop"]["masking"]["contact"], "none");

    // Parquet: pyarrow and DuckDB count what the package declares, and what the lake holds.
    let parquet = dir.path().join("parquet");
    let (ok, output) = export(&server.data_dir, &parquet, &["--dataset", "petitions", "--format", "parquet"]);
    assert!(ok, "{output}");
    let report = check(&parquet);
    let petitions = &report["resources"]["petitions"];
    assert_eq!(
        (petitions["pyarrow_rows"].as_u64(), petitions["duckdb_rows"].as_u64()),
        (Some(30), Some(30)),
        "{report}"
    );
    assert_eq!(server.lake_ids().await.len(), 30);

    // Incremental: only what was added after the version of the first export.
    let second = submit_batch(&server, 30, 5).await;
    assert!(first.is_disjoint(&second));
    let since = dir.path().join("since");
    let (ok, output) = export(
        &server.data_dir,
        &since,
        &["--dataset", "petitions", "--format", "parquet", "--since-version", &version.to_string()],
    );
    assert!(ok, "{output}");
    let report = check(&since);
    assert_eq!(report["resources"]["petitions"]["duckdb_rows"], 5, "{report}");
    assert_eq!(descriptor(&since)["voxpop"]["since_version"], version);

    // Code lists in XLSX for spreadsheet users.
    let xlsx = dir.path().join("xlsx");
    let (ok, output) = export(&server.data_dir, &xlsx, &["--dataset", "provinces", "--format", "xlsx"]);
    assert!(ok, "{output}");
    let report = check(&xlsx);
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["resources"]["provinces"]["declared_rows"], 34);

    // Clear errors for what cannot be exported.
    let (ok, output) = export(&server.data_dir, &dir.path().join("x"), &["--dataset", "people", "--format", "csv"]);
    assert!(!ok && output.contains("unknown dataset `people`"), "{output}");
    let (ok, output) =
        export(&server.data_dir, &dir.path().join("y"), &["--dataset", "petitions", "--since-version", "999"]);
    assert!(!ok && output.contains("since_version"), "{output}");
}

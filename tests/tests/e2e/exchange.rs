//! Data exchange: exported Data Packages read back by tools nobody here wrote — the Frictionless
//! validator, pyarrow and DuckDB (installed by `scripts/test.sh`) — and incremental exports.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use voxpop_tests::paths::{py_script, python};
use voxpop_tests::server::create_token as token;
use voxpop_tests::server::{Server, voxpop_bin};

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
    let script = py_script("check_export.py");
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

#[tokio::test(flavor = "multi_thread")]
async fn sql_is_read_only_masked_and_limited_and_exports_run_as_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None).await;
    submit_batch(&server, 0, 12).await;
    let client = reqwest::Client::new();
    let sql = |body: Value, format: &'static str| {
        let client = client.clone();
        let url = server.url(&format!("/api/v1/sql?format={format}"));
        async move { client.post(url).json(&body).send().await.unwrap() }
    };

    // A join with the national code list.
    let response = sql(
        json!({"sql": "SELECT p.name, count(*) AS n FROM petitions t JOIN provinces p ON p.code = t.province_code GROUP BY p.name ORDER BY n DESC, p.name"}),
        "json",
    )
    .await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["row_count"], 3, "{result}");
    assert_eq!(result["rows"][0]["n"], 4);
    assert_eq!(result["truncated"], false);

    // Personal data is masked in SQL too.
    let result: Value = sql(json!({"sql": "SELECT body, contact_phone, contact_name FROM petitions"}), "json")
        .await
        .json()
        .await
        .unwrap();
    let text = result.to_string();
    assert!(!text.contains("0912345678") && !text.contains("0987654321") && !text.contains("Nguyễn Văn An"), "{text}");

    // Limits and formats.
    let response = sql(json!({"sql": "SELECT id FROM petitions", "max_rows": 5}), "csv").await;
    assert_eq!(response.headers()["x-truncated"], "true");
    let csv = response.text().await.unwrap();
    assert_eq!(csv.lines().count(), 6, "{csv}");
    let arrow = sql(json!({"sql": "SELECT count(*) AS n FROM petitions"}), "arrow").await.bytes().await.unwrap();
    assert_eq!(&arrow[..4], b"\xff\xff\xff\xff", "Arrow IPC stream continuation marker");

    // Read-only: DDL, DML, COPY and file access are refused with a problem naming `sql`.
    for statement in [
        "DROP TABLE petitions",
        "CREATE TABLE x AS SELECT 1",
        "INSERT INTO provinces VALUES ('99','x',1,NULL,NULL)",
        "COPY petitions TO '/tmp/leak.csv'",
        "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
        "SELECT * FROM '/etc/passwd'",
        "SET datafusion.execution.batch_size = 1",
        "SELEC nonsense",
    ] {
        let response = sql(json!({"sql": statement}), "json").await;
        assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST, "{statement}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], "sql", "{statement}: {problem}");
    }
    assert!(!std::path::Path::new("/tmp/leak.csv").exists());
    let response = sql(json!({"query": "SELECT 1"}), "json").await;
    assert_eq!(response.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);

    // An export job: 202 with a status URL, then the package.
    let response = client
        .post(server.url("/api/v1/exports"))
        .json(&json!({"dataset": "petitions", "format": "csv"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    let job: Value = response.json().await.unwrap();
    let status_url = job["status_url"].as_str().unwrap().to_owned();
    let mut status = Value::Null;
    for _ in 0..100 {
        status = server.get_json(&status_url, &[]).await;
        if status["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status["status"], "done", "{status}");
    assert_eq!(status["rows_written"], 12);
    let package: Value = server.get_json(status["datapackage_url"].as_str().unwrap(), &[]).await;
    assert_eq!(package["resources"][0]["rows"], 12);
    let csv_url = status["files"][0]["url"].as_str().unwrap();
    let csv = client.get(server.url(csv_url)).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&csv[..3], b"\xEF\xBB\xBF");
    let traversal = client.get(server.url(&format!("{status_url}/files/../../../etc/passwd"))).send().await.unwrap();
    assert!(traversal.status().is_client_error());
    let bad = client.post(server.url("/api/v1/exports")).json(&json!({"dataset": "people"})).send().await.unwrap();
    assert_eq!(bad.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = bad.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "dataset");
}

fn import(data_dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(voxpop_bin())
        .arg("import")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run voxpop import");
    (
        output.status.success(),
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn imports_go_through_the_pipeline_once_and_report_rejected_rows() {
    let dir = tempfile::tempdir().unwrap();
    // Another system's export: a voxpop package of 6 petitions.
    let mut source = Server::start(&dir.path().join("source"), None).await;
    submit_batch(&source, 0, 6).await;
    let package = dir.path().join("package");
    let (ok, output) = export(&source.data_dir, &package, &["--dataset", "petitions", "--format", "parquet"]);
    assert!(ok, "{output}");
    source.kill9();

    let target = dir.path().join("target");
    let (ok, output) = import(&target, &[package.to_str().unwrap()]);
    assert!(ok, "{output}");
    assert!(
        output.contains("6 rows read: 6 petitions imported, 0 already imported before, 0 rows rejected"),
        "{output}"
    );
    let (ok, output) = import(&target, &[package.to_str().unwrap()]);
    assert!(ok, "{output}");
    assert!(
        !output.contains("6 petitions imported") && output.contains("0 petitions imported, 6 already imported"),
        "{output}"
    );

    // A spreadsheet export of a provincial system, with its own column names and one bad row.
    let csv = dir.path().join("tinh.csv");
    std::fs::write(
        &csv,
        "\u{feff}SoHieu,TieuDe,NoiDung,MaXa,NgayGui\n\
         T-1,Cầu treo xuống cấp,Cầu treo qua suối xuống cấp nguy hiểm. Dữ liệu tổng hợp.,00004,2025-09-16\n\
         T-2,Thiếu nước sạch,Thôn thiếu nước sạch. Dữ liệu tổng hợp.,99999,2025-09-16\n",
    )
    .unwrap();
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(
        &mapping,
        "[columns]\nexternal_id = \"SoHieu\"\ntitle = \"TieuDe\"\nbody = \"NoiDung\"\ncommune_code = \"MaXa\"\nsubmitted_at = \"NgayGui\"\n",
    )
    .unwrap();
    let (ok, output) = import(&target, &[csv.to_str().unwrap(), "--mapping", mapping.to_str().unwrap()]);
    assert!(ok, "{output}");
    assert!(output.contains("rejected tinh.csv line 3: commune_code"), "{output}");
    assert!(output.contains("2 rows read: 1 petitions imported"), "{output}");

    // Everything imported is in the lake and the index, once.
    let server = Server::start(&target, None).await;
    assert_eq!(server.lake_ids().await.len(), 7);
    let results = server.get_json("/api/v1/search", &[("q", "cầu treo")]).await;
    assert_eq!(results["total"], 1, "{results}");
    let all = server.get_json("/api/v1/search", &[("q", ""), ("limit", "0")]).await;
    assert_eq!(all["total"], 7, "{all}");
}

fn flight_query(port: u16, sql: &str) -> Value {
    let script = py_script("flight_query.py");
    let output = Command::new(python())
        .arg(script)
        .arg(format!("grpc://127.0.0.1:{port}"))
        .arg(sql)
        .output()
        .expect("run python (adbc-driver-flightsql, installed by scripts/test.sh)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn adbc_clients_read_sql_results_over_arrow_flight() {
    let dir = tempfile::tempdir().unwrap();
    let port = voxpop_tests::server::free_port();
    let address = format!("127.0.0.1:{port}");
    let server = Server::start_with(&dir.path().join("data"), None, &["--flight", &address]).await;
    submit_batch(&server, 0, 9).await;
    let result = flight_query(
        port,
        "SELECT province_code, count(*) AS n, min(received_at) AS first FROM petitions GROUP BY province_code ORDER BY province_code",
    );
    assert_eq!(result["rows"], 3, "{result}");
    assert_eq!(result["data"][0]["province_code"], "01");
    assert_eq!(result["data"][0]["n"], 3);
    assert_eq!(result["schema"]["n"], "int64");
    assert!(result["schema"]["first"].as_str().unwrap().starts_with("timestamp[us"), "{result}");
    // The same rules as over HTTP: masked personal data, queries only.
    let masked = flight_query(port, "SELECT contact_phone, body FROM petitions LIMIT 3");
    assert!(!masked.to_string().contains("0987654321") && !masked.to_string().contains("0912345678"), "{masked}");
    let refused = flight_query(port, "DROP TABLE petitions");
    assert!(refused["error"].as_str().unwrap_or_default().contains("read-only"), "{refused}");
    // Dictionary-encoded columns come back as dictionaries, with the schema FlightInfo announced
    // (expanded to plain strings they differed, and ADBC refused the stream).
    let titles =
        flight_query(port, "SELECT arrow_cast(title, 'Dictionary(Int32, Utf8)') AS t FROM petitions ORDER BY title");
    assert_eq!(titles["rows"], 9, "{titles}");
    assert!(titles["schema"]["t"].as_str().unwrap().starts_with("dictionary<values=string, indices=int32"), "{titles}");
    for n in 0..9 {
        assert_eq!(titles["data"][n]["t"], format!("Kiến nghị số {n} về nước sạch"), "{titles}");
    }
    // Over several batches whose dictionaries differ (8192 rows a batch): each value as often
    // as it was asked for.
    let values = flight_query(
        port,
        "SELECT arrow_cast(CAST(value / 2500 AS VARCHAR), 'Dictionary(Int32, Utf8)') AS d FROM range(10000) ORDER BY value",
    );
    assert_eq!(values["rows"], 10000, "{}", values["error"]);
    let data = values["data"].as_array().unwrap();
    for (n, row) in data.iter().enumerate() {
        assert_eq!(row["d"], (n / 2500).to_string(), "row {n}");
    }
}

async fn act(server: &Server, token: &str, id: &str, action: Value) {
    let response = reqwest::Client::new()
        .post(server.url(&format!("/api/v1/petitions/{id}/actions")))
        .bearer_auth(token)
        .json(&action)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, reqwest::StatusCode::OK, "{action}: {body}");
}

/// Waits until the lake's `petition_events` holds `count` events of the petitions `ids`.
async fn wait_for_events(data_dir: &Path, ids: &[String], count: usize) {
    let queries = voxpop_queries::handling::HandlingQueries::new(&data_dir.join("lake"));
    let started = std::time::Instant::now();
    loop {
        let mut found = 0;
        for id in ids {
            found += queries.history(&id.parse().unwrap()).await.unwrap().len();
        }
        if found >= count {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{found} of {count} events in the lake");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn handling_events_and_statuses_export_as_valid_packages() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let central = token(&data_dir, "00", "officer");
    let server = Server::start(&data_dir, None).await;
    let mut ids = Vec::new();
    for (n, commune) in ["00004", "00976", "21529"].into_iter().enumerate() {
        let petition = json!({
            "title": format!("Kiến nghị số {n} về nước sạch"),
            "body": "Khu dân cư thiếu nước sạch nhiều tuần. Dữ liệu tổng hợp.",
            "commune_code": commune,
        });
        ids.push(server.submit(&petition).await);
    }
    server.wait_for_ids(&ids.iter().cloned().collect(), Duration::from_secs(30)).await;
    // Hà Nội's petition is answered (a phone number in the answer), Tuyên Quang's declined (one
    // in the reason), Quảng Ngãi's accepted: 5 events.
    for action in [
        json!({"action": "accept"}),
        json!({"action": "start"}),
        json!({"action": "answer", "answer": "Đã lắp đường ống; liên hệ tổ trưởng 0912345678."}),
    ] {
        act(&server, &central, &ids[0], action).await;
    }
    act(&server, &central, &ids[1], json!({"action": "decline", "note": "Trùng với đơn của số 0987654321"})).await;
    act(&server, &central, &ids[2], json!({"action": "accept"})).await;
    wait_for_events(&data_dir, &ids, 5).await;

    // CSV: a valid package whose code lists let the validator check every province and commune.
    let csv = dir.path().join("events-csv");
    let (ok, output) = export(&data_dir, &csv, &["--dataset", "petition_events", "--format", "csv"]);
    assert!(ok, "{output}");
    let report = check(&csv);
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["resources"]["petition_events"]["declared_rows"], 5, "{report}");
    assert_eq!(report["resources"]["communes"]["declared_rows"], 3321);
    let text = std::fs::read_to_string(csv.join("data/petition_events.csv")).unwrap();
    assert!(text.contains("Đã lắp đường ống") && text.contains("decline"), "{text}");
    for secret in ["0912345678", "0987654321"] {
        assert!(!text.contains(secret), "{secret} leaked into a masked export");
    }
    let package = descriptor(&csv);
    let events = &package["resources"][0];
    assert_eq!(events["schema"]["primaryKey"], json!(["event_id"]));
    assert_eq!(events["foreign_keys_outside_package"][0]["reference"]["resource"], "petitions", "{events}");
    assert_eq!(package["voxpop"]["time_column"], "at");
    assert!(package["voxpop"]["masking"]["text_columns"].as_array().unwrap().contains(&json!("note")));
    let version = package["voxpop"]["lake_version_to"].as_i64().unwrap();
    assert!(version >= 1, "{package}");

    // Scoped to Hà Nội: its petition's 3 events only. In clear with personal data.
    let scoped = dir.path().join("events-01");
    let (ok, output) = export(
        &data_dir,
        &scoped,
        &["--dataset", "petition_events", "--format", "csv", "--province", "01", "--personal-data"],
    );
    assert!(ok, "{output}");
    let report = check(&scoped);
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["resources"]["petition_events"]["declared_rows"], 3, "{report}");
    let text = std::fs::read_to_string(scoped.join("data/petition_events.csv")).unwrap();
    assert!(text.contains("0912345678") && !text.contains("decline"), "{text}");

    // Statuses: one row per petition acted on, read back by pyarrow and DuckDB.
    let status = dir.path().join("status");
    let (ok, output) = export(&data_dir, &status, &["--dataset", "petition_status", "--format", "parquet"]);
    assert!(ok, "{output}");
    let report = check(&status);
    let rows = &report["resources"]["petition_status"];
    assert_eq!((rows["pyarrow_rows"].as_u64(), rows["duckdb_rows"].as_u64()), (Some(3), Some(3)), "{report}");

    // Incremental: only the event taken after the first export's version.
    act(&server, &central, &ids[0], json!({"action": "close"})).await;
    wait_for_events(&data_dir, &ids, 6).await;
    let since = dir.path().join("events-since");
    let (ok, output) = export(
        &data_dir,
        &since,
        &["--dataset", "petition_events", "--format", "csv", "--since-version", &version.to_string()],
    );
    assert!(ok, "{output}");
    let report = check(&since);
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["resources"]["petition_events"]["declared_rows"], 1, "{report}");
    assert!(std::fs::read_to_string(since.join("data/petition_events.csv")).unwrap().contains(",close,"));
}

/// Asserts a problem answer naming `field`, and returns its message.
async fn problem_naming(response: reqwest::Response, status: reqwest::StatusCode, field: &str, what: &str) -> String {
    let (actual, content_type, problem) = voxpop_tests::problem::problem_of(response).await;
    assert_eq!(actual, status, "{what}: {problem}");
    assert_eq!(content_type, "application/problem+json", "{what}");
    assert_eq!(problem["errors"][0]["field"], field, "{what}: {problem}");
    problem["errors"][0]["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_and_export_requests_a_client_gets_wrong_are_problems_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None).await;
    submit_batch(&server, 0, 2).await;
    let client = reqwest::Client::new();
    let sql = |body: Value, format: &'static str| {
        let client = client.clone();
        let url = server.url(&format!("/api/v1/sql?format={format}"));
        async move { client.post(url).json(&body).send().await.unwrap() }
    };
    let bad = reqwest::StatusCode::BAD_REQUEST;
    let invalid = reqwest::StatusCode::UNPROCESSABLE_ENTITY;

    // Runtime errors of the query itself, with DataFusion's message.
    for statement in [
        "SELECT 1/0",
        "SELECT CAST('abc' AS INT)",
        "SELECT CAST(title AS INT) FROM petitions",
        "SELECT CAST('notadate' AS TIMESTAMP)",
        "SELECT regexp_match('a','(')",
        "SELECT CAST(1e38 AS DECIMAL(38,0))*10",
        "SELECT substr('abc',-5,-1)",
        "SELECT date_trunc('fortnight',now())",
    ] {
        problem_naming(sql(json!({"sql": statement}), "json").await, bad, "sql", statement).await;
    }

    // Results too large are refused at once, not encoded for minutes.
    let started = std::time::Instant::now();
    for statement in ["SELECT repeat('a', 2000000000)", "SELECT lpad('a', 2147483647)", "SELECT repeat('a', 200000000)"]
    {
        let message = problem_naming(sql(json!({"sql": statement}), "json").await, bad, "sql", statement).await;
        assert!(message.contains("64 MiB"), "{statement}: {message}");
    }
    let wide = json!({"sql": "SELECT repeat('a', 1000) AS r FROM generate_series(1, 200000)", "max_rows": 1000000});
    let message = problem_naming(sql(wide, "json").await, bad, "sql", "wide rows").await;
    assert!(message.contains("LIMIT"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());

    // The time limit answers on time, and the process running the query is gone after it: a
    // cross join computing for minutes, and a plan of 200 self-joins that takes long to plan
    // without yielding (which no time limit inside a process can stop).
    let joins: Vec<String> = (1..200).map(|n| format!("JOIN petitions p{n} ON p{n}.id = p0.id")).collect();
    for (what, statement) in [
        (
            "cross join",
            "SELECT count(*) FROM generate_series(1, 200000) a, generate_series(1, 200000) b WHERE a.value + b.value = 7"
                .to_owned(),
        ),
        ("200 self-joins", format!("SELECT count(*) FROM petitions p0 {}", joins.join(" "))),
    ] {
        let started = std::time::Instant::now();
        let message = problem_naming(sql(json!({"sql": statement, "timeout_s": 2}), "json").await, bad, "sql", what).await;
        assert!(message.contains("longer than 2 s"), "{what}: {message}");
        assert!(started.elapsed() < Duration::from_secs(5), "{what}: answered after {:?}", started.elapsed());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !sql_workers_of(&server.data_dir).is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(sql_workers_of(&server.data_dir), Vec::<u32>::new(), "{what}: its worker still runs");
    }

    // Types a format cannot hold name `format` and the column.
    for (statement, format) in [
        ("SELECT map(['a'],[1]) AS m", "csv"),
        ("SELECT named_struct('a',1) AS s", "csv"),
        ("SELECT interval '1 day' AS i", "parquet"),
    ] {
        let message = problem_naming(sql(json!({"sql": statement}), format).await, bad, "format", statement).await;
        let column = format!("column `{}`", &statement[statement.len() - 1..]);
        assert!(message.contains(&column), "{message}");
    }
    assert_eq!(sql(json!({"sql": "SELECT interval '1 day' AS i"}), "csv").await.status(), reqwest::StatusCode::OK);

    // Query texts up to their own limit reach it, escaped or not; a larger body is a 413 problem.
    let long = format!("SELECT 1 -- {}", "x".repeat(600 * 1024));
    let message = problem_naming(sql(json!({"sql": long}), "json").await, bad, "sql", "600 KiB").await;
    assert!(message.contains("512 KiB"), "{message}");
    let escaped = format!("SELECT 1 AS one -- {}", "\u{1}".repeat(500 * 1024));
    let response = sql(json!({"sql": escaped}), "json").await;
    assert_eq!(response.status(), reqwest::StatusCode::OK, "500 KiB of escaped characters in a comment");
    // Raw TCP: the server answers before the body is all sent and closes, so an HTTP client may
    // fail on its write before it reads the answer.
    let head = let_the_server_answer_a_large_body(&server, "/api/v1/sql", 5 << 20).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/problem+json"), "{head}");
    // Repeated members and out-of-range numbers are named.
    let twice = "{\"sql\": \"SELECT 1\", \"sql\": \"SELECT 2\"}";
    let response = client.post(server.url("/api/v1/sql")).header("content-type", "application/json").body(twice);
    problem_naming(response.send().await.unwrap(), invalid, "sql", "sql twice").await;
    for (body, field) in [
        (json!({"sql": "SELECT 1", "timeout_s": 301}), "timeout_s"),
        (json!({"sql": "SELECT 1", "max_rows": 1_000_001}), "max_rows"),
    ] {
        problem_naming(sql(body, "json").await, invalid, field, field).await;
    }

    // Body fields by name.
    problem_naming(sql(json!({"sql": "SELECT 1", "max_rows": -1}), "json").await, invalid, "max_rows", "max_rows")
        .await;

    // Exports: what the job would refuse is refused before 202.
    let export = |body: Value| {
        let client = client.clone();
        let url = server.url("/api/v1/exports");
        async move { client.post(url).json(&body).send().await.unwrap() }
    };
    for (body, field) in [
        (json!({"dataset": "petitions", "from": "2025-09-10", "to": "2025-09-01"}), "to"),
        (json!({"dataset": "petitions", "since_version": 9223372036854775807i64}), "since_version"),
        (json!({"dataset": "petitions", "since_version": 999}), "since_version"),
        (json!({"dataset": "petitions", "since_version": -1}), "since_version"),
        (json!({"dataset": "petitions", "x": 1}), "x"),
        (json!({"dataset": "petitions", "from": "2025-13-01"}), "from"),
        (json!({"dataset": 1}), "dataset"),
    ] {
        problem_naming(export(body.clone()).await, invalid, field, &body.to_string()).await;
    }
    let response = export(json!({"dataset": "petitions", "since_version": 0})).await;
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_shows_weekly_reports_from_the_callers_unit_down() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(data_dir.join("reference")).unwrap();
    std::fs::write(data_dir.join("reference/villages.csv"), "code,name\n00004-001,Tổ dân phố số 1\n").unwrap();
    let central = token(&data_dir, "00", "data_engineer");
    let central_admin = token(&data_dir, "00", "admin");
    let province = token(&data_dir, "01", "officer");
    let commune = token(&data_dir, "00004", "officer");
    let server = Server::start(&data_dir, None).await;
    let client = reqwest::Client::new();

    // Data engineers read reports; units (here the central admin) write them.
    let report = json!({"unit": "00004", "week": "2025-W38", "values": {"meetings_held": 1}});
    let response = client.post(server.url("/api/v1/reports")).bearer_auth(&central).json(&report).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN);
    // A commune, its village, another commune of the same province (Hà Nội), the province
    // itself, and a commune of another province.
    let units = ["00004", "00004-001", "00127", "01", "00976"];
    for unit in units {
        let report = json!({"unit": unit, "week": "2025-W38", "values": {"meetings_held": 1}});
        let response =
            client.post(server.url("/api/v1/reports")).bearer_auth(&central_admin).json(&report).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::CREATED, "{unit}: {}", response.text().await.unwrap());
    }
    let seen = |bearer: &str, sql: &str| {
        let request = client.post(server.url("/api/v1/sql")).bearer_auth(bearer).json(&json!({"sql": sql}));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), reqwest::StatusCode::OK);
            let result: Value = response.json().await.unwrap();
            let mut units: Vec<String> = result["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| row["unit_code"].as_str().unwrap().to_owned())
                .collect();
            units.sort();
            units
        }
    };
    let all = "SELECT DISTINCT unit_code FROM weekly_reports";
    let mut everything = Vec::new();
    for _ in 0..100 {
        everything = seen(&central, all).await;
        if everything.len() == units.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(everything, ["00004", "00004-001", "00127", "00976", "01"]);

    assert_eq!(seen(&commune, all).await, ["00004", "00004-001"]);
    assert_eq!(seen(&province, all).await, ["00004", "00004-001", "00127", "01"]);
    // Asking for another unit by name finds nothing.
    let other = "SELECT unit_code FROM weekly_reports WHERE unit_code LIKE '00127%' OR unit_code = '00976'";
    assert!(seen(&commune, other).await.is_empty());
    assert_eq!(seen(&province, other).await, ["00127"]);
    let count = client
        .post(server.url("/api/v1/sql"))
        .bearer_auth(&commune)
        .json(&json!({"sql": "SELECT count(*) AS n FROM weekly_reports"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(count["rows"][0]["n"], 2, "{count}");
}

/// The response head the server sends to a POST of `length` bytes to `path`, read while the body
/// is still being written (write errors once the server closes are ignored).
async fn let_the_server_answer_a_large_body(server: &Server, path: &str, length: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: voxpop\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    let sending = tokio::spawn(async move {
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(&vec![b' '; length]).await;
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(20), reader.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(read)) => answer.extend_from_slice(&buf[..read]),
        }
    }
    sending.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

/// The SQL worker processes (`voxpop sql-worker --data-dir DIR`) running for the server on
/// `data_dir`; zombies, killed but not yet reaped, are not running.
fn sql_workers_of(data_dir: &std::path::Path) -> Vec<u32> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            let worker = args.contains(&&b"sql-worker"[..]) && args.contains(&data_dir.as_os_str().as_bytes());
            worker.then_some(pid)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_that_broke_the_engine_is_a_problem_naming_sql_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None).await;
    submit_batch(&server, 0, 3).await;
    let client = reqwest::Client::new();
    let chain = |terms: usize, term: &str, operator: &str| vec![term; terms].join(operator);
    let cube: Vec<String> = (0..14).map(|n| format!("c{n}")).collect();
    for (statement, expected) in [
        // Deep enough to overflow a stack while planning.
        (format!("SELECT {}", chain(2_000, "1", "+")), "1000 deep"),
        (format!("SELECT * FROM petitions WHERE {}", chain(3_000, "id='0'", " OR ")), "1000 deep"),
        (format!("SELECT {}", chain(100_000, "1", "+")), "1000 deep"),
        // Panics of Arrow and DataFusion.
        ("SELECT arrow_cast(1,'Dictionary(Utf8, Int32)')".to_owned(), "the query engine failed on this query"),
        ("SELECT repeat(body, 1000000) FROM petitions".to_owned(), "`repeat`"),
        // Work the time limit cannot stop.
        ("SELECT length(range(1,1000000000))".to_owned(), "`range`"),
        ("SELECT range(1,1000000000)".to_owned(), "`range`"),
        ("SELECT levenshtein(repeat('a',100000),repeat('b',100000))".to_owned(), "`levenshtein`"),
        (
            format!(
                "SELECT count(*) FROM (SELECT {}) GROUP BY CUBE ({})",
                cube.iter().map(|c| format!("1 AS {c}")).collect::<Vec<_>>().join(", "),
                cube.join(", ")
            ),
            "grouping sets",
        ),
        // Functions that copy their arguments many times over.
        // Sizes an unoptimised server makes in about a second: the guards refuse by what the
        // function would add, whatever its arguments' own sizes.
        ("SELECT length(replace(repeat('a',1000),'a',repeat('b',100000)))".to_owned(), "`replace`"),
        (format!("SELECT length(replace(repeat('a',700000),'a','{}'))", "b".repeat(100)), "`replace`"),
        (
            format!("SELECT length(regexp_replace(repeat('a',2000000),'a','{}','g'))", "b".repeat(59)),
            "`regexp_replace`",
        ),
        ("SELECT length(regexp_replace(repeat('a',1000000),'a',repeat('b',10000),'g'))".to_owned(), "`regexp_replace`"),
        (format!("SELECT length(concat({}))", ["repeat('b',60000000)"; 3].join(",")), "`concat`"),
        (format!("SELECT length(concat_ws(repeat('b',60000000),{}))", vec!["'x'"; 40].join(",")), "`concat_ws`"),
        (
            "SELECT length(array_to_string(array_repeat(repeat('x',1000),100),repeat('y',1000000)))".to_owned(),
            "`array_to_string`",
        ),
        // Aggregates and windows that collect over a growing frame: no guard sees them, the
        // memory limit of the process running the query ends them.
        (
            "SELECT max(cardinality(a)) FROM (SELECT array_agg(repeat('x', 10000)) OVER (ORDER BY v) AS a \
             FROM generate_series(1, 100000) t(v))"
                .to_owned(),
            "MiB of memory",
        ),
        (
            "SELECT max(length(s)) FROM (SELECT string_agg(repeat('x', 1000), ',') OVER (ORDER BY v) AS s \
             FROM generate_series(1, 100000) t(v))"
                .to_owned(),
            "MiB of memory",
        ),
    ] {
        let what = &statement[..statement.len().min(60)];
        let started = std::time::Instant::now();
        let response = client.post(server.url("/api/v1/sql")).json(&json!({"sql": statement})).send().await.unwrap();
        let message = problem_naming(response, reqwest::StatusCode::BAD_REQUEST, "sql", what).await;
        assert!(message.contains(expected), "{what}: {message}");
        assert!(started.elapsed() < Duration::from_secs(20), "{what}: answered after {:?}", started.elapsed());
        let started = std::time::Instant::now();
        let health = client.get(server.url("/healthz")).timeout(Duration::from_secs(5)).send().await.unwrap();
        assert!(health.status().is_success(), "{what}: /healthz answered {}", health.status());
        assert!(started.elapsed() < Duration::from_secs(2), "{what}: /healthz after {:?}", started.elapsed());
    }
    // A result small as Arrow and large as text (one dictionary value on every row): refused
    // while the worker encodes it, not encoded in the server.
    let dictionary = "SELECT arrow_cast(repeat('x', 10000), 'Dictionary(Int32, Utf8)') AS d FROM range(100000)";
    for format in ["csv", "json"] {
        let response = client
            .post(server.url(&format!("/api/v1/sql?format={format}")))
            .json(&json!({"sql": dictionary, "max_rows": 1000000}))
            .send()
            .await
            .unwrap();
        let message = problem_naming(response, reqwest::StatusCode::BAD_REQUEST, "sql", format).await;
        assert!(message.contains(&format!("MiB as {format}")), "{format}: {message}");
    }
    // The workers that were killed or ran out of memory left no spill files behind.
    let scratch = server.data_dir.join("tmp").join("sql");
    let left: Vec<_> =
        std::fs::read_dir(&scratch).map(|dir| dir.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "spill directories left: {left:?}");
    let response = client.post(server.url("/api/v1/sql")).json(&json!({"sql": "SELECT count(*) AS n FROM petitions"}));
    let result: Value = response.send().await.unwrap().json().await.unwrap();
    assert_eq!(result["rows"][0]["n"], 3, "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_queries_that_find_no_free_worker_in_their_time_are_503() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), None, &["--sql-workers", "1"]).await;
    let client = reqwest::Client::new();
    let long = json!({
        "sql": "SELECT count(*) FROM generate_series(1, 200000) a, generate_series(1, 200000) b WHERE a.value + b.value = 7",
        "timeout_s": 6,
    });
    let running = tokio::spawn(client.post(server.url("/api/v1/sql")).json(&long).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let waiting = client.post(server.url("/api/v1/sql")).json(&json!({"sql": "SELECT 1", "timeout_s": 2})).send();
    let response = waiting.await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let problem: Value = response.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap_or_default().contains("busy"), "{problem}");
    assert!(started.elapsed() < Duration::from_secs(5), "answered after {:?}", started.elapsed());
    let first = running.await.unwrap().unwrap();
    assert_eq!(first.status(), reqwest::StatusCode::BAD_REQUEST, "the long query ran past its own limit");
    // The slot is free again.
    let response = client.post(server.url("/api/v1/sql")).json(&json!({"sql": "SELECT 1 AS one"})).send().await;
    let result: Value = response.unwrap().json().await.unwrap();
    assert_eq!(result["rows"][0]["one"], 1, "{result}");

    // A worker ends with the server, even one killed with SIGKILL.
    let mut server = server;
    let long = json!({"sql": long["sql"], "timeout_s": 60});
    let _running = tokio::spawn(client.post(server.url("/api/v1/sql")).json(&long).send());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sql_workers_of(&server.data_dir).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!sql_workers_of(&server.data_dir).is_empty(), "no worker started for the long query");
    server.kill9();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !sql_workers_of(&server.data_dir).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sql_workers_of(&server.data_dir), Vec::<u32>::new(), "workers outlived the killed server");
}

/// Runs `sql` `count` times for its Flight SQL partitions without fetching them, then fetches the
/// first and runs it once more (`flight_query.py --hold`).
fn flight_hold(port: u16, sql: &str, count: usize) -> Value {
    let output = Command::new(python())
        .arg(py_script("flight_query.py"))
        .arg(format!("grpc://127.0.0.1:{port}"))
        .arg(sql)
        .args(["--hold", &count.to_string()])
        .output()
        .expect("run python (adbc-driver-flightsql, installed by scripts/test.sh)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Results wait for their clients in bounded numbers: a client that asks for results and never
/// fetches them is answered RESOURCE_EXHAUSTED once 64 wait, and a fetched one makes room.
#[tokio::test(flavor = "multi_thread")]
async fn flight_sql_refuses_results_past_its_bound_until_some_are_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let port = voxpop_tests::server::free_port();
    let address = format!("127.0.0.1:{port}");
    let _server = Server::start_with(&dir.path().join("data"), None, &["--flight", &address]).await;
    let report = flight_hold(port, "SELECT 1 AS one", 70);
    assert_eq!(report["held"], 64, "{report}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(error.contains("RESOURCE_EXHAUSTED") || error.contains("ResourceExhausted"), "{report}");
    assert!(error.contains("fetch (DoGet)"), "{report}");
    assert_eq!(report["fetched"], 1, "{report}");
    assert_eq!(report["after_fetch"], 1, "{report}");
}

/// The job behind `status_url` once it has ended.
async fn export_ended(server: &Server, status_url: &str) -> Value {
    let mut status = Value::Null;
    for _ in 0..300 {
        status = server.get_json(status_url, &[]).await;
        if status["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    status
}

#[tokio::test(flavor = "multi_thread")]
async fn exports_refuse_far_days_and_too_many_jobs_and_send_their_files_as_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None).await;
    submit_batch(&server, 0, 3).await;
    let client = reqwest::Client::new();
    let export = |body: Value| {
        let client = client.clone();
        let url = server.url("/api/v1/exports");
        async move { client.post(url).json(&body).send().await.unwrap() }
    };

    // A day past what the date arithmetic holds is refused before a job starts, naming it.
    let invalid = reqwest::StatusCode::UNPROCESSABLE_ENTITY;
    for (dataset, field, day) in [
        ("petitions", "to", "+262142-12-31"),
        ("petition_events", "to", "+262142-12-31"),
        ("weekly_reports", "to", "+262142-12-31"),
        ("petitions", "from", "-0001-01-01"),
    ] {
        let body = json!({"dataset": dataset, field: day});
        let message = problem_naming(export(body.clone()).await, invalid, field, &body.to_string()).await;
        assert!(message.contains("9999-12-31"), "{message}");
    }

    // More exports at once than run at once: the rest are 503 with Retry-After, and every
    // accepted one ends done.
    let mut accepted = Vec::new();
    let mut refused = 0;
    for _ in 0..5 {
        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..8 {
            requests.spawn(export(json!({"dataset": "petitions", "format": "csv"})));
        }
        while let Some(response) = requests.join_next().await {
            let response = response.unwrap();
            match response.status() {
                reqwest::StatusCode::ACCEPTED => {
                    let job: Value = response.json().await.unwrap();
                    accepted.push(job["status_url"].as_str().unwrap().to_owned());
                }
                reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
                    assert!(retry_after.is_some_and(|s| s.parse::<u64>().unwrap() > 0), "{:?}", response.headers());
                    refused += 1;
                }
                other => panic!("{other}: {}", response.text().await.unwrap()),
            }
        }
        if refused > 0 {
            break;
        }
    }
    assert!(refused > 0, "no export was refused among {} accepted", accepted.len());
    assert!(!accepted.is_empty());
    let mut ended = Vec::new();
    for status_url in &accepted {
        let status = export_ended(&server, status_url).await;
        assert_eq!(status["status"], "done", "{status}");
        assert_eq!(status["rows_written"], 3, "{status}");
        ended.push(status);
    }
    // Once they ended, another starts.
    let response = export(json!({"dataset": "petitions", "format": "parquet"})).await;
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    let job: Value = response.json().await.unwrap();
    ended.push(export_ended(&server, job["status_url"].as_str().unwrap()).await);

    // Each file downloads as it lies on disk, with its length.
    for status in [&ended[0], ended.last().unwrap()] {
        let on_disk = server.data_dir.join("exports").join(status["id"].as_str().unwrap());
        let mut files: Vec<(String, String)> = status["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["path"].as_str().unwrap().to_owned(), f["url"].as_str().unwrap().to_owned()))
            .collect();
        files.push(("datapackage.json".to_owned(), status["datapackage_url"].as_str().unwrap().to_owned()));
        for (path, url) in files {
            let response = client.get(server.url(&url)).send().await.unwrap();
            assert_eq!(response.status(), reqwest::StatusCode::OK, "{url}");
            let expected = std::fs::read(on_disk.join(&path)).unwrap();
            assert_eq!(response.headers()["content-length"], expected.len().to_string().as_str(), "{url}");
            let bytes = response.bytes().await.unwrap();
            assert_eq!(bytes.as_ref(), expected.as_slice(), "{url}");
        }
    }
    let status_url = format!("/api/v1/exports/{}", ended[0]["id"].as_str().unwrap());
    let traversal = client.get(server.url(&format!("{status_url}/files/../../../etc/passwd"))).send().await.unwrap();
    assert!(traversal.status().is_client_error());
    let unknown = client.get(server.url(&format!("{status_url}/files/data/provinces.json"))).send().await.unwrap();
    assert_eq!(unknown.status(), reqwest::StatusCode::NOT_FOUND);
}

/// What the query's own expressions or values make fail is a problem naming the field, wherever
/// it fails: a `WHERE` the Parquet reader evaluates as it reads (a 500 while the reader's wrapper
/// hid the error), a date JSON cannot print (once the text `"ERROR: ..."` inside the row).
/// `EXPLAIN` shows a commune officer the logical plan alone: the forms that name the server's
/// files and count the rows of other units are refused.
#[tokio::test(flavor = "multi_thread")]
async fn sql_fails_in_the_reader_and_on_unprintable_dates_as_problems_and_explain_shows_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let central = token(&data_dir, "00", "data_engineer");
    let commune = token(&data_dir, "00004", "officer");
    let server = Server::start(&data_dir, None).await;
    submit_batch(&server, 0, 6).await;
    let client = reqwest::Client::new();
    let sql = |bearer: &str, statement: &str, format: &str| {
        let request = client
            .post(server.url(&format!("/api/v1/sql?format={format}")))
            .bearer_auth(bearer)
            .json(&json!({"sql": statement}));
        async move { request.send().await.unwrap() }
    };
    let bad = reqwest::StatusCode::BAD_REQUEST;

    // Filters pushed into the Parquet reader that fail on the rows it reads.
    for statement in [
        "SELECT count(*) FROM petitions WHERE CAST(title AS INT) = 1",
        "SELECT count(*) FROM petitions WHERE to_timestamp(title) > now()",
        "SELECT count(*) FROM petitions WHERE 1/(CASE WHEN channel='demo' THEN 1 ELSE 0 END)=1",
    ] {
        for bearer in [&central, &commune] {
            let message = problem_naming(sql(bearer, statement, "json").await, bad, "sql", statement).await;
            assert!(message.contains("failed on a row it read"), "{statement}: {message}");
        }
    }
    // The same filters over rows they hold for run as before, within the caller's commune.
    let statement = "SELECT count(*) AS n FROM petitions WHERE 1/(CASE WHEN channel='demo' THEN 0 ELSE 1 END)=1";
    let response = sql(&commune, statement, "json").await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["rows"][0]["n"], 2, "{result}");

    // EXPLAIN: the forms that show files and metrics are refused, plain EXPLAIN shows the logical
    // plan without a path.
    let query = "SELECT count(*) FROM petitions WHERE received_week='2026-W45'";
    for explain in ["EXPLAIN ANALYZE", "EXPLAIN VERBOSE", "EXPLAIN ANALYZE VERBOSE", "EXPLAIN FORMAT TREE"] {
        let statement = format!("{explain} {query}");
        let message = problem_naming(sql(&commune, &statement, "json").await, bad, "sql", &statement).await;
        assert!(message.contains("plain EXPLAIN"), "{statement}: {message}");
    }
    let response = sql(&commune, &format!("EXPLAIN {query}"), "json").await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let plan: Value = response.json().await.unwrap();
    let text = plan["rows"].to_string();
    assert!(text.contains("logical_plan") && text.contains("00004"), "{plan}");
    let lake = std::fs::canonicalize(&data_dir).unwrap();
    for leak in ["physical_plan", ".parquet", "file_groups", "pruned", lake.to_str().unwrap()] {
        assert!(!text.contains(leak), "EXPLAIN shows {leak}: {plan}");
    }

    // Values a text format cannot print: a problem naming `format`, never `"ERROR: ..."` in a row.
    for statement in [
        "SELECT CAST(2147483647 AS DATE) AS d",
        "SELECT arrow_cast(9223372036854775807, 'Timestamp(Second, None)') AS t",
        "SELECT arrow_cast(9223372036854775807, 'Date64') AS d",
        "SELECT d FROM (VALUES (CAST(0 AS DATE)), (CAST(2147483647 AS DATE))) AS v(d)",
    ] {
        for format in ["json", "csv"] {
            let message = problem_naming(sql(&central, statement, format).await, bad, "format", statement).await;
            assert!(message.contains(&format!("as {format}")) && !message.contains("ERROR:"), "{statement}: {message}");
        }
        assert_eq!(sql(&central, statement, "arrow").await.status(), reqwest::StatusCode::OK, "{statement}");
    }
    let response = sql(&central, "SELECT CAST(20347 AS DATE) AS d, interval '1 day' AS i", "json").await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["rows"][0]["d"], "2025-09-16", "{result}");
}

/// Arrow Flight SQL runs the same checks as HTTP: EXPLAIN ANALYZE is refused, and EXPLAIN shows
/// the logical plan without the lake's paths.
#[tokio::test(flavor = "multi_thread")]
async fn flight_sql_explain_shows_the_logical_plan_alone() {
    let dir = tempfile::tempdir().unwrap();
    let port = voxpop_tests::server::free_port();
    let address = format!("127.0.0.1:{port}");
    let server = Server::start_with(&dir.path().join("data"), None, &["--flight", &address]).await;
    submit_batch(&server, 0, 3).await;
    let query = "SELECT count(*) FROM petitions WHERE received_week='2026-W45'";
    let refused = flight_query(port, &format!("EXPLAIN ANALYZE {query}"));
    assert!(refused["error"].as_str().unwrap_or_default().contains("EXPLAIN ANALYZE"), "{refused}");
    let plan = flight_query(port, &format!("EXPLAIN {query}"));
    let text = plan["data"].to_string();
    assert!(text.contains("logical_plan"), "{plan}");
    for leak in [".parquet", "physical_plan", "file_groups"] {
        assert!(!text.contains(leak), "EXPLAIN shows {leak}: {plan}");
    }
    let refused =
        flight_query(port, "SELECT count(*) FROM petitions WHERE 1/(CASE WHEN channel='demo' THEN 1 ELSE 0 END)=1");
    assert!(refused["error"].as_str().unwrap_or_default().contains("failed on a row it read"), "{refused}");
}

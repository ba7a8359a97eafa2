//! Registers of officers and members and the villages register, against the real binary:
//! villages imported and created over the API reach the weekly synthesis; people sent as JSON
//! and as a CSV upload land in the `register_entries` Delta table exactly once; a later entry
//! supersedes; counts and coverage per level; scope and masking follow the caller's token.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use voxpop_tests::paths::{py_dir, python};
use voxpop_tests::problem::problem_of;
use voxpop_tests::server::create_token as token;
use voxpop_tests::server::{Server, voxpop_bin};

/// Reads a Delta table with read_delta.py's `active_files` and pyarrow, each file's partition
/// values (`kind`) put back into its rows.
const READ_ROWS: &str = r#"
import json, os, sys
sys.path.insert(0, sys.argv[1])
import read_delta
import pyarrow.parquet as pq
table = sys.argv[2]
files, _ = read_delta.active_files(table)
rows = []
for path, partition in files.items():
    for row in pq.read_table(os.path.join(table, path)).to_pylist():
        row.update(partition)
        rows.append(row)
print(json.dumps(rows, default=str))
"#;

/// Rows of a Delta table, read by a reader that shares no code with voxpop.
fn delta_rows(table: &std::path::Path) -> Vec<Value> {
    let output = Command::new(python()).args(["-c", READ_ROWS]).arg(py_dir()).arg(table).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

struct Api<'a> {
    server: &'a Server,
    client: reqwest::Client,
}

impl Api<'_> {
    async fn post(&self, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
        let response = self.client.post(self.server.url(path)).bearer_auth(token).json(body).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn upload(&self, path: &str, token: &str, body: &str) -> (StatusCode, Value) {
        let response =
            self.client.post(self.server.url(path)).bearer_auth(token).body(body.to_owned()).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let response = self.client.get(self.server.url(path)).bearer_auth(token).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// GETs `path` until `done` holds (the pipeline writes within a second or two).
    async fn until(&self, path: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let (status, body) = self.get(path, token).await;
            if status == StatusCode::OK && done(&body) {
                return body;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{path} never got there: {status} {body}");
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}

fn names(page: &Value) -> Vec<(String, String)> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["person_id"].as_str().unwrap().to_owned(), e["full_name"].as_str().unwrap().to_owned()))
        .collect()
}

fn level<'v>(summary: &'v Value, name: &str) -> &'v Value {
    summary["levels"].as_array().unwrap().iter().find(|l| l["level"] == name).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn registers_and_villages_flow_from_the_api_to_the_lake_and_the_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let hanoi = token(&data_dir, "01", "leader");
    let commune = token(&data_dir, "00004", "officer");
    let other_commune = token(&data_dir, "00097", "officer");
    let engineer = token(&data_dir, "00", "data_engineer");

    // A villages register imported from a file (the server is not running: the log is free).
    let file = dir.path().join("thon.csv");
    std::fs::write(&file, "code,name\n00004-001,Tổ dân phố số 1\n").unwrap();
    let output = Command::new(voxpop_bin())
        .args(["import", "--villages"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("1 villages imported"),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let server = Server::start(&data_dir, None).await;
    let api = Api { server: &server, client: reqwest::Client::new() };

    // The commune creates two more villages: numbered after the imported one.
    let (status, created) = api
        .post("/api/v1/villages", &commune, &json!([{"name": "Tổ dân phố số 2"}, {"name": "Tổ dân phố số 3"}]))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let codes: Vec<&str> =
        created["villages"].as_array().unwrap().iter().map(|v| v["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["00004-002", "00004-003"]);
    // Not another commune's villages, and not as a data engineer.
    let (status, problem) =
        api.post("/api/v1/villages", &other_commune, &json!([{"code": "00004-009", "name": "Thôn lạ"}])).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["errors"][0]["code"], "out_of_scope");
    let (status, _) = api.post("/api/v1/villages", &engineer, &json!([{"code": "00004-009", "name": "X"}])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The weekly synthesis of the commune counts the three villages (none reported yet).
    let synthesis = api
        .until("/api/v1/reports/weekly?week=2025-W38&unit=00004", &hanoi, |s| {
            s["coverage"][0]["coverage"]["total"] == 3
        })
        .await;
    assert_eq!(synthesis["coverage"][0]["coverage"]["text"], "0/3 (0.00%)", "{synthesis}");
    let missing: Vec<&str> =
        synthesis["missing"].as_array().unwrap().iter().map(|m| m["code"].as_str().unwrap()).collect();
    assert_eq!(missing, ["00004-001", "00004-002", "00004-003"]);
    api.until("/api/v1/villages?unit=00004", &commune, |v| v["total"] == 3).await;

    // Officers and a member as JSON.
    let people = json!([
        {"register": "officer", "person_id": "BD-001", "unit": "00004", "full_name": "Nguyễn Văn An",
         "role": "Chủ tịch", "gender": "Nam", "birth_year": 1975, "phone": "0912345678", "term_start": "2024-10-01"},
        {"register": "officer", "person_id": "BD-002", "unit": "00004-002", "full_name": "Lê Thị Bình",
         "role": "Trưởng ban công tác Mặt trận", "term_start": "2024-10-01"},
        {"register": "member", "person_id": "HV-001", "unit": "00004-001", "full_name": "Trần Văn Cường",
         "role": "Hội viên", "term_start": "2025-01-01"}
    ]);
    let (status, accepted) = api.post("/api/v1/registers", &commune, &people).await;
    assert_eq!(status, StatusCode::CREATED, "{accepted}");
    let mut entry_ids: Vec<String> =
        accepted["entry_ids"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()).collect();

    // A CSV upload of the officer list with one bad row: nothing is taken, the cell is named.
    let sheet = |end: &str| {
        format!(
            "person_id,unit,full_name,role,term_start,term_end\n\
             BD-003,00004,Phạm Văn Dũng,Phó Chủ tịch,01/10/2024,\n\
             BD-004,00004-003,Hoàng Thị Em,Ủy viên,01/10/2024,{end}\n"
        )
    };
    let (status, problem) =
        api.upload("/api/v1/registers/upload?format=csv&register=officer", &commune, &sheet("01/01/2020")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let error = &problem["errors"][0];
    assert_eq!(
        (error["row"].as_u64(), error["column"].as_str(), error["field"].as_str()),
        (Some(3), Some("F"), Some("term_end"))
    );
    assert_eq!(error["code"], "term_end_before_start");
    let (status, outcome) =
        api.upload("/api/v1/registers/upload?format=csv&register=officer", &commune, &sheet("")).await;
    assert_eq!((status, outcome["accepted_entries"].as_u64()), (StatusCode::CREATED, Some(2)), "{outcome}");

    // Another commune's officer can neither write nor read the commune's register.
    let stranger = json!([{"register": "officer", "person_id": "X-1", "unit": "00004", "full_name": "Người lạ",
        "role": "Ủy viên", "term_start": "2024-10-01"}]);
    let (status, problem) = api.post("/api/v1/registers", &other_commune, &stranger).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let (status, _) = api.get("/api/v1/registers?unit=00004", &other_commune).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api.get("/api/v1/registers/summary?unit=00004", &other_commune).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The commune's officer reads names; the list holds the five people once the pipeline ran.
    let page = api.until("/api/v1/registers?unit=00004", &commune, |p| p["total"] == 5).await;
    assert_eq!(page["masked"], false);
    assert!(names(&page).contains(&("BD-001".to_owned(), "Nguyễn Văn An".to_owned())), "{page}");
    let (_, own) = api.get("/api/v1/registers", &other_commune).await;
    assert_eq!((own["unit"].as_str(), own["total"].as_u64()), (Some("00097"), Some(0)), "{own}");
    // A data engineer sees the register masked.
    let (status, masked) = api.get("/api/v1/registers?unit=00004&register=officer", &engineer).await;
    assert_eq!(status, StatusCode::OK, "{masked}");
    assert_eq!(masked["masked"], true);
    let chair = masked["entries"].as_array().unwrap().iter().find(|e| e["person_id"] == "BD-001").unwrap();
    assert_eq!(
        (chair["full_name"].as_str(), chair["phone"].as_str()),
        (Some("N. V. A."), Some("*******678")),
        "{chair}"
    );
    assert!(chair["birth_year"].is_null());

    // A later entry supersedes the earlier one; the history stays in the lake.
    let (status, later) = api
        .post(
            "/api/v1/registers",
            &commune,
            &json!([{"register": "officer", "person_id": "BD-001", "unit": "00004", "full_name": "Nguyễn Văn An",
                "role": "Phó Chủ tịch", "term_start": "2024-10-01"}]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{later}");
    entry_ids.push(later["entry_ids"][0].as_str().unwrap().to_owned());
    let page = api
        .until("/api/v1/registers?unit=00004&register=officer", &commune, |p| {
            p["entries"].as_array().unwrap().iter().any(|e| e["person_id"] == "BD-001" && e["role"] == "Phó Chủ tịch")
        })
        .await;
    assert_eq!(page["total"], 4, "BD-001 is listed once: {page}");

    // In the lake, read by a reader that shares no code with voxpop: every entry exactly once.
    let rows = delta_rows(&data_dir.join("lake/register_entries"));
    let mut per_entry: HashMap<&str, usize> = HashMap::new();
    for row in &rows {
        *per_entry.entry(row["entry_id"].as_str().unwrap()).or_default() += 1;
    }
    assert!(per_entry.values().all(|&n| n == 1), "an entry was written twice: {rows:?}");
    let people_rows: Vec<&Value> = rows.iter().filter(|r| r["kind"] == "person").collect();
    let village_rows: Vec<&Value> = rows.iter().filter(|r| r["kind"] == "village").collect();
    assert_eq!((people_rows.len(), village_rows.len()), (6, 3), "{rows:?}");
    assert!(entry_ids.iter().all(|id| per_entry.contains_key(id.as_str())), "{entry_ids:?}");
    let chair_rows: Vec<&str> =
        people_rows.iter().filter(|r| r["person_id"] == "BD-001").map(|r| r["role"].as_str().unwrap()).collect();
    assert_eq!(chair_rows.len(), 2, "both entries about BD-001 are kept: {chair_rows:?}");

    // SQL over the registers: the caller's scope, and masking as the registers API masks.
    let sql = |query: &str| json!({ "sql": query });
    let in_commune = rows.iter().filter(|r| r["commune_code"] == "00004").count() as u64;
    let (status, masked_rows) = api
        .post(
            "/api/v1/sql",
            &engineer,
            &sql(
                "SELECT name, phone, birth_year FROM register_entries WHERE person_id = 'BD-001' AND role = 'Chủ tịch'",
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{masked_rows}");
    let chair = &masked_rows["rows"][0];
    assert_eq!(chair["name"], "N. V. A.", "{masked_rows}");
    assert!(!chair["phone"].as_str().unwrap().contains("0912345"), "{masked_rows}");
    assert!(chair["birth_year"].is_null(), "{masked_rows}");
    let (status, own) = api
        .post(
            "/api/v1/sql",
            &commune,
            &sql("SELECT count(*) AS n, count(DISTINCT commune_code) AS communes, min(commune_code) AS commune FROM register_entries"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(
        (own["rows"][0]["communes"].as_u64(), own["rows"][0]["commune"].as_str()),
        (Some(1), Some("00004")),
        "{own}"
    );
    assert_eq!(own["rows"][0]["n"].as_u64(), Some(in_commune), "{own}");
    let (_, theirs) = api.post("/api/v1/sql", &other_commune, &sql("SELECT count(*) AS n FROM register_entries")).await;
    assert_eq!(theirs["rows"][0]["n"], 0, "{theirs}");

    // Counts and coverage per level, this week (the entries were just received).
    let hanoi_communes = voxpop_schema::Units::embedded().communes().iter().filter(|c| c.province_code == "01").count();
    let (status, summary) = api.get("/api/v1/registers/summary?unit=01", &hanoi).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!((summary["total"]["officers"].as_u64(), summary["total"]["members"].as_u64()), (Some(4), Some(1)));
    let communes = level(&summary, "commune");
    assert_eq!(
        communes["officer_lists_updated"]["text"],
        format!("1/{hanoi_communes} ({:.2}%)", 100.0 / hanoi_communes as f64),
        "{summary}"
    );
    assert_eq!(
        (communes["counts"]["officers"].as_u64(), communes["units"].as_u64()),
        (Some(2), Some(hanoi_communes as u64))
    );
    let villages = level(&summary, "village");
    assert_eq!(villages["officer_lists_updated"]["text"], "2/3 (66.67%)");
    assert_eq!(villages["member_lists_updated"]["text"], "1/3 (33.33%)");
    let child = summary["children"].as_array().unwrap().iter().find(|c| c["code"] == "00004").unwrap();
    assert_eq!((child["counts"]["officers"].as_u64(), child["officer_list_updated"].as_bool()), (Some(4), Some(true)));
    // Over a week long past: the same people (their terms ran then), no list updated.
    let (_, before) = api.get("/api/v1/registers/summary?unit=00004&week=2025-W38", &commune).await;
    assert_eq!(before["total"]["officers"], 4, "{before}");
    assert_eq!(level(&before, "village")["officer_lists_updated"]["text"], "0/3 (0.00%)", "{before}");
    let (status, country) = api.get("/api/v1/registers/summary?unit=00", &engineer).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(level(&country, "commune")["officer_lists_updated"]["text"], "1/3,321 (0.03%)", "{country}");
    let (status, _) = api.get("/api/v1/registers/summary?unit=00&from=2025-09-30&to=2025-09-01", &engineer).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn registers_name_every_bad_parameter_and_field_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(data_dir.join("reference")).unwrap();
    std::fs::write(data_dir.join("reference/villages.csv"), "code,name\n00004-001,Tổ dân phố số 1\n").unwrap();
    let admin = token(&data_dir, "00", "admin");
    let server = Server::start(&data_dir, None).await;
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(server.url(path)).bearer_auth(&admin);

    for (path, field) in [
        // Year -262143 is the end of the calendar: 6 days before it does not exist.
        ("/api/v1/registers/summary?to=-262143-01-01", "to"),
        ("/api/v1/registers/summary?to=-262143-01-03", "to"),
        ("/api/v1/registers/summary?from=%2B262142-12-31", "from"),
        ("/api/v1/registers/summary?week=9999-W52", "week"),
        ("/api/v1/registers?unit=00004-999", "unit"),
        ("/api/v1/villages?unit=00004-999", "unit"),
        ("/api/v1/registers?include_removed=maybe", "include_removed"),
        ("/api/v1/registers?unit=00&unit=01", "unit"),
    ] {
        let (status, content_type, problem) = problem_of(get(path).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {problem}");
        assert_eq!(content_type, "application/problem+json", "{path}");
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
    }
    assert_eq!(get("/api/v1/registers?unit=00004-001").send().await.unwrap().status(), StatusCode::OK);
    let upload = client
        .post(server.url("/api/v1/registers/upload?format=csv&partial=maybe"))
        .bearer_auth(&admin)
        .body("register,person_id,unit,full_name,role,term_start\nofficer,A1,00004,An,Chủ tịch,2024-10-01\n");
    let (status, content_type, problem) = problem_of(upload.send().await.unwrap()).await;
    assert_eq!((status, content_type.as_str()), (StatusCode::BAD_REQUEST, "application/problem+json"));
    assert_eq!(problem["errors"][0]["field"], "partial", "{problem}");

    // JSON states its types: numbers for text, a year as text and year -1 are refused, named.
    let people = json!([{"register": "officer", "person_id": 5, "unit": "00004", "full_name": 1, "role": "Chủ tịch",
        "birth_year": "1975", "term_start": "-0001-01-01"}]);
    let (status, content_type, problem) = problem_of(
        client.post(server.url("/api/v1/registers")).bearer_auth(&admin).json(&people).send().await.unwrap(),
    )
    .await;
    assert_eq!((status, content_type.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "application/problem+json"));
    let mut fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    fields.sort();
    assert_eq!(fields, ["0.birth_year", "0.full_name", "0.person_id", "0.term_start"], "{problem}");
    let village = json!([{"code": "00004-002", "name": 5}]);
    let (status, content_type, problem) = problem_of(
        client.post(server.url("/api/v1/villages")).bearer_auth(&admin).json(&village).send().await.unwrap(),
    )
    .await;
    assert_eq!((status, content_type.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "application/problem+json"));
    assert_eq!(problem["errors"][0]["field"], "0.name", "{problem}");
}

#[tokio::test(flavor = "multi_thread")]
async fn registers_and_imports_refuse_a_far_cell_quickly_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let commune = token(&data_dir, "00004", "officer");
    let server = Server::start(&data_dir, None).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let workbook = crate::reports::far_cell_xlsx(&["register", "person_id", "unit", "full_name", "role", "term_start"]);

    // One value in the sheet's last cell: a 422 naming the cell at once, and the server lives on.
    let started = Instant::now();
    let response = client
        .post(server.url("/api/v1/registers/upload?format=xlsx&register=officer"))
        .bearer_auth(&commune)
        .body(workbook.clone())
        .send()
        .await
        .expect("an answer, not a dead server");
    let (status, content_type, problem) = problem_of(response).await;
    voxpop_tests::problem::assert_far_cell_refused(status, &content_type, &problem);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let alive = client.get(server.url("/api/v1/registers")).bearer_auth(&commune).send().await.unwrap();
    assert_eq!(alive.status(), StatusCode::OK);

    // `voxpop import` reads spreadsheets the same way: an error naming the cell, not a dead process.
    let path = dir.path().join("petitions.xlsx");
    std::fs::write(&path, &workbook).unwrap();
    let started = Instant::now();
    let output = Command::new(voxpop_bin())
        .arg("import")
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("import"))
        .output()
        .expect("run voxpop import");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("XFD1048576"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn registers_csv_upload_is_refused_past_256_columns_with_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let commune = token(&data_dir, "00004", "officer");
    let server = Server::start(&data_dir, None).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let header = crate::reports::wide_csv_header(&["person_id", "unit", "full_name", "role", "term_start"], 80_000);
    let body = format!("{header}\nBD-003,00004,Phạm Văn Dũng,Phó Chủ tịch,01/10/2024\n");
    // With `format=csv`, and with the format sniffed from the body.
    for query in ["format=csv&register=officer", "register=officer"] {
        let response = client
            .post(server.url(&format!("/api/v1/registers/upload?{query}")))
            .bearer_auth(&commune)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let (status, content_type, problem) = problem_of(response).await;
        voxpop_tests::problem::assert_unprocessable(status, &content_type, &problem);
        assert_eq!(problem["errors"].as_array().unwrap().len(), 1, "{query}: {problem}");
        let error = voxpop_tests::problem::first_cell_error(&problem);
        assert_eq!(error, (Some(1), Some("IW"), Some("too_many_columns")), "{query}: {problem}");
    }
    // The officer list within the limit still goes in.
    let response = client
        .post(server.url("/api/v1/registers/upload?format=csv&register=officer"))
        .bearer_auth(&commune)
        .body("person_id,unit,full_name,role,term_start\nBD-003,00004,Phạm Văn Dũng,Phó Chủ tịch,01/10/2024\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await.unwrap());
}

/// A person id that is a national ID number is masked for a data engineer in the registers API
/// as in SQL's `register_entries`, and shown to the unit's own officer.
#[tokio::test(flavor = "multi_thread")]
async fn registers_mask_person_ids_for_a_data_engineer_as_sql_does() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let commune = token(&data_dir, "00004", "officer");
    let engineer = token(&data_dir, "00", "data_engineer");
    let server = Server::start(&data_dir, None).await;
    let api = Api { server: &server, client: reqwest::Client::new() };

    let people = json!([
        {"register": "officer", "person_id": "079200009999", "unit": "00004", "full_name": "Phạm Văn Đông",
         "role": "Chủ tịch", "birth_year": 1980, "phone": "0977  888 999", "term_start": "2024-10-01"},
        {"register": "officer", "person_id": "BD-007", "unit": "00004", "full_name": "Lê Thị Hoa",
         "role": "Ủy viên", "term_start": "2024-10-01"}
    ]);
    let (status, accepted) = api.post("/api/v1/registers", &commune, &people).await;
    assert_eq!(status, StatusCode::CREATED, "{accepted}");
    let own = api.until("/api/v1/registers?unit=00004", &commune, |p| p["total"] == 2).await;
    assert_eq!(own["masked"], false);
    assert!(names(&own).contains(&("079200009999".to_owned(), "Phạm Văn Đông".to_owned())), "{own}");

    let (status, masked) = api.get("/api/v1/registers?unit=00004", &engineer).await;
    assert_eq!(status, StatusCode::OK, "{masked}");
    assert_eq!(masked["masked"], true);
    let listed = names(&masked);
    assert!(listed.contains(&("*********999".to_owned(), "P. V. Đ.".to_owned())), "{masked}");
    assert!(listed.contains(&("BD-007".to_owned(), "L. T. H.".to_owned())), "a unit's numbering stays: {masked}");
    assert!(!masked.to_string().contains("079200009999") && !masked.to_string().contains("0977 888"), "{masked}");

    // SQL shows the same entries the same way.
    let (status, rows) = api
        .post(
            "/api/v1/sql",
            &engineer,
            &json!({"sql": "SELECT person_id, name, phone, birth_year FROM register_entries ORDER BY person_id"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    let chair = masked["entries"].as_array().unwrap().iter().find(|e| e["person_id"] == "*********999").unwrap();
    let sql_chair = rows["rows"].as_array().unwrap().iter().find(|r| r["person_id"] == "*********999");
    let sql_chair = sql_chair.unwrap_or_else(|| panic!("the ID number masked in SQL too: {rows}"));
    assert_eq!(
        (sql_chair["name"].as_str(), sql_chair["phone"].as_str(), sql_chair["birth_year"].is_null()),
        (chair["full_name"].as_str(), chair["phone"].as_str(), chair["birth_year"].is_null()),
        "{rows} {chair}"
    );
    // Two spaces in the phone: hidden whole on both paths all the same.
    assert_eq!(chair["phone"], "****  *** 999");

    // A village's name is no one's: in clear for the data engineer, in SQL as on the API.
    let (status, created) = api.post("/api/v1/villages", &commune, &json!([{"name": "Tổ dân phố số 9"}])).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let query = json!({"sql": "SELECT name FROM register_entries WHERE kind = 'village'"});
    let mut villages = Value::Null;
    for _ in 0..100 {
        villages = api.post("/api/v1/sql", &engineer, &query).await.1;
        if villages["rows"].as_array().is_some_and(|rows| !rows.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(villages["rows"], json!([{"name": "Tổ dân phố số 9"}]), "{villages}");
}

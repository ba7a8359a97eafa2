//! Weekly reports: entered over the API (JSON and a CSV upload), through the log to the
//! `weekly_reports` table, synthesised up the hierarchy.

use std::time::Duration;

use serde_json::{Value, json};
use voxpop_tests::problem::problem_of;
use voxpop_tests::server::Server;
use voxpop_tests::server::create_token as token;

#[tokio::test(flavor = "multi_thread")]
async fn reports_are_validated_written_once_and_synthesised() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    // The commune's three villages, as an import or the demo registers them.
    std::fs::create_dir_all(data_dir.join("reference")).unwrap();
    std::fs::write(
        data_dir.join("reference/villages.csv"),
        "code,name\n00004-001,Tổ dân phố số 1\n00004-002,Tổ dân phố số 2\n00004-003,Tổ dân phố số 3\n",
    )
    .unwrap();
    let server = Server::start(&data_dir, None).await;
    let client = reqwest::Client::new();

    // The commune's own values, as JSON.
    let response = client
        .post(server.url("/api/v1/reports"))
        .json(
            &json!({"unit": "00004", "week": "2025-W38", "values": {"meetings_held": 2, "village_list_created": true}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED, "{}", response.text().await.unwrap());

    // A sheet from the villages with one bad row: nothing is accepted, every problem is named.
    let sheet = "unit_code,week,meetings_held,members_registered\n\
                 00004-001,2025-W38,3,120\n\
                 00004-002,2025-W38,1,95\n\
                 00004-003,2025-W38,nhiều,80\n";
    let upload = |partial: bool| {
        let client = client.clone();
        let url =
            server.url(&format!("/api/v1/reports/upload?format=csv{}", if partial { "&partial=true" } else { "" }));
        async move { client.post(url).body(sheet).send().await.unwrap() }
    };
    let rejected = upload(false).await;
    assert_eq!(rejected.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = rejected.json().await.unwrap();
    assert_eq!(
        (problem["errors"][0]["row"].as_u64(), problem["errors"][0]["column"].as_str()),
        (Some(4), Some("C")),
        "{problem}"
    );
    assert_eq!(problem["errors"][0]["field"], "meetings_held");
    // Asked to, the good rows go in.
    let partial = upload(true).await;
    assert_eq!(partial.status(), reqwest::StatusCode::OK);
    let outcome: Value = partial.json().await.unwrap();
    assert_eq!(
        (outcome["accepted_values"].as_u64(), outcome["rejected_rows"].as_u64()),
        (Some(4), Some(1)),
        "{outcome}"
    );

    // The synthesis once the reports pipeline has written them.
    let mut synthesis = Value::Null;
    for _ in 0..100 {
        synthesis = server.get_json("/api/v1/reports/weekly", &[("week", "2025-W38"), ("unit", "00004")]).await;
        let meetings = synthesis["indicators"]
            .as_array()
            .and_then(|all| all.iter().find(|i| i["code"] == "meetings_held").cloned());
        if meetings.is_some_and(|m| m["value"] == json!(6.0) || m["value"] == json!(6)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let meetings =
        synthesis["indicators"].as_array().unwrap().iter().find(|i| i["code"] == "meetings_held").unwrap().clone();
    assert!(
        meetings["value"] == json!(6.0) || meetings["value"] == json!(6),
        "2 of the commune + 3 + 1 of its villages: {synthesis}"
    );
    assert_eq!(synthesis["reported"], true);
    assert_eq!(synthesis["coverage"][0]["coverage"]["text"], "2/3 (66.67%)", "{synthesis}");
    assert_eq!(synthesis["missing"][0]["code"], "00004-003");
    let country = server.get_json("/api/v1/reports/weekly", &[("week", "2025-W38")]).await;
    let communes = country["coverage"].as_array().unwrap().iter().find(|c| c["level"] == "commune").unwrap().clone();
    assert_eq!(communes["coverage"]["text"], "1/3,321 (0.03%)", "{country}");

    // A later value supersedes the earlier one; the template is a real workbook.
    let response = client
        .post(server.url("/api/v1/reports"))
        .json(&json!({"unit": "00004", "week": "2025-W38", "values": {"meetings_held": 5}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let template = client.get(server.url("/api/v1/reports/template?unit=00004&week=2025-W38")).send().await.unwrap();
    assert_eq!(template.status(), reqwest::StatusCode::OK);
    assert_eq!(&template.bytes().await.unwrap()[..2], b"PK", "an XLSX is a zip");
    for _ in 0..100 {
        synthesis = server.get_json("/api/v1/reports/weekly", &[("week", "2025-W38"), ("unit", "00004")]).await;
        let direct = synthesis["indicators"].as_array().unwrap().iter().find(|i| i["code"] == "meetings_held").unwrap()
            ["direct"]
            .clone();
        if direct == json!(5.0) || direct == json!(5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let meetings =
        synthesis["indicators"].as_array().unwrap().iter().find(|i| i["code"] == "meetings_held").unwrap().clone();
    assert!(meetings["value"] == json!(9.0) || meetings["value"] == json!(9), "{synthesis}");
    let bad = client.get(server.url("/api/v1/reports/weekly?week=38")).send().await.unwrap();
    assert_eq!(bad.status(), reqwest::StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_survive_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), None).await;
    let communes: Vec<String> = voxpop_schema::Units::embedded().communes().iter().map(|c| c.code.clone()).collect();
    let mut accepted = std::collections::HashSet::new();
    let mut next = 0;
    for _round in 0..3 {
        let url = server.url("/api/v1/reports");
        let batch: Vec<String> = communes[next..next + 300].to_vec();
        next += 300;
        let sender = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut ok = Vec::new();
            for unit in batch {
                let body = json!({"unit": unit, "week": "2025-W38", "values": {"meetings_held": 1}});
                match client.post(&url).json(&body).send().await {
                    Ok(response) if response.status() == reqwest::StatusCode::CREATED => ok.push(unit),
                    _ => {}
                }
            }
            ok
        });
        tokio::time::sleep(Duration::from_millis(400)).await;
        server.kill9();
        accepted.extend(sender.await.unwrap());
        server.restart().await;
    }
    assert!(accepted.len() >= 100, "only {} acknowledged", accepted.len());
    // Every acknowledged value is in the lake exactly once (unacknowledged ones may be there too).
    let client = reqwest::Client::new();
    let mut rows = Value::Null;
    for _ in 0..100 {
        let response = client
            .post(server.url("/api/v1/sql"))
            .json(&json!({"sql": "SELECT unit_code, count(*) AS n FROM weekly_reports GROUP BY unit_code", "max_rows": 100000}))
            .send()
            .await
            .unwrap();
        if response.status() == reqwest::StatusCode::OK {
            rows = response.json().await.unwrap();
            let units: std::collections::HashSet<String> = rows["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| row["unit_code"].as_str().unwrap().to_owned())
                .collect();
            if accepted.is_subset(&units) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counts = rows["rows"].as_array().expect("the reports table is queryable");
    let present: std::collections::HashSet<String> =
        counts.iter().map(|row| row["unit_code"].as_str().unwrap().to_owned()).collect();
    assert!(accepted.is_subset(&present), "acknowledged values missing from the lake");
    assert!(counts.iter().all(|row| row["n"] == 1), "a value was written twice: {rows}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_refuse_unregistered_villages_open_quotes_and_bad_parameters_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(data_dir.join("reference")).unwrap();
    std::fs::write(data_dir.join("reference/villages.csv"), "code,name\n00004-001,Tổ dân phố số 1\n").unwrap();
    let server = Server::start(&data_dir, None).await;
    let client = reqwest::Client::new();
    let post = |body: Value| client.post(server.url("/api/v1/reports")).json(&body).send();
    let upload = |query: &str, body: &'static str| {
        client.post(server.url(&format!("/api/v1/reports/upload?{query}"))).body(body).send()
    };
    let unprocessable = (reqwest::StatusCode::UNPROCESSABLE_ENTITY, "application/problem+json".to_owned());

    // A member given twice is named, at any depth, not the last value taken.
    let twice =
        r#"{"unit": "00004", "unit": "00004", "week": "2025-W38", "values": {"meetings_held": 3, "meetings_held": 4}}"#;
    let response = client
        .post(server.url("/api/v1/reports"))
        .header("content-type", "application/json")
        .body(twice)
        .send()
        .await
        .unwrap();
    let (status, content_type, problem) = problem_of(response).await;
    assert_eq!((status, content_type), unprocessable, "{problem}");
    let named: Vec<&str> = problem["errors"].as_array().unwrap().iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(named, ["unit", "values.meetings_held"], "{problem}");

    // A village the register does not hold: refused at submission, as the weekly read refuses it.
    let registered = post(json!({"unit": "00004-001", "week": "2025-W38", "values": {"meetings_held": 3}})).await;
    assert_eq!(registered.unwrap().status(), reqwest::StatusCode::CREATED);
    let (status, content_type, problem) = problem_of(
        post(json!({"unit": "00004-999", "week": "2025-W38", "values": {"meetings_held": 3}})).await.unwrap(),
    )
    .await;
    assert_eq!((status, content_type), unprocessable, "{problem}");
    assert_eq!(
        (problem["errors"][0]["field"].as_str(), problem["errors"][0]["code"].as_str()),
        (Some("unit"), Some("unknown_village"))
    );
    let (status, content_type, problem) =
        problem_of(upload("format=csv", "unit_code,week,meetings_held\n00004-999,2025-W38,3\n").await.unwrap()).await;
    assert_eq!((status, content_type), unprocessable, "{problem}");
    let error = &problem["errors"][0];
    assert_eq!(
        (error["row"].as_u64(), error["column"].as_str(), error["field"].as_str()),
        (Some(2), Some("A"), Some("unit_code"))
    );

    // An unterminated quote is named with its line, not dropped.
    let (status, content_type, problem) =
        problem_of(upload("format=csv", "unit_code,week,meetings_held\n\"00004,2025-W38,3\n").await.unwrap()).await;
    assert_eq!((status, content_type), unprocessable, "{problem}");
    assert_eq!(
        (problem["errors"][0]["row"].as_u64(), problem["errors"][0]["code"].as_str()),
        (Some(2), Some("malformed_file"))
    );

    // Text is sent as text.
    let (status, content_type, problem) =
        problem_of(post(json!({"unit": "00004", "week": "2025-W38", "values": {"notable_issues": 5}})).await.unwrap())
            .await;
    assert_eq!((status, content_type), unprocessable, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "values.notable_issues");

    for (path, field) in [
        ("/api/v1/reports/template?week=x", "week"),
        ("/api/v1/reports/template?week=2025-W99", "week"),
        ("/api/v1/reports/template?unit=00004-999", "unit"),
        ("/api/v1/reports/weekly?week=2099-W01", "week"),
        ("/api/v1/reports/weekly?week=2025-W38&unit=00004-999", "unit"),
        ("/api/v1/reports/weekly?week=2025-W38&week=2025-W37", "week"),
    ] {
        let (status, content_type, problem) = problem_of(client.get(server.url(path)).send().await.unwrap()).await;
        assert_eq!(
            (status, content_type.as_str()),
            (reqwest::StatusCode::BAD_REQUEST, "application/problem+json"),
            "{path}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
    }
    let (status, _, problem) = problem_of(
        upload("format=csv&partial=maybe", "unit_code,week,meetings_held\n00004,2025-W38,3\n").await.unwrap(),
    )
    .await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (reqwest::StatusCode::BAD_REQUEST, Some("partial")));
}

/// An XLSX workbook of one sheet, `Data`: `headers` in row 1 and a value `x` in its last cell,
/// `XFD1048576` — 9 KB that a reader building the sheet's dense grid turns into 17 billion cells.
pub(crate) fn far_cell_xlsx(headers: &[&str]) -> Vec<u8> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet().set_name("Data").unwrap();
    for (column, header) in headers.iter().enumerate() {
        sheet.write_string(0, column as u16, *header).unwrap();
    }
    sheet.write_string(1_048_575, 16_383, "x").unwrap();
    workbook.save_to_buffer().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_refuse_a_far_cell_quickly_and_read_within_the_callers_unit() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let commune = token(&data_dir, "00004", "officer");
    let province = token(&data_dir, "01", "leader");
    let server = Server::start(&data_dir, None).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let forbidden = (reqwest::StatusCode::FORBIDDEN, "application/problem+json".to_owned());

    // One value in the sheet's last cell: a 422 naming the cell at once, and the server lives on.
    let started = std::time::Instant::now();
    let response = client
        .post(server.url("/api/v1/reports/upload?format=xlsx"))
        .bearer_auth(&commune)
        .body(far_cell_xlsx(&["unit_code", "unit_name", "week", "meetings_held"]))
        .send()
        .await
        .expect("an answer, not a dead server");
    let (status, content_type, problem) = problem_of(response).await;
    voxpop_tests::problem::assert_far_cell_refused(status, &content_type, &problem);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());

    // Without `unit`, the synthesis and the template are the caller's own unit's.
    for (caller, unit) in [(&commune, "00004"), (&province, "01")] {
        let response = client
            .get(server.url("/api/v1/reports/weekly?week=2025-W38"))
            .bearer_auth(caller)
            .send()
            .await
            .expect("the server is still alive");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let synthesis: Value = response.json().await.unwrap();
        assert_eq!(synthesis["code"], unit, "{synthesis}");
    }
    let own = client.get(server.url("/api/v1/reports/template")).bearer_auth(&commune).send().await.unwrap();
    assert_eq!(own.status(), reqwest::StatusCode::OK);
    assert!(own.headers()[reqwest::header::CONTENT_DISPOSITION].to_str().unwrap().contains("00004"));

    // Another commune's template is outside the officer's unit, as its synthesis is.
    for path in ["/api/v1/reports/template?unit=00802", "/api/v1/reports/weekly?week=2025-W38&unit=00802"] {
        let response = client.get(server.url(path)).bearer_auth(&commune).send().await.unwrap();
        let (status, content_type, problem) = problem_of(response).await;
        assert_eq!((status, content_type), forbidden, "{path}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "unit", "{path}: {problem}");
    }
    let below =
        client.get(server.url("/api/v1/reports/template?unit=00004")).bearer_auth(&province).send().await.unwrap();
    assert_eq!(below.status(), reqwest::StatusCode::OK, "a province reads the template of its communes");
}

/// A CSV header of `columns` names: the sheet's own, then `x`s (80,000 columns fit in 160 KB).
pub(crate) fn wide_csv_header(own: &[&str], columns: usize) -> String {
    let extra = (own.len() + 1..=columns).map(|_| "x".to_owned());
    own.iter().map(|name| (*name).to_owned()).chain(extra).collect::<Vec<_>>().join(",")
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_csv_upload_is_refused_past_256_columns_with_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let server = Server::start(&data_dir, None).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let upload = |body: String| client.post(server.url("/api/v1/reports/upload?format=csv")).body(body).send();

    // 80,000 columns in the header: one error naming the first cell past IV, not 80,000 errors.
    let header = wide_csv_header(&["unit_code", "week", "meetings_held"], 80_000);
    let (status, content_type, problem) =
        problem_of(upload(format!("{header}\n00004,2025-W38,3\n")).await.unwrap()).await;
    voxpop_tests::problem::assert_unprocessable(status, &content_type, &problem);
    assert_eq!(problem["errors"].as_array().unwrap().len(), 1, "{problem}");
    let error = voxpop_tests::problem::first_cell_error(&problem);
    assert_eq!(error, (Some(1), Some("IW"), Some("too_many_columns")), "{problem}");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("`IW1`"), "{problem}");

    // A value past IV in a data row (`;`-separated, with a quoted `;` that is no separator).
    let header = "unit_code;week;meetings_held";
    let row = format!("00004;\"2025;W38\";3{}x", ";".repeat(254));
    let (status, _, problem) = problem_of(upload(format!("{header}\n{row}\n")).await.unwrap()).await;
    assert_eq!(status, reqwest::StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        (problem["errors"][0]["row"].as_u64(), problem["errors"][0]["column"].as_str()),
        (Some(2), Some("IW")),
        "{problem}"
    );
    let row = format!("00004;\"2025;W38\";3{}x", ";".repeat(253));
    let (_, _, problem) = problem_of(upload(format!("{header}\n{row}\n")).await.unwrap()).await;
    assert_ne!(problem["errors"][0]["code"], "too_many_columns", "column IV is within the limit: {problem}");

    // 256 columns, and blank fields past them (as a sheet exports its formatted cells): accepted.
    let header = wide_csv_header(&["unit_code", "week", "meetings_held"], 256);
    let blanks = ",".repeat(1_000);
    let response = upload(format!("{header}{blanks}\n00004,2025-W38,3{blanks}\n")).await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(
        body["errors"].as_array().is_none_or(|errors| errors.iter().all(|e| e["code"] != "too_many_columns")),
        "{status} {body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_numbers_with_white_space_between_their_digits_are_refused_naming_the_cell() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let commune = token(&data_dir, "00004", "officer");
    let server = Server::start(&data_dir, None).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let upload = |sheet: String| {
        client.post(server.url("/api/v1/reports/upload?format=csv")).bearer_auth(&commune).body(sheet).send()
    };

    // Digits split by spaces that group nothing, a tab or a line break: never joined into a number.
    for (cell, named) in
        [("1 2 3 4", "dấu cách"), ("3\n4", "dấu xuống dòng"), ("3\t4", "dấu tab"), ("3\r\n4", "dấu xuống dòng")]
    {
        let sheet = format!("unit_code,week,meetings_held\n00004,2025-W38,\"{cell}\"\n");
        let (status, content_type, problem) = problem_of(upload(sheet).await.unwrap()).await;
        voxpop_tests::problem::assert_unprocessable(status, &content_type, &problem);
        let error = voxpop_tests::problem::first_cell_error(&problem);
        assert_eq!(error, (Some(2), Some("C"), Some("misplaced_space")), "{cell:?}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "meetings_held", "{cell:?}: {problem}");
        assert!(problem["errors"][0]["message"].as_str().unwrap().contains(named), "{cell:?}: {problem}");
    }
    // The JSON entry reads its values the same way.
    let response = client
        .post(server.url("/api/v1/reports"))
        .bearer_auth(&commune)
        .json(&json!({"unit": "00004", "week": "2025-W38", "values": {"meetings_held": "1 2 3 4"}}))
        .send()
        .await
        .unwrap();
    let (status, content_type, problem) = problem_of(response).await;
    voxpop_tests::problem::assert_unprocessable(status, &content_type, &problem);
    assert_eq!(problem["errors"][0]["code"], "misplaced_space", "{problem}");

    // What staff type: spaces around the number, a space or a no-break space between thousands.
    let sheet = "unit_code,week,meetings_held,household_visits\n00004,2025-W38,\" 12 \",\"1\u{a0}234\"\n";
    let response = upload(sheet.to_owned()).await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED, "{}", response.text().await.unwrap());
}

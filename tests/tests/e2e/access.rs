//! Access follows the hierarchy: with tokens configured, every read path answers only within the
//! caller's unit — search, petitions by id, summaries, SQL, exports — and nothing without a token.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use voxpop_tests::server::Server;
use voxpop_tests::server::create_token as token;

/// A token created while the server runs (the server reads new tokens at once).
fn token_of(server: &Server, unit: &str, role: &str) -> String {
    token(&server.data_dir, unit, role)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_read_path_is_limited_to_the_callers_unit() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let central = token(&data_dir, "00", "data_engineer");
    let hanoi = token(&data_dir, "01", "leader");
    let commune = token(&data_dir, "00004", "officer");
    let server = Server::start(&data_dir, None).await;
    let client = reqwest::Client::new();

    // Intake stays open. Two petitions in each of three communes (two in Hà Nội, one elsewhere).
    let mut ids: HashMap<&str, Vec<String>> = HashMap::new();
    for commune_code in ["00004", "00097", "00976"] {
        for n in 0..2 {
            let petition = json!({"title": format!("Kiến nghị {commune_code}-{n}"), "body": "Liên hệ 0912345678. Dữ liệu tổng hợp.",
                "commune_code": commune_code});
            ids.entry(commune_code).or_default().push(server.submit(&petition).await);
        }
    }
    let all: std::collections::HashSet<String> = ids.values().flatten().cloned().collect();
    // Wait with the central token (open mode is over: a token is needed to look).
    for _ in 0..100 {
        let response = client.get(server.url("/api/v1/search?q=&limit=0")).bearer_auth(&central).send().await.unwrap();
        let body: Value = response.json().await.unwrap();
        if body["total"].as_u64() == Some(all.len() as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let get = |path: String, bearer: Option<&str>| {
        let request = client.get(server.url(&path));
        let request = match bearer {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let sql = |query: &str, bearer: &str| {
        let request = client.post(server.url("/api/v1/sql")).bearer_auth(bearer).json(&json!({"sql": query}));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };

    // No token, or a wrong one: 401 on every read path.
    for path in ["/api/v1/search?q=", "/api/v1/summaries/weekly", "/?q=dat"] {
        assert_eq!(get(path.to_owned(), None).await.0, StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(get(format!("/api/v1/petitions/{}", ids["00004"][0]), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get("/api/v1/search?q=".to_owned(), Some("vxp_000000000000_wrong")).await.0, StatusCode::UNAUTHORIZED);

    // Search: each caller sees its unit, whatever it asks for.
    for (bearer, expected) in [(&central, 6), (&hanoi, 4), (&commune, 2)] {
        let (status, body) = get("/api/v1/search?q=".to_owned(), Some(bearer)).await;
        assert_eq!((status, body["total"].as_u64()), (StatusCode::OK, Some(expected)), "{body}");
    }
    assert_eq!(get("/api/v1/search?q=&province=08".to_owned(), Some(&hanoi)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(get("/api/v1/search?q=&commune=00097".to_owned(), Some(&commune)).await.0, StatusCode::FORBIDDEN);

    // By id: another unit's petition does not exist for the caller, even with its id.
    let elsewhere = &ids["00976"][0];
    assert_eq!(get(format!("/api/v1/petitions/{elsewhere}"), Some(&commune)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(format!("/api/v1/petitions/{elsewhere}"), Some(&hanoi)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(format!("/api/v1/petitions/{}", ids["00097"][0]), Some(&commune)).await.0, StatusCode::NOT_FOUND);
    let (status, own) = get(format!("/api/v1/petitions/{}", ids["00004"][0]), Some(&commune)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(own["body"].as_str().unwrap().contains("0912345678"), "the commune's officer handles it: {own}");
    let (status, masked) = get(format!("/api/v1/petitions/{elsewhere}"), Some(&central)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!masked["body"].as_str().unwrap().contains("0912345678"), "data engineers get masked data: {masked}");

    // The handling paths, every caller x every petition: the history and the actions answer
    // only within scope (404 elsewhere, the same as a wrong id); the inbox and the roll-up
    // refuse other units.
    let officer_97 = token_of(&server, "00097", "officer");
    for (bearer, visible) in [
        (&central, vec!["00004", "00097", "00976"]),
        (&hanoi, vec!["00004", "00097"]),
        (&commune, vec!["00004"]),
        (&officer_97, vec!["00097"]),
    ] {
        for (commune_code, petitions) in &ids {
            for id in petitions {
                let expected = if visible.contains(commune_code) { StatusCode::OK } else { StatusCode::NOT_FOUND };
                let (status, body) = get(format!("/api/v1/petitions/{id}/history"), Some(bearer)).await;
                assert_eq!(status, expected, "history of {commune_code} {body}");
            }
        }
    }
    let act = |id: &str, bearer: &str| {
        let request = client
            .post(server.url(&format!("/api/v1/petitions/{id}/actions")))
            .bearer_auth(bearer)
            .json(&json!({"action": "accept"}));
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(act(&ids["00976"][0], &commune).await, StatusCode::NOT_FOUND, "a guessed id from another province");
    assert_eq!(act(&ids["00097"][0], &commune).await, StatusCode::NOT_FOUND, "a neighbouring commune");
    assert_eq!(act(&ids["00004"][0], &central).await, StatusCode::FORBIDDEN, "data engineers do not handle");
    assert_eq!(act(&ids["00004"][1], &commune).await, StatusCode::OK);
    for path in ["/api/v1/inbox?unit=00097", "/api/v1/inbox?unit=01", "/api/v1/handling/performance?unit=79"] {
        assert_eq!(get(path.to_owned(), Some(&commune)).await.0, StatusCode::FORBIDDEN, "{path}");
    }
    let (status, inbox) = get("/api/v1/inbox".to_owned(), Some(&commune)).await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<&str> =
        inbox["items"].as_array().unwrap().iter().map(|i| i["petition_id"].as_str().unwrap()).collect();
    assert_eq!(listed.len(), 2, "{inbox}");
    assert!(listed.iter().all(|id| ids["00004"].iter().any(|own| own == id)), "{inbox}");
    for table in ["petition_events", "petition_status"] {
        let result =
            sql(&format!("SELECT count(*) AS n FROM {table} WHERE commune_code <> '00004' OR 1 = 1"), &officer_97)
                .await;
        assert_eq!(result["rows"][0]["n"], 0, "{table}: {result}");
    }

    // SQL: the view holds only the caller's rows, however the query is written.
    for (bearer, expected) in [(&central, 6), (&hanoi, 4), (&commune, 2)] {
        let result = sql("SELECT count(*) AS n FROM petitions", bearer).await;
        assert_eq!(result["rows"][0]["n"], expected, "{result}");
    }
    let sneaky = sql("SELECT count(*) AS n FROM petitions WHERE commune_code = '00976' OR 1 = 1", &commune).await;
    assert_eq!(sneaky["rows"][0]["n"], 2, "{sneaky}");

    // Summaries: a province's leader reads that province; a commune has no summary of others.
    let (status, summary) = get("/api/v1/summaries/weekly".to_owned(), Some(&hanoi)).await;
    assert_eq!((status, summary["province_code"].as_str()), (StatusCode::OK, Some("01")), "{summary}");
    assert_eq!(get("/api/v1/summaries/weekly?province=08".to_owned(), Some(&hanoi)).await.0, StatusCode::FORBIDDEN);
    // The petitions were sent this week, still in progress: named, since the summary reads the
    // last week that has ended by default.
    let this_week = voxpop_queries::summary::IsoWeek::of(chrono::Utc::now()).label();
    let (status, summary) = get(format!("/api/v1/summaries/weekly?week={this_week}"), Some(&commune)).await;
    assert_eq!((status, summary["commune_code"].as_str()), (StatusCode::OK, Some("00004")), "{summary}");
    assert_eq!(summary["total"], 2, "only the commune's petitions: {summary}");
    assert_eq!(get("/api/v1/summaries/weekly?commune=00976".to_owned(), Some(&commune)).await.0, StatusCode::FORBIDDEN);
    // Another province's commune is outside a province's unit (403, not a 400 about the pair), and
    // a commune's pre-2025 code is the commune it became.
    assert_eq!(get("/api/v1/summaries/weekly?commune=26041".to_owned(), Some(&hanoi)).await.0, StatusCode::FORBIDDEN);
    let (status, old_code) = get("/api/v1/summaries/weekly?commune=00013".to_owned(), Some(&commune)).await;
    assert_eq!(status, StatusCode::OK, "{old_code}");
    let (status, unknown) = get("/api/v1/summaries/weekly?commune=99999".to_owned(), Some(&hanoi)).await;
    assert_eq!(
        (status, unknown["errors"][0]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("commune")),
        "{unknown}"
    );

    // Reports: a unit reports for itself and the units under it, and only with its token.
    let report = |unit: &str| json!({"unit": unit, "week": "2025-W38", "values": {"meetings_held": 1}});
    let response = client.post(server.url("/api/v1/reports")).json(&report("00004")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response =
        client.post(server.url("/api/v1/reports")).bearer_auth(&commune).json(&report("00976")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "another unit's report, as for registers");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["errors"][0]["code"], "out_of_scope", "{problem}");
    let response =
        client.post(server.url("/api/v1/reports")).bearer_auth(&commune).json(&report("00004")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    // Exports: the package holds the caller's rows only.
    let job: Value = client
        .post(server.url("/api/v1/exports"))
        .bearer_auth(&commune)
        .json(&json!({"dataset": "petitions", "format": "csv"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let status_url = job["status_url"].as_str().unwrap().to_owned();
    let mut status = Value::Null;
    for _ in 0..100 {
        status = get(status_url.clone(), Some(&commune)).await.1;
        if status["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!((status["status"].as_str(), status["rows_written"].as_u64()), (Some("done"), Some(2)), "{status}");
    // Another caller, even above the owner, cannot read the job or its files.
    assert_eq!(get(status_url.clone(), Some(&hanoi)).await.0, StatusCode::NOT_FOUND);
    let file = status["datapackage_url"].as_str().unwrap().to_owned();
    assert_eq!(get(file.clone(), Some(&central)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(file, Some(&commune)).await.0, StatusCode::OK);
}

/// A Flight SQL ticket is the result of one caller's statement: fetched without a token, or
/// with another token, it is not found, and it stays for the caller that ran it.
#[tokio::test(flavor = "multi_thread")]
async fn a_flight_ticket_is_good_only_for_the_token_that_ran_its_statement() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let leader = token(&data_dir, "01", "leader");
    let officer = token(&data_dir, "01", "officer");
    let port = voxpop_tests::server::free_port();
    let address = format!("127.0.0.1:{port}");
    let server = Server::start_with(&data_dir, None, &["--flight", &address]).await;
    let petition =
        json!({"title": "Đường hỏng", "body": "Liên hệ 0912345678. Dữ liệu tổng hợp.", "commune_code": "00004"});
    server.submit(&petition).await;
    for _ in 0..100 {
        if !server.lake_ids().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fetch = |other: &str| {
        let output = std::process::Command::new(voxpop_tests::paths::python())
            .arg(voxpop_tests::paths::py_script("flight_ticket.py"))
            .arg(format!("grpc://{address}"))
            .args([leader.as_str(), other, "SELECT title, contact_phone FROM petitions"])
            .output()
            .expect("run python (adbc-driver-flightsql, installed by scripts/test.sh)");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    for other in [officer.as_str(), "-"] {
        let report = fetch(other);
        let refused = report["other"].as_str().unwrap_or_default();
        assert!(refused.contains("no result under this ticket") || refused.contains("token"), "{report}");
        assert_eq!(report["owner"], 1, "{report}");
    }
}

/// A petition transferred to another unit is read by id by the unit that handles it now, as on
/// its inbox and history; a unit that neither holds nor handles it still gets a 404.
#[tokio::test(flavor = "multi_thread")]
async fn the_unit_handling_a_transferred_petition_reads_it_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let commune = token(&data_dir, "00004", "officer");
    let dong_nai = token(&data_dir, "75", "officer");
    let neighbour = token(&data_dir, "00097", "officer");
    let server = Server::start(&data_dir, None).await;
    let client = reqwest::Client::new();
    let petition =
        json!({"title": "Tranh chấp đất đai liên tỉnh", "body": "Dữ liệu tổng hợp.", "commune_code": "00004"});
    let id = server.submit(&petition).await;
    server.wait_written(1, Duration::from_secs(30)).await;
    let read = |bearer: &str| {
        let request = client.get(server.url(&format!("/api/v1/petitions/{id}"))).bearer_auth(bearer);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(read(&dong_nai).await, StatusCode::NOT_FOUND, "not theirs yet");
    let response = client
        .post(server.url(&format!("/api/v1/petitions/{id}/actions")))
        .bearer_auth(&commune)
        .json(&json!({"action": "transfer", "unit": "75", "note": "Thuộc thẩm quyền tỉnh Đồng Nai"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    assert_eq!(read(&dong_nai).await, StatusCode::OK, "handled there now");
    assert_eq!(read(&commune).await, StatusCode::OK, "still placed here");
    assert_eq!(read(&neighbour).await, StatusCode::NOT_FOUND);
}

//! Handling a petition end to end: staff act within their authority, invalid transitions are 409
//! with the allowed actions, the citizen follows, rates and reopens with the tracking code and
//! secret, the lake's `petition_events` and `petition_status` follow the log (read back with
//! pyarrow), the inbox puts overdue petitions first, the roll-up counts on-time, satisfaction and
//! reopen rates, and a restart after SIGKILL keeps every status.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use voxpop_tests::paths::{py_dir, python};
use voxpop_tests::problem::assert_unprocessable;
use voxpop_tests::problem::problem_of;
use voxpop_tests::server::Server;
use voxpop_tests::server::create_token as token;

/// Rows of a Delta table, read by pyarrow from the files the table's log lists.
fn delta_rows(table: &std::path::Path) -> Vec<Value> {
    let script = format!(
        "import json, sys, os\nsys.path.insert(0, {py:?})\nimport read_delta\nimport pyarrow.parquet as pq\n\
         files, _ = read_delta.active_files({table:?})\nrows = []\n\
         for path in files:\n    rows += pq.read_table(os.path.join({table:?}, path)).to_pylist()\n\
         print(json.dumps(rows, default=str))\n",
        py = py_dir(),
        table = table.to_str().unwrap(),
    );
    let output = Command::new(python()).args(["-c", &script]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

struct Api<'a> {
    server: &'a Server,
    client: reqwest::Client,
}

impl Api<'_> {
    async fn act(&self, id: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.server.url(&format!("/api/v1/petitions/{id}/actions")))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut request = self.client.get(self.server.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn submit(&self, petition: Value) -> Value {
        let response = self.client.post(self.server.url("/api/v1/petitions")).json(&petition).send().await.unwrap();
        assert!(response.status().is_success());
        response.json().await.unwrap()
    }

    /// Submits `petition` and returns its id, tracking code and the citizen's secret.
    async fn submit_tracked(&self, petition: Value) -> (String, String, String) {
        let receipt = self.submit(petition).await;
        let field = |name: &str| receipt[name].as_str().unwrap_or_else(|| panic!("no {name} in {receipt}")).to_owned();
        (field("id"), field("tracking_code"), field("secret"))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn handling_follows_the_state_machine_and_the_citizen_closes_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let commune = token(&data_dir, "00004", "officer");
    let neighbour = token(&data_dir, "00097", "officer");
    let province = token(&data_dir, "01", "officer");
    let leader = token(&data_dir, "01", "leader");
    let engineer = token(&data_dir, "00", "data_engineer");
    // A webhook receiver: every notification POSTed to it is kept.
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut server = Server::start_with(&data_dir, None, &["--webhook", &hook]).await;
    let api = Api { server: &server, client: reqwest::Client::new() };

    let (id, code, secret) = api
        .submit_tracked(json!({"title": "Bãi rác tự phát", "body": "Bãi rác tự phát gây mùi hôi cạnh trường học.",
            "commune_code": "00004"}))
        .await;
    // An imported petition received long ago: past its acceptance deadline.
    let old = api
        .submit(json!({"title": "Đường hỏng", "body": "Đường liên thôn hỏng nặng từ lâu.", "commune_code": "00004",
            "channel": "import", "external_id": "legacy-1", "submitted_at": "2026-01-05T02:00:00Z"}))
        .await;
    let old_id = old["id"].as_str().unwrap().to_owned();
    server.wait_written(2, Duration::from_secs(30)).await;

    // Outside the unit: 404 as for a wrong id; a data engineer may not act at all.
    let accept = json!({"action": "accept"});
    assert_eq!(api.act(&id, &neighbour, accept.clone()).await.0, StatusCode::NOT_FOUND);
    assert_eq!(api.act(&id, &engineer, accept.clone()).await.0, StatusCode::FORBIDDEN);
    // Answering a petition not accepted yet: 409 with what is allowed.
    let (status, problem) = api.act(&id, &commune, json!({"action": "answer", "answer": "x"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["allowed"], json!(["accept", "decline", "transfer", "escalate"]));
    assert_eq!(problem["state"], "received");
    // A bad request names its field.
    let (status, problem) = api.act(&id, &commune, json!({"action": "decline"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "note", "{problem}");

    for step in [json!({"action": "accept"}), json!({"action": "start"})] {
        let (status, body) = api.act(&id, &commune, step).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) =
        api.act(&id, &commune, json!({"action": "answer", "answer": "Đã thu gom và rào chắn bãi rác."})).await;
    assert_eq!((status, body["status"]["state"].as_str()), (StatusCode::OK, Some("answered")), "{body}");
    assert_eq!(body["status"]["answered_on_time"], true);

    // The citizen: nothing without the right secret; with it, the answer; then a rating and a reopen.
    let track = format!("/api/v1/track/{code}");
    assert_eq!(api.get(&track, None, &[("x-tracking-secret", "0000000000")]).await.0, StatusCode::NOT_FOUND);
    let (status, view) = api.get(&track, None, &[("x-tracking-secret", &secret)]).await;
    assert_eq!((status, view["state"].as_str()), (StatusCode::OK, Some("answered")), "{view}");
    assert_eq!(view["answer"], "Đã thu gom và rào chắn bãi rác.");
    assert!(view.get("contact").is_none() && !view.to_string().contains(&commune[..10]));
    let citizen = |body: Value| {
        let request = api.client.post(server.url(&format!("{track}/actions"))).json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(
        citizen(json!({"secret": secret, "action": "rate", "rating": 9})).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(citizen(json!({"secret": secret, "action": "rate", "rating": 2})).await.0, StatusCode::OK);
    let (status, view) = citizen(json!({"secret": secret, "action": "reopen", "note": "Rác vẫn còn"})).await;
    assert_eq!((status, view["state"].as_str()), (StatusCode::OK, Some("reopened")), "{view}");
    // Staff cannot rate in the citizen's place.
    assert_eq!(api.act(&id, &commune, json!({"action": "rate", "rating": 5})).await.0, StatusCode::FORBIDDEN);

    // Escalated to the province: the commune can no longer act; the province can.
    let (status, body) = api.act(&id, &commune, json!({"action": "escalate", "note": "Vượt thẩm quyền cấp xã"})).await;
    assert_eq!((status, body["status"]["unit"].as_str()), (StatusCode::OK, Some("01")), "{body}");
    assert_eq!(api.act(&id, &commune, accept.clone()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(api.act(&id, &province, accept.clone()).await.0, StatusCode::OK);

    // The inbox: the commune's overdue imported petition first; the escalated one is the province's.
    let (status, inbox) = api.get("/api/v1/inbox", Some(&commune), &[]).await;
    assert_eq!(status, StatusCode::OK, "{inbox}");
    let items = inbox["items"].as_array().unwrap();
    assert_eq!(items[0]["petition_id"], old_id.as_str(), "{inbox}");
    assert_eq!(items[0]["overdue"], true);
    assert!(items.iter().all(|item| item["petition_id"] != id.as_str()));
    let (_, inbox) = api.get("/api/v1/inbox?unit=01", Some(&province), &[]).await;
    assert!(inbox["items"].as_array().unwrap().iter().any(|item| item["petition_id"] == id.as_str()), "{inbox}");
    assert_eq!(api.get("/api/v1/inbox?unit=01", Some(&commune), &[]).await.0, StatusCode::FORBIDDEN);

    // The roll-up for Hà Nội: one answer, on time; rated 2 (not satisfied); reopened; one overdue.
    let (status, perf) = api.get("/api/v1/handling/performance?unit=01", Some(&leader), &[]).await;
    assert_eq!(status, StatusCode::OK, "{perf}");
    let unit = &perf["unit"];
    assert_eq!((unit["answered"].as_u64(), unit["on_time_rate"].as_f64()), (Some(1), Some(1.0)), "{perf}");
    assert_eq!((unit["mean_rating"].as_f64(), unit["satisfied_rate"].as_f64()), (Some(2.0), Some(0.0)));
    assert_eq!((unit["reopen_rate"].as_f64(), unit["overdue"].as_u64()), (Some(1.0), Some(1)), "{perf}");
    let child = perf["children"].as_array().unwrap().iter().find(|c| c["unit"] == "00004").expect("commune row");
    assert_eq!(child["overdue"].as_u64(), Some(1));

    // The lake follows the log: 7 events, and the status row says accepted at the province.
    let history = loop {
        let (_, history) = api.get(&format!("/api/v1/petitions/{id}/history"), Some(&province), &[]).await;
        if history["events"].as_array().is_some_and(|events| events.len() == 7) {
            break history;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let actions: Vec<&str> =
        history["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["accept", "start", "answer", "rate", "reopen", "escalate", "accept"]);
    assert_eq!(history["events"][5]["actor"]["unit"], "00004");
    let lake = data_dir.join("lake");
    let status_rows = loop {
        let rows = delta_rows(&lake.join("petition_status"));
        if rows.iter().any(|row| row["petition_id"] == id.as_str() && row["state"] == "accepted" && row["unit"] == "01")
        {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let row = status_rows.iter().find(|row| row["petition_id"] == id.as_str()).unwrap();
    assert_eq!((row["unit"].as_str(), row["reopen_count"].as_i64()), (Some("01"), Some(1)));
    assert_eq!(delta_rows(&lake.join("petition_events")).len(), 7);

    // Each event was notified to the webhook (at least once: deduplicated by id).
    let event_ids: std::collections::HashSet<String> =
        history["events"].as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap().to_owned()).collect();
    let notified = loop {
        let ids: std::collections::HashSet<String> =
            received.lock().unwrap().iter().filter_map(|n| n["notification_id"].as_str().map(str::to_owned)).collect();
        if ids.len() >= event_ids.len() {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(notified, event_ids);
    let last = received.lock().unwrap().iter().find(|n| n["event"] == "escalate").cloned().unwrap();
    assert_eq!((last["state"].as_str(), last["unit"].as_str()), (Some("received"), Some("01")), "{last}");
    assert!(last["message_vi"].as_str().unwrap().contains(&code), "{last}");
    let (status, board) = api.get("/api/v1/notifications/deliveries", Some(&engineer), &[]).await;
    assert_eq!(status, StatusCode::OK, "{board}");
    assert_eq!(board["webhooks"][0]["delivered"].as_u64(), Some(7), "{board}");

    // SQL sees the handling tables within scope only, answers masked for a data engineer.
    let sql = |query: &str, bearer: &str| {
        let request = api.client.post(server.url("/api/v1/sql")).bearer_auth(bearer).json(&json!({"sql": query}));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let count = "SELECT count(*) AS n FROM petition_events";
    assert_eq!(sql(count, &leader).await["rows"][0]["n"], 7);
    assert_eq!(sql(count, &neighbour).await["rows"][0]["n"], 0);
    let status = sql("SELECT state, unit FROM petition_status", &engineer).await;
    assert!(
        status["rows"].as_array().unwrap().iter().any(|r| r["state"] == "accepted" && r["unit"] == "01"),
        "{status}"
    );

    // The index follows: searching by state finds the petition where it stands now.
    let found = loop {
        let (_, found) = api.get("/api/v1/search?q=&state=accepted", Some(&leader), &[]).await;
        if found["total"] == 1 {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (found["hits"][0]["id"].as_str(), found["hits"][0]["state"].as_str()),
        (Some(id.as_str()), Some("accepted"))
    );
    let (_, received) = api.get("/api/v1/search?q=&state=received", Some(&leader), &[]).await;
    assert_eq!(received["hits"][0]["id"], old_id.as_str(), "{received}");
    let (status, problem) = api.get("/api/v1/search?q=&state=lost", Some(&leader), &[]).await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("state")));

    // Open311 shows the handling state: open, with the province's committee and the deadline.
    let (status, request) = api.get(&format!("/open311/v2/requests/{id}.json"), None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{request}");
    let request = &request[0];
    assert_eq!(request["status"], "open", "{request}");
    assert_eq!(request["agency_responsible"], "Ủy ban MTTQ Việt Nam thành phố Hà Nội", "{request}");
    assert!(request["expected_datetime"].is_string() && request["status_notes"] == "Đã thụ lý", "{request}");

    // SIGKILL and restart: the statuses are rebuilt from the lake and the log.
    server.kill9();
    server.restart().await;
    let api = Api { server: &server, client: reqwest::Client::new() };
    let (status, body) = api.act(&id, &province, json!({"action": "answer", "answer": "Tỉnh đã chỉ đạo xử lý."})).await;
    assert_eq!(status, StatusCode::CONFLICT, "accepted, not started: {body}");
    let (status, body) = api.act(&id, &province, json!({"action": "start"})).await;
    assert_eq!((status, body["status"]["state"].as_str()), (StatusCode::OK, Some("in_progress")), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_public_intake_answers_429_with_retry_after_past_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), None, &["--intake-per-minute", "6"]).await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for n in 0..8 {
        let response = client
            .post(server.url("/api/v1/petitions"))
            .json(&json!({"title": format!("Kiến nghị {n}"), "body": "Nội dung.", "commune_code": "00004"}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        statuses.push(status.as_u16());
        if status == StatusCode::TOO_MANY_REQUESTS {
            retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["status"], 429);
        }
    }
    assert_eq!(&statuses[..5], &[201; 5], "a burst of 5 passes: {statuses:?}");
    assert!(statuses[5..].contains(&429), "{statuses:?}");
    let seconds: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=10).contains(&seconds), "{seconds}");
}

#[tokio::test(flavor = "multi_thread")]
async fn handling_names_the_bad_unit_parameter_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(data_dir.join("reference")).unwrap();
    std::fs::write(data_dir.join("reference/villages.csv"), "code,name\n00004-001,Tổ dân phố số 1\n").unwrap();
    let commune = token(&data_dir, "00004", "officer");
    let leader = token(&data_dir, "01", "leader");
    let server = Server::start(&data_dir, None).await;
    let api = Api { server: &server, client: reqwest::Client::new() };
    let receipt = api
        .submit(json!({"title": "Đèn đường hỏng", "body": "Đèn đường hỏng cả tháng nay.", "commune_code": "00004"}))
        .await;
    let id = receipt["id"].as_str().unwrap().to_owned();
    server.wait_written(1, Duration::from_secs(30)).await;
    let act = |body: Value| {
        api.client.post(server.url(&format!("/api/v1/petitions/{id}/actions"))).bearer_auth(&commune).json(&body).send()
    };

    // Handed to a village the register does not hold: 422 naming `unit`; a registered one is fine.
    let (status, content_type, problem) =
        problem_of(act(json!({"action": "transfer", "unit": "00004-999", "note": "x"})).await.unwrap()).await;
    assert_eq!((status, content_type.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "application/problem+json"));
    assert_eq!(problem["errors"][0]["field"], "unit", "{problem}");
    // Every problem of the route names its field: the action the state does not allow, a wrong type.
    let (status, _, problem) = problem_of(act(json!({"action": "answer", "answer": "x"})).await.unwrap()).await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (StatusCode::CONFLICT, Some("action")), "{problem}");
    let (status, _, problem) = problem_of(act(json!({"action": "extend", "days": "5"})).await.unwrap()).await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("days")));
    let (status, body) = api.act(&id, &commune, json!({"action": "accept"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api.act(&id, &commune, json!({"action": "assign", "unit": "00004-001"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Past the body limit: 413.
    let huge = json!({"action": "accept", "note": "x".repeat(300 * 1024)});
    let (status, content_type, problem) = problem_of(act(huge).await.unwrap()).await;
    assert_eq!((status, content_type.as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "application/problem+json"));
    assert!(problem["errors"].is_array(), "{problem}");

    for (path, field) in [
        ("/api/v1/inbox?unit=99", "unit"),
        ("/api/v1/inbox?unit=abc", "unit"),
        ("/api/v1/inbox?unit=00004-999", "unit"),
        ("/api/v1/inbox?limit=-1", "limit"),
        ("/api/v1/inbox?limit=abc", "limit"),
        ("/api/v1/inbox?limit=", "limit"),
        ("/api/v1/inbox?overdue=maybe", "overdue"),
        ("/api/v1/inbox?unit=00&unit=01", "unit"),
        ("/api/v1/handling/performance?unit=00004-", "unit"),
        ("/api/v1/handling/performance?unit=99", "unit"),
    ] {
        let response = api.client.get(server.url(path)).bearer_auth(&leader).send().await.unwrap();
        let (status, content_type, problem) = problem_of(response).await;
        assert_eq!((status, content_type.as_str()), (StatusCode::BAD_REQUEST, "application/problem+json"), "{path}");
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
    }
    let (status, inbox) = api.get("/api/v1/inbox?overdue=1&limit=5", Some(&commune), &[]).await;
    assert_eq!(status, StatusCode::OK, "{inbox}");
    assert_eq!(api.get("/api/v1/inbox?unit=01", Some(&commune), &[]).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn tracking_names_unknown_repeated_and_undecodable_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None).await;
    let api = Api { server: &server, client: reqwest::Client::new() };
    let receipt = api
        .submit(json!({"title": "Cống tắc", "body": "Cống thoát nước bị tắc sau mưa lớn.", "commune_code": "00004"}))
        .await;
    let (code, secret) = (receipt["tracking_code"].as_str().unwrap(), receipt["secret"].as_str().unwrap());
    server.wait_written(1, Duration::from_secs(30)).await;
    let track = format!("/api/v1/track/{code}");

    for (query, field, code) in [
        ("foo=1".to_owned(), "foo", "unknown_parameter"),
        (format!("secret={secret}&secret=b"), "secret", "duplicate_parameter"),
        ("secret=%FF".to_owned(), "secret", "invalid"),
    ] {
        let response = api.client.get(server.url(&format!("{track}?{query}"))).send().await.unwrap();
        let (status, content_type, problem) = problem_of(response).await;
        assert_eq!(
            (status, content_type.as_str()),
            (StatusCode::BAD_REQUEST, "application/problem+json"),
            "{query}: {problem}"
        );
        assert_eq!(
            (problem["errors"][0]["field"].as_str(), problem["errors"][0]["code"].as_str()),
            (Some(field), Some(code)),
            "{query}: {problem}"
        );
    }
    // The secret in the query still opens the petition; a wrong one is the usual 404.
    let (status, view) = api.get(&format!("{track}?secret={secret}"), None, &[]).await;
    assert_eq!((status, view["tracking_code"].as_str()), (StatusCode::OK, Some(code)), "{view}");
    assert_eq!(api.get(&format!("{track}?secret=0000000000"), None, &[]).await.0, StatusCode::NOT_FOUND);
}

/// A title with a phone and an ID number, as citizens write them (synthetic numbers).
const PERSONAL_TITLE: &str = "Khiếu nại gọi 0912345678 CCCD 001203004567";
/// The same title as a reader without access to personal data sees it.
const MASKED_TITLE: &str = "Khiếu nại gọi *******678 CCCD *********567";

/// Every string of a JSON value, at any depth.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Object(members) => members.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// Asserts that no string of `body` holds the synthetic numbers in clear.
fn assert_no_numbers_in_clear(body: &Value) {
    for text in strings(body) {
        assert!(!text.contains("0912345678") && !text.contains("001203004567"), "in clear: {text:?} in {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn handling_history_and_inbox_mask_personal_data_for_a_data_engineer_not_a_leader() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let officer = token(&data_dir, "00004", "officer");
    let leader = token(&data_dir, "01", "leader");
    let engineer = token(&data_dir, "00", "data_engineer");
    let server = Server::start(&data_dir, None).await;
    let api = Api { server: &server, client: reqwest::Client::new() };
    let (id, code, secret) = api
        .submit_tracked(json!({"title": PERSONAL_TITLE, "body": "Xin gọi lại số 0912345678 để xác minh.",
            "commune_code": "00004"}))
        .await;
    server.wait_written(1, Duration::from_secs(30)).await;
    for step in [
        json!({"action": "accept", "note": "Đã gọi 0912345678"}),
        json!({"action": "start"}),
        json!({"action": "answer", "answer": "Liên hệ 0912345678, mang CCCD 001203004567."}),
    ] {
        let (status, body) = api.act(&id, &officer, step).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // A data engineer reads the timeline and the inbox with every number masked.
    let history = format!("/api/v1/petitions/{id}/history");
    let (status, body) = api.get(&history, Some(&engineer), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"]["title"], MASKED_TITLE, "{body}");
    assert_eq!(body["status"]["answer"], "Liên hệ *******678, mang CCCD *********567.", "{body}");
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 3, "{body}");
    assert!(events.iter().all(|event| event["petition"]["title"] == MASKED_TITLE), "{body}");
    assert_eq!(events[0]["note"], "Đã gọi *******678", "{body}");
    assert_no_numbers_in_clear(&body);
    let (status, inbox) = api.get("/api/v1/inbox?state=answered&unit=00004", Some(&engineer), &[]).await;
    assert_eq!(status, StatusCode::OK, "{inbox}");
    let item = inbox["items"].as_array().unwrap().iter().find(|item| item["petition_id"] == id.as_str()).unwrap();
    assert_eq!(item["title"], MASKED_TITLE, "{inbox}");
    assert_no_numbers_in_clear(&inbox);

    // A leader of the province sees them in clear, as the officer who acted did.
    let (status, body) = api.get(&history, Some(&leader), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"]["title"], PERSONAL_TITLE, "{body}");
    assert_eq!(body["events"][0]["note"], "Đã gọi 0912345678", "{body}");
    assert_eq!(body["events"][2]["answer"], "Liên hệ 0912345678, mang CCCD 001203004567.", "{body}");
    let (_, inbox) = api.get("/api/v1/inbox?state=answered&unit=00004", Some(&leader), &[]).await;
    let item = inbox["items"].as_array().unwrap().iter().find(|item| item["petition_id"] == id.as_str()).unwrap();
    assert_eq!(
        (item["title"].as_str(), item["answer"].as_str()),
        (Some(PERSONAL_TITLE), body["status"]["answer"].as_str())
    );

    // The citizen who proves the secret sees their own petition, and the answer, in clear.
    let (status, view) = api.get(&format!("/api/v1/track/{code}"), None, &[("x-tracking-secret", &secret)]).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (view["title"].as_str(), view["answer"].as_str()),
        (Some(PERSONAL_TITLE), Some("Liên hệ 0912345678, mang CCCD 001203004567.")),
        "{view}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn handling_history_and_inbox_mask_personal_data_in_open_mode() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None).await;
    let api = Api { server: &server, client: reqwest::Client::new() };
    let receipt =
        api.submit(json!({"title": PERSONAL_TITLE, "body": "Nội dung kiến nghị.", "commune_code": "00004"})).await;
    let id = receipt["id"].as_str().unwrap().to_owned();
    server.wait_written(1, Duration::from_secs(30)).await;

    let (status, body) = api.get(&format!("/api/v1/petitions/{id}/history"), None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"]["title"], MASKED_TITLE, "{body}");
    assert_no_numbers_in_clear(&body);
    let (status, inbox) = api.get("/api/v1/inbox?state=received", None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{inbox}");
    let item = inbox["items"].as_array().unwrap().iter().find(|item| item["petition_id"] == id.as_str());
    assert_eq!(item.map(|item| item["title"].clone()), Some(json!(MASKED_TITLE)), "{inbox}");
    assert_no_numbers_in_clear(&inbox);
}

#[tokio::test(flavor = "multi_thread")]
async fn handling_action_bodies_are_read_strictly_naming_each_field() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let officer = token(&data_dir, "00004", "officer");
    let server = Server::start(&data_dir, None).await;
    let api = Api { server: &server, client: reqwest::Client::new() };
    let (id, code, secret) = api
        .submit_tracked(json!({"title": "Ngập úng", "body": "Ngõ ngập sau mỗi trận mưa.", "commune_code": "00004"}))
        .await;
    server.wait_written(1, Duration::from_secs(30)).await;
    let staff = |body: Value| {
        let request =
            api.client.post(server.url(&format!("/api/v1/petitions/{id}/actions"))).bearer_auth(&officer).json(&body);
        async move { problem_of(request.send().await.unwrap()).await }
    };
    let citizen = |body: Value| {
        let request = api.client.post(server.url(&format!("/api/v1/track/{code}/actions"))).json(&body);
        async move { problem_of(request.send().await.unwrap()).await }
    };
    let fields_and_codes = |problem: &Value| -> Vec<(String, String)> {
        problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["field"].as_str().unwrap().to_owned(), e["code"].as_str().unwrap().to_owned()))
            .collect()
    };
    let expect = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs.iter().map(|(field, code)| (field.to_string(), code.to_string())).collect()
    };

    for (body, expected) in [
        (json!({"action": "decline", "note": "\u{200b}\u{200b}"}), expect(&[("note", "empty")])),
        (json!({"action": "accept", "note": "\u{200b}"}), expect(&[("note", "empty")])),
        (json!({"action": "decline", "note": "Lý do\u{0}"}), expect(&[("note", "control_character")])),
        (json!({"action": "decline", "note": "\u{1b}[31mLý do"}), expect(&[("note", "control_character")])),
        (json!({"action": " extend "}), expect(&[("action", "invalid")])),
        (
            json!({"action": "accept", "unit": "01", "days": 5, "answer": "zzz", "rating": 7}),
            expect(&[
                ("answer", "not_taken"),
                ("unit", "not_taken"),
                ("days", "not_taken"),
                ("rating", "not_taken"),
                ("rating", "out_of_range"),
            ]),
        ),
    ] {
        let (status, content_type, problem) = staff(body.clone()).await;
        assert_unprocessable(status, &content_type, &problem);
        assert_eq!(fields_and_codes(&problem), expected, "{body}: {problem}");
    }
    // The citizen's route reads its body as strictly: the rating's range, the note's text, the name.
    for (body, expected) in [
        (json!({"secret": secret, "action": "rate", "rating": 7}), expect(&[("rating", "out_of_range")])),
        (json!({"secret": secret, "action": "reopen", "note": "\u{200b}"}), expect(&[("note", "empty")])),
        (json!({"secret": secret, "action": "reopen", "note": "x", "rating": 3}), expect(&[("rating", "not_taken")])),
        (json!({"secret": secret, "action": " rate ", "rating": 3}), expect(&[("action", "invalid")])),
    ] {
        let (status, content_type, problem) = citizen(body.clone()).await;
        assert_unprocessable(status, &content_type, &problem);
        assert_eq!(fields_and_codes(&problem), expected, "{body}: {problem}");
    }

    // Nothing refused was recorded: the petition is still received and accepts now.
    let (status, body) = api.act(&id, &officer, json!({"action": "accept"})).await;
    assert_eq!((status, body["event"]["from_state"].as_str()), (StatusCode::OK, Some("received")), "{body}");
    // Assigning it to the unit that already handles it is refused, naming `unit`.
    let (status, content_type, problem) = staff(json!({"action": "assign", "unit": "00004"})).await;
    assert_unprocessable(status, &content_type, &problem);
    assert_eq!(fields_and_codes(&problem), expect(&[("unit", "already_handling")]), "{problem}");
}

#[tokio::test(flavor = "multi_thread")]
async fn handling_tracking_takes_one_secret_refuses_null_members_and_masks_staff_notes() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let officer = token(&data_dir, "00004", "officer");
    let server = Server::start(&data_dir, None).await;
    let api = Api { server: &server, client: reqwest::Client::new() };
    // Synthetic numbers and addresses: the citizen's own in the title, third parties' in the notes.
    let (id, code, secret) = api
        .submit_tracked(json!({"title": "Đèn đường hỏng, gọi tôi 0912345678", "body": "Đèn đường hỏng cả tháng nay.",
            "commune_code": "00004"}))
        .await;
    server.wait_written(1, Duration::from_secs(30)).await;
    let staff = |body: Value| {
        let request =
            api.client.post(server.url(&format!("/api/v1/petitions/{id}/actions"))).bearer_auth(&officer).json(&body);
        async move { problem_of(request.send().await.unwrap()).await }
    };
    assert_eq!(api.act(&id, &officer, json!({"action": "accept"})).await.0, StatusCode::OK);

    // A `null` member the action does not take is refused as any other, naming it.
    let (status, content_type, problem) =
        staff(json!({"action": "extend", "note": "x", "days": 1, "rating": null})).await;
    assert_unprocessable(status, &content_type, &problem);
    assert_eq!(problem["errors"][0]["field"], "rating", "{problem}");
    assert_eq!(problem["errors"][0]["code"], "not_taken", "{problem}");
    // Numbers beyond their type name the range the member takes, not the type's.
    let (status, content_type, problem) =
        staff(json!({"action": "extend", "note": "x", "days": 4_294_967_296u64})).await;
    assert_unprocessable(status, &content_type, &problem);
    assert_eq!(problem["errors"][0]["field"], "days", "{problem}");
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("from 1 to ") && !message.contains("4294967295"), "{problem}");
    let rate = api.client.post(server.url(&format!("/api/v1/track/{code}/actions")));
    let (status, content_type, problem) =
        problem_of(rate.json(&json!({"secret": secret, "action": "rate", "rating": 256})).send().await.unwrap()).await;
    assert_unprocessable(status, &content_type, &problem);
    assert_eq!(problem["errors"][0]["field"], "rating", "{problem}");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("from 1 to 5"), "{problem}");

    // Staff notes holding others' data, then an answer with the office's number for the citizen.
    let note = "Chờ ý kiến hộ bên cạnh (0901112223), cán bộ địa chính cb.xa@gmail.com, CCCD 079123456789";
    for step in [
        json!({"action": "extend", "days": 2, "note": note}),
        json!({"action": "start"}),
        json!({"action": "answer", "answer": "Đã thay bóng đèn; cần hỗ trợ xin gọi 02438123456."}),
    ] {
        let (status, body) = api.act(&id, &officer, step.clone()).await;
        assert_eq!(status, StatusCode::OK, "{step}: {body}");
    }
    let track = format!("/api/v1/track/{code}");
    let (status, view) = api.get(&track, None, &[("x-tracking-secret", &secret)]).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let shown = view.to_string();
    for third_party in ["0901112223", "cb.xa@gmail.com", "079123456789"] {
        assert!(!shown.contains(third_party), "{third_party} shown to the citizen: {view}");
    }
    let extension = view["timeline"].as_array().unwrap().iter().find(|e| e["action"] == "extend").cloned().unwrap();
    assert!(extension["note"].as_str().unwrap().starts_with("Chờ ý kiến hộ bên cạnh ("), "{view}");
    assert_eq!(view["title"], "Đèn đường hỏng, gọi tôi 0912345678", "the citizen's own number: {view}");
    assert_eq!(view["answer"], "Đã thay bóng đèn; cần hỗ trợ xin gọi 02438123456.", "{view}");

    // Two different secrets are a 400 naming `secret`, whichever wins otherwise; the same one twice
    // (as typed: case and dashes aside) is one secret.
    let other = if secret.starts_with('A') { "BBBBBBBBBB" } else { "AAAAAAAAAA" };
    let get = |path: String, header: Option<&str>| {
        let mut request = api.client.get(server.url(&path));
        if let Some(value) = header {
            request = request.header("x-tracking-secret", value);
        }
        async move { problem_of(request.send().await.unwrap()).await }
    };
    let bad_request = (StatusCode::BAD_REQUEST, "application/problem+json".to_owned());
    for (path, header) in [
        (format!("{track}?secret={other}"), Some(secret.as_str())),
        (format!("{track}?secret={secret}"), Some(other)),
        (format!("{track}?secret={secret}&secret={secret}"), None),
    ] {
        let (status, content_type, problem) = get(path.clone(), header).await;
        assert_eq!((status, content_type), bad_request, "{path} {header:?}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "secret", "{path}: {problem}");
    }
    let (status, _, view) = get(format!("{track}?secret={}", secret.to_lowercase()), Some(&secret)).await;
    assert_eq!((status, view["state"].as_str()), (StatusCode::OK, Some("answered")), "{view}");
    // The citizen's actions: a header and a body that disagree are refused the same way.
    let request = api
        .client
        .post(server.url(&format!("{track}/actions")))
        .header("x-tracking-secret", other)
        .json(&json!({"secret": secret, "action": "rate", "rating": 4}));
    let (status, content_type, problem) = problem_of(request.send().await.unwrap()).await;
    assert_eq!((status, content_type), bad_request, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "secret", "{problem}");
    let (_, view) = api.get(&track, None, &[("x-tracking-secret", &secret)]).await;
    assert_eq!(view["rating"], Value::Null, "nothing refused was recorded: {view}");
}

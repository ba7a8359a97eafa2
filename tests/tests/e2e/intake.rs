//! Intake, lake and search through the real binary on the embedded log.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use voxpop_tests::problem::problem_fields;
use voxpop_tests::server::Server;

async fn post(server: &Server, body: impl Into<reqwest::Body>) -> (StatusCode, Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/petitions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap_or_default().to_owned());
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, content_type, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn petition_flows_from_intake_to_lake_and_search() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None).await;
    let petition = json!({
        "title": "Bồi thường đất đai khi giải phóng mặt bằng",
        "body": "Gia đình tôi bị thu hồi đất để làm đường nhưng giá bồi thường đất đai quá thấp. Đề nghị xem xét lại.",
        "commune_code": "00001",
        "channel": "mobile",
        "external_id": "app-42",
        "contact": {"name": "Trần Thị Hoà", "phone": "0912 345 678"},
        "lat": 21.04, "lon": 105.84
    });
    let (status, _, receipt) = post(&server, petition.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    assert_eq!(receipt["status"], "received");
    let id = receipt["id"].as_str().unwrap().to_owned();
    assert_eq!(receipt["tracking_code"].as_str().unwrap().len(), 14);

    // The same external id from the same channel is the same petition.
    let (status, _, again) = post(&server, petition.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], receipt["id"]);

    server.wait_written(1, Duration::from_secs(30)).await;
    let client = reqwest::Client::new();
    let found: Value =
        client.get(server.url(&format!("/api/v1/petitions/{id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(found["commune_code"], "00097", "old code 00001 maps to its 2025 commune: {found}");
    assert_eq!(found["original_unit_code"], "00001");
    assert_eq!(found["province_code"], "01");
    assert_eq!(found["language"], "vi");
    assert_eq!(found["schema_version"], 1);
    assert_eq!(found["contact"]["phone"], "**** *** 678", "personal data is masked on the public path");
    assert_eq!(found["contact"]["name"], "T. T. H.");

    // Without diacritics, and as a phrase.
    for q in ["dat dai", "\"giai phong mat bang\"", "đất đai", "boi thuong"] {
        let results: Value =
            client.get(server.url("/api/v1/search")).query(&[("q", q)]).send().await.unwrap().json().await.unwrap();
        assert_eq!(results["total"], 1, "query {q}: {results}");
        assert_eq!(results["hits"][0]["id"], id.as_str());
        assert_eq!(results["province_facets"][0]["province_code"], "01");
    }
    let none = server.get_json("/api/v1/search", &[("q", "dat dai"), ("province", "79")]).await;
    assert_eq!(none["total"], 0);
    // A commune filter by its pre-2025 code finds what intake filed under the 2025 commune.
    let by_old_code = server.get_json("/api/v1/search", &[("q", "dat dai"), ("commune", "00001")]).await;
    assert_eq!(by_old_code["total"], 1, "{by_old_code}");
    let missing =
        client.get(server.url("/api/v1/petitions/01900000-0000-7000-8000-000000000000")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_problem_naming_every_field_and_never_a_500() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None).await;
    let cases: Vec<(&str, Vec<u8>, StatusCode, Vec<&str>)> = vec![
        ("malformed JSON", b"{\"title\": ".to_vec(), StatusCode::BAD_REQUEST, vec![""]),
        ("not an object", b"[1, 2, 3]".to_vec(), StatusCode::BAD_REQUEST, vec![""]),
        ("invalid UTF-8", b"{\"title\": \"\xff\xfe\"}".to_vec(), StatusCode::BAD_REQUEST, vec![""]),
        ("missing fields", b"{}".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, vec!["title", "body", "commune_code"]),
        (
            "wrong types",
            json!({"title": 5, "body": ["x"], "commune_code": 79, "lat": "north", "lon": 105.0, "contact": "me"})
                .to_string()
                .into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["title", "body", "commune_code", "lat", "contact"],
        ),
        (
            "unknown commune and future date",
            json!({"title": "t", "body": "b", "commune_code": "99999", "submitted_at": "2999-01-01T00:00:00Z"})
                .to_string()
                .into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["commune_code", "submitted_at"],
        ),
        (
            "body over the limit",
            json!({"title": "t", "body": "đ".repeat(20_001), "commune_code": "00004"}).to_string().into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["body"],
        ),
        (
            "an import dated before the earliest accepted date",
            json!({"title": "t", "body": "b", "commune_code": "00004", "channel": "import", "external_id": "x-1",
                "submitted_at": "0001-01-01T00:00:00Z"})
            .to_string()
            .into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["submitted_at"],
        ),
        (
            "a title that shows nothing and a body with a NUL",
            json!({"title": "\u{200B}\u{FEFF}", "body": "b\u{0}", "commune_code": "00004"}).to_string().into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["title", "body"],
        ),
        (
            "bad contact",
            json!({"title": "t", "body": "b", "commune_code": "00004", "contact": {"email": "x", "phone": "abc"}})
                .to_string()
                .into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["contact.email", "contact.phone"],
        ),
    ];
    for (name, body, expected_status, expected_fields) in cases {
        let (status, content_type, problem) = post(&server, body).await;
        assert_eq!(status, expected_status, "{name}: {problem}");
        assert_eq!(content_type.as_deref(), Some("application/problem+json"), "{name}");
        let fields = problem_fields(&problem);
        for field in expected_fields {
            assert!(fields.iter().any(|f| f == field), "{name}: field `{field}` not named in {problem}");
        }
    }
    // A body declared as something other than JSON in UTF-8.
    for content_type in ["text/plain", "multipart/form-data; boundary=x", "application/json; charset=utf-16"] {
        let response = reqwest::Client::new()
            .post(server.url("/api/v1/petitions"))
            .header("content-type", content_type)
            .body(json!({"title": "t", "body": "b", "commune_code": "00004"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}");
        assert_eq!(problem_fields(&response.json().await.unwrap()), ["Content-Type"], "{content_type}");
    }
    // A body said to be compressed, whether it is or not.
    for encoding in ["gzip", "br, identity"] {
        let response = reqwest::Client::new()
            .post(server.url("/api/v1/petitions"))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(json!({"title": "t", "body": "b", "commune_code": "00004"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{encoding}");
        // Refused before its body was read: the connection is not kept for another request.
        assert_eq!(response.headers()["connection"], "close", "{encoding}");
        assert_eq!(problem_fields(&response.json().await.unwrap()), ["Content-Encoding"], "{encoding}");
    }
    // A request larger than the transport limit.
    let (status, content_type, _) = post(&server, vec![b'x'; 400 * 1024]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    // Bad parameters elsewhere.
    let client = reqwest::Client::new();
    let response = client.get(server.url("/api/v1/search?limit=abc&from=yesterday")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem_fields(&problem), vec!["limit", "from"]);
    let response = client.get(server.url("/api/v1/petitions/not-a-uuid")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // Search filters are checked, not searched for: each names its parameter.
    let too_long = "đất ".repeat(300);
    for (params, field) in [
        (vec![("q", too_long.as_str())], "q"),
        (vec![("province", "99")], "province"),
        (vec![("commune", "abc")], "commune"),
        (vec![("province", "79"), ("commune", "00004")], "commune"),
        (vec![("limit", "10"), ("limit", "100")], "limit"),
    ] {
        let response = client.get(server.url("/api/v1/search")).query(&params).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{params:?}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem_fields(&problem), vec![field], "{params:?}: {problem}");
    }
    // What axum's extractors refuse is a problem too, naming the parameter.
    for path in ["/api/v1/petitions/%FF%FE", "/api/v1/petitions/%FF/history", "/api/v1/track/%FF"] {
        let response = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert_eq!(content_type, "application/problem+json", "{path}");
        let problem: Value = response.json().await.unwrap();
        assert!(!problem_fields(&problem).is_empty(), "{path}: {problem}");
    }
    let response = client.post(server.url("/api/v1/reports")).body(vec![b'x'; 400 * 1024]).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    // The rest of the body was never read: the client is told not to send its next request on
    // this connection (which the server closes).
    assert_eq!(response.headers()["connection"], "close");
    // Open311 answers in its own error format, also for dates chrono reads but no petition has.
    let response = client.get(server.url("/open311/v2/requests.json?end_date=-262143-01-01")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let errors: Value = response.json().await.unwrap();
    assert_eq!(errors[0]["code"], 400, "{errors}");
    let response = client.get(server.url("/open311/v2/services/%FF.xml")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("<errors>"));
    // Search input never breaks the parser.
    for q in ["\"unclosed", "title:(", "AND OR NOT", "(((", "đ*?~^", "\u{0}\u{202e}", "a:b:c", "[1 TO"] {
        let response = client.get(server.url("/api/v1/search")).query(&[("q", q)]).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "query {q:?}");
    }
    // Nothing invalid reached the lake.
    let health: Value = client.get(server.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["petitions_written"], 0, "{health}");
}

//! `voxpop serve --kafka` against a real Kafka-protocol broker (tansu): the same path as the
//! embedded default, on the distributed engine.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use voxpop_tests::broker::Tansu;
use voxpop_tests::server::Server;

fn petition(n: usize) -> Value {
    json!({
        "title": format!("Ô nhiễm bãi rác số {n} (dữ liệu tổng hợp)"),
        "body": "Bãi rác gần khu dân cư bốc mùi hôi thối, đề nghị xử lý ô nhiễm môi trường. Dữ liệu tổng hợp cho kiểm thử.",
        "commune_code": "00004",
        "channel": "hotline",
        "external_id": format!("kafka-{n}"),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_path_is_exactly_once_across_restarts_and_503_without_a_broker() {
    let broker = Tansu::start();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), Some(&broker.brokers())).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut acked = HashSet::new();
    let mut next = 0;
    for round in 0..4 {
        for _ in 0..25 {
            let response = client.post(server.url("/api/v1/petitions")).json(&petition(next)).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::CREATED, "round {round}");
            let receipt: Value = response.json().await.unwrap();
            acked.insert(receipt["id"].as_str().unwrap().to_owned());
            next += 1;
        }
        // SIGKILL while the pipeline may be mid-batch; the lake's positions decide where it resumes.
        server.restart().await;
    }
    // Resubmitting an external id accepted before the restarts returns the same petition.
    let again = client.post(server.url("/api/v1/petitions")).json(&petition(3)).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);

    let ids = server.wait_for_ids(&acked, Duration::from_secs(60)).await;
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), unique.len(), "duplicates in the lake");
    assert_eq!(unique.len(), acked.len());
    let results = server.get_json("/api/v1/search", &[("q", "o nhiem bai rac"), ("limit", "0")]).await;
    assert_eq!(results["total"].as_u64().unwrap() as usize, acked.len(), "{results}");

    // The broker goes away: intake answers 503 with Retry-After instead of accepting what it
    // cannot make durable.
    drop(broker);
    let started = Instant::now();
    let response = client.post(server.url("/api/v1/petitions")).json(&petition(10_000)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "after {:?}", started.elapsed());
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(response.headers()["content-type"], "application/problem+json");
}

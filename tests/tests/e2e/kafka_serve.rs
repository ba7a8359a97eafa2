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

#[tokio::test(flavor = "multi_thread")]
async fn kafka_carries_handling_events_to_the_lake_across_a_restart() {
    let broker = Tansu::start();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let officer = voxpop_tests::server::create_token(&data_dir, "00004", "officer");
    let mut server = Server::start(&data_dir, Some(&broker.brokers())).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let response = client.post(server.url("/api/v1/petitions")).json(&petition(1)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let receipt: Value = response.json().await.unwrap();
    let id = receipt["id"].as_str().unwrap().to_owned();
    server.wait_for_ids(&HashSet::from([id.clone()]), Duration::from_secs(60)).await;

    let steps = [
        json!({"action": "accept"}),
        json!({"action": "start"}),
        json!({"action": "answer", "answer": "Đã thu gom rác và khử mùi (dữ liệu tổng hợp)."}),
    ];
    for step in steps {
        let response = client
            .post(server.url(&format!("/api/v1/petitions/{id}/actions")))
            .bearer_auth(&officer)
            .json(&step)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{step}: {body}");
    }
    let history = |server: &Server| {
        let request = client.get(server.url(&format!("/api/v1/petitions/{id}/history"))).bearer_auth(&officer);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    // Through Kafka into the lake: the timeline counts the lake's events apart from the desk's.
    let started = Instant::now();
    loop {
        let body = history(&server).await;
        if body["events_in_lake"] == 3 {
            assert_eq!(body["events"].as_array().map(Vec::len), Some(3), "{body}");
            assert_eq!(body["status"]["state"], "answered", "{body}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "events not in the lake: {body}\n{}", server.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // SIGKILL and start again: the desk reloads the status from the lake and the topic.
    server.restart().await;
    let body = history(&server).await;
    let actions: Vec<&str> = body["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["accept", "start", "answer"], "{body}");
    assert_eq!(body["events_in_lake"], 3, "{body}");
    assert_eq!(body["status"]["state"], "answered", "{body}");
    assert_eq!(body["status"]["answered_on_time"], true, "{body}");
    // The desk still decides from that status: answering again is a 409.
    let response = client
        .post(server.url(&format!("/api/v1/petitions/{id}/actions")))
        .bearer_auth(&officer)
        .json(&json!({"action": "answer", "answer": "Lần nữa"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
}

//! `voxpop serve --demo`: the demo petitions get synthetic handling histories through the desk
//! and the log, so the performance figures, the timelines and the search by state have something
//! to show.

use std::time::{Duration, Instant};

use serde_json::Value;
use voxpop_tests::server::Server;

#[tokio::test(flavor = "multi_thread")]
async fn demo_seeds_handling_that_the_figures_and_the_search_show() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut server = Server::start_with(&data_dir, None, &["--demo", "--demo-count", "2000"]).await;

    // The demo petitions reach the lake, then their handling is seeded (once: a marker file).
    let marker = data_dir.join("demo-handling-seeded");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "no demo handling after 120 s:\n{}", server.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seeded: Value = serde_json::from_str(&std::fs::read_to_string(&marker).unwrap()).unwrap();
    assert_eq!(seeded["failed"], 0, "{seeded}");
    // Half the demo petitions are sampled; most of those get a history.
    assert_eq!(seeded["petitions"], 1_000, "{seeded}");
    assert!(seeded["handled"].as_u64().unwrap() > 700, "{seeded}");

    // Open mode (no tokens): the central level's figures.
    let performance = server.get_json("/api/v1/handling/performance", &[]).await;
    let unit = &performance["unit"];
    assert_eq!(unit["unit"], "00", "{performance}");
    assert!(unit["answered"].as_u64().unwrap() > 0, "{performance}");
    let on_time = unit["on_time_rate"].as_f64().expect("an on-time rate");
    assert!(on_time > 0.0 && on_time < 1.0, "some answers late, most on time: {unit}");
    assert!(unit["rated"].as_u64().unwrap() > 0, "{unit}");
    let mean = unit["mean_rating"].as_f64().expect("a mean rating");
    assert!(mean > 3.0 && mean <= 5.0, "{unit}");
    assert!(unit["overdue"].as_u64().unwrap() > 0, "{unit}");
    assert!(unit["reopened"].as_u64().unwrap() > 0, "{unit}");
    assert!(!performance["children"].as_array().unwrap().is_empty(), "{performance}");

    // The index follows the states the pipeline folds from the log.
    let deadline = Instant::now() + Duration::from_secs(60);
    let answered = loop {
        let results = server.get_json("/api/v1/search", &[("q", ""), ("state", "answered"), ("limit", "5")]).await;
        if results["total"].as_u64().unwrap_or(0) > 0 {
            break results;
        }
        assert!(Instant::now() < deadline, "no answered petition in the index: {results}\n{}", server.output());
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // An answered petition's timeline: dated after its receipt, in the past, marked synthetic.
    let id = answered["hits"][0]["id"].as_str().unwrap();
    let history = server.get_json(&format!("/api/v1/petitions/{id}/history"), &[]).await;
    assert_eq!(history["status"]["state"], "answered", "{history}");
    let events = history["events"].as_array().unwrap();
    let received: chrono::DateTime<chrono::Utc> = history["status"]["received_at"].as_str().unwrap().parse().unwrap();
    let now = chrono::Utc::now();
    for event in events {
        let at: chrono::DateTime<chrono::Utc> = event["at"].as_str().unwrap().parse().unwrap();
        assert!(at >= received && at <= now, "{event}");
        let by = if matches!(event["action"].as_str(), Some("rate" | "reopen")) { "citizen" } else { "demo" };
        assert_eq!(event["actor"]["id"], by, "{event}");
    }
    let answer = events.iter().find(|e| e["action"] == "answer").expect("an answer event");
    assert!(answer["answer"].as_str().unwrap().starts_with("[Dữ liệu mô phỏng] "), "{answer}");

    // Once per data directory: a restart (SIGKILL) keeps the statuses and seeds nothing more.
    server.restart().await;
    let again = server.get_json("/api/v1/handling/performance", &[]).await;
    assert_eq!(again["unit"]["answered"], unit["answered"], "{again}");
    assert_eq!(again["unit"]["rated"], unit["rated"], "{again}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(server.output().contains("demo handling was seeded on an earlier start"), "{}", server.output());
    eprintln!("demo handling: {seeded} in {:?}", started.elapsed());
}

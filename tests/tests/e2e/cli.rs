//! `voxpop reindex` and `voxpop search` on a data directory written by `voxpop serve`.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use voxpop_tests::server::{Server, voxpop_bin};

fn voxpop(args: &[&str], data_dir: &std::path::Path) -> (bool, String) {
    let output = Command::new(voxpop_bin()).args(args).arg("--data-dir").arg(data_dir).output().expect("run voxpop");
    (
        output.status.success(),
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn reindex_rebuilds_the_index_from_the_lake_and_search_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut server = Server::start(&data_dir, None).await;
    let client = reqwest::Client::new();
    let mut acked = HashSet::new();
    for (n, (title, commune)) in
        [("Tranh chấp đất đai", "00004"), ("Ô nhiễm bãi rác", "00976"), ("Đất đai bị lấn chiếm", "21529")]
            .iter()
            .enumerate()
    {
        let petition = json!({"title": title, "body": format!("Nội dung kiến nghị số {n}, dữ liệu tổng hợp."), "commune_code": commune});
        acked.insert(server.submit(&petition).await);
    }
    server.wait_for_ids(&acked, Duration::from_secs(30)).await;
    server.kill9();
    // Lose the index entirely: the lake is the truth.
    std::fs::remove_dir_all(data_dir.join("index")).unwrap();
    let (ok, output) = voxpop(&["reindex"], &data_dir);
    assert!(ok, "{output}");
    assert!(output.contains("reindexed 3 petitions"), "{output}");
    let (ok, output) = voxpop(&["search", "dat dai"], &data_dir);
    assert!(ok, "{output}");
    assert!(output.contains("2 petitions match"), "{output}");
    let (ok, output) = voxpop(&["search", "dat dai", "--province", "51"], &data_dir);
    assert!(ok && output.contains("1 petitions match"), "{output}");
    // The server starts on the rebuilt index and agrees.
    server.restart().await;
    let results: Value = client.get(server.url("/api/v1/search?q=dat+dai")).send().await.unwrap().json().await.unwrap();
    assert_eq!(results["total"], 2, "{results}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reclassify_applies_an_edited_taxonomy_to_the_lake_and_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut server = Server::start(&data_dir, None).await;
    let mut acked = HashSet::new();
    for (n, title) in ["Tranh chấp đất đai", "Đất đai bị lấn chiếm", "Ô nhiễm bãi rác"].iter().enumerate()
    {
        let petition = json!({"title": title, "body": format!("Nội dung kiến nghị số {n}, dữ liệu tổng hợp."), "commune_code": "00004"});
        acked.insert(server.submit(&petition).await);
    }
    server.wait_for_ids(&acked, Duration::from_secs(30)).await;
    let before = server.get_json("/api/v1/search", &[("q", "đất đai")]).await;
    assert!(before["hits"].as_array().unwrap().iter().all(|hit| hit["topic"] == "land"), "{before}");
    server.kill9();

    // Staff split land disputes into their own topic.
    let taxonomy = dir.path().join("topics.toml");
    std::fs::write(
        &taxonomy,
        "[[topic]]\ncode = \"land_dispute\"\nvi = \"Tranh chấp đất đai\"\nen = \"Land disputes\"\nrules = [[\"đất đai\"]]\n\n\
         [[topic]]\ncode = \"environment\"\nvi = \"Môi trường\"\nen = \"Environment\"\nrules = [[\"ô nhiễm\"]]\n",
    )
    .unwrap();
    let (ok, output) = voxpop(&["topics", "reclassify", "--taxonomy", taxonomy.to_str().unwrap()], &data_dir);
    assert!(ok, "{output}");
    assert!(output.contains("reclassified 3 petitions"), "{output}");
    assert!(output.contains("land_dispute     2"), "{output}");
    assert!(output.contains("reindexed 3 petitions"), "{output}");

    server.restart().await;
    let after = server.get_json("/api/v1/search", &[("q", "đất đai")]).await;
    assert_eq!(after["total"], 2, "{after}");
    assert!(after["hits"].as_array().unwrap().iter().all(|hit| hit["topic"] == "land_dispute"), "{after}");
    assert_eq!(after["topic_facets"][0]["topic"], "land_dispute");
    let (ok, output) = voxpop(&["topics", "reclassify", "--taxonomy", "/nonexistent.toml"], &data_dir);
    assert!(!ok && output.contains("nonexistent.toml"), "{output}");
}

/// `voxpop bench ingest` runs its whole course on a small count: every petition reaches the
/// index on each run, and the medians of the runs are printed with the ceiling's.
#[test]
fn bench_ingest_runs_the_ceiling_and_the_embedded_path_in_turn() {
    let output = Command::new(voxpop_bin())
        .args(["bench", "ingest", "--count", "600", "--runs", "2", "--clients", "16", "--batch-interval-ms", "50"])
        .output()
        .expect("run voxpop");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{text}");
    for run in ["run 1", "run 2"] {
        assert!(text.contains(&format!("{run}: tantivy indexing alone")), "{text}");
        assert!(text.contains(&format!("{run}: end to end on the embedded log")), "{text}");
    }
    assert!(text.contains("600 accepted (durable)") && text.contains("index holds 600"), "{text}");
    // Where the CPU went: tantivy's indexing threads and the rest, each a number of CPU-s, and
    // at least one index commit per run.
    let split: Vec<f64> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("CPU-s: tantivy's indexing threads "))
        .filter_map(|rest| {
            let (tantivy, rest) = rest.split_once(", the rest ")?;
            Some(tantivy.parse::<f64>().ok()? + rest.split(';').next()?.parse::<f64>().ok()?)
        })
        .collect();
    assert_eq!(split.len(), 2, "{text}");
    assert!(text.matches(" index commits").count() == 2 && !text.contains(" 0 index commits"), "{text}");
    let median = text.lines().find(|line| line.starts_with("median of 2 runs: end to end on the embedded log"));
    let rate: f64 = median
        .and_then(|line| line.split("log ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|word| word.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no median rate in {text}"));
    assert!(rate > 0.0, "{text}");
}

/// The Kafka path of `voxpop bench ingest`, on a real broker and twice: the second run's new
/// lake starts after the first run's records, so each run ingests exactly its own petitions.
#[test]
fn bench_ingest_on_kafka_counts_only_each_runs_own_petitions() {
    let broker = voxpop_tests::broker::Tansu::start();
    let output = Command::new(voxpop_bin())
        .args(["bench", "ingest", "--count", "300", "--runs", "2", "--clients", "16", "--batch-interval-ms", "50"])
        .args(["--no-embedded", "--kafka", &broker.brokers()])
        .output()
        .expect("run voxpop");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{text}");
    let kafka_runs: Vec<&str> =
        text.lines().filter(|line| line.contains("kafka log: 300 accepted (durable)")).collect();
    assert_eq!(kafka_runs.len(), 2, "{text}");
    assert!(kafka_runs.iter().all(|line| line.contains("index holds 300;")), "{text}");
    assert!(!text.contains("embedded log"), "{text}");
    assert!(text.contains("median of 2 runs: end to end on the kafka log"), "{text}");
}

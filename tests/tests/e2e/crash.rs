//! Exactly once under crashes: `voxpop serve` is killed with SIGKILL at random moments while
//! petitions stream in; afterwards every acknowledged petition is in the lake exactly once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::{Value, json};
use voxpop_tests::server::Server;

const KILLS: usize = 20;
const CLIENTS: usize = 8;

/// Acknowledged petition ids (HTTP 201 received).
type Acked = Arc<Mutex<HashSet<String>>>;

async fn stream_petitions(
    base: String,
    acked: Acked,
    stop: Arc<std::sync::atomic::AtomicBool>,
    client_no: usize,
) -> usize {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut sent = 0;
    let communes = ["00004", "00097", "00976", "00001", "21529", "29785"];
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        sent += 1;
        let petition = json!({
            "title": format!("Kiến nghị số {sent} của máy khách {client_no} (dữ liệu tổng hợp)"),
            "body": "Đường liên xã xuống cấp, đề nghị sửa chữa sớm. Dữ liệu tổng hợp cho kiểm thử sự cố.",
            "commune_code": communes[sent % communes.len()],
        });
        match client.post(format!("{base}/api/v1/petitions")).json(&petition).send().await {
            Ok(response) if response.status() == reqwest::StatusCode::CREATED => {
                let receipt: Value = response.json().await.unwrap_or(Value::Null);
                if let Some(id) = receipt["id"].as_str() {
                    acked.lock().unwrap().insert(id.to_owned());
                }
            }
            // The server is down or restarting: nothing was acknowledged, try again later.
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_petition_is_in_the_lake_exactly_once_after_20_sigkills() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut server = Server::start(&data_dir, None).await;
    let base = format!("http://{}", server.addr);
    let acked: Acked = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> =
        (0..CLIENTS).map(|n| tokio::spawn(stream_petitions(base.clone(), acked.clone(), stop.clone(), n))).collect();
    for _ in 0..KILLS {
        let pause = rand::rng().random_range(150..900);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        server.restart().await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 100, "too few petitions acknowledged to mean anything: {}", acked.len());
    // A clean last start: the pipeline catches up with the log.
    server.restart().await;
    let lake_ids = server.wait_for_ids(&acked, Duration::from_secs(60)).await;

    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &lake_ids {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "petitions written more than once: {duplicates:?}");
    let missing: Vec<_> = acked.iter().filter(|id| !counts.contains_key(id.as_str())).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged petitions missing from the lake, e.g. {:?}",
        missing.len(),
        missing.iter().take(3).collect::<Vec<_>>()
    );
    // The index followed the lake: every lake row is searchable exactly once too.
    let search: Value = reqwest::get(server.url("/api/v1/search?q=&limit=1")).await.unwrap().json().await.unwrap();
    assert_eq!(search["total"].as_u64().unwrap() as usize, lake_ids.len(), "index and lake disagree");
    println!("{} acknowledged, {} in the lake, {} kills", acked.len(), lake_ids.len(), KILLS);
}

//! The pipeline on both logs: re-validation, dead letters with the reason and the original bytes,
//! enrichment, and no reprocessing after a restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use voxpop_index::PetitionIndex;
use voxpop_pipeline::embedded::EmbeddedLog;
use voxpop_pipeline::kafka::{KafkaConfig, KafkaLog};
use voxpop_pipeline::lake::PetitionLake;
use voxpop_pipeline::{EventLog, Pipeline, PipelineConfig, Record, Topic};
use voxpop_schema::Petition;
use voxpop_tests::broker::Tansu;

fn record(petition: &Petition) -> Record {
    Record { key: petition.id.to_string().into_bytes(), payload: petition.to_json_bytes() }
}

/// Runs a pipeline until it has consumed `expected` records, then stops it.
async fn run_pipeline(log: Arc<dyn EventLog>, dir: &std::path::Path, expected: u64) -> u64 {
    let lake = PetitionLake::open_or_create(&dir.join("lake/petitions")).await.unwrap();
    let index = Arc::new(PetitionIndex::open_or_create(&dir.join("index")).unwrap());
    // Compaction after every commit, so the test also covers it.
    let config = PipelineConfig {
        batch_size: 100,
        batch_interval: Duration::from_millis(100),
        compact_every: 1,
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::new(log, lake, Some(index), config);
    let stats = pipeline.stats();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(pipeline.run(stopped));
    let started = Instant::now();
    while stats.consumed.load(Ordering::Relaxed) < expected && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give a wrongly restarted pipeline the chance to reprocess something.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    stats.consumed.load(Ordering::Relaxed)
}

async fn dead_letters_and_enrichment(
    open: impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Arc<dyn EventLog>> + Send>>,
) {
    let dir = tempfile::tempdir().unwrap();
    let log = open().await;
    let valid: Vec<Petition> = (0..3)
        .map(|n| {
            Petition::builder()
                .title(&format!("Đường hỏng số {n}"))
                .body("Đường liên xã xuống cấp nghiêm trọng, đề nghị sửa chữa.")
                .commune("00976")
                .build()
        })
        .collect();
    let mut old_code =
        Petition::builder().title("Ngập nước").body("Mưa lớn gây ngập nước kéo dài ở khu dân cư.").build();
    old_code.commune_code = "00001".into(); // pre-2025 code, from a producer that does not map codes
    old_code.province_code = String::new();
    let mut unknown = Petition::builder().build();
    unknown.commune_code = "99999".into();
    let garbage = b"\xff\xfe not a petition".to_vec();
    let mut records: Vec<Record> = valid.iter().map(record).collect();
    records.push(record(&old_code));
    records.push(record(&unknown));
    records.push(Record { key: b"garbage".to_vec(), payload: garbage.clone() });
    log.append(Topic::Petitions, records).await.unwrap();

    assert_eq!(run_pipeline(log.clone(), dir.path(), 6).await, 6);

    let lake = PetitionLake::open_or_create(&dir.path().join("lake/petitions")).await.unwrap();
    assert_eq!(lake.count().await.unwrap(), 4);
    let mut in_lake = Vec::new();
    lake.scan_all(|petitions| {
        in_lake.extend(petitions);
        Ok(())
    })
    .await
    .unwrap();
    let mapped = in_lake.iter().find(|p| p.id == old_code.id).expect("the old-code petition is in the lake");
    assert_eq!((mapped.commune_code.as_str(), mapped.province_code.as_str()), ("00097", "01"));
    assert_eq!(mapped.original_unit_code.as_deref(), Some("00001"));
    assert!(in_lake.iter().all(|p| p.language.as_deref() == Some("vi")), "language detected on every row");

    let mut reader = log.reader(Topic::DeadLetter, &BTreeMap::new()).await.unwrap();
    let mut letters = Vec::new();
    let started = Instant::now();
    while letters.len() < 2 && started.elapsed() < Duration::from_secs(15) {
        letters.extend(reader.poll(10, Duration::from_millis(300)).await.unwrap());
    }
    assert_eq!(letters.len(), 2, "one dead letter per bad record");
    let letters: Vec<Value> = letters.iter().map(|l| serde_json::from_slice(&l.payload).unwrap()).collect();
    let engine = base64::engine::general_purpose::STANDARD;
    let for_garbage =
        letters.iter().find(|l| l["reason"].as_str().unwrap().contains("malformed")).expect("garbage dead-lettered");
    assert_eq!(engine.decode(for_garbage["original_base64"].as_str().unwrap()).unwrap(), garbage);
    let for_unknown = letters
        .iter()
        .find(|l| l["reason"].as_str().unwrap().contains("99999"))
        .expect("unknown commune dead-lettered");
    assert_eq!(for_unknown["errors"][0]["field"], "commune_code");
    assert_eq!(engine.decode(for_unknown["original_base64"].as_str().unwrap()).unwrap(), unknown.to_json_bytes());

    // A restart resumes after the lake's positions: nothing is consumed or dead-lettered twice.
    drop(reader);
    drop(log);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = open().await;
    assert_eq!(run_pipeline(log.clone(), dir.path(), 0).await, 0);
    assert_eq!(lake.count().await.unwrap(), 4);
    let index = PetitionIndex::open_read_only(&dir.path().join("index")).unwrap();
    assert_eq!(index.num_docs(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_log_pipeline_dead_letters_and_enriches() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    dead_letters_and_enrichment(move || {
        let dir = dir.clone();
        Box::pin(
            async move { Arc::new(EmbeddedLog::open(&dir.path().join("log")).await.unwrap()) as Arc<dyn EventLog> },
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_log_pipeline_dead_letters_and_enriches() {
    let broker = Arc::new(Tansu::start());
    dead_letters_and_enrichment(move || {
        let brokers = broker.brokers();
        Box::pin(
            async move { Arc::new(KafkaLog::connect(KafkaConfig::new(brokers)).await.unwrap()) as Arc<dyn EventLog> },
        )
    })
    .await;
}

//! `voxpop bench`: the figures in docs/BENCHMARKS.md. Each benchmark prints its peers measured in
//! the same run (the indexing-only ceiling next to end-to-end ingest).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use voxpop_connectors::demo::DemoGenerator;
use voxpop_index::{PetitionIndex, SearchRequest};
use voxpop_pipeline::{PipelineConfig, Topic};
use voxpop_schema::{Petition, Submission, Units};

use crate::commands::progress_bar;
use crate::stack::{Stack, StackConfig};

fn generate_json(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut generator = DemoGenerator::new(seed);
    (0..count)
        .map(|_| {
            let mut submission = generator.submission();
            // Benchmark petitions are received now and carry no external id: every one is new.
            submission.as_object_mut().expect("object").remove("external_id");
            submission["channel"] = "web".into();
            submission.as_object_mut().expect("object").remove("submitted_at");
            serde_json::to_vec(&submission).expect("serialise")
        })
        .collect()
}

fn petitions_of(jsons: &[Vec<u8>]) -> Vec<Petition> {
    let units = Units::embedded();
    jsons
        .iter()
        .map(|bytes| {
            Submission::from_json_bytes(bytes, units, Utc::now())
                .expect("generated petitions are valid")
                .accept(Utc::now())
        })
        .collect()
}

/// End-to-end ingest (intake -> durable log -> lake -> index -> searchable) against tantivy
/// indexing alone on the same documents.
pub async fn ingest(
    count: usize,
    kafka: Option<String>,
    embedded: bool,
    clients: usize,
    pipeline: PipelineConfig,
    runs: usize,
) -> anyhow::Result<()> {
    println!("generating {count} synthetic petitions of ~1 KB ...");
    let jsons = Arc::new(generate_json(count, 42));
    let bytes: usize = jsons.iter().map(Vec::len).sum();
    println!("{count} petitions, {:.1} MB of JSON, mean {} bytes", bytes as f64 / 1e6, bytes / count.max(1));
    stage_costs(&jsons);
    let mut logs: Vec<Option<String>> = Vec::new();
    if embedded {
        logs.push(None);
    }
    if let Some(brokers) = kafka {
        logs.push(Some(brokers));
    }
    let mb_per_s = |rate: f64| rate * bytes as f64 / count.max(1) as f64 / 1e6;
    // The ceiling and each path in turn, `runs` times: each run's figures come from the same
    // state of the machine, and the medians say more than one run on a noisy machine.
    let mut ceilings = Vec::new();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); logs.len()];
    for run in 1..=runs.max(1) {
        let ceiling = indexing_ceiling(&jsons)?;
        ceilings.push(ceiling);
        println!(
            "run {run}: tantivy indexing alone (the pipeline's documents: language and topic assigned): {:>9.0} petitions/s  ({:.1} MB/s)",
            ceiling,
            mb_per_s(ceiling)
        );
        for (path, kafka) in logs.iter().enumerate() {
            let label = if kafka.is_some() { "kafka" } else { "embedded" };
            let rate = end_to_end(jsons.clone(), kafka.clone(), clients, pipeline.clone()).await?;
            rates[path].push(rate);
            println!(
                "run {run}: end to end on the {label:<8} log: {:>9.0} petitions/s  ({:.1} MB/s), {:.0}% of the indexing-only ceiling",
                rate,
                mb_per_s(rate),
                100.0 * rate / ceiling
            );
        }
    }
    if runs > 1 {
        let median = |values: &[f64]| {
            let mut sorted = values.to_vec();
            sorted.sort_by(f64::total_cmp);
            sorted[sorted.len() / 2]
        };
        let ceiling = median(&ceilings);
        println!("median of {runs} runs: tantivy indexing alone {ceiling:.0} petitions/s");
        for (kafka, rates) in logs.iter().zip(&rates) {
            let label = if kafka.is_some() { "kafka" } else { "embedded" };
            let rate = median(rates);
            println!(
                "median of {runs} runs: end to end on the {label} log {rate:.0} petitions/s, {:.0}% of the median ceiling",
                100.0 * rate / ceiling
            );
        }
    }
    Ok(())
}

/// What the pipeline's per-record steps cost alone, on the same petitions (2 cores for language
/// detection, as in the pipeline).
fn stage_costs(jsons: &[Vec<u8>]) {
    // Intake's parse and validation of the request bytes, and as a peer the same validation
    // through a `serde_json::Value` (maps and strings allocated for every field).
    let now = Utc::now();
    let started = Instant::now();
    let accepted =
        jsons.iter().filter(|json| Submission::from_json_bytes(json, Units::embedded(), now).is_ok()).count();
    let intake = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let through_value = jsons
        .iter()
        .filter_map(|json| serde_json::from_slice::<serde_json::Value>(json).ok())
        .filter(|value| Submission::from_json(value, Units::embedded(), now).is_ok())
        .count();
    let value = started.elapsed().as_secs_f64();
    println!(
        "intake parse + validation alone (1 core): {:>9.0} submissions/s from the request bytes, {:>9.0}/s through a serde_json::Value ({accepted} and {through_value} accepted)",
        jsons.len() as f64 / intake,
        jsons.len() as f64 / value
    );
    let enricher = voxpop_pipeline::enrich::Enricher::new(Units::embedded());
    let mut petitions = petitions_of(jsons);
    let payloads: Vec<Vec<u8>> = petitions.iter().map(Petition::to_json_bytes).collect();
    let started = Instant::now();
    let decoded = payloads.iter().filter(|payload| enricher.prepare(payload).is_ok()).count();
    let decode = started.elapsed().as_secs_f64();
    let by_script = petitions.iter().filter(|p| voxpop_pipeline::enrich::Enricher::decided_by_script(p)).count();
    let started = Instant::now();
    enricher.detect_languages(&mut petitions);
    let detect = started.elapsed().as_secs_f64();
    println!(
        "decode + validate alone (1 core): {:>9.0} petitions/s; language detection alone (2 cores): {:>9.0} petitions/s ({decoded} decoded; {by_script} decided by script evidence, the rest by lingua)",
        payloads.len() as f64 / decode,
        petitions.len() as f64 / detect
    );
    let assigner =
        voxpop_pipeline::assign::TopicAssigner::new(Arc::new(voxpop_schema::Taxonomy::default_embedded().clone()));
    let started = Instant::now();
    let classified = petitions.iter().filter(|p| assigner.assign(&p.title, &p.body).is_some()).count();
    let topics = started.elapsed().as_secs_f64();
    let texts = || petitions.iter().flat_map(|p| [p.title.as_str(), p.body.as_str()]);
    let mut tokenizer = Vec::new();
    for view in [voxpop_index::analysis::View::Folded, voxpop_index::analysis::View::Exact] {
        let started = Instant::now();
        let terms = voxpop_index::analysis::count_terms(view, texts());
        tokenizer.push((terms, started.elapsed().as_secs_f64()));
    }
    println!(
        "topic rules alone (1 core): {:>9.0} petitions/s ({classified} classified); tokenizer alone (1 core, per view): folded {:>9.0}, exact {:>9.0} petitions/s ({} terms each)",
        petitions.len() as f64 / topics,
        petitions.len() as f64 / tokenizer[0].1,
        petitions.len() as f64 / tokenizer[1].1,
        tokenizer[0].0
    );
    // Two peers of those: intake's NFC check (with its copy), and a floor for the tokenizer: the
    // split it starts from (`WordRuns`: runs between ASCII separators, 8 bytes at a time), only
    // counted.
    let bytes: usize = texts().map(str::len).sum();
    let started = Instant::now();
    let normalised: usize = texts().map(|text| voxpop_schema::text::nfc(text).len()).sum();
    let nfc = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let runs: usize = texts().map(|text| voxpop_schema::text::WordRuns::new(text).count()).sum();
    let scan = started.elapsed().as_secs_f64();
    println!(
        "NFC check alone (1 core): {:.0} MB/s ({normalised} bytes); word runs alone, a floor for the tokenizer (1 core): {:.0} MB/s, {:.1} ns per run ({runs} runs); tokenizer {:.1} ns per term (folded view)",
        bytes as f64 / nfc / 1e6,
        bytes as f64 / scan / 1e6,
        scan * 1e9 / runs.max(1) as f64,
        tokenizer[0].1 * 1e9 / tokenizer[0].0.max(1) as f64
    );
}

/// CPU seconds (user + system) and minor page faults of this process so far, from
/// `/proc/self/stat`; `None` where there is no such file. On 2 cores the rate follows the CPU
/// each petition costs, and this says where a change moved it, with less noise than the rate.
fn process_usage() -> Option<(f64, u64)> {
    let (ticks, faults) = cpu_ticks_and_faults(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    Some((ticks as f64 / TICKS_PER_SECOND, faults))
}

/// USER_HZ, fixed at 100 in Linux's ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU ticks (user + system) and minor page faults from a process's or thread's `stat` file.
fn cpu_ticks_and_faults(stat: &str) -> Option<(u64, u64)> {
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((field(14)? + field(15)?, field(10)?))
}

/// How tantivy's indexing threads are named (`thrd-tantivy-index{n}`, cut to 15 bytes by Linux).
/// They end at each commit, so their CPU time is the process's minus that of the other threads.
const TANTIVY_INDEXING_THREADS: &str = "thrd-tantivy";

/// The process's CPU use per 100 ms while a phase runs, sampled on a thread of its own: where
/// the cores idle (the start of a burst, the tail), which totals do not show.
struct CpuTimeline {
    running: Arc<std::sync::atomic::AtomicBool>,
    sampler: std::thread::JoinHandle<Vec<u32>>,
}

impl CpuTimeline {
    fn start() -> CpuTimeline {
        let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let sampling = running.clone();
        let sampler = std::thread::spawn(move || {
            let mut percents = Vec::new();
            let mut last = process_usage();
            while sampling.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let now = process_usage();
                if let (Some((before, _)), Some((after, _))) = (last, now) {
                    // CPU-s in 0.1 s, as a percentage of one core.
                    percents.push(((after - before) * 1000.0).round() as u32);
                }
                last = now;
            }
            percents
        });
        CpuTimeline { running, sampler }
    }

    /// Percent of one core per 100 ms so far (ticks are 10 ms, so each is a multiple of 10 ± 10).
    fn finish(self) -> Vec<u32> {
        self.running.store(false, Ordering::Relaxed);
        self.sampler.join().unwrap_or_default()
    }
}

/// CPU ticks used so far by each live thread of this process whose name does not start with
/// `prefix`, by thread id.
fn other_threads_ticks(prefix: &str) -> BTreeMap<u64, u64> {
    let mut ticks = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return ticks;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let Some(tid) = path.file_name().and_then(|name| name.to_str()).and_then(|name| name.parse::<u64>().ok())
        else {
            continue;
        };
        if std::fs::read_to_string(path.join("comm")).is_ok_and(|comm| comm.starts_with(prefix)) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).ok();
        if let Some((used, _)) = stat.as_deref().and_then(cpu_ticks_and_faults) {
            ticks.insert(tid, used);
        }
    }
    ticks
}

/// CPU seconds the threads not named `prefix` used since `before` (threads that ended in
/// between are not counted: tantivy's indexing threads end at each commit, the others live).
fn other_threads_cpu_since(before: &BTreeMap<u64, u64>, prefix: &str) -> f64 {
    let now = other_threads_ticks(prefix);
    let ticks: u64 = now.iter().map(|(tid, ticks)| ticks - before.get(tid).copied().unwrap_or(0).min(*ticks)).sum();
    ticks as f64 / TICKS_PER_SECOND
}

/// What a phase cost the process: "CPU s per 100,000 petitions, page faults per petition".
fn usage_since(before: Option<(f64, u64)>, count: usize) -> String {
    match (before, process_usage()) {
        (Some((cpu, faults)), Some((cpu_now, faults_now))) => {
            let per = count.max(1) as f64;
            format!(
                "{:.2} CPU-s per 100,000, {:.1} page faults per petition",
                (cpu_now - cpu) * 100_000.0 / per,
                (faults_now - faults) as f64 / per
            )
        }
        _ => "CPU use unknown".to_owned(),
    }
}

/// tantivy alone on the documents as the pipeline hands them to the index: language and topic
/// assigned first (not timed), as the index stores and facets both.
fn indexing_ceiling(jsons: &[Vec<u8>]) -> anyhow::Result<f64> {
    let mut petitions = petitions_of(jsons);
    voxpop_pipeline::enrich::Enricher::new(Units::embedded()).detect_languages(&mut petitions);
    voxpop_pipeline::assign::TopicAssigner::new(Arc::new(voxpop_schema::Taxonomy::default_embedded().clone()))
        .assign_all(&mut petitions);
    let dir = tempfile::tempdir()?;
    let index = PetitionIndex::open_or_create(dir.path())?;
    let others_before = other_threads_ticks(TANTIVY_INDEXING_THREADS);
    let usage = process_usage();
    let started = Instant::now();
    for chunk in petitions.chunks(20_000) {
        index.add_bulk(chunk)?;
    }
    index.commit(0)?;
    let rate = petitions.len() as f64 / started.elapsed().as_secs_f64();
    let cpu = process_usage().zip(usage).map(|((after, _), (before, _))| after - before);
    let others_cpu = other_threads_cpu_since(&others_before, TANTIVY_INDEXING_THREADS);
    println!(
        "  tantivy alone: {}; tantivy's indexing threads {:.2} CPU-s, the rest (documents built) {others_cpu:.2}",
        usage_since(usage, petitions.len()),
        cpu.unwrap_or(0.0) - others_cpu
    );
    Ok(rate)
}

async fn end_to_end(
    jsons: Arc<Vec<Vec<u8>>>,
    kafka: Option<String>,
    clients: usize,
    pipeline: PipelineConfig,
) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let config = StackConfig { data_dir: dir.path().to_owned(), kafka, pipeline, run_pipeline: true, topics: None };
    // Records already on a shared broker (earlier runs) are not this run's work: the new lake
    // starts with their positions recorded, so the pipeline reads only what this run sends.
    let existing = existing_positions(&config).await?;
    if !existing.is_empty() {
        let layout = crate::stack::DataLayout::new(&config.data_dir);
        let mut lake = voxpop_pipeline::lake::PetitionLake::open_or_create(&layout.petitions_table()).await?;
        lake.append(Topic::Petitions, &[], &existing).await?;
    }
    let stack = Stack::start(config).await?;
    let others_before = other_threads_ticks(TANTIVY_INDEXING_THREADS);
    let count = jsons.len();
    let target = count as u64;
    let bar = progress_bar(target, &format!("ingest on {}", stack.log.kind()));
    let usage = process_usage();
    let started = Instant::now();
    let timeline = CpuTimeline::start();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..clients.max(1) {
        let (intake, jsons, next) = (stack.intake.clone(), jsons.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(json) = jsons.get(i) else {
                    return Ok::<(), anyhow::Error>(());
                };
                intake.submit_json(json).await.map_err(|err| anyhow::anyhow!("{err}"))?;
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let accepted_after = started.elapsed();
    loop {
        let written = stack.stats.written.load(Ordering::Relaxed);
        let searchable =
            stack.stats.index_version.load(Ordering::Relaxed) >= stack.stats.lake_version.load(Ordering::Relaxed);
        bar.set_position(written);
        if written >= target && searchable {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    let cpu = process_usage().zip(usage).map(|((after, _), (before, _))| after - before);
    let usage = usage_since(usage, count);
    let others_cpu = other_threads_cpu_since(&others_before, TANTIVY_INDEXING_THREADS);
    let timeline = timeline.finish();
    bar.finish_and_clear();
    let searchable = stack.index.num_docs();
    println!(
        "  {} log: {count} accepted (durable) in {:.2} s, searchable in {:.2} s; index holds {searchable}; {usage}",
        stack.log.kind(),
        accepted_after.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    let seconds = |micros: &std::sync::atomic::AtomicU64| micros.load(Ordering::Relaxed) as f64 / 1e6;
    println!(
        "  pipeline stages (CPU-bound parts in parallel): decode+validate+language {:.2} s, delta commits {:.2} s, index {:.2} s, {} batches, {} index commits",
        seconds(&stack.stats.enrich_micros),
        seconds(&stack.stats.lake_micros),
        seconds(&stack.stats.index_micros),
        stack.stats.batches.load(Ordering::Relaxed),
        stack.stats.index_commits.load(Ordering::Relaxed)
    );
    if let Some(cpu) = cpu {
        println!(
            "  CPU-s: tantivy's indexing threads {:.2}, the rest {others_cpu:.2}; use per 100 ms (% of one core): {}",
            cpu - others_cpu,
            timeline.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
        );
    }
    stack.stop().await;
    Ok(count as f64 / elapsed.as_secs_f64())
}

/// The next offset per partition of the petitions already on the broker (none on the embedded
/// log, which is new with each run's data directory).
async fn existing_positions(config: &StackConfig) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut next = BTreeMap::new();
    let Some(brokers) = &config.kafka else {
        return Ok(next);
    };
    let log = voxpop_pipeline::kafka::KafkaLog::connect(voxpop_pipeline::kafka::KafkaConfig::new(brokers)).await?;
    let mut reader = voxpop_pipeline::EventLog::reader(&log, Topic::Petitions, &Default::default()).await?;
    loop {
        let records = reader.poll(50_000, Duration::from_millis(500)).await?;
        if records.is_empty() {
            return Ok(next);
        }
        for record in records {
            let offset = next.entry(record.position.partition).or_insert(0);
            *offset = (*offset).max(record.position.offset + 1);
        }
    }
}

/// Queries a staff member would type: themes with and without diacritics, phrases, filters.
const QUERIES: &[(&str, Option<&str>)] = &[
    ("đất đai", None),
    ("dat dai", None),
    ("bồi thường", None),
    ("giai phong mat bang", None),
    ("\"giải phóng mặt bằng\"", None),
    ("ô nhiễm", Some("01")),
    ("o nhiem bai rac", None),
    ("bãi rác", Some("79")),
    ("đường xuống cấp", None),
    ("duong xuong cap", Some("48")),
    ("bảo hiểm y tế", None),
    ("bao hiem y te", None),
    ("trợ cấp người có công", None),
    ("hộ nghèo", Some("01")),
    ("học phí", None),
    ("thu chi", None),
    ("thủ tục hành chính", None),
    ("một cửa", None),
    ("sai phạm", None),
    ("tham nhung", None),
    ("trộm cắp", None),
    ("đua xe", Some("79")),
    ("nợ lương", None),
    ("bảo hiểm xã hội", None),
    ("giá điện", None),
    ("phân bón", None),
    ("tiêu thụ nông sản", None),
    ("dịch tả lợn", None),
    ("nước thải", None),
    ("khói bụi nhà máy", None),
    ("cầu dân sinh", None),
    ("đèn chiếu sáng", None),
    ("tái định cư", None),
    ("giấy chứng nhận quyền sử dụng đất", None),
    ("trạm y tế", None),
    ("giáo viên", None),
    ("an ninh trật tự", None),
    ("việc làm thanh niên", None),
    ("Hà Nội", None),
    ("thành phố", Some("79")),
];

/// Search latency over an index of `count` generated petitions.
pub async fn search(count: usize, queries: usize, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = dir.unwrap_or_else(|| temp.path().to_owned());
    let mut index = PetitionIndex::open_or_create(&dir)?;
    let existing = index.num_docs();
    if existing != count as u64 {
        index.clear()?;
        let bar = progress_bar(count as u64, "indexing generated petitions");
        let started = Instant::now();
        let mut generator = DemoGenerator::new(7);
        let units = Units::embedded();
        let mut made = 0;
        while made < count {
            let chunk = (count - made).min(20_000);
            let petitions: Vec<Petition> = (0..chunk)
                .map(|_| {
                    Submission::from_json(&generator.submission(), units, Utc::now()).expect("valid").accept(Utc::now())
                })
                .collect();
            index.add_bulk(&petitions)?;
            made += chunk;
            bar.set_position(made as u64);
        }
        index.commit(0)?;
        bar.finish_and_clear();
        println!("indexed {count} petitions in {:.1} s", started.elapsed().as_secs_f64());
    }
    println!("index holds {} petitions; running {queries} queries", index.num_docs());
    // Each search's segments read on the caller's thread alone, then on one thread per core:
    // the two measured in the same run.
    let parallel = std::thread::available_parallelism().map_or(1, |n| n.get()).min(voxpop_index::MAX_SEARCH_THREADS);
    for threads in if parallel > 1 { vec![1, parallel] } else { vec![1] } {
        index.set_search_threads(threads)?;
        println!("-- each search on {threads} thread(s)");
        for proximity in [false, true] {
            // Warm up: the first query of each kind loads posting lists from disk.
            for (q, province) in QUERIES {
                index.search(&request(q, *province, proximity))?;
            }
            let mut latencies = Vec::with_capacity(queries);
            let mut per_query: Vec<Vec<Duration>> = vec![Vec::new(); QUERIES.len()];
            let mut total_hits = 0usize;
            for i in 0..queries {
                let (q, province) = QUERIES[i % QUERIES.len()];
                let started = Instant::now();
                let results = index.search(&request(q, province, proximity))?;
                latencies.push(started.elapsed());
                per_query[i % QUERIES.len()].push(started.elapsed());
                total_hits += results.total;
            }
            latencies.sort();
            let percentile = |p: f64| percentile(&latencies, p);
            println!(
                "search latency over {count} petitions{}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (mean {} hits per query)",
                if proximity { " with proximity ranking" } else { " (default ranking)" },
                percentile(0.50).as_secs_f64() * 1e3,
                percentile(0.90).as_secs_f64() * 1e3,
                percentile(0.99).as_secs_f64() * 1e3,
                latencies.last().expect("at least one query").as_secs_f64() * 1e3,
                total_hits / queries.max(1)
            );
            // The queries that make the tail: the slowest by their median.
            let mut medians: Vec<(Duration, &str)> = per_query
                .iter_mut()
                .zip(QUERIES)
                .filter(|(runs, _)| !runs.is_empty())
                .map(|(runs, (q, _))| {
                    runs.sort();
                    (runs[runs.len() / 2], *q)
                })
                .collect();
            medians.sort_by(|a, b| b.cmp(a));
            let slowest: Vec<String> = medians
                .iter()
                .take(3)
                .map(|(median, q)| format!("{q:?} {:.1} ms", median.as_secs_f64() * 1e3))
                .collect();
            println!("  slowest queries (median): {}", slowest.join(", "));
        }
        // Throughput with searches arriving side by side: a search's segments are read on several
        // threads, which must not cost more than it saves once the cores are busy anyway.
        for clients in [1, 2, 4] {
            let started = Instant::now();
            let latencies: Vec<Duration> = std::thread::scope(|scope| {
                let workers: Vec<_> = (0..clients)
                    .map(|client| {
                        let index = &index;
                        scope.spawn(move || -> anyhow::Result<Vec<Duration>> {
                            let mut latencies = Vec::new();
                            for i in (client..queries).step_by(clients) {
                                let (q, province) = QUERIES[i % QUERIES.len()];
                                let started = Instant::now();
                                index.search(&request(q, province, false))?;
                                latencies.push(started.elapsed());
                            }
                            Ok(latencies)
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|worker| worker.join().expect("search thread"))
                    .collect::<anyhow::Result<Vec<_>>>()
            })?
            .into_iter()
            .flatten()
            .collect();
            let elapsed = started.elapsed().as_secs_f64();
            let mut sorted = latencies;
            sorted.sort();
            let p99 = percentile(&sorted, 0.99);
            println!(
                "{clients} concurrent client(s), default ranking: {:.0} queries/s, p99 {:.2} ms",
                sorted.len() as f64 / elapsed,
                p99.as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}

/// The `p`-th quantile (nearest rank) of `sorted` latencies, which hold at least one.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1).min(sorted.len() - 1)]
}

fn request(q: &str, province: Option<&str>, proximity: bool) -> SearchRequest {
    SearchRequest {
        q: q.to_owned(),
        province: province.map(str::to_owned),
        limit: 20,
        proximity,
        ..SearchRequest::default()
    }
}

/// A lake of `count` generated petitions under `dir` (generated once, then reused): spread over
/// the demo generator's 12 weeks, with language and topics as the pipeline assigns them.
async fn generated_lake(count: usize, dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    use voxpop_pipeline::assign::TopicAssigner;
    use voxpop_pipeline::lake::PetitionLake;
    let path = dir.join("lake").join("petitions");
    let mut lake = PetitionLake::open_or_create(&path).await?;
    let existing = lake.count().await?;
    if existing >= count {
        println!("reusing the lake in {} ({existing} petitions)", path.display());
        return Ok(path);
    }
    let missing = count - existing;
    let bar = progress_bar(missing as u64, "generating the lake");
    let enricher = Arc::new(voxpop_pipeline::enrich::Enricher::new(Units::embedded()));
    let assigner = TopicAssigner::new(Arc::new(voxpop_schema::Taxonomy::default_embedded().clone()));
    const CHUNK: usize = 250_000;
    let mut done = 0;
    let mut seed = 1_000 + existing as u64;
    while done < missing {
        let size = CHUNK.min(missing - done);
        // Two generator threads (the machine's cores), each with its own seed.
        let halves: Vec<Vec<Petition>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2u64)
                .map(|half| {
                    let (enricher, assigner) = (enricher.clone(), assigner.clone());
                    let n = if half == 0 { size / 2 } else { size - size / 2 };
                    let seed = seed * 2 + half;
                    scope.spawn(move || {
                        let units = Units::embedded();
                        let mut generator = DemoGenerator::new(seed);
                        let mut petitions: Vec<Petition> = (0..n)
                            .map(|_| {
                                let submission = generator.submission();
                                let submitted = submission["submitted_at"]
                                    .as_str()
                                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                                    .map_or_else(Utc::now, |t| t.with_timezone(&Utc));
                                let bytes = serde_json::to_vec(&submission).expect("serialise");
                                Submission::from_json_bytes(&bytes, units, Utc::now())
                                    .expect("generated petitions are valid")
                                    .accept(submitted)
                            })
                            .collect();
                        enricher.detect_languages(&mut petitions);
                        assigner.assign_all(&mut petitions);
                        petitions
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("generator thread")).collect()
        });
        let petitions: Vec<Petition> = halves.into_iter().flatten().collect();
        lake.append(Topic::Petitions, &petitions, &std::collections::BTreeMap::new()).await?;
        done += size;
        seed += 1;
        bar.inc(size as u64);
    }
    bar.finish();
    Ok(path)
}

/// `voxpop bench summary`: the weekly summary over the generated lake, and the aggregate it
/// runs (petitions per week, topic and province over 12 weeks) in DataFusion and in DuckDB.
pub async fn summary(
    count: usize,
    dir: &std::path::Path,
    venv: &std::path::Path,
    runs: usize,
    explain: bool,
) -> anyhow::Result<()> {
    let runs = runs.max(1);
    use voxpop_queries::summary::IsoWeek;
    let path = generated_lake(count, dir).await?;
    let queries = voxpop_queries::PetitionQueries::new(&path);
    let rows = queries.count().await?;
    // The last full week the generator covered.
    let week = IsoWeek::last_ended(Utc::now());
    let mut weeks = vec![week];
    while weeks.len() < 12 {
        let earliest = *weeks.last().expect("not empty");
        weeks.push(earliest.previous());
    }
    let labels: Vec<String> = weeks.iter().rev().map(|w| w.label()).collect();
    println!("{rows} petitions in the lake; summary of {}", week.label());
    let mut timings = Vec::new();
    let mut last_summary = None;
    for run in 0..4 {
        let started = Instant::now();
        let summary = queries.weekly_summary(week, None).await?;
        let elapsed = started.elapsed().as_secs_f64();
        if run > 0 {
            timings.push(elapsed);
        }
        last_summary = Some(summary);
    }
    timings.sort_by(f64::total_cmp);
    let summary = last_summary.expect("ran");
    println!(
        "weekly summary (totals, provinces, languages, channels, communes, topics x provinces x 12 weeks, spikes, rising terms, campaigns): median {:.3} s of 3 runs (after one warm-up); {} petitions that week, {} spikes, {} rising terms, {} campaigns",
        timings[1],
        summary.total,
        summary.spikes.len(),
        summary.rising_terms.len(),
        summary.campaigns.len()
    );
    let in_list = labels.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(",");
    let ctx = queries.session().await?.expect("the lake exists");
    // The aggregate as one SQL statement over `petitions` (plain strings), and as the summary
    // runs it (codes counted on their dictionary keys): the same groups and counts, both timed.
    let mut results = Vec::new();
    for summary_form in [false, true] {
        let mut times = Vec::new();
        let mut rows = Vec::new();
        for _ in 0..=runs {
            let started = Instant::now();
            rows = if summary_form {
                voxpop_queries::summary::bench_topic_counts(&ctx, &labels).await?
            } else {
                voxpop_queries::summary::bench_topic_counts_sql(&ctx, &labels).await?
            };
            times.push(started.elapsed().as_secs_f64());
        }
        times.remove(0);
        times.sort_by(f64::total_cmp);
        println!(
            "aggregate in DataFusion, Delta table, {}: median {:.3} s of {runs}, {} groups",
            if summary_form {
                "as the summary runs it (codes read as Parquet dictionaries, counted on their keys)"
            } else {
                "one SQL statement (plain strings)"
            },
            times[times.len() / 2],
            rows.len()
        );
        rows.sort();
        results.push(rows);
    }
    anyhow::ensure!(results[0] == results[1], "the summary's aggregate differs from the SQL aggregate");
    if explain {
        println!("{}", voxpop_queries::summary::bench_topic_counts_explain(&ctx, &labels).await?);
    }
    for (threads, views) in [(2, true), (2, false), (1, true)] {
        let (median, groups) =
            voxpop_queries::summary::bench_aggregate_over_files(&path, &labels, threads, views).await?;
        println!(
            "aggregate in DataFusion (the same Parquet files as a listing table, {threads} thread(s), strings read as {}): median {median:.3} s, {groups} groups",
            if views { "views" } else { "Utf8" }
        );
    }
    let script = voxpop_schema::source_file("scripts/bench_duckdb.py");
    let output = std::process::Command::new(venv.join("bin/python")).arg(script).arg(&path).arg(&in_list).output();
    match output {
        Ok(output) if output.status.success() => print!("{}", String::from_utf8_lossy(&output.stdout)),
        Ok(output) => println!("DuckDB run failed: {}", String::from_utf8_lossy(&output.stderr)),
        Err(err) => println!("DuckDB not run ({err}); scripts/test.sh installs it into the venv"),
    }
    Ok(())
}

/// `voxpop bench sql`: latency of read-only SQL over the generated lake, run in this process and
/// in a worker process of its own (what `serve` does, `voxpop_queries::sql::worker`), in turns:
/// what isolating each query costs. The worker is this binary (`voxpop sql-worker`).
pub async fn sql(count: usize, dir: &std::path::Path, runs: usize) -> anyhow::Result<()> {
    use voxpop_queries::sql::SqlRequest;
    use voxpop_queries::sql::worker::SqlWorkers;
    let runs = runs.max(1);
    let path = generated_lake(count, dir).await?;
    let in_process = voxpop_queries::PetitionQueries::new(&path);
    let isolated = voxpop_queries::PetitionQueries::new(&path);
    let program = std::env::current_exe()?;
    isolated.run_sql_in(SqlWorkers::new(
        program,
        vec!["sql-worker".into(), "--data-dir".into(), dir.as_os_str().to_owned()],
        1,
        dir.join("tmp").join("sql"),
    ));
    println!("{} petitions in the lake; median of {runs} runs after one warm-up, in turns", in_process.count().await?);
    let statements = [
        ("a constant", "SELECT 1"),
        ("count", "SELECT count(*) FROM petitions"),
        ("per province", "SELECT province_code, count(*) AS n FROM petitions GROUP BY province_code ORDER BY n DESC"),
        ("latest 1,000 with text", "SELECT id, title, body FROM petitions ORDER BY received_at DESC LIMIT 1000"),
    ];
    for (what, statement) in statements {
        let mut times = [Vec::new(), Vec::new()];
        let mut rows = [0, 0];
        for run in 0..=runs {
            for (i, queries) in [&in_process, &isolated].into_iter().enumerate() {
                let started = Instant::now();
                let result = queries.sql(&SqlRequest::new(statement)).await?;
                if run > 0 {
                    times[i].push(started.elapsed().as_secs_f64() * 1e3);
                }
                rows[i] = result.rows;
            }
        }
        anyhow::ensure!(rows[0] == rows[1], "{what}: {} rows in this process, {} in a worker", rows[0], rows[1]);
        let median = |times: &mut Vec<f64>| {
            times.sort_by(f64::total_cmp);
            times[times.len() / 2]
        };
        let (here, worker) = (median(&mut times[0]), median(&mut times[1]));
        println!(
            "{what:<24} {:>5} rows: in this process {here:8.1} ms, in a worker process {worker:8.1} ms (+{:.1} ms)",
            rows[0],
            worker - here
        );
    }
    Ok(())
}

/// `voxpop bench export`: rows/s exporting the generated lake to Parquet and to CSV.
pub async fn export(count: usize, dir: &std::path::Path) -> anyhow::Result<()> {
    use voxpop_queries::export::{ExportFormat, ExportRequest};
    let path = generated_lake(count, dir).await?;
    let queries = voxpop_queries::PetitionQueries::new(&path);
    for format in [ExportFormat::Parquet, ExportFormat::Csv] {
        let out = tempfile::tempdir_in(dir)?;
        let request = ExportRequest::new("petitions", format);
        let report = queries.export(&request, out.path(), &|_| {}).await?;
        let bytes: u64 = report.files.iter().map(|f| f.bytes).sum();
        println!(
            "export {:?} (personal data masked): {} rows in {:.2} s = {:.0} rows/s, {:.0} MB written",
            format,
            report.rows,
            report.elapsed.as_secs_f64(),
            report.rows as f64 / report.elapsed.as_secs_f64(),
            bytes as f64 / 1e6
        );
    }
    Ok(())
}

//! The CLI commands other than benchmarks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use tracing::{info, warn};
use voxpop_connectors::demo::DemoGenerator;
use voxpop_connectors::{Intake, IntakeError};
use voxpop_index::{PetitionIndex, SearchRequest};
use voxpop_pipeline::PipelineConfig;
use voxpop_pipeline::lake::PetitionLake;
use voxpop_schema::Submission;

use crate::http::{AppState, router};
use crate::stack::{DataLayout, Stack, StackConfig};

pub struct ServeOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub kafka: Option<String>,
    /// Seed this many demo petitions on first start.
    pub demo: Option<usize>,
    pub batch_size: usize,
    pub batch_interval: Duration,
    pub index_commit_interval: Duration,
    /// A taxonomy file instead of the shipped one.
    pub taxonomy: Option<PathBuf>,
    /// A model written by `voxpop topics train`, labelled with the taxonomy's codes.
    pub topic_model: Option<PathBuf>,
    /// Where to serve Arrow Flight SQL, if anywhere.
    pub flight: Option<SocketAddr>,
    /// Petitions a minute per client on the public intake (0: no limit).
    pub intake_per_minute: u32,
    /// Take the client from `X-Forwarded-For` (behind a reverse proxy).
    pub trust_forwarded_for: bool,
    /// Webhook URLs notified of every status change (besides `DIR/webhooks.toml`).
    pub webhooks: Vec<String>,
    /// SQL queries that may run at once, each in a process of its own (0: in the server's
    /// process, without a hard memory limit).
    pub sql_workers: usize,
    /// How long a connection may take to send a request head, and a body may pause.
    pub timeouts: crate::listener::Timeouts,
}

/// A progress bar on a terminal; hidden (and replaced by log lines) when output is not one.
pub fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

pub async fn serve(options: ServeOptions) -> anyhow::Result<()> {
    // First of all: nothing may read the code lists before the data directory's are installed.
    voxpop_connectors::code_lists::install_newest(&options.data_dir)?;
    let config = StackConfig {
        data_dir: options.data_dir.clone(),
        kafka: options.kafka.clone(),
        pipeline: PipelineConfig {
            batch_size: options.batch_size,
            batch_interval: options.batch_interval,
            index_commit_interval: options.index_commit_interval,
            ..PipelineConfig::default()
        },
        run_pipeline: true,
        topics: Some(crate::topics_cmd::assigner(options.taxonomy.as_deref(), options.topic_model.as_deref())?),
    };
    let stack = Stack::start(config).await?;
    if options.sql_workers > 0 {
        // User SQL in child processes of this same binary (`voxpop sql-worker`), each with a
        // hard memory limit and killed at its time limit: see `voxpop_queries::sql::worker`.
        let program = std::env::current_exe().context("cannot find the voxpop binary for the SQL workers")?;
        let args = vec!["sql-worker".into(), "--data-dir".into(), options.data_dir.clone().into_os_string()];
        let scratch = options.data_dir.join("tmp").join("sql");
        stack.queries.run_sql_in(voxpop_queries::sql::worker::SqlWorkers::new(
            program,
            args,
            options.sql_workers,
            scratch,
        ));
    }
    let tokens = Arc::new(crate::auth::TokenStore::open(&options.data_dir)?);
    if tokens.is_empty() {
        warn!("no API tokens in this data directory: read paths are open (create one with `voxpop token create`)");
    }
    let ready = Arc::new(AtomicBool::new(false));
    // Webhooks: every notification POSTed to each configured URL, at least once, visible at
    // /api/v1/notifications/deliveries. The sender lives until the server stops.
    let webhook_config = crate::webhooks::WebhookConfig::load(&options.data_dir, &options.webhooks)?;
    let (webhook_stop, webhook_stop_rx) = tokio::sync::watch::channel(false);
    let (webhook_board, webhook_workers) = if webhook_config.urls.is_empty() {
        (Arc::new(crate::webhooks::DeliveryBoard::new()), Vec::new())
    } else {
        info!(urls = webhook_config.urls.len(), "notifying webhooks");
        crate::webhooks::Dispatcher::start(stack.log.clone(), &options.data_dir, webhook_config, webhook_stop_rx)
    };
    let state = AppState {
        intake: stack.intake.clone(),
        index: stack.index.clone(),
        queries: stack.queries.clone(),
        stats: stack.stats.clone(),
        log_kind: stack.log.kind(),
        ready: ready.clone(),
        exports: Arc::new(crate::exchange::ExportJobs::new(options.data_dir.join("exports"))),
        log: stack.log.clone(),
        reports: Arc::new(voxpop_queries::reports::ReportQueries::new(&stack.layout.reports_table())),
        villages: stack.layout.villages(),
        registers: Arc::new(voxpop_queries::registers::RegisterQueries::new(
            &stack.layout.lake(),
            &stack.layout.villages(),
        )),
        tokens: tokens.clone(),
        webhooks: webhook_board.clone(),
        desk: stack.desk.clone(),
        handling_queries: Arc::new(voxpop_queries::handling::HandlingQueries::new(&stack.layout.lake())),
        intake_limit: Arc::new(crate::ratelimit::IntakeLimit::new(
            options.intake_per_minute,
            (options.intake_per_minute / 3).max(5),
            options.trust_forwarded_for,
        )),
    };
    crate::ratelimit::IntakeLimit::spawn_housekeeping(state.intake_limit.clone());
    crate::exchange::ExportJobs::spawn_sweeper(
        state.exports.clone(),
        crate::exchange::EXPORT_SWEEP_INTERVAL,
        crate::exchange::EXPORT_RETENTION,
    );
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let address = listener.local_addr()?;
    if let Some(flight) = options.flight {
        // Bound before readiness is announced: a busy port is an error at start, not later.
        let probe =
            std::net::TcpListener::bind(flight).with_context(|| format!("cannot serve Flight SQL on {flight}"))?;
        drop(probe);
        let (queries, tokens) = (stack.queries.clone(), tokens.clone());
        tokio::spawn(async move {
            if let Err(err) = crate::flight::serve(queries, tokens, flight).await {
                warn!(error = %err, "Arrow Flight SQL stopped");
            }
        });
    }
    ready.store(true, Ordering::Release);
    info!(%address, data_dir = %options.data_dir.display(), log = stack.log.kind(), "voxpop is serving: open http://{address}/healthz");
    if options.demo.is_some() {
        let (log, villages) = (stack.log.clone(), stack.layout.villages());
        let marker = stack.layout.root.join("demo-reports-seeded");
        tokio::spawn(async move {
            if marker.exists() {
                return;
            }
            match seed_demo_reports(log, &villages).await {
                Ok(values) => {
                    let _ = std::fs::write(&marker, format!("{values}\n"));
                    info!(values, "demo weekly reports seeded (synthetic villages and values, Hà Nội)");
                }
                Err(err) => warn!(error = %err, "seeding demo reports failed"),
            }
        });
        // Synthetic handling for a sample of the demo petitions, once they are in the lake.
        let (desk, queries, root) = (stack.desk.clone(), stack.queries.clone(), stack.layout.root.clone());
        tokio::spawn(crate::demo_handling::seed_once(desk, queries, root));
    }
    if let Some(count) = options.demo {
        let intake = stack.intake.clone();
        let queries = stack.queries.clone();
        let marker = stack.layout.root.join("demo-seeded");
        tokio::spawn(async move {
            if marker.exists() {
                info!("demo petitions were seeded on an earlier start");
                return;
            }
            match seed_demo(intake, count).await {
                Ok(accepted) => {
                    let _ = std::fs::write(&marker, format!("{accepted}\n"));
                    let in_lake = queries.count().await.unwrap_or(0);
                    info!(accepted, in_lake, "demo petitions seeded (synthetic, channel `demo`)");
                }
                Err(err) => warn!(error = %err, "seeding demo petitions failed"),
            }
        });
    }
    crate::listener::serve(listener, router(state), options.timeouts, shutdown_signal()).await;
    info!("shutting down");
    let _ = webhook_stop.send(true);
    for worker in webhook_workers {
        let _ = worker.await;
    }
    stack.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

/// Submits `count` synthetic petitions through intake (the same path as real ones), with a
/// progress bar. Idempotent: the external ids repeat with the seed, so a re-run adds nothing.
/// The demo's weekly reports: a register of synthetic villages for every commune, and the last
/// two full weeks of synthetic values for the units of Hà Nội (province 01) and every province,
/// through the log like any submission. Labelled synthetic (`submitted_by`).
pub async fn seed_demo_reports(log: Arc<dyn voxpop_pipeline::EventLog>, villages_path: &Path) -> anyhow::Result<usize> {
    use voxpop_queries::synthesis::{OrgTree, synthetic_villages, synthetic_week};
    use voxpop_schema::reports::{Catalogue, Level, current_week};
    let units = voxpop_schema::Units::embedded();
    let villages = synthetic_villages(units, 2025);
    voxpop_queries::reports::write_villages(villages_path, &villages)?;
    let tree = OrgTree::new(units, &villages)?;
    let now = chrono::Utc::now();
    let mut values = 0;
    for days_back in [7, 14] {
        let week = current_week(now - chrono::Duration::days(days_back));
        let rows = synthetic_week(&tree, Catalogue::default_embedded(), &week, days_back as u64)?;
        let records: Vec<voxpop_pipeline::Record> = rows
            .iter()
            .filter(|row| {
                matches!(row.level, Level::Central | Level::Province)
                    || row
                        .unit_code
                        .get(..5)
                        .and_then(|code| units.commune(code))
                        .is_some_and(|c| c.province_code == "01")
            })
            .map(|row| voxpop_pipeline::Record {
                key: row.unit_code.clone().into_bytes(),
                payload: serde_json::to_vec(row).expect("serialise"),
            })
            .collect();
        values += records.len();
        for chunk in records.chunks(10_000) {
            log.append(voxpop_pipeline::Topic::Reports, chunk.to_vec()).await?;
        }
    }
    Ok(values)
}

pub async fn seed_demo(intake: Arc<Intake>, count: usize) -> anyhow::Result<usize> {
    let bar = progress_bar(count as u64, "seeding demo petitions");
    let mut generator = DemoGenerator::new(2025);
    let units = voxpop_schema::Units::embedded();
    let submissions: Vec<Submission> = (0..count)
        .map(|_| {
            Submission::from_json(&generator.submission(), units, chrono::Utc::now())
                .map_err(|errors| anyhow::anyhow!("{errors:?}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let accepted = Arc::new(AtomicUsize::new(0));
    let queue = Arc::new(std::sync::Mutex::new(submissions));
    let mut workers = Vec::new();
    for _ in 0..64 {
        let (intake, queue, accepted, bar) = (intake.clone(), queue.clone(), accepted.clone(), bar.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().expect("queue lock").pop();
                let Some(submission) = next else {
                    return Ok::<(), IntakeError>(());
                };
                intake.submit(submission).await?;
                accepted.fetch_add(1, Ordering::Relaxed);
                bar.inc(1);
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    bar.finish();
    Ok(accepted.load(Ordering::Relaxed))
}

pub fn search(
    data_dir: &Path,
    query: &str,
    province: Option<String>,
    commune: Option<String>,
    limit: usize,
) -> anyhow::Result<()> {
    let layout = DataLayout::new(data_dir);
    let index = PetitionIndex::open_read_only(&layout.index())
        .with_context(|| format!("no index in `{}`", layout.index().display()))?;
    let request = SearchRequest { q: query.to_owned(), province, commune, limit, ..SearchRequest::default() };
    let results = index.search(&request)?;
    println!("{} petitions match", results.total);
    for hit in &results.hits {
        println!(
            "\n{}  {}  {}/{}  score {:.2}",
            hit.id,
            hit.received_at.format("%Y-%m-%d"),
            hit.province_code,
            hit.commune_code,
            hit.score
        );
        println!("  {}", hit.title);
        println!("  {}", hit.snippet.replace("<mark>", "[").replace("</mark>", "]"));
    }
    if !results.province_facets.is_empty() {
        let facets: Vec<String> =
            results.province_facets.iter().map(|f| format!("{}: {}", f.province_code, f.count)).collect();
        println!("\nby province: {}", facets.join(", "));
    }
    Ok(())
}

/// Prints the weekly summary of a data directory.
pub async fn summary(data_dir: &Path, week: Option<&str>, province: Option<&str>, json: bool) -> anyhow::Result<()> {
    use voxpop_queries::summary::{IsoWeek, thousands};
    let week = match week {
        Some(raw) => {
            IsoWeek::parse(raw).ok_or_else(|| anyhow::anyhow!("`{raw}` is not an ISO week such as 2025-W38"))?
        }
        None => IsoWeek::last_ended(chrono::Utc::now()),
    };
    let layout = DataLayout::new(data_dir);
    let queries = voxpop_queries::PetitionQueries::new(&layout.petitions_table());
    let summary = queries.weekly_summary(week, province).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    let change =
        summary.change_percent.map_or("không có tuần trước để so sánh".to_owned(), |p| format!("{p:+.1}%"));
    match (summary.counted_until, summary.previous_to_date) {
        (Some(until), Some(to_date)) => println!(
            "Tuần {} (chưa kết thúc, số liệu đến {}): {} kiến nghị (cùng kỳ tuần {}: {}, {change}; cả tuần {}: {})",
            summary.week,
            until.with_timezone(&voxpop_schema::calendar::vietnam_offset()).format("%H:%M %d/%m/%Y"),
            thousands(summary.total),
            summary.previous_week,
            thousands(to_date),
            summary.previous_week,
            thousands(summary.previous_total)
        ),
        _ => println!(
            "Tuần {}: {} kiến nghị (tuần {}: {}, {change})",
            summary.week,
            thousands(summary.total),
            summary.previous_week,
            thousands(summary.previous_total)
        ),
    }
    println!("Xã, phường, đặc khu có kiến nghị: {}", summary.communes_with_petitions.text);
    // A week in progress: the rows below compare with the same span of the week before.
    let last_week = if summary.complete { "tuần trước" } else { "cùng kỳ tuần trước" };
    println!("Theo tỉnh, thành phố:");
    for row in summary.by_province.iter().filter(|row| row.count > 0 || row.previous > 0).take(10) {
        println!("  {:<28} {:>8}  ({last_week} {})", row.province_name, thousands(row.count), thousands(row.previous));
    }
    let shares = |title: &str, rows: &[voxpop_queries::summary::Share]| {
        let parts: Vec<String> = rows.iter().map(|s| format!("{} {:.1}%", s.label, 100.0 * s.share)).collect();
        println!("{title}: {}", parts.join(", "));
    };
    shares("Ngôn ngữ", &summary.by_language);
    shares("Kênh tiếp nhận", &summary.by_channel);
    println!("Theo chủ đề:");
    for topic in summary.by_topic.iter().filter(|t| t.count > 0 || t.previous > 0) {
        println!("  {:<44} {:>8}  ({last_week} {})", topic.label, thousands(topic.count), thousands(topic.previous));
    }
    if !summary.spikes.is_empty() {
        println!("Điểm nóng (tăng đột biến so với 8 tuần trước):");
        for spike in summary.spikes.iter().take(10) {
            println!(
                "  {} — {}: {} kiến nghị (trung bình {:.1}, z = {:.1})",
                spike.topic_label, spike.province_name, spike.count, spike.baseline_mean, spike.z
            );
        }
    }
    if !summary.rising_terms.is_empty() {
        let terms: Vec<&str> = summary.rising_terms.iter().take(10).map(|t| t.term.as_str()).collect();
        println!("Từ ngữ nổi lên: {}", terms.join(", "));
    }
    println!(
        "Vụ việc: {} kiến nghị ứng với khoảng {} vụ việc khác nhau",
        thousands(summary.total),
        thousands(summary.distinct_matters)
    );
    for campaign in &summary.campaigns {
        println!(
            "  {} kiến nghị, {} người, {} xã: {} — {}…",
            campaign.size,
            campaign.citizens,
            campaign.communes.len(),
            campaign.title,
            campaign.excerpt.chars().take(120).collect::<String>()
        );
    }
    Ok(())
}

/// `voxpop import`: petitions from another system through the log and the pipeline, with a
/// report of every rejected row.
pub async fn import(
    data_dir: &Path,
    source: &Path,
    mapping: Option<&Path>,
    kafka: Option<String>,
) -> anyhow::Result<()> {
    use voxpop_connectors::Accepted;
    use voxpop_connectors::import::{Mapping, package_is_masked, read_table, tables_of, to_submissions};
    let mapping = match mapping {
        Some(path) => Mapping::from_toml_str(
            &std::fs::read_to_string(path).with_context(|| format!("reading the mapping {}", path.display()))?,
        )?,
        // Masked contact fields are no one's details: not imported.
        None if package_is_masked(source) => Mapping::voxpop_without_contact(),
        None => Mapping::voxpop(),
    };
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    let mut rows = 0;
    for table in tables_of(source)? {
        let source_rows = read_table(&table)?;
        rows += source_rows.len();
        let name = table.file_name().map_or_else(|| table.display().to_string(), |n| n.to_string_lossy().into_owned());
        let (good, bad) =
            to_submissions(&name, &source_rows, &mapping, voxpop_schema::Units::embedded(), chrono::Utc::now());
        accepted.extend(good);
        rejected.extend(bad);
    }
    for row in &rejected {
        for error in &row.errors {
            println!("rejected {} line {}: {}: {}", row.file, row.line, error.field, error.message);
        }
    }
    let (mut created, mut duplicates) = (0u64, 0u64);
    if !accepted.is_empty() {
        let stack = Stack::start(StackConfig {
            data_dir: data_dir.to_owned(),
            kafka,
            pipeline: PipelineConfig::default(),
            run_pipeline: true,
            topics: None,
        })
        .await?;
        let written_before = stack.stats.written.load(Ordering::Relaxed);
        let bar = progress_bar(accepted.len() as u64, "importing");
        for (_, submission) in accepted {
            match stack.intake.submit(submission).await.map_err(|err| anyhow::anyhow!("{err}"))? {
                Accepted::Created(_) => created += 1,
                Accepted::Duplicate(_) => duplicates += 1,
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        // Done when the pipeline has written them and the index has applied that lake version.
        loop {
            let written = stack.stats.written.load(Ordering::Relaxed) - written_before;
            let lake = stack.stats.lake_version.load(Ordering::Relaxed);
            if written >= created && stack.stats.index_version.load(Ordering::Relaxed) >= lake {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stack.stop().await;
    }
    println!(
        "{rows} rows read: {created} petitions imported, {duplicates} already imported before, {} rows rejected",
        rejected.len()
    );
    Ok(())
}

/// `voxpop report weekly`: the synthesis of a week for a unit.
pub async fn report_weekly(
    data_dir: &Path,
    week: &str,
    unit: &str,
    xlsx: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    let layout = DataLayout::new(data_dir);
    let queries = voxpop_queries::reports::ReportQueries::new(&layout.reports_table());
    let villages = voxpop_queries::reports::read_villages(&layout.villages())?;
    let synthesis = queries.weekly(week, unit, &villages).await?;
    if let Some(path) = xlsx {
        std::fs::write(path, crate::reports_api::synthesis_xlsx(&synthesis)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&synthesis)?);
        return Ok(());
    }
    println!("Báo cáo tuần {} — {} ({})", synthesis.week, synthesis.name, synthesis.code);
    for level in &synthesis.coverage {
        println!("  {:<32} {}", level.label, level.coverage.text);
    }
    for indicator in &synthesis.indicators {
        let value = match &indicator.value {
            None => "—".to_owned(),
            Some(value) => serde_json::to_string(value)?.trim_matches('"').to_owned(),
        };
        let change = indicator.change.map_or(String::new(), |c| format!(" ({c:+})"));
        println!("  {:<48} {value}{change}", indicator.label);
    }
    if !synthesis.missing.is_empty() {
        println!("  Chưa báo cáo: {} đơn vị", synthesis.missing.len());
    }
    Ok(())
}

/// `voxpop export`: one Data Package, with a progress bar.
pub async fn export(data_dir: &Path, request: voxpop_queries::export::ExportRequest, out: &Path) -> anyhow::Result<()> {
    let layout = DataLayout::new(data_dir);
    let queries = voxpop_queries::PetitionQueries::new(&layout.petitions_table());
    let total =
        if request.dataset == "petitions" && request.since_version.is_none() { queries.count().await? } else { 0 };
    let bar = progress_bar(total as u64, "exporting");
    let report = queries.export(&request, out, &|rows| bar.set_position(rows)).await?;
    bar.finish_and_clear();
    println!(
        "exported {} rows of `{}` at lake version {} in {:.1} s ({:.0} rows/s) to {}",
        report.rows,
        report.dataset,
        report.lake_version_to,
        report.elapsed.as_secs_f64(),
        report.rows as f64 / report.elapsed.as_secs_f64().max(1e-9),
        out.display()
    );
    for file in &report.files {
        println!("  {:<28} {:>9} rows {:>12} bytes  sha256:{}", file.path, file.rows, file.bytes, file.sha256);
    }
    Ok(())
}

/// `voxpop sql`: one read-only query, printed as a table, CSV or JSON.
pub async fn sql(
    data_dir: &Path,
    query: &str,
    format: &str,
    max_rows: usize,
    personal_data: bool,
) -> anyhow::Result<()> {
    use voxpop_queries::sql;
    let layout = DataLayout::new(data_dir);
    let queries = voxpop_queries::PetitionQueries::new(&layout.petitions_table());
    let mut request = sql::SqlRequest::new(query);
    request.max_rows = max_rows;
    request.personal_data = personal_data;
    let result = queries.sql(&request).await?;
    match format {
        "csv" => std::io::Write::write_all(&mut std::io::stdout(), &sql::to_csv(&result)?)?,
        "json" => println!("{}", serde_json::to_string_pretty(&sql::to_json_rows(&result)?)?),
        _ => println!("{}", sql::to_table(&result)?),
    }
    eprintln!(
        "{} rows{} in {:.3} s",
        result.rows,
        if result.truncated { format!(" (truncated at {max_rows})") } else { String::new() },
        result.elapsed.as_secs_f64()
    );
    Ok(())
}

/// `voxpop sql-worker`: one query from stdin, answered on stdout, for `serve`. The process first
/// limits its own memory to [`WORKER_MEMORY_BYTES`](voxpop_queries::sql::worker::WORKER_MEMORY_BYTES)
/// (writable private memory: heap, stacks, anonymous maps), so a query that keeps allocating
/// ends this process, not the server.
pub async fn sql_worker(data_dir: &Path) -> anyhow::Result<()> {
    use rustix::process::{Resource, Rlimit, Signal, getppid, set_parent_process_death_signal, setrlimit};
    // Ends with the server: a worker orphaned by a killed server would run on to its own time
    // limit outside the slots of the next one.
    set_parent_process_death_signal(Some(Signal::KILL)).context("cannot tie the SQL worker to the server")?;
    anyhow::ensure!(getppid().is_some_and(|parent| parent.as_raw_nonzero().get() != 1), "the server is gone");
    let limit = voxpop_queries::sql::worker::WORKER_MEMORY_BYTES;
    setrlimit(Resource::Data, Rlimit { current: Some(limit), maximum: Some(limit) })
        .context("cannot limit the SQL worker's memory")?;
    let layout = DataLayout::new(data_dir);
    let queries = voxpop_queries::PetitionQueries::new(&layout.petitions_table());
    voxpop_queries::sql::worker::answer_one(&queries).await?;
    Ok(())
}

/// `voxpop schema`: what the national schema documents, from the code.
pub fn schema(markdown: bool, dataset: Option<&str>) -> anyhow::Result<()> {
    use voxpop_schema::datasets;
    match (markdown, dataset) {
        (true, _) => print!("{}", datasets::reference_markdown()),
        (false, Some(name)) => {
            let Some(spec) = datasets::dataset(name) else {
                let known: Vec<&str> = datasets::datasets().iter().map(|d| d.name).collect();
                anyhow::bail!("unknown dataset `{name}`, expected one of {}", known.join(", "));
            };
            println!("{}", serde_json::to_string_pretty(&spec.table_schema())?);
        }
        (false, None) => {
            for spec in datasets::datasets() {
                println!("{:<20} {} / {}", spec.name, spec.title_vi, spec.title_en);
            }
        }
    }
    Ok(())
}

/// Handling states read from the lake, for a rebuild with the server stopped.
struct LakeStates(std::collections::HashMap<uuid::Uuid, &'static str>);

impl voxpop_index::StateSource for LakeStates {
    fn state_of(&self, id: &uuid::Uuid) -> Option<&'static str> {
        self.0.get(id).copied()
    }
}

pub async fn reindex(data_dir: &Path) -> anyhow::Result<()> {
    let layout = DataLayout::new(data_dir);
    let lake = PetitionLake::open_or_create(&layout.petitions_table()).await?;
    let version = lake.version();
    let total = lake.count().await?;
    let index = Arc::new(PetitionIndex::open_or_recreate(&layout.index())?.0);
    // Documents carry their handling state, as the lake's `petition_status` has it.
    let statuses = voxpop_pipeline::handling::HandlingLake::open_or_create(&layout.lake()).await?.statuses().await?;
    let states: std::collections::HashMap<uuid::Uuid, &'static str> =
        statuses.into_iter().map(|(id, status)| (id, status.state.as_str())).collect();
    index.set_state_source(Arc::new(LakeStates(states)));
    index.clear()?;
    let bar = progress_bar(total as u64, "reindexing");
    lake.scan_all(|petitions| {
        index.add_bulk(&petitions)?;
        bar.inc(petitions.len() as u64);
        Ok(())
    })
    .await?;
    index.commit(version)?;
    bar.finish();
    println!("reindexed {total} petitions at lake version {version}");
    Ok(())
}

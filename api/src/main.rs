//! `voxpop`: the command-line entry point.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use voxpop_api::{commands, topics_cmd};
use voxpop_pipeline::topics::Algorithm;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_decommits` in mimalloc.h's `mi_option_t` (v2 and v3 alike); the Rust
/// bindings name no constant for it.
const MI_OPTION_PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;

/// mimalloc hands memory that stays free for a second back to the OS, by default by decommitting
/// it (`MADV_DONTNEED`); the next allocation there faults every page in again, zeroed. Ingest
/// frees and reallocates large buffers once per micro-batch (petitions, Arrow columns, Parquet
/// pages, tantivy's arenas), so it paid ~2 page faults per petition. Purging by reset instead
/// (`MADV_FREE`) leaves the pages mapped until the kernel needs them: 0.0-0.5 faults per petition,
/// and the ingest benchmark's process took 13.4 CPU-s instead of 14.5 (docs/BENCHMARKS.md). The
/// memory still counts in RSS until the kernel reclaims it under pressure.
/// `MIMALLOC_PURGE_DECOMMITS` in the environment wins.
#[allow(unsafe_code)]
fn keep_freed_pages() {
    if std::env::var_os("MIMALLOC_PURGE_DECOMMITS").is_none() {
        // SAFETY: `mi_option_set` stores one integer in mimalloc's option table (0 and 1 are both
        // valid for this option); mimalloc reads it at each purge, from any thread.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DECOMMITS, 0) };
    }
}

#[derive(Parser)]
#[command(name = "voxpop", version, about = "Petitions and public opinion: intake, lake, search")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the API, the pipeline and the index in one process.
    Serve {
        /// Where the log, the lake and the index live.
        #[arg(long, env = "VOXPOP_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        #[arg(long, env = "VOXPOP_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Kafka bootstrap servers (`host:port,...`); without it the embedded log is used.
        #[arg(long, env = "VOXPOP_KAFKA")]
        kafka: Option<String>,
        /// On first start, seed synthetic demo petitions through the normal intake path.
        #[arg(long)]
        demo: bool,
        /// How many demo petitions to seed.
        #[arg(long, default_value_t = 20_000)]
        demo_count: usize,
        /// Most records per lake commit.
        #[arg(long, env = "VOXPOP_BATCH_SIZE", default_value_t = voxpop_pipeline::DEFAULT_BATCH_SIZE)]
        batch_size: usize,
        /// Longest a record waits for its micro-batch, in milliseconds.
        #[arg(long, env = "VOXPOP_BATCH_INTERVAL_MS", default_value_t = voxpop_pipeline::DEFAULT_BATCH_INTERVAL_MS)]
        batch_interval_ms: u64,
        /// While petitions keep arriving, the search index commits (makes new petitions
        /// searchable) at most this often, in milliseconds; a lone petition is searchable at once.
        #[arg(long, env = "VOXPOP_INDEX_COMMIT_INTERVAL_MS", default_value_t = voxpop_pipeline::DEFAULT_INDEX_COMMIT_INTERVAL_MS)]
        index_commit_interval_ms: u64,
        /// Topic taxonomy (TOML, the format of schema/data/topics.toml) instead of the shipped one.
        #[arg(long, env = "VOXPOP_TAXONOMY")]
        taxonomy: Option<PathBuf>,
        /// Topic model from `voxpop topics train`, labelled with the taxonomy's codes.
        #[arg(long, env = "VOXPOP_TOPIC_MODEL")]
        topic_model: Option<PathBuf>,
        /// Also serve Arrow Flight SQL here (e.g. 127.0.0.1:8815) for ADBC/JDBC clients.
        #[arg(long, env = "VOXPOP_FLIGHT")]
        flight: Option<SocketAddr>,
        /// Petitions a minute one client may send to the public intake (0: no limit); over it
        /// the answer is 429 with Retry-After.
        #[arg(long, env = "VOXPOP_INTAKE_PER_MINUTE", default_value_t = 60)]
        intake_per_minute: u32,
        /// Take the client's address from X-Forwarded-For (only behind a reverse proxy that
        /// sets it).
        #[arg(long, env = "VOXPOP_TRUST_FORWARDED_FOR")]
        trust_forwarded_for: bool,
        /// A URL to POST every notification to (repeatable; also `DIR/webhooks.toml`).
        #[arg(long = "webhook")]
        webhooks: Vec<String>,
        /// SQL queries that may run at once, each in a process of its own with a hard memory
        /// limit; 0 runs them in the server's process.
        #[arg(long, env = "VOXPOP_SQL_WORKERS", default_value_t = 2)]
        sql_workers: usize,
        /// Milliseconds a connection may take to send a request head (also how long an idle
        /// kept-alive connection stays open).
        #[arg(long, env = "VOXPOP_HEADER_READ_TIMEOUT_MS",
              default_value_t = voxpop_api::listener::HEADER_READ_TIMEOUT.as_millis() as u64,
              value_parser = clap::value_parser!(u64).range(1..))]
        header_read_timeout_ms: u64,
        /// Milliseconds a request body may pause before the request is answered 408.
        #[arg(long, env = "VOXPOP_BODY_READ_TIMEOUT_MS",
              default_value_t = voxpop_api::listener::BODY_READ_TIMEOUT.as_millis() as u64,
              value_parser = clap::value_parser!(u64).range(1..))]
        body_read_timeout_ms: u64,
        /// Milliseconds writing an answer may make no progress (the client reads nothing) before
        /// the connection is closed and the answer dropped; a client that keeps reading, however
        /// slowly, is not cut.
        #[arg(long, env = "VOXPOP_WRITE_STALL_TIMEOUT_MS",
              default_value_t = voxpop_api::listener::WRITE_STALL_TIMEOUT.as_millis() as u64,
              value_parser = clap::value_parser!(u64).range(1..))]
        write_stall_timeout_ms: u64,
    },
    /// Searches the index of a data directory.
    Search {
        query: String,
        #[arg(long)]
        province: Option<String>,
        #[arg(long)]
        commune: Option<String>,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        #[arg(long, env = "VOXPOP_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
    /// The weekly summary of a data directory (what leaders read), as text or JSON.
    Summary {
        /// ISO week, e.g. 2025-W38 (weeks begin on Monday in Vietnam); the last week that has
        /// ended when omitted.
        #[arg(long)]
        week: Option<String>,
        #[arg(long)]
        province: Option<String>,
        #[arg(long)]
        json: bool,
        #[arg(long, env = "VOXPOP_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
    /// Rebuilds the index from the lake.
    Reindex {
        #[arg(long, env = "VOXPOP_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
    /// Exports a dataset as a Data Package (data files + datapackage.json with Table Schemas,
    /// row counts, SHA-256 and a DCAT-style description).
    Export {
        #[arg(long, env = "VOXPOP_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// petitions, petition_events, petition_status, weekly_reports, provinces, communes,
        /// communes_pre2025 or unit_crosswalk_2025.
        #[arg(long)]
        dataset: String,
        /// parquet, csv (UTF-8 with a BOM, for Excel) or xlsx.
        #[arg(long, default_value = "parquet")]
        format: String,
        /// First day (YYYY-MM-DD, UTC) of the rows: petitions received, events taken, statuses
        /// updated, report values submitted.
        #[arg(long, conflicts_with = "since_version")]
        from: Option<chrono::NaiveDate>,
        /// Last day (YYYY-MM-DD, UTC) of the rows, as `--from`.
        #[arg(long, conflicts_with = "since_version")]
        to: Option<chrono::NaiveDate>,
        /// Only rows added or changed after this lake version (Delta change data feed).
        #[arg(long)]
        since_version: Option<i64>,
        /// Only rows of this province (the petition's place; for weekly reports, its units).
        #[arg(long)]
        province: Option<String>,
        /// Keep contact fields and numbers in the text in clear (for roles allowed to see them).
        #[arg(long)]
        personal_data: bool,
        #[arg(long)]
        out: PathBuf,
    },
    /// Imports petitions from a Data Package directory, or from one CSV/XLSX/Parquet file with
    /// `--mapping` (TOML: `[columns]` title = "SourceColumn", ...). Rejected rows are listed with
    /// their line and field; importing the same rows again adds nothing. With `--villages`, PATH
    /// is a villages register (CSV `code,name`) added to the registers instead. With
    /// `--code-lists`, PATH is an update of the administrative code lists, stored as a new version
    /// under DIR/reference/units/ when every row passes (nothing otherwise).
    Import {
        path: PathBuf,
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// PATH is a villages register (`code,name`, optionally `commune_code`, `removed`).
        #[arg(long, conflicts_with = "mapping")]
        villages: bool,
        /// PATH updates the code lists: a Data Package with resources `provinces`, `communes`,
        /// `communes_pre2025`, `unit_crosswalk_2025` (any subset; each replaces its whole list), or
        /// one CSV/XLSX/Parquet file of one list (see --dataset). Retire a unit with a `valid_to`;
        /// codes are never deleted. Commands use the newest version from then on (restart a
        /// running server).
        #[arg(long, conflicts_with_all = ["mapping", "villages"])]
        code_lists: bool,
        /// With --code-lists and a single file: which list it holds (by default its file name,
        /// e.g. communes.csv).
        #[arg(long, requires = "code_lists")]
        dataset: Option<String>,
        #[arg(long, env = "VOXPOP_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        #[arg(long, env = "VOXPOP_KAFKA")]
        kafka: Option<String>,
    },
    /// Weekly reports of units: the synthesis of a week for a unit and everything below it.
    Report {
        #[command(subcommand)]
        report: ReportCommand,
    },
    /// API tokens: who reads what (a unit and everything under it).
    Token {
        #[command(subcommand)]
        token: TokenCommand,
    },
    /// Runs one read-only SQL query over the lake (DataFusion SQL; tables: petitions,
    /// petition_events, petition_status, weekly_reports, register_entries, provinces, communes,
    /// communes_pre2025, unit_crosswalk_2025).
    Sql {
        query: String,
        #[arg(long, env = "VOXPOP_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// table, csv or json.
        #[arg(long, default_value = "table")]
        format: String,
        #[arg(long, default_value_t = voxpop_queries::sql::DEFAULT_MAX_ROWS)]
        max_rows: usize,
        /// Keep contact fields and numbers in the text in clear.
        #[arg(long)]
        personal_data: bool,
    },
    /// Runs one SQL query read from stdin and answers on stdout: the process `serve` starts
    /// for each query, with its own memory limit (internal).
    #[command(hide = true)]
    SqlWorker {
        #[arg(long, env = "VOXPOP_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
    /// The national schema: the reference page (`--markdown`, as in docs/SCHEMA.md) or the
    /// Frictionless Table Schema of one dataset (`--dataset NAME`).
    Schema {
        #[arg(long)]
        markdown: bool,
        #[arg(long)]
        dataset: Option<String>,
    },
    /// Benchmarks (figures for docs/BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        bench: BenchCommand,
    },
    /// Topics: train or measure the classifier, re-apply the taxonomy to the lake.
    Topics {
        #[command(subcommand)]
        topics: TopicsCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Creates a token for a unit and a role; prints it once (only a salted hash is kept).
    Create {
        /// 00 (central), a province code or a 2025 commune code.
        #[arg(long)]
        unit: String,
        /// officer, leader, data_engineer or admin.
        #[arg(long)]
        role: String,
        #[arg(long, env = "VOXPOP_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
    /// Lists the tokens (id, unit, role, created; never the secrets).
    List {
        #[arg(long, env = "VOXPOP_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
    /// Revokes a token by its id (`vxp_<id>_...`); a running server refuses it at once.
    Revoke {
        id: String,
        #[arg(long, env = "VOXPOP_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Indicators rolled up, coverage per level ("2,280/3,321 (68.65%)"), units missing, change.
    Weekly {
        #[arg(long)]
        week: String,
        /// 00 (the whole country), a province, a commune or a village code.
        #[arg(long, default_value = "00")]
        unit: String,
        /// Also write the workbook for leaders here.
        #[arg(long)]
        xlsx: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        #[arg(long, env = "VOXPOP_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// Trains on every line of FILE (JSON lines) and writes the model.
    Train {
        file: PathBuf,
        /// Where to write the model.
        #[arg(long, default_value = "topics.model")]
        model: PathBuf,
        #[command(flatten)]
        fields: FieldArgs,
    },
    /// Accuracy, macro-F1 and throughput: of a saved model on all of FILE, or, without
    /// `--model`, of a model trained on a seeded split of FILE, next to a keyword baseline.
    Eval {
        file: PathBuf,
        /// A model written by `voxpop topics train`.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Fraction of FILE held out for evaluation (without `--model`).
        #[arg(long, default_value_t = 0.2)]
        split: f64,
        /// Seeds the shuffle before the split and the training order.
        #[arg(long, default_value_t = 2025)]
        seed: u64,
        #[command(flatten)]
        fields: FieldArgs,
    },
    /// Re-applies the taxonomy (and model) to every petition in the lake, then rebuilds the
    /// index. Run it with the server stopped, after editing the taxonomy or training a model.
    Reclassify {
        #[arg(long, env = "VOXPOP_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        #[arg(long, env = "VOXPOP_TAXONOMY")]
        taxonomy: Option<PathBuf>,
        #[arg(long, env = "VOXPOP_TOPIC_MODEL")]
        topic_model: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct FieldArgs {
    /// JSON field holding the label.
    #[arg(long, default_value = "topic")]
    label_field: String,
    /// JSON field holding the text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// How the classifier learns its weights.
    #[arg(long, value_enum, default_value_t = AlgorithmArg::Logistic)]
    algorithm: AlgorithmArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum AlgorithmArg {
    /// Multinomial logistic regression (averaged SGD).
    Logistic,
    /// Multinomial naive Bayes.
    NaiveBayes,
}

impl FieldArgs {
    fn split(self) -> (topics_cmd::Fields, Algorithm) {
        let algorithm = match self.algorithm {
            AlgorithmArg::Logistic => Algorithm::Logistic,
            AlgorithmArg::NaiveBayes => Algorithm::NaiveBayes,
        };
        (topics_cmd::Fields { text: self.text_field, label: self.label_field }, algorithm)
    }
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Petitions/s from intake to searchable, and tantivy indexing alone as the ceiling.
    Ingest {
        #[arg(long, default_value_t = 100_000)]
        count: usize,
        /// Also (or only, with --no-embedded) measure on Kafka.
        #[arg(long)]
        kafka: Option<String>,
        #[arg(long)]
        no_embedded: bool,
        /// Concurrent intake clients.
        #[arg(long, default_value_t = 256)]
        clients: usize,
        /// The pipeline's micro-batch: at most this many petitions ...
        #[arg(long, default_value_t = voxpop_pipeline::DEFAULT_BATCH_SIZE)]
        batch_size: usize,
        /// ... or what arrived within this many milliseconds (defaults: those of `serve`).
        #[arg(long, default_value_t = voxpop_pipeline::DEFAULT_BATCH_INTERVAL_MS)]
        batch_interval_ms: u64,
        /// The index's commit interval while petitions keep coming (default: that of `serve`).
        #[arg(long, default_value_t = voxpop_pipeline::DEFAULT_INDEX_COMMIT_INTERVAL_MS)]
        index_commit_interval_ms: u64,
        /// The ceiling and each path in turn this many times; medians printed at the end.
        #[arg(long, default_value_t = 1)]
        runs: usize,
    },
    /// Search latency percentiles over an index of generated petitions.
    Search {
        #[arg(long, default_value_t = 1_000_000)]
        count: usize,
        #[arg(long, default_value_t = 1_000)]
        queries: usize,
        /// Keep the index here (reused when it already holds `count` petitions).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The weekly summary over a lake of generated petitions, next to the same aggregate in
    /// DuckDB on the same Parquet files.
    Summary {
        #[arg(long, default_value_t = 10_000_000)]
        count: usize,
        /// The lake is generated here once and reused.
        #[arg(long)]
        dir: PathBuf,
        /// Python with duckdb (scripts/test.sh installs one).
        #[arg(long, env = "VOXPOP_VENV", default_value = "/root/.cache/voxpop-venv")]
        venv: PathBuf,
        /// Timed runs of each aggregate (after one warm-up); the median is printed.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Also print `EXPLAIN ANALYZE` of the summary's aggregate.
        #[arg(long)]
        explain: bool,
    },
    /// Weekly reports: synthesis of a week of 90,000 villages, 3,321 communes and 34 provinces
    /// with 20 indicators for every unit; parsing and validating a 10,000-row XLSX upload.
    Reports,
    /// Latency of read-only SQL in the server's process and in a worker process of its own.
    Sql {
        #[arg(long, default_value_t = 1_000_000)]
        count: usize,
        /// The lake is generated here once and reused.
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Export rate (rows/s) of petitions to Parquet and CSV.
    Export {
        #[arg(long, default_value_t = 1_000_000)]
        count: usize,
        #[arg(long)]
        dir: PathBuf,
    },
}

impl Command {
    /// The data directory whose code lists the command uses (all but `serve`, which installs
    /// them itself, and the commands without a data directory).
    fn code_list_data_dir(&self) -> Option<&std::path::Path> {
        match self {
            Command::Search { data_dir, .. }
            | Command::Summary { data_dir, .. }
            | Command::Reindex { data_dir }
            | Command::Export { data_dir, .. }
            | Command::Import { data_dir, .. }
            | Command::Sql { data_dir, .. }
            | Command::SqlWorker { data_dir }
            | Command::Report { report: ReportCommand::Weekly { data_dir, .. } }
            | Command::Topics { topics: TopicsCommand::Reclassify { data_dir, .. } } => Some(data_dir),
            Command::Token { token } => match token {
                TokenCommand::Create { data_dir, .. }
                | TokenCommand::List { data_dir }
                | TokenCommand::Revoke { data_dir, .. } => Some(data_dir),
            },
            _ => None,
        }
    }
}

fn main() -> anyhow::Result<()> {
    keep_freed_pages();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,buoyant_kernel=warn,delta_kernel=warn,deltalake_core=warn,deltalake_core::operations::merge=error,deltalake=warn,datafusion=warn,tantivy=warn,rdkafka=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // The newest version of the code lists in the data directory, before anything reads them
    // (`serve` installs its own at its start).
    if let Some(data_dir) = cli.command.code_list_data_dir() {
        voxpop_connectors::code_lists::install_newest(data_dir)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve {
                data_dir,
                listen,
                kafka,
                demo,
                demo_count,
                batch_size,
                batch_interval_ms,
                index_commit_interval_ms,
                taxonomy,
                topic_model,
                flight,
                intake_per_minute,
                trust_forwarded_for,
                webhooks,
                sql_workers,
                header_read_timeout_ms,
                body_read_timeout_ms,
                write_stall_timeout_ms,
            } => {
                let options = commands::ServeOptions {
                    data_dir,
                    listen,
                    kafka,
                    demo: demo.then_some(demo_count),
                    batch_size,
                    batch_interval: std::time::Duration::from_millis(batch_interval_ms),
                    index_commit_interval: std::time::Duration::from_millis(index_commit_interval_ms),
                    taxonomy,
                    topic_model,
                    flight,
                    intake_per_minute,
                    trust_forwarded_for,
                    webhooks,
                    sql_workers,
                    timeouts: voxpop_api::listener::Timeouts {
                        header_read: std::time::Duration::from_millis(header_read_timeout_ms),
                        body_read: std::time::Duration::from_millis(body_read_timeout_ms),
                        write_stall: std::time::Duration::from_millis(write_stall_timeout_ms),
                    },
                };
                commands::serve(options).await
            }
            Command::Search { query, province, commune, limit, data_dir } => {
                commands::search(&data_dir, &query, province, commune, limit)
            }
            Command::Summary { week, province, json, data_dir } => {
                commands::summary(&data_dir, week.as_deref(), province.as_deref(), json).await
            }
            Command::Reindex { data_dir } => commands::reindex(&data_dir).await,
            Command::Schema { markdown, dataset } => commands::schema(markdown, dataset.as_deref()),
            Command::Token { token: TokenCommand::Create { unit, role, data_dir } } => {
                let Some(role) = voxpop_api::auth::Role::parse(&role) else {
                    anyhow::bail!("unknown role `{role}`: officer, leader, data_engineer or admin");
                };
                std::fs::create_dir_all(&data_dir)?;
                let token = voxpop_api::auth::TokenStore::open(&data_dir)?.create(&unit, role)?;
                println!("{token}");
                eprintln!("token for unit {unit} created; it is shown only now");
                Ok(())
            }
            Command::Token { token: TokenCommand::List { data_dir } } => {
                for token in voxpop_api::auth::TokenStore::open(&data_dir)?.list() {
                    let role = serde_json::to_value(token.role)?;
                    println!(
                        "{}\t{}\t{}\t{}",
                        token.id,
                        token.unit,
                        role.as_str().unwrap_or_default(),
                        token.created_at.to_rfc3339()
                    );
                }
                Ok(())
            }
            Command::Token { token: TokenCommand::Revoke { id, data_dir } } => {
                let id = id.strip_prefix("vxp_").map_or(id.as_str(), |rest| rest.split('_').next().unwrap_or(rest));
                anyhow::ensure!(voxpop_api::auth::TokenStore::open(&data_dir)?.revoke(id)?, "no token `{id}`");
                eprintln!("token {id} revoked");
                Ok(())
            }
            Command::Report { report: ReportCommand::Weekly { week, unit, xlsx, json, data_dir } } => {
                commands::report_weekly(&data_dir, &week, &unit, xlsx.as_deref(), json).await
            }
            Command::Import { path, code_lists: true, dataset, data_dir, .. } => {
                let outcome =
                    voxpop_connectors::code_lists::import(&data_dir, &path, dataset.as_deref(), chrono::Utc::now())?;
                print!("{outcome}");
                anyhow::ensure!(outcome.accepted(), "the update of the code lists is rejected; nothing was stored");
                Ok(())
            }
            Command::Import { path, villages: true, data_dir, kafka, .. } => {
                voxpop_api::registers_api::import_villages(&data_dir, &path, kafka).await
            }
            Command::Import { path, mapping, data_dir, kafka, .. } => {
                commands::import(&data_dir, &path, mapping.as_deref(), kafka).await
            }
            Command::Sql { query, data_dir, format, max_rows, personal_data } => {
                commands::sql(&data_dir, &query, &format, max_rows, personal_data).await
            }
            Command::SqlWorker { data_dir } => commands::sql_worker(&data_dir).await,
            Command::Export { data_dir, dataset, format, from, to, since_version, province, personal_data, out } => {
                let Some(format) = voxpop_queries::export::ExportFormat::parse(&format) else {
                    anyhow::bail!("unknown format `{format}`, expected parquet, csv or xlsx");
                };
                let mut request = voxpop_queries::export::ExportRequest::new(&dataset, format);
                request.from = from;
                request.to = to;
                request.since_version = since_version;
                request.province = province;
                request.personal_data = personal_data;
                commands::export(&data_dir, request, &out).await
            }
            Command::Bench { bench } => match bench {
                BenchCommand::Ingest {
                    count,
                    kafka,
                    no_embedded,
                    clients,
                    batch_size,
                    batch_interval_ms,
                    index_commit_interval_ms,
                    runs,
                } => {
                    let pipeline = voxpop_pipeline::PipelineConfig {
                        batch_size,
                        batch_interval: std::time::Duration::from_millis(batch_interval_ms),
                        index_commit_interval: std::time::Duration::from_millis(index_commit_interval_ms),
                        ..Default::default()
                    };
                    voxpop_api::bench::ingest(count, kafka, !no_embedded, clients, pipeline, runs).await
                }
                BenchCommand::Search { count, queries, dir } => voxpop_api::bench::search(count, queries, dir).await,
                BenchCommand::Summary { count, dir, venv, runs, explain } => {
                    voxpop_api::bench::summary(count, &dir, &venv, runs, explain).await
                }
                BenchCommand::Export { count, dir } => voxpop_api::bench::export(count, &dir).await,
                BenchCommand::Sql { count, dir, runs } => voxpop_api::bench::sql(count, &dir, runs).await,
                BenchCommand::Reports => {
                    let figures = voxpop_queries::synthesis::bench_reports()?;
                    println!("{figures}");
                    Ok(())
                }
            },
            Command::Topics { topics } => match topics {
                TopicsCommand::Train { file, model, fields } => {
                    let (fields, algorithm) = fields.split();
                    topics_cmd::train(file, model, fields, algorithm).await
                }
                TopicsCommand::Eval { file, model, split, seed, fields } => {
                    let (fields, algorithm) = fields.split();
                    topics_cmd::eval(file, model, split, seed, fields, algorithm).await
                }
                TopicsCommand::Reclassify { data_dir, taxonomy, topic_model } => {
                    topics_cmd::reclassify(&data_dir, taxonomy.as_deref(), topic_model.as_deref()).await
                }
            },
        }
    })
}

//! Wiring: the log, the lake, the index, the pipeline and intake of one `voxpop` process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;
use voxpop_connectors::Intake;
use voxpop_index::PetitionIndex;
use voxpop_pipeline::embedded::EmbeddedLog;
use voxpop_pipeline::kafka::{KafkaConfig, KafkaLog};
use voxpop_pipeline::lake::{PetitionLake, petitions_table_path};
use voxpop_pipeline::{EventLog, Pipeline, PipelineConfig, PipelineStats, Topic};
use voxpop_queries::PetitionQueries;
use voxpop_schema::Petition;

/// Where a data directory keeps what.
#[derive(Debug, Clone)]
pub struct DataLayout {
    pub root: PathBuf,
}

impl DataLayout {
    pub fn new(root: &Path) -> DataLayout {
        DataLayout { root: root.to_owned() }
    }
    /// The embedded event log.
    pub fn log(&self) -> PathBuf {
        self.root.join("log")
    }
    /// Delta tables.
    pub fn lake(&self) -> PathBuf {
        self.root.join("lake")
    }
    pub fn petitions_table(&self) -> PathBuf {
        petitions_table_path(&self.lake())
    }
    /// The tantivy index.
    pub fn reports_table(&self) -> PathBuf {
        voxpop_pipeline::reports::reports_table_path(&self.lake())
    }

    /// The registers of officers and members and the villages created through the API or
    /// `voxpop import --villages`.
    pub fn registers_table(&self) -> PathBuf {
        voxpop_pipeline::registers::registers_table_path(&self.lake())
    }

    /// Villages and residential groups (`code,name`) written by the demo or placed by an
    /// operator; the lake's village entries come on top (see `voxpop_queries::registers`).
    pub fn villages(&self) -> PathBuf {
        self.root.join("reference").join("villages.csv")
    }

    pub fn index(&self) -> PathBuf {
        self.root.join("index")
    }

    /// The key citizens' secrets are derived with (never leaves the data directory).
    pub fn citizen_key(&self) -> PathBuf {
        self.root.join("citizen-secret.key")
    }

    /// Optional overrides of the handling rules: `calendar.toml`, `deadlines.toml`, `routing.toml`.
    pub fn handling_config(&self) -> PathBuf {
        self.root.join("handling")
    }
}

/// The handling rules of a data directory: the compiled-in defaults, each replaced by the file of
/// the same name under `DIR/handling/` when present (holidays decided for a year, local time
/// limits, routing of topics to the province).
pub fn load_handling(layout: &DataLayout) -> anyhow::Result<voxpop_schema::workflow::Handling> {
    use voxpop_schema::calendar::{Calendar, Deadlines};
    use voxpop_schema::workflow::Routing;
    let mut handling = voxpop_schema::workflow::Handling::default_embedded();
    let dir = layout.handling_config();
    let read = |name: &str| -> anyhow::Result<Option<String>> {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(anyhow::anyhow!("cannot read `{}`: {err}", path.display())),
        }
    };
    if let Some(text) = read("calendar.toml")? {
        handling.calendar =
            Calendar::from_toml(&text).map_err(|err| anyhow::anyhow!("handling/calendar.toml: {err}"))?;
    }
    if let Some(text) = read("deadlines.toml")? {
        handling.deadlines =
            Deadlines::from_toml(&text).map_err(|err| anyhow::anyhow!("handling/deadlines.toml: {err}"))?;
    }
    if let Some(text) = read("routing.toml")? {
        handling.routing = Routing::from_toml(&text).map_err(|err| anyhow::anyhow!("handling/routing.toml: {err}"))?;
    }
    Ok(handling)
}

#[derive(Debug, Clone)]
pub struct StackConfig {
    pub data_dir: PathBuf,
    /// Kafka bootstrap servers; `None` for the embedded log.
    pub kafka: Option<String>,
    pub pipeline: PipelineConfig,
    /// Run the pipeline in this process (off for an API-only node on Kafka).
    pub run_pipeline: bool,
    /// How the pipeline assigns topics; `None`: the default taxonomy's rules.
    pub topics: Option<voxpop_pipeline::assign::TopicAssigner>,
}

/// A running voxpop core.
pub struct Stack {
    pub layout: DataLayout,
    pub log: Arc<dyn EventLog>,
    pub intake: Arc<Intake>,
    pub index: Arc<PetitionIndex>,
    pub queries: Arc<PetitionQueries>,
    pub stats: Arc<PipelineStats>,
    pub reports_stats: Arc<voxpop_pipeline::reports::ReportsStats>,
    pub registers_stats: Arc<voxpop_pipeline::registers::RegistersStats>,
    pub handling_stats: Arc<voxpop_pipeline::handling::HandlingStats>,
    /// Decides handling actions (see [`crate::handling::Desk`]).
    pub desk: Arc<crate::handling::Desk>,
    shutdown: watch::Sender<bool>,
    pipeline: Option<JoinHandle<()>>,
    reports_pipeline: Option<JoinHandle<voxpop_pipeline::PipelineResult<()>>>,
    registers_pipeline: Option<JoinHandle<voxpop_pipeline::PipelineResult<()>>>,
    handling_pipeline: Option<JoinHandle<voxpop_pipeline::PipelineResult<()>>>,
}

impl Stack {
    pub async fn start(config: StackConfig) -> anyhow::Result<Stack> {
        let layout = DataLayout::new(&config.data_dir);
        std::fs::create_dir_all(&layout.root)
            .with_context(|| format!("cannot create data directory `{}`", layout.root.display()))?;
        let log: Arc<dyn EventLog> = match &config.kafka {
            None => Arc::new(EmbeddedLog::open(&layout.log()).await?),
            Some(brokers) => Arc::new(KafkaLog::connect(KafkaConfig::new(brokers)).await?),
        };
        let lake = PetitionLake::open_or_create(&layout.petitions_table()).await?;
        // An index from an older schema is dropped here and rebuilt by `catch_up_index` below.
        let index = Arc::new(PetitionIndex::open_or_recreate(&layout.index())?.0);
        let queries = Arc::new(PetitionQueries::new(&layout.petitions_table()));
        let key = voxpop_connectors::intake::load_or_create_secret_key(&layout.citizen_key())
            .with_context(|| format!("cannot read or create `{}`", layout.citizen_key().display()))?;
        let intake = Arc::new(Intake::new(log.clone()).with_secret_key(key));
        let handling = Arc::new(load_handling(&layout)?);
        let desk = Arc::new(crate::handling::Desk::load(log.clone(), &layout.lake(), handling.clone()).await?);
        // Documents (re)built from now on carry the petition's handling state.
        index.set_state_source(desk.clone());
        let remembered = recover_external_ids(&intake, &queries, log.as_ref(), &lake).await?;
        info!(log = log.kind(), lake_version = lake.version(), remembered, "voxpop core ready to start");
        let mut pipeline = Pipeline::new(log.clone(), lake, Some(index.clone()), config.pipeline.clone());
        if let Some(assigner) = config.topics.clone() {
            pipeline = pipeline.with_topics(assigner);
        }
        let stats = pipeline.stats();
        let (shutdown, shutdown_rx) = watch::channel(false);
        desk.spawn_follower(shutdown_rx.clone());
        let reports_stats = Arc::new(voxpop_pipeline::reports::ReportsStats::default());
        let registers_stats = Arc::new(voxpop_pipeline::registers::RegistersStats::default());
        let handling_stats = Arc::new(voxpop_pipeline::handling::HandlingStats::default());
        let (pipeline, reports_pipeline, registers_pipeline, handling_pipeline) = if config.run_pipeline {
            let handling_task = tokio::spawn(voxpop_pipeline::handling::run(
                log.clone(),
                layout.lake(),
                handling.clone(),
                Some(index.clone()),
                handling_stats.clone(),
                shutdown_rx.clone(),
            ));
            pipeline.catch_up_index().await?;
            let reports = tokio::spawn(voxpop_pipeline::reports::run(
                log.clone(),
                layout.reports_table(),
                reports_stats.clone(),
                shutdown_rx.clone(),
            ));
            let registers = tokio::spawn(voxpop_pipeline::registers::run(
                log.clone(),
                layout.registers_table(),
                registers_stats.clone(),
                shutdown_rx.clone(),
            ));
            let petitions = tokio::spawn(async move {
                if let Err(err) = pipeline.run(shutdown_rx).await {
                    tracing::error!(error = %err, "pipeline stopped");
                }
            });
            (Some(petitions), Some(reports), Some(registers), Some(handling_task))
        } else {
            (None, None, None, None)
        };
        Ok(Stack {
            layout,
            log,
            intake,
            index,
            queries,
            stats,
            reports_stats,
            registers_stats,
            handling_stats,
            desk,
            shutdown,
            pipeline,
            reports_pipeline,
            registers_pipeline,
            handling_pipeline,
        })
    }

    /// Stops the pipeline after its current batch.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(pipeline) = self.pipeline.take() {
            let _ = pipeline.await;
        }
        if let Some(reports) = self.reports_pipeline.take() {
            let _ = reports.await;
        }
        if let Some(registers) = self.registers_pipeline.take() {
            let _ = registers.await;
        }
        if let Some(handling) = self.handling_pipeline.take() {
            let _ = handling.await;
        }
    }
}

/// Re-learns the external ids accepted before this start: those in the lake, and those still on
/// the log past the lake's positions (accepted, not yet consumed).
async fn recover_external_ids(
    intake: &Intake,
    queries: &PetitionQueries,
    log: &dyn EventLog,
    lake: &PetitionLake,
) -> anyhow::Result<usize> {
    let mut remembered = intake.remember(queries.known_external_ids().await?.into_iter().map(|known| {
        let receipt = voxpop_connectors::Receipt {
            secret: intake.citizen_secret(&known.id),
            id: known.id,
            tracking_code: known.tracking_code,
            status: "received",
        };
        (known.channel, known.external_id, receipt)
    }));
    let partitions = log.partitions(Topic::Petitions).await?;
    let start: BTreeMap<i32, i64> = lake.committed_positions(Topic::Petitions, &partitions).await?;
    let mut reader = log.reader(Topic::Petitions, &start).await?;
    loop {
        let records = reader.poll(10_000, Duration::from_millis(200)).await?;
        if records.is_empty() {
            break;
        }
        remembered += intake.remember(records.iter().filter_map(|record| {
            let petition = Petition::from_json_slice(&record.payload).ok()?;
            let external_id = petition.external_id.clone()?;
            Some((petition.channel, external_id, intake.receipt(&petition)))
        }));
    }
    Ok(remembered)
}

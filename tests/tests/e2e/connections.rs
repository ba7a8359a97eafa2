//! Connections that hold the server without finishing their request: half a request head, a
//! head sent a line at a time, a body that stops before its `Content-Length`; and connections
//! that stop reading a large answer. The server closes them within its read timeouts and its
//! write stall timeout (`api/src/listener.rs`), set here to a second or two with `serve
//! --header-read-timeout-ms --body-read-timeout-ms --write-stall-timeout-ms` so that the tests
//! wait seconds, not the production minute. Raw TCP, because an HTTP client never sends half a
//! request, nor shrinks its receive buffer.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use voxpop_tests::server::Server;

/// What the server is given over the timeouts it is configured with before a test calls it
/// broken: a loaded CI machine is slow, and a server that works closes well inside it.
const MARGIN: Duration = Duration::from_secs(10);

/// `voxpop serve` with read timeouts of `header_read` and `body_read`.
async fn timed_server(dir: &Path, header_read: Duration, body_read: Duration) -> Server {
    let (header, body) = (header_read.as_millis().to_string(), body_read.as_millis().to_string());
    let args = ["--header-read-timeout-ms", header.as_str(), "--body-read-timeout-ms", body.as_str()];
    Server::start_with(&dir.join("data"), None, &args).await
}

/// `voxpop serve` with a write stall timeout of `write_stall` (and the default read timeouts).
async fn write_timed_server(dir: &Path, write_stall: Duration) -> Server {
    let write_stall = write_stall.as_millis().to_string();
    Server::start_with(&dir.join("data"), None, &["--write-stall-timeout-ms", write_stall.as_str()]).await
}

/// A raw connection whose receive buffer is asked to be `recv_buffer` bytes (the kernel may
/// double it): what the client has not read stays in the server.
async fn connect_with_recv_buffer(server: &Server, recv_buffer: u32) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(recv_buffer).expect("set the receive buffer size");
    socket.connect(server.addr).await.expect("connect to the server")
}

/// `POST /api/v1/sql` of `sql`, the connection to close after the answer.
fn sql_request(sql: &str) -> Vec<u8> {
    let body = json!({ "sql": sql }).to_string();
    format!(
        "POST /api/v1/sql HTTP/1.1\r\nHost: voxpop\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(server.addr).await.expect("connect to the server")
}

/// Reads until the server closes `stream` (a read of 0 bytes, or a reset); whatever it sent
/// before is ignored. Returns how long that took, or `None` if it was still open after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    closed.ok().map(|()| started.elapsed())
}

/// One response read off `stream`: status, headers (names in lower case) and the body of its
/// `Content-Length`.
async fn read_response(stream: &mut TcpStream) -> (u16, HashMap<String, String>, Vec<u8>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|window| window == b"\r\n\r\n") {
            break at + 4;
        }
        let read = stream.read(&mut buf).await.expect("read the response");
        assert!(read > 0, "connection closed before a response head: {:?}", String::from_utf8_lossy(&data));
        data.extend_from_slice(&buf[..read]);
    };
    let head = String::from_utf8(data[..head_end].to_vec()).expect("an ASCII response head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 =
        status_line.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("a status code in the status line");
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers.get("content-length").and_then(|value| value.parse().ok()).unwrap_or(0);
    let mut body = data[head_end..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut buf).await.expect("read the response body");
        assert!(read > 0, "connection closed inside the response body");
        body.extend_from_slice(&buf[..read]);
    }
    (status, headers, body)
}

/// `GET /healthz` on a connection of its own, raw: 200.
async fn healthz_on_fresh_connection(server: &Server) {
    let mut stream = connect(server).await;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: voxpop\r\nConnection: close\r\n\r\n").await.unwrap();
    let (status, _, body) = tokio::time::timeout(MARGIN, read_response(&mut stream)).await.expect("a timely answer");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

fn petition() -> Value {
    json!({
        "title": "Đèn đường hỏng nhiều tháng",
        "body": "Đèn đường ở đầu ngõ 12 đã hỏng ba tháng nay, buổi tối đi lại rất nguy hiểm. Đề nghị sửa chữa.",
        "commune_code": "00001",
        "channel": "mobile"
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn unfinished_request_heads_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let header_read = Duration::from_secs(1);
    let server = timed_server(dir.path(), header_read, Duration::from_secs(1)).await;
    let limit = header_read + MARGIN;

    // Half a request line.
    let opened = Instant::now();
    let mut half_line = connect(&server).await;
    half_line.write_all(b"GET /healthz HT").await.unwrap();
    // Nothing at all.
    let mut silent = connect(&server).await;
    // A complete request line, then a header line every 200 ms: the timeout counts from the start
    // of the head, not from the last byte.
    let mut trickle = connect(&server).await;
    trickle.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        assert!(started.elapsed() < limit, "a head sent a line at a time still open after {limit:?}");
        match tokio::time::timeout(Duration::from_millis(200), trickle.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => {
                if trickle.write_all(b"X-Slow: 1\r\n").await.is_err() {
                    break;
                }
            }
        }
    }
    eprintln!("a head sent a line at a time: closed after {:?}", started.elapsed());

    let closed = closed_within(&mut half_line, limit).await;
    assert!(closed.is_some(), "half a request line still open after {limit:?}:\n{}", server.output());
    eprintln!("half a request line: closed by {:?} after it opened", opened.elapsed());
    let closed = closed_within(&mut silent, limit).await;
    assert!(closed.is_some(), "a silent connection still open after {limit:?}");

    // The server itself is fine.
    healthz_on_fresh_connection(&server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_stops_is_answered_408_as_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let body_read = Duration::from_secs(2);
    let server = timed_server(dir.path(), body_read, body_read).await;

    // Content-Length 100, and 10 bytes of it.
    let mut stream = connect(&server).await;
    stream
        .write_all(
            b"POST /api/v1/petitions HTTP/1.1\r\nHost: voxpop\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"title\":\"",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let limit = body_read + MARGIN;
    let (status, headers, body) = tokio::time::timeout(limit, read_response(&mut stream))
        .await
        .unwrap_or_else(|_| panic!("no answer to a stalled body after {limit:?}:\n{}", server.output()));
    eprintln!("stalled body: answered {status} after {:?}", started.elapsed());
    let problem: Value = serde_json::from_slice(&body).expect("a JSON body");
    assert_eq!(status, 408, "{problem}");
    assert_eq!(headers.get("content-type").map(String::as_str), Some("application/problem+json"));
    assert_eq!(problem["status"], 408);
    assert_eq!(problem["type"], "https://voxpop.vn/problems/request-body");
    assert!(problem["title"].as_str().unwrap_or_default().contains("body"), "{problem}");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("request body"), "{problem}");
    // The rest of the body could still come and be read as a request: the connection is closed.
    assert_eq!(headers.get("connection").map(String::as_str), Some("close"));
    assert!(closed_within(&mut stream, MARGIN).await.is_some(), "the connection stayed open after the 408");

    // A body that keeps coming, slower in all than the timeout but never pausing as long, is read.
    let body = petition().to_string().into_bytes();
    let mut stream = connect(&server).await;
    let head = format!(
        "POST /api/v1/petitions HTTP/1.1\r\nHost: voxpop\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let pieces = 12;
    for piece in body.chunks(body.len().div_ceil(pieces)) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stream.write_all(piece).await.unwrap();
    }
    let (status, _, answer) = tokio::time::timeout(MARGIN, read_response(&mut stream)).await.expect("an answer");
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
    eprintln!("a body sent in {pieces} pieces over {:?}: {status}", started.elapsed());

    // A normal request on a fresh connection.
    let response = reqwest::Client::new().post(server.url("/api/v1/petitions")).json(&petition()).send().await;
    let status = response.expect("POST").status();
    assert!(status.is_success(), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_answers_while_half_open_connections_are_held() {
    let dir = tempfile::tempdir().unwrap();
    // Longer than the other tests': the connections must still be held when /healthz answers.
    let header_read = Duration::from_secs(4);
    let server = timed_server(dir.path(), header_read, Duration::from_secs(1)).await;
    let opened = Instant::now();
    let mut held = Vec::new();
    for _ in 0..50 {
        let mut stream = connect(&server).await;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: voxpop\r\n").await.unwrap();
        held.push(stream);
    }
    let response =
        reqwest::Client::new().get(server.url("/healthz")).timeout(MARGIN).send().await.expect("/healthz answers");
    assert_eq!(response.status(), 200);
    // Still held (no answer, not closed), unless this machine was too slow to tell.
    if opened.elapsed() < header_read - Duration::from_millis(500) {
        let mut buf = [0u8; 16];
        for stream in &held {
            let error = stream.try_read(&mut buf).expect_err("no answer yet to a request head not finished");
            assert_eq!(error.kind(), std::io::ErrorKind::WouldBlock, "{error}");
        }
    }
    let deadline = opened + header_read + MARGIN;
    for stream in &mut held {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(closed_within(stream, left).await.is_some(), "a half-open connection still open after the timeout");
    }
    eprintln!("50 half-open connections: all closed {:?} after they opened", opened.elapsed());
    healthz_on_fresh_connection(&server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_the_client_does_not_read_is_dropped_after_the_write_stall_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let write_stall = Duration::from_secs(2);
    let server = write_timed_server(dir.path(), write_stall).await;

    // A 20 MB answer to a client with a tiny receive buffer that reads its head, then nothing for
    // a while: the server fills the socket, and then its writes wait.
    let length = 20_000_000;
    let mut stream = connect_with_recv_buffer(&server, 4096).await;
    stream.write_all(&sql_request(&format!("SELECT repeat('x', {length}) AS big"))).await.unwrap();
    let sent = Instant::now();
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !received.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = tokio::time::timeout(MARGIN, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no answer after {MARGIN:?}:\n{}", server.output()))
            .expect("read the response head");
        assert!(read > 0, "closed before a response head: {:?}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buf[..read]);
    }
    let answered = sent.elapsed();
    tokio::time::sleep(write_stall + Duration::from_secs(1)).await;

    // Now read: what the kernel buffers held, then the end of a connection the server closed,
    // long before the 20 MB.
    let limit = write_stall + MARGIN;
    let closed = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(read) => received.extend_from_slice(&buf[..read]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a connection that read nothing still open {limit:?} later:\n{}", server.output());
    eprintln!(
        "a client that read nothing of a 20 MB answer after its head ({answered:?} after the request): \
         closed by {:?}, {} bytes sent",
        sent.elapsed(),
        received.len()
    );
    let head = String::from_utf8_lossy(&received[..received.len().min(512)]).into_owned();
    // The answer was the large one (not an error that closed the connection by itself) ...
    assert!(head.starts_with("HTTP/1.1 200"), "not the SQL answer: {head:?}");
    let content_length: usize = head
        .to_ascii_lowercase()
        .split("\r\n")
        .find_map(|line| line.strip_prefix("content-length:").map(|value| value.trim().parse().unwrap()))
        .expect("a Content-Length");
    assert!(content_length > length, "{head:?}");
    // ... and the server gave up on it: the client got a small part only.
    assert!(
        received.len() < content_length / 2,
        "the client got {} bytes of {content_length}: the server kept writing",
        received.len()
    );

    // The server itself is fine.
    healthz_on_fresh_connection(&server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_but_steady_reader_gets_its_whole_answer() {
    let dir = tempfile::tempdir().unwrap();
    let write_stall = Duration::from_secs(2);
    let server = write_timed_server(dir.path(), write_stall).await;

    // A 5 MB answer read 64 KiB every 100 ms: over 7 s in all, well over the stall timeout, but
    // never pausing as long.
    let length = 5_000_000;
    let mut stream = connect_with_recv_buffer(&server, 64 * 1024).await;
    stream.write_all(&sql_request(&format!("SELECT repeat('x', {length}) AS big"))).await.unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    let mut ended = false;
    while !ended {
        interval.tick().await;
        // 64 KiB, or what is left before the end.
        let mut filled = 0;
        while filled < buf.len() {
            let read = tokio::time::timeout(MARGIN, stream.read(&mut buf[filled..]))
                .await
                .unwrap_or_else(|_| panic!("no data for {MARGIN:?}:\n{}", server.output()))
                .unwrap_or_else(|err| {
                    panic!("the server reset a slow reader's connection after {:?}: {err}", started.elapsed())
                });
            if read == 0 {
                ended = true;
                break;
            }
            filled += read;
        }
        received.extend_from_slice(&buf[..filled]);
    }
    let elapsed = started.elapsed();
    eprintln!("a 5 MB answer read 64 KiB every 100 ms: {} bytes in {elapsed:?}", received.len());

    let head_end = received.windows(4).position(|window| window == b"\r\n\r\n").expect("a response head") + 4;
    let head = String::from_utf8_lossy(&received[..head_end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let content_length: usize = head
        .split("\r\n")
        .find_map(|line| line.strip_prefix("content-length:").map(|value| value.trim().parse().unwrap()))
        .expect("a Content-Length");
    let body = &received[head_end..];
    assert_eq!(body.len(), content_length, "the answer was cut after {elapsed:?}");
    let answer: Value = serde_json::from_slice(body).expect("a JSON answer");
    assert_eq!(answer["rows"][0]["big"].as_str().map(str::len), Some(length));
    // Slower in all than the stall timeout, or the test proves nothing.
    assert!(elapsed > write_stall, "read in {elapsed:?}");

    healthz_on_fresh_connection(&server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn request_heads_over_their_limits_are_problems_naming_what_is_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None).await;
    let client = reqwest::Client::new();
    let problem = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let content_type = response.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap().to_owned();
        let body: Value = response.json().await.unwrap();
        (status, content_type, body)
    };

    // A search whose query is longer than any `q` the API takes, percent-encoded: 414.
    let long_q = "đất đai ".repeat(1_500); // about 40 KiB percent-encoded
    let response = client.get(server.url("/api/v1/search")).query(&[("q", long_q.as_str())]).send().await.unwrap();
    let (status, content_type, body) = problem(response).await;
    assert_eq!((status, content_type.as_str()), (414, "application/problem+json"), "{body}");
    assert_eq!(
        (body["errors"][0]["field"].as_str(), body["errors"][0]["code"].as_str()),
        (Some("URI"), Some("too_large"))
    );
    // Too many headers: 431 naming them.
    let mut request = client.get(server.url("/healthz"));
    for i in 0..150 {
        request = request.header(format!("x-extra-{i}"), "1");
    }
    let (status, content_type, body) = problem(request.send().await.unwrap()).await;
    assert_eq!((status, content_type.as_str()), (431, "application/problem+json"), "{body}");
    assert_eq!(body["errors"][0]["field"], "headers", "{body}");
    // One header too large: 431 naming it.
    let cookie = format!("voxpop_token={}", "x".repeat(80 * 1024));
    let response = client.get(server.url("/healthz")).header("cookie", cookie).send().await.unwrap();
    let (status, content_type, body) = problem(response).await;
    assert_eq!((status, content_type.as_str()), (431, "application/problem+json"), "{body}");
    assert_eq!(body["errors"][0]["field"], "cookie", "{body}");
    assert!(body["detail"].as_str().unwrap().contains("at most 65536"), "{body}");
    // Within the limits, the same requests are answered as usual.
    let response = client.get(server.url("/api/v1/search")).query(&[("q", "đất đai")]).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    healthz_on_fresh_connection(&server).await;
}

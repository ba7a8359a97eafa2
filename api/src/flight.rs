//! Arrow Flight SQL: the read-only SQL of `POST /api/v1/sql`, for clients that speak Arrow
//! (ADBC and JDBC Flight SQL drivers, pandas and polars through ADBC) and want results without
//! conversion. `voxpop serve --flight 127.0.0.1:8815` starts it next to the HTTP API.
//!
//! A statement is planned and run when the client asks for its `FlightInfo` (so errors reach the
//! client at once), and its batches wait under a one-time ticket until the client fetches them,
//! at most [`RESULT_TTL`]. What waits is bounded ([`MAX_HELD_BYTES`], [`MAX_WAITING_RESULTS`]):
//! past it a statement is answered `RESOURCE_EXHAUSTED`. The same rules as over HTTP apply:
//! queries only, the masked view of `petitions`, a row limit and a time limit.
//!
//! Results are sent as they are, dictionary-encoded columns included (their dictionaries go
//! with the batches that use them), so the stream's schema is the one `FlightInfo` announced.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_flight::encode::{DictionaryHandling, FlightDataEncoderBuilder};
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket};
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;
use voxpop_queries::sql::{SqlRequest, SqlResult};
use voxpop_queries::{PetitionQueries, QueryError};

/// How long a result waits for its client to fetch it.
pub const RESULT_TTL: Duration = Duration::from_secs(300);

/// The most bytes of Arrow data ([`voxpop_queries::sql::result_bytes`] of the batches) that results may hold,
/// all clients together: those waiting under their tickets and those being sent. A statement's
/// result is built and kept before its client asks for it (ADBC's `adbc_execute_partitions`
/// asks for `FlightInfo` alone), so without a bound a client that never fetches grows the server
/// by a result per call. 256 MiB leaves room for several large results next to the queries that
/// run (each in its own process, limited to 2 GiB) and the rest of the server.
pub const MAX_HELD_BYTES: usize = 256 << 20;

/// The most results that may wait for their clients at once, all clients together: enough for
/// many clients each reading a few partitions, and a bound on the bookkeeping that bytes alone
/// do not measure (each result's schema and batch structures).
pub const MAX_WAITING_RESULTS: usize = 64;

/// The results of statements between `FlightInfo` and the end of their `DoGet`: each waits under
/// its handle until fetched (taken out) or expired, and its bytes count against the bound until
/// its stream ends. Generic over the result so its bookkeeping can be tested without a server.
struct ResultStore<T> {
    waiting: HashMap<String, Waiting<T>>,
    /// Bytes of the waiting results and of the fetched ones whose streams have not ended.
    held_bytes: usize,
    max_bytes: usize,
    max_results: usize,
    ttl: Duration,
}

struct Waiting<T> {
    at: Instant,
    bytes: usize,
    /// The token that ran the statement (none in open mode): only it may fetch the result, so
    /// that a ticket seen by someone else, or kept past a revocation, is worth nothing.
    owner: Option<String>,
    result: T,
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

impl<T> ResultStore<T> {
    fn new(max_bytes: usize, max_results: usize, ttl: Duration) -> ResultStore<T> {
        ResultStore { waiting: HashMap::new(), held_bytes: 0, max_bytes, max_results, ttl }
    }

    /// Drops the results older than the time to live.
    fn drop_expired(&mut self, now: Instant) {
        let ttl = self.ttl;
        let mut freed = 0;
        self.waiting.retain(|_, waiting| {
            let keep = now.saturating_duration_since(waiting.at) < ttl;
            if !keep {
                freed += waiting.bytes;
            }
            keep
        });
        self.held_bytes -= freed;
    }

    fn full(&self) -> Status {
        Status::resource_exhausted(format!(
            "the Flight SQL server holds {} results ({} of at most {}) that wait for their clients: \
             fetch (DoGet) the results of the statements you ran, or wait up to {} s for unfetched \
             ones to expire, then run the statement again",
            self.waiting.len(),
            mib(self.held_bytes),
            mib(self.max_bytes),
            self.ttl.as_secs()
        ))
    }

    /// Refuses at once when as many results wait as may (after dropping the expired ones), so
    /// that a statement is not run only to be refused.
    fn check_room(&mut self, now: Instant) -> Result<(), Status> {
        if self.waiting.len() >= self.max_results {
            self.drop_expired(now);
        }
        if self.waiting.len() >= self.max_results { Err(self.full()) } else { Ok(()) }
    }

    /// Keeps `result` (`bytes` of Arrow data) under `handle`. The expired results go first (so
    /// they never hold room past their time); if it would still pass the bounds,
    /// `RESOURCE_EXHAUSTED`.
    fn insert(
        &mut self,
        handle: String,
        owner: Option<String>,
        bytes: usize,
        result: T,
        now: Instant,
    ) -> Result<(), Status> {
        if bytes > self.max_bytes {
            return Err(Status::resource_exhausted(format!(
                "the result holds {} of Arrow data, more than the {} a Flight SQL result may hold; \
                 narrow it (fewer columns, WHERE, LIMIT) or export the dataset",
                mib(bytes),
                mib(self.max_bytes)
            )));
        }
        self.drop_expired(now);
        if self.waiting.len() >= self.max_results || self.held_bytes + bytes > self.max_bytes {
            return Err(self.full());
        }
        self.held_bytes += bytes;
        self.waiting.insert(handle, Waiting { at: now, bytes, owner, result });
        Ok(())
    }

    /// Takes the result under `handle` out for `caller` (a ticket is good once), with its
    /// bytes, which stay held until [`ResultStore::release`]. An expired result is dropped, not
    /// given; another caller's is left where it is, and this caller told nothing about it.
    fn take(&mut self, handle: &str, caller: Option<&str>, now: Instant) -> Option<(usize, T)> {
        if self.waiting.get(handle)?.owner.as_deref() != caller {
            return None;
        }
        let waiting = self.waiting.remove(handle)?;
        if now.saturating_duration_since(waiting.at) >= self.ttl {
            self.held_bytes -= waiting.bytes;
            return None;
        }
        Some((waiting.bytes, waiting.result))
    }

    /// The stream of a result taken out has ended (sent, failed or dropped by its client).
    fn release(&mut self, bytes: usize) {
        self.held_bytes -= bytes;
    }
}

type SharedStore = Arc<Mutex<ResultStore<SqlResult>>>;

fn lock<T>(store: &Mutex<ResultStore<T>>) -> std::sync::MutexGuard<'_, ResultStore<T>> {
    store.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Holds a fetched result's bytes against [`MAX_HELD_BYTES`] while its stream lives: a client
/// that fetches without reading keeps the batches in the server as much as one that never
/// fetches.
struct Held {
    store: SharedStore,
    bytes: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        lock(&self.store).release(self.bytes);
    }
}

pub struct FlightSql {
    queries: Arc<PetitionQueries>,
    tokens: Arc<crate::auth::TokenStore>,
    results: SharedStore,
}

impl FlightSql {
    pub fn new(queries: Arc<PetitionQueries>, tokens: Arc<crate::auth::TokenStore>) -> FlightSql {
        let results = ResultStore::new(MAX_HELD_BYTES, MAX_WAITING_RESULTS, RESULT_TTL);
        FlightSql { queries, tokens, results: Arc::new(Mutex::new(results)) }
    }

    fn results(&self) -> std::sync::MutexGuard<'_, ResultStore<SqlResult>> {
        lock(&self.results)
    }

    /// The caller of a call: its token travels as gRPC metadata `authorization: Bearer ...`,
    /// read as the HTTP API reads the header (every value, so that two are refused there).
    fn caller(&self, metadata: &tonic::metadata::MetadataMap) -> Result<crate::auth::Caller, Status> {
        let mut headers = axum::http::HeaderMap::new();
        for value in metadata.get_all("authorization") {
            let value = axum::http::HeaderValue::from_bytes(value.as_encoded_bytes())
                .map_err(|_| Status::unauthenticated("the `authorization` metadata cannot be read"))?;
            headers.append(axum::http::header::AUTHORIZATION, value);
        }
        self.tokens.caller(&headers).map_err(|problem| Status::unauthenticated(problem.detail))
    }
}

/// The query's own faults (its text, its data, its size, its time) are `INVALID_ARGUMENT`;
/// ours are `INTERNAL`, logged as the HTTP API logs them.
fn status(err: QueryError) -> Status {
    match err {
        QueryError::BadRequest { field, message } => Status::invalid_argument(format!("{field}: {message}")),
        QueryError::Unavailable(message) => Status::unavailable(message),
        other => {
            tracing::error!(error = %other, "flight sql query failed");
            Status::internal(other.to_string())
        }
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    /// Tokens are checked on each statement (as on the HTTP endpoint), so the handshake has
    /// nothing to exchange.
    async fn do_handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        let response = HandshakeResponse { protocol_version: 0, payload: Default::default() };
        let stream = futures::stream::iter(vec![Ok(response)]);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(request.metadata())?;
        let mut sql = SqlRequest::new(&query.query);
        sql.province = caller.province();
        sql.commune = caller.commune();
        sql.personal_data = caller.personal_data();
        self.results().check_room(Instant::now())?;
        let result = self.queries.sql(&sql).await.map_err(status)?;
        let handle = Uuid::now_v7().to_string();
        let (rows, bytes) = (result.rows, result.batches.iter().map(voxpop_queries::sql::result_bytes).sum::<usize>());
        let schema = result.schema.clone();
        self.results().insert(handle.clone(), caller.token_id.clone(), bytes, result, Instant::now())?;
        let ticket = TicketStatementQuery { statement_handle: handle.into_bytes().into() };
        let endpoint = FlightEndpoint {
            ticket: Some(Ticket { ticket: ticket.as_any().encode_to_vec().into() }),
            location: vec![],
            expiration_time: None,
            app_metadata: Default::default(),
        };
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|err| Status::internal(format!("schema: {err}")))?
            .with_descriptor(request.into_inner())
            .with_endpoint(endpoint)
            .with_total_records(rows as i64)
            .with_total_bytes(bytes as i64)
            .with_ordered(true);
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = self.caller(request.metadata())?;
        let handle = String::from_utf8_lossy(&ticket.statement_handle).into_owned();
        let Some((bytes, result)) = self.results().take(&handle, caller.token_id.as_deref(), Instant::now()) else {
            return Err(Status::not_found(format!(
                "no result under this ticket (fetched already, or older than {} s)",
                RESULT_TTL.as_secs()
            )));
        };
        let held = Held { store: self.results.clone(), bytes };
        let batches = futures::stream::iter(result.batches.into_iter().map(Ok::<_, FlightError>));
        // Dictionary columns stay dictionaries (the default, `Hydrate`, expands each batch's
        // dictionary into plain values: a small dictionary result can grow a thousandfold, and
        // the stream's schema then differs from the one `FlightInfo` announced). A dictionary
        // goes with the first piece of its batch and again only when a later batch changes it.
        let stream = FlightDataEncoderBuilder::new()
            .with_dictionary_handling(DictionaryHandling::Resend)
            .with_schema(result.schema)
            .build(batches)
            .map_err(|err| Status::internal(err.to_string()))
            .map(move |item| {
                let _held = &held; // released when the stream ends or its client goes away
                item
            });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// Serves Flight SQL on `address` until the process ends.
pub async fn serve(
    queries: Arc<PetitionQueries>,
    tokens: Arc<crate::auth::TokenStore>,
    address: SocketAddr,
) -> anyhow::Result<()> {
    tracing::info!(%address, "Arrow Flight SQL listening");
    tonic::transport::Server::builder()
        .add_service(FlightServiceServer::new(FlightSql::new(queries, tokens)))
        .serve(address)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(300);

    fn new_store() -> ResultStore<&'static str> {
        ResultStore::new(1000, 3, TTL)
    }

    #[test]
    fn flight_results_are_capped_by_bytes_then_resource_exhausted() {
        let mut store = new_store();
        let now = Instant::now();
        store.insert("a".into(), None, 600, "a", now).unwrap();
        store.insert("b".into(), None, 400, "b", now).unwrap();
        assert_eq!(store.held_bytes, 1000);
        let refused = store.insert("c".into(), None, 1, "c", now).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("fetch (DoGet)") && refused.message().contains("300 s"), "{refused}");
        assert!(!store.waiting.contains_key("c"));
        // A result larger than the whole bound is refused for itself, even in an empty store.
        let too_large = ResultStore::<()>::new(1000, 3, TTL).insert("x".into(), None, 1001, (), now).unwrap_err();
        assert_eq!(too_large.code(), tonic::Code::ResourceExhausted);
        assert!(too_large.message().contains("narrow it"), "{too_large}");
    }

    #[test]
    fn flight_results_are_capped_by_count() {
        let mut store = new_store();
        let now = Instant::now();
        for handle in ["a", "b", "c"] {
            store.check_room(now).unwrap();
            store.insert(handle.into(), None, 1, handle, now).unwrap();
        }
        assert_eq!(store.check_room(now).unwrap_err().code(), tonic::Code::ResourceExhausted);
        assert_eq!(store.insert("d".into(), None, 1, "d", now).unwrap_err().code(), tonic::Code::ResourceExhausted);
        assert_eq!(store.waiting.len(), 3);
    }

    #[test]
    fn flight_expired_results_are_dropped_before_refusing() {
        let mut store = new_store();
        let start = Instant::now();
        store.insert("old".into(), None, 900, "old", start).unwrap();
        store.insert("young".into(), None, 50, "young", start + TTL / 2).unwrap();
        // Within the time to live the bytes are taken...
        let later = start + TTL - Duration::from_secs(1);
        assert!(store.insert("new".into(), None, 100, "new", later).is_err());
        // ...after it the expired result makes room, and only it goes.
        let after = start + TTL;
        store.insert("new".into(), None, 100, "new", after).unwrap();
        assert!(!store.waiting.contains_key("old"));
        assert_eq!(store.held_bytes, 150);
        assert_eq!(store.take("young", None, after), Some((50, "young")));
        // Count: three waiting, one expired, a fourth fits after dropping it.
        let mut store = new_store();
        store.insert("a".into(), None, 1, "a", start).unwrap();
        store.insert("b".into(), None, 1, "b", after).unwrap();
        store.insert("c".into(), None, 1, "c", after).unwrap();
        store.check_room(start + TTL + Duration::from_secs(1)).unwrap();
        store.insert("d".into(), None, 1, "d", start + TTL + Duration::from_secs(1)).unwrap();
        assert!(!store.waiting.contains_key("a") && store.waiting.len() == 3);
        // An expired result is not given, and its bytes are freed.
        let mut store = new_store();
        store.insert("a".into(), None, 10, "a", start).unwrap();
        assert_eq!(store.take("a", None, start + TTL), None);
        assert_eq!(store.held_bytes, 0);
    }

    #[test]
    fn flight_fetched_results_are_dropped_and_held_until_their_stream_ends() {
        let mut store = new_store();
        let now = Instant::now();
        store.insert("a".into(), None, 700, "a", now).unwrap();
        assert_eq!(store.take("a", None, now), Some((700, "a")));
        // A ticket is good once.
        assert_eq!(store.take("a", None, now), None);
        assert!(store.waiting.is_empty());
        // While the stream is sent its bytes still count...
        assert!(store.insert("b".into(), None, 400, "b", now).is_err());
        // ...and not after: the count of waiting results never included it.
        store.release(700);
        store.insert("b".into(), None, 400, "b", now).unwrap();
        assert_eq!(store.held_bytes, 400);
    }

    #[test]
    fn flight_results_are_given_only_to_the_token_that_ran_them() {
        let mut store = new_store();
        let now = Instant::now();
        store.insert("a".into(), Some("leader".into()), 10, "a", now).unwrap();
        assert_eq!(store.take("a", None, now), None, "no token");
        assert_eq!(store.take("a", Some("officer"), now), None, "another token");
        assert_eq!(store.take("a", Some("leader"), now), Some((10, "a")), "still there for its owner");
    }

    #[test]
    fn flight_held_result_is_released_on_drop() {
        let store: SharedStore = Arc::new(Mutex::new(ResultStore::new(1000, 3, TTL)));
        lock(&store).held_bytes = 300;
        let held = Held { store: store.clone(), bytes: 300 };
        let stream = futures::stream::iter([1, 2]).map(move |item| {
            let _held = &held;
            item
        });
        assert_eq!(lock(&store).held_bytes, 300);
        drop(stream);
        assert_eq!(lock(&store).held_bytes, 0);
    }
}

//! Arrow Flight SQL: the read-only SQL of `POST /api/v1/sql`, for clients that speak Arrow
//! (ADBC and JDBC Flight SQL drivers, pandas and polars through ADBC) and want results without
//! conversion. `voxpop serve --flight 127.0.0.1:8815` starts it next to the HTTP API.
//!
//! A statement is planned and run when the client asks for its `FlightInfo` (so errors reach the
//! client at once), and its batches wait under a one-time ticket until the client fetches them,
//! at most [`RESULT_TTL`]. The same rules as over HTTP apply: queries only, the masked view of
//! `petitions`, a row limit and a time limit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket};
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;
use voxpop_queries::sql::{SqlRequest, SqlResult};
use voxpop_queries::{PetitionQueries, QueryError};

/// How long a result waits for its client to fetch it.
pub const RESULT_TTL: Duration = Duration::from_secs(300);

pub struct FlightSql {
    queries: Arc<PetitionQueries>,
    tokens: Arc<crate::auth::TokenStore>,
    results: Mutex<HashMap<String, (Instant, SqlResult)>>,
}

impl FlightSql {
    pub fn new(queries: Arc<PetitionQueries>, tokens: Arc<crate::auth::TokenStore>) -> FlightSql {
        FlightSql { queries, tokens, results: Mutex::new(HashMap::new()) }
    }

    fn results(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, SqlResult)>> {
        self.results.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
        // The caller's token travels as gRPC metadata `authorization: Bearer ...`.
        let mut headers = axum::http::HeaderMap::new();
        if let Some(value) = request.metadata().get("authorization").and_then(|v| v.to_str().ok())
            && let Ok(value) = value.parse()
        {
            headers.insert(axum::http::header::AUTHORIZATION, value);
        }
        let caller = self.tokens.caller(&headers).map_err(|problem| Status::unauthenticated(problem.detail))?;
        let mut sql = SqlRequest::new(&query.query);
        sql.province = caller.province();
        sql.commune = caller.commune();
        sql.personal_data = caller.personal_data();
        let result = self.queries.sql(&sql).await.map_err(status)?;
        let handle = Uuid::now_v7().to_string();
        let (rows, bytes) =
            (result.rows as i64, result.batches.iter().map(|b| b.get_array_memory_size() as i64).sum::<i64>());
        let schema = result.schema.clone();
        {
            let mut results = self.results();
            results.retain(|_, (at, _)| at.elapsed() < RESULT_TTL);
            results.insert(handle.clone(), (Instant::now(), result));
        }
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
            .with_total_records(rows)
            .with_total_bytes(bytes)
            .with_ordered(true);
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let handle = String::from_utf8_lossy(&ticket.statement_handle).into_owned();
        let Some((_, result)) = self.results().remove(&handle) else {
            return Err(Status::not_found("no result under this ticket (fetched already, or older than 5 minutes)"));
        };
        let batches = futures::stream::iter(result.batches.into_iter().map(Ok::<_, FlightError>));
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(result.schema)
            .build(batches)
            .map_err(|err| Status::internal(err.to_string()));
        Ok(Response::new(Box::pin(stream.into_stream())))
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

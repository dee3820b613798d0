//! Flight SQL commands over the query engine. Authentication is done once, in front of this
//! (see `gate.rs`), so every method here may assume an authenticated caller.

use std::pin::Pin;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandStatementQuery, CommandStatementUpdate, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::{stream, Stream, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};
use tracing::debug;

use super::auth::{unauthenticated, Auth};
use super::limits::{Limit, Principal};
use super::query::{QueryEngine, QueryError};

pub struct FlightSql {
    pub engine: Arc<QueryEngine>,
    pub auth: Arc<Auth>,
    sql_info: SqlInfoData,
}

type DataStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

pub fn status(e: QueryError) -> Status {
    match e {
        QueryError::ReadOnly(m) => Status::permission_denied(format!(
            "shopwatch serves the lake read-only; only SELECT is allowed ({m})"
        )),
        QueryError::Invalid(m) => Status::invalid_argument(m),
        QueryError::Execution(m) => Status::internal(m),
        QueryError::Limit(Limit::Time, m) => Status::deadline_exceeded(m),
        QueryError::Limit(_, m) => Status::resource_exhausted(m),
    }
}

fn encode(schema: SchemaRef, batches: Vec<RecordBatch>) -> DataStream {
    let input = stream::iter(batches.into_iter().map(Ok::<_, FlightError>));
    Box::pin(
        FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(input)
            .map_err(|e| Status::internal(e.to_string())),
    )
}

fn info(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    // No location: the client fetches the ticket on the same channel, as with Dremio.
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor))
}

fn table_types_schema() -> Schema {
    Schema::new(vec![Field::new("table_type", DataType::Utf8, false)])
}

/// FlightInfo for a metadata command: its ticket is the command itself.
fn command_info<M: ProstMessageExt>(
    schema: &Schema,
    query: &M,
    request: Request<FlightDescriptor>,
) -> Result<Response<FlightInfo>, Status> {
    Ok(Response::new(info(
        schema,
        query.as_any().encode_to_vec(),
        request.into_inner(),
    )?))
}

impl FlightSql {
    pub fn new(engine: Arc<QueryEngine>, auth: Arc<Auth>) -> Self {
        let mut b = SqlInfoDataBuilder::new();
        b.append(SqlInfo::FlightSqlServerName, "shopwatch");
        b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
        b.append(SqlInfo::FlightSqlServerReadOnly, true);
        b.append(SqlInfo::FlightSqlServerSql, true);
        b.append(SqlInfo::FlightSqlServerSubstrait, false);
        b.append(SqlInfo::FlightSqlServerTransaction, 0i32);
        b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        let sql_info = b
            .build()
            .unwrap_or_else(|_| SqlInfoDataBuilder::new().build().expect("empty sql info"));
        FlightSql {
            engine,
            auth,
            sql_info,
        }
    }

    /// The plan for raw UTF-8 SQL (the legacy descriptor pyarrow users send).
    pub async fn info_for_sql(
        &self,
        sql: String,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        let schema = self.engine.schema(&sql).await.map_err(status)?;
        let ticket = TicketStatementQuery {
            statement_handle: sql.into_bytes().into(),
        };
        info(&schema, ticket.as_any().encode_to_vec(), descriptor)
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(unauthenticated)?;
        let (token, _) = self.auth.basic(header).await?;
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let mut response: Response<
            Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>,
        > = Response::new(Box::pin(stream::iter([Ok(reply)])));
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::internal("token"))?;
        response.metadata_mut().insert("authorization", value);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        debug!(sql = %query.query, "flight sql statement");
        Ok(Response::new(
            self.info_for_sql(query.query, request.into_inner()).await?,
        ))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let sql = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("ticket is not a shopwatch statement"))?;
        // Who asked: put there by the gate.
        let who = request
            .extensions()
            .get::<Principal>()
            .copied()
            .unwrap_or_default();
        let (schema, batches) = self.engine.run(&sql, who).await.map_err(status)?;
        let input = batches.map_err(|e| FlightError::Tonic(Box::new(status(e))));
        Ok(Response::new(Box::pin(
            FlightDataEncoderBuilder::new()
                .with_schema(schema)
                .build(input)
                .map_err(|e| Status::internal(e.to_string())),
        )))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        command_info(&query.clone().into_builder().schema(), &query, request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut b = query.into_builder();
        b.append(self.engine.source());
        let batch = b.build().map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(encode(batch.schema(), vec![batch])))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        command_info(&query.clone().into_builder().schema(), &query, request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut b = query.into_builder();
        b.append(self.engine.source(), self.engine.namespace());
        let batch = b.build().map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(encode(batch.schema(), vec![batch])))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        command_info(&query.clone().into_builder().schema(), &query, request)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut b = query.into_builder();
        for (name, schema) in self.engine.tables().await.map_err(status)? {
            b.append(
                self.engine.source(),
                self.engine.namespace(),
                name,
                "TABLE",
                &schema,
            )
            .map_err(|e| Status::internal(e.to_string()))?;
        }
        let batch = b.build().map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(encode(batch.schema(), vec![batch])))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        command_info(&table_types_schema(), &query, request)
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let schema = Arc::new(table_types_schema());
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(arrow_array::StringArray::from(vec!["TABLE"]))],
        )
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(encode(schema, vec![batch])))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        command_info(
            &query.clone().into_builder(&self.sql_info).schema(),
            &query,
            request,
        )
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = query
            .into_builder(&self.sql_info)
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(encode(batch.schema(), vec![batch])))
    }

    async fn do_put_statement_update(
        &self,
        _ticket: CommandStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(status(QueryError::ReadOnly("updates are refused".into())))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// Whether `cmd` is a Flight SQL command (a protobuf `Any` of the Flight SQL package) rather
/// than raw SQL text.
pub fn is_flight_sql_command(cmd: &[u8]) -> bool {
    arrow_flight::sql::Any::decode(cmd).is_ok_and(|any| {
        any.type_url
            .starts_with("type.googleapis.com/arrow.flight.protocol.sql.")
    })
}

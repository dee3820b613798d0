//! The gRPC face of the embedded server: authentication for every call in one place, and the
//! legacy form Dremio also accepts, where the descriptor's command is raw UTF-8 SQL rather
//! than a Flight SQL message (what the seed's pyarrow dashboard sends).

use std::sync::Arc;

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, PollInfo, PutResult, SchemaResult, Ticket,
};
use tonic::{Request, Response, Status, Streaming};

use super::service::{is_flight_sql_command, FlightSql};

#[derive(Clone)]
pub struct Gate {
    pub inner: Arc<FlightSql>,
}

type Inner = FlightSql;

impl Gate {
    /// Authenticate `request` and note who it is (the query's metrics and limits read it);
    /// a token to send back when Basic credentials were used.
    async fn check<T>(&self, request: &mut Request<T>) -> Result<Option<String>, Status> {
        let (who, token) = self.inner.auth.check(request.metadata()).await?;
        request.extensions_mut().insert(who);
        Ok(token)
    }
}

/// A call authenticated with Basic credentials gets its bearer token back, as from Dremio.
fn with_token<T>(mut response: Response<T>, token: Option<String>) -> Response<T> {
    if let Some(token) = token {
        if let Ok(v) = format!("Bearer {token}").parse() {
            response.metadata_mut().insert("authorization", v);
        }
    }
    response
}

#[tonic::async_trait]
impl FlightService for Gate {
    type HandshakeStream = <Inner as FlightService>::HandshakeStream;
    type ListFlightsStream = <Inner as FlightService>::ListFlightsStream;
    type DoGetStream = <Inner as FlightService>::DoGetStream;
    type DoPutStream = <Inner as FlightService>::DoPutStream;
    type DoExchangeStream = <Inner as FlightService>::DoExchangeStream;
    type DoActionStream = <Inner as FlightService>::DoActionStream;
    type ListActionsStream = <Inner as FlightService>::ListActionsStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        FlightService::handshake(&*self.inner, request).await
    }

    async fn list_flights(
        &self,
        mut request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        let token = self.check(&mut request).await?;
        Ok(with_token(
            FlightService::list_flights(&*self.inner, request).await?,
            token,
        ))
    }

    async fn get_flight_info(
        &self,
        mut request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let token = self.check(&mut request).await?;
        let response = if is_flight_sql_command(&request.get_ref().cmd) {
            FlightService::get_flight_info(&*self.inner, request).await?
        } else {
            let descriptor = request.into_inner();
            let sql = String::from_utf8(descriptor.cmd.to_vec()).map_err(|_| {
                Status::invalid_argument("the command is neither Flight SQL nor UTF-8 SQL")
            })?;
            Response::new(self.inner.info_for_sql(sql, descriptor).await?)
        };
        Ok(with_token(response, token))
    }

    async fn poll_flight_info(
        &self,
        mut request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        let token = self.check(&mut request).await?;
        Ok(with_token(
            FlightService::poll_flight_info(&*self.inner, request).await?,
            token,
        ))
    }

    async fn get_schema(
        &self,
        mut request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        let token = self.check(&mut request).await?;
        Ok(with_token(
            FlightService::get_schema(&*self.inner, request).await?,
            token,
        ))
    }

    async fn do_get(
        &self,
        mut request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let token = self.check(&mut request).await?;
        Ok(with_token(
            FlightService::do_get(&*self.inner, request).await?,
            token,
        ))
    }

    async fn do_put(
        &self,
        mut request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        self.check(&mut request).await?;
        Err(super::service::status(super::query::QueryError::ReadOnly(
            "DoPut is refused".into(),
        )))
    }

    async fn do_exchange(
        &self,
        mut request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        self.check(&mut request).await?;
        Err(Status::unimplemented("DoExchange is not supported"))
    }

    async fn do_action(
        &self,
        mut request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let token = self.check(&mut request).await?;
        Ok(with_token(
            FlightService::do_action(&*self.inner, request).await?,
            token,
        ))
    }

    async fn list_actions(
        &self,
        mut request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let token = self.check(&mut request).await?;
        Ok(with_token(
            FlightService::list_actions(&*self.inner, request).await?,
            token,
        ))
    }
}

#[allow(dead_code)]
fn _types(_: ActionType, _: PutResult) {}

//! A Flight SQL client that speaks to Dremio and to our embedded server alike: handshake,
//! `execute`, `do_get` on the same channel, a new handshake when the token expired. SQL for
//! both is built with the literal helpers below (Dremio has no bind parameters).

use std::time::Duration;

use anyhow::Context;
use arrow_array::RecordBatch;
use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use tonic::transport::{Channel, Endpoint};

pub struct FlightQueryClient {
    channel: Channel,
    client: FlightSqlServiceClient<Channel>,
    username: String,
    password: String,
}

/// TLS to a Flight server whose certificate is checked against `ca_pem` for `domain`.
#[derive(Clone, Debug)]
pub struct ClientTls {
    pub ca_pem: Vec<u8>,
    pub domain: String,
}

impl FlightQueryClient {
    pub async fn connect(
        addr: &str,
        username: &str,
        password: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        Self::connect_with(addr, username, password, timeout, None).await
    }

    pub async fn connect_with(
        addr: &str,
        username: &str,
        password: &str,
        timeout: Duration,
        tls: Option<&ClientTls>,
    ) -> anyhow::Result<Self> {
        let scheme = if tls.is_some() { "https://" } else { "http://" };
        let uri = if addr.contains("://") {
            addr.replace("grpc+tcp://", "http://")
                .replace("grpc+tls://", "https://")
        } else {
            format!("{scheme}{addr}")
        };
        let mut endpoint = Endpoint::from_shared(uri.clone())
            .with_context(|| format!("Flight address {addr}"))?
            .connect_timeout(timeout)
            .timeout(timeout);
        if let Some(t) = tls {
            crate::auth::tls::install_provider();
            endpoint = endpoint
                .tls_config(
                    tonic::transport::ClientTlsConfig::new()
                        .ca_certificate(tonic::transport::Certificate::from_pem(&t.ca_pem))
                        .domain_name(t.domain.clone()),
                )
                .with_context(|| format!("TLS to Flight SQL at {addr}"))?;
        }
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("connecting to Flight SQL at {addr}"))?;
        let mut me = FlightQueryClient {
            client: FlightSqlServiceClient::new(channel.clone()),
            channel,
            username: username.to_string(),
            password: password.to_string(),
        };
        me.login().await?;
        Ok(me)
    }

    async fn login(&mut self) -> anyhow::Result<()> {
        // The error text never carries the password; say which user failed.
        self.client
            .handshake(&self.username, &self.password)
            .await
            .map_err(|e| anyhow::anyhow!("Flight login as {} failed: {e}", self.username))?;
        Ok(())
    }

    /// Run `sql`; logs in again once if the session expired.
    pub async fn query(&mut self, sql: &str) -> anyhow::Result<Vec<RecordBatch>> {
        match self.query_once(sql).await {
            Err(e) if status_code(&e) == Some(tonic::Code::Unauthenticated) => {
                self.login().await?;
                self.query_once(sql).await
            }
            other => other,
        }
    }

    async fn query_once(&mut self, sql: &str) -> anyhow::Result<Vec<RecordBatch>> {
        run_query(&mut self.client, sql).await
    }

    /// Run every query at once over the same channel (HTTP/2 multiplexes them); results in
    /// the order given. Logs in again once if the session expired.
    pub async fn query_all(&mut self, sqls: &[String]) -> anyhow::Result<Vec<Vec<RecordBatch>>> {
        match self.query_all_once(sqls).await {
            Err(e) if status_code(&e) == Some(tonic::Code::Unauthenticated) => {
                self.login().await?;
                self.query_all_once(sqls).await
            }
            other => other,
        }
    }

    async fn query_all_once(&self, sqls: &[String]) -> anyhow::Result<Vec<Vec<RecordBatch>>> {
        let runs = sqls.iter().map(|sql| {
            let mut client = FlightSqlServiceClient::new(self.channel.clone());
            if let Some(token) = self.client.token() {
                client.set_token(token.clone());
            }
            async move { run_query(&mut client, sql).await }
        });
        futures::future::try_join_all(runs).await
    }
}

/// The gRPC code a Flight call failed with, if it failed on the server's word (the typed
/// status, never its text).
pub fn status_code(e: &anyhow::Error) -> Option<tonic::Code> {
    e.chain().find_map(
        |cause| match cause.downcast_ref::<arrow_flight::error::FlightError>() {
            Some(arrow_flight::error::FlightError::Tonic(status)) => Some(status.code()),
            _ => cause
                .downcast_ref::<tonic::Status>()
                .map(tonic::Status::code),
        },
    )
}

async fn run_query(
    client: &mut FlightSqlServiceClient<Channel>,
    sql: &str,
) -> anyhow::Result<Vec<RecordBatch>> {
    let info = client.execute(sql.to_string(), None).await?;
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint
            .ticket
            .context("Flight endpoint without a ticket")?;
        let stream = client.do_get(ticket).await?;
        batches.extend(stream.try_collect::<Vec<_>>().await?);
    }
    Ok(batches)
}

// The portable SQL pieces are shared with the KPI definitions (actors/src/sql.rs).
#[cfg(any(test, feature = "bench"))]
pub use shopwatch_actors::sql::timestamp_literal;

//! Embedded Arrow Flight SQL server over the lake, answering like Dremio's Flight port: the
//! same three-part table names, Basic-then-Bearer auth, raw-SQL descriptors, millisecond
//! timestamps. Read-only.

mod auth;
pub mod client;
mod gate;
pub mod kpis;
pub mod limits;
mod query;
mod service;
mod tables;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arrow_flight::flight_service_server::FlightServiceServer;
use iceberg::Catalog;
use tokio_stream::StreamExt;
use tracing::info;

pub use query::QueryEngine;

pub struct FlightParams {
    pub listen: SocketAddr,
    pub username: String,
    pub password: String,
    pub token_ttl: Duration,
    pub source: String,
    pub namespace: String,
    /// The page's users and tokens, accepted here too (`None`: only the credential above).
    pub users: Option<Arc<crate::auth::Auth>>,
    /// Serve over TLS from these PEM files.
    pub tls: Option<crate::config::TlsConfig>,
    /// What one query may take.
    pub limits: limits::QueryLimits,
    /// Where the per-query metrics are registered (the process's one registry).
    pub registry: prometheus::Registry,
}

/// Bind and serve until `stop` resolves (a task of its own; the benches use this).
#[cfg(any(test, feature = "bench"))]
pub async fn serve(
    params: FlightParams,
    catalog: Arc<dyn Catalog>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = bind(&params).await?;
    let server = Server::new(params, catalog).await?;
    Ok(tokio::spawn(async move {
        if let Err(e) = server.run(listener, stop).await {
            tracing::error!(error = %e, "Flight SQL server stopped");
        }
    }))
}

/// The Flight listener (its failure names `flight.listen`).
pub async fn bind(params: &FlightParams) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(params.listen)
        .await
        .with_context(|| {
            format!(
                "binding flight.listen {} (use --flight to pick another address)",
                params.listen
            )
        })
}

/// The Flight SQL service, ready to serve listeners (again, after a restart).
#[derive(Clone)]
pub struct Server {
    gate: gate::Gate,
    tls: Option<tonic::transport::Identity>,
    listen: SocketAddr,
    source: String,
}

impl Server {
    pub async fn new(params: FlightParams, catalog: Arc<dyn Catalog>) -> anyhow::Result<Self> {
        let metrics = limits::QueryMetrics::new(&params.registry);
        // Reads only: a query plans on the table it planned on before while it is unchanged.
        let catalog: Arc<dyn Catalog> =
            Arc::new(tables::ReadCatalog::new(catalog, metrics.tables.clone()));
        let pool = limits::QueryPool::new(params.limits, metrics)
            .context("starting the Flight SQL query threads")?;
        let engine =
            Arc::new(QueryEngine::new(catalog, &params.source, &params.namespace, pool).await?);
        let auth = Arc::new(
            auth::Auth::new(params.username, params.password, params.token_ttl)
                .with_users(params.users.clone()),
        );
        let gate = gate::Gate {
            inner: Arc::new(service::FlightSql::new(engine, auth)),
        };
        let tls = match &params.tls {
            Some(tls) => {
                crate::auth::tls::install_provider();
                let read = |p: &std::path::Path, key: &str| {
                    std::fs::read(p).with_context(|| format!("{key} {}: reading", p.display()))
                };
                Some(tonic::transport::Identity::from_pem(
                    read(&tls.cert_file, "tls.cert_file")?,
                    read(&tls.key_file, "tls.key_file")?,
                ))
            }
            None => None,
        };
        Ok(Server {
            gate,
            tls,
            listen: params.listen,
            source: params.source,
        })
    }

    /// Serve `listener` until `stop` resolves; an error if the server stops otherwise.
    pub async fn run(
        &self,
        listener: tokio::net::TcpListener,
        stop: impl std::future::Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        // Without TCP_NODELAY, Nagle's algorithm and the client's delayed ACK add ~40 ms to
        // each small response (GetFlightInfo, then DoGet): measured 88 ms for a one-row query.
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
            s.and_then(|s| {
                s.set_nodelay(true)?;
                Ok(s)
            })
        });
        info!(flight = %self.listen, source = %self.source, "Flight SQL server listening");
        let mut builder = tonic::transport::Server::builder();
        if let Some(identity) = &self.tls {
            builder = builder
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity.clone()))
                .context("tls.cert_file / tls.key_file for Flight SQL")?;
        }
        builder
            .add_service(
                FlightServiceServer::new(self.gate.clone()).max_decoding_message_size(16 << 20),
            )
            .serve_with_incoming_shutdown(incoming, stop)
            .await
            .context("Flight SQL server")
    }
}

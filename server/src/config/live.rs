//! `[flight]`, `[query]`, `[demo]` and `[drill]`: the query server, where KPIs are read from,
//! the demo's generator and the fault-injection endpoint.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::secret::Secret;
use super::ConfigError;

/// The seed's Dremio credentials, accepted out of the box only on a loopback listener.
pub const SEED_FLIGHT_USER: &str = "dremio";
pub const SEED_FLIGHT_PASSWORD: &str = "dremio123";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlightConfig {
    /// Serve the lake over Arrow Flight SQL (as Dremio's port does).
    pub enabled: bool,
    /// The embedded Flight SQL server's address (flag `--flight`); off loopback, logins are required.
    pub listen: String,
    /// The Flight SQL user the old stack's dashboard logs in with (`dremio` / `dremio123` by default, accepted on loopback only); the page's own KPI reads use it too.
    pub username: String,
    /// The seed's default is accepted on loopback only.
    pub password: Secret,
    /// Bearer tokens expire after this long; clients re-authenticate.
    pub token_ttl_s: u64,
    /// First part of the three-part table names (the seed's Dremio source name).
    pub source: String,
    /// Memory one query may hold (DataFusion's pool; sorts and joins spill to disk first);
    /// past it the query fails, naming this key.
    pub query_max_memory_mb: usize,
    /// Time one query may run, planning and streaming included.
    pub query_timeout_s: u64,
    /// Queries at once; another waits up to 5 s for a slot, then is refused.
    pub query_max_concurrent: usize,
    /// Threads the queries run on, apart from the pipeline's (0: half the cores, at least 1).
    pub query_threads: usize,
}

impl FlightConfig {
    /// What one query may take.
    pub fn limits(&self) -> crate::flight::limits::QueryLimits {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        crate::flight::limits::QueryLimits {
            memory_bytes: self.query_max_memory_mb.saturating_mul(1 << 20),
            timeout: std::time::Duration::from_secs(self.query_timeout_s),
            max_concurrent: self.query_max_concurrent,
            threads: if self.query_threads == 0 {
                (cores / 2).max(1)
            } else {
                self.query_threads
            },
        }
    }
}

impl Default for FlightConfig {
    fn default() -> Self {
        FlightConfig {
            enabled: true,
            listen: "127.0.0.1:32010".into(),
            username: SEED_FLIGHT_USER.into(),
            password: Secret::new(SEED_FLIGHT_PASSWORD),
            token_ttl_s: 7_200,
            source: "nessie_minio_catalog".into(),
            query_max_memory_mb: 256,
            query_timeout_s: 60,
            query_max_concurrent: 8,
            query_threads: 0,
        }
    }
}

impl FlightConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        let Ok(addr) = self.listen.parse::<SocketAddr>() else {
            return Err(ConfigError::check(
                "flight.listen",
                "must be an IP:PORT address such as 127.0.0.1:32010 (flag --flight)",
            ));
        };
        if !addr.ip().is_loopback() && self.password.expose() == SEED_FLIGHT_PASSWORD {
            return Err(ConfigError::check(
                "flight.password",
                "the default Flight credentials (dremio/dremio123) are only accepted on a loopback address; \
                 set SHOPWATCH_FLIGHT__USERNAME and SHOPWATCH_FLIGHT__PASSWORD (or [flight] in shopwatch.toml), \
                 or listen on 127.0.0.1",
            ));
        }
        if self.password.is_empty() || self.username.is_empty() {
            return Err(ConfigError::check(
                "flight.password",
                "username and password must not be empty",
            ));
        }
        if self.token_ttl_s == 0 {
            return Err(ConfigError::check(
                "flight.token_ttl_s",
                "must be at least 1 (seconds)",
            ));
        }
        for (key, v, what) in [
            (
                "flight.query_max_memory_mb",
                self.query_max_memory_mb as u64,
                "MiB",
            ),
            ("flight.query_timeout_s", self.query_timeout_s, "seconds"),
            (
                "flight.query_max_concurrent",
                self.query_max_concurrent as u64,
                "queries",
            ),
        ] {
            if v == 0 {
                return Err(ConfigError::check(
                    key,
                    format!("must be at least 1 ({what})"),
                ));
            }
        }
        Ok(())
    }
}

/// Where the KPI refresher (and `shopwatch query`) read the lake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryBackend {
    /// This process's Flight server.
    Embedded,
    /// A Dremio Flight endpoint.
    Dremio,
}

impl QueryBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            QueryBackend::Embedded => "embedded",
            QueryBackend::Dremio => "dremio",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Where the page's KPI reads and `shopwatch query` go: `embedded` (this process's Flight SQL) or `dremio`.
    pub backend: QueryBackend,
    /// Dremio's Flight endpoint, HOST:PORT (backend = dremio).
    pub endpoint: String,
    /// Dremio user (backend = dremio; the embedded backend uses the [flight] credentials).
    pub username: String,
    /// backend = dremio: the Dremio user's password (redacted).
    pub password: Secret,
    /// Source name in three-part table names; empty = `flight.source`.
    pub source: String,
    /// Refresh at least this often, even with no new commit.
    pub refresh_ms: u64,
    /// And at most this often, however fast commits come.
    pub min_interval_ms: u64,
    /// Time limit for connecting and for each query.
    pub timeout_ms: u64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            backend: QueryBackend::Embedded,
            endpoint: String::new(),
            username: String::new(),
            password: Secret::default(),
            source: String::new(),
            refresh_ms: 5_000,
            min_interval_ms: 1_000,
            timeout_ms: 10_000,
        }
    }
}

impl QueryConfig {
    fn validate(&self, flight: &FlightConfig) -> Result<(), ConfigError> {
        match self.backend {
            QueryBackend::Embedded if !flight.enabled => {
                return Err(ConfigError::check(
                    "query.backend",
                    "`embedded` reads KPIs from this process's Flight server, but flight.enabled is false; \
                     enable it or set query.backend = \"dremio\" with query.endpoint",
                ))
            }
            QueryBackend::Embedded => {}
            QueryBackend::Dremio => {
                if self.endpoint.parse::<SocketAddr>().is_err() && !self.endpoint.contains(':') {
                    return Err(ConfigError::check(
                        "query.endpoint",
                        "query.backend = \"dremio\" needs Dremio's Flight endpoint as HOST:PORT, e.g. dremio:32010",
                    ));
                }
                if self.username.is_empty() || self.password.is_empty() {
                    return Err(ConfigError::check(
                        "query.password",
                        "query.backend = \"dremio\" needs query.username and query.password \
                         (SHOPWATCH_QUERY__USERNAME, SHOPWATCH_QUERY__PASSWORD)",
                    ));
                }
            }
        }
        if self.min_interval_ms < 100 || self.refresh_ms < self.min_interval_ms {
            return Err(ConfigError::check(
                "query.refresh_ms",
                "needs query.min_interval_ms >= 100 and query.refresh_ms >= query.min_interval_ms",
            ));
        }
        if self.timeout_ms < 100 {
            return Err(ConfigError::check(
                "query.timeout_ms",
                "must be at least 100 (milliseconds)",
            ));
        }
        Ok(())
    }
}

/// A resolved Flight SQL target for reading KPIs.
#[derive(Clone, Debug)]
pub struct QueryTarget {
    pub backend: &'static str,
    pub addr: String,
    pub username: String,
    pub password: Secret,
    pub source: String,
    pub namespace: String,
    pub timeout: std::time::Duration,
    /// The embedded server under `[tls]`: its certificate is the trust root.
    pub tls: Option<crate::flight::client::ClientTls>,
}

impl QueryTarget {
    /// A Flight SQL session with the query server (the refresher's, drill-down's and ranges').
    pub async fn connect(&self) -> anyhow::Result<crate::flight::client::FlightQueryClient> {
        crate::flight::client::FlightQueryClient::connect_with(
            &self.addr,
            &self.username,
            self.password.expose(),
            self.timeout,
            self.tls.as_ref(),
        )
        .await
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Generator rate in events per second.
    pub rate: f64,
    /// The share of malformed records the demo's generator sends (they go to `dead_letters`).
    pub malformed_fraction: f64,
    /// Where `shopwatch demo` runs its broker.
    pub broker_listen: String,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            rate: 200.0,
            malformed_fraction: 0.01,
            broker_listen: "127.0.0.1:9092".into(),
        }
    }
}

impl DemoConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.broker_listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::check(
                "demo.broker_listen",
                "must be an IP:PORT address such as 127.0.0.1:9092",
            ));
        }
        if !(0.0..=1.0).contains(&self.malformed_fraction) {
            return Err(ConfigError::check(
                "demo.malformed_fraction",
                "must be between 0 and 1",
            ));
        }
        Ok(())
    }
}

/// The fault-injection endpoint (`/drill/*`) for `shopwatch drill`. Off by default; when on,
/// every request must carry `Authorization: Bearer <token>`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrillConfig {
    /// Serve the fault-injection endpoint `/drill/*` (builds with `--features failpoints` only; needs `token`).
    pub enabled: bool,
    /// At least 16 characters when enabled.
    pub token: Secret,
    /// Faults armed at start-up, `point[@target]=[N*]pause|error|fatal|panic|delay(MS)|timeout(MS);…`
    /// (builds with the `failpoints` feature only).
    pub failpoints: String,
}

impl DrillConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled && !shopwatch_actors::faults::ENABLED {
            return Err(ConfigError::check(
                "drill.enabled",
                "the fault-injection endpoint exists only in builds with the failpoints feature \
                 (`cargo build --features failpoints`); turn drill.enabled off",
            ));
        }
        if self.enabled && self.token.expose().chars().count() < 16 {
            return Err(ConfigError::check(
                "drill.token",
                "drill.enabled needs a token of at least 16 characters \
                 (SHOPWATCH_DRILL__TOKEN); every /drill request must send it as a bearer token",
            ));
        }
        if let Err(e) = shopwatch_actors::faults::parse_spec(&self.failpoints) {
            return Err(ConfigError::check("drill.failpoints", e.to_string()));
        }
        if !self.failpoints.trim().is_empty() && !shopwatch_actors::faults::ENABLED {
            return Err(ConfigError::check(
                "drill.failpoints",
                "this build has no failpoints; build with `cargo build --features failpoints`",
            ));
        }
        Ok(())
    }
}

impl super::Config {
    pub(super) fn validate_live(&self) -> Result<(), ConfigError> {
        self.drill.validate()?;
        self.http.validate()?;
        self.demo.validate()?;
        self.flight.validate()?;
        self.query.validate(&self.flight)
    }

    /// The Flight endpoint KPIs are read from, per `query.backend`.
    pub fn query_target(&self) -> QueryTarget {
        let q = &self.query;
        let timeout = std::time::Duration::from_millis(q.timeout_ms);
        let source = if q.source.is_empty() {
            self.flight.source.clone()
        } else {
            q.source.clone()
        };
        let namespace = self.lake.namespace.clone();
        match q.backend {
            QueryBackend::Dremio => QueryTarget {
                backend: q.backend.as_str(),
                addr: q.endpoint.clone(),
                username: q.username.clone(),
                password: q.password.clone(),
                source,
                namespace,
                timeout,
                tls: None,
            },
            QueryBackend::Embedded => {
                // A wildcard listener is reached on loopback.
                let addr = match self.flight.listen.parse::<SocketAddr>() {
                    Ok(a) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
                    _ => self.flight.listen.clone(),
                };
                QueryTarget {
                    backend: q.backend.as_str(),
                    addr,
                    username: self.flight.username.clone(),
                    password: self.flight.password.clone(),
                    source,
                    namespace,
                    timeout,
                    tls: self
                        .tls
                        .enabled()
                        .then(|| crate::flight::client::ClientTls {
                            ca_pem: std::fs::read(self.tls.trust_file()).unwrap_or_default(),
                            domain: if self.tls.server_name.is_empty() {
                                "localhost".into()
                            } else {
                                self.tls.server_name.clone()
                            },
                        }),
                }
            }
        }
    }
}

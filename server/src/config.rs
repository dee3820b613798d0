//! Configuration: built-in defaults < `shopwatch.toml` < `SHOPWATCH_<SECTION>__<KEY>` env <
//! command-line flags. Every layer is checked for unknown keys, named in the error.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub topics: TopicsConfig,
    pub lake: LakeConfig,
    pub pipeline: PipelineConfig,
    pub supervision: SupervisionConfig,
    pub maintenance: MaintenanceConfig,
    pub http: HttpConfig,
    pub demo: DemoConfig,
    pub windows: WindowsConfig,
    pub alerts: AlertsConfig,
    pub flight: FlightConfig,
    pub query: QueryConfig,
    pub drill: DrillConfig,
}

/// The fault-injection endpoint (`/drill/*`) for `shopwatch drill`. Off by default; when on,
/// every request must carry `Authorization: Bearer <token>`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrillConfig {
    pub enabled: bool,
    /// A secret: redacted, never logged. At least 16 characters when enabled.
    pub token: String,
    /// Failpoints armed at start-up, `name=[N*]pause|error|panic;…` (builds with the
    /// `failpoints` feature only).
    pub failpoints: String,
}

/// Where the KPI refresher (and `shopwatch query`) read the lake: the embedded Flight server
/// or a Dremio Flight endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// `embedded` (this process's Flight server) or `dremio`.
    pub backend: String,
    /// Dremio's Flight endpoint, HOST:PORT (backend = dremio).
    pub endpoint: String,
    /// Dremio user (backend = dremio; the embedded backend uses the [flight] credentials).
    pub username: String,
    /// A secret: redacted, never logged.
    pub password: String,
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
            backend: "embedded".into(),
            endpoint: String::new(),
            username: String::new(),
            password: String::new(),
            source: String::new(),
            refresh_ms: 5_000,
            min_interval_ms: 1_000,
            timeout_ms: 10_000,
        }
    }
}

/// A resolved Flight SQL target for reading KPIs.
#[derive(Clone, Debug)]
pub struct QueryTarget {
    pub backend: &'static str,
    pub addr: String,
    pub username: String,
    pub password: String,
    pub source: String,
    pub namespace: String,
    pub timeout: std::time::Duration,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlightConfig {
    /// Serve the lake over Arrow Flight SQL (as Dremio's port does).
    pub enabled: bool,
    pub listen: String,
    pub username: String,
    /// A secret: redacted, never logged. The seed's default is accepted on loopback only.
    pub password: String,
    /// Bearer tokens expire after this long; clients re-authenticate.
    pub token_ttl_s: u64,
    /// First part of the three-part table names (the seed's Dremio source name).
    pub source: String,
}

/// The seed's Dremio credentials, accepted out of the box only on a loopback listener.
pub const SEED_FLIGHT_USER: &str = "dremio";
pub const SEED_FLIGHT_PASSWORD: &str = "dremio123";

impl Default for FlightConfig {
    fn default() -> Self {
        FlightConfig {
            enabled: true,
            listen: "127.0.0.1:32010".into(),
            username: SEED_FLIGHT_USER.into(),
            password: SEED_FLIGHT_PASSWORD.into(),
            token_ttl_s: 7_200,
            source: "nessie_minio_catalog".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, `HOST:PORT[,HOST:PORT]`.
    pub brokers: String,
    /// Consumer group prefix (groups only report lag; positions come from the lake).
    pub group_prefix: String,
    /// Partitions per topic when `shopwatch broker` creates the topics.
    pub partitions: i32,
    /// Extra librdkafka properties (e.g. `"security.protocol" = "SASL_SSL"`); values of keys
    /// containing password/secret/token are redacted by `config check`.
    pub extra: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    pub orders: String,
    pub clicks: String,
    pub errors: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LakeConfig {
    /// Holds `catalog.db` (SQLite catalog) and, by default, `warehouse/`.
    pub data_dir: PathBuf,
    /// `sql` (SQLite in `data_dir`, as pyiceberg's SqlCatalog reads it) or `rest` (an Iceberg
    /// REST catalog such as Nessie's `/iceberg` endpoint, at `rest_uri`).
    pub catalog: String,
    /// Iceberg REST catalog URI, e.g. `http://nessie:19120/iceberg` (catalog = rest).
    pub rest_uri: String,
    /// catalog = sql: the warehouse location, `s3://bucket/prefix` or empty for
    /// `<data_dir>/warehouse`. catalog = rest: the catalog's warehouse name (Nessie: empty for
    /// its default warehouse).
    pub warehouse: String,
    /// Iceberg catalog name; readers (pyiceberg) must use the same one.
    pub catalog_name: String,
    pub namespace: String,
    pub s3: S3Config,
}

/// S3-compatible object storage for the warehouse (MinIO, AWS, …). iceberg-rust has no remote
/// signing, so the writer brings its own keys even when the REST catalog could sign.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// `http://minio:9000`; empty = AWS for `region`.
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    /// A secret: redacted, never logged.
    pub secret_access_key: String,
    /// Path-style requests (`endpoint/bucket/key`), what MinIO and most S3-compatible servers
    /// expect.
    pub path_style: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: String::new(),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            path_style: true,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    pub commit_interval_ms: u64,
    pub max_batch_rows: usize,
    /// Larger record values go to dead letters as `payload_too_large`.
    pub max_event_bytes: usize,
    /// Dead-letter payloads are truncated to this many bytes (`payload_bytes` keeps the size).
    pub dead_letter_payload_max_bytes: usize,
    /// Dead letters are committed in batches: at this many, or after this interval.
    pub dead_letter_flush_rows: usize,
    pub dead_letter_flush_interval_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisionConfig {
    pub max_restarts: usize,
    pub restart_window_s: u64,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    pub heartbeat_ms: u64,
    pub stuck_timeout_s: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaintenanceConfig {
    pub every_commits: u32,
    pub snapshot_max_age_s: u64,
    pub keep_snapshots: usize,
    pub keep_metadata_files: usize,
    /// Merge a table's manifests into one every this many commits (0: never).
    pub compact_every_commits: u32,
    /// Look for orphan data files (left by crashes) every this many commits (0: never).
    pub orphan_sweep_every_commits: u32,
    /// Delete an orphan data file only once it is this old: another writer's commit may
    /// still be on its way. Default 24 h; drills use seconds.
    pub orphan_min_age_s: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: String,
    /// Websocket clients at once; more get 503.
    pub ws_max_clients: usize,
    /// Origins allowed on /ws besides the page's own (`scheme://host[:port]`, or `*`).
    pub ws_allowed_origins: Vec<String>,
    /// Messages a websocket client may have waiting before it is skipped to a snapshot.
    pub ws_queue_frames: usize,
    pub ws_ping_interval_s: u64,
    /// A client silent (no pong, no frame) this long is closed.
    pub ws_idle_timeout_s: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Generator rate in events per second.
    pub rate: f64,
    pub malformed_fraction: f64,
    /// Where `shopwatch demo` runs its broker.
    pub broker_listen: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    pub size_s: u64,
    pub slide_s: u64,
    /// Allowed lateness: watermark = max event time − this.
    pub lateness_s: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowsConfig {
    /// A partition silent this long stops holding the watermark back; a topic silent this
    /// long advances with the processing clock.
    pub idle_timeout_s: u64,
    /// Events further ahead of their ingestion time are kept out of windows.
    pub max_skew_s: u64,
    /// The seed's watermarks (2 min; 6 min for active users) instead of each `lateness_s`.
    pub seed_watermarks: bool,
    pub tick_ms: u64,
    pub orders_revenue: WindowConfig,
    pub active_users: WindowConfig,
    pub errors: WindowConfig,
    pub traffic: WindowConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    pub enabled: bool,
    pub k: f64,
    pub history: usize,
    pub min_history: usize,
    pub min_change: f64,
    pub min_value: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateConfig {
    pub enabled: bool,
    pub threshold: f64,
    pub min_traffic: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SilenceConfig {
    pub enabled: bool,
    pub after_s: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub fatal_error: bool,
    pub error_spike: AnomalyConfig,
    pub orders_drop: AnomalyConfig,
    pub revenue_drop: AnomalyConfig,
    pub high_error_rate: RateConfig,
    pub no_data: SilenceConfig,
    /// The detector records its state at least this often while it changes.
    pub checkpoint_every_s: u64,
    /// Slack-compatible webhook for alerts; empty = off. A secret: redacted, never logged.
    pub webhook_url: String,
    pub webhook_timeout_ms: u64,
    pub webhook_retries: u32,
}

impl WindowsConfig {
    pub fn each(&self) -> [(&'static str, &WindowConfig); 4] {
        [
            ("orders_revenue", &self.orders_revenue),
            ("active_users", &self.active_users),
            ("errors", &self.errors),
            ("traffic", &self.traffic),
        ]
    }
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            size_s: 60,
            slide_s: 30,
            lateness_s: 10,
        }
    }
}
impl Default for WindowsConfig {
    fn default() -> Self {
        WindowsConfig {
            idle_timeout_s: 30,
            max_skew_s: 300,
            seed_watermarks: false,
            tick_ms: 1000,
            orders_revenue: WindowConfig::default(),
            active_users: WindowConfig {
                size_s: 300,
                slide_s: 60,
                lateness_s: 10,
            },
            errors: WindowConfig::default(),
            traffic: WindowConfig::default(),
        }
    }
}
impl From<&shopwatch_actors::alerts::AnomalyRule> for AnomalyConfig {
    fn from(r: &shopwatch_actors::alerts::AnomalyRule) -> Self {
        AnomalyConfig {
            enabled: r.enabled,
            k: r.k,
            history: r.history,
            min_history: r.min_history,
            min_change: r.min_change,
            min_value: r.min_value,
        }
    }
}
impl Default for AnomalyConfig {
    fn default() -> Self {
        (&shopwatch_actors::alerts::AlertRules::default().orders_drop).into()
    }
}
impl Default for RateConfig {
    fn default() -> Self {
        let r = shopwatch_actors::alerts::AlertRules::default().high_error_rate;
        RateConfig {
            enabled: r.enabled,
            threshold: r.threshold,
            min_traffic: r.min_traffic,
        }
    }
}
impl Default for SilenceConfig {
    fn default() -> Self {
        SilenceConfig {
            enabled: true,
            after_s: 120,
        }
    }
}
impl Default for AlertsConfig {
    fn default() -> Self {
        let d = shopwatch_actors::alerts::AlertRules::default();
        AlertsConfig {
            fatal_error: true,
            error_spike: (&d.error_spike).into(),
            orders_drop: (&d.orders_drop).into(),
            revenue_drop: (&d.revenue_drop).into(),
            high_error_rate: RateConfig::default(),
            no_data: SilenceConfig::default(),
            checkpoint_every_s: 60,
            webhook_url: String::new(),
            webhook_timeout_ms: 5_000,
            webhook_retries: 3,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            kafka: KafkaConfig::default(),
            topics: TopicsConfig::default(),
            lake: LakeConfig::default(),
            pipeline: PipelineConfig::default(),
            supervision: SupervisionConfig::default(),
            maintenance: MaintenanceConfig::default(),
            http: HttpConfig::default(),
            demo: DemoConfig::default(),
            windows: WindowsConfig::default(),
            alerts: AlertsConfig::default(),
            flight: FlightConfig::default(),
            query: QueryConfig::default(),
            drill: DrillConfig::default(),
        }
    }
}
impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            group_prefix: "shopwatch".into(),
            partitions: 3,
            extra: BTreeMap::new(),
        }
    }
}
impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            orders: "orders_topic".into(),
            clicks: "clicks_topic".into(),
            errors: "errors_topic".into(),
        }
    }
}
impl Default for LakeConfig {
    fn default() -> Self {
        LakeConfig {
            data_dir: "./shopwatch-data".into(),
            catalog: "sql".into(),
            rest_uri: String::new(),
            warehouse: String::new(),
            catalog_name: "shopwatch".into(),
            namespace: "ecommerce_db".into(),
            s3: S3Config::default(),
        }
    }
}
impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            commit_interval_ms: 1000,
            max_batch_rows: 50_000,
            max_event_bytes: 256 * 1024,
            dead_letter_payload_max_bytes: 64 * 1024,
            dead_letter_flush_rows: 5_000,
            dead_letter_flush_interval_ms: 10_000,
        }
    }
}
impl Default for SupervisionConfig {
    fn default() -> Self {
        SupervisionConfig {
            max_restarts: 5,
            restart_window_s: 60,
            backoff_min_ms: 250,
            backoff_max_ms: 10_000,
            heartbeat_ms: 1000,
            stuck_timeout_s: 60,
        }
    }
}
impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            every_commits: 10,
            snapshot_max_age_s: 15,
            keep_snapshots: 5,
            keep_metadata_files: 5,
            compact_every_commits: 20,
            orphan_sweep_every_commits: 100,
            orphan_min_age_s: 24 * 3600,
        }
    }
}
impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            ws_max_clients: 1_000,
            ws_allowed_origins: Vec::new(),
            ws_queue_frames: 32,
            ws_ping_interval_s: 20,
            ws_idle_timeout_s: 60,
        }
    }
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown config key `{key}` in {source_name}; see `shopwatch config check` for the valid keys")]
    UnknownKey { key: String, source_name: String },
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
    #[error("config key `{key}` (from {source_name}): {message}")]
    Invalid {
        key: String,
        source_name: String,
        message: String,
    },
    #[error("config key `{key}`: {message}")]
    Check { key: String, message: String },
}

/// Built-in profiles: a named layer between the defaults and the config file.
pub const PROFILES: [(&str, &str); 1] = [("compose", include_str!("../profiles/compose.toml"))];

/// Free-form maps whose keys are not checked.
const OPEN_MAPS: [&str; 1] = ["kafka.extra"];

/// Flags given on the command line, as `section.key = value` overrides.
pub type Overrides = Vec<(&'static str, Value)>;

/// Build the effective configuration from every layer.
pub fn load(
    file: Option<&Path>,
    env: &[(String, String)],
    flags: Overrides,
) -> Result<Config, ConfigError> {
    let mut merged = Value::try_from(Config::default()).map_err(|e| ConfigError::Check {
        key: "-".into(),
        message: e.to_string(),
    })?;
    let defaults = merged.clone();

    if let Some((_, name)) = env.iter().rev().find(|(k, _)| k == "SHOPWATCH_PROFILE") {
        let name = name.trim();
        if !name.is_empty() {
            let Some((_, text)) = PROFILES.iter().find(|(n, _)| *n == name) else {
                let known: Vec<&str> = PROFILES.iter().map(|(n, _)| *n).collect();
                return Err(ConfigError::Check {
                    key: "profile".into(),
                    message: format!(
                        "{name:?} is not a profile; known: {} (flag --profile or SHOPWATCH_PROFILE)",
                        known.join(", ")
                    ),
                });
            };
            let source_name = format!("profile {name}");
            let table: Table = toml::from_str(text).map_err(|e| ConfigError::File {
                path: source_name.clone(),
                message: e.to_string(),
            })?;
            let layer = Value::Table(table);
            check_keys(&defaults, &layer, "", &source_name)?;
            merge(&mut merged, layer);
        }
    }

    let default_file = PathBuf::from("shopwatch.toml");
    let path = file
        .map(Path::to_path_buf)
        .or_else(|| default_file.is_file().then_some(default_file));
    if let Some(path) = path {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
            path: name.clone(),
            message: e.to_string(),
        })?;
        let table: Table = toml::from_str(&text).map_err(|e| ConfigError::File {
            path: name.clone(),
            message: e.to_string(),
        })?;
        let layer = Value::Table(table);
        check_keys(&defaults, &layer, "", &name)?;
        merge(&mut merged, layer);
    }

    for (var, raw) in env {
        let Some(rest) = var.strip_prefix("SHOPWATCH_") else {
            continue;
        };
        // Only `SECTION__KEY[__KEY]` variables are configuration; others (SHOPWATCH_TOOLS_DIR)
        // are not.
        if !rest.contains("__") {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        let source_name = format!("environment variable {var}");
        let layer = nested_path(&path, parse_scalar(raw));
        check_keys(&defaults, &layer, "", &source_name)?;
        merge(&mut merged, layer);
    }

    for (dotted, value) in flags {
        let path: Vec<String> = dotted.split('.').map(str::to_string).collect();
        merge(&mut merged, nested_path(&path, value));
    }

    let config: Config = merged
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Invalid {
            key: e.message().split('`').nth(1).unwrap_or("?").to_string(),
            source_name: "merged configuration".into(),
            message: e.to_string(),
        })?;
    config.validate()?;
    Ok(config)
}

fn parse_scalar(raw: &str) -> Value {
    toml::from_str::<Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()))
}

fn nested_path(path: &[String], value: Value) -> Value {
    path.iter().rev().fold(value, |inner, key| {
        let mut t = Table::new();
        t.insert(key.clone(), inner);
        Value::Table(t)
    })
}

fn check_keys(
    schema: &Value,
    layer: &Value,
    prefix: &str,
    source_name: &str,
) -> Result<(), ConfigError> {
    let (Value::Table(schema), Value::Table(layer)) = (schema, layer) else {
        return Ok(());
    };
    for (key, value) in layer {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match schema.get(key) {
            None => {
                return Err(ConfigError::UnknownKey {
                    key: path,
                    source_name: source_name.to_string(),
                })
            }
            Some(sub) if !OPEN_MAPS.contains(&path.as_str()) => {
                check_keys(sub, value, &path, source_name)?
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn merge(base: &mut Value, layer: Value) {
    match (base, layer) {
        (Value::Table(base), Value::Table(layer)) => {
            for (k, v) in layer {
                match base.get_mut(&k) {
                    Some(existing) if existing.is_table() && v.is_table() => merge(existing, v),
                    _ => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, layer) => *base = layer,
    }
}

impl Config {
    fn validate(&self) -> Result<(), ConfigError> {
        let err = |key: &str, message: &str| {
            Err(ConfigError::Check {
                key: key.into(),
                message: message.into(),
            })
        };
        if self.kafka.brokers.trim().is_empty() {
            return err(
                "kafka.brokers",
                "must not be empty; set it to HOST:PORT of a Kafka broker (flag --brokers)",
            );
        }
        self.validate_lake()?;
        self.validate_drill()?;
        if self.http.listen.parse::<SocketAddr>().is_err() {
            return err(
                "http.listen",
                "must be an IP:PORT address such as 127.0.0.1:8080 (flag --http)",
            );
        }
        if self.http.ws_max_clients == 0 || self.http.ws_queue_frames < 2 {
            return err(
                "http.ws_max_clients",
                "http.ws_max_clients must be at least 1 and http.ws_queue_frames at least 2",
            );
        }
        if self.http.ws_ping_interval_s == 0
            || self.http.ws_idle_timeout_s <= self.http.ws_ping_interval_s
        {
            return err(
                "http.ws_idle_timeout_s",
                "needs http.ws_ping_interval_s >= 1 and http.ws_idle_timeout_s > http.ws_ping_interval_s",
            );
        }
        if self.demo.broker_listen.parse::<SocketAddr>().is_err() {
            return err(
                "demo.broker_listen",
                "must be an IP:PORT address such as 127.0.0.1:9092",
            );
        }
        if self.pipeline.commit_interval_ms < 10 {
            return err(
                "pipeline.commit_interval_ms",
                "must be at least 10 (milliseconds)",
            );
        }
        if self.pipeline.max_batch_rows == 0 {
            return err("pipeline.max_batch_rows", "must be at least 1");
        }
        if !(1..=10_000).contains(&self.kafka.partitions) {
            return err("kafka.partitions", "must be between 1 and 10000");
        }
        if self.supervision.max_restarts == 0 {
            return err("supervision.max_restarts", "must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.demo.malformed_fraction) {
            return err("demo.malformed_fraction", "must be between 0 and 1");
        }
        for (name, w) in self.windows.each() {
            if w.size_s == 0 || w.slide_s == 0 || w.slide_s > w.size_s {
                return Err(ConfigError::Check {
                    key: format!("windows.{name}.slide_s"),
                    message: format!(
                        "size_s and slide_s must be positive with slide_s <= size_s (got size_s {}, slide_s {})",
                        w.size_s, w.slide_s
                    ),
                });
            }
        }
        if self.windows.idle_timeout_s == 0 {
            return err("windows.idle_timeout_s", "must be at least 1 (seconds)");
        }
        if self.windows.tick_ms < 10 {
            return err("windows.tick_ms", "must be at least 10 (milliseconds)");
        }
        let a = &self.alerts;
        for (name, r) in [
            ("error_spike", &a.error_spike),
            ("orders_drop", &a.orders_drop),
            ("revenue_drop", &a.revenue_drop),
        ] {
            if r.history < 2 || r.min_history > r.history || !(r.k >= 0.0) {
                return Err(ConfigError::Check {
                    key: format!("alerts.{name}"),
                    message: "needs history >= 2, min_history <= history and k >= 0".into(),
                });
            }
        }
        if self.flight.enabled {
            let Ok(addr) = self.flight.listen.parse::<SocketAddr>() else {
                return err(
                    "flight.listen",
                    "must be an IP:PORT address such as 127.0.0.1:32010 (flag --flight)",
                );
            };
            if !addr.ip().is_loopback() && self.flight.password == SEED_FLIGHT_PASSWORD {
                return err(
                    "flight.password",
                    "the default Flight credentials (dremio/dremio123) are only accepted on a loopback address; \
                     set SHOPWATCH_FLIGHT__USERNAME and SHOPWATCH_FLIGHT__PASSWORD (or [flight] in shopwatch.toml), \
                     or listen on 127.0.0.1",
                );
            }
            if self.flight.password.is_empty() || self.flight.username.is_empty() {
                return err("flight.password", "username and password must not be empty");
            }
            if self.flight.token_ttl_s == 0 {
                return err("flight.token_ttl_s", "must be at least 1 (seconds)");
            }
        }
        let q = &self.query;
        match q.backend.as_str() {
            "embedded" if !self.flight.enabled => {
                return err(
                    "query.backend",
                    "`embedded` reads KPIs from this process's Flight server, but flight.enabled is false; \
                     enable it or set query.backend = \"dremio\" with query.endpoint",
                )
            }
            "embedded" => {}
            "dremio" => {
                if q.endpoint.parse::<SocketAddr>().is_err()
                    && !q.endpoint.contains(':')
                {
                    return err(
                        "query.endpoint",
                        "query.backend = \"dremio\" needs Dremio's Flight endpoint as HOST:PORT, e.g. dremio:32010",
                    );
                }
                if q.username.is_empty() || q.password.is_empty() {
                    return err(
                        "query.password",
                        "query.backend = \"dremio\" needs query.username and query.password \
                         (SHOPWATCH_QUERY__USERNAME, SHOPWATCH_QUERY__PASSWORD)",
                    );
                }
            }
            _ => {
                return err(
                    "query.backend",
                    "must be \"embedded\" (the built-in Flight server) or \"dremio\"",
                )
            }
        }
        if q.min_interval_ms < 100 || q.refresh_ms < q.min_interval_ms {
            return err(
                "query.refresh_ms",
                "needs query.min_interval_ms >= 100 and query.refresh_ms >= query.min_interval_ms",
            );
        }
        if q.timeout_ms < 100 {
            return err("query.timeout_ms", "must be at least 100 (milliseconds)");
        }
        if !a.webhook_url.is_empty()
            && !(a.webhook_url.starts_with("https://") || a.webhook_url.starts_with("http://"))
        {
            return err(
                "alerts.webhook_url",
                "must be an http:// or https:// URL (or empty to turn the webhook off)",
            );
        }
        if !(0.0..=1.0).contains(&a.high_error_rate.threshold) {
            return err(
                "alerts.high_error_rate.threshold",
                "must be between 0 and 1 (a fraction, 0.05 = 5 %)",
            );
        }
        Ok(())
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
        if q.backend == "dremio" {
            return QueryTarget {
                backend: "dremio",
                addr: q.endpoint.clone(),
                username: q.username.clone(),
                password: q.password.clone(),
                source,
                namespace: self.lake.namespace.clone(),
                timeout,
            };
        }
        // A wildcard listener is reached on loopback.
        let addr = match self.flight.listen.parse::<SocketAddr>() {
            Ok(a) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
            _ => self.flight.listen.clone(),
        };
        QueryTarget {
            backend: "embedded",
            addr,
            username: self.flight.username.clone(),
            password: self.flight.password.clone(),
            source,
            namespace: self.lake.namespace.clone(),
            timeout,
        }
    }

    fn validate_drill(&self) -> Result<(), ConfigError> {
        let err = |key: &str, message: String| {
            Err(ConfigError::Check {
                key: key.into(),
                message,
            })
        };
        if self.drill.enabled && self.drill.token.chars().count() < 16 {
            return err(
                "drill.token",
                "drill.enabled needs a token of at least 16 characters \
                 (SHOPWATCH_DRILL__TOKEN); every /drill request must send it as a bearer token"
                    .into(),
            );
        }
        if let Err(e) = shopwatch_actors::failpoint::parse_spec(&self.drill.failpoints) {
            return err("drill.failpoints", e);
        }
        if !self.drill.failpoints.trim().is_empty() && !shopwatch_actors::failpoint::ENABLED {
            return err(
                "drill.failpoints",
                "this build has no failpoints; build with `cargo build --features failpoints`"
                    .into(),
            );
        }
        Ok(())
    }

    fn validate_lake(&self) -> Result<(), ConfigError> {
        let err = |key: &str, message: String| {
            Err(ConfigError::Check {
                key: key.into(),
                message,
            })
        };
        let lake = &self.lake;
        match lake.catalog.as_str() {
            "sql" => {
                let w = lake.warehouse.as_str();
                if !(w.is_empty() || w.starts_with("s3://") || w.starts_with("file:///")) {
                    return err(
                        "lake.warehouse",
                        format!("{w:?} is not a warehouse location; use s3://BUCKET/PREFIX, file:///ABSOLUTE/PATH, or leave it empty for DATA_DIR/warehouse"),
                    );
                }
                if w.starts_with("s3://") && w.trim_start_matches("s3://").split('/').next().unwrap_or("").is_empty() {
                    return err("lake.warehouse", format!("{w:?} names no bucket; use s3://BUCKET/PREFIX"));
                }
            }
            "rest" => {
                if !(lake.rest_uri.starts_with("http://") || lake.rest_uri.starts_with("https://")) {
                    return err(
                        "lake.rest_uri",
                        "must be the REST catalog's http(s) URI when lake.catalog = \"rest\", e.g. http://nessie:19120/iceberg".into(),
                    );
                }
            }
            other => {
                return err(
                    "lake.catalog",
                    format!("{other:?} is not a catalog kind; use \"sql\" (SQLite in lake.data_dir) or \"rest\" (Iceberg REST, e.g. Nessie)"),
                )
            }
        }
        let s3 = &lake.s3;
        if !s3.endpoint.is_empty()
            && !(s3.endpoint.starts_with("http://") || s3.endpoint.starts_with("https://"))
        {
            return err(
                "lake.s3.endpoint",
                format!(
                    "{:?} must start with http:// or https://, e.g. http://minio:9000",
                    s3.endpoint
                ),
            );
        }
        if s3.access_key_id.is_empty() != s3.secret_access_key.is_empty() {
            return err(
                "lake.s3.secret_access_key",
                "lake.s3.access_key_id and lake.s3.secret_access_key go together: set both or neither".into(),
            );
        }
        Ok(())
    }

    /// Iceberg storage properties for the lake (`s3.*`), from `[lake.s3]`.
    pub fn storage_props(&self) -> std::collections::HashMap<String, String> {
        let s3 = &self.lake.s3;
        let mut props = std::collections::HashMap::new();
        let mut put = |k: &str, v: &str| {
            if !v.is_empty() {
                props.insert(k.to_string(), v.to_string());
            }
        };
        put("s3.endpoint", &s3.endpoint);
        put("s3.region", &s3.region);
        put("client.region", &s3.region);
        put("s3.access-key-id", &s3.access_key_id);
        put("s3.secret-access-key", &s3.secret_access_key);
        put(
            "s3.path-style-access",
            if s3.path_style { "true" } else { "false" },
        );
        props
    }

    /// TOML of the effective configuration with secret values replaced.
    pub fn redacted_toml(&self) -> String {
        let mut copy = self.clone();
        for (k, v) in copy.kafka.extra.iter_mut() {
            let k = k.to_lowercase();
            if ["password", "secret", "token", "key"]
                .iter()
                .any(|s| k.contains(s))
            {
                *v = "<redacted>".into();
            }
        }
        copy.flight.password = "<redacted>".into();
        if !copy.lake.s3.secret_access_key.is_empty() {
            copy.lake.s3.secret_access_key = "<redacted>".into();
        }
        if !copy.query.password.is_empty() {
            copy.query.password = "<redacted>".into();
        }
        if !copy.alerts.webhook_url.is_empty() {
            copy.alerts.webhook_url = "<redacted>".into();
        }
        if !copy.drill.token.is_empty() {
            copy.drill.token = "<redacted>".into();
        }
        toml::to_string_pretty(&copy).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn layers_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(
            &file,
            "[kafka]\nbrokers = \"file:1\"\n[pipeline]\ncommit_interval_ms = 500\n",
        )
        .unwrap();
        let c = load(Some(&file), &[], vec![]).unwrap();
        assert_eq!(
            (c.kafka.brokers.as_str(), c.pipeline.commit_interval_ms),
            ("file:1", 500)
        );
        let c = load(
            Some(&file),
            &env(&[
                ("SHOPWATCH_KAFKA__BROKERS", "env:2"),
                ("SHOPWATCH_TOOLS_DIR", "/x"),
            ]),
            vec![],
        )
        .unwrap();
        assert_eq!(c.kafka.brokers, "env:2");
        let c = load(
            Some(&file),
            &env(&[("SHOPWATCH_KAFKA__BROKERS", "env:2")]),
            vec![("kafka.brokers", Value::String("flag:3".into()))],
        )
        .unwrap();
        assert_eq!(c.kafka.brokers, "flag:3");
        assert_eq!(c.topics.orders, "orders_topic");
        assert_eq!(c.lake.namespace, "ecommerce_db");
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(&file, "[kafka]\nbrokerz = \"x\"\n").unwrap();
        let e = load(Some(&file), &[], vec![]).unwrap_err().to_string();
        assert!(e.contains("kafka.brokerz") && e.contains("s.toml"), "{e}");
        let e = load(None, &env(&[("SHOPWATCH_LAKE__DATADIR", "x")]), vec![])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("lake.datadir") && e.contains("SHOPWATCH_LAKE__DATADIR"),
            "{e}"
        );
        std::fs::write(&file, "[kafka.extra]\n\"sasl.password\" = \"hunter2\"\n").unwrap();
        let c = load(Some(&file), &[], vec![]).unwrap();
        assert!(!c.redacted_toml().contains("hunter2"));
        let c = load(
            None,
            &env(&[(
                "SHOPWATCH_ALERTS__WEBHOOK_URL",
                "https://hooks.example/T0/secret-path",
            )]),
            vec![],
        )
        .unwrap();
        assert!(!c.redacted_toml().contains("secret-path"));
    }

    #[test]
    fn kpi_windows_are_nested_keys_and_checked() {
        let c = load(
            None,
            &env(&[("SHOPWATCH_WINDOWS__ACTIVE_USERS__LATENESS_S", "360")]),
            vec![],
        )
        .unwrap();
        assert_eq!(c.windows.active_users.lateness_s, 360);
        assert_eq!(c.windows.orders_revenue.lateness_s, 10);
        let e = load(
            None,
            &env(&[("SHOPWATCH_WINDOWS__ERRORS__SLIDE_S", "120")]),
            vec![],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("windows.errors.slide_s"), "{e}");
        let e = load(
            None,
            &env(&[("SHOPWATCH_WINDOWS__ERRORS__SIZE", "1")]),
            vec![],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("windows.errors.size"), "{e}");
        let e = load(
            None,
            &env(&[("SHOPWATCH_ALERTS__WEBHOOK_URL", "slack")]),
            vec![],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("alerts.webhook_url"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key_and_fix() {
        let e = load(None, &env(&[("SHOPWATCH_HTTP__LISTEN", "nowhere")]), vec![])
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.listen") && e.contains("--http"), "{e}");
        let e = load(
            None,
            &env(&[("SHOPWATCH_PIPELINE__COMMIT_INTERVAL_MS", "\"soon\"")]),
            vec![],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("commit_interval_ms") || e.contains("soon"),
            "{e}"
        );
    }

    #[test]
    fn query_backend_is_checked_and_resolved() {
        let c = load(None, &[], vec![]).unwrap();
        let t = c.query_target();
        assert_eq!(
            (t.backend, t.addr.as_str(), t.username.as_str()),
            ("embedded", "127.0.0.1:32010", "dremio")
        );
        assert_eq!(t.source, "nessie_minio_catalog");
        let e = load(None, &env(&[("SHOPWATCH_QUERY__BACKEND", "spark")]), vec![])
            .unwrap_err()
            .to_string();
        assert!(e.contains("query.backend") && e.contains("dremio"), "{e}");
        let e = load(
            None,
            &env(&[("SHOPWATCH_QUERY__BACKEND", "dremio")]),
            vec![],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("query.endpoint"), "{e}");
        let e = load(
            None,
            &env(&[
                ("SHOPWATCH_QUERY__BACKEND", "dremio"),
                ("SHOPWATCH_QUERY__ENDPOINT", "dremio:32010"),
            ]),
            vec![],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("query.password"), "{e}");
        let c = load(
            None,
            &env(&[
                ("SHOPWATCH_QUERY__BACKEND", "dremio"),
                ("SHOPWATCH_QUERY__ENDPOINT", "dremio:32010"),
                ("SHOPWATCH_QUERY__USERNAME", "admin"),
                ("SHOPWATCH_QUERY__PASSWORD", "canary-pw-7"),
                ("SHOPWATCH_FLIGHT__ENABLED", "false"),
            ]),
            vec![],
        )
        .unwrap();
        let t = c.query_target();
        assert_eq!(
            (t.backend, t.addr.as_str(), t.username.as_str()),
            ("dremio", "dremio:32010", "admin")
        );
        assert!(!c.redacted_toml().contains("canary-pw-7"));
        let e = load(
            None,
            &env(&[("SHOPWATCH_FLIGHT__ENABLED", "false")]),
            vec![],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("query.backend") && e.contains("flight.enabled"),
            "{e}"
        );
        let c = load(
            None,
            &env(&[
                ("SHOPWATCH_FLIGHT__LISTEN", "0.0.0.0:32011"),
                ("SHOPWATCH_FLIGHT__USERNAME", "u"),
                ("SHOPWATCH_FLIGHT__PASSWORD", "p"),
            ]),
            vec![],
        )
        .unwrap();
        assert_eq!(c.query_target().addr, "127.0.0.1:32011");
    }
}

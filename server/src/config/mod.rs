//! Configuration: built-in defaults < profile < `shopwatch.toml` < `SHOPWATCH_<SECTION>__<KEY>`
//! env < command-line flags. Every layer is checked for unknown keys, named in the error; every
//! value error names its key. One file per group of sections; secrets are [`Secret`]s.

mod auth;
mod http;
mod kafka;
mod lake;
mod live;
mod pipeline;
mod rollup;
pub mod secret;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

pub use auth::{AuthConfig, Role, TlsConfig};
#[cfg(test)]
pub use auth::{TokenConfig, UserConfig};
pub use http::HttpConfig;
pub use kafka::{KafkaConfig, TopicsConfig};
pub use lake::LakeConfig;
pub use live::{DemoConfig, DrillConfig, FlightConfig, QueryConfig, QueryTarget};
#[cfg(any(test, feature = "bench"))]
pub use live::{SEED_FLIGHT_PASSWORD, SEED_FLIGHT_USER};
pub use pipeline::{MaintenanceConfig, PipelineConfig, SupervisionConfig};
pub use rollup::{AlertsConfig, WindowsConfig};
// The drill endpoint (failpoints builds) and tests name it from here.
#[cfg(any(test, feature = "failpoints"))]
pub use secret::Secret;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
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
    pub auth: AuthConfig,
    pub tls: TlsConfig,
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

impl ConfigError {
    pub fn check(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Check {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Built-in profiles: a named layer between the defaults and the config file.
pub const PROFILES: [(&str, &str); 1] = [("compose", include_str!("../../profiles/compose.toml"))];

/// Free-form maps whose keys are not checked.
/// (Users and tokens are checked by their own types when the merged result is read.)
const OPEN_MAPS: [&str; 5] = [
    "kafka.extra",
    "kafka.start_by_topic",
    "lake.rest_props",
    "auth.users",
    "auth.tokens",
];

/// Flags given on the command line, as `section.key = value` overrides.
pub type Overrides = Vec<(&'static str, Value)>;

/// Build the effective configuration from every layer.
pub fn load(
    file: Option<&Path>,
    env: &[(String, String)],
    flags: Overrides,
) -> Result<Config, ConfigError> {
    let mut merged =
        Value::try_from(Config::default()).map_err(|e| ConfigError::check("-", e.to_string()))?;
    let defaults = merged.clone();

    if let Some((_, name)) = env.iter().rev().find(|(k, _)| k == "SHOPWATCH_PROFILE") {
        let name = name.trim();
        if !name.is_empty() {
            let Some((_, text)) = PROFILES.iter().find(|(n, _)| *n == name) else {
                let known: Vec<&str> = PROFILES.iter().map(|(n, _)| *n).collect();
                return Err(ConfigError::check(
                    "profile",
                    format!(
                        "{name:?} is not a profile; known: {} (flag --profile or SHOPWATCH_PROFILE)",
                        known.join(", ")
                    ),
                ));
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
        // `…_FILE` names a file holding the value (Docker and Kubernetes secrets), so a
        // password need not sit in the environment. The file's last newline is not part of it.
        // Keys that themselves end in `_file` (`tls.cert_file`) are keys, not file variables.
        let known = |r: &str| {
            r.split("__")
                .map(str::to_lowercase)
                .try_fold(&defaults, |v, k| v.as_table().and_then(|t| t.get(&k)))
                .is_some()
        };
        let (rest, from_file) = match rest.strip_suffix("_FILE") {
            Some(r) if !known(rest) => (r, true),
            _ => (rest, false),
        };
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        let source_name = format!("environment variable {var}");
        let read;
        let raw = if from_file {
            read = read_secret_file(raw).map_err(|e| ConfigError::Invalid {
                key: path.join("."),
                source_name: source_name.clone(),
                message: format!("cannot read the file {raw:?} it names: {e}; {var} must name a readable file holding the value"),
            })?;
            read.strip_suffix('\n')
                .map(|s| s.strip_suffix('\r').unwrap_or(s))
                .unwrap_or(&read)
        } else {
            raw.as_str()
        };
        let layer = nested_path(&path, env_value(&defaults, &path, raw));
        check_keys(&defaults, &layer, "", &source_name)?;
        merge(&mut merged, layer);
    }

    for (dotted, value) in flags {
        let path: Vec<String> = dotted.split('.').map(str::to_string).collect();
        merge(&mut merged, nested_path(&path, value));
    }

    // The error's path names the key that did not fit (`query.backend`, not just "spark").
    let mut config: Config =
        serde_path_to_error::deserialize(merged).map_err(|e| ConfigError::Invalid {
            key: e.path().to_string(),
            source_name: "merged configuration".into(),
            message: e.inner().to_string(),
        })?;
    config.validate()?;
    let home = env
        .iter()
        .rev()
        .find(|(k, _)| k == "HOME")
        .map(|(_, v)| v.as_str());
    config.lake.resolve(home)?;
    Ok(config)
}

/// A value from a `…_FILE` variable: UTF-8 text of at most 64 KiB (a secret, not `/dev/zero`).
fn read_secret_file(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    const MAX: u64 = 64 << 10;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX {
        return Err(std::io::Error::other("it is larger than 64 KiB"));
    }
    Ok(text)
}

/// An environment value as the key wants it: a key whose default is a string (a password, a
/// token, a name) keeps the text as given, even when it looks like a number or a boolean:
/// `12345` stays the password "12345" and is never echoed back in a type error. Keys the
/// defaults do not list (user and token maps) are strings when they hold secrets.
fn env_value(defaults: &Value, path: &[String], raw: &str) -> Value {
    let default = path
        .iter()
        .try_fold(defaults, |v, k| v.as_table().and_then(|t| t.get(k)));
    let secretish = path.last().is_some_and(|k| {
        [
            "password",
            "password_hash",
            "token",
            "sha256",
            "secret",
            "credential",
            "key",
        ]
        .iter()
        .any(|s| k.ends_with(s))
    });
    match default {
        Some(Value::String(_)) => Value::String(raw.to_string()),
        None if secretish => Value::String(raw.to_string()),
        _ => parse_scalar(raw),
    }
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

/// Keys that were renamed: (old, new), so the error names the new one.
const RENAMED: &[(&str, &str)] = &[("kafka.group_prefix", "kafka.group")];

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
            // The KPI and rule sections come from the registries: name what is known.
            None if prefix == "windows" && value.is_table() => {
                return Err(rollup::unknown_kpi(key))
            }
            None if prefix == "alerts" && value.is_table() => {
                return Err(rollup::unknown_rule(key))
            }
            None if RENAMED.iter().any(|(old, _)| *old == path) => {
                let new = RENAMED
                    .iter()
                    .find(|(old, _)| *old == path)
                    .map(|(_, new)| *new)
                    .unwrap_or_default();
                return Err(ConfigError::check(
                    path,
                    format!("was renamed; set `{new}` instead (in {source_name})"),
                ));
            }
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
        self.kafka.validate()?;
        self.lake.validate()?;
        self.pipeline.validate()?;
        self.supervision.validate()?;
        self.maintenance.validate()?;
        self.windows.validate()?;
        self.alerts.validate()?;
        self.validate_live()?;
        self.validate_access()
    }

    /// TOML of the effective configuration with every secret replaced.
    pub fn redacted_toml(&self) -> String {
        let mut copy = self.clone();
        copy.kafka.redact_extra();
        secret::redacted(|| toml::to_string_pretty(&copy).unwrap_or_default())
    }
}

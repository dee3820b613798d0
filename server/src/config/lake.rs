//! `[lake]` and `[lake.s3]`: the catalog and the warehouse.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use shopwatch_actors::lake::{CatalogKind, LakeParams};

use super::secret::Secret;
use super::ConfigError;

/// Which Iceberg catalog holds the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatalogChoice {
    /// SQLite in `data_dir`, as pyiceberg's SqlCatalog reads it.
    Sql,
    /// An Iceberg REST catalog (Nessie's `/iceberg` endpoint …) at `rest_uri`.
    Rest,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LakeConfig {
    /// Holds `catalog.db` (SQLite catalog) and, by default, `warehouse/`.
    pub data_dir: PathBuf,
    /// `sql` (SQLite in `data_dir`) or `rest` (an Iceberg REST catalog at `rest_uri`).
    pub catalog: CatalogChoice,
    /// Iceberg REST catalog URI, e.g. `http://nessie:19120/iceberg` (catalog = rest).
    pub rest_uri: String,
    /// catalog = rest: the OAuth2 client credential `CLIENT_ID:CLIENT_SECRET` for the
    /// catalog's client-credentials flow (Polaris, Lakekeeper, SeaweedFS, managed catalogs).
    /// Empty for a catalog without auth (an unsecured Nessie).
    pub rest_credential: Secret,
    /// catalog = rest: a bearer token to send instead of the client-credentials flow.
    pub rest_token: Secret,
    /// catalog = rest: further catalog properties, passed as they are (`scope`,
    /// `oauth2-server-uri`, `audience`, `prefix`, `header.NAME` …). Values are redacted
    /// wherever the configuration prints, as any of them may carry a secret.
    pub rest_props: BTreeMap<String, Secret>,
    /// catalog = sql: the warehouse location, `s3://bucket/prefix` or empty for
    /// `<data_dir>/warehouse`. catalog = rest: the catalog's warehouse name (Nessie: empty for
    /// its default warehouse).
    pub warehouse: String,
    /// Iceberg catalog name; readers (pyiceberg) must use the same one.
    pub catalog_name: String,
    /// Iceberg namespace of every table (the old stack's `ecommerce_db`).
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
    /// The S3 region (MinIO and most S3-compatible servers accept any).
    pub region: String,
    /// The warehouse's access key id.
    pub access_key_id: String,
    /// The warehouse's secret key (redacted wherever the configuration prints).
    pub secret_access_key: Secret,
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
            secret_access_key: Secret::default(),
            path_style: true,
        }
    }
}

impl Default for LakeConfig {
    fn default() -> Self {
        LakeConfig {
            data_dir: "./shopwatch-data".into(),
            catalog: CatalogChoice::Sql,
            rest_uri: String::new(),
            rest_credential: Secret::default(),
            rest_token: Secret::default(),
            rest_props: BTreeMap::new(),
            warehouse: String::new(),
            catalog_name: "shopwatch".into(),
            namespace: "ecommerce_db".into(),
            s3: S3Config::default(),
        }
    }
}

impl LakeConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let err = |key: &str, message: String| Err(ConfigError::check(key, message));
        match self.catalog {
            CatalogChoice::Sql => {
                let w = self.warehouse.as_str();
                if !(w.is_empty() || w.starts_with("s3://") || w.starts_with("file:///")) {
                    return err(
                        "lake.warehouse",
                        format!("{w:?} is not a warehouse location; use s3://BUCKET/PREFIX, file:///ABSOLUTE/PATH, or leave it empty for DATA_DIR/warehouse"),
                    );
                }
                if w.starts_with("s3://")
                    && w.trim_start_matches("s3://")
                        .split('/')
                        .next()
                        .unwrap_or("")
                        .is_empty()
                {
                    return err(
                        "lake.warehouse",
                        format!("{w:?} names no bucket; use s3://BUCKET/PREFIX"),
                    );
                }
            }
            CatalogChoice::Rest => {
                if !(self.rest_uri.starts_with("http://") || self.rest_uri.starts_with("https://"))
                {
                    return err(
                        "lake.rest_uri",
                        "must be the REST catalog's http(s) URI when lake.catalog = \"rest\", e.g. http://nessie:19120/iceberg".into(),
                    );
                }
                let credential = self.rest_credential.expose();
                if !credential.is_empty() && !credential.contains(':') {
                    return err(
                        "lake.rest_credential",
                        "must be CLIENT_ID:CLIENT_SECRET (the OAuth2 client credentials the catalog issued)".into(),
                    );
                }
                if !self.rest_credential.is_empty() && !self.rest_token.is_empty() {
                    return err(
                        "lake.rest_token",
                        "set lake.rest_credential (OAuth2 client credentials) or lake.rest_token (a bearer token), not both".into(),
                    );
                }
                for key in self.rest_props.keys() {
                    if let Some(own) = match key.as_str() {
                        "uri" => Some("lake.rest_uri"),
                        "warehouse" => Some("lake.warehouse"),
                        "credential" => Some("lake.rest_credential"),
                        "token" => Some("lake.rest_token"),
                        _ => None,
                    } {
                        return err(
                            &format!("lake.rest_props.{key}"),
                            format!("has its own key; set {own} instead"),
                        );
                    }
                }
            }
        }
        if self.catalog != CatalogChoice::Rest {
            for (key, set) in [
                ("lake.rest_credential", !self.rest_credential.is_empty()),
                ("lake.rest_token", !self.rest_token.is_empty()),
                ("lake.rest_props", !self.rest_props.is_empty()),
            ] {
                if set {
                    return err(
                        key,
                        "only applies to a REST catalog; set lake.catalog = \"rest\" or remove it"
                            .into(),
                    );
                }
            }
        }
        let s3 = &self.s3;
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

    /// `lake.data_dir` (and a `file://` warehouse) as one clean absolute path, resolved once
    /// at start-up so every command and every table location agrees: `~/` is the home
    /// directory, relative paths start at the working directory, `.` and `..` are resolved,
    /// symlinks followed. What object storage could never address is refused here.
    pub(super) fn resolve(&mut self, home: Option<&str>) -> Result<(), ConfigError> {
        let raw = self.data_dir.to_string_lossy().to_string();
        let expanded = match raw.strip_prefix('~') {
            None => raw.clone(),
            Some(rest) if rest.is_empty() || rest.starts_with('/') => match home {
                Some(home) => format!("{home}{rest}"),
                None => {
                    return Err(ConfigError::check(
                        "lake.data_dir",
                        format!(
                            "{raw:?} starts with ~ but HOME is not set; write the absolute path"
                        ),
                    ))
                }
            },
            Some(_) => {
                return Err(ConfigError::check(
                    "lake.data_dir",
                    format!("{raw:?}: ~user paths are not expanded; write the absolute path"),
                ))
            }
        };
        if expanded.chars().any(|c| c.is_ascii_control()) {
            return Err(ConfigError::check(
                "lake.data_dir",
                format!(
                    "{raw:?} contains a control character, which object storage (used to list and \
                     delete files for maintenance) cannot address; choose another directory name"
                ),
            ));
        }
        self.data_dir =
            shopwatch_actors::lake::catalog::resolve_dir(std::path::Path::new(&expanded))
                .map_err(|e| ConfigError::check("lake.data_dir", format!("{raw:?}: {e}")))?;
        if let Some(path) = self.warehouse.strip_prefix("file://") {
            self.warehouse = format!(
                "file:///{}",
                shopwatch_actors::lake::io::store::clean_local(path)
            );
        }
        Ok(())
    }

    /// Iceberg storage properties for the lake (`s3.*`), from `[lake.s3]`.
    pub fn storage_props(&self) -> HashMap<String, String> {
        let s3 = &self.s3;
        let mut props = HashMap::new();
        let mut put = |k: &str, v: &str| {
            if !v.is_empty() {
                props.insert(k.to_string(), v.to_string());
            }
        };
        put("s3.endpoint", &s3.endpoint);
        put("s3.region", &s3.region);
        put("client.region", &s3.region);
        put("s3.access-key-id", &s3.access_key_id);
        put("s3.secret-access-key", s3.secret_access_key.expose());
        put(
            "s3.path-style-access",
            if s3.path_style { "true" } else { "false" },
        );
        props
    }

    /// The REST catalog's own properties (auth and whatever `rest_props` adds). Secrets: never
    /// log this map.
    fn rest_catalog_props(&self) -> HashMap<String, String> {
        let mut props: HashMap<String, String> = self
            .rest_props
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect();
        if !self.rest_credential.is_empty() {
            props.insert("credential".into(), self.rest_credential.expose().into());
        }
        if !self.rest_token.is_empty() {
            props.insert("token".into(), self.rest_token.expose().into());
        }
        props
    }

    pub fn params(&self) -> LakeParams {
        LakeParams {
            catalog_name: self.catalog_name.clone(),
            namespace: self.namespace.clone(),
            data_dir: self.data_dir.clone(),
            catalog: match self.catalog {
                CatalogChoice::Rest => CatalogKind::Rest {
                    uri: self.rest_uri.clone(),
                    props: self.rest_catalog_props().into(),
                },
                CatalogChoice::Sql => CatalogKind::Sql,
            },
            warehouse: self.warehouse.clone(),
            storage: self.storage_props().into(),
        }
    }
}

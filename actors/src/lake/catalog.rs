//! Opening the lake (SQL catalog on SQLite, or an Iceberg REST catalog; local or S3 warehouse).
//! The writers' catalog is wrapped in [`PinnedCatalog`] (pinned.rs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use iceberg::table::Table;
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_rest::RestCatalogBuilder;
use iceberg_catalog_sql::SqlCatalogBuilder;

use super::io::store::ObjectStorageFactory;
pub use super::pinned::{is_conflict, PinGuard, PinnedCatalog};
use super::props::Props;

use crate::schema::TableSpec;

/// Which Iceberg catalog holds the tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatalogKind {
    /// SQL catalog in `<data_dir>/catalog.db` (SQLite), as pyiceberg's SqlCatalog reads it.
    Sql,
    /// An Iceberg REST catalog (Nessie's `/iceberg` endpoint, Polaris, Lakekeeper, SeaweedFS
    /// …) with its own properties (OAuth2 `credential` or `token`, `scope`, `header.*` …).
    Rest { uri: String, props: Props },
}

/// Where the lake lives and what it is called.
#[derive(Clone, Debug)]
pub struct LakeParams {
    /// Catalog name; pyiceberg and every reader must use the same one or see nothing.
    pub catalog_name: String,
    pub namespace: String,
    /// Directory holding `catalog.db` and, by default, `warehouse/`.
    pub data_dir: PathBuf,
    pub catalog: CatalogKind,
    /// Warehouse: a location (`s3://bucket/prefix`, `file:///…`) for the SQL catalog, where
    /// empty means `<data_dir>/warehouse`; for a REST catalog, what its `warehouse` property
    /// expects (Nessie: a warehouse name, empty = its default warehouse).
    pub warehouse: String,
    /// Iceberg storage properties (`s3.endpoint`, `s3.access-key-id`, …); secrets included,
    /// so its `Debug` shows keys only.
    pub storage: Props,
}

impl LakeParams {
    /// A lake on the local disk: SQLite catalog and warehouse directory under `data_dir`.
    pub fn local(catalog_name: &str, namespace: &str, data_dir: impl Into<PathBuf>) -> Self {
        LakeParams {
            catalog_name: catalog_name.to_string(),
            namespace: namespace.to_string(),
            data_dir: data_dir.into(),
            catalog: CatalogKind::Sql,
            warehouse: String::new(),
            storage: Props::default(),
        }
    }
    pub fn catalog_db(&self) -> PathBuf {
        self.data_dir.join("catalog.db")
    }
    pub fn warehouse_dir(&self) -> PathBuf {
        self.data_dir.join("warehouse")
    }
    /// The SQL catalog's warehouse location.
    pub fn warehouse_location(&self) -> String {
        if self.warehouse.is_empty() {
            format!("file://{}", self.warehouse_dir().display())
        } else if let Some(path) = self.warehouse.strip_prefix("file://") {
            format!("file:///{}", super::io::store::clean_local(path))
        } else {
            self.warehouse.trim_end_matches('/').to_string()
        }
    }
    fn is_local(&self) -> bool {
        self.catalog == CatalogKind::Sql && self.warehouse_location().starts_with("file:")
    }
}

/// The opened lake: a pinning catalog plus the namespace our tables live in.
#[derive(Clone, Debug)]
pub struct Lake {
    pub catalog: Arc<PinnedCatalog>,
    pub namespace: NamespaceIdent,
    pub params: LakeParams,
}

/// `path` as one clean absolute path: relative to the working directory, `.` and `..`
/// resolved, symlinks followed where it exists. Every table location derives from it, and
/// object storage (which lists and deletes for maintenance) refuses anything less clean.
pub fn resolve_dir(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    let clean = PathBuf::from(format!(
        "/{}",
        super::io::store::clean_local(&absolute.to_string_lossy())
    ));
    match std::fs::canonicalize(&clean) {
        Ok(real) => Ok(real),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(clean),
        Err(e) => Err(e),
    }
}

impl Lake {
    pub async fn open(params: LakeParams) -> anyhow::Result<Lake> {
        use anyhow::Context;
        let data_dir = resolve_dir(&params.data_dir)
            .with_context(|| format!("resolving lake.data_dir {}", params.data_dir.display()))?;
        let params = LakeParams { data_dir, ..params };
        if params.is_local() {
            std::fs::create_dir_all(params.warehouse_dir()).with_context(|| {
                format!(
                    "creating warehouse directory {}",
                    params.warehouse_dir().display()
                )
            })?;
        } else if params.catalog == CatalogKind::Sql {
            std::fs::create_dir_all(&params.data_dir).with_context(|| {
                format!("creating data directory {}", params.data_dir.display())
            })?;
        }
        // Now that it exists, follow any symlink in it, so every location is the real one.
        let data_dir = resolve_dir(&params.data_dir)
            .with_context(|| format!("resolving lake.data_dir {}", params.data_dir.display()))?;
        let params = LakeParams { data_dir, ..params };
        if params.catalog == CatalogKind::Sql {
            // Maintenance lists and deletes through object storage; a location it cannot
            // address would fail on every round, so it stops start-up instead.
            let location = params.warehouse_location();
            super::io::store::locate(&location, &params.storage.0).map_err(|e| {
                anyhow::anyhow!(
                    "lake.data_dir / lake.warehouse: object storage cannot address {location}: {e}; \
                     use a directory whose name has no control characters"
                )
            })?;
        }
        let inner = open_catalog(&params).await?;
        let namespace = NamespaceIdent::new(params.namespace.clone());
        let lake = Lake {
            catalog: Arc::new(PinnedCatalog::new(inner)),
            namespace,
            params,
        };
        lake.ensure_namespace().await?;
        Ok(lake)
    }

    async fn ensure_namespace(&self) -> anyhow::Result<()> {
        if !self.catalog.namespace_exists(&self.namespace).await? {
            match self
                .catalog
                .create_namespace(&self.namespace, HashMap::new())
                .await
            {
                Ok(_) => {}
                // Another pipeline created it between our check and our create.
                Err(_) if self.catalog.namespace_exists(&self.namespace).await? => {}
                Err(e) => return Err(anyhow::Error::new(e).context("creating namespace")),
            }
        }
        Ok(())
    }

    pub fn ident(&self, table: &str) -> TableIdent {
        TableIdent::new(self.namespace.clone(), table.to_string())
    }

    /// Load the table, creating it with `spec` if it does not exist yet.
    pub async fn ensure_table(&self, spec: &TableSpec) -> anyhow::Result<Table> {
        let ident = self.ident(spec.name);
        if self.catalog.table_exists(&ident).await? {
            let table = self.catalog.load_table(&ident).await?;
            return self.adopt(spec, table).await;
        }
        let creation = TableCreation::builder()
            .name(spec.name.to_string())
            .schema(spec.schema.clone())
            .partition_spec(spec.partition.clone())
            .properties(HashMap::from([
                // We commit ourselves (reload, check, commit once); never let the library retry.
                ("commit.retry.num-retries".to_string(), "0".to_string()),
                ("write.format.default".to_string(), "parquet".to_string()),
                (
                    "write.parquet.compression-codec".to_string(),
                    "zstd".to_string(),
                ),
                // Honoured by Spark/pyiceberg writers; we also prune metadata files ourselves.
                (
                    "write.metadata.delete-after-commit.enabled".to_string(),
                    "true".to_string(),
                ),
                (
                    "write.metadata.previous-versions-max".to_string(),
                    "10".to_string(),
                ),
            ]))
            .build();
        match self.catalog.create_table(&self.namespace, creation).await {
            Ok(table) => Ok(table),
            // Shared tables (dead_letters) may be created by another pipeline concurrently.
            Err(_) if self.catalog.table_exists(&ident).await? => {
                Ok(self.catalog.load_table(&ident).await?)
            }
            Err(e) => Err(anyhow::Error::new(e).context(format!("creating table {ident}"))),
        }
    }
}

/// The configured catalog (each call opens its own connection pool / HTTP client).
async fn open_catalog(params: &LakeParams) -> anyhow::Result<Arc<dyn Catalog>> {
    use anyhow::Context;
    let mut props = params.storage.0.clone();
    match &params.catalog {
        CatalogKind::Sql => {
            // iceberg-catalog-sql only enables sqlx's `any`; the sqlite driver comes from our sqlx.
            sqlx::any::install_default_drivers();
            props.insert(
                "uri".to_string(),
                format!("sqlite://{}?mode=rwc", params.catalog_db().display()),
            );
            props.insert("warehouse".to_string(), params.warehouse_location());
            props.insert("sql_bind_style".to_string(), "QMark".to_string());
            let catalog = SqlCatalogBuilder::default()
                .with_storage_factory(Arc::new(ObjectStorageFactory))
                .load(params.catalog_name.clone(), props)
                .await
                .with_context(|| {
                    format!("opening SQL catalog {}", params.catalog_db().display())
                })?;
            Ok(Arc::new(catalog))
        }
        CatalogKind::Rest { uri, props: own } => {
            props.extend(own.0.clone());
            props.insert("uri".to_string(), uri.clone());
            if !params.warehouse.is_empty() {
                props.insert("warehouse".to_string(), params.warehouse.clone());
            }
            let catalog = RestCatalogBuilder::default()
                .with_storage_factory(Arc::new(ObjectStorageFactory))
                .load(params.catalog_name.clone(), props)
                .await
                .with_context(|| format!("opening REST catalog {uri}"))?;
            Ok(Arc::new(catalog))
        }
    }
}

impl Lake {
    /// A plain catalog for readers (the query server): separate from the writers' pinned one,
    /// so a reader never sees a commit's pin.
    pub async fn reader_catalog(&self) -> anyhow::Result<Arc<dyn iceberg::Catalog>> {
        open_catalog(&self.params).await
    }
}

//! Opening the lake (SQL catalog on SQLite, or an Iceberg REST catalog; local or S3 warehouse)
//! and the pinning catalog wrapper.
//!
//! iceberg-rust's `Transaction::commit` reloads the table and re-applies its actions on whatever
//! is current, even with retries off, so a precondition we checked on one snapshot could land
//! on another. `PinnedCatalog` closes that gap: while a table is pinned, the reload inside the
//! transaction fails with `CatalogCommitConflicts` unless the table is still exactly the one we
//! checked. The catalog (SQL or REST) then enforces the snapshot requirement and its own compare-and-swap
//! on the metadata location, so the commit lands on the checked snapshot or not at all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use iceberg::table::Table;
use iceberg::{
    Catalog, CatalogBuilder, Error, ErrorKind, Namespace, NamespaceIdent, Result as IcebergResult,
    TableCommit, TableCreation, TableIdent,
};
use iceberg_catalog_rest::RestCatalogBuilder;
use iceberg_catalog_sql::SqlCatalogBuilder;

use super::io::store::ObjectStorageFactory;
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

/// A catalog that refuses to let a transaction re-base onto a snapshot we did not check.
#[derive(Debug)]
pub struct PinnedCatalog {
    inner: Arc<dyn Catalog>,
    /// Table -> metadata location that the pending commit was decided on.
    pins: Mutex<HashMap<TableIdent, String>>,
    /// One pinned commit per table at a time: several committers write one table (the
    /// dead-letter table from every topic; a raw table from two instances in one process),
    /// and a pin is per table, so a second pin would let the first commit land unchecked.
    turns: Mutex<HashMap<TableIdent, Arc<tokio::sync::Mutex<()>>>>,
    /// Table -> commit uuid whose manifest list is to be compacted before it lands.
    compactions: Mutex<HashMap<TableIdent, String>>,
    /// Table -> how its last compaction went, until the committer takes it.
    compacted: Mutex<HashMap<TableIdent, Result<(), String>>>,
}

/// Holds a pin (and the table's turn) for the duration of one commit attempt; dropping it
/// unpins.
pub struct PinGuard<'a> {
    catalog: &'a PinnedCatalog,
    ident: TableIdent,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for PinGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut pins) = self.catalog.pins.lock() {
            pins.remove(&self.ident);
        }
        if let Ok(mut c) = self.catalog.compactions.lock() {
            c.remove(&self.ident);
        }
    }
}

impl PinnedCatalog {
    pub fn new(inner: Arc<dyn Catalog>) -> Self {
        PinnedCatalog {
            inner,
            pins: Mutex::new(HashMap::new()),
            turns: Mutex::new(HashMap::new()),
            compactions: Mutex::new(HashMap::new()),
            compacted: Mutex::new(HashMap::new()),
        }
    }

    /// How the last compaction of `ident` went, once.
    pub fn take_compaction(&self, ident: &TableIdent) -> Option<Result<(), String>> {
        self.compacted.lock().ok()?.remove(ident)
    }

    fn compaction_outcome(&self, ident: &TableIdent, outcome: Result<(), String>) {
        if let Ok(mut c) = self.compacted.lock() {
            c.insert(ident.clone(), outcome);
        }
    }

    /// Pin `table` to its current metadata: until the guard drops, a reload that finds any
    /// other metadata fails as a commit conflict.
    pub async fn pin<'a>(&'a self, table: &Table) -> IcebergResult<PinGuard<'a>> {
        let location = table.metadata_location_result()?.to_string();
        let ident = table.identifier().clone();
        let turn = self
            .turns
            .lock()
            .map_err(|_| Error::new(ErrorKind::Unexpected, "pin turns poisoned"))?
            .entry(ident.clone())
            .or_default()
            .clone();
        let turn = turn.lock_owned().await;
        self.pins
            .lock()
            .map_err(|_| Error::new(ErrorKind::Unexpected, "pin table poisoned"))?
            .insert(ident.clone(), location);
        Ok(PinGuard {
            catalog: self,
            ident,
            _turn: turn,
        })
    }

    /// Pin, and also merge the table's earlier manifests into one inside this commit (the
    /// commit must use `commit_uuid`).
    pub async fn pin_compacting<'a>(
        &'a self,
        table: &Table,
        commit_uuid: &str,
    ) -> IcebergResult<PinGuard<'a>> {
        let guard = self.pin(table).await?;
        self.compactions
            .lock()
            .map_err(|_| Error::new(ErrorKind::Unexpected, "compactions poisoned"))?
            .insert(table.identifier().clone(), commit_uuid.to_string());
        Ok(guard)
    }

    /// Load without any pin check (for deciding).
    pub async fn load_unpinned(&self, ident: &TableIdent) -> IcebergResult<Table> {
        self.inner.load_table(ident).await
    }
}

pub fn is_conflict(e: &Error) -> bool {
    e.kind() == ErrorKind::CatalogCommitConflicts
}

#[async_trait]
impl Catalog for PinnedCatalog {
    async fn list_namespaces(
        &self,
        parent: Option<&NamespaceIdent>,
    ) -> IcebergResult<Vec<NamespaceIdent>> {
        self.inner.list_namespaces(parent).await
    }
    async fn create_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> IcebergResult<Namespace> {
        self.inner.create_namespace(namespace, properties).await
    }
    async fn get_namespace(&self, namespace: &NamespaceIdent) -> IcebergResult<Namespace> {
        self.inner.get_namespace(namespace).await
    }
    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> IcebergResult<bool> {
        self.inner.namespace_exists(namespace).await
    }
    async fn update_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> IcebergResult<()> {
        self.inner.update_namespace(namespace, properties).await
    }
    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> IcebergResult<()> {
        self.inner.drop_namespace(namespace).await
    }
    async fn list_tables(&self, namespace: &NamespaceIdent) -> IcebergResult<Vec<TableIdent>> {
        self.inner.list_tables(namespace).await
    }
    async fn create_table(
        &self,
        namespace: &NamespaceIdent,
        creation: TableCreation,
    ) -> IcebergResult<Table> {
        self.inner.create_table(namespace, creation).await
    }
    async fn load_table(&self, ident: &TableIdent) -> IcebergResult<Table> {
        let table = self.inner.load_table(ident).await?;
        let pinned = self
            .pins
            .lock()
            .map_err(|_| Error::new(ErrorKind::Unexpected, "pin table poisoned"))?
            .get(ident)
            .cloned();
        if let Some(expected) = pinned {
            let current = table.metadata_location().unwrap_or_default();
            if current != expected {
                // Not retryable inside iceberg-rust: our own loop reloads and decides again.
                return Err(Error::new(
                    ErrorKind::CatalogCommitConflicts,
                    format!("table {ident} changed after our offsets check (now {current})"),
                )
                .with_retryable(false));
            }
        }
        Ok(table)
    }
    async fn drop_table(&self, ident: &TableIdent) -> IcebergResult<()> {
        self.inner.drop_table(ident).await
    }
    async fn purge_table(&self, ident: &TableIdent) -> IcebergResult<()> {
        self.inner.purge_table(ident).await
    }
    async fn table_exists(&self, ident: &TableIdent) -> IcebergResult<bool> {
        self.inner.table_exists(ident).await
    }
    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> IcebergResult<()> {
        self.inner.rename_table(src, dest).await
    }
    async fn register_table(
        &self,
        ident: &TableIdent,
        metadata_location: String,
    ) -> IcebergResult<Table> {
        self.inner.register_table(ident, metadata_location).await
    }
    async fn update_table(&self, commit: TableCommit) -> IcebergResult<Table> {
        let ident = commit.identifier().clone();
        let compaction = self
            .compactions
            .lock()
            .ok()
            .and_then(|c| c.get(&ident).cloned());
        if let Some(uuid) = compaction {
            // The pinned base (load_table already refused anything else).
            let base = self.inner.load_table(&ident).await?;
            let list = super::maintenance::compact::find_manifest_list(&base, &uuid).await;
            let snapshot_id = list.as_deref().and_then(|l| {
                l.rsplit('/')
                    .next()?
                    .strip_prefix("snap-")?
                    .split('-')
                    .next()?
                    .parse::<i64>()
                    .ok()
            });
            match (list, snapshot_id) {
                // Any failure here fails the commit: the list may be half rewritten, and a
                // commit must never land on it. The caller decides again, without compaction.
                (Some(list), Some(id)) => {
                    match super::maintenance::compact::compact_list(&base, &list, id).await {
                        Ok((before, after)) => {
                            self.compaction_outcome(&ident, Ok(()));
                            tracing::info!(table = %ident, before, after, "manifests compacted in this commit");
                        }
                        Err(e) => {
                            self.compaction_outcome(&ident, Err(e.to_string()));
                            return Err(Error::new(
                                ErrorKind::Unexpected,
                                format!("manifest compaction failed: {e}"),
                            ));
                        }
                    }
                }
                // Nothing to rewrite: the commit lands uncompacted; say so.
                _ => self.compaction_outcome(
                    &ident,
                    Err(format!("the manifest list of commit {uuid} was not found")),
                ),
            }
        }
        let table = self.inner.update_table(commit).await?;
        // The commit is in the catalog; an error here is the ambiguous outcome a lost answer
        // gives, and a pause lets a drill kill the process before it learns of the commit.
        crate::failpoint::hit("catalog.after_commit_write")
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!("{e}: commit outcome unknown"),
                )
            })?;
        Ok(table)
    }
}

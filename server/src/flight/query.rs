//! The SQL side of the embedded Flight server: DataFusion over the lake's Iceberg tables,
//! read-only, every query on the latest committed snapshot, timestamps returned the way
//! Dremio returns them (`Timestamp(Millisecond, None)`, UTC wall time).

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use futures::{Stream, StreamExt};
use iceberg::Catalog;
use iceberg_datafusion::IcebergCatalogProvider;
use tokio::sync::RwLock;

pub type BatchStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<RecordBatch, QueryError>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The statement is not a query (DDL, DML, SET...): this server is read-only.
    #[error("read-only: only SELECT queries are served ({0})")]
    ReadOnly(String),
    /// Bad SQL, unknown table or column.
    #[error("{0}")]
    Invalid(String),
    #[error("query failed: {0}")]
    Execution(String),
}

pub struct QueryEngine {
    catalog: Arc<dyn Catalog>,
    source: String,
    namespace: String,
    /// Rebuilt when a table is missing: tables are listed when the provider is built.
    provider: RwLock<Arc<IcebergCatalogProvider>>,
}

impl QueryEngine {
    pub async fn new(
        catalog: Arc<dyn Catalog>,
        source: &str,
        namespace: &str,
    ) -> anyhow::Result<Self> {
        let provider = Arc::new(IcebergCatalogProvider::try_new(catalog.clone()).await?);
        Ok(QueryEngine {
            catalog,
            source: source.to_string(),
            namespace: namespace.to_string(),
            provider: RwLock::new(provider),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn context(&self, provider: Arc<IcebergCatalogProvider>) -> SessionContext {
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(&self.source, &self.namespace)
            .with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        ctx.register_catalog(&self.source, provider);
        ctx
    }

    async fn refresh(&self) -> anyhow::Result<()> {
        let fresh = Arc::new(IcebergCatalogProvider::try_new(self.catalog.clone()).await?);
        *self.provider.write().await = fresh;
        Ok(())
    }

    /// Plan `sql` and run it. Tables are re-listed once if the query names one we have not
    /// seen yet (created after the server started).
    pub async fn run(&self, sql: &str) -> Result<(SchemaRef, BatchStream), QueryError> {
        match self.run_once(sql).await {
            Err(QueryError::Invalid(m)) if m.contains("not found") => {
                self.refresh()
                    .await
                    .map_err(|e| QueryError::Execution(format!("{e:#}")))?;
                self.run_once(sql).await
            }
            other => other,
        }
    }

    /// The result schema without running the query (for FlightInfo).
    pub async fn schema(&self, sql: &str) -> Result<SchemaRef, QueryError> {
        let df = match self.plan(sql).await {
            Err(QueryError::Invalid(m)) if m.contains("not found") => {
                self.refresh()
                    .await
                    .map_err(|e| QueryError::Execution(format!("{e:#}")))?;
                self.plan(sql).await?
            }
            other => other?,
        };
        Ok(dremio_schema(df.schema().inner()))
    }

    async fn plan(&self, sql: &str) -> Result<datafusion::dataframe::DataFrame, QueryError> {
        let provider = self.provider.read().await.clone();
        let ctx = self.context(provider);
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        ctx.sql_with_options(sql, options).await.map_err(|e| {
            let text = e.to_string();
            if text.contains("not supported")
                && (text.contains("DDL") || text.contains("DML") || text.contains("Statement"))
            {
                QueryError::ReadOnly(text)
            } else {
                QueryError::Invalid(text)
            }
        })
    }

    /// Streams the result batch by batch, so a large result never sits whole in memory.
    async fn run_once(&self, sql: &str) -> Result<(SchemaRef, BatchStream), QueryError> {
        let df = self.plan(sql).await?;
        let schema = dremio_schema(df.schema().inner());
        let stream = df
            .execute_stream()
            .await
            .map_err(|e| QueryError::Execution(e.to_string()))?;
        let out = schema.clone();
        let batches = stream.map(move |b| {
            b.map_err(|e| QueryError::Execution(e.to_string()))
                .and_then(|b| to_dremio(&out, b).map_err(|e| QueryError::Execution(e.to_string())))
        });
        Ok((schema, Box::pin(batches)))
    }
}

/// Dremio returns every timestamp as milliseconds without zone.
fn dremio_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(_, _) => DataType::Timestamp(TimeUnit::Millisecond, None),
        other => other.clone(),
    }
}

pub fn dremio_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), dremio_type(f.data_type()), f.is_nullable()))
            .collect::<Vec<_>>(),
    ))
}

fn to_dremio(
    schema: &SchemaRef,
    batch: RecordBatch,
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                arrow::compute::cast(c, f.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

impl QueryEngine {
    /// Every table of the namespace with its (Dremio-typed) schema, for GetTables.
    pub async fn tables(&self) -> Result<Vec<(String, SchemaRef)>, QueryError> {
        use datafusion::catalog::CatalogProvider;
        self.refresh()
            .await
            .map_err(|e| QueryError::Execution(format!("{e:#}")))?;
        let provider = self.provider.read().await.clone();
        let Some(schema) = provider.schema(&self.namespace) else {
            return Ok(Vec::new());
        };
        // `$snapshots` / `$manifests` metadata views are queryable but not listed as tables.
        let mut names: Vec<String> = schema
            .table_names()
            .into_iter()
            .filter(|n| !n.contains('$'))
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            if let Ok(Some(t)) = schema.table(&name).await {
                out.push((name, dremio_schema(&t.schema())));
            }
        }
        Ok(out)
    }
}

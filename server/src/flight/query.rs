//! The SQL side of the embedded Flight server: DataFusion over the lake's Iceberg tables,
//! read-only, every query on the latest committed snapshot, timestamps returned the way
//! Dremio returns them (`Timestamp(Millisecond, None)`, UTC wall time).

use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use futures::{Stream, StreamExt};
use iceberg::Catalog;
use iceberg_datafusion::IcebergCatalogProvider;
use tokio::sync::{mpsc, oneshot, RwLock};

use super::limits::{Limit, Principal, QueryLimits, QueryPool};

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
    /// Past one of the query limits (the text names it and its key).
    #[error("{1}")]
    Limit(Limit, String),
}

impl QueryError {
    fn from_datafusion(e: DataFusionError, limits: &QueryLimits) -> Self {
        match e.find_root() {
            DataFusionError::ResourcesExhausted(_) => {
                QueryError::Limit(Limit::Memory, Limit::Memory.explain(limits))
            }
            _ => QueryError::Execution(e.to_string()),
        }
    }
}

pub struct QueryEngine {
    catalog: Arc<dyn Catalog>,
    source: String,
    namespace: String,
    /// Rebuilt when a table is missing: tables are listed when the provider is built.
    provider: RwLock<Arc<IcebergCatalogProvider>>,
    pool: QueryPool,
}

impl QueryEngine {
    pub async fn new(
        catalog: Arc<dyn Catalog>,
        source: &str,
        namespace: &str,
        pool: QueryPool,
    ) -> anyhow::Result<Self> {
        let provider = Arc::new(IcebergCatalogProvider::try_new(catalog.clone()).await?);
        Ok(QueryEngine {
            catalog,
            source: source.to_string(),
            namespace: namespace.to_string(),
            provider: RwLock::new(provider),
            pool,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A session of its own per query: its memory pool is the query's limit.
    fn context(&self, provider: Arc<IcebergCatalogProvider>) -> Result<SessionContext, QueryError> {
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(&self.source, &self.namespace)
            .with_information_schema(true);
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(self.pool.limits.memory_bytes, 1.0)
            .build_arc()
            .map_err(|e| QueryError::Execution(e.to_string()))?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        ctx.register_catalog(&self.source, provider);
        Ok(ctx)
    }

    async fn refresh(&self) -> anyhow::Result<()> {
        let fresh = Arc::new(IcebergCatalogProvider::try_new(self.catalog.clone()).await?);
        *self.provider.write().await = fresh;
        Ok(())
    }

    /// Plan `sql` and run it on the query pool, within the limits: a slot among
    /// `flight.query_max_concurrent`, the memory pool, the time limit. The batches come back
    /// through a small channel; a client that goes away cancels the query.
    pub async fn run(
        self: &Arc<Self>,
        sql: &str,
        who: Principal,
    ) -> Result<(SchemaRef, BatchStream), QueryError> {
        let started = Instant::now();
        let metrics = self.pool.metrics.clone();
        let permit = match self.pool.admit().await {
            Ok(p) => p,
            Err(limit) => {
                metrics.finished(who, limit.outcome(), started.elapsed());
                return Err(QueryError::Limit(limit, limit.explain(&self.pool.limits)));
            }
        };
        let (schema_tx, schema_rx) = oneshot::channel();
        let (tx, rx) = mpsc::channel::<Result<RecordBatch, QueryError>>(2);
        let over_time = tx.clone();
        let (engine, sql) = (self.clone(), sql.to_string());
        let work = self.pool.spawn(async move {
            let (schema, mut batches) = match engine.run_retrying(&sql).await {
                Ok(v) => v,
                Err(e) => {
                    let outcome = outcome_of(&e);
                    let _ = schema_tx.send(Err(e));
                    return outcome;
                }
            };
            let _ = schema_tx.send(Ok(schema));
            while let Some(b) = batches.next().await {
                let failed = b.as_ref().err().map(outcome_of);
                if let Ok(b) = &b {
                    metrics.sent(who, b.num_rows(), b.get_array_memory_size());
                }
                if tx.send(b).await.is_err() {
                    return "cancelled";
                }
                if let Some(outcome) = failed {
                    return outcome;
                }
            }
            "ok"
        });
        let (metrics, limits) = (self.pool.metrics.clone(), self.pool.limits);
        tokio::spawn(async move {
            let outcome = match work.await {
                Ok(Some(outcome)) => outcome,
                Ok(None) => {
                    // The query's task was dropped at the limit: say so to the client.
                    let e = QueryError::Limit(Limit::Time, Limit::Time.explain(&limits));
                    let _ = over_time.send(Err(e)).await;
                    Limit::Time.outcome()
                }
                Err(_) => "error",
            };
            metrics.finished(who, outcome, started.elapsed());
            drop(permit);
        });
        let schema = match schema_rx.await {
            Ok(result) => result?,
            // Planning itself ran out of time.
            Err(_) => {
                return Err(QueryError::Limit(
                    Limit::Time,
                    Limit::Time.explain(&self.pool.limits),
                ))
            }
        };
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok((schema, Box::pin(stream)))
    }

    async fn run_retrying(&self, sql: &str) -> Result<(SchemaRef, BatchStream), QueryError> {
        self.run_once(sql).await
    }

    /// The result schema without running the query (for FlightInfo).
    pub async fn schema(&self, sql: &str) -> Result<SchemaRef, QueryError> {
        let df = self.plan(sql).await?;
        Ok(dremio_schema(df.schema().inner()))
    }

    /// Parse and plan `sql`: a query only (told by the statement's kind), over the tables as
    /// they are now (listed again once if it names one created after the provider was built).
    async fn plan(&self, sql: &str) -> Result<datafusion::dataframe::DataFrame, QueryError> {
        use datafusion::sql::parser::Statement;
        use datafusion::sql::sqlparser::ast::Statement as Sql;
        let invalid = |e: DataFusionError| QueryError::Invalid(e.to_string());
        let mut provider = self.provider.read().await.clone();
        let mut ctx = self.context(provider.clone())?;
        let state = ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state.sql_to_statement(sql, &dialect).map_err(invalid)?;
        let kind = match &statement {
            Statement::Statement(s) if matches!(**s, Sql::Query(_)) => None,
            Statement::Statement(s) => Some(
                s.to_string()
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_uppercase(),
            ),
            Statement::CopyTo(_) => Some("COPY".into()),
            Statement::CreateExternalTable(_) => Some("CREATE EXTERNAL TABLE".into()),
            Statement::Explain(_) => Some("EXPLAIN".into()),
            Statement::Reset(_) => Some("RESET".into()),
        };
        if let Some(kind) = kind {
            return Err(QueryError::ReadOnly(format!("{kind} statement")));
        }
        let tables = state
            .resolve_table_references(&statement)
            .map_err(invalid)?;
        if !tables.iter().all(|t| self.knows(&provider, t)) {
            self.refresh()
                .await
                .map_err(|e| QueryError::Execution(format!("{e:#}")))?;
            provider = self.provider.read().await.clone();
            ctx = self.context(provider)?;
        }
        let plan = ctx
            .state()
            .statement_to_plan(statement)
            .await
            .map_err(invalid)?;
        // Belt and braces: the plan itself may hold nothing that writes.
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|e| QueryError::ReadOnly(e.to_string()))?;
        ctx.execute_logical_plan(plan).await.map_err(invalid)
    }

    /// Whether the provider lists `table` (information_schema always).
    fn knows(
        &self,
        provider: &IcebergCatalogProvider,
        table: &datafusion::sql::TableReference,
    ) -> bool {
        use datafusion::catalog::CatalogProvider;
        let schema = table.schema().unwrap_or(&self.namespace);
        schema == "information_schema"
            || provider
                .schema(schema)
                .is_some_and(|s| s.table_exist(table.table()))
    }

    /// Streams the result batch by batch, so a large result never sits whole in memory.
    async fn run_once(&self, sql: &str) -> Result<(SchemaRef, BatchStream), QueryError> {
        let df = self.plan(sql).await?;
        let schema = dremio_schema(df.schema().inner());
        let stream = df
            .execute_stream()
            .await
            .map_err(|e| QueryError::from_datafusion(e, &self.pool.limits))?;
        let out = schema.clone();
        let limits = self.pool.limits;
        let batches = stream.map(move |b| {
            b.map_err(|e| QueryError::from_datafusion(e, &limits))
                .and_then(|b| to_dremio(&out, b).map_err(|e| QueryError::Execution(e.to_string())))
        });
        Ok((schema, Box::pin(batches)))
    }
}

/// The metric outcome of a failed query.
fn outcome_of(e: &QueryError) -> &'static str {
    match e {
        QueryError::Limit(l, _) => l.outcome(),
        _ => "error",
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

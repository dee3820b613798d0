//! What one Flight SQL query may take, and the pool queries run on: their own threads (a query
//! that burns CPU cannot starve the pipeline's runtime), a cap on queries at once, a memory
//! pool per query (DataFusion spills where it can and fails where it cannot) and a time limit.
//! Past a limit a query ends with an error naming the limit and its key; every query is
//! counted by outcome and by who asked.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use tokio::sync::Semaphore;

/// The limits of every query, from `[flight]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    /// `flight.query_max_memory_mb`, in bytes.
    pub memory_bytes: usize,
    /// `flight.query_timeout_s`.
    pub timeout: Duration,
    /// `flight.query_max_concurrent`.
    pub max_concurrent: usize,
    /// `flight.query_threads`.
    pub threads: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(60),
            max_concurrent: 8,
            threads: 1,
        }
    }
}

/// Which limit a query ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Memory,
    Time,
    Concurrency,
}

impl Limit {
    /// The error text: the limit, its value and its key.
    pub fn explain(self, limits: &QueryLimits) -> String {
        match self {
            Limit::Memory => format!(
                "the query needs more memory than its limit of {} MiB (flight.query_max_memory_mb); narrow it (a WHERE on time, fewer columns, a LIMIT)",
                limits.memory_bytes >> 20
            ),
            Limit::Time => format!(
                "the query ran past its time limit of {} s (flight.query_timeout_s)",
                limits.timeout.as_secs()
            ),
            Limit::Concurrency => format!(
                "{} queries are running, the most at once (flight.query_max_concurrent); try again shortly",
                limits.max_concurrent
            ),
        }
    }

    pub fn outcome(self) -> &'static str {
        match self {
            Limit::Memory => "memory_limit",
            Limit::Time => "time_limit",
            Limit::Concurrency => "busy",
        }
    }
}

/// Who asked, in bounded classes (a metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Principal {
    /// The `[flight]` credential: the dashboard's refresher, Dremio-style clients.
    #[default]
    Service,
    /// One of the page's users (`[auth.users]`).
    User,
    /// A script's bearer token (`[auth.tokens]`).
    Token,
}

impl Principal {
    pub fn as_str(self) -> &'static str {
        match self {
            Principal::Service => "service",
            Principal::User => "user",
            Principal::Token => "token",
        }
    }
}

#[derive(Clone)]
pub struct QueryMetrics {
    seconds: HistogramVec,
    rows: IntCounterVec,
    bytes: IntCounterVec,
    /// Tables the queries planned on, reused or loaded (`flight::tables`).
    pub tables: IntCounterVec,
}

impl QueryMetrics {
    pub fn new(r: &Registry) -> Self {
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "shopwatch_query_served_duration_seconds",
                "Flight SQL queries this server answered, from start to last batch, by principal class (service, user, token) and outcome (ok, error, memory_limit, time_limit, busy, cancelled).",
            )
            .buckets(vec![0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0]),
            &["principal", "outcome"],
        )
        .expect("static metric definition");
        let rows = IntCounterVec::new(
            Opts::new(
                "shopwatch_query_served_rows_total",
                "Rows returned by Flight SQL queries, by principal class.",
            ),
            &["principal"],
        )
        .expect("static metric definition");
        let bytes = IntCounterVec::new(
            Opts::new(
                "shopwatch_query_served_bytes_total",
                "Arrow bytes returned by Flight SQL queries, by principal class.",
            ),
            &["principal"],
        )
        .expect("static metric definition");
        let tables = IntCounterVec::new(
            Opts::new(
                "shopwatch_query_tables_total",
                "Tables Flight SQL queries planned on: reused (the same version as the last query's, its manifests already parsed) or loaded (a new version).",
            ),
            &["outcome"],
        )
        .expect("static metric definition");
        shopwatch_actors::telemetry::register(r, &seconds);
        shopwatch_actors::telemetry::register(r, &rows);
        shopwatch_actors::telemetry::register(r, &bytes);
        shopwatch_actors::telemetry::register(r, &tables);
        QueryMetrics {
            seconds,
            rows,
            bytes,
            tables,
        }
    }

    pub fn finished(&self, who: Principal, outcome: &str, took: Duration) {
        self.seconds
            .with_label_values(&[who.as_str(), outcome])
            .observe(took.as_secs_f64());
    }

    pub fn sent(&self, who: Principal, rows: usize, bytes: usize) {
        self.rows
            .with_label_values(&[who.as_str()])
            .inc_by(rows as u64);
        self.bytes
            .with_label_values(&[who.as_str()])
            .inc_by(bytes as u64);
    }
}

/// The threads and permits queries run with.
pub struct QueryPool {
    pub limits: QueryLimits,
    pub metrics: QueryMetrics,
    runtime: Option<tokio::runtime::Runtime>,
    permits: Arc<Semaphore>,
}

impl QueryPool {
    pub fn new(limits: QueryLimits, metrics: QueryMetrics) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(limits.threads.max(1))
            .thread_name("flight-query")
            .enable_all()
            .build()?;
        Ok(QueryPool {
            limits,
            metrics,
            runtime: Some(runtime),
            permits: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
        })
    }

    /// A slot for one query: waits a few seconds for one to free up (the dashboard's quick
    /// queries behind a busy analyst), then refuses.
    pub async fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Limit> {
        let wait = if cfg!(test) {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(5)
        };
        match tokio::time::timeout(wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Limit::Concurrency),
        }
    }

    /// Run `work` on the query threads, within the time limit.
    pub fn spawn<F>(&self, work: F) -> tokio::task::JoinHandle<Option<F::Output>>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let timeout = self.limits.timeout;
        let task = async move { tokio::time::timeout(timeout, work).await.ok() };
        match &self.runtime {
            Some(rt) => rt.spawn(task),
            None => tokio::spawn(task),
        }
    }
}

impl Drop for QueryPool {
    fn drop(&mut self) {
        // Dropping a runtime inside another one panics; let its threads go in the background.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_is_named_with_its_key() {
        let l = QueryLimits::default();
        assert!(Limit::Memory
            .explain(&l)
            .contains("256 MiB (flight.query_max_memory_mb)"));
        assert!(Limit::Time
            .explain(&l)
            .contains("60 s (flight.query_timeout_s)"));
        assert!(Limit::Concurrency
            .explain(&l)
            .contains("flight.query_max_concurrent"));
    }

    #[tokio::test]
    async fn queries_past_the_cap_are_refused_and_slow_ones_stop_at_the_limit() {
        let limits = QueryLimits {
            max_concurrent: 1,
            timeout: Duration::from_millis(100),
            ..QueryLimits::default()
        };
        let pool = QueryPool::new(limits, QueryMetrics::new(&Registry::new())).unwrap();
        let held = pool.admit().await.unwrap();
        assert_eq!(pool.admit().await.unwrap_err(), Limit::Concurrency);
        drop(held);
        assert!(pool.admit().await.is_ok());
        let endless = pool.spawn(std::future::pending::<()>());
        assert_eq!(endless.await.unwrap(), None, "cut at the time limit");
        let quick = pool.spawn(async { 7 });
        assert_eq!(quick.await.unwrap(), Some(7));
    }
}

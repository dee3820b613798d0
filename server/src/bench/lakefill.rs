//! A lake filled by the real pipeline: a persistent local broker and `shopwatch run` in this
//! process, kept next to each other in one directory so a later run can reuse both (the lake's
//! offsets only make sense with the broker that holds those records).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use arrow_array::Int64Array;
use shopwatch_actors::events::EventKind;
use shopwatch_actors::schema::DEAD_LETTERS_TABLE;
use shopwatch_load::broker::{Broker, BrokerParams, BrokerStorage};
use shopwatch_load::produce::{produce, ProduceParams};
use tokio::sync::Notify;

use crate::config::Config;
use crate::flight::client::FlightQueryClient;

pub struct LiveLake {
    pub cfg: Config,
    pub client: FlightQueryClient,
    broker_stop: Arc<AtomicBool>,
    broker: tokio::task::JoinHandle<anyhow::Result<()>>,
    pipeline_stop: Arc<Notify>,
    pipeline: tokio::task::JoinHandle<anyhow::Result<i32>>,
    producer_stop: Arc<AtomicBool>,
}

fn table(cfg: &Config, name: &str) -> String {
    format!("{}.{}.{}", cfg.flight.source, cfg.lake.namespace, name)
}

impl LiveLake {
    /// Broker (sqlite storage under `dir/broker`), pipeline and Flight server on free ports.
    pub async fn start(mut cfg: Config, dir: PathBuf) -> anyhow::Result<LiveLake> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // The broker keeps its port across runs: its metadata names it.
        let port_file = dir.join("broker.addr");
        let listen = match std::fs::read_to_string(&port_file) {
            Ok(a) => a.trim().to_string(),
            Err(_) => {
                let a = super::free_addr()?;
                std::fs::write(&port_file, &a)?;
                a
            }
        };
        let topics = vec![
            cfg.topics.orders.clone(),
            cfg.topics.clicks.clone(),
            cfg.topics.errors.clone(),
        ];
        let broker = Broker::start(BrokerParams {
            listen: listen.parse().context("broker address")?,
            data_dir: dir.join("broker"),
            partitions: cfg.kafka.partitions,
            topics,
            storage: BrokerStorage::Sqlite,
        })
        .await?;
        cfg.kafka.brokers = broker.brokers();
        cfg.lake.data_dir = dir.clone();
        cfg.http.listen = super::free_addr()?;
        cfg.flight.listen = super::free_addr()?;
        cfg.flight.enabled = true;
        let broker_stop = Arc::new(AtomicBool::new(false));
        let broker = tokio::spawn(broker.supervise(broker_stop.clone()));
        let pipeline_stop = Arc::new(Notify::new());
        let stop = pipeline_stop.clone();
        let run_cfg = cfg.clone();
        let pipeline = tokio::spawn(async move {
            crate::run::run_until(run_cfg, async move { stop.notified().await }).await
        });
        let target = cfg.query_target();
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = loop {
            match FlightQueryClient::connect(
                &target.addr,
                &target.username,
                target.password.expose(),
                target.timeout,
            )
            .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context("Flight never came up"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        };
        Ok(LiveLake {
            cfg,
            client,
            broker_stop,
            broker,
            pipeline_stop,
            pipeline,
            producer_stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Rows in every raw table plus dead letters (0 for a table not created yet).
    pub async fn raw_rows(&mut self) -> u64 {
        let mut total = 0;
        let names = EventKind::ALL
            .iter()
            .map(|k| k.raw_table())
            .chain([DEAD_LETTERS_TABLE]);
        for name in names {
            let sql = format!("SELECT COUNT(*) AS n FROM {}", table(&self.cfg, name));
            if let Ok(batches) = self.client.query(&sql).await {
                total += batches
                    .iter()
                    .filter_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>())
                    .map(|a| a.value(0).max(0) as u64)
                    .sum::<u64>();
            }
        }
        total
    }

    pub fn producer(&self, rate: Option<f64>, count: Option<u64>, seed: u64) -> ProduceParams {
        ProduceParams {
            brokers: self.cfg.kafka.brokers.clone(),
            orders_topic: self.cfg.topics.orders.clone(),
            clicks_topic: self.cfg.topics.clicks.clone(),
            errors_topic: self.cfg.topics.errors.clone(),
            rate,
            count,
            duration: None,
            seed,
            malformed_fraction: 0.0,
            ack_log: None,
            progress: false,
            event_clock: None,
        }
    }

    /// Fill to at least `events` raw rows at `rate`; waits until they are committed.
    pub async fn fill(&mut self, events: u64, rate: f64, seed: u64) -> anyhow::Result<u64> {
        let have = self.raw_rows().await;
        if have >= events {
            return Ok(have);
        }
        let missing = events - have;
        eprintln!("filling the lake: {have} raw rows, producing {missing} more at {rate} ev/s");
        let params = self.producer(Some(rate), Some(missing), seed);
        let report = produce(params, self.producer_stop.clone())
            .await
            .context("producing")?;
        anyhow::ensure!(report.errors == 0, "{} produce errors", report.errors);
        let target = have + report.acked;
        let started = Instant::now();
        let mut last = 0;
        loop {
            let now = self.raw_rows().await;
            if now >= target {
                return Ok(now);
            }
            if now != last {
                eprintln!("  committed {now} / {target}");
                last = now;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "the pipeline committed only {now} of {target} rows in 10 minutes"
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Keep producing at `rate` in the background (a live lake), until `stop`.
    pub fn keep_producing(&self, rate: f64, seed: u64) -> tokio::task::JoinHandle<()> {
        let params = self.producer(Some(rate), None, seed);
        let stop = self.producer_stop.clone();
        tokio::spawn(async move {
            if let Err(e) = produce(params, stop).await {
                tracing::warn!(error = %format!("{e:#}"), "background producer stopped");
            }
        })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.producer_stop.store(true, Ordering::Relaxed);
        self.pipeline_stop.notify_one();
        let code = self.pipeline.await.context("pipeline task")??;
        self.broker_stop.store(true, Ordering::Relaxed);
        let _ = self.broker.await;
        anyhow::ensure!(code == 0, "pipeline exited with code {code}");
        Ok(())
    }
}

/// Data files and bytes of one table, as found in the warehouse directory.
pub fn data_files(cfg: &Config, table: &str) -> (usize, u64) {
    let dir = cfg
        .lake
        .data_dir
        .join("warehouse")
        .join(&cfg.lake.namespace)
        .join(table)
        .join("data");
    files_under(&dir, |p| p.extension().is_some_and(|x| x == "parquet"))
}

/// Files under `dir` (recursively) that `keep` accepts: (count, bytes).
pub fn files_under(dir: &std::path::Path, keep: impl Fn(&std::path::Path) -> bool) -> (usize, u64) {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if keep(&path) {
                files += 1;
                bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    (files, bytes)
}

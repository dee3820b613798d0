use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use shopwatch_actors::lake::{Lake, LakeParams};
use shopwatch_actors::rollup::{RollupParams, RollupSlots};

pub async fn lake(dir: &std::path::Path) -> Lake {
    Lake::open(LakeParams::local(
        "shopwatch",
        "ecommerce_db",
        dir.to_path_buf(),
    ))
    .await
    .unwrap()
}

/// All (kafka_partition, kafka_offset) pairs of a table, with duplicates kept.
pub async fn source_offsets(lake: &Lake, table: &str) -> Vec<(i32, i64)> {
    // The pipeline creates its tables when its actors start, which may be after we first look.
    let Ok(t) = lake.catalog.load_unpinned(&lake.ident(table)).await else {
        return Vec::new();
    };
    if t.metadata().current_snapshot().is_none() {
        return Vec::new();
    }
    let batches: Vec<_> = t
        .scan()
        .select(["kafka_partition", "kafka_offset"])
        .build()
        .unwrap()
        .to_arrow()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut out = Vec::new();
    for b in batches {
        let p = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::Int32Array>()
            .unwrap();
        let o = b
            .column(1)
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap();
        for i in 0..b.num_rows() {
            out.push((p.value(i), o.value(i)));
        }
    }
    out
}

pub fn assert_unique(rows: &[(i32, i64)]) {
    let set: HashSet<_> = rows.iter().collect();
    assert_eq!(set.len(), rows.len(), "duplicated source offsets");
}

/// Poll `cond` until it holds or `timeout` passes (no fixed sleeps).
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// librdkafka's in-process mock cluster with `topic` of `partitions`; keep the producer alive
/// (the cluster lives as long as its client). Returns it and the bootstrap servers.
pub fn mock_broker(topic: &str, partitions: i32) -> (rdkafka::producer::FutureProducer, String) {
    use rdkafka::producer::Producer;
    let mock: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("test.mock.num.brokers", "1")
        .create()
        .unwrap();
    let brokers = {
        let cluster = mock.client().mock_cluster().unwrap();
        cluster.create_topic(topic, partitions, 1).unwrap();
        cluster.bootstrap_servers()
    };
    // Consumers join a group; the mock waits 3 s for more members before the first
    // assignment (as Kafka's group.initial.rebalance.delay.ms), which every restart would pay.
    // SAFETY: the handle is the mock cluster owned by `mock`'s client, alive for the call.
    unsafe {
        let cluster = rdkafka::bindings::rd_kafka_handle_mock_cluster(mock.client().native_ptr());
        rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0);
    }
    (mock, brokers)
}

/// Logs to the test's output when `RUST_LOG` is set (nextest shows them on failure).
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// The rollup of a solo owner over `kpis` with every default rule, ticking every 100 ms, no
/// webhook, no feed, no page; a test sets what it is about with `..` over this.
pub fn rollup(
    lake: &Lake,
    metrics: &shopwatch_actors::telemetry::Metrics,
    kpis: Vec<(
        &'static dyn shopwatch_actors::kpis::Kpi,
        shopwatch_actors::windows::EngineParams,
    )>,
    faults: std::sync::Arc<shopwatch_actors::faults::Faults>,
    supervision: shopwatch_actors::supervision::SupervisionParams,
) -> RollupParams {
    let slots = RollupSlots::new(&kpis.iter().map(|(k, _)| *k).collect::<Vec<_>>());
    RollupParams {
        lake: lake.clone(),
        topics: [
            "orders_topic".into(),
            "clicks_topic".into(),
            "errors_topic".into(),
        ],
        kpis,
        rules: shopwatch_actors::alerts::rules::defaults(),
        hygiene: Default::default(),
        metrics: metrics.clone(),
        supervision,
        faults,
        tick: Duration::from_millis(100),
        checkpoint_every: Duration::from_secs(5),
        slots,
        webhook: None,
        grouping: Default::default(),
        ownership: shopwatch_actors::handoff::Ownership::solo(),
        broker: None,
        live: None,
    }
}

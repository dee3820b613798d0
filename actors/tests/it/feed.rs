//! The rollup owner over partitions another instance consumes, with a broker that lies: the
//! owner reads the other instance's rows from the raw table and counts them exactly, and while
//! the broker under-reports its high watermarks (as Tansu with `memory://` storage has,
//! ../shared/reference/realparts.md) no window closes on the partitions' silence; once it
//! answers truthfully the windows close with the exact counts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shopwatch_actors::faults::Faults;
use shopwatch_actors::handoff::BrokerView;
use shopwatch_actors::kpis::REGISTRY;
use shopwatch_actors::lake::commit::chain::recorded_chain;
use shopwatch_actors::lake::Lake;
use shopwatch_actors::pipeline::kafka::BrokerProbe;
use shopwatch_actors::rollup::RollupParams;
use shopwatch_actors::runtime::Pipelines;
use shopwatch_actors::supervision::SupervisionParams;
use shopwatch_actors::telemetry::Metrics;
use shopwatch_actors::windows::{ClockParams, EngineParams, Windowing};

use crate::common::{eventually, init_tracing, lake, mock_broker, source_offsets};
use crate::group::{params, produce_at, PARTITIONS, TOPIC};

const S: i64 = 1_000_000;
const EVENTS: usize = 200;

/// The real broker's answers, `under` records short when asked to lie.
#[derive(Debug)]
struct Lying {
    inner: BrokerProbe,
    under: AtomicI64,
}

impl BrokerView for Lying {
    fn high_watermarks(&self, topic: &str) -> Result<BTreeMap<i32, i64>, String> {
        let under = self.under.load(Ordering::Relaxed);
        Ok(self
            .inner
            .high_watermarks(topic)?
            .into_iter()
            .map(|(p, h)| (p, (h - under).max(0)))
            .collect())
    }
}

/// The owner alone: the orders KPI and the detector, no consumer of its own (every partition
/// is consumed by the other instance), ticking every 100 ms.
fn owner(lake: &Lake, metrics: &Metrics, broker: Arc<dyn BrokerView>) -> RollupParams {
    let kpi = *REGISTRY
        .iter()
        .find(|k| k.table() == "orders_revenue_per_minute")
        .unwrap();
    let w = kpi.window();
    let engine = EngineParams {
        windowing: Windowing::new(w.size_s as i64 * S, w.slide_s as i64 * S).unwrap(),
        clock: ClockParams {
            lateness: S,
            idle_timeout: S,
        },
        max_skew: 3_600 * S,
        clock_tolerance: 2 * S,
    };
    RollupParams {
        broker: Some(broker),
        ..crate::common::rollup(
            lake,
            metrics,
            vec![(kpi, engine)],
            Arc::new(Faults::default()),
            SupervisionParams {
                heartbeat: Duration::from_millis(100),
                ..SupervisionParams::default()
            },
        )
    }
}

async fn emitted_until(lake: &Lake) -> Option<i64> {
    let t = lake
        .catalog
        .load_unpinned(&lake.ident("orders_revenue_per_minute"))
        .await
        .ok()?;
    recorded_chain(&t)
        .ok()?
        .state
        .get("emitted_until")?
        .as_i64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_under_reporting_broker_never_closes_a_window_early() {
    init_tracing();
    let (_mock, brokers) = mock_broker(TOPIC, PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    // The other instance: it consumes every partition and commits the raw table.
    let other_metrics = Metrics::new();
    let other = Pipelines::start(
        vec![params(
            &brokers,
            &lake,
            &other_metrics,
            Arc::new(Faults::default()),
        )],
        None,
        None,
    )
    .await
    .unwrap();
    let event_time = chrono::Utc::now() - chrono::Duration::seconds(120);
    let at = event_time.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    produce_at(&brokers, 0..EVENTS, &at).await;
    let l = lake.clone();
    eventually(
        Duration::from_secs(60),
        "the other instance's commits",
        || {
            let l = l.clone();
            async move { source_offsets(&l, "orders_processed").await.len() >= EVENTS }
        },
    )
    .await;

    // The owner, with a broker that answers 5 records short on every partition.
    let metrics = Metrics::new();
    let kafka = params(&brokers, &lake, &metrics, Arc::new(Faults::default())).kafka;
    let lying = Arc::new(Lying {
        inner: BrokerProbe::new(&kafka).unwrap(),
        under: AtomicI64::new(5),
    });
    let rollup = owner(&lake, &metrics, lying.clone());
    let owner_groups = Pipelines::start(Vec::new(), Some(rollup), None)
        .await
        .unwrap();
    let lies = |m: &Metrics| m.watermark_lies.with_label_values(&[TOPIC]).get();
    let m = metrics.clone();
    eventually(Duration::from_secs(30), "the lies noticed", || {
        let m = m.clone();
        async move { lies(&m) >= PARTITIONS as u64 }
    })
    .await;
    // Many idle timeouts later, the window holding the events is still open.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let window_end = event_time.timestamp_micros() + 60 * S;
    assert!(
        emitted_until(&lake).await.is_none_or(|u| u < window_end),
        "a window closed while the broker lied: emitted until {:?}",
        emitted_until(&lake).await
    );

    // The truth: the partitions are drained, the windows close with every order counted.
    lying.under.store(0, Ordering::Relaxed);
    let l = lake.clone();
    eventually(Duration::from_secs(30), "the windows closed", || {
        let l = l.clone();
        async move { emitted_until(&l).await.is_some_and(|u| u >= window_end) }
    })
    .await;
    let t = lake
        .catalog
        .load_unpinned(&lake.ident("orders_revenue_per_minute"))
        .await
        .unwrap();
    let batches = shopwatch_actors::lake::io::scan::read_batches(&t, Some(&["orders_count"]), None)
        .await
        .unwrap();
    let counted: i64 = batches
        .iter()
        .map(|b| {
            let c = b
                .column(0)
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .unwrap();
            c.iter().flatten().sum::<i64>()
        })
        .sum();
    // Every order lies in size / slide windows.
    assert_eq!(
        counted,
        EVENTS as i64 * 2,
        "orders counted over the windows"
    );
    owner_groups.drain(Duration::from_secs(10)).await;
    other.drain(Duration::from_secs(10)).await;
}

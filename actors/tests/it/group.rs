//! Two instances in one consumer group over one lake (in-process, librdkafka's mock broker,
//! real SQLite catalog): they share the partitions, hand them over when one leaves, and a
//! frozen instance that wakes up as a zombie is fenced partition by partition — every record
//! lands exactly once and no recorded offset ever moves back.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use shopwatch_actors::events::EventKind;
use shopwatch_actors::faults::{Action, Faults, Point, Rule};
use shopwatch_actors::handoff::Subscribers;
use shopwatch_actors::lake::commit::offsets_key;
use shopwatch_actors::lake::{HygieneParams, Lake, Offsets};
use shopwatch_actors::pipeline::{BatchParams, KafkaParams, PipelineParams};
use shopwatch_actors::runtime::Pipelines;
use shopwatch_actors::supervision::SupervisionParams;
use shopwatch_actors::telemetry::Metrics;

use crate::common::{assert_unique, eventually, init_tracing, lake, mock_broker, source_offsets};

pub(crate) const TOPIC: &str = "orders_topic";
pub(crate) const PARTITIONS: i32 = 4;

struct Instance {
    metrics: Metrics,
    pipelines: Pipelines,
}

pub(crate) fn params(
    brokers: &str,
    lake: &Lake,
    metrics: &Metrics,
    faults: Arc<Faults>,
) -> PipelineParams {
    PipelineParams {
        kind: EventKind::Orders,
        topic: TOPIC.into(),
        kafka: KafkaParams {
            brokers: brokers.to_string(),
            group: "scale".into(),
            instance: "test".into(),
            start: Default::default(),
            // Short sessions (the mock assigns a session less 1 s after a member leaves); a
            // member that does not poll for 3 s is out of the group: that is the zombie.
            extra: [
                ("fetch.wait.max.ms", "10"),
                ("session.timeout.ms", "1500"),
                ("heartbeat.interval.ms", "500"),
                ("max.poll.interval.ms", "3000"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
        },
        lake: lake.clone(),
        batch: BatchParams {
            commit_interval: Duration::from_millis(100),
            max_batch_rows: 100,
            ..BatchParams::default()
        },
        supervision: SupervisionParams {
            max_restarts: 20,
            restart_window: Duration::from_secs(60),
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            heartbeat: Duration::from_millis(100),
            // The zombie's frozen commit must not be taken for a stuck actor.
            stuck_timeout: Duration::from_secs(60),
        },
        hygiene: HygieneParams::default(),
        metrics: metrics.clone(),
        faults,
        shutdown: Arc::new(AtomicBool::new(false)),
        subscribers: Subscribers::default(),
    }
}

async fn start(brokers: &str, lake: &Lake, rules: Vec<Rule>) -> Instance {
    let metrics = Metrics::new();
    let faults = Arc::new(Faults::default());
    for r in rules {
        faults.add(r);
    }
    let pipelines = Pipelines::start(vec![params(brokers, lake, &metrics, faults)], None, None)
        .await
        .unwrap();
    Instance { metrics, pipelines }
}

async fn produce(brokers: &str, range: std::ops::Range<usize>) {
    produce_at(brokers, range, "2026-11-24T01:02:03.000001").await
}

/// Orders `o{i}` for `i` in `range`, price 2.0, at `order_time`, round-robin over the
/// partitions.
pub(crate) async fn produce_at(brokers: &str, range: std::ops::Range<usize>, order_time: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for i in range {
        let payload = format!(
            r#"{{"order_id":"o{i}","user_id":"u","product_id":"p","quantity":1,"price":2.0,"order_time":"{order_time}","status":"CREATED"}}"#
        );
        producer
            .send(
                FutureRecord::<(), _>::to(TOPIC)
                    .payload(&payload)
                    .partition(i as i32 % PARTITIONS),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    }
}

/// Every snapshot's recorded offsets, oldest first.
async fn offsets_history(lake: &Lake) -> Vec<Offsets> {
    let table = lake
        .catalog
        .load_unpinned(&lake.ident("orders_processed"))
        .await
        .unwrap();
    let mut snapshots: Vec<_> = table.metadata().snapshots().collect();
    snapshots.sort_by_key(|s| (s.sequence_number(), s.timestamp_ms()));
    snapshots
        .iter()
        .filter_map(|s| s.summary().additional_properties.get(&offsets_key(TOPIC)))
        .map(|json| {
            let raw: BTreeMap<String, i64> = serde_json::from_str(json).unwrap();
            raw.into_iter()
                .map(|(p, o)| (p.parse().unwrap(), o))
                .collect()
        })
        .collect()
}

fn counter(m: &Metrics, name: &str) -> f64 {
    m.registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric())
        .map(|s| s.get_counter().value())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_hand_over_and_fence_a_zombie() {
    init_tracing();
    let (_mock, brokers) = mock_broker(TOPIC, PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    produce(&brokers, 0..400).await;

    // A's first raw commit freezes for 6 s: long past max.poll.interval, so the group drops
    // A and gives B everything while A still holds a batch it read.
    let freeze = Rule {
        point: Point::CommitterBatch,
        action: Action::Delay(6_000),
        times: Some(1),
        marker: None,
        target: Some("orders_processed".into()),
    };
    let a = start(&brokers, &lake, vec![freeze]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = start(&brokers, &lake, Vec::new()).await;
    let l = lake.clone();
    eventually(Duration::from_secs(60), "the first 400 records", || {
        let l = l.clone();
        async move { source_offsets(&l, "orders_processed").await.len() >= 400 }
    })
    .await;
    // The zombie wakes and finds the lake past its batch, and drops it. On a slow machine B
    // may be the one still holding an uncommitted batch when A's lands: then B is fenced. One
    // of the two must be, and either way nothing lands twice (checked below).
    let (am, bm) = (a.metrics.clone(), b.metrics.clone());
    eventually(Duration::from_secs(30), "a batch fenced", || {
        let (am, bm) = (am.clone(), bm.clone());
        async move {
            counter(&am, "shopwatch_fenced_batches_total")
                + counter(&bm, "shopwatch_fenced_batches_total")
                >= 1.0
        }
    })
    .await;
    // Both keep working afterwards: A rejoins and takes a share again.
    produce(&brokers, 400..800).await;
    let l = lake.clone();
    eventually(Duration::from_secs(60), "all 800 records", || {
        let l = l.clone();
        async move { source_offsets(&l, "orders_processed").await.len() >= 800 }
    })
    .await;
    // B leaves cleanly: A takes B's partitions over at the lake's offsets.
    b.pipelines.drain(Duration::from_secs(20)).await;
    produce(&brokers, 800..1000).await;
    let l = lake.clone();
    eventually(Duration::from_secs(60), "all 1000 records", || {
        let l = l.clone();
        async move { source_offsets(&l, "orders_processed").await.len() >= 1000 }
    })
    .await;
    assert_eq!(
        a.metrics.group.snapshot().get(TOPIC),
        Some(&(0..PARTITIONS).collect::<Vec<_>>()),
        "A holds every partition once B is gone"
    );
    a.pipelines.drain(Duration::from_secs(20)).await;

    let rows = source_offsets(&lake, "orders_processed").await;
    assert_unique(&rows);
    assert_eq!(rows.len(), 1000, "every record exactly once");
    let per_partition = rows
        .iter()
        .fold(BTreeMap::<i32, i64>::new(), |mut m, (p, _)| {
            *m.entry(*p).or_default() += 1;
            m
        });
    assert_eq!(per_partition, (0..PARTITIONS).map(|p| (p, 250)).collect());
    let history = offsets_history(&lake).await;
    assert!(history.len() > 4, "{} snapshots", history.len());
    for pair in history.windows(2) {
        for (p, before) in &pair[0] {
            let after = pair[1].get(p).copied().unwrap_or(-1);
            assert!(
                after >= *before,
                "partition {p} moved back: {before} -> {after}"
            );
        }
    }
    assert_eq!(
        history.last().unwrap(),
        &(0..PARTITIONS).map(|p| (p, 250)).collect::<Offsets>()
    );
    let assigned = |m: &Metrics| m.rebalances.with_label_values(&[TOPIC, "assigned"]).get();
    assert!(assigned(&b.metrics) >= 1, "B was given partitions");
    assert!(
        assigned(&a.metrics) > PARTITIONS as u64,
        "A was given partitions again after it was dropped (and B's when B left): {}",
        assigned(&a.metrics)
    );
}

//! The alert detector falls behind a burst (its handler slowed by a fault): the consumer skips
//! deliveries it cannot take, including a partition's last ones, after which that partition
//! delivers nothing more. Every FATAL row must still get its alert, from the raw table, without
//! a restart (found by the production-topology drill: 15 FATAL alerts of one partition were
//! missing until the process restarted).
//!
//! And a detector handed nothing (another instance consumes every partition, and the feed
//! that would bring them has not started: on a takeover it starts after the aggregators'
//! rebuild) neither reports a busy topic silent nor leaves its FATAL rows without alerts
//! (found by the production-topology drill: a NO_DATA while traffic flowed, and the FATAL
//! alerts of the last 40 s missing).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use shopwatch_actors::events::EventKind;
use shopwatch_actors::faults::{Action, Faults, Point, Rule};
use shopwatch_actors::lake::io::scan::read_batches;
use shopwatch_actors::lake::Lake;
use shopwatch_actors::rollup::DETECTOR;
use shopwatch_actors::runtime::Pipelines;
use shopwatch_actors::supervision::SupervisionParams;
use shopwatch_actors::telemetry::Metrics;

use crate::common::{eventually, init_tracing, lake, mock_broker};
use crate::group::{params, PARTITIONS};
use shopwatch_actors::alerts::params::{Params, SilenceParams};

const ERRORS: &str = "errors_topic";
const FATALS: usize = 120;

/// One row of the `alerts` table, as these tests read it.
struct AlertRow {
    kind: String,
    key: String,
    at: i64,
    source: Option<(i32, i64)>,
}

async fn alert_rows(lake: &Lake) -> Vec<AlertRow> {
    use arrow_array::Array;
    let Ok(t) = lake.catalog.load_unpinned(&lake.ident("alerts")).await else {
        return Vec::new();
    };
    let cols = [
        "alert_type",
        "alert_key",
        "alert_timestamp",
        "source_partition",
        "source_offset",
    ];
    let mut out = Vec::new();
    for b in read_batches(&t, Some(&cols), None)
        .await
        .unwrap_or_default()
    {
        let text = |i: usize| {
            b.column(i)
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .unwrap()
                .clone()
        };
        let (kind, key) = (text(0), text(1));
        let at = b
            .column(2)
            .as_any()
            .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
            .unwrap();
        let part = b
            .column(3)
            .as_any()
            .downcast_ref::<arrow_array::Int32Array>()
            .unwrap();
        let off = b
            .column(4)
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap();
        for i in 0..b.num_rows() {
            out.push(AlertRow {
                kind: kind.value(i).to_string(),
                key: key.value(i).to_string(),
                at: at.value(i),
                source: (!part.is_null(i)).then(|| (part.value(i), off.value(i))),
            });
        }
    }
    out
}

/// (partition, offset) of every FATAL_ERROR alert.
async fn fatal_alerts(lake: &Lake) -> BTreeSet<(i32, i64)> {
    alert_rows(lake)
        .await
        .into_iter()
        .filter(|a| a.kind == "FATAL_ERROR")
        .filter_map(|a| a.source)
        .collect()
}

/// When each NO_DATA alert for `topic` was raised (microseconds).
async fn silences(lake: &Lake, topic: &str) -> Vec<i64> {
    alert_rows(lake)
        .await
        .into_iter()
        .filter(|a| a.kind == "NO_DATA" && a.key == topic)
        .map(|a| a.at)
        .collect()
}

/// Send `n` FATAL errors round-robin over the partitions, pausing `pause` after every
/// `every` of them.
async fn send_fatals(brokers: &str, n: usize, every: usize, pause: Duration) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let at = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string();
    for i in 0..n {
        let payload = format!(
            r#"{{"error_id":"e{i}","service_name":"svc","error_message":"boom {i}","severity":"FATAL","error_time":"{at}"}}"#
        );
        producer
            .send(
                FutureRecord::<(), _>::to(ERRORS)
                    .payload(&payload)
                    .partition(i as i32 % PARTITIONS),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        if i % every == every - 1 {
            tokio::time::sleep(pause).await;
        }
    }
}

/// Every (partition, offset) `n` round-robin records land at.
fn every_record(n: usize) -> BTreeSet<(i32, i64)> {
    let per_partition = n as i64 / PARTITIONS as i64;
    (0..PARTITIONS)
        .flat_map(|p| (0..per_partition).map(move |o| (p, o)))
        .collect()
}

/// A consumer of the errors topic committing to `lake`.
fn errors_consumer(
    brokers: &str,
    lake: &Lake,
    metrics: &Metrics,
) -> shopwatch_actors::pipeline::PipelineParams {
    let mut consumer = params(brokers, lake, metrics, Arc::new(Faults::default()));
    consumer.kind = EventKind::Errors;
    consumer.topic = ERRORS.into();
    consumer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detector_handed_nothing_reads_the_lake_before_calling_a_topic_silent() {
    init_tracing();
    let (_mock, brokers) = mock_broker(ERRORS, PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    let metrics = Metrics::new();
    let mut rollup = crate::common::rollup(
        &lake,
        &metrics,
        Vec::new(),
        Arc::new(Faults::default()),
        SupervisionParams::default(),
    );
    const AFTER_S: u64 = 3;
    for (rule, p) in &mut rollup.rules {
        if rule.name == "NO_DATA" {
            *p = Params::Silence(SilenceParams {
                enabled: true,
                after_s: AFTER_S,
            });
        }
    }
    // The consumer commits the raw table but hands the rollup nothing: as far as the detector
    // can tell, another instance consumes every partition, and there is no feed.
    let consumer = errors_consumer(&brokers, &lake, &metrics);
    let pipelines = Pipelines::start(vec![consumer], Some(rollup), None)
        .await
        .unwrap();
    // Three silences' worth of traffic, a record every 50 ms.
    let fatals = 40 * AFTER_S as usize;
    send_fatals(&brokers, fatals, 1, Duration::from_millis(50)).await;
    let sent = chrono::Utc::now().timestamp_micros();
    let l = lake.clone();
    eventually(
        Duration::from_secs(60),
        "a FATAL_ERROR alert for every FATAL row and then a NO_DATA",
        || {
            let l = l.clone();
            async move {
                fatal_alerts(&l).await.len() >= fatals && !silences(&l, ERRORS).await.is_empty()
            }
        },
    )
    .await;
    assert_eq!(fatal_alerts(&lake).await, every_record(fatals));
    // Silent only once the traffic stopped (the raw table moved every 100 ms before).
    let raised = silences(&lake, ERRORS).await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert!(
        raised[0] > sent,
        "NO_DATA raised {} ms before the last record was sent",
        (sent - raised[0]) / 1000
    );
    pipelines.drain(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detector_that_fell_behind_alerts_every_fatal_row_without_a_restart() {
    init_tracing();
    let (_mock, brokers) = mock_broker(ERRORS, PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    let metrics = Metrics::new();
    // The detector handles each message 400 ms late for its first 25: the burst's deliveries
    // pile up past what a slot holds, and the last ones are skipped.
    let faults = Arc::new(Faults::default());
    let mut slow = Rule::at(Point::Handler, Action::Delay(400), Some(25));
    slow.target = Some(DETECTOR.into());
    faults.add(slow);
    let rollup = crate::common::rollup(
        &lake,
        &metrics,
        Vec::new(),
        faults,
        SupervisionParams {
            heartbeat: Duration::from_millis(100),
            stuck_timeout: Duration::from_secs(60),
            ..SupervisionParams::default()
        },
    );
    let mut consumer = errors_consumer(&brokers, &lake, &metrics);
    consumer.subscribers = rollup.slots.subscribers(EventKind::Errors);
    let pipelines = Pipelines::start(vec![consumer], Some(rollup), None)
        .await
        .unwrap();
    // A burst spread over a few commit intervals (100 ms): many small deliveries.
    send_fatals(&brokers, FATALS, 10, Duration::from_millis(60)).await;
    let l = lake.clone();
    eventually(
        Duration::from_secs(60),
        "a FATAL_ERROR alert for every FATAL row",
        || {
            let l = l.clone();
            async move { fatal_alerts(&l).await.len() >= FATALS }
        },
    )
    .await;
    assert_eq!(fatal_alerts(&lake).await, every_record(FATALS));
    pipelines.drain(Duration::from_secs(10)).await;
}

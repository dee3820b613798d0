//! Supervision: panics, errors, poison records, frozen actors and the restart budget, each
//! through the real pipeline (mock broker in-process, real SQLite catalog).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use shopwatch_actors::events::EventKind;
use shopwatch_actors::lake::{HygieneParams, Lake};
use shopwatch_actors::pipeline::faults::{FaultAction, FaultPoint, FaultRule, Faults};
use shopwatch_actors::pipeline::{
    BatchParams, KafkaParams, PipelineParams, PipelineState, SupervisionParams,
};
use shopwatch_actors::runtime::Pipelines;
use shopwatch_actors::telemetry::Metrics;

use crate::common::{assert_unique, eventually, lake, source_offsets};

const N: usize = 300;
const POISON: &str = "poison-marker";

struct Fixture {
    _mock: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    _dir: tempfile::TempDir,
    lake: Lake,
    metrics: Metrics,
    pipelines: Pipelines,
}

async fn start(rules: Vec<FaultRule>, poison_at: Option<usize>) -> Fixture {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("orders_topic", 2, 1).unwrap();
    let brokers = mock.bootstrap_servers();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    for i in 0..N {
        let id = if Some(i) == poison_at {
            format!("{POISON}-{i}")
        } else {
            format!("o{i}")
        };
        let payload = format!(
            r#"{{"order_id":"{id}","user_id":"u","product_id":"p","quantity":1,"price":2.0,"order_time":"2026-11-24T01:02:03.000001","status":"CREATED"}}"#
        );
        producer
            .send(
                FutureRecord::<(), _>::to("orders_topic")
                    .payload(&payload)
                    .partition((i % 2) as i32),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    let metrics = Metrics::new();
    let faults = Arc::new(Faults::default());
    for r in rules {
        faults.add(r);
    }
    let params = PipelineParams {
        kind: EventKind::Orders,
        topic: "orders_topic".into(),
        kafka: KafkaParams {
            brokers,
            group_prefix: "test".into(),
            extra: [("fetch.wait.max.ms".to_string(), "10".to_string())].into(),
        },
        lake: lake.clone(),
        batch: BatchParams {
            commit_interval: Duration::from_millis(100),
            max_batch_rows: 50,
            ..BatchParams::default()
        },
        supervision: SupervisionParams {
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            heartbeat: Duration::from_millis(100),
            stuck_timeout: Duration::from_millis(800),
        },
        hygiene: HygieneParams::default(),
        metrics: metrics.clone(),
        faults,
        shutdown: Arc::new(AtomicBool::new(false)),
        subscribers: Default::default(),
    };
    let pipelines = Pipelines::start(vec![params], None).await.unwrap();
    Fixture {
        _mock: mock,
        _dir: dir,
        lake,
        metrics,
        pipelines,
    }
}

impl Fixture {
    async fn wait_all_rows(&self, expected_raw: usize) {
        let lake = self.lake.clone();
        eventually(Duration::from_secs(60), "every record committed", || {
            let lake = lake.clone();
            async move { source_offsets(&lake, "orders_processed").await.len() >= expected_raw }
        })
        .await;
        let rows = source_offsets(&self.lake, "orders_processed").await;
        assert_eq!(rows.len(), expected_raw);
        assert_unique(&rows);
    }
    fn restarts(&self, actor: &str, reason: &str) -> u64 {
        self.metrics
            .restarts
            .with_label_values(&["orders", actor, reason])
            .get()
    }
}

fn rule(point: FaultPoint, action: FaultAction, times: Option<u32>) -> FaultRule {
    FaultRule {
        point,
        action,
        times,
        marker: None,
        table: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_matrix_restarts_and_loses_nothing() {
    let cases = [
        (
            FaultPoint::ConsumerRecord,
            FaultAction::Panic,
            "consumer",
            "panic",
        ),
        (
            FaultPoint::ConsumerRecord,
            FaultAction::Error,
            "consumer",
            "error",
        ),
        (
            FaultPoint::CommitterBatch,
            FaultAction::Panic,
            "raw_committer",
            "panic",
        ),
        (
            FaultPoint::CommitterBatch,
            FaultAction::Error,
            "raw_committer",
            "error",
        ),
    ];
    for (point, action, actor, reason) in cases {
        let mut r = rule(point, action.clone(), Some(1));
        if point == FaultPoint::CommitterBatch {
            r.table = Some("orders_processed".into());
        }
        let f = start(vec![r], None).await;
        f.wait_all_rows(N).await;
        // The consumer's failure also ends the committer's pending reply, so count at least.
        assert!(
            f.restarts(actor, reason) >= 1,
            "{actor}/{reason}: {}",
            f.metrics.render()
        );
        assert!(
            matches!(f.pipelines.statuses()[0].state, PipelineState::Running),
            "{actor}/{reason}"
        );
        f.pipelines.drain(Duration::from_secs(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_always_panics_is_dead_lettered() {
    let poison = FaultRule {
        point: FaultPoint::ConsumerRecord,
        action: FaultAction::Panic,
        times: None,
        marker: Some(POISON.into()),
        table: None,
    };
    let f = start(vec![poison], Some(17)).await;
    f.wait_all_rows(N - 1).await;
    // Dead letters are committed in batches (here: within the 10 s flush interval).
    let lake = &f.lake;
    eventually(
        Duration::from_secs(30),
        "poison record in dead_letters",
        || async { !source_offsets(lake, "dead_letters").await.is_empty() },
    )
    .await;
    let dl = source_offsets(&f.lake, "dead_letters").await;
    assert_eq!(dl, vec![(1, 8)], "record 17 is partition 1 offset 8");
    assert_eq!(
        f.restarts("consumer", "panic"),
        2,
        "two failures, then dead-lettered"
    );
    assert!(matches!(
        f.pipelines.statuses()[0].state,
        PipelineState::Running
    ));
    f.pipelines.drain(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_actor_is_detected_and_restarted() {
    let freeze = rule(
        FaultPoint::CommitterBatch,
        FaultAction::Freeze(Duration::from_secs(30)),
        Some(1),
    );
    let f = start(vec![freeze], None).await;
    f.wait_all_rows(N).await;
    let stuck =
        || f.restarts("raw_committer", "stuck") + f.restarts("dead_letter_committer", "stuck");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while stuck() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        f.restarts("raw_committer", "stuck") + f.restarts("dead_letter_committer", "stuck") >= 1,
        "{}",
        f.metrics.render()
    );
    f.pipelines.drain(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausting_the_restart_budget_fails_the_pipeline() {
    let always = rule(FaultPoint::CommitterBatch, FaultAction::Panic, None);
    let f = start(vec![always], None).await;
    let pipelines = &f.pipelines;
    eventually(
        Duration::from_secs(30),
        "pipeline marked failed",
        || async { pipelines.all_failed() },
    )
    .await;
    let PipelineState::Failed(reason) = &f.pipelines.statuses()[0].state else {
        unreachable!()
    };
    assert!(reason.contains("restart budget"), "{reason}");
    assert_eq!(f.pipelines.statuses()[0].restarts, 5);
}

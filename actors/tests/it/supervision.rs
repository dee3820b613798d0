//! Supervision: panics, errors, poison records, frozen actors and the restart budget, each
//! through the real pipeline (mock broker in-process, real SQLite catalog).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use shopwatch_actors::events::EventKind;
use shopwatch_actors::faults::{Action, Faults, Point, Rule};
use shopwatch_actors::kpis::REGISTRY;
use shopwatch_actors::lake::{HygieneParams, Lake};
use shopwatch_actors::pipeline::{BatchParams, KafkaParams, PipelineParams};
use shopwatch_actors::rollup::{RollupParams, RollupSlots};
use shopwatch_actors::runtime::Pipelines;
use shopwatch_actors::supervision::{PipelineState, SupervisionParams};
use shopwatch_actors::telemetry::Metrics;
use shopwatch_actors::windows::clock::ClockParams;
use shopwatch_actors::windows::{EngineParams, Windowing};

use crate::common::{assert_unique, eventually, lake, mock_broker, source_offsets};

const N: usize = 300;
const POISON: &str = "poison-marker";

struct Fixture {
    /// Holds the in-process mock cluster (it lives as long as its client).
    _mock: FutureProducer,
    _dir: tempfile::TempDir,
    lake: Lake,
    metrics: Metrics,
    pipelines: Pipelines,
}

async fn start(rules: Vec<Rule>, poison_at: Option<usize>) -> Fixture {
    start_with(rules, poison_at, false).await
}

fn supervision() -> SupervisionParams {
    SupervisionParams {
        max_restarts: 5,
        restart_window: Duration::from_secs(60),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        heartbeat: Duration::from_millis(100),
        stuck_timeout: Duration::from_millis(800),
    }
}

/// The rollup group over the lake, every registered KPI and rule, ticking every 100 ms.
fn rollup(lake: &Lake, metrics: &Metrics, faults: Arc<Faults>, slots: RollupSlots) -> RollupParams {
    const S: i64 = 1_000_000;
    let kpis = REGISTRY
        .iter()
        .map(|k| {
            let w = k.window();
            let windowing = Windowing::new(w.size_s as i64 * S, w.slide_s as i64 * S).unwrap();
            let clock = ClockParams {
                lateness: 10 * S,
                idle_timeout: 30 * S,
            };
            (
                *k,
                EngineParams {
                    windowing,
                    clock,
                    max_skew: 300 * S,
                    clock_tolerance: 2 * S,
                },
            )
        })
        .collect();
    RollupParams {
        slots,
        ..crate::common::rollup(lake, metrics, kpis, faults, supervision())
    }
}

async fn start_with(rules: Vec<Rule>, poison_at: Option<usize>, with_rollup: bool) -> Fixture {
    let (mock, brokers) = mock_broker("orders_topic", 2);
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
    let slots = RollupSlots::new(&REGISTRY);
    let params = PipelineParams {
        kind: EventKind::Orders,
        topic: "orders_topic".into(),
        kafka: KafkaParams {
            brokers,
            group: "test".into(),
            instance: "test".into(),
            start: Default::default(),
            // The mock cluster waits a session timeout less 1 s before it assigns a restarted
            // consumer (a real broker hands over as soon as the old member leaves).
            extra: [
                ("fetch.wait.max.ms", "10"),
                ("session.timeout.ms", "1500"),
                ("heartbeat.interval.ms", "500"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
        },
        lake: lake.clone(),
        batch: BatchParams {
            commit_interval: Duration::from_millis(100),
            max_batch_rows: 50,
            // Dead letters flush within a second, so their committer sees batches in tests.
            dead_letter_flush_interval: Duration::from_millis(150),
            ..BatchParams::default()
        },
        supervision: supervision(),
        hygiene: HygieneParams::default(),
        metrics: metrics.clone(),
        faults: faults.clone(),
        shutdown: Arc::new(AtomicBool::new(false)),
        subscribers: slots.subscribers(EventKind::Orders),
    };
    let rollup = with_rollup.then(|| rollup(&lake, &metrics, faults, slots));
    let pipelines = Pipelines::start(vec![params], rollup, None).await.unwrap();
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
        self.restarts_in("orders", actor, reason)
    }
    fn restarts_in(&self, group: &str, actor: &str, reason: &str) -> u64 {
        self.metrics
            .restarts
            .with_label_values(&[group, actor, reason])
            .get()
    }
    fn state_of(&self, group: &str) -> Option<PipelineState> {
        self.pipelines
            .statuses()
            .into_iter()
            .find(|s| s.pipeline == group)
            .map(|s| s.state)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_matrix_restarts_and_loses_nothing() {
    let cases = [
        (Point::ConsumerRecord, Action::Panic, "consumer", "panic"),
        (Point::ConsumerRecord, Action::Error, "consumer", "error"),
        (
            Point::CommitterBatch,
            Action::Panic,
            "raw_committer",
            "panic",
        ),
        (
            Point::CommitterBatch,
            Action::Error,
            "raw_committer",
            "error",
        ),
    ];
    for (point, action, actor, reason) in cases {
        let mut r = Rule::at(point, action.clone(), Some(1));
        if point == Point::CommitterBatch {
            r.target = Some("orders_processed".into());
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
    let poison = Rule {
        point: Point::ConsumerRecord,
        action: Action::Panic,
        times: None,
        marker: Some(POISON.into()),
        target: None,
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
    let freeze = Rule::at(Point::CommitterBatch, Action::Delay(30_000), Some(1));
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
    let always = Rule::at(Point::CommitterBatch, Action::Panic, None);
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

/// What a fault must lead to.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// The group restarts (counted with this reason) and runs again.
    Restart(&'static str),
    /// The group stops for good, with the injected reason in its status (what /readyz shows).
    Stop,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_matrix_for_every_actor_kind() {
    use Action::*;
    use Expect::*;
    let freeze = || Delay(30_000);
    // (fault point, target, action, group, actor, expected)
    let mut cases: Vec<(Point, Option<&str>, Action, &str, &str, Expect)> = vec![
        (
            Point::ConsumerRecord,
            None,
            freeze(),
            "orders",
            "consumer",
            Restart("stuck"),
        ),
        (
            Point::ConsumerRecord,
            None,
            Fatal,
            "orders",
            "consumer",
            Stop,
        ),
        (
            Point::CommitterBatch,
            Some("orders_processed"),
            Fatal,
            "orders",
            "raw_committer",
            Stop,
        ),
    ];
    for (action, expect) in [
        (Panic, Restart("panic")),
        (Error, Restart("error")),
        (freeze(), Restart("stuck")),
        (Fatal, Stop),
    ] {
        cases.push((
            Point::CommitterBatch,
            Some("dead_letters"),
            action.clone(),
            "orders",
            "dead_letter_committer",
            expect,
        ));
        for role in ["orders_revenue", "detector"] {
            cases.push((
                Point::Handler,
                Some(role),
                action.clone(),
                "rollup",
                role,
                expect,
            ));
        }
    }
    for (point, target, action, group, actor, expect) in cases {
        let case = format!("{actor} × {action:?}");
        let f = start_with(
            vec![Rule {
                point,
                action,
                times: Some(1),
                marker: None,
                target: target.map(str::to_string),
            }],
            None,
            true,
        )
        .await;
        match expect {
            Restart(reason) => {
                eventually(Duration::from_secs(30), &case, || async {
                    f.restarts_in(group, actor, reason) >= 1
                        && f.state_of(group) == Some(PipelineState::Running)
                })
                .await;
                if group == "orders" {
                    f.wait_all_rows(N).await;
                }
            }
            Stop => {
                eventually(Duration::from_secs(30), &case, || async {
                    matches!(f.state_of(group), Some(PipelineState::Failed(_)))
                })
                .await;
                let Some(PipelineState::Failed(reason)) = f.state_of(group) else {
                    unreachable!()
                };
                assert!(reason.contains("injected fatal"), "{case}: {reason}");
                let restarts: u64 = ["panic", "error", "stuck", "fatal"]
                    .iter()
                    .map(|r| f.restarts_in(group, actor, r))
                    .sum();
                assert_eq!(restarts, 0, "{case}: a fatal failure is not restarted");
                // The other groups keep running (or come up: the rollup rebuilds at start).
                let other = if group == "orders" {
                    "rollup"
                } else {
                    "orders"
                };
                eventually(
                    Duration::from_secs(30),
                    &format!("{case}: {other} runs"),
                    || async { f.state_of(other) == Some(PipelineState::Running) },
                )
                .await;
                assert!(
                    matches!(f.state_of(group), Some(PipelineState::Failed(_))),
                    "{case}"
                );
            }
        }
        f.pipelines.drain(Duration::from_secs(10)).await;
    }
}

/// A group behind the election whose start finds another owner's commit (`deposed`) or fails
/// on its own (`transient`) while this instance believes it owns.
struct Contested {
    ownership: shopwatch_actors::handoff::Ownership,
    deposed: bool,
    starts: Arc<std::sync::atomic::AtomicU32>,
}

#[async_trait::async_trait]
impl shopwatch_actors::supervision::ChildSpecs for Contested {
    async fn spawn(
        &self,
        _: &mut shopwatch_actors::supervision::Spawner,
    ) -> Result<(), shopwatch_actors::error::Error> {
        use shopwatch_actors::error::Error;
        self.starts
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(if self.deposed {
            Error::Commit(shopwatch_actors::lake::CommitError::Deposed {
                table: "alerts".into(),
                detail: "rollup state is at seq 7".into(),
                by_this_process: false,
            })
        } else {
            Error::Transient("catalog unreachable".into())
        })
    }

    fn standby(&self) -> bool {
        !self.ownership.is_owner()
    }

    fn step_down(&self) -> bool {
        self.ownership.step_down()
    }

    fn failed(&self) {
        self.ownership.resign();
    }
}

/// Two instances that both believe they own: the deposed one stands by and asks the election
/// again as often as it is deposed, never spending its restart budget (on Tansu under load the
/// budget used to run out and the rollup stopped for good on the instance the election then
/// chose). A group that does fail for good resigns, so another instance can own.
#[tokio::test]
async fn a_deposed_group_steps_down_without_spending_its_budget_and_a_failed_one_resigns() {
    use shopwatch_actors::handoff::Ownership;
    use shopwatch_actors::supervision::{StatusHandle, Supervisor, SupervisorArgs};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;
    let far = || Instant::now() + Duration::from_secs(600);
    for deposed in [true, false] {
        let ownership = Ownership::elected();
        ownership.set(true, far());
        let starts = Arc::new(AtomicU32::new(0));
        let status = StatusHandle::new("rollup", "*");
        let metrics = Metrics::new();
        let (supervisor, handle) = ractor::Actor::spawn(
            None,
            Supervisor,
            SupervisorArgs {
                name: "rollup".into(),
                specs: Arc::new(Contested {
                    ownership: ownership.clone(),
                    deposed,
                    starts: starts.clone(),
                }),
                params: supervision(),
                status: status.clone(),
                metrics: metrics.clone(),
            },
        )
        .await
        .unwrap();
        let state = || status.snapshot().map(|s| s.state);
        if deposed {
            // Elected again after every step-down: twice the budget of five.
            for round in 1..=10u32 {
                eventually(Duration::from_secs(10), "stood by", || async {
                    starts.load(Ordering::SeqCst) == round
                        && state() == Some(PipelineState::Standby)
                })
                .await;
                assert!(!ownership.is_owner(), "stepped down at once");
                assert!(ownership.take_deposed(), "the election is told to rejoin");
                ownership.set(true, far());
            }
            assert!(!ownership.resigned());
            let restarts = metrics
                .restarts
                .with_label_values(&["rollup", "start", "start"])
                .get();
            assert!(restarts >= 9, "each step-down counted: {restarts}");
        } else {
            eventually(Duration::from_secs(10), "failed over budget", || async {
                matches!(state(), Some(PipelineState::Failed(_)))
            })
            .await;
            assert_eq!(
                starts.load(Ordering::SeqCst),
                6,
                "the first start and 5 restarts"
            );
            assert!(ownership.resigned() && !ownership.is_owner());
            ownership.set(true, far());
            assert!(
                !ownership.is_owner(),
                "never the owner again in this process"
            );
        }
        supervisor.stop(None);
        let _ = handle.await;
    }
}

//! Fixture cases for the evaluator: streams of closed windows, events and silences with the
//! alerts each step must produce, run straight through and across a checkpoint restore.

use super::*;
use crate::alerts::rules;
use crate::events::ErrorEvent;
use crate::kpis::by_table;
use crate::schema::columns::Value;
use crate::schema::Source;

const MIN: Micros = 60_000_000;
const HALF: Micros = 30_000_000;
const T0: Micros = 1_764_000_000 * 1_000_000;

#[derive(Clone)]
enum Step {
    /// Closed windows of a KPI table up to `until`, with (window end, values) rows.
    Windows(&'static str, Micros, Vec<(Micros, Vec<Value>)>),
    /// Error events: (partition, offset, service, severity).
    Errors(Vec<(i32, i64, &'static str, &'static str)>),
    /// A silence check at `now` with (topic, position, last moved).
    Tick(Micros, Vec<(&'static str, i64, Micros)>),
}

fn orders(n: i64) -> Vec<Value> {
    vec![Value::Long(n), Value::Double(n as f64 * 10.0)]
}

fn errors(service: &str, n: i64) -> Vec<Value> {
    vec![
        Value::Str(service.into()),
        Value::Str("ERROR".into()),
        Value::Long(n),
    ]
}

fn traffic(orders: i64, clicks: i64, errors: i64) -> Vec<Value> {
    let t = orders + clicks;
    let rate = if t > 0 {
        Value::Double(errors as f64 / t as f64)
    } else {
        Value::Null
    };
    vec![
        Value::Long(orders),
        Value::Long(clicks),
        Value::Long(0),
        Value::Long(errors),
        Value::Long(0),
        rate,
    ]
}

/// Window ends on the 30-second lattice: window `i` ends at T0 + i × 30 s.
fn end(i: i64) -> Micros {
    T0 + i * HALF
}

/// Closed windows of `table` up to `until`, from (window end, values) rows.
fn closed(table: &str, until: Micros, rows: &[(Micros, Vec<Value>)]) -> ClosedWindows {
    ClosedWindows {
        kpi: by_table(table).unwrap(),
        until,
        size: MIN,
        slide: HALF,
        rows: rows
            .iter()
            .map(|(end, values)| KpiRow {
                start: end - MIN,
                end: *end,
                values: values.clone(),
            })
            .collect(),
    }
}

fn run(steps: &[Step], state: EvalState, rules: RuleSet) -> (Vec<Vec<String>>, EvalState) {
    let mut e = Evaluator::new(rules, state);
    let mut out = Vec::new();
    for step in steps {
        let alerts = match step {
            Step::Windows(table, until, rows) => e.on_windows(&closed(table, *until, rows)),
            Step::Errors(v) => {
                let rows = Rows::Errors(
                    v.iter()
                        .map(|(p, o, service, severity)| {
                            (
                                Source {
                                    partition: *p,
                                    offset: *o,
                                    ingested_at: T0,
                                },
                                ErrorEvent {
                                    error_id: format!("e{o}").into(),
                                    service_name: service.to_string().into(),
                                    error_message: "boom".into(),
                                    severity,
                                    error_ts: T0,
                                },
                            )
                        })
                        .collect(),
                );
                e.on_events("errors_topic", EventKind::Errors, &rows, &|_, _| true)
            }
            Step::Tick(now, topics) => {
                let activity: Vec<Activity> = topics
                    .iter()
                    .map(|(t, p, at)| Activity {
                        topic: t.to_string(),
                        position: *p,
                        last_moved: *at,
                    })
                    .collect();
                let due = e.silent_due(&activity, *now);
                let alerts = e.on_silence(&activity, *now);
                // What the detector asks the lake about is exactly what would fire.
                let mut fired: Vec<String> = alerts.iter().map(|a| a.alert_key.clone()).collect();
                fired.sort();
                fired.dedup();
                assert_eq!(due, fired, "silent_due before on_silence at {now}");
                alerts
            }
        };
        out.push(
            alerts
                .iter()
                .map(|a| format!("{} {}", a.alert_type, a.alert_key))
                .collect(),
        );
    }
    (out, e.state())
}

/// (name, steps, alerts per step)
fn fixtures() -> Vec<(&'static str, Vec<Step>, Vec<Vec<&'static str>>)> {
    let steady: Vec<(Micros, Vec<Value>)> =
        (1..=12).map(|i| (end(i), orders(10 + i % 2))).collect();
    vec![
        (
            "fatal errors alert once each, others not at all",
            vec![Step::Errors(vec![
                (0, 1, "pay", "FATAL"),
                (0, 2, "pay", "ERROR"),
                (1, 5, "cart", "FATAL"),
            ])],
            vec![vec!["FATAL_ERROR pay", "FATAL_ERROR cart"]],
        ),
        (
            "steady orders, then a drop fires orders and revenue once",
            vec![
                Step::Windows("orders_revenue_per_minute", end(12), steady.clone()),
                Step::Windows(
                    "orders_revenue_per_minute",
                    end(13),
                    vec![(end(13), orders(1))],
                ),
                Step::Windows(
                    "orders_revenue_per_minute",
                    end(14),
                    vec![(end(14), orders(1))],
                ),
            ],
            vec![vec![], vec!["ORDERS_DROP all", "REVENUE_DROP all"], vec![]],
        ),
        (
            "a window without a row counts as zero (the silent minute drops)",
            vec![
                Step::Windows("orders_revenue_per_minute", end(12), steady.clone()),
                // Up to end(14): windows 13 and 14 have no rows, so they are zeros.
                Step::Windows("orders_revenue_per_minute", end(14), vec![]),
            ],
            vec![vec![], vec!["ORDERS_DROP all", "REVENUE_DROP all"]],
        ),
        (
            "a spike in one service alerts that service only",
            vec![
                Step::Windows(
                    "errors_per_minute",
                    end(12),
                    (1..=12)
                        .flat_map(|i| {
                            [
                                (end(i), errors("pay", 2 + i % 2)),
                                (end(i), errors("cart", 3)),
                            ]
                        })
                        .collect(),
                ),
                Step::Windows(
                    "errors_per_minute",
                    end(13),
                    vec![(end(13), errors("pay", 40)), (end(13), errors("cart", 3))],
                ),
            ],
            vec![vec![], vec!["ERROR_SPIKE pay"]],
        ),
        (
            "error rate above the threshold with enough traffic, once",
            vec![
                Step::Windows(
                    "traffic_per_minute",
                    end(1),
                    vec![(end(1), traffic(100, 100, 2))],
                ),
                Step::Windows(
                    "traffic_per_minute",
                    end(2),
                    vec![(end(2), traffic(100, 100, 60))],
                ),
                // Too little traffic to mean anything.
                Step::Windows(
                    "traffic_per_minute",
                    end(3),
                    vec![(end(3), traffic(5, 5, 9))],
                ),
            ],
            vec![vec![], vec!["HIGH_ERROR_RATE all"], vec![]],
        ),
        (
            "a silent topic alerts once per silence",
            vec![
                Step::Tick(T0 + 60 * 1_000_000, vec![("orders_topic", 10, T0)]),
                Step::Tick(T0 + 121 * 1_000_000, vec![("orders_topic", 10, T0)]),
                Step::Tick(T0 + 200 * 1_000_000, vec![("orders_topic", 10, T0)]),
                Step::Tick(
                    T0 + 400 * 1_000_000,
                    vec![("orders_topic", 11, T0 + 210 * 1_000_000)],
                ),
            ],
            vec![
                vec![],
                vec!["NO_DATA orders_topic"],
                vec![],
                vec!["NO_DATA orders_topic"],
            ],
        ),
        (
            "windows already evaluated are not evaluated again",
            vec![
                Step::Windows("orders_revenue_per_minute", end(12), steady.clone()),
                Step::Windows(
                    "orders_revenue_per_minute",
                    end(13),
                    vec![(end(13), orders(1))],
                ),
                Step::Windows(
                    "orders_revenue_per_minute",
                    end(13),
                    vec![(end(13), orders(1))],
                ),
            ],
            vec![vec![], vec!["ORDERS_DROP all", "REVENUE_DROP all"], vec![]],
        ),
    ]
}

#[test]
fn fixtures_straight_through_and_across_every_restart() {
    for (name, steps, want) in fixtures() {
        let (got, _) = run(&steps, EvalState::default(), rules::defaults());
        let got: Vec<Vec<&str>> = got
            .iter()
            .map(|v| v.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(got, want, "{name}");
        // A restart after any step, from the state a commit would have recorded (through
        // JSON, as the alerts table stores it), gives the same alerts afterwards.
        for cut in 0..steps.len() {
            let (_, state) = run(&steps[..cut], EvalState::default(), rules::defaults());
            let json = serde_json::to_string(&state).unwrap();
            let restored: EvalState = serde_json::from_str(&json).unwrap();
            let (after, _) = run(&steps[cut..], restored, rules::defaults());
            let after: Vec<Vec<&str>> = after
                .iter()
                .map(|v| v.iter().map(String::as_str).collect())
                .collect();
            assert_eq!(after, want[cut..], "{name}: restart after step {cut}");
        }
    }
}

#[test]
fn disabled_rules_stay_quiet() {
    let off: RuleSet = rules::defaults()
        .into_iter()
        .map(|(r, p)| {
            let p = match p {
                Params::Flag(_) => Params::Flag(false),
                Params::Anomaly(a) => Params::Anomaly(AnomalyParams {
                    enabled: false,
                    ..a
                }),
                Params::Threshold(t) => Params::Threshold(ThresholdParams {
                    enabled: false,
                    ..t
                }),
                Params::Silence(s) => Params::Silence(SilenceParams {
                    enabled: false,
                    ..s
                }),
            };
            (r, p)
        })
        .collect();
    for (name, steps, _) in fixtures() {
        let (got, _) = run(&steps, EvalState::default(), off.clone());
        assert!(got.iter().all(Vec::is_empty), "{name}: {got:?}");
    }
}

#[test]
fn ids_are_the_same_on_replay_and_descriptions_name_the_window() {
    let steady: Vec<(Micros, Vec<Value>)> = (1..=8).map(|i| (end(i), orders(10))).collect();
    let closed =
        |until, rows: Vec<(Micros, Vec<Value>)>| closed("orders_revenue_per_minute", until, &rows);
    let mut a = Evaluator::new(rules::defaults(), EvalState::default());
    let mut b = Evaluator::new(rules::defaults(), EvalState::default());
    a.on_windows(&closed(end(8), steady.clone()));
    b.on_windows(&closed(end(8), steady));
    let x = a.on_windows(&closed(end(9), vec![(end(9), orders(2))]));
    let y = b.on_windows(&closed(end(9), vec![(end(9), orders(2))]));
    assert_eq!(x, y);
    assert_eq!(
        x[0].alert_id,
        alert_id("ORDERS_DROP", "all", &(end(9) - MIN).to_string())
    );
    let window = format!(
        "Orders dropped to 2 in window {} – {}",
        rules::hm(end(9) - MIN),
        rules::hm(end(9))
    );
    assert!(
        x[0].description.starts_with(&window),
        "{}",
        x[0].description
    );
    assert!(
        x[1].description.starts_with("Revenue dropped to $20.00"),
        "{}",
        x[1].description
    );
}

#[test]
fn checkpoints_of_earlier_versions_still_read() {
    let old = r#"{"fatal_from":{"0":5},"evaluated":{"traffic_per_minute":100},
        "series":{"ORDERS_DROP":{"values":[1.0,2.0],"firing":false},
                  "ERROR_SPIKE|pay":{"values":[3.0],"firing":true}},
        "rate_firing":true,"no_data":{"orders_topic":7}}"#;
    let state: EvalState = serde_json::from_str(old).unwrap();
    let e = Evaluator::new(rules::defaults(), state);
    let s = e.state();
    assert_eq!(s.evaluated["traffic_per_minute"], 100);
    assert_eq!(s.no_data["orders_topic"], 7);
    assert!(s.series[&SeriesKey::new("ERROR_SPIKE", Some("pay"))].firing);
    assert!(s.series[&SeriesKey::new("HIGH_ERROR_RATE", None)].firing);
    let json = serde_json::to_value(&s).unwrap();
    assert!(json["series"].get("ERROR_SPIKE|pay").is_some(), "{json}");
    assert!(json.get("rate_firing").is_none());
}

//! Partial windows against folding every event: for every KPI of the registry, a random
//! stream delivered in batches (several partitions, disorder, late events, skewed clocks)
//! gives the same emitted windows whether the owner folds each event or merges the per-pane
//! partials of each batch after they went through the partials table's JSON.

use proptest::prelude::*;

use super::{KpiRow, REGISTRY};
use crate::events::{Click, ErrorEvent, EventKind, Micros, Order, DEVICE_TYPES, SEVERITIES};
use crate::schema::columns::Value;
use crate::schema::{ClickRows, ErrorRows, OrderRows, Rows, Source};
use crate::windows::clock::{AlwaysDrained, ClockParams};
use crate::windows::{EngineParams, Windowing};

const S: Micros = 1_000_000;

#[derive(Clone, Debug)]
struct Ev {
    kind: u8,
    partition: i32,
    event_time: Micros,
    user: u8,
    product: u8,
    url: u8,
}

/// Batches of events, each with the processing time it is delivered at.
fn batches() -> impl Strategy<Value = Vec<(Micros, Vec<Ev>)>> {
    let ev = (
        0..3u8,
        0..3i32,
        prop_oneof![90 => -15 * S..5 * S, 6 => -160 * S..-140 * S, 4 => 590 * S..610 * S],
        0..12u8,
        0..5u8,
        0..5u8,
    )
        .prop_map(|(kind, partition, delay, user, product, url)| Ev {
            kind,
            partition,
            event_time: delay,
            user,
            product,
            url,
        });
    let batch = (
        prop_oneof![8 => 0..3 * S, 1 => 40 * S..200 * S],
        proptest::collection::vec(ev, 0..30),
    );
    proptest::collection::vec(batch, 1..30).prop_map(|bs| {
        let mut now = 1_700_000_000 * S;
        bs.into_iter()
            .map(|(gap, evs)| {
                now += gap;
                let evs = evs
                    .into_iter()
                    .map(|mut e| {
                        e.event_time += now;
                        e
                    })
                    .collect();
                (now, evs)
            })
            .collect()
    })
}

const URLS: [&str; 5] = ["/", "/product/1", "/cart", "/checkout", "/about"];

/// The batch's rows of `kind`, offsets continuing from `next` per partition.
fn rows(kind: EventKind, evs: &[Ev], now: Micros, next: &mut [i64; 3]) -> Rows {
    let mut o = OrderRows::with_capacity(0);
    let mut c = ClickRows::with_capacity(0);
    let mut r = ErrorRows::with_capacity(0);
    for e in evs.iter().filter(|e| e.kind as usize == kind as usize) {
        let user = format!("u{}", e.user);
        let source = Source {
            partition: e.partition,
            offset: next[e.partition as usize],
            ingested_at: now,
        };
        next[e.partition as usize] += 1;
        match kind {
            EventKind::Orders => o.push(
                source,
                &Order {
                    order_id: "o".into(),
                    user_id: user.as_str().into(),
                    product_id: format!("p{}", e.product).as_str().into(),
                    quantity: 1 + i32::from(e.product),
                    price: 0.1 + f64::from(e.user) * 1.37,
                    status: "CREATED",
                    order_ts: e.event_time,
                },
            ),
            EventKind::Clicks => c.push(
                source,
                &Click {
                    click_id: "c".into(),
                    user_id: user.as_str().into(),
                    url: URLS[e.url as usize].into(),
                    device_type: DEVICE_TYPES[e.product as usize % 3],
                    click_ts: e.event_time,
                },
            ),
            EventKind::Errors => r.push(
                source,
                &ErrorEvent {
                    error_id: "e".into(),
                    service_name: format!("s{}", e.product % 2).as_str().into(),
                    error_message: "m".into(),
                    severity: SEVERITIES[e.url as usize % 3],
                    error_ts: e.event_time,
                },
            ),
        }
    }
    match kind {
        EventKind::Orders => Rows::Orders(o),
        EventKind::Clicks => Rows::Clicks(c),
        EventKind::Errors => Rows::Errors(r),
    }
}

/// Rows with doubles rounded: sums of the same numbers in another order differ in the last bits.
fn rounded(rows: Vec<KpiRow>) -> Vec<(Micros, Micros, Vec<String>)> {
    rows.into_iter()
        .map(|r| {
            let values = r
                .values
                .iter()
                .map(|v| match v {
                    Value::Double(d) => format!("{d:.6}"),
                    v => format!("{v:?}"),
                })
                .collect();
            (r.start, r.end, values)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn merging_partials_emits_what_folding_every_event_emits(input in batches()) {
        for kpi in REGISTRY.iter() {
            let d = kpi.window();
            let params = EngineParams {
                windowing: Windowing::new(d.size_s as i64 * S, d.slide_s as i64 * S).unwrap(),
                clock: ClockParams { lateness: 10 * S, idle_timeout: 30 * S },
                max_skew: 300 * S,
                clock_tolerance: 2 * S,
            };
            let mut direct = kpi.engine(params);
            let mut merged = kpi.engine(params);
            let mut parts = kpi.parts(params);
            let (mut by_event, mut by_part) = (Vec::new(), Vec::new());
            let mut next = vec![[0i64; 3]; kpi.inputs().len()];
            for (now, evs) in &input {
                for (i, kind) in kpi.inputs().iter().enumerate() {
                    let start = next[i];
                    let rows = rows(*kind, evs, *now, &mut next[i]);
                    let a = direct.fold_rows(i, &rows, *now, &|_, _| true);
                    let folded = parts.fold_rows(i, &rows, &|_, _| true);
                    prop_assert_eq!(folded.skewed, a.skewed);
                    let mut table = Vec::new();
                    for p in 0..3 {
                        for out in parts.take(i, p).unwrap() {
                            table.push(out.row(kpi.name(), "t", p, (start[p as usize], next[i][p as usize])));
                        }
                    }
                    let b = merged.fold_parts(i, &table, *now, &|_, _| true).unwrap();
                    prop_assert_eq!((b.folded, b.late, b.dropped, b.ahead), (a.folded, a.late, a.dropped, a.ahead), "{}", kpi.name());
                }
                if let Some(e) = direct.advance(*now, &AlwaysDrained) {
                    by_event.extend(e.rows);
                }
                if let Some(e) = merged.advance(*now, &AlwaysDrained) {
                    by_part.extend(e.rows);
                }
                prop_assert_eq!(merged.watermark(), direct.watermark());
                prop_assert_eq!(rounded(merged.open_rows()), rounded(direct.open_rows()), "{} open", kpi.name());
                // A merged pane rebuilds from its range's start: at or before its first event.
                let (m, d) = (merged.replay_offsets(), direct.replay_offsets());
                prop_assert_eq!(m.keys().collect::<Vec<_>>(), d.keys().collect::<Vec<_>>());
                prop_assert!(m.iter().all(|(k, o)| d.get(k).is_some_and(|x| o <= x)));
            }
            prop_assert_eq!(rounded(by_part), rounded(by_event), "{}", kpi.name());
        }
    }
}

/// A partial row that was tampered with (an accumulator that is not this KPI's JSON, a negative
/// count) stops the merge with an error naming the KPI and the range; it is never skipped or
/// counted as a huge number.
#[test]
fn a_tampered_partial_row_is_an_error_naming_the_kpi_and_range() {
    use crate::schema::partials::PartRow;
    let now = 1_700_000_000 * S;
    let evs: Vec<Ev> = (0..4)
        .map(|u| Ev {
            kind: 0,
            partition: 0,
            event_time: now - S,
            user: u,
            product: 1,
            url: 0,
        })
        .collect();
    let tampers: [(&str, fn(&mut PartRow)); 3] = [
        ("not JSON", |r| r.acc = "{".into()),
        ("events -5", |r| r.events = -5),
        ("ahead -1", |r| r.ahead = -1),
    ];
    let mut checked = 0;
    for kpi in REGISTRY.iter() {
        let Some(i) = kpi.inputs().iter().position(|k| *k == EventKind::Orders) else {
            continue;
        };
        let d = kpi.window();
        let params = EngineParams {
            windowing: Windowing::new(d.size_s as i64 * S, d.slide_s as i64 * S).unwrap(),
            clock: ClockParams {
                lateness: 10 * S,
                idle_timeout: 30 * S,
            },
            max_skew: 300 * S,
            clock_tolerance: 2 * S,
        };
        let mut parts = kpi.parts(params);
        parts.fold_rows(
            i,
            &rows(EventKind::Orders, &evs, now, &mut [0; 3]),
            &|_, _| true,
        );
        let good: Vec<PartRow> = parts
            .take(i, 0)
            .unwrap()
            .into_iter()
            .map(|out| out.row(kpi.name(), "t", 0, (0, 4)))
            .collect();
        let merged = kpi
            .engine(params)
            .fold_parts(i, &good, now, &|_, _| true)
            .unwrap();
        assert_eq!(merged.folded, 4, "{}", kpi.name());
        for (what, tamper) in tampers {
            let mut bad = good.clone();
            tamper(&mut bad[0]);
            let err = kpi
                .engine(params)
                .fold_parts(i, &bad, now, &|_, _| true)
                .unwrap_err();
            assert!(
                err.starts_with(kpi.name()) && err.contains("partition 0, offsets 0..4"),
                "{what}: {err}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 2, "KPIs of orders checked: {checked}");
}

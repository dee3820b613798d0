//! Property tests: random streams (disorder within lateness, late events, clock skew, idle
//! gaps, crashes) against a brute-force recount.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use proptest::prelude::*;

use super::active_users::UsersAcc;
use super::orders_revenue::OrdersAcc;
use crate::events::{Click, Micros, Order};
use crate::windows::clock::ClockParams;
use crate::windows::{Engine, EngineParams, Fact, Fold, Input, Windowing};

const S: Micros = 1_000_000;

#[derive(Clone, Debug)]
struct Ev {
    partition: i32,
    offset: i64,
    now: Micros,
    event_time: Micros,
    user: u8,
    total: i64,
}

fn stream() -> impl Strategy<Value = Vec<Ev>> {
    // (processing gap, kind of delay, jitter, partition, user, total)
    let step = (
        prop_oneof![8 => 0..2 * S, 1 => 40 * S..200 * S],
        prop_oneof![90 => Just(0u8), 6 => Just(1u8), 4 => Just(2u8)],
        -15 * S..5 * S,
        0..3i32,
        0..20u8,
        1..50i64,
    );
    proptest::collection::vec(step, 1..250).prop_map(|steps| {
        let mut now = 1_700_000_000 * S;
        let mut next_offset = [0i64; 3];
        steps
            .into_iter()
            .map(|(gap, delay, jitter, partition, user, total)| {
                now += gap;
                let event_time = match delay {
                    0 => now + jitter,           // normal disorder within lateness
                    1 => now - 150 * S + jitter, // late
                    _ => now + 600 * S,          // producer clock far ahead
                };
                let offset = next_offset[partition as usize];
                next_offset[partition as usize] += 1;
                Ev {
                    partition,
                    offset,
                    now,
                    event_time,
                    user,
                    total,
                }
            })
            .collect()
    })
}

fn geometry() -> impl Strategy<Value = Windowing> {
    prop_oneof![
        Just(Windowing::new(60 * S, 30 * S).unwrap()),
        Just(Windowing::new(300 * S, 60 * S).unwrap()),
        Just(Windowing::new(90 * S, 60 * S).unwrap()),
        Just(Windowing::new(60 * S, 60 * S).unwrap()),
    ]
}

fn params(windowing: Windowing) -> EngineParams {
    EngineParams {
        windowing,
        clock: ClockParams {
            lateness: 10 * S,
            idle_timeout: 30 * S,
        },
        max_skew: 300 * S,
        clock_tolerance: 2 * S,
    }
}

fn skewed(e: &Ev) -> bool {
    e.event_time > e.now + 300 * S
}

fn user_name(u: u8) -> String {
    format!("user_{u}")
}

/// The order and the click an event stands for. Quantity 1 at price `total`: the order's
/// total is what the recount sums.
fn events(e: &Ev) -> (Order<'static>, Click<'static>) {
    let name = user_name(e.user);
    let order = Order {
        order_id: format!("o{}", e.offset).into(),
        user_id: name.clone().into(),
        product_id: "p".into(),
        quantity: 1,
        price: e.total as f64,
        status: "CREATED",
        order_ts: e.event_time,
    };
    let click = Click {
        click_id: format!("c{}", e.offset).into(),
        user_id: name.into(),
        url: "/".into(),
        device_type: "desktop",
        click_ts: e.event_time,
    };
    (order, click)
}

fn input<'a>(e: &Ev, fact: Fact<'a>) -> Input<'a> {
    Input {
        topic: 0,
        partition: e.partition,
        offset: e.offset,
        event_time: e.event_time,
        ingested_at: e.now,
        fact,
    }
}

/// Both KPIs run side by side so counts, sums and distinct counts are all checked.
struct Pair {
    orders: Engine<OrdersAcc>,
    users: Engine<UsersAcc>,
}

/// One emitted window: (start, end) → (stream position at emission, count, revenue, users).
type Emitted = BTreeMap<(Micros, Micros), (usize, i64, f64, i64)>;

impl Pair {
    fn new(w: Windowing) -> Self {
        Pair {
            orders: Engine::new(params(w), 1),
            users: Engine::new(params(w), 1),
        }
    }

    fn fold(&mut self, e: &Ev, now: Micros) -> Fold {
        let (order, click) = events(e);
        let input = |fact| input(e, fact);
        let a = self.orders.fold(&input(Fact::Order(&order)), now);
        let b = self.users.fold(&input(Fact::Click(&click)), now);
        assert_eq!(a, b, "both engines share geometry, so decisions agree");
        a
    }

    /// Advance both; true when something was emitted (a commit in the actor).
    fn advance(&mut self, now: Micros, pos: usize, out: &mut Emitted) -> bool {
        let mut committed = false;
        if let Some(em) = self.orders.advance(now) {
            for (s, e, rows) in em.windows {
                let r = &rows[0];
                let prev = out.insert((s, e), (pos, r.orders_count, r.total_revenue, -1));
                assert!(prev.is_none(), "window {s}..{e} emitted twice");
                committed = true;
            }
        }
        if let Some(em) = self.users.advance(now) {
            for (s, e, rows) in em.windows {
                let entry = out
                    .get_mut(&(s, e))
                    .expect("users window without orders window");
                assert_eq!(entry.3, -1, "users window emitted twice");
                entry.3 = rows[0].active_users;
            }
        }
        committed
    }
}

fn recount(events: &[Ev], upto: usize, s: Micros, e: Micros) -> (i64, f64, i64) {
    let inside: Vec<&Ev> = events[..upto]
        .iter()
        .filter(|x| !skewed(x) && x.event_time >= s && x.event_time < e)
        .collect();
    let users: HashSet<u8> = inside.iter().map(|x| x.user).collect();
    (
        inside.len() as i64,
        inside.iter().map(|x| x.total as f64).sum(),
        users.len() as i64,
    )
}

fn check_against_recount(events: &[Ev], emitted: &Emitted) {
    for (&(s, e), &(pos, count, revenue, users)) in emitted {
        let (c, r, u) = recount(events, pos, s, e);
        assert_eq!((count, users), (c, u), "window {s}..{e} emitted at {pos}");
        assert!(
            (revenue - r).abs() < 1e-6,
            "revenue of {s}..{e}: {revenue} vs {r}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn emitted_windows_equal_a_recount_and_appear_once(events in stream(), w in geometry()) {
        let mut pair = Pair::new(w);
        let mut emitted = Emitted::new();
        // Windows each folded event must reach (end beyond the boundary when it arrived).
        let mut owed = BTreeSet::new();
        for (i, e) in events.iter().enumerate() {
            let boundary = pair.orders.emitted_until();
            let fold = pair.fold(e, e.now);
            prop_assert_eq!(fold == Fold::Skewed, skewed(e));
            if matches!(fold, Fold::OnTime | Fold::Late | Fold::Ahead) {
                for s in w.starts_containing(e.event_time) {
                    if boundary.is_none_or(|b| s + w.size > b) {
                        owed.insert((s, s + w.size));
                    }
                }
            }
            if fold == Fold::OnTime {
                prop_assert!(boundary.is_none_or(|b| w.first_start(e.event_time) + w.size > b));
            }
            pair.advance(e.now, i + 1, &mut emitted);
        }
        // Traffic stops: the idle topic advances with processing time and closes everything.
        let end = events.last().unwrap().now + 3_600 * S;
        pair.advance(end, events.len(), &mut emitted);
        check_against_recount(&events, &emitted);
        let emitted_keys: BTreeSet<_> = emitted.keys().copied().collect();
        prop_assert_eq!(owed, emitted_keys, "every window owed is emitted, nothing else");
        prop_assert_eq!(pair.orders.open_panes(), 0);
    }

    #[test]
    fn a_crash_and_rebuild_from_replay_offsets_loses_and_repeats_nothing(
        events in stream(),
        w in geometry(),
        crash_at in 0usize..250,
    ) {
        let crash_at = crash_at % (events.len() + 1);
        let mut pair = Pair::new(w);
        let mut committed = Emitted::new();
        // What the last commit recorded: boundary, watermark, replay offsets, positions.
        let mut checkpoint: (Option<Micros>, Option<Micros>, BTreeMap<i32, i64>) = (None, None, BTreeMap::new());
        let mut position: BTreeMap<i32, i64> = BTreeMap::new();
        for (i, e) in events[..crash_at].iter().enumerate() {
            pair.fold(e, e.now);
            position.insert(e.partition, e.offset + 1);
            if pair.advance(e.now, i + 1, &mut committed) {
                let replay = pair.orders.replay_offsets();
                let mut from = position.clone();
                for ((_, p), o) in replay {
                    from.insert(p, o);
                }
                checkpoint = (pair.orders.emitted_until(), pair.orders.watermark(), from);
            }
        }
        // Crash: everything not committed is gone. Rebuild from the checkpoint by replaying
        // the delivered records at or after the recorded offsets.
        let crash_now = events.get(crash_at).map_or(events.last().unwrap().now, |e| e.now);
        let mut rebuilt = Pair::new(w);
        rebuilt.orders.restore(checkpoint.0, checkpoint.1);
        rebuilt.users.restore(checkpoint.0, checkpoint.1);
        for e in &events[..crash_at] {
            if e.offset >= checkpoint.2.get(&e.partition).copied().unwrap_or(0) {
                rebuilt.fold(e, crash_now);
            }
        }
        // Emissions of the rebuilt engine must not repeat committed windows.
        let mut after = Emitted::new();
        rebuilt.advance(crash_now, crash_at, &mut after);
        for (i, e) in events.iter().enumerate().skip(crash_at) {
            rebuilt.fold(e, e.now);
            rebuilt.advance(e.now, i + 1, &mut after);
        }
        rebuilt.advance(events.last().unwrap().now + 3_600 * S, events.len(), &mut after);
        for k in after.keys() {
            prop_assert!(!committed.contains_key(k), "window {:?} written twice across the crash", k);
        }
        check_against_recount(&events, &committed);
        check_against_recount(&events, &after);
    }
}

impl Pair {
    /// Fold `e` into the preview panes only (read, not committed yet).
    fn fold_ahead(&mut self, e: &Ev) {
        let (order, click) = events(e);
        let input = |fact| input(e, fact);
        self.orders.fold_ahead(&input(Fact::Order(&order)));
        self.users.fold_ahead(&input(Fact::Click(&click)));
    }

    fn open(&self) -> (Vec<(Micros, i64, f64)>, Vec<(Micros, i64)>) {
        let orders = self
            .orders
            .open_windows()
            .into_iter()
            .map(|(s, _, r)| (s, r[0].orders_count, r[0].total_revenue))
            .collect();
        let users = self
            .users
            .open_windows()
            .into_iter()
            .map(|(s, _, r)| (s, r[0].active_users))
            .collect();
        (orders, users)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Provisional values: an open window with previewed events shows what it will hold once
    /// they are committed, and forgetting the previews leaves the exact state untouched.
    #[test]
    fn previews_show_what_the_commit_will_fold_and_nothing_else(
        events in stream(),
        w in geometry(),
        cut in 0usize..250,
    ) {
        let cut = cut % (events.len() + 1);
        let (committed, read) = events.split_at(cut);
        let mut shown = Pair::new(w);
        let mut exact = Pair::new(w);
        let mut sink = Emitted::new();
        for (i, e) in committed.iter().enumerate() {
            shown.fold(e, e.now);
            exact.fold(e, e.now);
            shown.advance(e.now, i + 1, &mut sink);
            exact.advance(e.now, i + 1, &mut Emitted::new());
        }
        let before = shown.open();
        for e in read {
            shown.fold_ahead(e);
        }
        for e in read {
            exact.fold(e, e.now);
        }
        prop_assert_eq!(shown.open(), exact.open(), "preview == the committed future");
        shown.orders.clear_ahead();
        shown.users.clear_ahead();
        prop_assert_eq!(shown.open(), before, "previews leave no trace");
    }
}

//! The reads the rollup owner repeats every tick, planned through its file index
//! (`lake::io::index`): the same rows as a table scan, across appends and compactions.
//!
//! The owner's read of a partials table once compaction has merged several topics' rows into
//! one file: it takes only the topic it asks for. Each topic kind has its own partials table,
//! but the table keeps a `topic` column and nothing stops rows of another topic name (a
//! renamed topic, an older lake) from sharing a file: the owner's file index chooses a file by
//! its bounds and reads it whole, and a file whose topic bounds span `clicks`..`orders` also
//! holds `errors` rows — CI's group lane once undercounted the errors topic by ~20 % when those
//! rows were not filtered out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use shopwatch_actors::events::EventKind;
use shopwatch_actors::lake::io::index::FileIndex;
use shopwatch_actors::lake::maintenance::rewrite::{self, DataCompactionParams};
use shopwatch_actors::lake::{HygieneParams, Lake, OffsetRule, Ranges, TableBatch, TableCommitter};
use shopwatch_actors::rollup::partials::read;
use shopwatch_actors::schema::partials::{partials_spec, partials_table, PartRow};
use shopwatch_actors::schema::{Rows, TableSpec};

use crate::common::lake;

fn compaction() -> DataCompactionParams {
    DataCompactionParams {
        every: Duration::ZERO,
        fresh_for: Duration::ZERO,
        max_files_per_partition: 2,
        ..DataCompactionParams::default()
    }
}

/// A lake in `dir` and a committer of the table `spec` defines, compacting by hand only.
async fn writer(dir: &std::path::Path, spec: TableSpec) -> (Lake, TableCommitter) {
    let lake = lake(dir).await;
    let writer = TableCommitter::open(
        lake.clone(),
        &spec,
        OffsetRule::Strict,
        HygieneParams {
            data: compaction(),
            ..HygieneParams::default()
        },
    )
    .await
    .unwrap();
    (lake, writer)
}

/// One committed range of `topic`'s partition 0: its mark and one KPI row of `events`.
fn range(topic: &str, (from, to): (i64, i64), events: i64) -> TableBatch {
    let mark = PartRow::mark(topic, 0, from, to);
    let kpi = PartRow {
        kpi: format!("{topic}_per_minute").into(),
        events,
        ..PartRow::mark(topic, 0, from, to)
    };
    TableBatch {
        topic: topic.to_string(),
        ranges: Ranges::from([(0, (from, to))]),
        rows: Arc::new(Rows::Partials(EventKind::Errors, vec![mark, kpi])),
        dead_letters_from: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_several_topics_gives_the_owner_only_the_topic_it_asks_for() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, mut writer) = writer(dir.path(), partials_spec(EventKind::Errors)).await;
    // The same partition and overlapping offsets in three topics: only the topic tells them
    // apart. Bounds of a merged file span clicks..orders, so they include errors.
    for batch in [
        range("orders", (0, 10), 3),
        range("errors", (0, 4), 7),
        range("clicks", (0, 6), 11),
        range("errors", (4, 12), 5),
        range("orders", (10, 20), 2),
    ] {
        writer.commit(batch).await.unwrap();
    }
    let ident = lake.ident(partials_table(EventKind::Errors));
    let done = rewrite::compact(&lake, &ident, &compaction())
        .await
        .unwrap();
    assert!(
        done.files_replaced >= 5,
        "the test needs the files merged: {done:?}"
    );

    let mut files = FileIndex::default();
    for round in 0..2 {
        // Twice: the second read comes from the index's kept manifests.
        let table = read::table(&lake, EventKind::Errors).await.unwrap();
        let errors = read::read(&table, &mut files, "errors", &BTreeMap::from([(0, 0)]))
            .await
            .unwrap();
        assert_eq!(
            errors.takes.get(&0).map(|t| t.ranges.clone()),
            Some(vec![(0, 4), (4, 12)]),
            "round {round}: {errors:?}"
        );
        let mut got: Vec<_> = errors.rows.iter().map(|r| (&*r.topic, r.events)).collect();
        got.sort();
        assert_eq!(got, [("errors", 5), ("errors", 7)], "round {round}");

        // From the middle of a topic: only what lies beyond.
        let orders = read::read(&table, &mut files, "orders", &BTreeMap::from([(0, 10)]))
            .await
            .unwrap();
        assert_eq!(
            orders.takes.get(&0).map(|t| t.ranges.clone()),
            Some(vec![(10, 20)]),
            "round {round}: {orders:?}"
        );
        let got: Vec<_> = orders.rows.iter().map(|r| (&*r.topic, r.events)).collect();
        assert_eq!(got, [("orders", 2)], "round {round}");
    }
}

/// The detector's read of a raw table through the index: the same rows as a table scan, as
/// the table grows and compaction replaces its files and manifests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_read_through_the_index_equals_a_table_scan() {
    use shopwatch_actors::lake::io::scan::{read_raw, read_raw_indexed};
    use shopwatch_actors::schema::raw_table_spec;

    let dir = tempfile::tempdir().unwrap();
    let (lake, mut writer) = writer(dir.path(), raw_table_spec(EventKind::Orders)).await;
    let ident = lake.ident(EventKind::Orders.raw_table());
    let sources = |rows: &Rows| match rows {
        Rows::Orders(v) => v
            .iter()
            .map(|(s, o)| (s.partition, s.offset, o.order_id.to_string()))
            .collect::<Vec<_>>(),
        other => panic!("not orders: {other:?}"),
    };
    let mut index = FileIndex::default();
    let mut next = [0i64, 0];
    for round in 0..4 {
        for i in 0..6i64 {
            let p = (i % 2) as usize;
            let start = next[p];
            next[p] += 5;
            writer
                .commit(crate::commit::orders(p as i32, start..start + 5))
                .await
                .unwrap();
        }
        if round % 2 == 1 {
            let done = rewrite::compact(&lake, &ident, &compaction())
                .await
                .unwrap();
            assert!(done.files_replaced > 0, "round {round}: {done:?}");
        }
        let table = lake.catalog.load_unpinned(&ident).await.unwrap();
        for from in [
            BTreeMap::from([(0, 0), (1, 0)]),
            BTreeMap::from([(0, next[0] - 7), (1, next[1] - 2)]),
            BTreeMap::from([(1, 3)]),
            BTreeMap::from([(0, next[0])]),
        ] {
            let scanned = read_raw(&table, EventKind::Orders, &from, false)
                .await
                .unwrap();
            let indexed = read_raw_indexed(&table, EventKind::Orders, &from, &mut index)
                .await
                .unwrap();
            assert_eq!(
                sources(&indexed),
                sources(&scanned),
                "round {round}, from {from:?}"
            );
            // Planned by the index, not a fallback scan.
            assert!(
                index.known_files() > 0,
                "round {round}: the index was not used"
            );
            let want: usize = from
                .iter()
                .map(|(p, f)| (next[*p as usize] - f) as usize)
                .sum();
            assert_eq!(
                sources(&scanned).len(),
                want,
                "round {round}, from {from:?}"
            );
        }
    }
}

//! The commit decision against a real SQLite catalog, with a second writer slipping in between
//! our offsets check and our catalog commit.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use shopwatch_actors::events::{EventKind, Order};
use shopwatch_actors::lake::commit::{recorded_offsets, CommitHook};
use shopwatch_actors::lake::{
    CommitError, CommitOutcome, HygieneParams, Lake, OffsetRule, TableBatch, TableCommitter,
};
use shopwatch_actors::schema::{raw_table_spec, Rows, Source};
use shopwatch_actors::telemetry::Metrics;

use crate::common::{assert_unique, lake, source_offsets};

pub fn orders(partition: i32, range: std::ops::Range<i64>) -> TableBatch {
    let rows = range
        .clone()
        .map(|o| {
            let order = Order {
                order_id: format!("o{o}").into(),
                user_id: "u".into(),
                product_id: "p".into(),
                quantity: 1,
                price: 1.0,
                status: "CREATED",
                order_ts: 1_795_482_123_000_000,
            };
            (
                Source {
                    partition,
                    offset: o,
                    ingested_at: 0,
                },
                order,
            )
        })
        .collect();
    TableBatch {
        topic: "orders_topic".into(),
        ranges: [(partition, (range.start, range.end))].into(),
        rows: std::sync::Arc::new(Rows::Orders(rows)),
        dead_letters_from: Default::default(),
    }
}

/// Commits `batch` with its own committer the first time our commit is about to land.
#[derive(Debug)]
struct Interloper {
    lake: Lake,
    batch: TableBatch,
    fired: AtomicU32,
}

#[async_trait::async_trait]
impl CommitHook for Interloper {
    async fn before_commit(&self, _table: &iceberg::TableIdent, _attempt: u32) {
        if self.fired.fetch_add(1, Ordering::SeqCst) == 0 {
            let mut other = TableCommitter::open(
                self.lake.clone(),
                &raw_table_spec(EventKind::Orders),
                OffsetRule::Strict,
                HygieneParams::default(),
            )
            .await
            .unwrap();
            other.commit(self.batch.clone()).await.unwrap();
        }
    }
}

async fn committer(
    lake: &Lake,
    interloper: Option<TableBatch>,
    metrics: &Metrics,
) -> TableCommitter {
    let c = TableCommitter::open(
        lake.clone(),
        &raw_table_spec(EventKind::Orders),
        OffsetRule::Strict,
        HygieneParams::default(),
    )
    .await
    .unwrap()
    .with_metrics(metrics.clone());
    match interloper {
        Some(batch) => c.with_hook(Arc::new(Interloper {
            lake: lake.clone(),
            batch,
            fired: AtomicU32::new(0),
        })),
        None => c,
    }
}

/// The second writer commits another partition of the same topic: our batch is still valid,
/// but it must be re-decided on the new snapshot, not rebased blindly onto it.
async fn concurrent_writer_forces_a_re_decision(lake: &Lake) {
    let metrics = Metrics::new();
    let mut ours = committer(lake, Some(orders(1, 0..5)), &metrics).await;
    let report = ours.commit(orders(0, 0..10)).await.unwrap();
    assert_eq!(report.outcome, CommitOutcome::Committed);
    assert_eq!(
        report.attempts, 2,
        "the first attempt must fail on the pinned snapshot"
    );
    assert_eq!(
        metrics
            .commits
            .with_label_values(&["orders_processed", "conflict"])
            .get(),
        1
    );
    let table = lake
        .catalog
        .load_unpinned(&lake.ident("orders_processed"))
        .await
        .unwrap();
    assert_eq!(
        recorded_offsets(&table, "orders_topic").unwrap(),
        [(0, 10), (1, 5)].into()
    );
    let rows = source_offsets(lake, "orders_processed").await;
    assert_eq!(rows.len(), 15);
}

/// The interloper (another instance that took the partition over, or we are the zombie)
/// commits [0, 4) of OUR partition: our [0, 10) no longer chains. Our part is dropped and the
/// lake's offset reported, so the consumer reads on from there; nothing is written twice.
async fn a_writer_that_moved_our_offsets_fences(lake: &Lake) {
    let metrics = Metrics::new();
    let mut ours = committer(lake, Some(orders(0, 0..4)), &metrics).await;
    let report = ours.commit(orders(0, 0..10)).await.unwrap();
    assert_eq!(report.outcome, CommitOutcome::Fenced);
    assert_eq!(report.fenced, [(0, 4)].into());
    let rows = source_offsets(lake, "orders_processed").await;
    assert_eq!(
        rows.len(),
        4,
        "our batch must not have landed on the unchecked snapshot"
    );
    // A batch over two partitions, one taken over: only the other one lands.
    let mut two = orders(0, 4..8);
    let extra = orders(1, 0..3);
    two.ranges.extend(extra.ranges.clone());
    if let (Rows::Orders(a), Rows::Orders(b)) = ((*two.rows).clone(), (*extra.rows).clone()) {
        two.rows = Arc::new(Rows::Orders(a.iter().chain(b.iter()).collect()));
    }
    let report = ours.commit(orders(0, 4..6)).await.unwrap();
    assert_eq!(report.outcome, CommitOutcome::Committed);
    let report = ours.commit(two).await.unwrap();
    assert_eq!(report.outcome, CommitOutcome::Committed);
    assert_eq!(report.fenced, [(0, 6)].into());
    assert_eq!(report.offsets, [(0, 6), (1, 3)].into());
    let rows = source_offsets(lake, "orders_processed").await;
    assert_eq!(
        rows.len(),
        9,
        "4 + 2 of ours on partition 0, 3 on partition 1"
    );
    assert_unique(&rows);
}

#[tokio::test]
async fn concurrent_writer_forces_a_re_decision_not_a_silent_rebase() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_writer_forces_a_re_decision(&lake(dir.path()).await).await;
}

#[tokio::test]
async fn a_writer_that_moved_our_offsets_fences_us() {
    let dir = tempfile::tempdir().unwrap();
    a_writer_that_moved_our_offsets_fences(&lake(dir.path()).await).await;
}

/// The same two races on a real Iceberg REST catalog (SeaweedFS, OAuth2, S3): our pin plus
/// the catalog's own requirement check on the snapshot we decided on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_rest_catalog_the_pinned_commit_re_decides_and_fences_the_same() {
    use shopwatch_load::seaweed::{Seaweed, SeaweedParams};
    let dir = tempfile::tempdir().unwrap();
    let server = Seaweed::start(
        SeaweedParams::new(&dir.path().join("seaweed"), "commit-key", "commit-secret").unwrap(),
    )
    .await
    .expect("SeaweedFS");
    // One namespace per case on the same server: each starts from an empty table.
    for (namespace, fenced) in [("race_redecide", false), ("race_fenced", true)] {
        let mut params = server.params.lake_params(&dir.path().join(namespace));
        params.namespace = namespace.to_string();
        let lake = Lake::open(params).await.unwrap();
        if fenced {
            a_writer_that_moved_our_offsets_fences(&lake).await;
        } else {
            concurrent_writer_forces_a_re_decision(&lake).await;
        }
    }
}

#[tokio::test]
async fn replaying_a_landed_batch_is_a_no_op_and_chains_continue() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    let metrics = Metrics::new();
    let mut c = committer(&lake, None, &metrics).await;
    assert_eq!(
        c.commit(orders(0, 0..10)).await.unwrap().outcome,
        CommitOutcome::Committed
    );
    // Same batch again (its acknowledgement was lost): found, not re-appended.
    assert_eq!(
        c.commit(orders(0, 0..10)).await.unwrap().outcome,
        CommitOutcome::AlreadyCommitted
    );
    assert_eq!(
        c.commit(orders(0, 10..12)).await.unwrap().outcome,
        CommitOutcome::Committed
    );
    // A batch that starts behind the lake (a zombie's) is dropped, and says where the lake is.
    let report = c.commit(orders(0, 5..11)).await.unwrap();
    assert_eq!(report.outcome, CommitOutcome::Fenced);
    assert_eq!(report.fenced, [(0, 12)].into());
    // One that starts past the lake would skip records: refused, never retried.
    let err = c.commit(orders(0, 14..16)).await.unwrap_err();
    assert!(matches!(err, CommitError::Fenced { .. }), "{err}");
    assert!(err.is_fatal());
    assert_eq!(source_offsets(&lake, "orders_processed").await.len(), 12);
}

#[tokio::test]
async fn metadata_hygiene_bounds_the_metadata_directory() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    let hygiene = HygieneParams {
        every_commits: 10,
        snapshot_max_age: std::time::Duration::ZERO,
        keep_snapshots: 3,
        keep_metadata_files: 5,
        min_file_age: std::time::Duration::ZERO,
        compact_every_commits: 20,
        // Data compaction keeps its parent snapshots through a grace period: not this test's
        // subject (compaction.rs covers it).
        data: shopwatch_actors::lake::DataCompactionParams {
            every: std::time::Duration::ZERO,
            ..Default::default()
        },
        ..HygieneParams::default()
    };
    let mut c = TableCommitter::open(
        lake.clone(),
        &raw_table_spec(EventKind::Orders),
        OffsetRule::Strict,
        hygiene,
    )
    .await
    .unwrap();
    for i in 0..60 {
        c.commit(orders(0, i * 10..i * 10 + 10)).await.unwrap();
    }
    let table = lake
        .catalog
        .load_unpinned(&lake.ident("orders_processed"))
        .await
        .unwrap();
    assert!(
        table.metadata().snapshots().count() <= 13,
        "snapshots: {}",
        table.metadata().snapshots().count()
    );
    let meta_dir = dir
        .path()
        .join("warehouse/ecommerce_db/orders_processed/metadata");
    let json = std::fs::read_dir(&meta_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".metadata.json")
        })
        .count();
    assert!(json <= 16, "metadata.json files kept: {json}");
    // Manifests are merged every 20 commits: the current snapshot names at most 21, and the
    // merged-away ones are deleted once no snapshot names them.
    let current = shopwatch_actors::lake::maintenance::compact::read_manifest_list(
        &table,
        table.metadata().current_snapshot().unwrap().manifest_list(),
    )
    .await
    .unwrap();
    assert!(
        current.entries().len() <= 21,
        "manifests: {}",
        current.entries().len()
    );
    let manifests_on_disk = std::fs::read_dir(&meta_dir)
        .unwrap()
        .filter(|e| {
            let n = e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .to_string();
            n.ends_with(".avro") && !n.starts_with("snap-")
        })
        .count();
    assert!(
        manifests_on_disk <= 45,
        "manifest files on disk: {manifests_on_disk}"
    );
    // Every row is still there, exactly once, after three compactions.
    let rows = source_offsets(&lake, "orders_processed").await;
    assert_eq!(rows.len(), 600);
    assert_unique(&rows);
}

/// The orphan sweeper on a real table: a stray file (what a crash after the data-file write
/// leaves) goes once it is old enough; every file a snapshot references stays.
#[tokio::test]
async fn the_orphan_sweeper_deletes_strays_past_the_safety_age_and_nothing_referenced() {
    use shopwatch_actors::lake::maintenance::orphans::{referenced_data_files, sweep};
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    let metrics = Metrics::new();
    let mut c = committer(&lake, None, &metrics).await;
    c.commit(orders(0, 0..50)).await.unwrap();
    c.commit(orders(0, 50..100)).await.unwrap();
    let ident = lake.ident("orders_processed");
    let table = lake.catalog.load_unpinned(&ident).await.unwrap();
    let referenced = referenced_data_files(&table).await.unwrap();
    assert!(referenced.len() >= 2, "{referenced:?}");

    let data_dir = dir
        .path()
        .join("warehouse/ecommerce_db/orders_processed/data");
    let stray = data_dir.join("orders_topic-crashed-attempt-00000.parquet");
    std::fs::write(&stray, vec![7u8; 1234]).unwrap();

    // Younger than the safety age: only reported.
    let r = sweep(&lake, &ident, Duration::from_secs(24 * 3600), false)
        .await
        .unwrap();
    assert_eq!((r.deleted, r.pending), (0, 1), "{r:?}");
    assert!(stray.exists());
    // A dry run reports without deleting.
    let r = sweep(&lake, &ident, Duration::ZERO, true).await.unwrap();
    assert_eq!((r.deleted, r.bytes_deleted), (1, 1234), "{r:?}");
    assert!(stray.exists());
    // Past the age: deleted, and only it.
    let r = sweep(&lake, &ident, Duration::ZERO, false).await.unwrap();
    assert_eq!(
        (r.deleted, r.bytes_deleted, r.pending),
        (1, 1234, 0),
        "{r:?}"
    );
    assert_eq!(r.referenced, r.listed - 1, "{r:?}");
    assert!(!stray.exists());
    fn files(dir: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else {
                out.push(path.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut names = Vec::new();
    files(&data_dir, &mut names);
    for name in &names {
        assert!(referenced.contains(name), "unreferenced {name} left");
    }
    let left = names.len();
    assert_eq!(left, referenced.len());
    // The table still reads every row.
    assert_eq!(
        recorded_offsets(
            &lake.catalog.load_unpinned(&ident).await.unwrap(),
            "orders_topic"
        )
        .unwrap()
        .get(&0),
        Some(&100)
    );
}

/// Two committers of one table in one process (two instances sharing a lake, or every topic's
/// dead letters) race the same batches of one partition: each lands exactly once; the loser
/// finds it landed or fenced, never appends it again on top of the winner's snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_committers_of_one_table_never_land_a_batch_twice() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    let metrics = Metrics::new();
    let mut a = committer(&lake, None, &metrics).await;
    let mut b = committer(&lake, None, &metrics).await;
    tokio::join!(race(&mut a), race(&mut b));
    let rows = source_offsets(&lake, "orders_processed").await;
    assert_unique(&rows);
    assert_eq!(rows.len(), 300);
}

async fn race(c: &mut TableCommitter) {
    for i in 0..30 {
        let r = c.commit(orders(0, i * 10..i * 10 + 10)).await.unwrap();
        assert!(r.rows == 10 || r.rows == 0, "{r:?}");
    }
}

/// Two owners of one rollup table: the one that computed from a state the other has moved on
/// (deposed, or frozen while another was elected) is refused without being fatal, and after
/// a restart it continues on top of what the other wrote.
#[tokio::test]
async fn a_deposed_owners_late_rollup_commit_is_refused_and_a_restart_continues() {
    use shopwatch_actors::lake::RollupCommitter;
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    let spec = raw_table_spec(EventKind::Orders);
    let open = || RollupCommitter::open(lake.clone(), &spec, HygieneParams::default(), None);
    let (mut deposed, at) = open().await.unwrap();
    let (mut owner, _) = open().await.unwrap();
    assert_eq!(at.seq, 0);
    let rows = |b: TableBatch| b.rows;
    owner
        .commit(
            rows(orders(0, 0..5)).as_ref(),
            serde_json::json!({"by": "owner"}),
        )
        .await
        .unwrap();
    let err = deposed
        .commit(
            rows(orders(0, 5..10)).as_ref(),
            serde_json::json!({"by": "deposed"}),
        )
        .await
        .unwrap_err();
    // Both committers live in this process: the chain names it as the writer, so this is a
    // stale worker of ours (restart), not another instance (step down).
    assert!(
        matches!(
            err,
            CommitError::Deposed {
                by_this_process: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_fatal(), "a restart rebuilds the state: {err}");
    assert_eq!(source_offsets(&lake, "orders_processed").await.len(), 5);
    // Restarted: it resumes from the other owner's state and its next commit lands.
    let (mut restarted, at) = open().await.unwrap();
    assert_eq!((at.seq, at.state["by"].as_str()), (1, Some("owner")));
    restarted
        .commit(
            rows(orders(0, 5..10)).as_ref(),
            serde_json::json!({"by": "restarted"}),
        )
        .await
        .unwrap();
    assert_eq!(source_offsets(&lake, "orders_processed").await.len(), 10);
}

//! Data-file compaction racing ingest commits on a real catalog: a compaction that lands
//! between an ingest commit's check and its commit, and an ingest commit that lands between a
//! compaction's check and its commit. Nothing lost, nothing twice, no offset moves back; the
//! replaced files stay readable through the grace period for a pyiceberg scan planned before.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shopwatch_actors::events::EventKind;
use shopwatch_actors::lake::commit::{recorded_offsets, CommitHook};
use shopwatch_actors::lake::maintenance::rewrite::{self, DataCompactionParams};
use shopwatch_actors::lake::maintenance::{hygiene, orphans};
use shopwatch_actors::lake::{CommitOutcome, HygieneParams, Lake, OffsetRule, TableCommitter};
use shopwatch_actors::schema::raw_table_spec;

use crate::commit::orders;
use crate::common::{assert_unique, lake, source_offsets};

const TABLE: &str = "orders_processed";

fn params() -> DataCompactionParams {
    DataCompactionParams {
        // Driven by hand here, never by the schedule.
        every: Duration::ZERO,
        fresh_for: Duration::ZERO,
        // Crowded at once: every small file merges, whatever the size tiers say.
        max_files_per_partition: 2,
        ..DataCompactionParams::default()
    }
}

fn hygiene_params() -> HygieneParams {
    HygieneParams {
        data: params(),
        ..HygieneParams::default()
    }
}

async fn committer(lake: &Lake) -> TableCommitter {
    TableCommitter::open(
        lake.clone(),
        &raw_table_spec(EventKind::Orders),
        OffsetRule::Strict,
        hygiene_params(),
    )
    .await
    .unwrap()
}

/// Runs a whole data compaction the first time an ingest commit is about to land.
#[derive(Debug)]
struct Compactor {
    lake: Lake,
    fired: AtomicU32,
    replaced: AtomicU32,
}

#[async_trait::async_trait]
impl CommitHook for Compactor {
    async fn before_commit(&self, table: &iceberg::TableIdent, _attempt: u32) {
        if self.fired.fetch_add(1, Ordering::SeqCst) == 0 {
            let done = rewrite::compact(&self.lake, table, &params())
                .await
                .unwrap();
            self.replaced
                .store(done.files_replaced as u32, Ordering::SeqCst);
        }
    }
}

async fn live_file_count(lake: &Lake) -> usize {
    let table = lake
        .catalog
        .load_unpinned(&lake.ident(TABLE))
        .await
        .unwrap();
    let mut n = 0;
    let snapshot = table.metadata().current_snapshot().unwrap();
    let list = shopwatch_actors::lake::maintenance::compact::read_manifest_list(
        &table,
        snapshot.manifest_list(),
    )
    .await
    .unwrap();
    for m in list.entries() {
        let manifest = m.load_manifest(table.file_io()).await.unwrap();
        n += manifest.entries().iter().filter(|e| e.is_alive()).count();
    }
    n
}

/// Both races; returns (rows, live files). `between` runs after the first batches landed and
/// before any compaction (the pyiceberg scan is planned there).
async fn races(lake: &Lake, between: impl std::future::Future<Output = ()>) -> (usize, usize) {
    let ident = lake.ident(TABLE);
    let mut ingest = committer(lake).await;
    // 20 small files on two Kafka partitions.
    for i in 0..20i64 {
        ingest
            .commit(orders((i % 2) as i32, (i / 2) * 10..(i / 2) * 10 + 10))
            .await
            .unwrap();
    }
    assert_eq!(live_file_count(lake).await, 20);
    between.await;

    // Race 1: a compaction lands between this ingest commit's check and its commit.
    let hook = Arc::new(Compactor {
        lake: lake.clone(),
        fired: AtomicU32::new(0),
        replaced: AtomicU32::new(0),
    });
    let mut raced = committer(lake).await.with_hook(hook.clone());
    let report = raced.commit(orders(0, 100..110)).await.unwrap();
    assert_eq!(report.outcome, CommitOutcome::Committed);
    assert_eq!(
        report.attempts, 2,
        "the ingest commit must decide again, not force"
    );
    assert_eq!(hook.replaced.load(Ordering::SeqCst), 20);
    assert_eq!(
        live_file_count(lake).await,
        2,
        "one merged file plus the raced batch"
    );

    // Race 2: an ingest commit lands between the compaction's check and its commit.
    for i in 0..4i64 {
        ingest
            .commit(orders(1, 100 + i * 10..110 + i * 10))
            .await
            .unwrap();
    }
    let table = lake.catalog.load_unpinned(&ident).await.unwrap();
    let (plan, before) = rewrite::prepare(&table, &params(), i64::MAX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((before, plan.inputs()), (6, 6));
    let base = lake.catalog.load_unpinned(&ident).await.unwrap();
    ingest.commit(orders(0, 110..120)).await.unwrap();
    let err = plan.attempt(lake, &base).await.unwrap_err();
    assert!(
        rewrite::retry_after(&err),
        "a moved table is a conflict: {err}"
    );
    let (landed, attempts) = plan.commit(lake, 5).await.unwrap();
    assert!(landed);
    assert_eq!(attempts, 1);
    assert_eq!(
        live_file_count(lake).await,
        2,
        "the merged file plus the interloper's"
    );
    // A second run of the same plan finds its inputs gone and commits nothing.
    assert_eq!(plan.commit(lake, 5).await.unwrap(), (false, 1));

    let table = lake.catalog.load_unpinned(&ident).await.unwrap();
    assert_eq!(
        recorded_offsets(&table, "orders_topic").unwrap(),
        [(0, 120), (1, 140)].into(),
        "offsets carried over, never moved back"
    );
    let rows = source_offsets(lake, TABLE).await;
    assert_unique(&rows);
    assert_eq!(rows.len(), 260);
    let summary = &table
        .metadata()
        .snapshots()
        .map(|s| s.summary().clone())
        .collect::<Vec<_>>();
    let replaces = summary
        .iter()
        .filter(|s| s.operation == iceberg::spec::Operation::Replace)
        .count();
    assert_eq!(replaces, 2);
    (rows.len(), live_file_count(lake).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_races_ingest_and_a_scan_planned_before_it_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/py/scan_across_compaction.py"
    );
    let mut py = Command::new("python3")
        .args([script, dir.path().to_str().unwrap(), TABLE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(py.stdout.take().unwrap());
    let mut stdin = py.stdin.take().unwrap();

    let mut planned = String::new();
    let (rows, files) = races(&lake, async {
        // Started once the first 20 files landed; pyiceberg plans its scan now.
        out.read_line(&mut planned).unwrap();
    })
    .await;
    let planned: serde_json::Value = serde_json::from_str(&planned).unwrap();
    assert_eq!(planned["planned_files"], 20, "{planned}");
    assert_eq!(planned["count"], 200, "{planned}");

    // Expire everything the age allows and sweep orphans with no safety age: only the grace
    // for replaced files keeps the pyiceberg scan's files.
    let ident = lake.ident(TABLE);
    let tight = HygieneParams {
        snapshot_max_age: Duration::ZERO,
        keep_snapshots: 1,
        min_file_age: Duration::ZERO,
        ..hygiene_params()
    };
    let expired = hygiene::run(&lake, &ident, &tight).await.unwrap();
    assert!(expired.snapshots_expired > 0, "{expired:?}");
    orphans::sweep(&lake, &ident, Duration::ZERO, false)
        .await
        .unwrap();

    writeln!(stdin, "go").unwrap();
    let mut after = String::new();
    out.read_line(&mut after).unwrap();
    assert!(py.wait().unwrap().success(), "pyiceberg failed: {after}");
    let after: serde_json::Value = serde_json::from_str(&after).unwrap();
    assert_eq!(after["old_scan_rows"], 200, "{after}");
    assert_eq!(after["old_scan_unique"], 200, "{after}");
    assert_eq!(after["new_count"], rows, "{after}");
    assert_eq!(after["new_rows"], rows, "{after}");
    assert_eq!(after["new_unique"], rows, "{after}");
    assert_eq!(after["new_files"], files, "{after}");
    assert!(
        after["operations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "replace"),
        "{after}"
    );

    // Past the grace the replaced files go: the table still reads every row once.
    let past = HygieneParams {
        data: DataCompactionParams {
            replaced_grace: Duration::ZERO,
            ..params()
        },
        ..tight
    };
    let done = hygiene::run(&lake, &ident, &past).await.unwrap();
    // Expiry deletes the first compaction's 20 inputs itself; the second's 6 are still named
    // (as deleted) by the current snapshot, the second compaction, so they stay.
    assert_eq!(done.replaced_files_deleted, 20, "{done:?}");
    let swept = orphans::sweep(&lake, &ident, Duration::ZERO, false)
        .await
        .unwrap();
    assert_eq!((swept.deleted, swept.referenced), (0, 2 + 6), "{swept:?}");
    let left = source_offsets(&lake, TABLE).await;
    assert_unique(&left);
    assert_eq!(left.len(), rows);
}

/// The same races on a real Iceberg REST catalog (SeaweedFS, OAuth2, S3): our own commit of
/// the replace snapshot goes through the REST protocol with the same requirements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_rest_catalog_compaction_races_ingest_the_same() {
    use shopwatch_load::seaweed::{Seaweed, SeaweedParams};
    let dir = tempfile::tempdir().unwrap();
    let server = Seaweed::start(
        SeaweedParams::new(&dir.path().join("seaweed"), "compact-key", "compact-secret").unwrap(),
    )
    .await
    .expect("SeaweedFS");
    let mut params = server.params.lake_params(&dir.path().join("lake"));
    params.namespace = "compaction_races".to_string();
    let lake = Lake::open(params).await.unwrap();
    let (rows, files) = races(&lake, async {}).await;
    assert_eq!((rows, files), (260, 2));
}

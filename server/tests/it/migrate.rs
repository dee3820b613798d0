//! Switching from the old stack's Spark job: a lake left the way Spark leaves it (written by an
//! independent writer, `spark_stand_in.py`), `shopwatch migrate plan|apply`, then `run`; the
//! same lake with `kafka.start = latest`; tables with bad columns; checkpoints that do not
//! match.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

const ENV: [(&str, &str); 1] = [("SHOPWATCH_WINDOWS__IDLE_TIMEOUT_S", "3")];

fn stand_in(args: &[&str]) -> Value {
    let out = python("spark_stand_in.py", args);
    serde_json::from_str(out.lines().last().unwrap_or("{}"))
        .unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The phase before the switch: ~6 minutes of events ending 4 minutes ago.
fn before_switch(brokers: &str) {
    stand_in(&[
        "produce",
        "--brokers",
        brokers,
        "--count",
        "3000",
        "--from-s",
        "-600",
        "--to-s",
        "-240",
        "--seed",
        "1",
    ]);
}

/// After the switch: events of now (windows before now may already be closed: an idle
/// topic's watermark follows the clock).
fn after_switch(brokers: &str, seed: &str) {
    stand_in(&[
        "produce",
        "--brokers",
        brokers,
        "--count",
        "2000",
        "--from-s",
        "-1",
        "--to-s",
        "0",
        "--seed",
        seed,
    ]);
}

fn make_lake(brokers: &str, data: &Path, checkpoints: &Path, broken: &[&str]) -> Value {
    let (d, c) = (data.to_str().unwrap(), checkpoints.to_str().unwrap());
    let mut args = vec![
        "make",
        "--data-dir",
        d,
        "--brokers",
        brokers,
        "--checkpoints",
        c,
        "--epochs",
        "3",
    ];
    for b in broken {
        args.extend(["--broken", b]);
    }
    stand_in(&args)
}

/// `shopwatch migrate <what> --json`: exit code, the plans, and stderr.
fn migrate(what: &str, brokers: &str, data: &Path, checkpoints: &Path) -> (i32, Value, String) {
    let out = Command::new(BIN)
        .args([
            "migrate",
            what,
            "--json",
            "--brokers",
            brokers,
            "--spark-checkpoints",
        ])
        .arg(checkpoints)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let plans = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        plans,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn locations(data: &Path) -> Value {
    stand_in(&["locations", "--data-dir", data.to_str().unwrap()])
}

fn verify(brokers: &str, data: &Path) -> Value {
    stand_in(&[
        "verify",
        "--data-dir",
        data.to_str().unwrap(),
        "--brokers",
        brokers,
    ])
}

fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Verify until shopwatch has written windows past Spark's (idleness closes the last ones).
async fn verified(brokers: &str, data: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let v = verify(brokers, data);
        let written = v["kpi"]["shopwatch_windows"].as_u64().unwrap_or(0);
        if v["kpi"]["straddling"].as_u64().unwrap_or(0) > 0
            && written > 4
            && v["failures"] == serde_json::json!([])
        {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "no shopwatch windows after Spark's: {v}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spark_lake_hands_over_with_nothing_lost_or_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, brokers) = broker(dir.path());
    let data = dir.path().join("lake");
    let checkpoints = dir.path().join("spark_checkpoints_nessie");
    before_switch(&brokers);
    let made = make_lake(&brokers, &data, &checkpoints, &[]);
    let before = locations(&data);

    // Checkpoints that do not match: `plan` says what is wrong, `apply` refuses, nothing moves.
    let bad = |name: &str| {
        let d = dir.path().join(name);
        copy_dir(&checkpoints, &d);
        d
    };
    let foreign = bad("foreign");
    std::fs::remove_dir_all(foreign.join("orders")).unwrap();
    copy_dir(&foreign.join("clicks"), &foreign.join("orders"));
    let beyond = bad("beyond");
    let f = beyond.join("orders/offsets/3");
    let text = std::fs::read_to_string(&f).unwrap();
    let last = text.lines().last().unwrap();
    let mut v: Value = serde_json::from_str(last).unwrap();
    for o in v["orders_topic"].as_object_mut().unwrap().values_mut() {
        *o = Value::from(o.as_i64().unwrap() + 100_000);
    }
    std::fs::write(&f, text.replace(last, &v.to_string())).unwrap();
    let truncated = bad("truncated");
    std::fs::write(truncated.join("errors/offsets/3"), "v1\n").unwrap();
    for (ck, topic, want) in [
        (
            &foreign,
            "orders_topic",
            "reads clicks_topic, not orders_topic",
        ),
        (&beyond, "orders_topic", "past the broker's newest offset"),
        (&truncated, "errors_topic", "truncated"),
    ] {
        let (code, plans, err) = migrate("plan", &brokers, &data, ck);
        assert_eq!(code, 1, "{plans} {err}");
        let p = plans
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["topic"] == topic)
            .unwrap();
        assert!(p["problems"].to_string().contains(want), "{topic}: {p}");
        let (code, _, err) = migrate("apply", &brokers, &data, ck);
        assert_ne!(code, 0, "apply of {} must be refused", ck.display());
        assert!(err.contains("not clean"), "{err}");
        assert_eq!(locations(&data), before, "a refused plan changed the lake");
    }

    // The real plan: each topic starts where Spark's last landed epoch ended (epoch 3; batch 4
    // was planned, never landed), nothing skipped, nothing read twice.
    let (code, plans, err) = migrate("plan", &brokers, &data, &checkpoints);
    assert_eq!(code, 0, "{plans} {err}");
    let mut to_read = 0;
    for p in plans.as_array().unwrap() {
        let topic = p["topic"].as_str().unwrap();
        assert_eq!(p["landed_epoch"], 3, "{p}");
        assert!(
            p["how"].as_str().unwrap().contains("batch 4 was planned"),
            "{p}"
        );
        for part in p["partitions"].as_array().unwrap() {
            let want = &made["ends"][topic][part["partition"].to_string()];
            assert_eq!(&part["start"], want, "{topic}: {part}");
            assert_eq!(part["skipped"], 0);
            assert_eq!(part["reread"], 0);
            to_read += part["high"].as_i64().unwrap() - part["start"].as_i64().unwrap();
        }
    }
    assert_eq!(locations(&data), before, "plan changed the lake");
    let (code, _, err) = migrate("apply", &brokers, &data, &checkpoints);
    assert_eq!(code, 0, "{err}");
    // Applied twice is refused: the lake now decides.
    let (code, plans, _) = migrate("plan", &brokers, &data, &checkpoints);
    assert_eq!(code, 1);
    assert!(plans.to_string().contains("already records"), "{plans}");

    let (mut run, http, _) = run_pipeline_env(&brokers, &data, &ENV);
    wait_caught_up(&brokers, &data, Duration::from_secs(120)).await;
    // What shopwatch read at start is what the plan said: the batch Spark never landed.
    let read = metric_sum(&http, "shopwatch_events_consumed_total").await;
    assert_eq!(read as i64, to_read, "read at start vs the plan's count");
    after_switch(&brokers, "2");
    wait_caught_up(&brokers, &data, Duration::from_secs(120)).await;
    let report = verified(&brokers, &data).await;
    println!("handover: {report}");
    assert_eq!(report["failures"], serde_json::json!([]), "{report}");
    for t in ["orders_topic", "clicks_topic", "errors_topic"] {
        let r = &report["topics"][t];
        assert!(
            r["spark_rows"].as_u64().unwrap() > 0 && r["shopwatch_rows"].as_u64().unwrap() > 0,
            "{r}"
        );
        assert_eq!(
            r["spark_rows"].as_u64().unwrap() + r["shopwatch_rows"].as_u64().unwrap(),
            r["messages"].as_u64().unwrap(),
            "{r}"
        );
    }
    assert!(
        report["kpi"]["spark_windows"].as_u64().unwrap() > 0,
        "{report}"
    );
    run.signal(libc::SIGTERM);
    assert!(run.wait_exit(Duration::from_secs(30)).unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_latest_adds_exactly_what_is_produced_after_start_and_bad_columns_refuse_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, brokers) = broker(dir.path());
    before_switch(&brokers);
    let data = dir.path().join("lake");
    make_lake(&brokers, &data, &dir.path().join("ck"), &[]);
    let env = [ENV[0], ("SHOPWATCH_KAFKA__START", "latest")];
    let (mut run, http, _) = run_pipeline_env(&brokers, &data, &env);
    // Wait for the partitions: only then is "latest" a point in the stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let body: Value = match reqwest::get(format!("http://{http}/readyz")).await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let assigned = body["assigned_partitions"].as_object().map_or(0, |m| {
            m.values()
                .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
                .count()
        });
        if assigned == 3 {
            break body;
        }
        assert!(Instant::now() < deadline, "partitions not assigned: {body}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(ready["start"]["orders_topic"], "latest", "{ready}");
    assert_eq!(
        metric_sum(&http, "shopwatch_events_consumed_total").await,
        0.0
    );
    after_switch(&brokers, "3");
    wait_caught_up(&brokers, &data, Duration::from_secs(120)).await;
    let consumed = metric_sum(&http, "shopwatch_events_consumed_total").await;
    assert_eq!(
        consumed, 2000.0,
        "exactly the messages produced after start"
    );
    let report = verify(&brokers, &data);
    let mut ours = 0;
    let mut missing = 0;
    for t in ["orders_topic", "clicks_topic", "errors_topic"] {
        let r = &report["topics"][t];
        assert_eq!(r["duplicates"], 0, "{r}");
        assert_eq!(r["in_both"], 0, "{r}");
        ours += r["shopwatch_rows"].as_u64().unwrap();
        missing += r["missing"].as_u64().unwrap();
    }
    assert_eq!(ours, 2000, "{report}");
    // Spark's planned-but-never-landed batch is what `latest` skips (the guide says so).
    assert!(missing > 0, "{report}");
    run.signal(libc::SIGTERM);
    assert!(run.wait_exit(Duration::from_secs(30)).unwrap().success());

    // A seed table without a column, or with a wrong type: start-up refused, the column named,
    // the table untouched.
    for (broken, table, column) in [
        (
            "orders_processed:drop:price",
            "orders_processed",
            "column price: missing",
        ),
        (
            "orders_revenue_per_minute:string:orders_count",
            "orders_revenue_per_minute",
            "column orders_count: found string, needed long",
        ),
    ] {
        let data = dir.path().join(format!("lake-{table}"));
        make_lake(
            &brokers,
            &data,
            &dir.path().join(format!("ck-{table}")),
            &[broken],
        );
        let before = locations(&data);
        let (mut run, _, _) = run_pipeline_env(&brokers, &data, &ENV);
        let status = run
            .wait_exit(Duration::from_secs(60))
            .expect("start-up must stop");
        assert!(!status.success());
        let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
        assert!(
            log.contains(&format!("table {table} cannot be adopted")) && log.contains(column),
            "{log}"
        );
        assert_eq!(locations(&data), before, "{table} was touched");
    }
}

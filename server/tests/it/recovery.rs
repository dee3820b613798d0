//! A crash or a new member reads only what was in flight: after SIGKILL and restart, and when
//! a second instance joins, the records read again stay within what a batch in flight holds
//! (none when nothing was in flight); dead letters buffered at a crash are rebuilt from the
//! first of them only; a lake written before `dead-letters-from` existed recovers once and then
//! keeps up. Every record and dead letter exactly once (pyiceberg).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use shopwatch_load::generator::{Generator, Stream};

use crate::harness::*;

/// (topic, partition) → offsets of the malformed records acked there.
type Malformed = BTreeMap<(String, i32), Vec<i64>>;

/// `per_topic` events to each of the three topics (the generator's payloads, `malformed` of
/// them deliberately broken), acked one line each into `acks` as `shopwatch produce` logs them.
async fn produce_per_topic(
    brokers: &str,
    per_topic: usize,
    malformed: f64,
    seed: u64,
    acks: &Path,
) -> Malformed {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut generator = Generator::new(seed, malformed);
    let mut sent: BTreeMap<&str, usize> = BTreeMap::new();
    let mut log = std::io::BufWriter::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(acks)
            .unwrap(),
    );
    let mut bad = Malformed::new();
    let mut pending = Vec::new();
    while TOPICS
        .iter()
        .any(|(t, _)| sent.get(t).copied().unwrap_or(0) < per_topic)
    {
        let event = generator.next();
        let topic = match event.stream {
            Stream::Orders => "orders_topic",
            Stream::Clicks => "clicks_topic",
            Stream::Errors => "errors_topic",
        };
        let n = sent.entry(topic).or_default();
        if *n >= per_topic {
            continue;
        }
        *n += 1;
        let delivery = producer
            .send_result(FutureRecord::<(), [u8]>::to(topic).payload(&event.payload))
            .map_err(|(e, _)| e)
            .unwrap();
        pending.push((delivery, topic, event.id, event.malformed));
        if pending.len() >= 5_000 {
            drain(&mut pending, &mut log, &mut bad).await;
        }
    }
    drain(&mut pending, &mut log, &mut bad).await;
    log.flush().unwrap();
    bad
}

type Pending = Vec<(
    rdkafka::producer::DeliveryFuture,
    &'static str,
    String,
    Option<&'static str>,
)>;

async fn drain(pending: &mut Pending, log: &mut impl Write, bad: &mut Malformed) {
    for (delivery, topic, id, malformed) in pending.drain(..) {
        let d = delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
        if malformed.is_some() {
            bad.entry((topic.to_string(), d.partition))
                .or_default()
                .push(d.offset);
        }
        let line = serde_json::json!({
            "topic": topic, "partition": d.partition, "offset": d.offset,
            "id": id, "malformed": malformed,
        });
        writeln!(log, "{line}").unwrap();
    }
}

async fn readyz(http: &str) -> serde_json::Value {
    match reqwest::get(format!("http://{http}/readyz")).await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    }
}

/// Waits until the instance has taken partitions of every topic and caught up with them;
/// returns its `/readyz` recovery section.
async fn recovered(http: &str, timeout: Duration) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let r = readyz(http).await;
        let done = TOPICS.iter().all(|(t, _)| {
            let held = r["assigned_partitions"][t]
                .as_array()
                .is_some_and(|a| !a.is_empty());
            held && r["recovery"][t]["recovering_since_ms"].is_null()
                && r["recovery"][t]["last"].is_object()
        });
        if done {
            return r["recovery"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "{http} did not take and catch up with partitions of every topic in {timeout:?}: {r}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// (records consumed, records re-read below the raw position) by one process so far.
async fn reads(http: &str) -> (f64, f64) {
    let body = metrics_body(http).await;
    let sum = |name| shopwatch_load::drill::watch::metric_sum(&body, name);
    (
        sum("shopwatch_events_consumed_total"),
        sum("shopwatch_records_reread_total"),
    )
}

fn recovery_reread(recovery: &serde_json::Value) -> u64 {
    TOPICS
        .iter()
        .map(|(t, _)| recovery[t]["last"]["reread"].as_u64().unwrap_or(0))
        .sum()
}

async fn kill(p: &mut Proc) {
    p.signal(libc::SIGKILL);
    p.wait_exit(Duration::from_secs(10)).expect("killed");
}

async fn stop(mut p: Proc) {
    p.signal(libc::SIGTERM);
    let status = p.wait_exit(Duration::from_secs(30)).expect("SIGTERM stops");
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_or_a_new_member_reads_only_what_was_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, brokers) = broker(dir.path());
    let data = dir.path().join("lake");
    let acks = dir.path().join("acks.jsonl");
    produce_per_topic(&brokers, 20_000, 0.0, 3, &acks).await;
    // A batch holds at most 500 records per topic: the bound on what can be in flight.
    let env = [("SHOPWATCH_PIPELINE__MAX_BATCH_ROWS", "500")];
    let (mut a, http_a, _) = run_pipeline_env(&brokers, &data, &env);
    wait_caught_up(&brokers, &data, Duration::from_secs(300)).await;
    recovered(&http_a, Duration::from_secs(60)).await;
    let (consumed, reread) = reads(&http_a).await;
    assert_eq!(
        (consumed, reread),
        (60_000.0, 0.0),
        "the first run reads each record once"
    );

    // (a) SIGKILL with nothing in flight, restart: nothing is read again.
    kill(&mut a).await;
    let started = Instant::now();
    let (a2, http_a2, _) = run_pipeline_env(&brokers, &data, &env);
    let rec = recovered(&http_a2, Duration::from_secs(90)).await;
    eprintln!(
        "restart after SIGKILL: caught up {:?} after start: {rec}",
        started.elapsed()
    );
    assert_eq!(
        reads(&http_a2).await,
        (0.0, 0.0),
        "restart after SIGKILL: {rec}"
    );

    // (b) A second instance joins: it starts its share where the lake is.
    let (mut b, http_b, _) = run_pipeline_env(&brokers, &data, &env);
    let rec = recovered(&http_b, Duration::from_secs(120)).await;
    eprintln!("second instance: {rec}");
    assert_eq!(reads(&http_b).await, (0.0, 0.0), "joining instance: {rec}");

    // (c) SIGKILL while records flow: what the killed instance read but had not committed is
    // read once more by the next owner, at most a batch per topic; nothing below the lake.
    let held_by_b = readyz(&http_b).await["assigned_partitions"].clone();
    let before = (reads(&http_a2).await.0, raw_positions(&data).await);
    let producing = {
        let (brokers, acks) = (brokers.clone(), acks.clone());
        tokio::spawn(async move {
            let mut p = produce(&brokers, 6_000, Some(1_500), 0.0, 5, &acks);
            p.wait_exit(Duration::from_secs(120)).map(|s| s.success())
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    // (d) While both commit, the lake is maintained once: the rollup owner runs data compaction, snapshot
    // expiry and the orphan sweep; an instance that never owned ran none of them.
    let (mut maintainers, mut owner_runs) = (0, 0.0);
    for http in [&http_a2, &http_b] {
        let (maintains, runs, gained) = maintenance(http).await;
        let commits = shopwatch_load::drill::watch::metric_sum(
            &metrics_body(http).await,
            "shopwatch_commits_total",
        );
        eprintln!("{http}: maintainer {maintains}, {commits} commit attempts, separate maintenance steps run {runs}, owned {gained} times");
        if maintains {
            maintainers += 1;
            owner_runs = runs;
        } else if gained == 0 {
            assert_eq!(runs, 0.0, "{http} never owned, yet maintained");
        }
    }
    assert_eq!(maintainers, 1, "exactly one instance maintains");
    assert!(owner_runs > 0.0, "the maintainer ran no maintenance step");
    kill(&mut b).await;
    // What b committed before it died.
    let at_kill = raw_positions(&data).await;
    let committed_by_b: i64 = at_kill
        .iter()
        .filter(|((t, p), _)| {
            held_by_b[t]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x.as_i64() == Some(*p as i64)))
        })
        .map(|(k, o)| o - before.1.get(k).copied().unwrap_or(0))
        .sum();
    let (b2, http_b2, _) = run_pipeline_env(&brokers, &data, &env);
    assert_eq!(producing.await.unwrap(), Some(true));
    wait_caught_up(&brokers, &data, Duration::from_secs(180)).await;
    let (a_read, a_reread) = reads(&http_a2).await;
    let (b2_read, b2_reread) = reads(&http_b2).await;
    // The survivors read everything b did not commit, plus what b held in flight.
    let in_flight = (a_read - before.0 + b2_read) as i64 - (6_000 - committed_by_b);
    eprintln!(
        "kill in flight: b had committed {committed_by_b} of 6,000; the others read {} (a {}, b's successor {b2_read}): {in_flight} read twice, {} below the lake",
        a_read - before.0 + b2_read,
        a_read - before.0,
        a_reread + b2_reread
    );
    assert_eq!(
        a_reread + b2_reread,
        0.0,
        "nothing below the lake's position"
    );
    assert!(
        (0..=3 * 500).contains(&in_flight),
        "records read twice: {in_flight}, more than a batch per topic"
    );
    stop(b2).await;
    stop(a2).await;
    let summary = check_lake(&data, &acks);
    assert_eq!(summary["acked"], 66_000);
}

/// (maintains now, maintenance steps with commits of their own run here, times it became the
/// rollup owner).
async fn maintenance(http: &str) -> (bool, f64, u64) {
    let body = metrics_body(http).await;
    let maintains = shopwatch_load::drill::watch::metric_sum(&body, "shopwatch_maintainer") == 1.0;
    let runs: f64 = body
        .lines()
        .filter(|l| l.starts_with("shopwatch_maintenance_runs_total{"))
        .filter(|l| !l.contains("step=\"manifest_compaction\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let gained = readyz(http).await["election"]["times_gained"]
        .as_u64()
        .unwrap_or(0);
    (maintains, runs, gained)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_buffered_at_a_crash_are_rebuilt_from_the_first_of_them_only() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, brokers) = broker(dir.path());
    let data = dir.path().join("lake");
    let acks = dir.path().join("acks.jsonl");
    let topics = TOPICS.map(|(t, _)| t.to_string());
    let highs = || shopwatch_load::drill::watch::high_watermarks(&brokers, &topics, 3).unwrap();
    // A clean history, then traffic with malformed records: the buffered span is the tail.
    produce_per_topic(&brokers, 15_000, 0.0, 8, &acks).await;
    let mut malformed = produce_per_topic(&brokers, 5_000, 0.01, 9, &acks).await;
    // Dead letters stay buffered: no flush by count or time.
    let hold = [
        ("SHOPWATCH_PIPELINE__DEAD_LETTER_FLUSH_ROWS", "1000000"),
        (
            "SHOPWATCH_PIPELINE__DEAD_LETTER_FLUSH_INTERVAL_MS",
            "3600000",
        ),
    ];
    let (mut a, http, _) = run_pipeline_env(&brokers, &data, &hold);
    wait_caught_up(&brokers, &data, Duration::from_secs(300)).await;
    recovered(&http, Duration::from_secs(60)).await;
    kill(&mut a).await;
    // The buffered span: from each partition's first malformed record to its end (the raw
    // table has everything, the dead-letter table nothing).
    let first_highs = highs();
    let span: i64 = malformed
        .iter()
        .map(|(k, offsets)| {
            first_highs[k] - offsets.iter().min().copied().unwrap_or(first_highs[k])
        })
        .sum();
    assert!(span > 0 && span <= 15_000, "{span}");

    // Killed with dead letters buffered: read again from the first of them only, and the
    // rebuilt dead letters are committed at once (a second crash would not pay it again).
    let (mut a, http, _) = run_pipeline_env(&brokers, &data, &hold);
    let rec = recovered(&http, Duration::from_secs(90)).await;
    let (_, reread) = reads(&http).await;
    eprintln!("dead letters buffered at the crash: span {span}, re-read {reread}: {rec}");
    assert_eq!(reread as i64, span, "{rec}");
    assert_eq!(recovery_reread(&rec) as i64, span, "{rec}");
    let first: usize = malformed.values().map(Vec::len).sum();
    dead_letters_committed(&http, first).await;

    // More traffic, its dead letters buffered again, and a crash...
    produce_per_topic(&brokers, 5_000, 0.0, 10, &acks).await;
    for (k, v) in produce_per_topic(&brokers, 2_000, 0.01, 11, &acks).await {
        malformed.entry(k).or_default().extend(v);
    }
    wait_caught_up(&brokers, &data, Duration::from_secs(120)).await;
    kill(&mut a).await;
    // ...on a lake as an earlier version left it (no dead-letters-from): it recovers once,
    // reading back to the dead-letter table's position (where the first crash left it)...
    python(
        "forget_dead_letters_from.py",
        &["--data-dir", data.to_str().unwrap()],
    );
    // Where the dead-letter table is: the first crash's dead letters were committed as soon as
    // they were rebuilt, for the partitions that had any; the others never moved it.
    let dead_letters_at = dead_letter_positions(&data).await;
    let since_dead_letters: i64 = highs()
        .iter()
        .map(|(k, h)| h - dead_letters_at.get(k).copied().unwrap_or(0))
        .sum();
    assert!(since_dead_letters >= 21_000, "{since_dead_letters}");
    let flush = [("SHOPWATCH_PIPELINE__DEAD_LETTER_FLUSH_INTERVAL_MS", "1000")];
    let (mut a, http, _) = run_pipeline_env(&brokers, &data, &flush);
    let rec = recovered(&http, Duration::from_secs(90)).await;
    assert_eq!(reads(&http).await.1 as i64, since_dead_letters, "{rec}");
    let all: usize = malformed.values().map(Vec::len).sum();
    dead_letters_committed(&http, all - first).await;
    kill(&mut a).await;
    // ...and then keeps up: the next crash reads nothing again.
    let (a, http, _) = run_pipeline_env(&brokers, &data, &flush);
    let rec = recovered(&http, Duration::from_secs(90)).await;
    assert_eq!(reads(&http).await, (0.0, 0.0), "{rec}");
    stop(a).await;
    let summary = check_lake(&data, &acks);
    assert_eq!(summary["acked"], 81_000);
    assert_eq!(
        summary["tables"]["dead_letters"]["rows"].as_u64(),
        Some(all as u64)
    );
}

/// Waits until the process has committed `n` dead letters.
async fn dead_letters_committed(http: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(
        http,
        r#"shopwatch_rows_committed_total{table="dead_letters"}"#,
    )
    .await
        < n as f64
    {
        assert!(
            Instant::now() < deadline,
            "{n} dead letters never committed"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

//! The malformed-input corpus (load/corpus, one file per case, outcome fixed in the file):
//! every case through the real broker and `shopwatch run`, checked with pyiceberg.

use std::path::PathBuf;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::harness::*;

struct Case {
    name: String,
    topic: String,
    payload: Vec<u8>,
    doc: toml::Table,
}

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn generate(spec: &str) -> Vec<u8> {
    let (kind, n) = spec.split_once(':').expect("generate = kind:n");
    let n: usize = n.parse().unwrap();
    match kind {
        // A valid error event with an unknown field nested n deep: the decoder skips unknown
        // values without recursing, so no stack is at risk and the event is kept.
        "nest_field" => format!(
            r#"{{"error_id": "e-deep", "service_name": "cart", "error_message": "x", "severity": "WARN", "error_time": "2026-11-24T10:00:00", "nested": {}{}}}"#,
            "[".repeat(n),
            "]".repeat(n)
        )
        .into_bytes(),
        // A bare array n deep where an object must be.
        "nest" => format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes(),
        // A valid click whose url pads the value to n bytes.
        "pad" => {
            let head = r#"{"click_id": "c-big", "user_id": "u-1", "device_type": "mobile", "click_time": "2026-11-24T10:00:00", "url": ""#;
            let tail = r#""}"#;
            let pad = "x".repeat(n - head.len() - tail.len());
            format!("{head}{pad}{tail}").into_bytes()
        }
        // A valid click whose user id is n bytes.
        "long_id" => format!(
            r#"{{"click_id": "c-long", "user_id": "{}", "url": "/", "device_type": "mobile", "click_time": "2026-11-24T10:00:00"}}"#,
            "u".repeat(n)
        )
        .into_bytes(),
        other => panic!("unknown generator {other}"),
    }
}

fn corpus() -> Vec<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../load/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let doc: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
            let payload = if let Some(p) = doc.get("payload") {
                p.as_str().unwrap().as_bytes().to_vec()
            } else if let Some(h) = doc.get("payload_hex") {
                hex(h.as_str().unwrap())
            } else {
                generate(doc["generate"].as_str().unwrap())
            };
            Case {
                name: path.file_stem().unwrap().to_string_lossy().into_owned(),
                topic: format!("{}_topic", doc["topic"].as_str().unwrap()),
                payload,
                doc,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_case_lands_where_its_file_says_with_no_restart() {
    let cases = corpus();
    assert!(cases.len() >= 20, "corpus has {} cases", cases.len());
    let dir = tempfile::tempdir().unwrap();
    let (_broker, brokers) = broker(dir.path());
    let data = dir.path().join("lake");
    let (mut run, http, _) = run_pipeline_env(&brokers, &data, &[]);

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        // The 1 MiB case must reach the broker: the pipeline is what refuses it.
        .set("message.max.bytes", "2000000")
        .create()
        .unwrap();
    let mut expected = Vec::new();
    for c in &cases {
        let record: FutureRecord<'_, (), [u8]> = FutureRecord::to(&c.topic).payload(&c.payload);
        let delivery = producer
            .send(record, Duration::from_secs(30))
            .await
            .unwrap_or_else(|(e, _)| panic!("{}: produce failed: {e}", c.name));
        let (partition, offset) = (delivery.partition, delivery.offset);
        let mut entry = serde_json::json!({
            "case": c.name, "topic": c.topic, "partition": partition, "offset": offset,
            "expect": c.doc["expect"].as_str().unwrap(),
        });
        if let Some(r) = c.doc.get("reason") {
            entry["reason"] = r.as_str().unwrap().into();
        }
        if let Some(s) = c.doc.get("stored") {
            entry["stored"] = serde_json::to_value(s).unwrap();
        }
        expected.push(entry);
    }
    wait_caught_up(&brokers, &data, Duration::from_secs(120)).await;
    let restarts = metric_sum(&http, "shopwatch_actor_restarts_total").await;
    let dead = metric_sum(&http, "shopwatch_dead_letters_total").await;
    run.signal(libc::SIGTERM);
    assert!(run.wait_exit(Duration::from_secs(30)).unwrap().success());

    let file = dir.path().join("cases.json");
    std::fs::write(&file, serde_json::to_vec(&expected).unwrap()).unwrap();
    let out = python(
        "corpus_check.py",
        &[data.to_str().unwrap(), file.to_str().unwrap()],
    );
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["problems"], serde_json::json!([]), "{summary:#}");
    assert_eq!(restarts, 0.0, "malformed input restarted an actor");
    let dead_expected = expected
        .iter()
        .filter(|e| e["expect"] == "dead_letter")
        .count();
    assert_eq!(dead as usize, dead_expected, "dead-letter counter");
}

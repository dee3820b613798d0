//! The lake on a real S3-compatible server: moto's standalone server (from PyPI) on loopback,
//! written by the pipeline through object_store and read back by pyiceberg (pyarrow's S3
//! filesystem) and through the embedded Flight SQL server.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shopwatch_actors::lake::LakeParams;

use crate::harness::*;

const KEY: &str = "shopwatch-test-key";
const SECRET: &str = "shopwatch-test-secret";

/// `moto_server` on a free port with one bucket created; killed on drop.
fn s3_server(dir: &std::path::Path, bucket: &str) -> (Proc, String) {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join("moto.log")).unwrap();
    let proc_ = Proc(
        Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("moto_server not found: run .ci/run (it pip-installs moto[server])"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let made = Command::new("python3")
        .args([
            "-c",
            "import boto3,sys; boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id=sys.argv[3], \
             aws_secret_access_key=sys.argv[4], region_name='us-east-1').create_bucket(Bucket=sys.argv[2])",
            &endpoint,
            bucket,
            KEY,
            SECRET,
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success(), "creating bucket {bucket}");
    (proc_, endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_warehouse_exactly_once_across_a_sigkill_and_read_over_flight() {
    let dir = tempfile::tempdir().unwrap();
    let (_s3, endpoint) = s3_server(dir.path(), "lakehouse");
    let (_broker, brokers) = broker(dir.path());
    let data = dir.path().join("lake");
    let acks = dir.path().join("acks.jsonl");
    let warehouse = "s3://lakehouse/warehouse";
    let env = [
        ("SHOPWATCH_LAKE__WAREHOUSE", warehouse),
        ("SHOPWATCH_LAKE__S3__ENDPOINT", endpoint.as_str()),
        ("SHOPWATCH_LAKE__S3__ACCESS_KEY_ID", KEY),
        ("SHOPWATCH_LAKE__S3__SECRET_ACCESS_KEY", SECRET),
        ("SHOPWATCH_MAINTENANCE__COMPACT_EVERY_COMMITS", "5"),
        ("SHOPWATCH_MAINTENANCE__EVERY_COMMITS", "5"),
    ];
    let mut producer = produce(&brokers, 20_000, Some(2_500), 0.01, 23, &acks);
    let (mut run, _http, flight) =
        pipeline_killed_once(&brokers, &data, &env, Duration::from_millis(3_500)).await;
    assert!(producer
        .wait_exit(Duration::from_secs(120))
        .unwrap()
        .success());

    let mut params = LakeParams::local("shopwatch", "ecommerce_db", data.clone());
    params.warehouse = warehouse.to_string();
    params.storage = [
        ("s3.endpoint", endpoint.as_str()),
        ("s3.access-key-id", KEY),
        ("s3.secret-access-key", SECRET),
        ("s3.region", "us-east-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    wait_caught_up_lake(&brokers, params.clone(), &data, Duration::from_secs(180)).await;
    // Nothing went to the local disk but the catalog database.
    assert!(!data.join("warehouse").exists());

    let s3_args = [
        "--warehouse",
        warehouse,
        "--s3-endpoint",
        &endpoint,
        "--s3-key",
        KEY,
        "--s3-secret",
        SECRET,
    ];
    // The embedded Flight SQL server reads the S3 warehouse: pyarrow and ADBC against a
    // pyiceberg recount of the same lake (raw tables: the windows of a live stream are still
    // open here; the KPI path does not depend on the storage).
    flight_matches_the_lake(&flight, &data, &s3_args);

    run.signal(libc::SIGTERM);
    assert!(run.wait_exit(Duration::from_secs(30)).unwrap().success());
    // The core's exactly-once check, reading S3 with pyarrow's own S3 client.
    let summary = check_lake_with(&data, &acks, &s3_args);
    assert_eq!(summary["acked"], 20_000);
    assert!(summary["tables"]["dead_letters"]["rows"].as_u64().unwrap() > 50);
    // The secret key never reaches the log.
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(!log.contains(SECRET));
}

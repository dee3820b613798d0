use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use shopwatch_actors::lake::commit::recorded_offsets;
use shopwatch_actors::lake::{Lake, LakeParams};

pub const BIN: &str = env!("CARGO_BIN_EXE_shopwatch");
pub const TOPICS: [(&str, &str); 3] = [
    ("orders_topic", "orders_processed"),
    ("clicks_topic", "clicks_processed"),
    ("errors_topic", "errors_processed"),
];

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped.
pub struct Proc(pub Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
impl Proc {
    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.0.id() as i32, sig);
        }
    }
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.0.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// `shopwatch broker` on a free port; waits for its ready line.
pub fn broker(dir: &Path) -> (Proc, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(BIN)
        .args(["broker", "--listen", &addr, "--data-dir"])
        .arg(dir.join("broker"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    while reader.read_line(&mut line).unwrap() > 0 {
        if line.starts_with("broker ready") {
            break;
        }
        line.clear();
    }
    assert!(
        line.starts_with("broker ready"),
        "broker did not start: {line}"
    );
    std::thread::spawn(move || for _ in reader.lines() {});
    (Proc(child), addr)
}

pub fn run_pipeline(brokers: &str, data_dir: &Path) -> Proc {
    run_pipeline_env(brokers, data_dir, &[]).0
}

/// `shopwatch run` with extra `SHOPWATCH_*` settings; returns the process, its HTTP address
/// and its Flight SQL address.
pub fn run_pipeline_env(
    brokers: &str,
    data_dir: &Path,
    env: &[(&str, &str)],
) -> (Proc, String, String) {
    let http = format!("127.0.0.1:{}", free_port());
    let flight = format!("127.0.0.1:{}", free_port());
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_dir.with_extension("log"))
        .unwrap();
    let proc_ = Proc(
        Command::new(BIN)
            .args([
                "run",
                "--brokers",
                brokers,
                "--http",
                &http,
                "--flight",
                &flight,
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .env("SHOPWATCH_PIPELINE__COMMIT_INTERVAL_MS", "500")
            .envs(env.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    (proc_, http, flight)
}

pub async fn metrics_body(http: &str) -> String {
    // A server that accepted but never answers (stuck in start-up) fails the caller's check
    // after 30 s with what it lacks, instead of hanging the test until nextest kills it.
    let read = async {
        let Ok(mut stream) = tokio::net::TcpStream::connect(http).await else {
            return String::new();
        };
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let req = format!("GET /metrics HTTP/1.0\r\nHost: {http}\r\n\r\n");
        if stream.write_all(req.as_bytes()).await.is_err() {
            return String::new();
        }
        let mut body = String::new();
        let _ = stream.read_to_string(&mut body).await;
        body
    };
    match tokio::time::timeout(Duration::from_secs(30), read).await {
        Ok(body) => body,
        Err(_) => {
            eprintln!("GET http://{http}/metrics: no answer within 30 s");
            String::new()
        }
    }
}

/// Value of one Prometheus sample (`name{labels}` exactly as exposed), 0 when absent.
pub async fn metric(http: &str, sample: &str) -> f64 {
    metrics_body(http)
        .await
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Sum of every sample of `name`, whatever its labels.
pub async fn metric_sum(http: &str, name: &str) -> f64 {
    shopwatch_load::drill::watch::metric_sum(&metrics_body(http).await, name)
}

/// Run a Python script from tests/py; returns its stdout, panics when it fails.
pub fn python(script: &str, args: &[&str]) -> String {
    python_env(script, args, &[])
}

/// `python` with `SHOPWATCH_*` settings the pipeline ran with (the checkers read the tables'
/// windows from `shopwatch tables --json`, which reads the same settings).
pub fn python_env(script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new("python3")
        .arg(script_path(script))
        .args(args)
        // The checkers take their table list from `shopwatch tables --json`.
        .env("SHOPWATCH_BIN", BIN)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Flight SQL (pyarrow and ADBC) reads the raw tables with the same rows and ids as a
/// pyiceberg recount of the lake described by `lake_args` (raw only: a live stream's windows
/// are still open).
pub fn flight_matches_the_lake(flight: &str, data_dir: &Path, lake_args: &[&str]) {
    let mut args = vec![
        "--flight",
        flight,
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--raw-only",
    ];
    args.extend(lake_args);
    let summary = python("flight_check.py", &args);
    assert!(
        summary.contains("adbc clicks_processed rows and ids"),
        "{summary}"
    );
}

pub fn produce(
    brokers: &str,
    count: u64,
    rate: Option<u64>,
    malformed: f64,
    seed: u64,
    ack_log: &Path,
) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "produce",
        "--brokers",
        brokers,
        "--count",
        &count.to_string(),
        "--seed",
        &seed.to_string(),
        "--quiet",
    ])
    .args(["--malformed", &malformed.to_string(), "--ack-log"])
    .arg(ack_log)
    .stdout(Stdio::null());
    if let Some(r) = rate {
        cmd.args(["--rate", &r.to_string()]);
    }
    Proc(cmd.spawn().unwrap())
}

/// Every raw table's recorded position: (topic, partition) → next offset.
pub async fn raw_positions(data_dir: &Path) -> std::collections::BTreeMap<(String, i32), i64> {
    positions(data_dir, |table| table).await
}

/// The dead-letter table's recorded position per topic: (topic, partition) → next offset.
pub async fn dead_letter_positions(
    data_dir: &Path,
) -> std::collections::BTreeMap<(String, i32), i64> {
    positions(data_dir, |_| "dead_letters").await
}

async fn positions(
    data_dir: &Path,
    table_of: impl Fn(&'static str) -> &'static str,
) -> std::collections::BTreeMap<(String, i32), i64> {
    let lake = Lake::open(LakeParams::local(
        "shopwatch",
        "ecommerce_db",
        data_dir.to_path_buf(),
    ))
    .await
    .unwrap();
    let mut out = std::collections::BTreeMap::new();
    for (topic, table) in TOPICS {
        let Ok(t) = lake
            .catalog
            .load_unpinned(&lake.ident(table_of(table)))
            .await
        else {
            continue;
        };
        for (p, o) in recorded_offsets(&t, topic).unwrap() {
            out.insert((topic.to_string(), p), o);
        }
    }
    out
}

/// True once every raw table's recorded offsets reach the broker's high watermarks.
pub async fn caught_up(brokers: &str, data_dir: &Path) -> bool {
    caught_up_lake(
        brokers,
        LakeParams::local("shopwatch", "ecommerce_db", data_dir.to_path_buf()),
    )
    .await
}

/// `caught_up` for any lake (an S3 warehouse, say).
pub async fn caught_up_lake(brokers: &str, params: LakeParams) -> bool {
    let Ok(lake) = Lake::open(params).await else {
        return false;
    };
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for (topic, table) in TOPICS {
        let Ok(t) = lake.catalog.load_unpinned(&lake.ident(table)).await else {
            return false;
        };
        let offsets = recorded_offsets(&t, topic).unwrap();
        for p in 0..3 {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(5))
                .unwrap();
            if high > 0 && offsets.get(&p).copied().unwrap_or(0) < high {
                return false;
            }
        }
    }
    true
}

/// `wait_caught_up` for a lake elsewhere than `data_dir` (S3, a REST catalog): `params` says
/// where; the pipeline's log is still next to `data_dir`.
pub async fn wait_caught_up_lake(
    brokers: &str,
    params: LakeParams,
    data_dir: &Path,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    while !caught_up_lake(brokers, params.clone()).await {
        assert!(
            Instant::now() < deadline,
            "pipeline did not catch up within {timeout:?}; see {}",
            data_dir.with_extension("log").display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Start the pipeline, SIGKILL it after `after`, start it again; the second one's (process,
/// http, flight).
pub async fn pipeline_killed_once(
    brokers: &str,
    data_dir: &Path,
    env: &[(&str, &str)],
    after: Duration,
) -> (Proc, String, String) {
    let (mut run, _, _) = run_pipeline_env(brokers, data_dir, env);
    tokio::time::sleep(after).await;
    run.signal(libc::SIGKILL);
    run.wait_exit(Duration::from_secs(10)).expect("killed");
    run_pipeline_env(brokers, data_dir, env)
}

pub async fn wait_caught_up(brokers: &str, data_dir: &Path, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        // One look may not hang past the deadline (a locked catalog, a silent broker).
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        if tokio::time::timeout(left, caught_up(brokers, data_dir)).await == Ok(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!(
        "pipeline did not catch up within {timeout:?}; see {}",
        data_dir.with_extension("log").display()
    );
}

/// The independent lake checkers live with the drill harness in load/checkers.
pub fn checkers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../load/checkers")
}

fn script_path(script: &str) -> PathBuf {
    let checker = checkers_dir().join(script);
    if checker.is_file() {
        checker
    } else {
        py_dir().join(script)
    }
}

pub fn py_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py")
}

/// Run the independent pyiceberg checker; returns its JSON summary, panics on failure.
pub fn check_lake(data_dir: &Path, ack_log: &Path) -> serde_json::Value {
    check_lake_with(data_dir, ack_log, &[])
}

/// `check_lake` with extra arguments (an S3 warehouse, say).
pub fn check_lake_with(data_dir: &Path, ack_log: &Path, extra: &[&str]) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(script_path("check_lake.py"))
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--ack-log")
        .arg(ack_log)
        .args(extra)
        .env("SHOPWATCH_BIN", BIN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "lake check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap()
}

/// An argon2id hash of `pw`, made as a user makes one: `shopwatch auth hash-password` on stdin.
pub fn hash_password(pw: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(["auth", "hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{pw}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

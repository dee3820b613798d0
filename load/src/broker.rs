//! The local Kafka-protocol broker: Tansu 0.6.0 run as a supervised child process, with the
//! three topics created, so users never type Tansu's flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use tokio::process::{Child, Command};
use tracing::{info, warn};

pub const TANSU_VERSION: &str = "0.6.0";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerStorage {
    /// Persistent (survives broker restarts): the demo and the drills.
    Sqlite,
    /// Fast, lost on exit: benchmarks.
    Memory,
}

#[derive(Clone, Debug)]
pub struct BrokerParams {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub partitions: i32,
    pub topics: Vec<String>,
    pub storage: BrokerStorage,
}

/// The broker process's binary, built beside `shopwatch` from the same package
/// (`server/src/broker_process.rs`): Tansu 0.6.0 linked in as a library, so the dependency graph
/// Tansu and shopwatch share is built once. A binary of its own because Tansu's SQLite (libsql)
/// and the SQL catalog's SQLite define the same C symbols and cannot share one executable.
pub const BROKER_BIN: &str = "shopwatch-broker";

/// The program that runs the broker process: [`BROKER_BIN`] next to the running executable, or
/// `TANSU_BIN`, an external Tansu 0.6.0 binary (built with `--features libsql,dynostore`); both
/// take Tansu's `broker` flags. Always its own process: the drills kill and restart it, and a
/// pipeline crash never takes the broker down.
pub fn broker_program() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("TANSU_BIN").filter(|b| !b.is_empty()) {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().context("locating the running executable")?;
    let bin = exe.with_file_name(BROKER_BIN);
    if !bin.is_file() {
        bail!(
            "the broker binary {} is missing; `cargo build -p shopwatch` builds it beside \
             `shopwatch` (or set TANSU_BIN to a Tansu {TANSU_VERSION} binary)",
            bin.display()
        );
    }
    Ok(bin)
}

/// Make a child get SIGTERM when its parent dies, even by SIGKILL, instead of being orphaned
/// holding its port.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

/// Wait until `lines` (a `shopwatch broker` stdout) says `broker ready`; false on EOF or after
/// `within`.
pub async fn await_ready_line<R>(lines: &mut tokio::io::Lines<R>, within: Duration) -> bool
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    tokio::time::timeout(within, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("broker ready") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false)
}

fn spawn_tansu(bin: &Path, params: &BrokerParams) -> anyhow::Result<Child> {
    std::fs::create_dir_all(&params.data_dir)
        .with_context(|| format!("creating broker data dir {}", params.data_dir.display()))?;
    let url = format!("tcp://{}", params.listen);
    let storage = match params.storage {
        // Relative to the child's working directory, which is the data dir.
        BrokerStorage::Sqlite => "sqlite://tansu.db".to_string(),
        BrokerStorage::Memory => "memory://tansu/".to_string(),
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(params.data_dir.join("tansu.log"))?;
    let mut cmd = Command::new(bin);
    die_with_parent(&mut cmd);
    cmd.arg("broker")
        .args([
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            &storage,
        ])
        .current_dir(&params.data_dir)
        .env_remove("STORAGE_ENGINE")
        .env_remove("LISTENER_URL")
        .env_remove("ADVERTISED_LISTENER_URL")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

async fn wait_for_port(
    addr: SocketAddr,
    child: &mut Child,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("broker exited during start-up ({status}); is {addr} already in use? see tansu.log in the data dir");
        }
        if Instant::now() > deadline {
            bail!("broker did not listen on {addr} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Create the topics (idempotent: existing topics are fine).
pub async fn create_topics(
    brokers: &str,
    topics: &[String],
    partitions: i32,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating Kafka admin client")?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin
        .create_topics(&new, &opts)
        .await
        .context("creating topics")?
    {
        match result {
            Ok(topic) => info!(%topic, partitions, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => bail!("creating topic {topic}: {code}"),
        }
    }
    Ok(())
}

fn terminate(child: &Child) {
    if let Some(pid) = child.id() {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }
}

/// Start the broker and make it ready (listening, topics created). The returned handle keeps
/// it alive; `supervise` restarts it if it dies.
pub struct Broker {
    params: BrokerParams,
    bin: PathBuf,
    child: Child,
}

impl Broker {
    pub async fn start(params: BrokerParams) -> anyhow::Result<Broker> {
        let bin = broker_program()?;
        let mut child = spawn_tansu(&bin, &params)?;
        wait_for_port(params.listen, &mut child, Duration::from_secs(30)).await?;
        create_topics(
            &params.listen.to_string(),
            &params.topics,
            params.partitions,
        )
        .await?;
        Ok(Broker { params, bin, child })
    }

    pub fn brokers(&self) -> String {
        self.params.listen.to_string()
    }

    /// Keep the broker running until `stop` is set; restart it (with backoff) if it exits.
    pub async fn supervise(mut self, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
        let mut restarts = 0u32;
        while !stop.load(Ordering::Relaxed) {
            if let Some(status) = self.child.try_wait()? {
                restarts += 1;
                if restarts > 5 {
                    bail!(
                        "broker exited {restarts} times, last with {status}; see tansu.log in {}",
                        self.params.data_dir.display()
                    );
                }
                warn!(%status, restarts, "broker exited, restarting");
                tokio::time::sleep(Duration::from_millis(500 * u64::from(restarts))).await;
                self.child = spawn_tansu(&self.bin, &self.params)?;
                wait_for_port(self.params.listen, &mut self.child, Duration::from_secs(30)).await?;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.shutdown().await;
        Ok(())
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub async fn shutdown(mut self) {
        terminate(&self.child);
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

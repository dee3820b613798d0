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

/// Where shopwatch installs its own Tansu build (outside any clone, reused across runs).
pub fn tools_root() -> PathBuf {
    if let Ok(dir) = std::env::var("SHOPWATCH_TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home).join(".cache/shopwatch/tools")
}

/// Find the Tansu binary: `TANSU_BIN`, then our tools dir, then `PATH`.
pub fn find_tansu() -> Option<PathBuf> {
    if let Ok(bin) = std::env::var("TANSU_BIN") {
        return Some(PathBuf::from(bin));
    }
    let ours = tools_root().join("bin/tansu");
    if ours.is_file() {
        return Some(ours);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("tansu"))
            .find(|p| p.is_file())
    })
}

/// Find Tansu, building it once with the storage features if it is missing.
pub async fn ensure_tansu() -> anyhow::Result<PathBuf> {
    if let Some(bin) = find_tansu() {
        return Ok(bin);
    }
    let root = tools_root();
    eprintln!(
        "shopwatch: the local broker (Tansu {TANSU_VERSION}) is not installed; building it once into {} \
         (about 12 minutes on 2 cores, reused afterwards)",
        root.display()
    );
    let status = Command::new("cargo")
        .args([
            "install",
            "tansu",
            "--version",
            TANSU_VERSION,
            "--locked",
            "--features",
            "libsql,dynostore",
            "--root",
        ])
        .arg(&root)
        .status()
        .await
        .context("running `cargo install tansu` (is cargo on PATH?)")?;
    if !status.success() {
        bail!("`cargo install tansu --version {TANSU_VERSION} --features libsql,dynostore` failed ({status})");
    }
    find_tansu().context("tansu was installed but its binary was not found")
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
    // SAFETY: prctl is async-signal-safe. If we are SIGKILLed, the broker gets SIGTERM instead
    // of being orphaned holding the port.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
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
        let bin = ensure_tansu().await?;
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

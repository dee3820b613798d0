//! The drill's processes: the broker (`shopwatch broker`, Tansu on SQLite so it survives a
//! restart) and the pipeline (`shopwatch run`), each its own process so it can be signalled.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use super::net::Place;

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid we started; a stale pid only makes it fail.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

fn log_file(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

pub struct BrokerProc {
    bin: PathBuf,
    place: Place,
    pub listen: String,
    data_dir: PathBuf,
    partitions: i32,
    child: Option<Child>,
}

impl BrokerProc {
    pub async fn start(
        bin: &Path,
        place: Place,
        listen: String,
        data_dir: PathBuf,
        partitions: i32,
    ) -> anyhow::Result<Self> {
        let mut b = BrokerProc {
            bin: bin.to_path_buf(),
            place,
            listen,
            data_dir,
            partitions,
            child: None,
        };
        b.up().await?;
        Ok(b)
    }

    /// Start (or restart) on the same address and storage; returns once it serves.
    pub async fn up(&mut self) -> anyhow::Result<()> {
        let mut child = self
            .place
            .command(&self.bin)
            .args(["broker", "--listen", &self.listen, "--partitions"])
            .arg(self.partitions.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .stdout(Stdio::piped())
            .stderr(log_file(&self.data_dir.with_extension("log"))?)
            .kill_on_drop(true)
            .spawn()
            .context("starting `shopwatch broker`")?;
        let stdout = child.stdout.take().context("broker stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = crate::broker::await_ready_line(&mut lines, Duration::from_secs(60)).await;
        if !ready {
            bail!(
                "the broker did not start; see {}",
                self.data_dir.with_extension("log").display()
            );
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
        Ok(())
    }

    /// Stop it (SIGTERM, then SIGKILL after 10 s).
    pub async fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                signal(pid, libc::SIGTERM);
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

pub struct PipelineProc {
    bin: PathBuf,
    /// Its own network namespace with `--netns`.
    pub place: Place,
    brokers: String,
    pub data_dir: PathBuf,
    pub http: String,
    flight: String,
    config: PathBuf,
    env: Vec<(String, String)>,
    pub log: PathBuf,
    child: Option<Child>,
    pub starts: u32,
}

impl PipelineProc {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        bin: &Path,
        place: Place,
        brokers: String,
        data_dir: PathBuf,
        http: String,
        flight: String,
        config: PathBuf,
        env: Vec<(String, String)>,
        log: PathBuf,
    ) -> Self {
        PipelineProc {
            bin: bin.to_path_buf(),
            place,
            brokers,
            data_dir,
            http,
            flight,
            config,
            env,
            log,
            child: None,
            starts: 0,
        }
    }

    /// Another instance like this one (same broker, lake and configuration) in `place` on its
    /// own addresses, logging to `pipeline-{n}.log` beside this one's log.
    pub fn sibling(&self, place: Place, http: String, flight: String, n: usize) -> Self {
        let log = self.log.with_file_name(format!("pipeline-{n}.log"));
        PipelineProc {
            bin: self.bin.clone(),
            place,
            brokers: self.brokers.clone(),
            data_dir: self.data_dir.clone(),
            http,
            flight,
            config: self.config.clone(),
            env: self.env.clone(),
            log,
            child: None,
            starts: 0,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// Start and wait until its HTTP server answers.
    pub async fn start(&mut self) -> anyhow::Result<Duration> {
        let began = Instant::now();
        let log = log_file(&self.log)?;
        let child = self
            .place
            .command(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .args(["run", "--brokers", &self.brokers, "--http", &self.http])
            .args(["--flight", &self.flight])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting `shopwatch run`")?;
        self.child = Some(child);
        self.starts += 1;
        let client = reqwest::Client::new();
        let url = format!("http://{}/livez", self.http);
        while began.elapsed() < Duration::from_secs(60) {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "the pipeline exited during start-up ({status}); see {}",
                    self.log.display()
                );
            }
            if client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(began.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "the pipeline did not answer /livez within 60 s; see {}",
            self.log.display()
        )
    }

    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// SIGTERM and wait up to `limit`; returns the exit code and how long it took, or `None`
    /// when it hung (it is then SIGKILLed).
    pub async fn terminate(&mut self, limit: Duration) -> Option<(Option<i32>, Duration)> {
        let mut child = self.child.take()?;
        let began = Instant::now();
        if let Some(pid) = child.id() {
            signal(pid, libc::SIGTERM);
        }
        match tokio::time::timeout(limit, child.wait()).await {
            Ok(Ok(status)) => Some((status.code(), began.elapsed())),
            _ => {
                let _ = child.kill().await;
                None
            }
        }
    }

    /// The process ended by itself (meltdown, crash): its status.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }
}

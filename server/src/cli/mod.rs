//! The command line: one file per command, each with its arguments and its `run`.

pub mod auth;
#[cfg(feature = "bench")]
pub mod bench;
pub mod bootstrap;
pub mod broker;
pub mod config;
pub mod demo;
pub mod drill;
pub mod migrate;
pub mod probe;
pub mod produce;
pub mod query;
pub mod reference;
pub mod run;
pub mod tables;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Args;
use toml::Value;

use crate::config::{load, Config, Overrides};

/// What every command gets: where the configuration comes from.
pub struct Ctx {
    /// `--config` (default: ./shopwatch.toml if present).
    pub file: Option<PathBuf>,
    /// `--profile` (over SHOPWATCH_PROFILE).
    pub profile: Option<String>,
}

impl Ctx {
    pub fn config(&self, overrides: Overrides) -> anyhow::Result<Config> {
        let mut env: Vec<(String, String)> = std::env::vars().collect();
        if let Some(p) = &self.profile {
            // Last wins: the flag over SHOPWATCH_PROFILE.
            env.push(("SHOPWATCH_PROFILE".into(), p.clone()));
        }
        Ok(load(self.file.as_deref(), &env, overrides)?)
    }
}

/// Flags shared by the commands that run the pipeline.
#[derive(Args, Clone, Default)]
pub struct RunArgs {
    /// Kafka bootstrap servers, HOST:PORT (config `kafka.brokers`).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Directory of the SQLite catalog and the warehouse (config `lake.data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address for /metrics, /livez, /readyz and the page (config `http.listen`).
    #[arg(long)]
    pub http: Option<String>,
    /// Arrow Flight SQL listen address (config `flight.listen`, default 127.0.0.1:32010).
    #[arg(long)]
    pub flight: Option<String>,
}

impl RunArgs {
    pub fn overrides(&self) -> Overrides {
        let mut o: Overrides = Vec::new();
        if let Some(b) = &self.brokers {
            o.push(("kafka.brokers", Value::String(b.clone())));
        }
        if let Some(d) = &self.data_dir {
            o.push(("lake.data_dir", Value::String(d.display().to_string())));
        }
        if let Some(h) = &self.http {
            o.push(("http.listen", Value::String(h.clone())));
        }
        if let Some(f) = &self.flight {
            o.push(("flight.listen", Value::String(f.clone())));
        }
        o
    }
}

/// A flag set on SIGTERM or Ctrl-C.
pub fn stop_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let set = stop.clone();
    tokio::spawn(async move {
        crate::run::shutdown_signal().await;
        set.store(true, Ordering::Relaxed);
    });
    stop
}

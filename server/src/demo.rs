//! `shopwatch demo`: broker process + pipeline + generator + HTTP, one command, no Docker.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use shopwatch_load::produce::{produce, ProduceParams};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::config::Config;
use crate::run::{data_dir_display, run_until, shutdown_signal};

pub async fn demo(mut cfg: Config, seed: u64) -> anyhow::Result<i32> {
    cfg.kafka.brokers = cfg.demo.broker_listen.clone();
    let broker_dir = cfg.lake.data_dir.join("broker");
    let exe = std::env::current_exe().context("locating the shopwatch binary")?;
    let mut cmd = Command::new(exe);
    // If the demo is SIGKILLed, `shopwatch broker` still stops its broker process.
    shopwatch_load::broker::die_with_parent(&mut cmd);
    // Its own process group: a Ctrl-C in the terminal reaches the demo only, which drains the
    // pipeline against a live broker and then stops the broker itself (below). Sharing the
    // group, the broker went down with the pipeline's final commits still talking to it.
    cmd.process_group(0);
    let mut broker = cmd
        .args(["--log-format", crate::logging::format().as_str()])
        .arg("broker")
        .args([
            "--listen",
            &cfg.demo.broker_listen,
            "--partitions",
            &cfg.kafka.partitions.to_string(),
        ])
        .arg("--data-dir")
        .arg(&broker_dir)
        .args([
            "--topics",
            &format!(
                "{},{},{}",
                cfg.topics.orders, cfg.topics.clicks, cfg.topics.errors
            ),
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting `shopwatch broker`")?;
    let stdout = broker.stdout.take().context("broker stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = shopwatch_load::broker::await_ready_line(&mut lines, Duration::from_secs(60)).await;
    if !ready {
        let _ = broker.start_kill();
        bail!(
            "the local broker did not become ready; see {}/tansu.log",
            broker_dir.display()
        );
    }
    // Keep draining the broker's stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let data = data_dir_display(&cfg.lake.data_dir);
    let mut banner = vec!["shopwatch demo".to_string()];
    banner.push(format!(
        "  broker     {} (Tansu, data in {})",
        cfg.demo.broker_listen,
        broker_dir.display()
    ));
    banner.push(format!(
        "  lake       {}/catalog.db (SQLite catalog `{}`), {}/warehouse",
        data.display(),
        cfg.lake.catalog_name,
        data.display()
    ));
    banner.push(format!(
        "  tables     {}.{} (`shopwatch tables` lists their columns)",
        cfg.lake.namespace,
        shopwatch_actors::tables::names().join(", ")
    ));
    if cfg.flight.enabled {
        banner.push(format!(
            "  flight sql grpc+tcp://{} (user {}; tables as {}.{}.<table>; try `shopwatch query --kpis`)",
            cfg.flight.listen, cfg.flight.username, cfg.flight.source, cfg.lake.namespace
        ));
    }
    banner.push(format!(
        "  http       http://{}/  /metrics  /readyz  /livez",
        cfg.http.listen
    ));
    banner.push(format!(
        "  generator  {} events/s, {:.1}% malformed",
        cfg.demo.rate,
        cfg.demo.malformed_fraction * 100.0
    ));
    banner.push(
        "  stop       Ctrl-C (commits what is in flight; run again to continue without duplicates)"
            .to_string(),
    );

    say(&banner);

    let stop_gen = Arc::new(AtomicBool::new(false));
    let params = ProduceParams {
        brokers: cfg.demo.broker_listen.clone(),
        orders_topic: cfg.topics.orders.clone(),
        clicks_topic: cfg.topics.clicks.clone(),
        errors_topic: cfg.topics.errors.clone(),
        rate: Some(cfg.demo.rate),
        count: None,
        duration: None,
        seed,
        malformed_fraction: cfg.demo.malformed_fraction,
        ack_log: None,
        progress: false,
        event_clock: None,
    };
    let generator = tokio::spawn(produce(params, stop_gen.clone()));
    let stop_gen2 = stop_gen.clone();
    let code = run_until(cfg, async move {
        shutdown_signal().await;
        stop_gen2.store(true, Ordering::Relaxed);
    })
    .await;
    stop_gen.store(true, Ordering::Relaxed);
    if let Ok(Ok(report)) = tokio::time::timeout(Duration::from_secs(10), generator).await {
        if let Ok(r) = report {
            say(&[format!(
                "generator: sent {} acked {} errors {}",
                r.sent, r.acked, r.errors
            )]);
        }
    }
    if let Some(pid) = broker.id() {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(15), broker.wait()).await;
    code
}

/// The demo's own lines: on stdout for a person, or as log events when logs are JSON (so every
/// line the process writes parses).
fn say(lines: &[String]) {
    if crate::logging::format() == crate::logging::LogFormat::Json {
        for l in lines {
            tracing::info!("{}", l.trim());
        }
    } else {
        for l in lines {
            println!("{l}");
        }
    }
}

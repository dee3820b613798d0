//! `shopwatch drill`: fault injection against the real processes, then an independent check.
//!
//! The broker (Tansu on SQLite) and the pipeline run as their own processes. A producer writes
//! N events with unique ids and logs which were acknowledged. A seeded schedule injects faults
//! (SIGKILL at three commit points and at random, actor panics and freezes through the
//! authenticated drill endpoint, broker down, a read-only warehouse, an ambiguous commit,
//! SIGTERM) and heals each. Once production ends and the lake has caught up, pyiceberg
//! checkers count lost, duplicated and unexpected rows, recount KPIs and alerts, and check
//! that recorded offsets never went back and every referenced file exists; the orphan sweeper
//! then runs and must leave no orphan and delete no referenced file.

pub mod check;
mod config;
mod ctx;
mod group;
mod inject;
mod machines;
pub mod net;
mod partition;
pub mod plan;
pub mod procs;
mod production;
mod report;
pub mod watch;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use shopwatch_actors::lake::{Lake, LakeParams};
use tokio::sync::watch as tokio_watch;

use crate::produce::ProduceParams;
use check::Checkers;
use config::write_config;
use plan::{plan, FaultKind, Planned};

use production::Production;
use watch::{Monotonic, Positions};

pub(crate) use ctx::Ctx;
pub use plan::Lane;
pub use report::FaultRecord;

#[derive(Clone, Debug)]
pub struct DrillParams {
    /// The `shopwatch` binary (built with `--features failpoints`).
    pub bin: PathBuf,
    pub events: u64,
    /// Produce rate, events per second over the three topics.
    pub rate: f64,
    pub faults: usize,
    pub seed: u64,
    /// Work directory (default: a new one under the system temp dir).
    pub dir: Option<PathBuf>,
    /// Keep the work directory afterwards (always kept when the drill fails).
    pub keep: bool,
    /// Canary values for every secret, `RUST_LOG=trace`, then search everything the run
    /// exposed for them.
    pub canary: bool,
    pub python: String,
    pub partitions: i32,
    /// Orphan safety age the pipeline runs with (short, so the drill sees it act).
    pub orphan_min_age_s: u64,
    pub topics: [String; 3],
    /// Where the lake lives: a local SQLite catalog and warehouse, or SeaweedFS's Iceberg
    /// REST catalog and S3 (with the server's and S3's own faults), or several instances
    /// in one group on a local lake.
    pub lane: Lane,
    /// How many `shopwatch run` processes share the work (2 or more: the group lane).
    pub instances: usize,
    /// Every instance, the broker and SeaweedFS in its own network namespace, with the
    /// network's faults (partitions, slow and lossy links) among the kinds.
    pub netns: bool,
    /// Exactly these faults (by name, each once; `faults` is ignored) instead of a draw from
    /// the lane's kinds: a scenario such as a rolling restart and a kill.
    pub kinds: Option<Vec<String>>,
}

#[derive(Debug)]
pub struct DrillOutcome {
    pub passed: bool,
    /// Why the drill did not run at all (no network namespaces for `--netns`).
    pub skipped: Option<String>,
    pub dir: PathBuf,
}

fn random_hex(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

pub(crate) fn free_addr() -> anyhow::Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.to_string())
}

pub async fn run(p: DrillParams) -> anyhow::Result<DrillOutcome> {
    if p.faults > 0 && p.events == 0 {
        bail!("--events must be > 0");
    }
    if (p.instances > 1) != p.lane.is_group() {
        bail!(
            "the group lanes run 2 or more instances; --instances {} does not fit {:?}",
            p.instances,
            p.lane
        );
    }
    if p.netns && !p.lane.is_group() {
        bail!("--netns cuts instances apart: run it with --instances 2 or more");
    }
    if p.canary && p.netns {
        bail!("--canary runs on loopback (its canary passwords would be replaced by the network's logins); drop --netns or --canary");
    }
    if p.canary && p.lane.on_seaweed() {
        bail!("--canary runs on the local lane (its canary S3 secret would be overridden by SeaweedFS's keys); drop --lake seaweedfs or --canary");
    }
    let (kinds, total) = match &p.kinds {
        Some(names) => {
            let named = FaultKind::named(names, p.lane, p.netns).map_err(anyhow::Error::msg)?;
            let total = named.len();
            (named, total)
        }
        None => (FaultKind::of(p.lane, p.netns), p.faults),
    };
    let dir = match &p.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("shopwatch-drill-{}-{}", p.seed, random_hex(6))),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = std::fs::canonicalize(&dir)?;
    let net = match p.netns {
        false => None,
        true => match net::probe() {
            Ok(()) => Some(net::Net::create()?),
            Err(reason) => {
                println!("drill SKIPPED: network namespaces are not available here ({reason}); the --netns lane needs root (CAP_NET_ADMIN) and iproute2");
                return Ok(DrillOutcome {
                    passed: true,
                    skipped: Some(reason),
                    dir,
                });
            }
        },
    };
    println!(
        "drill: seed {} · {} events at {:.0} ev/s · {} faults · work dir {}",
        p.seed,
        p.events,
        p.rate,
        total,
        dir.display()
    );
    let lane_flag = match p.lane {
        Lane::Local => String::new(),
        Lane::Seaweed => " --lake seaweedfs".into(),
        Lane::Group => format!(" --instances {}", p.instances),
        Lane::GroupSeaweed => format!(" --instances {} --lake seaweedfs", p.instances),
    } + if p.netns { " --netns" } else { "" };
    let faults_flag = match &p.kinds {
        Some(names) => format!("--kinds {}", names.join(",")),
        None => format!("--faults {}", p.faults),
    };
    println!(
        "drill: replay with `shopwatch drill --seed {} --events {} --rate {} {faults_flag}{lane_flag}`",
        p.seed, p.events, p.rate
    );

    let mut checkers = Checkers::install(&dir.join("checkers"), &p.python)?;
    let token = format!("drill-token-canary-{}", random_hex(16));
    let mut canaries = vec![("drill.token".to_string(), token.clone())];
    if p.canary {
        for key in [
            "flight.password",
            "query.password",
            "lake.s3.secret_access_key",
            "kafka.extra.sasl.password",
        ] {
            canaries.push((
                key.to_string(),
                format!("canary-{}-{}", key.replace('.', "-"), random_hex(12)),
            ));
        }
    }
    let config = dir.join("drill.toml");
    // Off loopback, the pipeline wants logins: the drill's token opens everything.
    let logins = net.as_ref().map(|_| config::Logins {
        token: token.clone(),
        flight_password: format!("drill-flight-{}", random_hex(16)),
    });
    write_config(&config, &p, &canaries, logins.as_ref())?;
    checkers.describe_tables(&p.bin, &config)?;

    let data_dir = dir.join("lake");
    let machines = machines::start(&p, &dir, config, &data_dir, net).await?;
    if let Some(s) = &machines.seaweed {
        checkers.lake_args = s.params.checker_args();
    }
    let brokers = machines.broker.listen.clone();

    let lake = Lake::open(match &machines.seaweed {
        Some(s) => s.params.lake_params(&data_dir),
        None => LakeParams::local("shopwatch", "ecommerce_db", data_dir.clone()),
    })
    .await?;
    let raw: Vec<(String, String)> = p
        .topics
        .iter()
        .cloned()
        .zip(["orders_processed", "clicks_processed", "errors_processed"].map(String::from))
        .collect();
    let followed = watch::followed(&raw);
    let (pos_tx, pos_rx) = tokio_watch::channel(Positions::new());
    let monotonic = Arc::new(Mutex::new(Monotonic::default()));
    let stop_watch = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (lake, followed, monotonic, stop) = (
            lake.clone(),
            followed.clone(),
            monotonic.clone(),
            stop_watch.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(now) = watch::positions(&lake, &followed).await {
                    if let Ok(mut m) = monotonic.lock() {
                        m.observe(&now);
                    }
                    let _ = pos_tx.send(now);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let acks = dir.join("acks.jsonl");
    let production_time = Duration::from_secs_f64(p.events as f64 / p.rate);
    let mut production = Production {
        params: ProduceParams {
            brokers: brokers.clone(),
            orders_topic: p.topics[0].clone(),
            clicks_topic: p.topics[1].clone(),
            errors_topic: p.topics[2].clone(),
            rate: Some(p.rate),
            count: None,
            duration: None,
            seed: p.seed,
            malformed_fraction: 0.01,
            ack_log: Some(acks.clone()),
            progress: false,
            event_clock: None,
        },
        total: p.events,
        segment: 0,
        task: None,
        done: Default::default(),
    };
    production.start();
    let started = Instant::now();
    let mut ctx = Ctx {
        production,
        broker: machines.broker,
        pipeline: machines.pipeline,
        more: machines.more,
        session: Duration::from_secs(6),
        group: report::GroupLog::default(),
        counters: report::PerProcess::default(),
        seaweed: machines.seaweed,
        http: {
            let mut headers = reqwest::header::HeaderMap::new();
            if logins.is_some() {
                let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?;
                v.set_sensitive(true);
                headers.insert(reqwest::header::AUTHORIZATION, v);
            }
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .connect_timeout(Duration::from_secs(3))
                .default_headers(headers)
                .build()?
        },
        token: token.clone(),
        positions: pos_rx,
        warehouse: data_dir.join("warehouse"),
        stuck_timeout: Duration::from_secs(4),
        brokers: brokers.clone(),
        topics: p.topics.to_vec(),
        partitions: p.partitions,
        raw: raw.clone(),
        unplanned_exits: Vec::new(),
        added: p.instances.saturating_sub(1),
        net: machines.net,
    };

    // Faults over the first 80 % of production, so the last process still sees traffic end.
    let schedule: Vec<Planned> = plan(p.seed, total, production_time.mul_f64(0.8), &kinds);
    let mut records = Vec::new();
    for f in &schedule {
        let due = started + f.at;
        tokio::time::sleep_until(due.into()).await;
        let at = started.elapsed();
        println!(
            "drill: fault {:>3}/{} at {:>6.1} s: {}",
            f.index + 1,
            schedule.len(),
            at.as_secs_f64(),
            f.kind.name()
        );
        ctx.revive().await;
        ctx.sample_processes().await;
        let mut rec = if ctx.production.finished() {
            // A fault after the traffic ended would leave the last process without the end
            // of traffic it needs to close windows; the schedule must fit production.
            let mut r = FaultRecord::new(f);
            r.note = "production had already ended: lower --rate or --faults".into();
            r
        } else {
            // The group's faults go to the group; storage and S3 faults act as on one instance.
            if p.lane.is_group() && f.kind.is_group() {
                group::inject(&mut ctx, f).await
            } else if FaultKind::NET.contains(&f.kind) {
                partition::inject(&mut ctx, f).await
            } else {
                inject::inject(&mut ctx, f).await
            }
        };
        rec.at = at;
        if !rec.injected || !rec.healed {
            println!("drill:   {}", rec.note);
        }
        records.push(rec);
    }
    let produced = ctx.production.finish().await?;
    let production_end = chrono::Utc::now();
    println!(
        "drill: producer done: {} acked, {} send errors, {:.1} s",
        produced.acked,
        produced.errors,
        started.elapsed().as_secs_f64()
    );

    // Quiesce: everything committed, every window closed.
    let topics: Vec<String> = p.topics.to_vec();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut caught = false;
    while Instant::now() < deadline {
        ctx.revive().await;
        let high = watch::high_watermarks(&brokers, &topics, p.partitions)?;
        if watch::caught_up(&ctx.positions.borrow(), &raw, &high) {
            caught = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let caught_at = started.elapsed();
    let mut quiet = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    // The silence alerts in the lake (whichever instance raised them): every window closed.
    let silent_since = production_end.timestamp_micros();
    while caught && Instant::now() < deadline {
        if watch::silent_topics(&lake, silent_since).await.unwrap_or(0) >= 3 {
            quiet = true;
            break;
        }
        ctx.revive().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A data compaction has landed (the drill's config runs one every 2 s) before the lake is
    // checked: on a loaded machine the faults can leave it none, and a quiet lake lets it land.
    let deadline = Instant::now() + Duration::from_secs(60);
    let waited = Instant::now();
    while quiet && Instant::now() < deadline {
        let body = ctx.metrics_body().await;
        if watch::metric_sum(&body, "shopwatch_data_files_compacted_written_total") > 0.0 {
            break;
        }
        ctx.revive().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if waited.elapsed() > Duration::from_secs(1) {
        println!(
            "drill: waited {:.1} s for the owner's first data compaction",
            waited.elapsed().as_secs_f64()
        );
    }
    let final_metrics = ctx.metrics_body().await;
    let mut exposed = vec![("/metrics".to_string(), final_metrics.clone())];
    if p.canary {
        exposed.extend(inject::error_bodies(&ctx).await);
    }
    ctx.look_at_group().await;
    // The other instances first; the first one's stop is the one reported.
    for other in &mut ctx.more {
        if !matches!(
            other.terminate(Duration::from_secs(30)).await,
            Some((Some(0), _))
        ) {
            ctx.unplanned_exits
                .push(format!("{} did not stop cleanly on SIGTERM", other.http));
        }
    }
    let last_stop = ctx.pipeline.terminate(Duration::from_secs(30)).await;
    stop_watch.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = watcher.await;
    // One last look after the final commit.
    if let Ok(now) = watch::positions(&lake, &followed).await {
        if let Ok(mut m) = monotonic.lock() {
            m.observe(&now);
        }
    }
    ctx.broker.down().await;

    // The independent checks.
    let dd = data_dir.to_string_lossy().to_string();
    let acks_s = acks.to_string_lossy().to_string();
    let mut lake_args = vec!["--data-dir", dd.as_str(), "--ack-log", acks_s.as_str()];
    let canary_list = canaries
        .iter()
        .map(|(_, v)| v.clone())
        .collect::<Vec<_>>()
        .join(",");
    if p.canary {
        lake_args.extend(["--canaries", canary_list.as_str()]);
    }
    let lake_verdict = checkers.run("check_lake.py", &lake_args)?;
    let kpi_verdict = checkers.run("check_kpis.py", &["--data-dir", dd.as_str()])?;
    let before_sweep = checkers.run("check_history.py", &["--data-dir", dd.as_str()])?;
    let mut sweep_total = shopwatch_actors::lake::maintenance::orphans::SweepReport::default();
    for table in shopwatch_actors::tables::names() {
        // The pipeline is stopped: nothing is in flight, so no safety age is needed.
        let r = shopwatch_actors::lake::maintenance::orphans::sweep(
            &lake,
            &lake.ident(table),
            Duration::ZERO,
            false,
        )
        .await?;
        sweep_total.listed += r.listed;
        sweep_total.referenced += r.referenced;
        sweep_total.deleted += r.deleted;
        sweep_total.bytes_deleted += r.bytes_deleted;
    }
    let after_sweep = checkers.run(
        "check_history.py",
        &["--data-dir", dd.as_str(), "--no-orphans"],
    )?;

    let leaks = if p.canary {
        let log = std::fs::read(&ctx.pipeline.log).unwrap_or_default();
        exposed.push((
            "pipeline log (RUST_LOG=trace)".into(),
            String::from_utf8_lossy(&log).into_owned(),
        ));
        report::find_canaries(&canaries, &exposed)
    } else {
        Vec::new()
    };
    let monotonic = monotonic
        .lock()
        .map(|m| (m.regressions.clone(), m.observations))
        .unwrap_or_default();
    let summary = report::Summary {
        seed: p.seed,
        kinds,
        produced_acked: produced.acked,
        elapsed: started.elapsed(),
        caught,
        caught_at,
        quiet,
        last_stop,
        pipeline_starts: ctx.pipeline.starts + ctx.more.iter().map(|p| p.starts).sum::<u32>(),
        group: p.lane.is_group().then(|| ctx.group.clone()),
        processes: ctx.counters.clone(),
        unplanned_exits: ctx.unplanned_exits.clone(),
        lake: lake_verdict,
        kpis: kpi_verdict,
        before_sweep,
        after_sweep,
        sweep: sweep_total,
        monotonic,
        final_metrics,
        canary: p.canary.then_some(leaks),
    };
    let passed = report::print(&records, &summary);
    if passed && !p.keep && p.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("drill: work dir kept: {}", dir.display());
    }
    Ok(DrillOutcome {
        passed,
        skipped: None,
        dir,
    })
}

//! The multi-instance drill (`--instances N`): N `shopwatch run` processes in one group on one
//! lake, and faults aimed at instances and at the rollup tables' owner. Ownership is read
//! from each instance's `/readyz`; counters that die with a process (fenced batches, records
//! read) are scraped before every fault and kept per process.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::inject::restart_proc;
use super::plan::{FaultKind, Planned};
use super::procs::{signal, PipelineProc};
use super::report::FaultRecord;
use super::Ctx;

async fn get_json(ctx: &Ctx, url: String) -> Option<serde_json::Value> {
    let r = ctx.http.get(url).send().await.ok()?;
    r.json().await.ok()
}

impl Ctx {
    /// Every instance, the first (`pipeline`) included.
    pub fn instances(&mut self) -> Vec<&mut PipelineProc> {
        std::iter::once(&mut self.pipeline)
            .chain(self.more.iter_mut())
            .collect()
    }

    fn instance(&mut self, i: usize) -> &mut PipelineProc {
        if i == 0 {
            &mut self.pipeline
        } else {
            &mut self.more[i - 1]
        }
    }

    pub(crate) fn count(&self) -> usize {
        1 + self.more.len()
    }

    /// Where instance `i` runs (its namespace with `--netns`).
    pub(crate) fn instance_place(&mut self, i: usize) -> super::net::Place {
        self.instance(i).place.clone()
    }

    /// Wait (up to 20 s) until some instance owns the rollup tables, then look at the group:
    /// ownership settles within a session or two after a change.
    pub(crate) async fn settle_ownership(&mut self) {
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(20) && self.owner().await.is_none() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.look_at_group().await;
    }

    /// The index of the instance that owns the rollup tables now, if any.
    pub async fn owner(&self) -> Option<usize> {
        let addrs: Vec<String> = std::iter::once(&self.pipeline)
            .chain(self.more.iter())
            .map(|p| p.http.clone())
            .collect();
        for (i, http) in addrs.into_iter().enumerate() {
            let v = get_json(self, format!("http://{http}/readyz")).await;
            if v.is_some_and(|v| v["rollup_owner"] == serde_json::Value::Bool(true)) {
                return Some(i);
            }
        }
        None
    }

    /// Look at the group: who owns, and what every live process has counted so far.
    pub async fn look_at_group(&mut self) {
        let owner = self.owner().await;
        let pids = self.sample_processes().await;
        let log = &mut self.group;
        log.looks += 1;
        match owner.and_then(|i| pids.get(i)).and_then(|pid| *pid) {
            Some(pid) if log.owners.last() != Some(&pid) => log.owners.push(pid),
            Some(_) => {}
            None => log.ownerless_looks += 1,
        }
    }

    /// Take every live process's counters (they die with it); returns each instance's pid.
    pub async fn sample_processes(&mut self) -> Vec<Option<u32>> {
        let procs: Vec<(Option<u32>, String)> = std::iter::once(&self.pipeline)
            .chain(self.more.iter())
            .map(|p| (p.pid(), p.http.clone()))
            .collect();
        for (pid, http) in &procs {
            let Some(pid) = pid else { continue };
            if let Ok(r) = self.http.get(format!("http://{http}/metrics")).send().await {
                self.counters
                    .observe(*pid, &r.text().await.unwrap_or_default());
            }
        }
        procs.into_iter().map(|(pid, _)| pid).collect()
    }

    /// Start one more instance, on its own addresses (and namespace with `--netns`).
    async fn add_instance(&mut self) -> anyhow::Result<Duration> {
        self.added += 1;
        let n = self.added;
        let (place, http, flight) = super::machines::instance_addrs(self.net.as_mut(), n)?;
        let mut p = self.pipeline.sibling(place, http, flight, n);
        let took = p.start().await?;
        self.more.push(p);
        Ok(took)
    }
}

/// Inject one of the group faults and heal it.
pub async fn inject(ctx: &mut Ctx, f: &Planned) -> FaultRecord {
    let mut rec = FaultRecord::new(f);
    inject_into(ctx, f, &mut rec).await;
    if rec.injected && rec.healed {
        rec.recovery = ctx.next_commit(Duration::from_secs(60)).await;
    }
    rec
}

async fn inject_into(ctx: &mut Ctx, f: &Planned, rec: &mut FaultRecord) {
    // Counters of a process that is about to die.
    ctx.look_at_group().await;
    let mut rng = StdRng::seed_from_u64(f.index as u64 * 7919 + f.hold.as_millis() as u64);
    match f.kind {
        FaultKind::KillOwner => {
            // The first election may still be settling.
            let began = Instant::now();
            let mut owner = ctx.owner().await;
            while owner.is_none() && began.elapsed() < Duration::from_secs(30) {
                tokio::time::sleep(Duration::from_millis(250)).await;
                owner = ctx.owner().await;
            }
            let Some(i) = owner else {
                rec.note = "no instance owned the rollup tables for 30 s".into();
                return;
            };
            rec.detail = format!("instance {i} owned");
            rec.injected = ctx.instance(i).pid().is_some();
            ctx.instance(i).kill().await;
            tokio::time::sleep(f.hold).await;
            restart_proc(ctx.instance(i), rec).await;
        }
        FaultKind::KillRandom => {
            let i = rng.random_range(0..ctx.count());
            rec.detail = format!("instance {i}");
            rec.injected = ctx.instance(i).pid().is_some();
            ctx.instance(i).kill().await;
            tokio::time::sleep(f.hold).await;
            restart_proc(ctx.instance(i), rec).await;
        }
        FaultKind::FreezeInstance => {
            // Half the time the owner: its late rollup commits must be refused.
            let owner = ctx.owner().await;
            let i = match owner {
                Some(o) if rng.random_bool(0.5) => o,
                _ => rng.random_range(0..ctx.count()),
            };
            let Some(pid) = ctx.instance(i).pid() else {
                rec.note = format!("instance {i} is not running");
                return;
            };
            // Past the session (6 s) with room for the group to move its partitions on.
            let freeze = ctx.session + Duration::from_secs(5);
            signal(pid, libc::SIGSTOP);
            rec.injected = true;
            tokio::time::sleep(freeze).await;
            signal(pid, libc::SIGCONT);
            rec.healed = true;
            rec.detail = format!(
                "instance {i}{} frozen {:.0} s",
                if owner == Some(i) { " (owner)" } else { "" },
                freeze.as_secs_f64()
            );
            // Let the zombie wake, commit what it held and be fenced.
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        FaultKind::AddInstance => match ctx.add_instance().await {
            Ok(took) => {
                rec.injected = true;
                tokio::time::sleep(f.hold).await;
                ctx.look_at_group().await;
                // One of the others leaves for good, so the group is back to its size.
                let i = rng.random_range(0..ctx.count() - 1);
                let p = ctx.instance(i);
                let stop = p.terminate(Duration::from_secs(30)).await;
                let removed = if i == 0 {
                    // The first instance is the one the single-instance code paths use: the
                    // newest takes its place.
                    let newest = ctx.more.pop();
                    if let Some(n) = newest {
                        ctx.pipeline = n;
                    }
                    0
                } else {
                    ctx.more.remove(i - 1);
                    i
                };
                match stop {
                    Some((Some(0), t)) => {
                        rec.healed = true;
                        rec.detail = format!(
                            "started in {:.1} s; instance {removed} stopped in {:.1} s",
                            took.as_secs_f64(),
                            t.as_secs_f64()
                        );
                    }
                    other => {
                        rec.failed = true;
                        rec.note = format!("SIGTERM of instance {removed}: {other:?}");
                    }
                }
            }
            Err(e) => rec.note = format!("starting another instance: {e:#}"),
        },
        FaultKind::Sigterm => {
            let i = rng.random_range(0..ctx.count());
            rec.injected = ctx.instance(i).pid().is_some();
            match ctx.instance(i).terminate(Duration::from_secs(30)).await {
                Some((Some(0), took)) => {
                    rec.detail = format!("instance {i} exit 0 in {:.1} s", took.as_secs_f64())
                }
                other => {
                    rec.failed = true;
                    rec.note = format!("SIGTERM of instance {i}: {other:?}");
                }
            }
            restart_proc(ctx.instance(i), rec).await;
        }
        FaultKind::RollingRestart => {
            // A deploy: one instance at a time, the next only once the group commits again.
            let mut took = Vec::new();
            for i in 0..ctx.count() {
                rec.injected |= ctx.instance(i).pid().is_some();
                match ctx.instance(i).terminate(Duration::from_secs(30)).await {
                    Some((Some(0), t)) => took.push(format!("{:.1}", t.as_secs_f64())),
                    other => {
                        rec.failed = true;
                        rec.note = format!("SIGTERM of instance {i}: {other:?}");
                    }
                }
                restart_proc(ctx.instance(i), rec).await;
                ctx.settle_ownership().await;
                ctx.next_commit(Duration::from_secs(30)).await;
            }
            rec.detail = format!(
                "{} instances, stopped in {} s, each restarted",
                took.len(),
                took.join("/")
            );
        }
        other => rec.note = format!("{} is not a group fault", other.name()),
    }
    ctx.settle_ownership().await;
}

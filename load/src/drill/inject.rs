//! Injecting one fault and healing it. Each fault is confirmed (the failpoint paused or fired,
//! the restart counter moved, the directory refused a write), so a fault that silently did
//! nothing shows as not injected instead of as a pass.

use std::time::{Duration, Instant};

use super::plan::{FaultKind, Planned};
use super::procs::PipelineProc;
use super::report::FaultRecord;
use super::watch::metric_sum;
use super::Ctx;

const RESTARTS: &str = "shopwatch_actor_restarts_total";

async fn drill_post(ctx: &Ctx, path: &str, body: serde_json::Value) -> Result<(), String> {
    let url = format!("http://{}{path}", ctx.pipeline.http);
    let r = ctx
        .http
        .post(url)
        .bearer_auth(&ctx.token)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("drill endpoint: {e}"))?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "drill endpoint answered {}: {}",
            r.status(),
            r.text().await.unwrap_or_default().trim()
        ))
    }
}

async fn failpoints(ctx: &Ctx) -> serde_json::Value {
    let url = format!("http://{}/drill/failpoints", ctx.pipeline.http);
    match ctx.http.get(url).bearer_auth(&ctx.token).send().await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    }
}

/// Arm `point` to pause once, wait until a task is parked there, SIGKILL, restart.
async fn kill_at(ctx: &mut Ctx, point: &str, rec: &mut FaultRecord) {
    if let Err(e) = drill_post(
        ctx,
        "/drill/failpoints",
        serde_json::json!({"spec": format!("{point}=1*pause")}),
    )
    .await
    {
        rec.note = e;
        return;
    }
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(30) {
        let fp = failpoints(ctx).await;
        if fp["paused"]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p == point))
        {
            rec.injected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if !rec.injected {
        rec.note = format!("{point} was not reached within 30 s");
    }
    // Killed either way: an armed pause must not survive into the rest of the drill.
    ctx.pipeline.kill().await;
    restart(ctx, rec).await;
}

async fn restart(ctx: &mut Ctx, rec: &mut FaultRecord) {
    restart_proc(&mut ctx.pipeline, rec).await
}

pub(super) async fn restart_proc(p: &mut PipelineProc, rec: &mut FaultRecord) {
    match p.start().await {
        Ok(took) => {
            rec.healed = true;
            let sep = if rec.detail.is_empty() { "" } else { ", " };
            rec.detail = format!(
                "{}{sep}restarted in {:.1} s",
                rec.detail,
                took.as_secs_f64()
            );
        }
        Err(e) => rec.note = format!("restart failed: {e:#}"),
    }
}

/// Arm an actor fault and wait for the supervisor to restart the pipeline it hit.
async fn actor_fault(
    ctx: &mut Ctx,
    body: serde_json::Value,
    limit: Duration,
    rec: &mut FaultRecord,
) {
    let before = metric_sum(&ctx.metrics_body().await, RESTARTS);
    if let Err(e) = drill_post(ctx, "/drill/actor", body).await {
        rec.note = e;
        return;
    }
    let began = Instant::now();
    while began.elapsed() < limit {
        let now = metric_sum(&ctx.metrics_body().await, RESTARTS);
        if now > before {
            rec.injected = true;
            rec.healed = true;
            rec.detail = format!(
                "supervisor restart after {:.1} s",
                began.elapsed().as_secs_f64()
            );
            return;
        }
        if ctx.pipeline.exited().is_some() {
            rec.note = "the process exited instead of restarting the actor".into();
            ctx.revive().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rec.note = format!("no supervisor restart within {} s", limit.as_secs());
}

fn mount_read_only(dir: &std::path::Path) -> Result<&'static str, String> {
    let run = |args: &[&str]| {
        std::process::Command::new("mount")
            .args(args)
            .arg(dir)
            .arg(dir)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if run(&["--bind"]) {
        // The remount fails (EBUSY) while a file under the new mount is open for writing, and
        // the pipeline writes often (commits, compactions): try again a little later.
        for _ in 0..40 {
            let ok = std::process::Command::new("mount")
                .args(["-o", "remount,ro,bind"])
                .arg(dir)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ok {
                return Ok("read-only bind mount");
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let _ = std::process::Command::new("umount").arg(dir).output();
    }
    // Without mount rights: permissions (effective for a non-root pipeline only).
    set_writable(dir, false)
        .map_err(|e| format!("cannot make {} read-only: {e}", dir.display()))?;
    Ok("chmod a-w")
}

fn set_writable(dir: &std::path::Path, writable: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in walk(dir) {
        let mode = if writable { 0o755 } else { 0o555 };
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            }
        }
    }
    out
}

fn heal_read_only(dir: &std::path::Path, how: &str) {
    if how == "chmod a-w" {
        let _ = set_writable(dir, true);
        return;
    }
    let umount = |args: &[&str]| {
        std::process::Command::new("umount")
            .args(args)
            .arg(dir)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    // The unmount fails (EBUSY) while the pipeline has a file under it open, e.g. a query
    // reading Parquet: one CI run left the warehouse read-only for good that way. Try again
    // a little later, then detach it lazily (open files keep the old mount, new ones do not).
    for _ in 0..40 {
        if umount(&[]) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let _ = umount(&["-l"]);
}

/// A write into the directory fails right now.
fn refuses_writes(dir: &std::path::Path) -> bool {
    let probe = dir.join(".drill-probe");
    match std::fs::write(&probe, b"x") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            false
        }
        Err(_) => true,
    }
}

async fn disarm(ctx: &Ctx) -> Result<(), String> {
    let url = format!("http://{}/drill/failpoints", ctx.pipeline.http);
    match ctx.http.delete(url).bearer_auth(&ctx.token).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("disarming failpoints: {}", r.status())),
        Err(e) => Err(format!("disarming failpoints: {e}")),
    }
}

/// Arm `s3.request` with `rule`, confirm requests hit it, hold, disarm.
async fn s3_fault(ctx: &mut Ctx, rule: &str, hold: Duration, rec: &mut FaultRecord) {
    const POINT: &str = "s3.request";
    let fired = |v: &serde_json::Value| v["fired"][POINT].as_u64().unwrap_or(0);
    let before = fired(&failpoints(ctx).await);
    if let Err(e) = drill_post(
        ctx,
        "/drill/failpoints",
        serde_json::json!({"spec": format!("{POINT}={rule}")}),
    )
    .await
    {
        rec.note = e;
        return;
    }
    let began = Instant::now();
    let mut hits = 0;
    // Held at least `hold`, and until some request met it (the pipeline talks to S3 at least
    // once a commit round).
    while began.elapsed() < hold.max(Duration::from_secs(1))
        || (hits == 0 && began.elapsed() < Duration::from_secs(20))
    {
        hits = fired(&failpoints(ctx).await).saturating_sub(before);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rec.injected = hits > 0;
    rec.detail = format!("{rule}: {hits} S3 requests hit");
    if !rec.injected {
        rec.note = "no S3 request reached the failpoint within 20 s".into();
    }
    match disarm(ctx).await {
        Ok(()) => rec.healed = true,
        Err(e) => rec.note = e,
    }
    ctx.revive().await;
}

pub async fn inject(ctx: &mut Ctx, f: &Planned) -> FaultRecord {
    let mut rec = FaultRecord::new(f);
    match f.kind {
        FaultKind::KillAfterUpload => kill_at(ctx, "committer.after_upload", &mut rec).await,
        FaultKind::KillAfterCommitWrite => {
            kill_at(ctx, "catalog.after_commit_write", &mut rec).await
        }
        FaultKind::KillAfterCatalogCommit => {
            kill_at(ctx, "committer.after_catalog_commit", &mut rec).await
        }
        FaultKind::KillRandom => {
            rec.injected = ctx.pipeline.pid().is_some();
            ctx.pipeline.kill().await;
            tokio::time::sleep(f.hold).await;
            restart(ctx, &mut rec).await;
        }
        FaultKind::PanicConsumer => {
            let body = serde_json::json!({"target": "consumer", "action": "panic"});
            actor_fault(ctx, body, Duration::from_secs(20), &mut rec).await
        }
        FaultKind::PanicCommitter => {
            let body = serde_json::json!({"target": "committer", "action": "panic"});
            actor_fault(ctx, body, Duration::from_secs(20), &mut rec).await
        }
        FaultKind::FreezeActor => {
            // Three stuck timeouts: the supervisor must give up on it long before it wakes.
            let freeze = ctx.stuck_timeout * 3;
            let body = serde_json::json!({"target": "committer", "action": "freeze",
                                          "freeze_ms": freeze.as_millis() as u64});
            actor_fault(ctx, body, freeze + Duration::from_secs(10), &mut rec).await
        }
        FaultKind::BrokerDown => {
            if let Err(e) = ctx.production.pause().await {
                rec.note = format!("pausing the producer: {e:#}");
            }
            ctx.broker.down().await;
            rec.injected = true;
            tokio::time::sleep(f.hold).await;
            match ctx.broker.up().await {
                Ok(()) => rec.healed = true,
                Err(e) => rec.note = format!("broker restart failed: {e:#}"),
            }
            ctx.production.resume();
        }
        FaultKind::StorageReadOnly => {
            let dir = ctx.warehouse.clone();
            match mount_read_only(&dir) {
                Ok(how) => {
                    rec.injected = refuses_writes(&dir);
                    rec.detail = how.to_string();
                    if !rec.injected {
                        rec.note = format!(
                            "{how} did not stop writes (running as root without mount rights?)"
                        );
                    }
                    tokio::time::sleep(f.hold).await;
                    heal_read_only(&dir, how);
                    rec.healed = !refuses_writes(&dir);
                }
                Err(e) => rec.note = e,
            }
        }
        FaultKind::AmbiguousCommit => {
            let point = "catalog.after_commit_write";
            let fired = |v: &serde_json::Value| v["fired"][point].as_u64().unwrap_or(0);
            let before = fired(&failpoints(ctx).await);
            match drill_post(
                ctx,
                "/drill/failpoints",
                serde_json::json!({"spec": format!("{point}=1*error")}),
            )
            .await
            {
                Err(e) => rec.note = e,
                Ok(()) => {
                    let began = Instant::now();
                    while began.elapsed() < Duration::from_secs(20) {
                        if fired(&failpoints(ctx).await) > before {
                            rec.injected = true;
                            rec.healed = true;
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    if !rec.injected {
                        rec.note = "no commit reached the failpoint within 20 s".into();
                    }
                }
            }
        }
        FaultKind::S3Down => match ctx.seaweed.as_mut() {
            None => rec.note = "no SeaweedFS on this lane".into(),
            Some(server) => {
                server.down(false).await;
                rec.injected = true;
                tokio::time::sleep(f.hold).await;
                match server.up().await {
                    Ok(()) => rec.healed = true,
                    Err(e) => rec.note = format!("SeaweedFS restart failed: {e:#}"),
                }
                ctx.revive().await;
            }
        },
        FaultKind::S3Errors => s3_fault(ctx, "error", f.hold, &mut rec).await,
        // Longer than the stuck timeout: the supervisor may restart a committer that waits.
        FaultKind::S3Timeouts => s3_fault(ctx, "3*timeout(5000)", Duration::ZERO, &mut rec).await,
        FaultKind::S3Slow => s3_fault(ctx, "delay(800)", f.hold, &mut rec).await,
        FaultKind::KillOwner
        | FaultKind::FreezeInstance
        | FaultKind::AddInstance
        | FaultKind::RollingRestart => {
            rec.note = "a group fault: only with --instances 2 or more".into()
        }
        FaultKind::PartitionBroker
        | FaultKind::PartitionCatalog
        | FaultKind::PartitionAll
        | FaultKind::SlowLink
        | FaultKind::LossyLink => rec.note = "a network fault: only with --netns".into(),
        FaultKind::Sigterm => {
            let log_len = std::fs::metadata(&ctx.pipeline.log)
                .map(|m| m.len())
                .unwrap_or(0);
            rec.injected = ctx.pipeline.pid().is_some();
            match ctx.pipeline.terminate(Duration::from_secs(30)).await {
                Some((code, took)) => {
                    let log = std::fs::read(&ctx.pipeline.log).unwrap_or_default();
                    let tail =
                        String::from_utf8_lossy(log.get(log_len as usize..).unwrap_or_default());
                    let drained = !tail.contains("did not drain");
                    rec.detail = format!("exit {code:?} in {:.1} s", took.as_secs_f64());
                    if code != Some(0) || !drained {
                        rec.note = format!(
                            "graceful stop failed: exit {code:?}, final commit drained: {drained}"
                        );
                        rec.failed = true;
                    }
                }
                None => {
                    rec.note = "no exit within 30 s of SIGTERM (hang)".into();
                    rec.failed = true;
                }
            }
            restart(ctx, &mut rec).await;
        }
    }
    if rec.injected && rec.healed {
        rec.recovery = ctx.next_commit(Duration::from_secs(60)).await;
    }
    rec
}

/// Bodies of refused requests (a wrong drill token, a bad failpoint spec), for the canary
/// search.
pub async fn error_bodies(ctx: &Ctx) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let url = format!("http://{}/drill/failpoints", ctx.pipeline.http);
    if let Ok(r) = ctx
        .http
        .get(&url)
        .bearer_auth(format!("{}x", ctx.token))
        .send()
        .await
    {
        out.push((
            "wrong-token /drill answer".into(),
            r.text().await.unwrap_or_default(),
        ));
    }
    if let Ok(r) = ctx
        .http
        .post(&url)
        .bearer_auth(&ctx.token)
        .json(&serde_json::json!({"spec": "nowhere=pause"}))
        .send()
        .await
    {
        out.push((
            "bad-spec /drill answer".into(),
            r.text().await.unwrap_or_default(),
        ));
    }
    let ws = format!("http://{}/ws", ctx.pipeline.http);
    if let Ok(r) = ctx
        .http
        .get(&ws)
        .header("Origin", "http://evil.example")
        .send()
        .await
    {
        out.push((
            "cross-origin /ws answer".into(),
            r.text().await.unwrap_or_default(),
        ));
    }
    out
}

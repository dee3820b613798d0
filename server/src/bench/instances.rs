//! `bench ingest` with several instances: waiting for the group to settle, a dashboard kept
//! open on one of them, and the counts side by side.

/// One run's figures, for the table side by side.
pub(super) struct Run {
    pub(super) instances: usize,
    pub(super) events: u64,
    pub(super) all_s: f64,
    pub(super) cpu: f64,
    /// CPU-s of the instance that owned the rollup at the end, and its index.
    pub(super) owner: Option<(usize, f64)>,
    pub(super) conflicts: f64,
    /// CPU-s per second all instances spent idle, settled, before the first event (`--live`).
    pub(super) idle_rate: f64,
}

pub(super) fn side_by_side(runs: &[Run]) {
    println!();
    println!("instances side by side ({} events each)", runs[0].events);
    println!(
        "{:>9} {:>12} {:>12} {:>16} {:>18} {:>20} {:>16} {:>22}",
        "instances",
        "all wall s",
        "CPU-s",
        "CPU µs/event",
        "x one instance",
        "owner CPU µs/event",
        "conflicts/min",
        "idle CPU-ms/s (net)"
    );
    let per = |cpu: f64, n: u64| cpu * 1e6 / (n.max(1) as f64);
    let base = per(runs[0].cpu, runs[0].events);
    for r in runs {
        let total = per(r.cpu, r.events);
        println!(
            "{:>9} {:>12.1} {:>12.1} {:>16.2} {:>18.2} {:>20} {:>16.1} {:>22}",
            r.instances,
            r.all_s,
            r.cpu,
            total,
            total / base.max(1e-9),
            r.owner
                .map(|(i, c)| format!("{:.2} (#{i})", per(c, r.events)))
                .unwrap_or_else(|| "-".into()),
            r.conflicts / (r.all_s.max(1e-9) / 60.0),
            // Net: what the events cost beyond the instances idling for as long.
            format!(
                "{:.0} ({:.2} µs/ev)",
                r.idle_rate * 1e3,
                per(r.cpu - r.idle_rate * r.all_s, r.events)
            ),
        );
    }
}

/// Wait until the instances at `https` share the topics as they will for the run: every one
/// ready, every partition of every topic held by exactly one of them, every instance holding
/// some (when there are partitions for all), one rollup owner, all of it unchanged for 3 s.
/// Returns how long that took and which instance owns the rollup.
pub(super) async fn group_settled(
    https: &[String],
    topics: usize,
    partitions: i32,
    timeout: std::time::Duration,
) -> anyhow::Result<(std::time::Duration, usize)> {
    use std::time::{Duration, Instant};
    let started = Instant::now();
    let mut same_since: Option<(Instant, String)> = None;
    loop {
        if started.elapsed() > timeout {
            anyhow::bail!(
                "the group did not settle within {timeout:?} (every partition held once, one rollup owner); see the pipeline logs"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut held = Vec::new();
        let mut owners = 0;
        let mut owner = 0;
        let mut everyone_holds = true;
        for (i, http) in https.iter().enumerate() {
            let Ok(r) = reqwest::get(format!("http://{http}/readyz")).await else {
                held.clear();
                break;
            };
            let Ok(v) = r.json::<serde_json::Value>().await else {
                held.clear();
                break;
            };
            if v["ready"] != true {
                held.clear();
                break;
            }
            if v["rollup_owner"] == true {
                owners += 1;
                owner = i;
            }
            let mine: Vec<String> = v["assigned_partitions"]
                .as_object()
                .into_iter()
                .flatten()
                .flat_map(|(t, ps)| {
                    let ps = ps.as_array().cloned().unwrap_or_default();
                    ps.into_iter().map(move |p| format!("{t}/{p}"))
                })
                .collect();
            everyone_holds &= !mine.is_empty();
            held.push(mine);
        }
        let mut all: Vec<&String> = held.iter().flatten().collect();
        let n = all.len();
        all.sort();
        all.dedup();
        let whole = held.len() == https.len()
            && n == all.len()
            && n == topics * partitions as usize
            && owners == 1
            && (everyone_holds || https.len() > topics * partitions as usize);
        if !whole {
            same_since = None;
            continue;
        }
        let shape = format!("{held:?} owner {owner}");
        match &same_since {
            Some((since, s)) if *s == shape => {
                if since.elapsed() >= Duration::from_secs(3) {
                    return Ok((started.elapsed(), owner));
                }
            }
            _ => same_since = Some((Instant::now(), shape)),
        }
    }
}

/// A dashboard kept open on one instance for the whole run, as its users would: its refresher
/// queries the lake only while someone watches (the other instances' do not).
pub(super) fn watch_dashboard(http: &str) -> tokio::task::JoinHandle<()> {
    let url = format!("ws://{http}/ws");
    tokio::spawn(async move {
        use futures::StreamExt;
        loop {
            if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await {
                while let Some(Ok(_)) = ws.next().await {}
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
}

/// How long `--live` watches the settled instances idle.
const IDLE_SAMPLE: std::time::Duration = std::time::Duration::from_secs(5);

/// The instances' CPU-s so far (start, settling: not the events'), after watching them idle for
/// a while, and what they spent per second meanwhile with no events at all: polling,
/// heartbeats, the election, idle maintenance (the fixed cost each instance adds).
pub(super) async fn idle_sample(pids: &[u32]) -> (Vec<f64>, f64) {
    use shopwatch_load::stats::cpu_seconds;
    let cpus = || -> Vec<f64> {
        pids.iter()
            .map(|p| cpu_seconds(*p).unwrap_or(0.0))
            .collect()
    };
    let before = cpus();
    tokio::time::sleep(IDLE_SAMPLE).await;
    let after = cpus();
    let rate =
        after.iter().zip(&before).map(|(a, b)| a - b).sum::<f64>() / IDLE_SAMPLE.as_secs_f64();
    (after, rate)
}

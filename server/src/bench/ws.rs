//! `shopwatch bench ws`: the websocket soak against a running shopwatch (`shopwatch demo` in
//! another terminal), with the figures next to their targets.

use std::time::Duration;

use clap::Args;
use shopwatch_load::soak::{soak, SoakParams};

#[derive(Args)]
pub struct WsBenchArgs {
    /// The dashboard's websocket.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Share of clients that read slowly (one message per --slow-read-ms, 4 KiB TCP window).
    #[arg(long, default_value_t = 0.1)]
    slow_fraction: f64,
    #[arg(long, default_value_t = 5000)]
    slow_read_ms: u64,
    /// Seconds to run.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
}

pub async fn run(args: WsBenchArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(args.duration > 0.0, "--duration must be positive");
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.slow_fraction),
        "--slow-fraction must be between 0 and 1"
    );
    let r = soak(SoakParams {
        url: args.url.clone(),
        clients: args.clients,
        slow_fraction: args.slow_fraction,
        duration: Duration::from_secs_f64(args.duration),
        slow_read_every: Duration::from_millis(args.slow_read_ms.max(1)),
    })
    .await?;
    let mb = |v: Option<f64>| v.map_or("n/a".to_string(), |b| format!("{:.1} MB", b / 1e6));
    let l = r.latency_ms;
    println!(
        "websocket soak: {} clients ({} slow) for {} s against {}",
        args.clients, r.slow, args.duration, args.url
    );
    println!(
        "  healthy clients        {:>6}   connect failures {}",
        r.healthy, r.connect_failures
    );
    println!(
        "  messages received      {:>6}   ({:.1} per healthy client)",
        r.messages,
        r.messages as f64 / r.healthy.max(1) as f64
    );
    println!(
        "  push latency (ms)      p50 {:.0}   p95 {:.0}   p99 {:.0}   max {:.0}   (n = {})   target p99 ≤ 50 ms: {}",
        l.p50, l.p95, l.p99, l.max, l.n,
        if l.n > 0 && l.p99 <= 50.0 { "met" } else { "MISSED" }
    );
    println!(
        "  healthy closed by server {:>4}   (target 0)",
        r.healthy_closed
    );
    let n = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.0}"));
    println!(
        "  slow clients ({}): the server skipped them to a snapshot {} times and closed {} (queue overflow) + {} (send blocked 10 s); \
         the clients saw {} skips and {} closes before the run ended",
        r.slow,
        n(r.server_skipped),
        n(r.server_dropped_slow),
        n(r.server_dropped_write_timeout),
        r.slow_skips_seen,
        r.slow_closed_by_server,
    );
    println!(
        "  server RSS before {}   after {}   ({})",
        mb(r.rss_before),
        mb(r.rss_after),
        match (r.rss_before, r.rss_after) {
            (Some(a), Some(b)) if a > 0.0 => format!("{:+.1} %", (b / a - 1.0) * 100.0),
            _ => "no process metrics".into(),
        }
    );
    if let (Some(before), Some(during)) = (r.rss_before, r.rss_during) {
        let connected = (r.healthy + r.slow).max(1);
        println!(
            "  server RSS with all {} connected {}   ({:.1} KB per connection)",
            connected,
            mb(Some(during)),
            (during - before) / connected as f64 / 1e3
        );
    }
    Ok(0)
}

//! `shopwatch bench parse`: decode + validate only, on one thread, over the generator's
//! payload mix: the ceiling the pipeline's per-core rate is measured against. A bare
//! `serde_json::Value` parse of the same payloads runs beside it for scale.

use std::time::Instant;

use clap::Args;
use shopwatch_actors::events::{decode, EventKind};
use shopwatch_load::generator::{Generator, Stream};
use shopwatch_load::stats::cpu_seconds;

#[derive(Args)]
pub struct ParseArgs {
    /// Distinct payloads generated (then decoded `--rounds` times).
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// CPU time of the calling thread (the benchmark runs on one thread).
pub(super) fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_THREAD_CPUTIME_ID needs nothing else.
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

pub fn run(args: ParseArgs) -> anyhow::Result<i32> {
    let mut generator = Generator::new(args.seed, 0.0);
    let payloads: Vec<(EventKind, Vec<u8>)> = (0..args.events)
        .map(|_| {
            let g = generator.next();
            let kind = match g.stream {
                Stream::Orders => EventKind::Orders,
                Stream::Clicks => EventKind::Clicks,
                Stream::Errors => EventKind::Errors,
            };
            (kind, g.payload)
        })
        .collect();
    let bytes: usize = payloads.iter().map(|(_, p)| p.len()).sum();
    let n = (args.events * args.rounds) as f64;
    let _ = cpu_seconds(std::process::id());

    let limits = shopwatch_actors::events::Limits::default();
    let now = chrono::Utc::now().timestamp_micros();
    let (cpu0, wall0) = (thread_cpu_s(), Instant::now());
    let mut ok = 0u64;
    for _ in 0..args.rounds {
        for (kind, p) in &payloads {
            if decode(*kind, Some(p), &limits, now).is_ok() {
                ok += 1;
            }
        }
    }
    let (decode_cpu, decode_wall) = (thread_cpu_s() - cpu0, wall0.elapsed().as_secs_f64());

    let (cpu0, wall0) = (thread_cpu_s(), Instant::now());
    let mut parsed = 0u64;
    for _ in 0..args.rounds {
        for (_, p) in &payloads {
            if serde_json::from_slice::<serde_json::Value>(p).is_ok() {
                parsed += 1;
            }
        }
    }
    let (json_cpu, json_wall) = (thread_cpu_s() - cpu0, wall0.elapsed().as_secs_f64());

    println!(
        "parse: {} payloads × {} rounds, mean {:.0} bytes, one thread",
        args.events,
        args.rounds,
        bytes as f64 / args.events as f64
    );
    println!("{:<44} {:>14} {:>14}", "figure", "value", "target");
    let row = |label: &str, value: f64, target: &str| {
        println!("{label:<44} {value:>14.0} {target:>14}");
    };
    row(
        "decode + validate, events per CPU-second",
        n / decode_cpu.max(1e-9),
        "ceiling",
    );
    row("  same, per wall second", n / decode_wall.max(1e-9), "");
    row(
        "serde_json::Value parse, per CPU-second",
        n / json_cpu.max(1e-9),
        "~4000000",
    );
    row("  same, per wall second", n / json_wall.max(1e-9), "");
    println!(
        "{:<44} {:>14.2} {:>14}",
        "ratio decode / Value parse (same run)",
        json_cpu / decode_cpu.max(1e-9),
        ""
    );
    anyhow::ensure!(
        ok as f64 == n && parsed as f64 == n,
        "valid payloads were rejected"
    );
    Ok(0)
}

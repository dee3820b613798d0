//! The verdict: one row per fault, then the checks, then PASS or FAIL with the seed.

use std::collections::BTreeMap;
use std::time::Duration;

use shopwatch_actors::lake::maintenance::orphans::SweepReport;

use super::check::Verdict;
use super::plan::{FaultKind, Planned};

#[derive(Clone, Debug)]
pub struct FaultRecord {
    pub index: usize,
    pub kind: FaultKind,
    pub at: Duration,
    pub hold: Duration,
    pub injected: bool,
    pub healed: bool,
    /// The fault's own rule was broken (a SIGTERM that hung or exited non-zero).
    pub failed: bool,
    /// Heal → next raw commit.
    pub recovery: Option<Duration>,
    pub detail: String,
    pub note: String,
}

impl FaultRecord {
    pub fn new(p: &Planned) -> Self {
        FaultRecord {
            index: p.index,
            kind: p.kind,
            at: p.at,
            hold: p.hold,
            injected: false,
            healed: false,
            failed: false,
            recovery: None,
            detail: String::new(),
            note: String::new(),
        }
    }

    fn ok(&self) -> bool {
        self.injected && self.healed && !self.failed && self.recovery.is_some()
    }
}

pub struct Summary {
    pub seed: u64,
    /// The kinds this drill's lane injects.
    pub kinds: Vec<FaultKind>,
    pub produced_acked: u64,
    pub elapsed: Duration,
    pub caught: bool,
    pub caught_at: Duration,
    pub quiet: bool,
    pub last_stop: Option<(Option<i32>, Duration)>,
    pub pipeline_starts: u32,
    pub unplanned_exits: Vec<String>,
    pub lake: Verdict,
    pub kpis: Verdict,
    pub before_sweep: Verdict,
    pub after_sweep: Verdict,
    pub sweep: SweepReport,
    /// (regressions seen while polling, number of polls).
    pub monotonic: (Vec<String>, u64),
    pub final_metrics: String,
    /// Canary hits, when the run had canaries.
    pub canary: Option<Vec<String>>,
    /// What the group did, on the group lane.
    pub group: Option<GroupLog>,
    /// Counters of every process the drill ran (restarts included).
    pub processes: PerProcess,
}

/// Where any canary value shows up in `exposed` (name, text) pairs.
pub fn find_canaries(canaries: &[(String, String)], exposed: &[(String, String)]) -> Vec<String> {
    let mut hits = Vec::new();
    for (key, value) in canaries {
        for (name, text) in exposed {
            let n = text.matches(value.as_str()).count();
            if n > 0 {
                hits.push(format!("{key} appears {n}× in {name}"));
            }
        }
    }
    hits
}

fn table_sum(v: &serde_json::Value, field: &str) -> u64 {
    v["tables"]
        .as_object()
        .map(|t| t.values().filter_map(|x| x[field].as_u64()).sum())
        .unwrap_or(0)
}

/// Print the verdict; true when everything passed.
pub fn print(records: &[FaultRecord], s: &Summary) -> bool {
    let mut failures: Vec<String> = Vec::new();
    println!();
    println!(
        "{:>3}  {:<28} {:>8} {:>7}  {:<8} {:<6} {:>10}  detail",
        "#", "fault", "at s", "hold s", "injected", "healed", "recovery s"
    );
    for r in records {
        println!(
            "{:>3}  {:<28} {:>8.1} {:>7.1}  {:<8} {:<6} {:>10}  {}{}",
            r.index + 1,
            r.kind.name(),
            r.at.as_secs_f64(),
            r.hold.as_secs_f64(),
            if r.injected { "yes" } else { "NO" },
            if r.healed { "yes" } else { "NO" },
            r.recovery
                .map(|d| format!("{:.1}", d.as_secs_f64()))
                .unwrap_or_else(|| "none".into()),
            r.detail,
            if r.note.is_empty() {
                String::new()
            } else {
                format!(" — {}", r.note)
            },
        );
        if !r.ok() {
            failures.push(format!(
                "fault {} ({}): {}",
                r.index + 1,
                r.kind.name(),
                if r.note.is_empty() {
                    "no commit within 60 s of the heal"
                } else {
                    &r.note
                }
            ));
        }
    }
    let mut rec: Vec<f64> = records
        .iter()
        .filter_map(|r| r.recovery.map(|d| d.as_secs_f64()))
        .collect();
    rec.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        rec.get(((rec.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let kinds: std::collections::BTreeSet<_> = records
        .iter()
        .filter(|r| r.injected)
        .map(|r| r.kind)
        .collect();

    let l = &s.lake.summary;
    let lost = table_sum(l, "missing") + table_sum(l, "malformed_missing_from_dead_letters");
    let dup = table_sum(l, "dup_offsets") + table_sum(l, "dup_ids");
    let unexpected = table_sum(l, "unexpected") + table_sum(l, "unexpected_dead_letters");
    let kpi_mismatch = s.kpis.failures.len();
    println!();
    println!("{:<52} {:>14}", "check", "value");
    let row = |k: &str, v: String| println!("{k:<52} {v:>14}");
    row(
        "faults injected / planned",
        format!(
            "{} / {}",
            records.iter().filter(|r| r.injected).count(),
            records.len()
        ),
    );
    row(
        "fault kinds covered",
        format!("{} / {}", kinds.len(), s.kinds.len()),
    );
    row(
        "recovery after heal p50 / p99 / max, s",
        format!("{:.1} / {:.1} / {:.1}", pct(0.5), pct(0.99), pct(1.0)),
    );
    row("pipeline process starts", s.pipeline_starts.to_string());
    row(
        "pipeline exits nobody asked for",
        s.unplanned_exits.len().to_string(),
    );
    failures.extend(
        s.unplanned_exits
            .iter()
            .map(|e| format!("the pipeline exited by itself ({e})")),
    );
    row("events acked by the broker", s.produced_acked.to_string());
    row(
        "acked ids lost (raw tables + dead letters)",
        lost.to_string(),
    );
    row("duplicated (by offset or id)", dup.to_string());
    row("unexpected rows", unexpected.to_string());
    row(
        "KPI / alert rows differing from a recount",
        kpi_mismatch.to_string(),
    );
    row(
        "offset regressions (polled / snapshots)",
        format!(
            "{} / {}",
            s.monotonic.0.len(),
            table_sum(&s.before_sweep.summary, "offset_regressions")
        ),
    );
    row("lake polls", s.monotonic.1.to_string());
    row(
        "referenced data files missing",
        table_sum(&s.after_sweep.summary, "missing_files").to_string(),
    );
    row(
        "orphan files before final sweep",
        table_sum(&s.before_sweep.summary, "orphan_files").to_string(),
    );
    row(
        "orphans deleted by final sweep / bytes",
        format!("{} / {}", s.sweep.deleted, s.sweep.bytes_deleted),
    );
    row(
        "orphans after sweep",
        table_sum(&s.after_sweep.summary, "orphan_files").to_string(),
    );
    row(
        "live data files / merged by compaction",
        format!(
            "{} / {}",
            table_sum(&s.after_sweep.summary, "live_files"),
            table_sum(&s.after_sweep.summary, "merged_files")
        ),
    );
    let m = |name: &str| super::watch::metric_sum(&s.final_metrics, name);
    row(
        "in-pipeline sweeper, last process: files / bytes",
        format!(
            "{:.0} / {:.0}",
            m("shopwatch_orphan_files_deleted_total"),
            m("shopwatch_orphan_bytes_reclaimed_total")
        ),
    );
    row(
        "caught up at, s",
        if s.caught {
            format!("{:.1}", s.caught_at.as_secs_f64())
        } else {
            "NO".into()
        },
    );
    row(
        "final SIGTERM",
        match s.last_stop {
            Some((c, d)) => format!("exit {c:?} {:.1} s", d.as_secs_f64()),
            None => "HUNG".into(),
        },
    );
    if let Some(hits) = &s.canary {
        row(
            "canary secrets found (logs, bodies, /metrics, DL)",
            hits.len().to_string(),
        );
        for h in hits {
            failures.push(format!("secret leaked: {h}"));
        }
    }
    if let Some(g) = &s.group {
        row(
            "rollup ownership moves (owners seen)",
            format!("{} ({})", g.ownership_moves(), g.owners.len()),
        );
        row(
            "group looks without an owner / looks",
            format!("{} / {}", g.ownerless_looks, g.looks),
        );
        let fenced = s.processes.total(FENCED);
        row("fenced batches (all processes)", format!("{fenced:.0}"));
        // What the faults drawn must have caused (a scenario by --kinds may have neither).
        let moves_owner = [FaultKind::KillOwner, FaultKind::RollingRestart];
        if g.ownership_moves() == 0 && s.kinds.iter().any(|k| moves_owner.contains(k)) {
            failures.push("the rollup tables never changed owner".into());
        }
        if fenced < 1.0 && s.kinds.contains(&FaultKind::FreezeInstance) {
            failures.push("no batch was ever fenced: the zombie case went untested".into());
        }
    }
    let read = s.processes.total(CONSUMED);
    row(
        "records read, all processes (÷ acked)",
        format!(
            "{read:.0} ({:.2}×)",
            read / (s.produced_acked.max(1) as f64)
        ),
    );
    row(
        "re-read below the lake's position",
        format!("{:.0}", s.processes.total(REREAD)),
    );
    row(
        "owner: others' events merged (x KPIs) / read raw",
        format!(
            "{:.0} / {:.0}",
            s.processes.total(PARTIALS_MERGED),
            s.processes.total(PARTIALS_RAW)
        ),
    );
    row("wall time, s", format!("{:.0}", s.elapsed.as_secs_f64()));

    if !s.caught {
        failures.push("the lake never caught up with the broker".into());
    }
    if !s.quiet {
        failures.push("the silence alerts never came: windows may still be open".into());
    }
    if !matches!(s.last_stop, Some((Some(0), _))) {
        failures.push(format!("final SIGTERM: {:?}", s.last_stop));
    }
    for v in [&s.lake, &s.kpis, &s.after_sweep] {
        failures.extend(v.failures.iter().map(|f| format!("{}: {f}", v.name)));
    }
    // Before the sweep orphans are expected; missing files and regressions are not.
    failures.extend(
        s.before_sweep
            .failures
            .iter()
            .map(|f| format!("check_history.py (before sweep): {f}")),
    );
    failures.extend(s.monotonic.0.iter().map(|r| format!("offsets: {r}")));
    println!();
    if failures.is_empty() {
        println!("drill PASSED (seed {})", s.seed);
        true
    } else {
        for f in &failures {
            println!("FAIL: {f}");
        }
        println!(
            "drill FAILED (seed {}): replay with --seed {}",
            s.seed, s.seed
        );
        false
    }
}

pub const FENCED: &str = "shopwatch_fenced_batches_total";
pub const CONSUMED: &str = "shopwatch_events_consumed_total";
pub const REREAD: &str = "shopwatch_records_reread_total";
pub const PARTIALS_MERGED: &str = "shopwatch_partials_merged_total";
pub const PARTIALS_RAW: &str = "shopwatch_partials_raw_events_total";

/// Counters that die with their process, kept per process (pid) at the highest value it
/// reported. Sampled before every fault, so what a killed process did after its last sample
/// is not counted (first reads, at most the time since that sample: re-reads come after a
/// start and are sampled by the next look).
#[derive(Clone, Debug, Default)]
pub struct PerProcess(BTreeMap<(u32, &'static str), f64>);

impl PerProcess {
    /// Take `pid`'s `/metrics` body.
    pub fn observe(&mut self, pid: u32, body: &str) {
        for name in [FENCED, CONSUMED, REREAD, PARTIALS_MERGED, PARTIALS_RAW] {
            let v = super::watch::metric_sum(body, name);
            let e = self.0.entry((pid, name)).or_default();
            *e = e.max(v);
        }
    }

    /// Summed over every process.
    pub fn total(&self, name: &str) -> f64 {
        self.0
            .iter()
            .filter(|((_, n), _)| *n == name)
            .map(|(_, v)| v)
            .sum()
    }
}

/// What the group did over the drill.
#[derive(Clone, Debug, Default)]
pub struct GroupLog {
    /// The owner seen at each look (pid), in order, deduplicated.
    pub owners: Vec<u32>,
    /// Looks at which no instance owned the rollup tables.
    pub ownerless_looks: u32,
    pub looks: u32,
}

impl GroupLog {
    /// Times the rollup tables changed hands.
    pub fn ownership_moves(&self) -> usize {
        self.owners.len().saturating_sub(1)
    }
}

//! The network's faults (`--netns`): one instance cut from the broker only, from the catalog
//! and S3 only, or from everything (the drill included); its link made slow or lossy. Each is
//! held for its drawn time — some shorter than the group session (6 s), some past it, so
//! the group moves the instance's partitions (and perhaps the rollup tables) on and the
//! instance, healed, is a zombie whose late commits must be fenced.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::net::Impair;
use super::plan::{FaultKind, Planned};
use super::report::FaultRecord;
use super::Ctx;

/// Which nodes a kind cuts the instance from; `None` for the link faults.
pub fn cut_from(kind: FaultKind, seaweed: bool) -> Option<Vec<&'static str>> {
    match kind {
        FaultKind::PartitionBroker => Some(vec!["broker"]),
        FaultKind::PartitionCatalog => Some(vec!["s3"]),
        // On the local lake the catalog and warehouse are files: they cannot be cut.
        FaultKind::PartitionAll if seaweed => Some(vec!["broker", "s3", "drill"]),
        FaultKind::PartitionAll => Some(vec!["broker", "drill"]),
        _ => None,
    }
}

/// A lossy link: cut for `LOSS_CUT` of every `LOSS_PERIOD` (bursts, as on a flapping link).
const LOSS_PERIOD: Duration = Duration::from_millis(1_000);
const LOSS_CUT: Duration = Duration::from_millis(300);
/// A slow link's rate: a catalog commit's metadata or a fetch of a few hundred records
/// waits a second or more behind it.
const SLOW_KBIT: u32 = 256;

pub async fn inject(ctx: &mut Ctx, f: &Planned) -> FaultRecord {
    let mut rec = FaultRecord::new(f);
    ctx.look_at_group().await;
    inject_into(ctx, f, &mut rec).await;
    if rec.injected && rec.healed {
        rec.recovery = ctx.next_commit(Duration::from_secs(60)).await;
    }
    ctx.settle_ownership().await;
    rec
}

async fn inject_into(ctx: &mut Ctx, f: &Planned, rec: &mut FaultRecord) {
    let mut rng = StdRng::seed_from_u64(f.index as u64 * 104_729 + f.hold.as_millis() as u64);
    if ctx.net.is_none() {
        rec.note = format!("{} needs --netns", f.kind.name());
        return;
    }
    // Half the time the owner: its rollup commits are the ones a cut must not let through twice.
    let owner = ctx.owner().await;
    let i = match owner {
        Some(o) if rng.random_bool(0.5) => o,
        _ => rng.random_range(0..ctx.count()),
    };
    let place = ctx.instance_place(i);
    let who = format!(
        "instance {i}{}",
        if owner == Some(i) { " (owner)" } else { "" }
    );
    let seaweed = ctx.seaweed.is_some();
    let Some(net) = ctx.net.as_ref() else { return };
    let began = Instant::now();
    let outcome = match cut_from(f.kind, seaweed) {
        Some(nodes) => {
            let cut = Impair::Cut(net.addrs(&nodes));
            match net.impair(&place, &cut, true) {
                Ok(()) => {
                    rec.injected = true;
                    tokio::time::sleep(f.hold).await;
                    rec.detail = format!(
                        "{who} cut from {} {:.1} s",
                        nodes.join("+"),
                        f.hold.as_secs_f64()
                    );
                    net.impair(&place, &cut, false)
                }
                Err(e) => Err(e),
            }
        }
        None if f.kind == FaultKind::SlowLink => {
            let slow = Impair::Throttle { kbit: SLOW_KBIT };
            match net.impair(&place, &slow, true) {
                Ok(()) => {
                    rec.injected = true;
                    tokio::time::sleep(f.hold).await;
                    rec.detail =
                        format!("{who} at {SLOW_KBIT} kbit/s {:.1} s", f.hold.as_secs_f64());
                    net.impair(&place, &slow, false)
                }
                Err(e) => Err(e),
            }
        }
        None => {
            // Everything but the drill, so the drill still sees it while it suffers.
            let cut = Impair::Cut(net.addrs(&["broker", "s3"]));
            let mut flaps = 0;
            let mut result = Ok(());
            while began.elapsed() < f.hold && result.is_ok() {
                result = net.impair(&place, &cut, true);
                if result.is_ok() {
                    rec.injected = true;
                    flaps += 1;
                    tokio::time::sleep(LOSS_CUT).await;
                    result = net.impair(&place, &cut, false);
                }
                tokio::time::sleep(LOSS_PERIOD - LOSS_CUT).await;
            }
            rec.detail = format!(
                "{who}: {flaps} drops of {} ms every {} ms",
                LOSS_CUT.as_millis(),
                LOSS_PERIOD.as_millis()
            );
            result
        }
    };
    match outcome {
        Ok(()) if rec.injected => {
            rec.healed = true;
            // Let a zombie wake, try its late commits and be fenced.
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        Ok(()) => {}
        Err(e) => {
            rec.failed = rec.injected;
            rec.note = format!("{}: {e:#}", f.kind.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_partition_cuts_what_its_name_says_and_the_local_lake_keeps_its_disk() {
        assert_eq!(
            cut_from(FaultKind::PartitionBroker, true),
            Some(vec!["broker"])
        );
        assert_eq!(
            cut_from(FaultKind::PartitionCatalog, true),
            Some(vec!["s3"])
        );
        assert_eq!(
            cut_from(FaultKind::PartitionAll, true),
            Some(vec!["broker", "s3", "drill"])
        );
        assert_eq!(
            cut_from(FaultKind::PartitionAll, false),
            Some(vec!["broker", "drill"])
        );
        assert_eq!(cut_from(FaultKind::SlowLink, true), None);
        assert_eq!(cut_from(FaultKind::LossyLink, true), None);
        assert_eq!(cut_from(FaultKind::KillOwner, true), None);
    }
}

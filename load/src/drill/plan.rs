//! The seeded fault schedule: which faults, in which order, when, held for how long. Pure, so
//! a seed always replays the same drill.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// SIGKILL while paused after the data files are written, before the catalog commit.
    KillAfterUpload,
    /// SIGKILL after the catalog has the commit, before the committer hears back.
    KillAfterCommitWrite,
    /// SIGKILL after the committer knows the commit landed, before it says so.
    KillAfterCatalogCommit,
    /// SIGKILL at an arbitrary moment.
    KillRandom,
    /// The next consumed record panics its consumer actor.
    PanicConsumer,
    /// The next batch panics its committer actor.
    PanicCommitter,
    /// An actor stalls past the stuck timeout; the supervisor must notice and restart it.
    FreezeActor,
    /// The broker process stops, then comes back on the same port and storage.
    BrokerDown,
    /// The warehouse directory turns read-only for a while.
    StorageReadOnly,
    /// A catalog commit lands but the committer is told it failed.
    AmbiguousCommit,
    /// SIGTERM: a final commit and exit within 30 s, then a restart.
    Sigterm,
    /// The S3 server (and its REST catalog) stops, then comes back on the same data.
    S3Down,
    /// Every S3 request fails (a 5xx the client gave up on) for a while.
    S3Errors,
    /// A few S3 requests hang, then time out.
    S3Timeouts,
    /// Every S3 request is slow for a while.
    S3Slow,
    /// SIGKILL the instance that owns the rollup tables, then restart it.
    KillOwner,
    /// SIGSTOP an instance past its group session, then SIGCONT: a zombie that wakes up
    /// believing it still holds its partitions (and perhaps the rollup tables).
    FreezeInstance,
    /// Start one more instance; after the hold, SIGTERM one of the others for good.
    AddInstance,
    /// One instance cut from the broker only (`--netns`).
    PartitionBroker,
    /// One instance cut from the catalog and S3 only (`--netns`, SeaweedFS).
    PartitionCatalog,
    /// One instance cut from everything, the drill included (`--netns`).
    PartitionAll,
    /// One instance's link slowed to a trickle (`--netns`).
    SlowLink,
    /// One instance's link dropping everything in bursts (`--netns`).
    LossyLink,
    /// Every instance in turn: SIGTERM, restart, wait for its next commit (a deploy). Only by
    /// name (`--kinds`): the lanes' schedules do not draw it.
    RollingRestart,
}

/// Where the drill's lake lives, which decides the storage faults it can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// SQLite catalog and a local warehouse directory.
    Local,
    /// Several instances in one group on a local lake: faults to instances and ownership.
    Group,
    /// SeaweedFS: its Iceberg REST catalog and S3, a real server process.
    Seaweed,
    /// The production topology: several instances in one group on SeaweedFS (REST catalog +
    /// S3), with the group's faults and S3's.
    GroupSeaweed,
}

impl Lane {
    /// Several instances share the work.
    pub fn is_group(self) -> bool {
        matches!(self, Lane::Group | Lane::GroupSeaweed)
    }

    /// The lake is a SeaweedFS server.
    pub fn on_seaweed(self) -> bool {
        matches!(self, Lane::Seaweed | Lane::GroupSeaweed)
    }
}

impl FaultKind {
    /// Faults to the group: its instances and who owns the KPI tables.
    pub const GROUP: [FaultKind; 5] = [
        FaultKind::KillOwner,
        FaultKind::FreezeInstance,
        FaultKind::AddInstance,
        FaultKind::KillRandom,
        FaultKind::Sigterm,
    ];
    /// Faults to the network between the group's machines (`--netns`).
    pub const NET: [FaultKind; 5] = [
        FaultKind::PartitionBroker,
        FaultKind::PartitionCatalog,
        FaultKind::PartitionAll,
        FaultKind::SlowLink,
        FaultKind::LossyLink,
    ];
    /// Faults to the SeaweedFS server and its S3.
    pub const S3: [FaultKind; 4] = [
        FaultKind::S3Down,
        FaultKind::S3Errors,
        FaultKind::S3Timeouts,
        FaultKind::S3Slow,
    ];

    pub const ALL: [FaultKind; 11] = [
        FaultKind::KillAfterUpload,
        FaultKind::KillAfterCommitWrite,
        FaultKind::KillAfterCatalogCommit,
        FaultKind::KillRandom,
        FaultKind::PanicConsumer,
        FaultKind::PanicCommitter,
        FaultKind::FreezeActor,
        FaultKind::BrokerDown,
        FaultKind::StorageReadOnly,
        FaultKind::AmbiguousCommit,
        FaultKind::Sigterm,
    ];

    /// The kinds a lane injects, in a fixed order (a seed replays the same drill): the local
    /// lane's storage fault is a read-only directory, SeaweedFS's are the server and S3's;
    /// with `net` (machines in their own namespaces) a group lane adds the network's, except
    /// a cut from a catalog that is a local file.
    pub fn of(lane: Lane, net: bool) -> Vec<FaultKind> {
        let mut kinds = Self::of_storage(lane);
        if net && lane.is_group() {
            kinds.extend(
                FaultKind::NET
                    .iter()
                    .filter(|k| lane.on_seaweed() || **k != FaultKind::PartitionCatalog),
            );
        }
        kinds
    }

    fn of_storage(lane: Lane) -> Vec<FaultKind> {
        match lane {
            Lane::Local => FaultKind::ALL.to_vec(),
            Lane::Group => FaultKind::GROUP.to_vec(),
            Lane::GroupSeaweed => FaultKind::GROUP
                .iter()
                .copied()
                .chain(FaultKind::S3)
                .collect(),
            Lane::Seaweed => FaultKind::ALL
                .iter()
                .copied()
                .filter(|k| *k != FaultKind::StorageReadOnly)
                .chain(FaultKind::S3)
                .collect(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillAfterUpload => "kill9@after_upload",
            FaultKind::KillAfterCommitWrite => "kill9@after_commit_write",
            FaultKind::KillAfterCatalogCommit => "kill9@after_catalog_commit",
            FaultKind::KillRandom => "kill9@random",
            FaultKind::PanicConsumer => "panic@consumer",
            FaultKind::PanicCommitter => "panic@committer",
            FaultKind::FreezeActor => "freeze@actor",
            FaultKind::BrokerDown => "broker_down",
            FaultKind::StorageReadOnly => "storage_read_only",
            FaultKind::AmbiguousCommit => "ambiguous_commit",
            FaultKind::Sigterm => "sigterm",
            FaultKind::S3Down => "s3_down",
            FaultKind::S3Errors => "s3_5xx",
            FaultKind::S3Timeouts => "s3_timeout",
            FaultKind::S3Slow => "s3_slow",
            FaultKind::KillOwner => "kill9@rollup_owner",
            FaultKind::FreezeInstance => "sigstop@instance",
            FaultKind::AddInstance => "add_instance+sigterm_other",
            FaultKind::PartitionBroker => "partition@broker",
            FaultKind::PartitionCatalog => "partition@catalog",
            FaultKind::PartitionAll => "partition@all",
            FaultKind::SlowLink => "slow_link",
            FaultKind::LossyLink => "lossy_link",
            FaultKind::RollingRestart => "rolling_restart",
        }
    }

    /// The kind called `name` (as the verdict table prints it).
    pub fn parse(name: &str) -> Option<FaultKind> {
        FaultKind::ALL
            .iter()
            .chain(&FaultKind::GROUP)
            .chain(&FaultKind::S3)
            .chain(&FaultKind::NET)
            .chain(&[FaultKind::RollingRestart])
            .copied()
            .find(|k| k.name() == name)
    }

    /// Aimed at the group's instances (the group lanes inject it).
    pub fn is_group(self) -> bool {
        FaultKind::GROUP.contains(&self) || self == FaultKind::RollingRestart
    }

    /// Kinds named on the command line, each checked against what the lane can inject.
    pub fn named(names: &[String], lane: Lane, net: bool) -> Result<Vec<FaultKind>, String> {
        let possible = FaultKind::of(lane, net);
        names
            .iter()
            .map(|n| {
                let kind = FaultKind::parse(n.trim())
                    .ok_or_else(|| format!("--kinds: no fault kind {n:?}"))?;
                let fits = possible.contains(&kind)
                    || (kind == FaultKind::RollingRestart && lane.is_group());
                if !fits {
                    return Err(format!(
                        "--kinds: {n} does not fit this lane ({lane:?}{}); it injects {}",
                        if net { ", --netns" } else { "" },
                        possible
                            .iter()
                            .map(|k| k.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                Ok(kind)
            })
            .collect()
    }

    /// Relative frequency once every kind has had its turn (the cheap ones more often).
    fn weight(self) -> u32 {
        match self {
            FaultKind::KillRandom | FaultKind::PanicConsumer | FaultKind::PanicCommitter => 3,
            FaultKind::KillAfterUpload
            | FaultKind::KillAfterCommitWrite
            | FaultKind::KillAfterCatalogCommit
            | FaultKind::AmbiguousCommit => 2,
            _ => 1,
        }
    }

    /// How long the fault is held before it is healed (drawn per fault).
    fn hold_range_ms(self) -> (u64, u64) {
        match self {
            FaultKind::KillRandom | FaultKind::KillOwner => (300, 2_000),
            FaultKind::AddInstance => (5_000, 10_000),
            FaultKind::BrokerDown => (3_000, 8_000),
            FaultKind::StorageReadOnly => (3_000, 8_000),
            FaultKind::S3Down => (3_000, 8_000),
            FaultKind::S3Errors | FaultKind::S3Slow => (2_000, 6_000),
            // Some within the group session (6 s), some past it: the group moves on.
            FaultKind::PartitionBroker | FaultKind::PartitionCatalog | FaultKind::PartitionAll => {
                (2_000, 12_000)
            }
            FaultKind::SlowLink | FaultKind::LossyLink => (3_000, 8_000),
            _ => (0, 0),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub index: usize,
    pub kind: FaultKind,
    /// Not before this long after production starts.
    pub at: Duration,
    pub hold: Duration,
}

/// `total` faults spread over `span`: every kind at least once (when `total` allows), the rest
/// by weight, shuffled; one per equal slot, at a random point in the slot's first half.
pub fn plan(seed: u64, total: usize, span: Duration, all: &[FaultKind]) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut kinds: Vec<FaultKind> = all.iter().copied().take(total).collect();
    let weighted: Vec<FaultKind> = all
        .iter()
        .flat_map(|k| std::iter::repeat_n(*k, k.weight() as usize))
        .collect();
    while kinds.len() < total {
        kinds.push(weighted[rng.random_range(0..weighted.len())]);
    }
    kinds.shuffle(&mut rng);
    let slot = span.as_millis() as u64 / total.max(1) as u64;
    kinds
        .into_iter()
        .enumerate()
        .map(|(index, kind)| {
            let (lo, hi) = kind.hold_range_ms();
            Planned {
                index,
                kind,
                at: Duration::from_millis(index as u64 * slot + rng.random_range(0..=slot / 2)),
                hold: Duration::from_millis(rng.random_range(lo..=hi)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_seed_replays_the_same_schedule() {
        let local = FaultKind::of(Lane::Local, false);
        let a = plan(7, 23, Duration::from_secs(120), &local);
        assert_eq!(a, plan(7, 23, Duration::from_secs(120), &local));
        assert_ne!(a, plan(8, 23, Duration::from_secs(120), &local));
    }

    #[test]
    fn every_kind_appears_once_the_total_allows() {
        let lanes = [Lane::Local, Lane::Seaweed, Lane::Group, Lane::GroupSeaweed];
        for (lane, net) in lanes.into_iter().flat_map(|l| [(l, false), (l, true)]) {
            let all = FaultKind::of(lane, net);
            for (total, seed) in [(all.len(), 1), (23, 2), (100, 3)] {
                let p = plan(seed, total, Duration::from_secs(600), &all);
                assert_eq!(p.len(), total);
                let mut counts: BTreeMap<FaultKind, usize> = BTreeMap::new();
                for f in &p {
                    *counts.entry(f.kind).or_default() += 1;
                }
                assert_eq!(
                    counts.len(),
                    all.len(),
                    "{lane:?} total {total}: {counts:?}"
                );
                assert!(
                    counts.keys().all(|k| all.contains(k)),
                    "{lane:?}: {counts:?}"
                );
            }
        }
        // Each lane injects only what it has: no read-only directory on S3, no S3 on disk.
        let of = |l| FaultKind::of(l, false);
        assert_eq!(of(Lane::Local).len(), 11);
        assert!(!of(Lane::Seaweed).contains(&FaultKind::StorageReadOnly));
        assert!(!of(Lane::Local).contains(&FaultKind::S3Down));
        assert_eq!(of(Lane::Seaweed).len(), 14);
        assert!(of(Lane::Group).contains(&FaultKind::KillOwner));
        assert!(!of(Lane::Local).contains(&FaultKind::FreezeInstance));
        // The production topology gets the group's faults and S3's, and no read-only directory.
        let prod = of(Lane::GroupSeaweed);
        assert!(prod.contains(&FaultKind::KillOwner) && prod.contains(&FaultKind::S3Down));
        assert!(!prod.contains(&FaultKind::StorageReadOnly) && prod.len() == 9);
        // In namespaces the group lanes add the network's faults; a local catalog is no link
        // to cut, and one instance has no group to partition.
        let net = FaultKind::of(Lane::GroupSeaweed, true);
        assert_eq!(net.len(), 14);
        assert!(FaultKind::NET.iter().all(|k| net.contains(k)));
        let local_net = FaultKind::of(Lane::Group, true);
        assert_eq!(local_net.len(), 9);
        assert!(!local_net.contains(&FaultKind::PartitionCatalog));
        assert_eq!(FaultKind::of(Lane::Local, true), of(Lane::Local));
        // Fewer faults than kinds: the first kinds, no repeats.
        let p = plan(1, 3, Duration::from_secs(60), &of(Lane::Local));
        let kinds: std::collections::BTreeSet<_> = p.iter().map(|f| f.kind).collect();
        assert_eq!(kinds.len(), 3);
    }

    #[test]
    fn kinds_by_name_must_exist_and_fit_the_lane() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            FaultKind::named(
                &names(&["rolling_restart", "kill9@random"]),
                Lane::Group,
                false
            ),
            Ok(vec![FaultKind::RollingRestart, FaultKind::KillRandom])
        );
        for (lane, net) in [
            (Lane::Local, false),
            (Lane::Seaweed, false),
            (Lane::Group, true),
            (Lane::GroupSeaweed, true),
        ] {
            for kind in FaultKind::of(lane, net) {
                assert_eq!(FaultKind::parse(kind.name()), Some(kind));
            }
        }
        let err = FaultKind::named(&names(&["kill9@nowhere"]), Lane::Group, false).unwrap_err();
        assert!(err.contains("no fault kind \"kill9@nowhere\""), "{err}");
        // A deploy needs a group; S3 needs SeaweedFS; a partition needs namespaces.
        assert!(FaultKind::named(&names(&["rolling_restart"]), Lane::Local, false).is_err());
        assert!(FaultKind::named(&names(&["s3_down"]), Lane::Group, false).is_err());
        let err = FaultKind::named(&names(&["partition@broker"]), Lane::Group, false).unwrap_err();
        assert!(err.contains("it injects kill9@rollup_owner"), "{err}");
        assert!(FaultKind::named(&names(&["partition@broker"]), Lane::Group, true).is_ok());
    }

    #[test]
    fn faults_are_ordered_inside_the_span_and_holds_in_range() {
        let span = Duration::from_secs(130);
        let p = plan(42, 23, span, &FaultKind::of(Lane::Seaweed, false));
        for w in p.windows(2) {
            assert!(w[0].at < w[1].at, "{w:?}");
        }
        assert!(p.last().unwrap().at < span);
        for f in &p {
            let (lo, hi) = f.kind.hold_range_ms();
            let ms = f.hold.as_millis() as u64;
            assert!(lo <= ms && ms <= hi, "{f:?}");
        }
    }
}

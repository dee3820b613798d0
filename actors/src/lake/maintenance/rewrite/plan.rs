//! Which data files to merge: the pure decision, table-tested (size tiers, partitions,
//! freshness, the per-partition file budget).

use std::collections::BTreeMap;
use std::time::Duration;

/// When and how data files are merged.
#[derive(Clone, Debug, PartialEq)]
pub struct DataCompactionParams {
    /// Look for files to merge at most this often, checked after each commit of the table
    /// (zero: never). Time, not commits: every landed compaction keeps two snapshots through
    /// `replaced_grace`, so the number kept must not follow the commit rate.
    pub every: Duration,
    /// Merged files are cut near this size; files at three quarters of it count as done.
    pub target_file_bytes: u64,
    /// The live files a day partition should stay under: past half of it, everything old
    /// enough is merged even where the size tiers would wait (half, so the files that arrive
    /// between two rounds and inside `fresh_for`, which are never touched, fit below it).
    pub max_files_per_partition: usize,
    /// Files younger than this are left alone: freshness first, merge behind.
    pub fresh_for: Duration,
    /// Replaced files stay referenced (their last snapshot kept) at least this long, so a reader
    /// that planned its scan before the compaction can still read them.
    pub replaced_grace: Duration,
}

impl Default for DataCompactionParams {
    fn default() -> Self {
        DataCompactionParams {
            every: Duration::from_secs(60),
            target_file_bytes: 128 * 1024 * 1024,
            max_files_per_partition: 100,
            fresh_for: Duration::from_secs(30),
            replaced_grace: Duration::from_secs(600),
        }
    }
}

/// What the planner needs to know of one live data file.
#[derive(Clone, Debug, PartialEq)]
pub struct FileStat {
    pub partition: String,
    pub bytes: u64,
    /// When the snapshot that added it was committed (0 when that snapshot is expired: old).
    pub added_ms: i64,
}

/// Which files to merge, as groups of indices into `files`; each group lies in one partition
/// and becomes files near the target size. Size tiers, smallest first: a file joins a group
/// only if it is no bigger than the group so far, so small files merge among themselves and a
/// grown file is rewritten only once the files beside it add up to its size (each byte is
/// rewritten a logarithmic number of times, and a partition holds about log2(data / file)
/// files). A partition over half its file budget merges regardless of tiers. Groups of one
/// file are never written.
pub fn plan(files: &[FileStat], now_ms: i64, p: &DataCompactionParams) -> Vec<Vec<usize>> {
    let fresh_ms = i64::try_from(p.fresh_for.as_millis()).unwrap_or(i64::MAX);
    let done_bytes = p.target_file_bytes / 4 * 3;
    let mut partitions: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        partitions.entry(&f.partition).or_default().push(i);
    }
    let mut groups = Vec::new();
    for members in partitions.values() {
        let crowded = members.len() > p.max_files_per_partition / 2;
        let mut candidates: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| {
                files[i].bytes < done_bytes && now_ms.saturating_sub(files[i].added_ms) >= fresh_ms
            })
            .collect();
        candidates.sort_by_key(|&i| (files[i].bytes, files[i].added_ms, i));
        let mut bin: Vec<usize> = Vec::new();
        let mut bin_bytes = 0u64;
        let mut close = |bin: &mut Vec<usize>, bin_bytes: &mut u64| {
            let largest = bin.iter().map(|&i| files[i].bytes).max().unwrap_or(0);
            if bin.len() >= 2 && (crowded || largest.saturating_mul(2) <= *bin_bytes) {
                groups.push(std::mem::take(bin));
            }
            bin.clear();
            *bin_bytes = 0;
        };
        for i in candidates {
            let too_big = !crowded && files[i].bytes > bin_bytes;
            if !bin.is_empty() && (too_big || bin_bytes + files[i].bytes > p.target_file_bytes) {
                close(&mut bin, &mut bin_bytes);
            }
            bin.push(i);
            bin_bytes += files[i].bytes;
        }
        close(&mut bin, &mut bin_bytes);
    }
    groups
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn f(partition: &str, bytes: u64, added_s: i64) -> FileStat {
        FileStat {
            partition: partition.into(),
            bytes,
            added_ms: added_s * 1000,
        }
    }

    fn params() -> DataCompactionParams {
        DataCompactionParams {
            target_file_bytes: 100 * MIB,
            max_files_per_partition: 6,
            fresh_for: Duration::from_secs(30),
            ..DataCompactionParams::default()
        }
    }

    #[test]
    fn planning_table() {
        let now = 1_000_000; // ms, i.e. 1000 s
        let cases: Vec<(&str, Vec<FileStat>, Vec<Vec<usize>>)> = vec![
            ("nothing", vec![], vec![]),
            (
                "one small file: nothing to merge",
                vec![f("d1", MIB, 0)],
                vec![],
            ),
            (
                "small old files merge, the fresh one stays",
                vec![f("d1", MIB, 0), f("d1", MIB, 10), f("d1", MIB, 990)],
                vec![vec![0, 1]],
            ),
            (
                "partitions never mix",
                vec![
                    f("d1", MIB, 0),
                    f("d2", MIB, 0),
                    f("d1", MIB, 5),
                    f("d2", MIB, 5),
                ],
                vec![vec![0, 2], vec![1, 3]],
            ),
            (
                "files near the target are done",
                vec![f("d1", 80 * MIB, 0), f("d1", 90 * MIB, 1), f("d1", MIB, 2)],
                vec![],
            ),
            (
                "a grown file waits while the new files merge among themselves",
                vec![
                    f("d1", 40 * MIB, 0),
                    f("d1", 10 * MIB, 1),
                    f("d1", 10 * MIB, 2),
                ],
                vec![vec![1, 2]],
            ),
            (
                "... and then merges with them",
                vec![
                    f("d1", 40 * MIB, 0),
                    f("d1", 20 * MIB, 1),
                    f("d1", 20 * MIB, 2),
                ],
                vec![vec![1, 2, 0]],
            ),
            (
                "files that cannot pair under the target stay",
                vec![
                    f("d1", 60 * MIB, 3),
                    f("d1", 60 * MIB, 1),
                    f("d1", 60 * MIB, 2),
                    f("d1", 60 * MIB, 4),
                ],
                vec![],
            ),
            (
                "small ones fill bins up to the target",
                vec![
                    f("d1", 30 * MIB, 1),
                    f("d1", 30 * MIB, 2),
                    f("d1", 30 * MIB, 3),
                    f("d1", 30 * MIB, 4),
                    f("d1", 30 * MIB, 5),
                ],
                vec![vec![0, 1, 2], vec![3, 4]],
            ),
            (
                "a crowded partition merges even a lopsided bin",
                vec![
                    f("d1", 50 * MIB, 0),
                    f("d1", MIB, 1),
                    f("d1", MIB, 2),
                    f("d1", MIB, 3),
                    f("d1", MIB, 4),
                    f("d1", MIB, 5),
                    f("d1", MIB, 6),
                ],
                vec![vec![1, 2, 3, 4, 5, 6, 0]],
            ),
            (
                "a crowded partition of fresh files is still left alone",
                (0..8).map(|i| f("d1", MIB, 990 + i)).collect(),
                vec![],
            ),
        ];
        for (name, files, want) in cases {
            assert_eq!(plan(&files, now, &params()), want, "{name}");
        }
    }

    #[test]
    fn never_merges_across_partitions_or_fresh_files() {
        // Property over many shapes: every group is one partition, old enough, ≥ 2 files,
        // and no file appears twice.
        let p = params();
        for seed in 0..200u64 {
            let files: Vec<FileStat> = (0..(seed % 23))
                .map(|i| {
                    let x = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(i.wrapping_mul(1442695040888963407));
                    f(
                        ["a", "b", "c"][(x % 3) as usize],
                        (x >> 8) % (120 * MIB),
                        ((x >> 40) % 1000) as i64,
                    )
                })
                .collect();
            let groups = plan(&files, 1_000_000, &p);
            let mut seen = HashSet::new();
            for g in &groups {
                assert!(g.len() >= 2);
                assert!(g
                    .iter()
                    .all(|&i| files[i].partition == files[g[0]].partition));
                assert!(g.iter().all(|&i| 1_000_000 - files[i].added_ms >= 30_000));
                assert!(g.iter().all(|&i| seen.insert(i)));
            }
        }
    }
}

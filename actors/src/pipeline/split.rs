//! Decoding a polled batch: records into raw rows and dead letters with the offset ranges
//! they cover, cut into parts when the events span too many day partitions.

use super::consumer::ConsumerState;
use super::kafka::Polled;
use super::preview::push_event;
use crate::error::Error;
use crate::events::{decode, DeadLetterReason, Rejection};
use crate::faults::Point;
use crate::lake::{Offsets, Ranges};
use crate::schema::{DeadLetter, Rows, Source};

impl ConsumerState {
    /// Decode records from `from` on into raw rows and dead letters, with their offset
    /// ranges, up to the end or to the first record of a day partition past
    /// `max_days_per_batch` (returned: where the next part starts).
    pub(super) async fn split(
        &mut self,
        records: &Polled,
        from: usize,
    ) -> Result<(Ranges, Rows, Vec<DeadLetter>, usize), Error> {
        let state = self;
        let params = &state.args.params;
        let now = chrono::Utc::now().timestamp_micros();
        let mut ranges = Ranges::new();
        let all = records.records.get(from..).unwrap_or_default();
        let mut raw = Rows::with_capacity(params.kind, all.len());
        let mut dead = Vec::new();
        let mut reread = 0u64;
        let mut days: Vec<i64> = Vec::new();
        let mut next = from + all.len();
        for (i, record) in all.iter().enumerate() {
            if state.recovery.running() {
                state.recovery.read(record.partition, record.offset);
            }
            let payload = records.payload(record);
            let p = record.partition;
            let dl_start = state.dl_position.get(&p).copied().unwrap_or(record.offset);
            let dl_range = state.dl_ranges.entry(p).or_insert((dl_start, dl_start));
            dl_range.1 = dl_range.1.max(record.offset + 1);
            // Every record follows its partition's assignment (applied above), which set the
            // position from the lake; anything else would commit a range we never read.
            let Some(start) = state.position.get(&p).copied() else {
                return Err(Error::Transient(format!(
                    "topic {}: record {p}/{} from a partition not assigned to this instance",
                    params.topic, record.offset
                )));
            };
            // Below the raw table's position: already stored; re-read only to rebuild dead
            // letters that were buffered but not committed before a restart.
            let replay_only = record.offset < start;
            reread += replay_only as u64;
            if !replay_only {
                let range = ranges.entry(p).or_insert((start, start));
                range.1 = record.offset + 1;
            }
            let source = Source {
                partition: record.partition,
                offset: record.offset,
                ingested_at: now,
            };
            state
                .args
                .progress
                .set_record(Some((record.partition, record.offset)));
            let outcome = if state
                .args
                .poison
                .contains(&(record.partition, record.offset))
            {
                Err(Rejection {
                    reason: DeadLetterReason::HandlerFailure,
                    detail: "record made the consumer fail twice".into(),
                })
            } else {
                params
                    .faults
                    .hit(Point::ConsumerRecord, payload, None)
                    .await?;
                decode(params.kind, payload, &params.batch.limits, now)
            };
            state.args.progress.set_record(None);
            match outcome {
                Ok(_) if replay_only => {}
                Ok(event) => {
                    let day = event.time().div_euclid(86_400_000_000);
                    if !days.contains(&day) {
                        if days.len() >= params.batch.max_days_per_batch {
                            // This record starts the next part; undo its range step.
                            next = from + i;
                            ranges = ranges_before(
                                &state.position,
                                all[..i].iter().map(|r| (r.partition, r.offset)),
                            );
                            break;
                        }
                        days.push(day);
                    }
                    push_event(&mut raw, source, event)
                }
                Err(rejection) => {
                    params
                        .metrics
                        .dead_letters
                        .with_label_values(&[&params.topic, rejection.reason.as_str()])
                        .inc();
                    dead.push(dead_letter(
                        &params.topic,
                        source,
                        rejection,
                        payload,
                        params.batch.dead_letter_payload_max_bytes,
                    ));
                }
            }
        }
        params
            .metrics
            .consumed
            .with_label_values(&[&params.topic])
            .inc_by((next - from) as u64);
        if reread > 0 {
            params
                .metrics
                .records_reread
                .with_label_values(&[&params.topic])
                .inc_by(reread);
        }
        Ok((ranges, raw, dead, next))
    }
}

/// The ranges the records `(partition, offset)` cover above each partition's raw position
/// (what a part of a batch commits when it ends before the batch does).
fn ranges_before(position: &Offsets, records: impl Iterator<Item = (i32, i64)>) -> Ranges {
    let mut ranges = Ranges::new();
    for (partition, offset) in records {
        let Some(&start) = position.get(&partition) else {
            continue;
        };
        if offset >= start {
            ranges.entry(partition).or_insert((start, start)).1 = offset + 1;
        }
    }
    ranges
}

fn dead_letter(
    topic: &str,
    source: Source,
    rejection: Rejection,
    payload: Option<&[u8]>,
    max_bytes: usize,
) -> DeadLetter {
    let bytes = payload.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max_bytes)]).into_owned();
    DeadLetter {
        topic: topic.to_string(),
        source,
        reason: rejection.reason.as_str(),
        detail: rejection.detail,
        payload: text,
        payload_bytes: bytes.len() as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_covers_what_it_read_above_each_raw_position() {
        let rec = |partition: i32, offset: i64| (partition, offset);
        let position: Offsets = [(0, 10), (1, 50)].into();
        // Partition 0: 8 and 9 are a replay below the raw position (dead letters only);
        // partition 2 is not ours (never in a part).
        let records = [
            rec(0, 8),
            rec(0, 9),
            rec(0, 10),
            rec(1, 50),
            rec(0, 11),
            rec(2, 3),
        ];
        let want: Ranges = [(0, (10, 12)), (1, (50, 51))].into();
        assert_eq!(ranges_before(&position, records.iter().copied()), want);
        // Cut before the record at index 4: partition 0 ends at 11.
        let want: Ranges = [(0, (10, 11)), (1, (50, 51))].into();
        assert_eq!(ranges_before(&position, records[..4].iter().copied()), want);
        assert!(ranges_before(&position, records[..2].iter().copied()).is_empty());
    }
}

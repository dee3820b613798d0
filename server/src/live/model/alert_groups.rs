//! The page's alert groups: per rule and key, with what operators said about them (read back
//! from the lake through Flight SQL, decided by the one [`Mutes`] reading the detector uses).

use arrow_array::RecordBatch;
use serde_json::{json, Value};
use shopwatch_actors::alerts::actions::{self, Action, Kind, Mutes};
use shopwatch_actors::events::Micros;
use shopwatch_actors::schema::columns::ColumnType;

use crate::live::model::results::{rows, Kind as Col};

pub const GROUP_COLUMNS: [(&str, Col); 6] = [
    ("alert_type", Col::Text),
    ("alert_key", Col::Text),
    ("alert_count", Col::Int),
    ("first_at", Col::Ts),
    ("last_at", Col::Ts),
    ("description", Col::Text),
];

/// The actions table's columns as the dashboard reads them (from its one definition).
fn action_columns() -> Vec<(&'static str, Col)> {
    actions::COLUMNS
        .iter()
        .map(|c| {
            let kind = match c.ty {
                ColumnType::Timestamp => Col::Ts,
                ColumnType::Double => Col::Float,
                ColumnType::Int | ColumnType::Long => Col::Int,
                ColumnType::Str => Col::Text,
            };
            (c.name, kind)
        })
        .collect()
}

/// Actions as the page's query returns them (milliseconds) in the table's terms (micros).
pub fn actions_from(batches: &[RecordBatch]) -> Vec<Action> {
    let ms = |v: &Value| v.as_i64().map(|t| t * 1_000);
    let text = |v: &Value| v.as_str().map(str::to_string);
    rows(batches, &action_columns())
        .iter()
        .filter_map(|r| {
            Some(Action {
                action_id: text(&r["action_id"])?,
                kind: Kind::parse(r["action"].as_str()?)?,
                rule: text(&r["alert_type"])?,
                key: text(&r["alert_key"])?,
                // Stored in micros, read in millis: the last millisecond is covered whole.
                through: ms(&r["through"]).map(|t| t + 999),
                until: ms(&r["until"]),
                note: text(&r["note"]),
                actor: text(&r["actor"]).unwrap_or_default(),
                at: ms(&r["at"])?,
            })
        })
        .collect()
}

/// Each group row with its state: `silenced` (until, by whom), `acknowledged` (an
/// acknowledgement given while this group was open, and how far it saw), or `open` (with an
/// older group's acknowledgement, if any).
pub fn groups(groups: &[RecordBatch], actions: &[Action], now: Micros) -> Vec<Value> {
    let mutes = Mutes::new(actions);
    let who = |a: &Action| json!({"by": a.actor, "at": a.at / 1_000, "note": a.note});
    rows(groups, &GROUP_COLUMNS)
        .into_iter()
        .map(|mut g| {
            let rule = g["alert_type"].as_str().unwrap_or_default().to_string();
            let key = g["alert_key"].as_str().unwrap_or_default().to_string();
            let first = g["first_at"].as_i64().unwrap_or(0) * 1_000;
            let (state, detail) = if let Some(s) = mutes.silence(&rule, &key, now) {
                let mut d = who(s);
                d["until"] = json!(s.until.map(|u| u / 1_000));
                ("silenced", d)
            } else if let Some(a) = mutes.acknowledgement(&rule, &key, first) {
                // As the detector reads it: the group it was given in stays acknowledged
                // (newer alerts in it do not page); `through` says how far the operator saw.
                let mut d = who(a);
                d["through"] = json!(a.through.map(|t| t / 1_000));
                ("acknowledged", d)
            } else if let Some(a) = mutes.acknowledgement(&rule, &key, Micros::MIN) {
                let mut d = who(a);
                d["through"] = json!(a.through.map(|t| t / 1_000));
                ("open", d)
            } else {
                ("open", Value::Null)
            };
            g["state"] = json!(state);
            g["action"] = detail;
            g
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};

    use super::*;

    fn group_batch(rows: &[(&str, &str, i64, i64, i64)]) -> RecordBatch {
        let ts = || DataType::Timestamp(TimeUnit::Millisecond, None);
        let schema = Schema::new(vec![
            Field::new("alert_type", DataType::Utf8, false),
            Field::new("alert_key", DataType::Utf8, false),
            Field::new("alert_count", DataType::Int64, false),
            Field::new("first_at", ts(), false),
            Field::new("last_at", ts(), false),
            Field::new("description", DataType::Utf8, false),
        ]);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|r| r.3),
            )),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|r| r.4),
            )),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "d"))),
        ];
        RecordBatch::try_new(Arc::new(schema), cols).unwrap()
    }

    fn action(
        kind: Kind,
        key: &str,
        at_ms: i64,
        through_ms: Option<i64>,
        until_ms: Option<i64>,
    ) -> Action {
        Action {
            action_id: format!("{at_ms}"),
            kind,
            rule: "FATAL_ERROR".into(),
            key: key.into(),
            through: through_ms.map(|t| t * 1_000 + 999),
            until: until_ms.map(|t| t * 1_000),
            note: Some("n".into()),
            actor: "operator".into(),
            at: at_ms * 1_000,
        }
    }

    #[test]
    fn each_group_shows_what_operators_said() {
        let batch = group_batch(&[
            ("FATAL_ERROR", "payment", 57, 1_000, 9_000),
            ("FATAL_ERROR", "search", 3, 2_000, 8_000),
            ("FATAL_ERROR", "cart", 2, 2_000, 8_000),
            ("FATAL_ERROR", "db", 1, 2_000, 8_000),
        ]);
        let actions = [
            action(Kind::Silence, "payment", 9_500, None, Some(60_000)),
            action(Kind::Acknowledge, "search", 8_500, Some(8_000), None),
            action(Kind::Acknowledge, "cart", 1_600, Some(1_500), None),
            action(Kind::Acknowledge, "db", 5_000, Some(5_000), None),
        ];
        let g = groups(&[batch], &actions, 10_000_000);
        let states: Vec<&str> = g.iter().map(|r| r["state"].as_str().unwrap()).collect();
        assert_eq!(states, ["silenced", "acknowledged", "open", "acknowledged"]);
        assert_eq!(g[0]["action"]["until"], 60_000);
        assert_eq!(g[0]["alert_count"], 57);
        assert_eq!(
            g[2]["action"]["through"], 1_500,
            "an older group's acknowledgement"
        );
        assert_eq!(
            g[3]["action"]["through"], 5_000,
            "newer alerts since, still acknowledged"
        );
        let none = groups(
            &[group_batch(&[("FATAL_ERROR", "x", 1, 1, 1)])],
            &actions,
            0,
        );
        assert!(none[0]["action"].is_null());
        // The silence over, the group is open again.
        let later = groups(
            &[group_batch(&[("FATAL_ERROR", "payment", 57, 1_000, 9_000)])],
            &actions,
            60_000_000,
        );
        assert_eq!(later[0]["state"], "open");
    }
}

//! What operators say about alerts: acknowledge a group (with a note) or silence a rule and key
//! for a while, and undo either. Every action is one row of the append-only `alert_actions`
//! table (who, when, until): the audit, and the state every instance reads back, so it survives
//! restarts and is shared. [`Mutes`] is the one reading of that state: the detector asks it
//! whether a group may page, the page asks it what to show.

use std::collections::BTreeMap;

use crate::events::Micros;
use crate::schema::columns::{self, col, Column, ColumnType::*, Value};
use crate::schema::{Encode, TableSpec};

pub const TABLE: &str = "alert_actions";

pub const COLUMNS: [Column; 9] = [
    col("action_id", Str),
    col("action", Str),
    col("alert_type", Str),
    col("alert_key", Str),
    // Acknowledge: alerts of the rule and key up to this event time.
    col("through", Timestamp),
    // Silence: until this time.
    col("until", Timestamp),
    col("note", Str),
    col("actor", Str),
    col("at", Timestamp),
];

pub fn spec() -> TableSpec {
    columns::spec(TABLE, &COLUMNS, "at", COLUMNS.len())
}

/// The longest silence; a longer one is a rule to switch off in the configuration.
pub const MAX_SILENCE: Micros = 7 * 24 * 3600 * 1_000_000;
const MIN_SILENCE: Micros = 60 * 1_000_000;
const MAX_NOTE: usize = 500;
const MAX_KEY: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Acknowledge,
    Unacknowledge,
    Silence,
    Unsilence,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Acknowledge,
        Kind::Unacknowledge,
        Kind::Silence,
        Kind::Unsilence,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Acknowledge => "acknowledge",
            Kind::Unacknowledge => "unacknowledge",
            Kind::Silence => "silence",
            Kind::Unsilence => "unsilence",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    fn is_silence(self) -> bool {
        matches!(self, Kind::Silence | Kind::Unsilence)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Action {
    pub action_id: String,
    pub kind: Kind,
    pub rule: String,
    pub key: String,
    pub through: Option<Micros>,
    pub until: Option<Micros>,
    pub note: Option<String>,
    pub actor: String,
    pub at: Micros,
}

/// What a client asks for, before it is checked.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
pub struct Request {
    pub action: String,
    pub alert_type: String,
    pub alert_key: String,
    /// Acknowledge: alerts up to this time (microseconds); default: now.
    #[serde(default)]
    pub through: Option<Micros>,
    /// Silence: for this many seconds.
    #[serde(default)]
    pub duration_s: Option<u64>,
    #[serde(default)]
    pub note: Option<String>,
}

impl Action {
    /// Check a request; the error names the field and what is allowed.
    pub fn from_request(
        r: &Request,
        known_rules: &[&str],
        actor: &str,
        action_id: String,
        now: Micros,
    ) -> Result<Action, String> {
        let kind = Kind::parse(&r.action).ok_or_else(|| {
            let all: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            format!("action: one of {}", all.join(", "))
        })?;
        if !known_rules.contains(&r.alert_type.as_str()) {
            return Err(format!("alert_type: one of {}", known_rules.join(", ")));
        }
        if r.alert_key.is_empty() || r.alert_key.chars().count() > MAX_KEY {
            return Err(format!("alert_key: 1 to {MAX_KEY} characters"));
        }
        let note = r.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
        if note.is_some_and(|n| n.chars().count() > MAX_NOTE) {
            return Err(format!("note: at most {MAX_NOTE} characters"));
        }
        let until = match (kind, r.duration_s) {
            (Kind::Silence, Some(s)) => {
                let d = i64::try_from(s)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(1_000_000);
                if !(MIN_SILENCE..=MAX_SILENCE).contains(&d) {
                    return Err(format!(
                        "duration_s: {} to {} seconds",
                        MIN_SILENCE / 1_000_000,
                        MAX_SILENCE / 1_000_000
                    ));
                }
                Some(now.saturating_add(d))
            }
            (Kind::Silence, None) => return Err("duration_s: required to silence".into()),
            _ => None,
        };
        let through = match kind {
            Kind::Acknowledge => Some(r.through.unwrap_or(now).min(now)),
            _ => None,
        };
        Ok(Action {
            action_id,
            kind,
            rule: r.alert_type.clone(),
            key: r.alert_key.clone(),
            through,
            until,
            note: note.map(str::to_string),
            actor: actor.to_string(),
            at: now,
        })
    }

    /// Rows of the table, in its column order.
    pub fn decode(batch: &arrow_array::RecordBatch) -> Result<Vec<Action>, String> {
        let ts = |v: &Value| match v {
            Value::Timestamp(t) => Some(*t),
            _ => None,
        };
        let text = |v: &Value| v.as_str().map(str::to_string);
        columns::decode(batch, &COLUMNS)?
            .into_iter()
            .map(|r| {
                let kind = r[1]
                    .as_str()
                    .and_then(Kind::parse)
                    .ok_or_else(|| format!("{TABLE}: unknown action {:?}", r[1]))?;
                Ok(Action {
                    action_id: text(&r[0]).unwrap_or_default(),
                    kind,
                    rule: text(&r[2]).unwrap_or_default(),
                    key: text(&r[3]).unwrap_or_default(),
                    through: ts(&r[4]),
                    until: ts(&r[5]),
                    note: text(&r[6]),
                    actor: text(&r[7]).unwrap_or_default(),
                    at: ts(&r[8]).unwrap_or_default(),
                })
            })
            .collect()
    }
}

/// Actions to append (normally one).
#[derive(Clone, Debug, Default)]
pub struct Actions(pub Vec<Action>);

impl Encode for Actions {
    fn spec(&self) -> TableSpec {
        spec()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn encode(
        &self,
        schema: arrow_schema::SchemaRef,
        _now: Micros,
    ) -> Result<arrow_array::RecordBatch, arrow_schema::ArrowError> {
        let opt = |t: Option<Micros>| t.map_or(Value::Null, Value::Timestamp);
        let rows: Vec<Vec<Value>> = self
            .0
            .iter()
            .map(|a| {
                vec![
                    Value::Str(a.action_id.clone()),
                    Value::Str(a.kind.as_str().to_string()),
                    Value::Str(a.rule.clone()),
                    Value::Str(a.key.clone()),
                    opt(a.through),
                    opt(a.until),
                    a.note.clone().map_or(Value::Null, Value::Str),
                    Value::Str(a.actor.clone()),
                    Value::Timestamp(a.at),
                ]
            })
            .collect();
        columns::encode(schema, &COLUMNS, &rows)
    }
}

/// The standing word on every rule and key: the newest silence-or-unsilence and the newest
/// acknowledge-or-unacknowledge (by time, then id).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mutes {
    silences: BTreeMap<(String, String), Action>,
    acks: BTreeMap<(String, String), Action>,
}

impl Mutes {
    pub fn new(actions: &[Action]) -> Mutes {
        let mut sorted: Vec<&Action> = actions.iter().collect();
        sorted.sort_by(|a, b| (a.at, &a.action_id).cmp(&(b.at, &b.action_id)));
        let mut m = Mutes::default();
        for a in sorted {
            let k = (a.rule.clone(), a.key.clone());
            if a.kind.is_silence() {
                m.silences.insert(k, a.clone());
            } else {
                m.acks.insert(k, a.clone());
            }
        }
        m
    }

    /// The silence in force on `rule` and `key` at `now`, if any.
    pub fn silence(&self, rule: &str, key: &str, now: Micros) -> Option<&Action> {
        self.silences
            .get(&(rule.to_string(), key.to_string()))
            .filter(|a| a.kind == Kind::Silence && a.until.is_some_and(|u| now < u))
    }

    /// The acknowledgement covering alerts of `rule` and `key` from `since` on, if any.
    pub fn acknowledgement(&self, rule: &str, key: &str, since: Micros) -> Option<&Action> {
        self.acks
            .get(&(rule.to_string(), key.to_string()))
            .filter(|a| a.kind == Kind::Acknowledge && a.through.is_some_and(|t| t >= since))
    }

    /// Whether a group may page at `now`.
    pub fn mute(&self, g: &super::Group, now: Micros) -> super::Mute {
        if self.silence(&g.rule, &g.key, now).is_some() {
            super::Mute::Silenced
        } else if self.acknowledgement(&g.rule, &g.key, g.first_at).is_some() {
            super::Mute::Acknowledged
        } else {
            super::Mute::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;
    const RULES: [&str; 2] = ["FATAL_ERROR", "ORDERS_DROP"];

    fn req(action: &str, duration_s: Option<u64>) -> Request {
        Request {
            action: action.into(),
            alert_type: "FATAL_ERROR".into(),
            alert_key: "payment".into(),
            duration_s,
            ..Request::default()
        }
    }

    fn act(r: &Request, id: &str, at: Micros) -> Action {
        Action::from_request(r, &RULES, "ops", id.into(), at).unwrap()
    }

    #[test]
    fn requests_are_checked_field_by_field() {
        let check = |r: Request| Action::from_request(&r, &RULES, "ops", "id".into(), 0);
        assert!(check(req("snooze", None))
            .unwrap_err()
            .starts_with("action:"));
        let mut r = req("acknowledge", None);
        r.alert_type = "NOPE".into();
        assert!(check(r).unwrap_err().starts_with("alert_type:"));
        let mut r = req("acknowledge", None);
        r.alert_key = String::new();
        assert!(check(r).unwrap_err().starts_with("alert_key:"));
        assert!(check(req("silence", None))
            .unwrap_err()
            .starts_with("duration_s:"));
        assert!(check(req("silence", Some(10)))
            .unwrap_err()
            .starts_with("duration_s:"));
        assert!(check(req("silence", Some(8 * 24 * 3600))).is_err());
        let mut r = req("acknowledge", None);
        r.note = Some("x".repeat(501));
        assert!(check(r).unwrap_err().starts_with("note:"));
        let s = check(req("silence", Some(3600))).unwrap();
        assert_eq!(s.until, Some(3600 * S));
        // An acknowledgement never reaches into the future.
        let mut r = req("acknowledge", None);
        r.through = Some(99 * S);
        r.note = Some("  looking into it ".into());
        let a = Action::from_request(&r, &RULES, "ops", "id".into(), 10 * S).unwrap();
        assert_eq!(
            (a.through, a.note.as_deref()),
            (Some(10 * S), Some("looking into it"))
        );
    }

    #[test]
    fn the_newest_word_wins_and_silences_expire() {
        let silence = act(&req("silence", Some(600)), "a", 0);
        let m = Mutes::new(std::slice::from_ref(&silence));
        assert!(m.silence("FATAL_ERROR", "payment", 599 * S).is_some());
        assert!(
            m.silence("FATAL_ERROR", "payment", 600 * S).is_none(),
            "expired"
        );
        assert!(m.silence("FATAL_ERROR", "search", S).is_none(), "other key");
        let undo = act(&req("unsilence", None), "b", 10 * S);
        // Order of the rows does not matter; time does.
        let m = Mutes::new(&[undo.clone(), silence.clone()]);
        assert!(m.silence("FATAL_ERROR", "payment", 20 * S).is_none());
        let again = act(&req("silence", Some(600)), "c", 30 * S);
        let m = Mutes::new(&[silence, undo, again]);
        assert!(m.silence("FATAL_ERROR", "payment", 40 * S).is_some());
    }

    #[test]
    fn an_acknowledgement_covers_the_group_it_was_given_in() {
        let mut r = req("acknowledge", None);
        r.through = Some(100 * S);
        let ack = act(&r, "a", 200 * S);
        let m = Mutes::new(std::slice::from_ref(&ack));
        assert!(m
            .acknowledgement("FATAL_ERROR", "payment", 50 * S)
            .is_some());
        assert!(
            m.acknowledgement("FATAL_ERROR", "payment", 150 * S)
                .is_none(),
            "a later group"
        );
        let undo = act(&req("unacknowledge", None), "b", 300 * S);
        assert!(Mutes::new(&[ack, undo])
            .acknowledgement("FATAL_ERROR", "payment", 50 * S)
            .is_none());
    }

    #[test]
    fn rows_round_trip_through_the_table_schema() {
        let mut r = req("silence", Some(600));
        r.note = Some("deploy".into());
        let a = act(&r, "a", 5 * S);
        let arrow =
            std::sync::Arc::new(iceberg::arrow::schema_to_arrow_schema(&spec().schema).unwrap());
        let batch = Actions(vec![a.clone()]).encode(arrow, 0).unwrap();
        assert_eq!(Action::decode(&batch).unwrap(), vec![a]);
    }
}

//! Alert grouping, pure, the way Alertmanager groups: alerts of one rule about one key (a
//! service, a topic) join one group while they keep coming within `group_interval` of each
//! other (event time). A group pages once `group_wait` after it opens, so a burst pages once
//! with its count; it pages again only when new alerts joined and `repeat_interval` passed since
//! its last page. A silenced group still counts its alerts (the `alerts` table keeps every one)
//! but never pages; an acknowledged group pages no repeats. The state rides in the detector's
//! checkpoint, so a restart neither pages an open group again nor forgets one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::alert::Alert;
use crate::events::Micros;

/// How many of a group's newest source records a notification carries.
pub const MAX_SOURCES: usize = 20;

/// Open groups at most: the detector records them with every commit, in table metadata. A
/// flood of alerts with distinct keys (made-up service names) closes the groups touched
/// longest ago early; they page on their way out as any closing group does.
pub const MAX_OPEN_GROUPS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupParams {
    /// Processing time from a group's first alert to its first page (collects the burst).
    pub group_wait: Micros,
    /// An alert more than this after its group's newest (event time) opens a new group; a
    /// group nothing joined for this long (processing time) is closed.
    pub group_interval: Micros,
    /// A group pages again no sooner than this after its last page, and only with new alerts.
    pub repeat_interval: Micros,
}

impl Default for GroupParams {
    /// Alertmanager's shape, with a shorter wait: a burst still pages once.
    fn default() -> Self {
        GroupParams {
            group_wait: 10_000_000,
            group_interval: 300_000_000,
            repeat_interval: 3_600_000_000,
        }
    }
}

/// One alert behind a group: its id and the record it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub alert_id: String,
    pub at: Micros,
    pub topic: Option<String>,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The id of the alert that opened it: deterministic, so a replay names it the same.
    pub group_id: String,
    pub rule: String,
    pub key: String,
    pub count: u64,
    /// Event time of its oldest and newest alert.
    pub first_at: Micros,
    pub last_at: Micros,
    /// The newest alert's description and value.
    pub description: String,
    pub metric_value: f64,
    /// Processing time it opened and something last joined.
    pub opened: Micros,
    pub touched: Micros,
    /// Alerts accounted for by pages (or swallowed by a silence or an acknowledgement).
    pub paged_count: u64,
    pub paged_at: Option<Micros>,
    /// The newest [`MAX_SOURCES`] alerts, oldest first.
    pub sources: Vec<Source>,
}

impl Group {
    fn open(a: &Alert, now: Micros) -> Group {
        let mut g = Group {
            group_id: a.alert_id.clone(),
            rule: a.alert_type.to_string(),
            key: a.alert_key.clone(),
            count: 0,
            first_at: a.alert_timestamp,
            last_at: a.alert_timestamp,
            description: String::new(),
            metric_value: a.metric_value,
            opened: now,
            touched: now,
            paged_count: 0,
            paged_at: None,
            sources: Vec::new(),
        };
        g.join(a, now);
        g
    }

    fn join(&mut self, a: &Alert, now: Micros) {
        self.count += 1;
        self.first_at = self.first_at.min(a.alert_timestamp);
        if a.alert_timestamp >= self.last_at || self.description.is_empty() {
            self.last_at = self.last_at.max(a.alert_timestamp);
            self.description = a.description.clone();
            self.metric_value = a.metric_value;
        }
        self.touched = now;
        self.sources.push(Source {
            alert_id: a.alert_id.clone(),
            at: a.alert_timestamp,
            topic: a.source_topic.clone(),
            partition: a.source_partition,
            offset: a.source_offset,
        });
        if self.sources.len() > MAX_SOURCES {
            self.sources.remove(0);
        }
    }

    /// Whether an alert at `at` belongs here (within the interval of the group's span).
    fn takes(&self, at: Micros, interval: Micros) -> bool {
        at <= self.last_at.saturating_add(interval) && at >= self.first_at.saturating_sub(interval)
    }
}

/// What an operator said about a group, as of now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mute {
    None,
    /// Its rule and key are silenced: nothing pages.
    Silenced,
    /// Acknowledged: no repeats (a new group of the same rule and key pages again).
    Acknowledged,
}

/// A page: the group as it is now, and how many of its alerts are new since the last page.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub group: Group,
    pub new_alerts: u64,
    /// Not the group's first page.
    pub repeat: bool,
}

/// What the detector records with each commit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    #[serde(default)]
    pub open: Vec<Group>,
}

pub struct Grouper {
    params: GroupParams,
    open: BTreeMap<(String, String), Group>,
    /// Groups a later alert replaced, not yet looked at by [`Grouper::due`].
    closed: Vec<Group>,
}

impl Grouper {
    pub fn new(params: GroupParams, state: GroupState) -> Self {
        Grouper {
            params,
            open: state
                .open
                .into_iter()
                .map(|g| ((g.rule.clone(), g.key.clone()), g))
                .collect(),
            closed: Vec::new(),
        }
    }

    pub fn state(&self) -> GroupState {
        GroupState {
            open: self.open.values().cloned().collect(),
        }
    }

    /// The open groups, by rule and key.
    pub fn open_groups(&self) -> impl Iterator<Item = &Group> {
        self.open.values()
    }

    /// Put committed alerts into their groups (`now`: processing time).
    pub fn add(&mut self, alerts: &[Alert], now: Micros) {
        let interval = self.params.group_interval;
        for a in alerts {
            let k = (a.alert_type.to_string(), a.alert_key.clone());
            match self.open.get_mut(&k) {
                Some(g) if g.takes(a.alert_timestamp, interval) => g.join(a, now),
                // Far older than the open group: a late straggler is a group of its own.
                Some(g) if a.alert_timestamp < g.first_at => self.closed.push(Group::open(a, now)),
                Some(g) => {
                    let old = std::mem::replace(g, Group::open(a, now));
                    self.closed.push(old);
                }
                None => {
                    if self.open.len() >= MAX_OPEN_GROUPS {
                        self.close_quietest();
                    }
                    self.open.insert(k, Group::open(a, now));
                }
            }
        }
    }

    /// Close the open group touched longest ago (room for a new one).
    fn close_quietest(&mut self) {
        let quietest = self
            .open
            .iter()
            .min_by_key(|(_, g)| g.touched)
            .map(|(k, _)| k.clone());
        if let Some(g) = quietest.and_then(|k| self.open.remove(&k)) {
            tracing::warn!(rule = %g.rule, open = MAX_OPEN_GROUPS, "too many open alert groups; closing the quietest early");
            self.closed.push(g);
        }
    }

    /// Pages due at `now`. Groups nothing joined for the group interval close; a closed group
    /// that never paged (and is not muted) pages on its way out. Returns whether the state
    /// changed (the detector records it).
    pub fn due(&mut self, now: Micros, mute: &dyn Fn(&Group) -> Mute) -> (Vec<Notification>, bool) {
        let p = self.params;
        let mut pages = Vec::new();
        let mut changed = !self.closed.is_empty();
        let stale: Vec<(String, String)> = self
            .open
            .iter()
            .filter(|(_, g)| now.saturating_sub(g.touched) > p.group_interval)
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            if let Some(g) = self.open.remove(&k) {
                self.closed.push(g);
                changed = true;
            }
        }
        for mut g in std::mem::take(&mut self.closed) {
            // Only alerts nobody accounted for: a silence swallowed its alerts for good.
            if g.paged_at.is_none() && g.count > g.paged_count && mute(&g) == Mute::None {
                pages.push(page(&mut g, now));
            }
        }
        for g in self.open.values_mut() {
            if g.count <= g.paged_count {
                continue;
            }
            match mute(g) {
                Mute::Silenced | Mute::Acknowledged => {
                    g.paged_count = g.count;
                    changed = true;
                }
                Mute::None => {
                    let due = match g.paged_at {
                        None => now >= g.opened.saturating_add(p.group_wait),
                        Some(at) => now >= at.saturating_add(p.repeat_interval),
                    };
                    if due {
                        pages.push(page(g, now));
                        changed = true;
                    }
                }
            }
        }
        (pages, changed)
    }
}

fn page(g: &mut Group, now: Micros) -> Notification {
    let n = Notification {
        new_alerts: g.count - g.paged_count,
        repeat: g.paged_at.is_some(),
        group: g.clone(),
    };
    g.paged_count = g.count;
    g.paged_at = Some(now);
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::rules::fatal_error;

    const S: Micros = 1_000_000;
    const P: GroupParams = GroupParams {
        group_wait: 10 * S,
        group_interval: 300 * S,
        repeat_interval: 3600 * S,
    };

    fn fatal(service: &str, offset: i64, at: Micros) -> Alert {
        fatal_error::alert("errors", 0, offset, service, "disk full", at)
    }

    fn none(_: &Group) -> Mute {
        Mute::None
    }

    #[test]
    fn distinct_keys_past_the_cap_close_the_quietest_groups() {
        let mut g = Grouper::new(GroupParams::default(), GroupState::default());
        let alerts: Vec<Alert> = (0..(MAX_OPEN_GROUPS as i64 + 50))
            .map(|i| {
                crate::alerts::rules::fatal_error::alert(
                    "errors",
                    0,
                    i,
                    &format!("svc{i}"),
                    "down",
                    i,
                )
            })
            .collect();
        for (i, a) in alerts.iter().enumerate() {
            g.add(std::slice::from_ref(a), i as Micros);
        }
        assert_eq!(g.open_groups().count(), MAX_OPEN_GROUPS);
        assert!(
            g.open_groups().all(|x| x.key != "svc0"),
            "the quietest went first"
        );
        let (pages, changed) = g.due(1_000, &|_| Mute::None);
        assert!(changed);
        assert_eq!(pages.len(), 50, "closed early, they page on their way out");
        assert!(g.state().open.len() <= MAX_OPEN_GROUPS);
    }

    #[test]
    fn a_burst_pages_once_after_the_wait_with_its_count() {
        let mut g = Grouper::new(P, GroupState::default());
        let burst: Vec<Alert> = (0..57).map(|i| fatal("payment", i, i * S / 10)).collect();
        g.add(&burst[..20], 0);
        assert!(g.due(5 * S, &none).0.is_empty(), "still inside the wait");
        g.add(&burst[20..], 6 * S);
        let (pages, changed) = g.due(10 * S, &none);
        assert!(changed);
        assert_eq!(pages.len(), 1);
        let n = &pages[0];
        assert_eq!((n.group.count, n.new_alerts, n.repeat), (57, 57, false));
        assert_eq!(n.group.group_id, burst[0].alert_id);
        assert_eq!((n.group.first_at, n.group.last_at), (0, 56 * S / 10));
        assert_eq!(n.group.sources.len(), MAX_SOURCES);
        assert_eq!(n.group.sources.last().unwrap().offset, Some(56));
        assert!(g.due(11 * S, &none).0.is_empty(), "paged once");
    }

    #[test]
    fn each_rule_and_key_is_its_own_group() {
        let mut g = Grouper::new(P, GroupState::default());
        g.add(&[fatal("payment", 1, 0), fatal("search", 2, 0)], 0);
        g.add(&[fatal("payment", 3, S)], 0);
        let (pages, _) = g.due(10 * S, &none);
        let counts: Vec<(String, u64)> = pages
            .iter()
            .map(|n| (n.group.key.clone(), n.group.count))
            .collect();
        assert_eq!(counts, [("payment".into(), 2), ("search".into(), 1)]);
    }

    #[test]
    fn repeats_wait_for_the_repeat_interval_and_new_alerts() {
        let mut g = Grouper::new(P, GroupState::default());
        g.add(&[fatal("payment", 1, 0)], 0);
        assert_eq!(g.due(10 * S, &none).0.len(), 1);
        // New alerts keep the group open but page only after the repeat interval.
        for i in 0..59 {
            g.add(
                &[fatal("payment", 2 + i, (60 + i * 60) * S)],
                (60 + i * 60) * S,
            );
            assert!(g.due((61 + i * 60) * S, &none).0.is_empty());
        }
        g.add(&[fatal("payment", 99, 3600 * S)], 3600 * S);
        let (pages, _) = g.due(3610 * S, &none);
        assert_eq!(pages.len(), 1);
        assert_eq!((pages[0].new_alerts, pages[0].repeat), (60, true));
        assert_eq!(pages[0].group.count, 61);
        // Without new alerts there is nothing to repeat.
        assert!(g.due(7300 * S, &none).0.is_empty());
    }

    #[test]
    fn a_gap_longer_than_the_interval_opens_a_new_group_that_pages_again() {
        let mut g = Grouper::new(P, GroupState::default());
        g.add(&[fatal("payment", 1, 0)], 0);
        assert_eq!(g.due(10 * S, &none).0.len(), 1);
        g.add(&[fatal("payment", 2, 400 * S)], 20 * S);
        let (pages, _) = g.due(30 * S, &none);
        assert_eq!(pages.len(), 1);
        assert!(!pages[0].repeat);
        assert_eq!(pages[0].group.first_at, 400 * S);
        assert_ne!(pages[0].group.group_id, fatal("payment", 1, 0).alert_id);
    }

    #[test]
    fn quiet_groups_close_and_a_short_one_still_pages() {
        let mut g = Grouper::new(
            GroupParams {
                group_wait: 10 * S,
                group_interval: 5 * S,
                repeat_interval: 60 * S,
            },
            GroupState::default(),
        );
        g.add(&[fatal("payment", 1, 0)], 0);
        let (pages, changed) = g.due(20 * S, &none);
        assert!(changed);
        assert_eq!(
            pages.len(),
            1,
            "closed before its wait, paged on the way out"
        );
        assert_eq!(g.open_groups().count(), 0);
    }

    #[test]
    fn silenced_and_acknowledged_groups_swallow_their_alerts() {
        let mut g = Grouper::new(P, GroupState::default());
        g.add(&[fatal("payment", 1, 0), fatal("search", 2, 0)], 0);
        let silence_payment = |gr: &Group| {
            if gr.key == "payment" {
                Mute::Silenced
            } else {
                Mute::None
            }
        };
        let (pages, _) = g.due(10 * S, &silence_payment);
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].group.key, "search");
        // The silence ends: alerts from its time never page; a new one does, once.
        g.add(&[fatal("payment", 3, 20 * S)], 20 * S);
        let (pages, _) = g.due(20 * S, &none);
        assert_eq!(pages.len(), 1);
        assert_eq!((pages[0].group.count, pages[0].new_alerts), (2, 1));
        // Acknowledged: the repeat that was due is swallowed, and stays so.
        g.add(&[fatal("search", 4, 30 * S)], 3600 * S);
        let ack = |_: &Group| Mute::Acknowledged;
        assert!(g.due(3610 * S, &ack).0.is_empty());
        assert!(g.due(3620 * S, &none).0.is_empty(), "nothing new since");
    }

    #[test]
    fn a_group_silenced_to_its_end_never_pages_when_it_closes() {
        let mut g = Grouper::new(P, GroupState::default());
        g.add(&[fatal("payment", 1, 0)], 0);
        let (pages, _) = g.due(10 * S, &|_| Mute::Silenced);
        assert!(pages.is_empty());
        // The silence is over when the quiet group closes: still nothing to page.
        let (pages, changed) = g.due(400 * S, &none);
        assert!(pages.is_empty(), "{pages:?}");
        assert!(changed);
        assert_eq!(g.open_groups().count(), 0);
    }

    #[test]
    fn the_state_round_trips_so_a_restart_does_not_page_again() {
        let mut g = Grouper::new(P, GroupState::default());
        g.add(&[fatal("payment", 1, 0)], 0);
        assert_eq!(g.due(10 * S, &none).0.len(), 1);
        let json = serde_json::to_value(g.state()).unwrap();
        let mut again = Grouper::new(P, serde_json::from_value(json).unwrap());
        assert!(again.due(20 * S, &none).0.is_empty());
        again.add(&[fatal("payment", 2, S)], 30 * S);
        assert_eq!(again.open_groups().next().unwrap().count, 2);
    }
}

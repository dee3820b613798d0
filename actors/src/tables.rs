//! Every table shopwatch writes, in creation order, derived from the definitions: the raw
//! tables per topic kind, the dead letters, one table per registered KPI, the alerts and
//! the operators' actions on them, the partial windows per topic kind. Anything that lists
//! tables (the drill report, the benches, `shopwatch tables`, the checkers through
//! it) uses this.

use crate::events::EventKind;
use crate::kpis::{Kpi, REGISTRY};
use crate::schema::{dead_letters_spec, raw_table_spec, TableSpec, DEAD_LETTERS_TABLE};

#[derive(Clone, Copy, Debug)]
pub enum Table {
    /// One row per accepted event of a topic.
    Raw(EventKind),
    /// Every rejected record of every topic, with its reason and offset.
    DeadLetters,
    /// The closed windows of one KPI.
    Kpi(&'static dyn Kpi),
    /// One row per alert.
    Alerts,
    /// One row per operator action on alerts (acknowledge, silence, undo): the audit.
    AlertActions,
    /// Per-pane partial windows other instances folded of a topic, for the rollup owner to
    /// merge.
    Partials(EventKind),
}

impl Table {
    pub fn name(&self) -> &'static str {
        match self {
            Table::Raw(kind) => kind.raw_table(),
            Table::DeadLetters => DEAD_LETTERS_TABLE,
            Table::Kpi(k) => k.table(),
            Table::Alerts => crate::alerts::TABLE,
            Table::AlertActions => crate::alerts::actions::TABLE,
            Table::Partials(kind) => crate::schema::partials::partials_table(*kind),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Table::Raw(_) => "raw",
            Table::DeadLetters => "dead_letters",
            Table::Kpi(_) => "kpi",
            Table::Alerts => "alerts",
            Table::AlertActions => "alert_actions",
            Table::Partials(_) => "partials",
        }
    }

    pub fn spec(&self) -> TableSpec {
        match self {
            Table::Raw(kind) => raw_table_spec(*kind),
            Table::DeadLetters => dead_letters_spec(),
            Table::Kpi(k) => k.spec(),
            Table::Alerts => crate::alerts::spec(),
            Table::AlertActions => crate::alerts::actions::spec(),
            Table::Partials(kind) => crate::schema::partials::partials_spec(*kind),
        }
    }
}

pub fn all() -> Vec<Table> {
    let mut out: Vec<Table> = EventKind::ALL.iter().map(|k| Table::Raw(*k)).collect();
    out.push(Table::DeadLetters);
    out.extend(REGISTRY.iter().map(|k| Table::Kpi(*k)));
    out.push(Table::Alerts);
    out.push(Table::AlertActions);
    out.extend(EventKind::ALL.iter().map(|k| Table::Partials(*k)));
    out
}

pub fn names() -> Vec<&'static str> {
    all().iter().map(Table::name).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_table_once_seed_tables_included() {
        let names = super::names();
        let unique: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        for seed in [
            "orders_processed",
            "clicks_processed",
            "errors_processed",
            "orders_revenue_per_minute",
            "active_users_per_window",
            "errors_per_minute",
            "alerts",
        ] {
            assert!(names.contains(&seed), "{seed}");
        }
    }
}

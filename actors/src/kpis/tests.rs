use super::*;
use std::collections::HashSet;

#[test]
fn every_view_names_its_own_columns_and_every_card_has_its_own_name() {
    let mut cards = std::collections::HashSet::new();
    for k in REGISTRY.iter() {
        let Some(v) = k.view() else { continue };
        v.check(k.name(), k.columns())
            .unwrap_or_else(|e| panic!("{e}"));
        for c in v.cards {
            assert!(cards.insert(c.id), "card {} declared twice", c.id);
        }
        let mut charts = std::collections::HashSet::new();
        for c in v.charts {
            assert!(charts.insert(c.id), "{}: chart {} twice", k.name(), c.id);
        }
    }
    assert!(cards.len() >= 5);
}

#[test]
fn a_pane_keeps_keys_up_to_its_budget() {
    let mut spent = 0;
    let admitted = (0..100)
        .filter(|_| admit_within(&mut spent, 52, 1_000))
        .count();
    assert_eq!(admitted, 10, "100 bytes a key, 1,000 bytes");
    assert!(spent <= 1_000);
    assert!(
        !admit_within(&mut 0, 2_000, 1_000),
        "one key larger than all"
    );
}

#[test]
fn the_registry_is_consistent() {
    let names: HashSet<_> = REGISTRY.iter().map(|k| k.name()).collect();
    let tables: HashSet<_> = REGISTRY.iter().map(|k| k.table()).collect();
    assert_eq!(names.len(), REGISTRY.len(), "KPI names are unique");
    assert_eq!(tables.len(), REGISTRY.len(), "KPI tables are unique");
    for kind in EventKind::ALL {
        let counting: Vec<_> = REGISTRY
            .iter()
            .filter(|k| k.counts_late().contains(&kind))
            .collect();
        assert_eq!(counting.len(), 1, "{kind:?}: late events counted once");
    }
    for k in REGISTRY {
        assert!(!k.inputs().is_empty(), "{}", k.name());
        let spec = k.spec();
        let fields = spec.schema.as_struct().fields().len();
        assert_eq!(fields, k.columns().len() + 3, "{}", k.name());
        assert!(k.counts_late().iter().all(|t| k.inputs().contains(t)));
    }
}

#[test]
fn seed_columns_first_and_batches_match_schemas() {
    let names = |table: &str| {
        by_table(table)
            .unwrap()
            .spec()
            .schema
            .as_struct()
            .fields()
            .iter()
            .map(|f| f.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names("orders_revenue_per_minute")[..4],
        [
            "window_start",
            "window_end",
            "orders_count",
            "total_revenue"
        ]
    );
    assert_eq!(
        names("active_users_per_window")[..3],
        ["window_start", "window_end", "active_users_approx"]
    );
    assert_eq!(
        names("errors_per_minute")[..5],
        [
            "window_start",
            "window_end",
            "service_name",
            "severity",
            "error_count"
        ]
    );
    let traffic = by_table("traffic_per_minute").unwrap();
    let rows = KpiRows {
        kpi: traffic,
        rows: vec![KpiRow {
            start: 0,
            end: 60,
            values: vec![
                Value::Long(1),
                Value::Long(0),
                Value::Long(0),
                Value::Long(0),
                Value::Long(0),
                Value::Double(0.0),
            ],
        }],
    };
    let arrow = std::sync::Arc::new(
        iceberg::arrow::schema_to_arrow_schema(&traffic.spec().schema).unwrap(),
    );
    let batch = crate::schema::Encode::encode(&rows, arrow, 5).unwrap();
    assert_eq!(batch.num_rows(), 1);
    assert_eq!(KpiRows::decode(traffic, &batch).unwrap(), rows.rows);
}

#[test]
fn dashboard_queries_quote_and_bound_by_time() {
    let now = 1_764_000_000_000_000;
    let q = by_name("orders_revenue")
        .unwrap()
        .dashboard_sql("\"s\".\"ns\".\"orders_revenue_per_minute\"", now)
        .unwrap();
    assert_eq!(
        q,
        "SELECT \"window_start\", \"window_end\", \"orders_count\", \"total_revenue\" FROM \
         \"s\".\"ns\".\"orders_revenue_per_minute\" WHERE \"window_start\" >= \
         CAST('2025-11-24 15:20:00.000' AS TIMESTAMP) AND \"window_end\" <= \
         CAST('2025-11-24 16:00:00.000' AS TIMESTAMP) AND EXTRACT(SECOND FROM \
         \"window_start\") = 0 ORDER BY \"window_start\""
    );
    assert!(by_name("errors").unwrap().dashboard_sql("t", now).is_none());
}

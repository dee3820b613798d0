//! The page's definitions, tested on the declared views of the registry.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
use arrow_schema::{Field, Schema};
use shopwatch_actors::kpis::by_name;

use super::*;

const M: i64 = 60_000;
const T0: i64 = 1_764_000_000_000; // a whole minute

fn row(start: i64, values: Vec<Cell>) -> Row {
    Row {
        start_ms: start,
        end_ms: start + M,
        values,
        provisional: false,
    }
}

/// `counts` orders per whole minute from T0, revenue 10.5 each.
fn orders(counts: &[i64]) -> Vec<Row> {
    counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            row(
                T0 + i as i64 * M,
                vec![Cell::Long(*c), Cell::Double(*c as f64 * 10.5)],
            )
        })
        .collect()
}

/// Traffic per minute: orders as counted, clicks, 1 warning, errors, no fatal.
fn traffic(orders: &[i64], clicks: i64, errors: &[i64]) -> Vec<Row> {
    orders
        .iter()
        .zip(errors)
        .enumerate()
        .map(|(i, (o, e))| {
            row(
                T0 + i as i64 * M,
                vec![
                    Cell::Long(*o),
                    Cell::Long(clicks),
                    Cell::Long(1),
                    Cell::Long(*e),
                    Cell::Long(0),
                    Cell::Null,
                ],
            )
        })
        .collect()
}

fn facts(parts: Vec<(&'static str, Vec<Row>)>) -> Facts {
    Facts(parts.into_iter().collect())
}

fn card(v: &Value, id: &str) -> (Option<f64>, Option<f64>, Option<f64>) {
    let c = &v["cards"][id];
    (
        c["value"].as_f64(),
        c["previous"].as_f64(),
        c["delta"].as_f64(),
    )
}

#[test]
fn cards_sum_the_last_five_whole_minutes_and_the_five_before() {
    // 12 minutes: 1..=12 orders per minute.
    let counts: Vec<i64> = (1..=12).collect();
    let f = facts(vec![
        ("orders_revenue", orders(&counts)),
        (
            "traffic",
            traffic(&counts, 90, &[0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0]),
        ),
    ]);
    let k = cards(&f, PERIOD_MS);
    assert_eq!(k["as_of_ms"], json!(T0 + 12 * M));
    // Current: minutes 8..=12 → 8+9+10+11+12 = 50; previous: 3..=7 → 25.
    assert_eq!(card(&k, "orders"), (Some(50.0), Some(25.0), Some(25.0)));
    assert_eq!(card(&k, "revenue").0, Some(525.0));
    assert_eq!(card(&k, "errors").0, Some(10.0));
    assert_eq!(card(&k, "errors").1, Some(0.0));
    assert_eq!(k["cards"]["errors"]["inverse"], json!(true));
    assert_eq!(k["cards"]["orders"]["inverse"], json!(false));
    // Error rate: 10 errors / (50 orders + 5 × 90 clicks).
    assert_eq!(card(&k, "error_rate").0, Some(10.0 / 500.0));
}

#[test]
fn sliding_windows_are_not_counted_twice() {
    // A half-minute-offset window must not add to any card or chart.
    let mut rows = orders(&[4, 4, 4, 4, 4]);
    rows.push(Row {
        start_ms: T0 + 30_000,
        end_ms: T0 + 90_000,
        values: vec![Cell::Long(4), Cell::Double(1.0)],
        provisional: false,
    });
    let f = facts(vec![("orders_revenue", rows)]);
    let k = cards(&f, PERIOD_MS);
    assert_eq!(card(&k, "orders").0, Some(20.0));
    assert_eq!(card(&k, "orders").1, None);
    assert_eq!(card(&k, "error_rate").0, None);
    let c = charts(&f, TREND_MS, M);
    assert_eq!(
        c["charts"]["orders_revenue.orders"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
}

#[test]
fn active_users_compare_with_the_window_five_minutes_earlier() {
    let users: Vec<Row> = (0..8)
        .map(|i| Row {
            start_ms: T0 + i * M - 5 * M,
            end_ms: T0 + i * M,
            values: vec![Cell::Long(100 + i)],
            provisional: false,
        })
        .collect();
    // The cards' period ends with the newest whole minute of the minute KPIs.
    let f = facts(vec![
        ("active_users", users),
        ("orders_revenue", orders(&[1; 7])),
    ]);
    let k = cards(&f, PERIOD_MS);
    assert_eq!(card(&k, "active_users").0, Some(107.0));
    assert_eq!(card(&k, "active_users").1, Some(102.0));
}

#[test]
fn an_empty_lake_has_no_values() {
    let k = cards(&Facts::default(), PERIOD_MS);
    assert_eq!(card(&k, "orders"), (None, None, None));
    assert_eq!(k["as_of_ms"], Value::Null);
    let c = charts(&Facts::default(), TREND_MS, M);
    assert_eq!(c["charts"]["orders_revenue.orders"], json!([]));
}

#[test]
fn charts_keep_thirty_minutes_and_rates_are_rates_of_sums() {
    let counts: Vec<i64> = (0..40).collect();
    let f = facts(vec![
        ("orders_revenue", orders(&counts)),
        ("traffic", traffic(&counts, 10, &[1; 40])),
    ]);
    let c = charts(&f, TREND_MS, M);
    let pts = c["charts"]["orders_revenue.orders"].as_array().unwrap();
    assert_eq!(pts.len(), 30);
    assert_eq!(pts[0], json!([T0 + 10 * M, 10.0]));
    assert_eq!(
        c["charts"]["orders_revenue.revenue"][0],
        json!([T0 + 10 * M, 105.0])
    );
    assert_eq!(c["charts"]["traffic.errors"][0], json!([T0 + 10 * M, 1.0]));
    // In 15-minute buckets the minutes are summed.
    let c = charts(&f, 24 * 60 * M, 15 * M);
    let conv = &c["charts"]["traffic.errors"];
    assert_eq!(conv[0], json!([T0, 15.0]));
    assert_eq!(c["provisional_from"], Value::Null);
}

#[test]
fn device_lines_split_by_device_and_the_funnel_reads_its_newest_minute() {
    let dev = |start: i64, d: &str, clicking: i64, converted: i64| {
        row(
            start,
            vec![
                Cell::Str(d.into()),
                Cell::Long(clicking * 2),
                Cell::Long(clicking),
                Cell::Long(converted),
                Cell::Long(converted * 3),
                Cell::Null,
            ],
        )
    };
    let f = facts(vec![
        (
            "device_conversion",
            vec![
                dev(T0, "mobile", 4, 1),
                dev(T0, "desktop", 2, 2),
                dev(T0 + M, "mobile", 5, 5),
            ],
        ),
        (
            "funnel",
            vec![
                row(
                    T0,
                    vec![Cell::Long(9), Cell::Long(5), Cell::Long(2), Cell::Long(1)],
                ),
                row(
                    T0 + M,
                    vec![Cell::Long(10), Cell::Long(4), Cell::Long(2), Cell::Long(1)],
                ),
            ],
        ),
    ]);
    let c = charts(&f, TREND_MS, M);
    let d = &c["charts"]["device_conversion.by_device"];
    assert_eq!(d["values"], json!(["desktop", "mobile"]));
    // Converted ÷ clicking users: never above 100 %.
    assert_eq!(d["points"][0], json!([T0, 1.0, 0.25]));
    assert_eq!(d["points"][1], json!([T0 + M, null, 1.0]));
    let funnel = &c["charts"]["funnel.steps"];
    assert_eq!(funnel["window_start"], json!(T0 + M));
    let steps: Vec<f64> = funnel["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["value"].as_f64().unwrap())
        .collect();
    assert_eq!(steps, vec![10.0, 4.0, 2.0, 1.0]);
}

#[test]
fn a_result_missing_a_kpi_column_is_an_error_naming_it() {
    let kpi = by_name("orders_revenue").unwrap();
    let ts = |v: Vec<i64>| Arc::new(TimestampMillisecondArray::from(v)) as ArrayRef;
    let batch = |cols: Vec<(&str, ArrayRef)>| {
        let fields: Vec<Field> = cols
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            cols.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap()
    };
    let good = batch(vec![
        ("window_start", ts(vec![T0])),
        ("window_end", ts(vec![T0 + M])),
        ("orders_count", Arc::new(Int64Array::from(vec![3]))),
        ("total_revenue", Arc::new(Float64Array::from(vec![4.5]))),
    ]);
    let rows = read_rows(kpi, &[good]).unwrap();
    assert_eq!(rows[0].values, vec![Cell::Long(3), Cell::Double(4.5)]);
    // The table says "order_count" now (a rename the view did not follow): no blank card.
    let renamed = batch(vec![
        ("window_start", ts(vec![T0])),
        ("window_end", ts(vec![T0 + M])),
        ("order_count", Arc::new(Int64Array::from(vec![3]))),
        ("total_revenue", Arc::new(Float64Array::from(vec![4.5]))),
    ]);
    let e = read_rows(kpi, &[renamed]).unwrap_err();
    assert!(e.contains("orders_count"), "{e}");
    let text = batch(vec![(
        "x",
        Arc::new(StringArray::from(vec!["a"])) as ArrayRef,
    )]);
    assert!(read_rows(kpi, &[text]).is_err());
}

#[test]
fn the_layout_lists_every_declared_card_and_chart_once() {
    let l = layout("EUR", "de-DE");
    assert_eq!(
        l["numbers"],
        serde_json::json!({"currency": "EUR", "locale": "de-DE"})
    );
    let ids: Vec<&str> = l["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["orders", "revenue", "active_users", "errors", "error_rate"]
    );
    let keys: Vec<&str> = l["charts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    let mut unique = keys.clone();
    unique.dedup();
    assert_eq!(keys, unique);
    assert!(keys.contains(&"funnel.steps"));
}

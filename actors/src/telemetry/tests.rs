use super::*;

#[test]
fn a_step_failing_every_round_counts_and_shows_until_it_succeeds() {
    let m = Metrics::new();
    assert!(m.maintenance.failing().is_empty());
    assert_eq!(m.maintenance_outcome("t", "hygiene", Err("boom".into())), 1);
    assert_eq!(m.maintenance_outcome("t", "hygiene", Err("boom".into())), 2);
    assert_eq!(m.maintenance_outcome("t", "orphan_sweep", Ok(())), 0);
    let failing = m.maintenance.failing();
    assert_eq!(failing.len(), 1);
    assert_eq!(
        (
            failing[0].step.as_str(),
            failing[0].consecutive,
            failing[0].failures
        ),
        ("hygiene", 2, 2)
    );
    assert_eq!(failing[0].last_error.as_deref(), Some("boom"));
    let counted = m
        .maintenance_failures
        .with_label_values(&["t", "hygiene"])
        .get();
    assert_eq!(counted, 2);
    assert_eq!(m.maintenance_outcome("t", "hygiene", Ok(())), 0);
    assert_eq!(
        m.maintenance.failing()[0].consecutive,
        0,
        "a success resets the run"
    );
    assert!(m.render().contains("shopwatch_maintenance_failures_total"));
}

//! Every metric the process registers, with its type, labels and help: the registry cannot
//! list its collectors, and a labelled metric with no values yet is absent from `gather()`,
//! so the reference (docs/reference/metrics.md) is made from this catalog instead.

use prometheus::Registry;

/// One metric as the reference (docs/reference/metrics.md) describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricDoc {
    pub name: String,
    pub help: String,
    /// counter, gauge, histogram, summary
    pub kind: &'static str,
    pub labels: Vec<String>,
}

/// Every metric ever registered through [`register`], by name.
static CATALOG: std::sync::Mutex<std::collections::BTreeMap<String, MetricDoc>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Register `c` in `registry` and in the catalog. A second registration of the same metric
/// (tests building two servers on one registry) keeps the first.
pub fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: &C) {
    use prometheus::proto::MetricType;
    if let Ok(mut catalog) = CATALOG.lock() {
        for (desc, family) in c.desc().iter().zip(c.collect()) {
            let kind = match family.get_field_type() {
                MetricType::COUNTER => "counter",
                MetricType::GAUGE => "gauge",
                MetricType::HISTOGRAM => "histogram",
                MetricType::SUMMARY => "summary",
                MetricType::UNTYPED => "untyped",
            };
            catalog.insert(
                desc.fq_name.clone(),
                MetricDoc {
                    name: desc.fq_name.clone(),
                    help: desc.help.clone(),
                    kind,
                    labels: desc.variable_labels.clone(),
                },
            );
        }
    }
    let _ = registry.register(Box::new(c.clone()));
}

/// The metrics registered so far in this process, by name.
pub fn catalog() -> Vec<MetricDoc> {
    CATALOG
        .lock()
        .map(|c| c.values().cloned().collect())
        .unwrap_or_default()
}

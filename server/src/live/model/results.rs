//! Query results as the page reads them: column accessors by name, and rows as JSON objects
//! (alerts, the latest rows, the rows panel). The KPIs' cards and charts are in `views`.

use arrow_array::{
    Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, TimestampMillisecondArray,
};
use serde_json::{json, Value};

/// Column accessors by name over several batches; a missing or mistyped column reads as empty.
pub(crate) struct Cols<'a>(pub(super) &'a [RecordBatch]);

impl Cols<'_> {
    pub(crate) fn rows(&self) -> usize {
        self.0.iter().map(RecordBatch::num_rows).sum()
    }
    fn each<A: Array + 'static, T>(
        &self,
        name: &str,
        get: impl Fn(&A, usize) -> T,
    ) -> Vec<Option<T>> {
        let mut out = Vec::with_capacity(self.rows());
        for b in self.0 {
            match b
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<A>())
            {
                Some(a) => out.extend((0..a.len()).map(|i| (!a.is_null(i)).then(|| get(a, i)))),
                None => out.extend((0..b.num_rows()).map(|_| None)),
            }
        }
        out
    }
    /// Milliseconds, from Flight's millisecond or the lake's microsecond timestamps.
    pub(crate) fn ts(&self, name: &str) -> Vec<Option<i64>> {
        let micros = self.0.iter().any(|b| {
            b.column_by_name(name)
                .is_some_and(|c| c.as_any().is::<TimestampMicrosecondArray>())
        });
        if micros {
            return self.each::<TimestampMicrosecondArray, _>(name, |a, i| a.value(i) / 1000);
        }
        self.each::<TimestampMillisecondArray, _>(name, |a, i| a.value(i))
    }
    /// 64-bit integers, or 32-bit ones widened (partitions, quantities).
    pub(crate) fn i64(&self, name: &str) -> Vec<Option<i64>> {
        let narrow = self.0.iter().any(|b| {
            b.column_by_name(name)
                .is_some_and(|c| c.as_any().is::<Int32Array>())
        });
        if narrow {
            return self.each::<Int32Array, _>(name, |a, i| i64::from(a.value(i)));
        }
        self.each::<Int64Array, _>(name, |a, i| a.value(i))
    }
    pub(crate) fn f64(&self, name: &str) -> Vec<Option<f64>> {
        self.each::<Float64Array, _>(name, |a, i| a.value(i))
    }
    pub(crate) fn str(&self, name: &str) -> Vec<Option<String>> {
        self.each::<StringArray, _>(name, |a, i| a.value(i).to_string())
    }
}

/// Rows of a result as JSON objects, timestamps as ms; only the named columns, in order.
pub fn rows(batches: &[RecordBatch], columns: &[(&str, Kind)]) -> Vec<Value> {
    let c = Cols(batches);
    let n = c.rows();
    let cols: Vec<(&str, Vec<Value>)> = columns
        .iter()
        .map(|(name, kind)| {
            let vals: Vec<Value> = match kind {
                Kind::Ts => c.ts(name).into_iter().map(|v| json!(v)).collect(),
                Kind::Float => c.f64(name).into_iter().map(|v| json!(v)).collect(),
                Kind::Int => c.i64(name).into_iter().map(|v| json!(v)).collect(),
                Kind::Text => c.str(name).into_iter().map(|v| json!(v)).collect(),
            };
            (*name, vals)
        })
        .collect();
    (0..n)
        .map(|i| {
            let mut obj = serde_json::Map::new();
            for (name, vals) in &cols {
                obj.insert(
                    name.to_string(),
                    vals.get(i).cloned().unwrap_or(Value::Null),
                );
            }
            Value::Object(obj)
        })
        .collect()
}

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Ts,
    Float,
    Int,
    Text,
}

pub const ALERT_COLUMNS: [(&str, Kind); 5] = [
    ("alert_id", Kind::Text),
    ("alert_type", Kind::Text),
    ("description", Kind::Text),
    ("alert_timestamp", Kind::Ts),
    ("metric_value", Kind::Float),
];
pub const ORDER_COLUMNS: [(&str, Kind); 5] = [
    ("order_id", Kind::Text),
    ("user_id", Kind::Text),
    ("order_total", Kind::Float),
    ("status", Kind::Text),
    ("order_ts", Kind::Ts),
];
pub const ERROR_COLUMNS: [(&str, Kind); 4] = [
    ("service_name", Kind::Text),
    ("severity", Kind::Text),
    ("error_message", Kind::Text),
    ("error_ts", Kind::Ts),
];

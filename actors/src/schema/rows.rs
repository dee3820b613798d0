//! A batch's rows, stored by column as they are decoded: the strings of a column share one
//! buffer (Arrow's layout), so a batch costs a few allocations instead of three per event, the
//! commit copies each column once, and the KPI folds read borrowed views of the same bytes.

use std::sync::Arc;

use arrow_array::builder::{
    Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::ArrowError;

use super::{DeadLetter, Source};
use crate::events::{Click, ErrorEvent, EventKind, Micros, Order};

/// Typed rows of one table, in Kafka order.
#[derive(Clone, Debug)]
pub enum Rows {
    Orders(OrderRows),
    Clicks(ClickRows),
    Errors(ErrorRows),
    DeadLetters(Vec<DeadLetter>),
    /// Partial windows of one topic kind's table (`schema::partials`): the offset is the
    /// start of the row's range.
    Partials(EventKind, Vec<super::partials::PartRow>),
}

impl Rows {
    pub fn empty_for(kind: EventKind) -> Rows {
        Rows::with_capacity(kind, 0)
    }

    /// Room for `n` rows: a batch of 50,000 is not grown by doubling.
    pub fn with_capacity(kind: EventKind, n: usize) -> Rows {
        match kind {
            EventKind::Orders => Rows::Orders(OrderRows::with_capacity(n)),
            EventKind::Clicks => Rows::Clicks(ClickRows::with_capacity(n)),
            EventKind::Errors => Rows::Errors(ErrorRows::with_capacity(n)),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Rows::Orders(v) => v.len(),
            Rows::Clicks(v) => v.len(),
            Rows::Errors(v) => v.len(),
            Rows::DeadLetters(v) => v.len(),
            Rows::Partials(_, v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Order rows by (partition, offset), the order Kafka delivered them in.
    pub fn sort_by_source(&mut self) {
        match self {
            Rows::Orders(v) => v.reorder(|s| s.sort_by_key(|(s, _)| (s.partition, s.offset))),
            Rows::Clicks(v) => v.reorder(|s| s.sort_by_key(|(s, _)| (s.partition, s.offset))),
            Rows::Errors(v) => v.reorder(|s| s.sort_by_key(|(s, _)| (s.partition, s.offset))),
            Rows::DeadLetters(v) => v.sort_by_key(|d| (d.source.partition, d.source.offset)),
            Rows::Partials(_, v) => v.sort_by_key(|r| (r.partition, r.offset)),
        }
    }

    /// Keep only rows for which `keep(partition, offset)` holds (replay filtering).
    pub fn retain(&mut self, keep: impl Fn(i32, i64) -> bool) {
        match self {
            Rows::Orders(v) => v.reorder(|s| s.retain(|(s, _)| keep(s.partition, s.offset))),
            Rows::Clicks(v) => v.reorder(|s| s.retain(|(s, _)| keep(s.partition, s.offset))),
            Rows::Errors(v) => v.reorder(|s| s.retain(|(s, _)| keep(s.partition, s.offset))),
            Rows::DeadLetters(v) => v.retain(|d| keep(d.source.partition, d.source.offset)),
            Rows::Partials(_, v) => v.retain(|r| keep(r.partition, r.offset)),
        }
    }

    /// Build an Arrow batch with exactly `arrow_schema` (the table's, with field ids).
    pub fn to_record_batch(
        &self,
        arrow_schema: arrow_schema::SchemaRef,
    ) -> Result<RecordBatch, ArrowError> {
        let columns = match self {
            Rows::Orders(v) => v.arrays()?,
            Rows::Clicks(v) => v.arrays()?,
            Rows::Errors(v) => v.arrays()?,
            Rows::DeadLetters(rows) => dead_letter_arrays(rows),
            Rows::Partials(_, rows) => return super::partials::encode(arrow_schema, rows),
        };
        RecordBatch::try_new(arrow_schema, columns)
    }
}

/// One string column: the values back to back and where each ends (Arrow's `Utf8` layout).
#[derive(Clone, Debug)]
struct StrCol {
    offsets: Vec<i32>,
    values: String,
}

impl StrCol {
    fn with_capacity(rows: usize, bytes_per_row: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        StrCol {
            offsets,
            values: String::with_capacity(rows * bytes_per_row),
        }
    }

    fn push(&mut self, s: &str) {
        self.values.push_str(s);
        // Past 2 GiB in one column the offset saturates; `array` then refuses the batch with an
        // error rather than writing wrong strings (the poll loop closes a batch at 64 MiB of
        // values, so this takes a `max_event_bytes` of gigabytes).
        self.offsets
            .push(i32::try_from(self.values.len()).unwrap_or(i32::MAX));
    }

    fn get(&self, i: usize) -> &str {
        // Offsets are only ever pushed at the end of a whole `&str`, so this finds the string;
        // only a saturated offset (see `push`) could miss, and that batch is refused anyway.
        let (start, end) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        self.values.get(start..end).unwrap_or_default()
    }

    fn array(&self) -> Result<ArrayRef, ArrowError> {
        if i32::try_from(self.values.len()).is_err() {
            return Err(ArrowError::ComputeError(format!(
                "a string column of one batch holds {} bytes, more than 2 GiB: lower pipeline.max_batch_rows",
                self.values.len()
            )));
        }
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.offsets.clone()));
        let values = Buffer::from(self.values.as_bytes());
        Ok(Arc::new(StringArray::try_new(offsets, values, None)?))
    }
}

/// Where each row came from: the columns appended to every raw table.
#[derive(Clone, Debug, Default)]
struct SourceCols {
    partition: Vec<i32>,
    offset: Vec<i64>,
    ingested_at: Vec<Micros>,
}

impl SourceCols {
    fn with_capacity(n: usize) -> Self {
        SourceCols {
            partition: Vec::with_capacity(n),
            offset: Vec::with_capacity(n),
            ingested_at: Vec::with_capacity(n),
        }
    }
    fn push(&mut self, s: Source) {
        self.partition.push(s.partition);
        self.offset.push(s.offset);
        self.ingested_at.push(s.ingested_at);
    }
    fn get(&self, i: usize) -> Source {
        Source {
            partition: self.partition[i],
            offset: self.offset[i],
            ingested_at: self.ingested_at[i],
        }
    }
    fn len(&self) -> usize {
        self.partition.len()
    }
    fn arrays(&self) -> [ArrayRef; 3] {
        [
            Arc::new(Int32Array::from(self.partition.clone())),
            Arc::new(Int64Array::from(self.offset.clone())),
            Arc::new(TimestampMicrosecondArray::from(self.ingested_at.clone())),
        ]
    }
}

fn enum_array(values: &[&'static str]) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values.iter().copied()))
}

/// The rows of one raw table: push views, read views, hand Arrow its columns.
macro_rules! raw_rows {
    ($name:ident, $event:ident, strings: [$($s:ident: $bytes:expr),*], plain: [$($p:ident: $pty:ty),*]) => {
        #[derive(Clone, Debug)]
        pub struct $name {
            source: SourceCols,
            $($s: StrCol,)*
            $($p: Vec<$pty>,)*
        }

        impl $name {
            pub fn with_capacity(n: usize) -> Self {
                $name {
                    source: SourceCols::with_capacity(n),
                    $($s: StrCol::with_capacity(n, $bytes),)*
                    $($p: Vec::with_capacity(n),)*
                }
            }
            pub fn len(&self) -> usize {
                self.source.len()
            }
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }
            pub fn push(&mut self, source: Source, e: &$event<'_>) {
                self.source.push(source);
                $(self.$s.push(&e.$s);)*
                $(self.$p.push(e.$p);)*
            }
            /// Row `i`, its strings borrowed from the columns.
            pub fn get(&self, i: usize) -> (Source, $event<'_>) {
                let e = $event {
                    $($s: self.$s.get(i).into(),)*
                    $($p: self.$p[i],)*
                };
                (self.source.get(i), e)
            }
            pub fn iter(&self) -> impl Iterator<Item = (Source, $event<'_>)> + '_ {
                (0..self.len()).map(|i| self.get(i))
            }
            /// Rebuild after `f` sorted or filtered the rows (replay and rebuild paths only).
            fn reorder(&mut self, f: impl FnOnce(&mut Vec<(Source, $event<'_>)>)) {
                let mut rows: Vec<_> = self.iter().collect();
                f(&mut rows);
                let mut out = $name::with_capacity(rows.len());
                out.extend(rows);
                *self = out;
            }
        }

        impl<'a> Extend<(Source, $event<'a>)> for $name {
            fn extend<I: IntoIterator<Item = (Source, $event<'a>)>>(&mut self, rows: I) {
                rows.into_iter().for_each(|(s, e)| self.push(s, &e));
            }
        }

        impl<'a> FromIterator<(Source, $event<'a>)> for $name {
            fn from_iter<I: IntoIterator<Item = (Source, $event<'a>)>>(rows: I) -> Self {
                let mut out = $name::with_capacity(0);
                out.extend(rows);
                out
            }
        }
    };
}

raw_rows!(OrderRows, Order,
    strings: [order_id: 24, user_id: 12, product_id: 12],
    plain: [quantity: i32, price: f64, status: &'static str, order_ts: Micros]);
raw_rows!(ClickRows, Click,
    strings: [click_id: 36, user_id: 12, url: 24],
    plain: [device_type: &'static str, click_ts: Micros]);
raw_rows!(ErrorRows, ErrorEvent,
    strings: [error_id: 36, service_name: 16, error_message: 48],
    plain: [severity: &'static str, error_ts: Micros]);

// Column order is the table's (schema/mod.rs): seed columns, then the source columns.
impl OrderRows {
    fn arrays(&self) -> Result<Vec<ArrayRef>, ArrowError> {
        let total: Float64Array = self
            .quantity
            .iter()
            .zip(&self.price)
            .map(|(q, p)| f64::from(*q) * p)
            .collect();
        let mut out: Vec<ArrayRef> = vec![
            self.order_id.array()?,
            self.user_id.array()?,
            self.product_id.array()?,
            Arc::new(Int32Array::from(self.quantity.clone())),
            Arc::new(Float64Array::from(self.price.clone())),
            Arc::new(total),
            enum_array(&self.status),
            Arc::new(TimestampMicrosecondArray::from(self.order_ts.clone())),
        ];
        out.extend(self.source.arrays());
        Ok(out)
    }
}

impl ClickRows {
    fn arrays(&self) -> Result<Vec<ArrayRef>, ArrowError> {
        let mut out: Vec<ArrayRef> = vec![
            self.click_id.array()?,
            self.user_id.array()?,
            self.url.array()?,
            enum_array(&self.device_type),
            Arc::new(TimestampMicrosecondArray::from(self.click_ts.clone())),
        ];
        out.extend(self.source.arrays());
        Ok(out)
    }
}

impl ErrorRows {
    fn arrays(&self) -> Result<Vec<ArrayRef>, ArrowError> {
        let mut out: Vec<ArrayRef> = vec![
            self.error_id.array()?,
            self.service_name.array()?,
            self.error_message.array()?,
            enum_array(&self.severity),
            Arc::new(TimestampMicrosecondArray::from(self.error_ts.clone())),
        ];
        out.extend(self.source.arrays());
        Ok(out)
    }
}

fn dead_letter_arrays(rows: &[DeadLetter]) -> Vec<ArrayRef> {
    let n = rows.len();
    let (mut topic, mut reason, mut detail, mut payload) = (
        StringBuilder::with_capacity(n, n * 16),
        StringBuilder::with_capacity(n, n * 16),
        StringBuilder::with_capacity(n, n * 64),
        StringBuilder::with_capacity(n, n * 256),
    );
    let mut partition = Int32Builder::with_capacity(n);
    let mut offset = Int64Builder::with_capacity(n);
    let mut bytes = Int64Builder::with_capacity(n);
    let mut received = TimestampMicrosecondBuilder::with_capacity(n);
    for d in rows {
        topic.append_value(&d.topic);
        partition.append_value(d.source.partition);
        offset.append_value(d.source.offset);
        reason.append_value(d.reason);
        detail.append_value(&d.detail);
        payload.append_value(&d.payload);
        bytes.append_value(d.payload_bytes);
        received.append_value(d.source.ingested_at);
    }
    vec![
        Arc::new(topic.finish()),
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        Arc::new(reason.finish()),
        Arc::new(detail.finish()),
        Arc::new(payload.finish()),
        Arc::new(bytes.finish()),
        Arc::new(received.finish()),
    ]
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;

    use super::*;
    use crate::events::{decode, Event};

    fn source(partition: i32, offset: i64) -> Source {
        Source {
            partition,
            offset,
            ingested_at: 5,
        }
    }

    fn click(id: &str, user: &str, url: &str) -> Click<'static> {
        Click {
            click_id: id.to_string().into(),
            user_id: user.to_string().into(),
            url: url.to_string().into(),
            device_type: "mobile",
            click_ts: 1_795_482_123_000_000,
        }
    }

    #[test]
    fn rows_read_back_what_was_pushed_in_every_form() {
        // Empty, multi-byte and escaped strings: the columns keep each one's bounds.
        let cases = [
            (source(0, 3), click("c1", "u1", "/a")),
            (source(2, 0), click("c2", "ü-ser ✓", "")),
            (source(1, 9), click("c3", "\"q\"\n", "/ä/ö")),
        ];
        let rows: ClickRows = cases.iter().cloned().collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows.iter().collect::<Vec<_>>(), cases.to_vec());

        let mut sorted = Rows::Clicks(rows.clone());
        sorted.sort_by_source();
        let Rows::Clicks(s) = &sorted else { panic!() };
        let order: Vec<_> = s
            .iter()
            .map(|(s, c)| (s.partition, c.click_id.to_string()))
            .collect();
        assert_eq!(
            order,
            [(0, "c1".into()), (1, "c3".into()), (2, "c2".into())]
        );

        sorted.retain(|p, _| p != 1);
        let Rows::Clicks(s) = &sorted else { panic!() };
        assert_eq!(
            s.iter().map(|(_, c)| c).collect::<Vec<_>>(),
            [cases[0].1.clone(), cases[1].1.clone()]
        );
    }

    #[test]
    fn the_arrow_batch_holds_the_decoded_event() {
        // Escaped in the payload: decoded (owned), then stored and read like any other string.
        let payload = br#"{"click_id":"c\u00e9","user_id":"u\"1","url":"/p?x=1","device_type":"tablet","click_time":"2026-11-24T01:02:03"}"#;
        let Ok(Event::Click(c)) = decode(
            EventKind::Clicks,
            Some(payload),
            &crate::events::Limits::default(),
            1_795_482_123_000_000,
        ) else {
            panic!("valid click")
        };
        let mut rows = Rows::with_capacity(EventKind::Clicks, 1);
        let Rows::Clicks(v) = &mut rows else { panic!() };
        v.push(source(4, 77), &c);
        let spec = super::super::raw_table_spec(EventKind::Clicks);
        let arrow = Arc::new(iceberg::arrow::schema_to_arrow_schema(&spec.schema).unwrap());
        let batch = rows.to_record_batch(arrow).unwrap();
        let text = |i: usize| batch.column(i).as_string::<i32>().value(0).to_string();
        assert_eq!(
            [text(0), text(1), text(2), text(3)],
            ["cé", "u\"1", "/p?x=1", "tablet"].map(String::from)
        );
        let ints = batch
            .column(5)
            .as_primitive::<arrow_array::types::Int32Type>();
        let offsets = batch
            .column(6)
            .as_primitive::<arrow_array::types::Int64Type>();
        assert_eq!((ints.value(0), offsets.value(0)), (4, 77));
    }
}

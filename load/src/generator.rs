//! Seeded generator of the seed's payloads (and of malformed records on request).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde_json::json;

/// Which topic a generated record goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Orders,
    Clicks,
    Errors,
}

/// Kinds of malformed records the generator can emit (each must land in `dead_letters`).
pub const MALFORMED_KINDS: [&str; 8] = [
    "not_json",
    "truncated",
    "wrong_type",
    "missing_field",
    "negative_quantity",
    "bad_timestamp",
    "unknown_enum",
    "empty_value",
];

#[derive(Clone, Debug)]
pub struct Generated {
    pub stream: Stream,
    /// The event's id (order_id / click_id / error_id), unique per run and seed.
    pub id: String,
    pub payload: Vec<u8>,
    /// `Some(kind)` for deliberately malformed records.
    pub malformed: Option<&'static str>,
}

/// Synthetic event time: event i happens at `start_us + i * step_us` (UTC microseconds).
/// Benchmarks use it to pre-fill a broker with a stream whose windows all close.
#[derive(Clone, Copy, Debug)]
pub struct EventClock {
    pub start_us: i64,
    pub step_us: i64,
}

pub struct Generator {
    rng: StdRng,
    clock: Option<EventClock>,
    emitted: i64,
    users: Zipf<f64>,
    products: Zipf<f64>,
    malformed_fraction: f64,
}

const SERVICES: [&str; 6] = [
    "checkout",
    "payment",
    "inventory",
    "auth",
    "search",
    "shipping",
];
const MESSAGES: [&str; 5] = [
    "timeout calling upstream",
    "connection refused",
    "null pointer",
    "out of memory",
    "invalid state",
];
const STATUSES: [&str; 5] = ["CREATED", "PROCESSING", "SHIPPED", "DELIVERED", "CANCELLED"];
const DEVICES: [&str; 3] = ["desktop", "mobile", "tablet"];
const SEVERITIES: [&str; 3] = ["WARN", "ERROR", "FATAL"];
/// The seed's pages (its producers' `url`s), home most often, the cart least: a funnel.
const URLS: [&str; 8] = [
    "/page/home",
    "/page/home",
    "/page/home",
    "/page/product",
    "/page/product",
    "/page/product",
    "/page/cart",
    "/page/profile",
];

impl Generator {
    pub fn new(seed: u64, malformed_fraction: f64) -> Self {
        Generator {
            rng: StdRng::seed_from_u64(seed),
            clock: None,
            emitted: 0,
            // Zipf over 10k users / 1k products: a few hot keys, a long tail (exponent 1.1).
            users: Zipf::new(10_000.0, 1.1).expect("static Zipf parameters"),
            products: Zipf::new(1_000.0, 1.1).expect("static Zipf parameters"),
            malformed_fraction: malformed_fraction.clamp(0.0, 1.0),
        }
    }

    /// Event times from `clock` instead of the wall clock.
    pub fn with_clock(mut self, clock: EventClock) -> Self {
        self.clock = Some(clock);
        self
    }

    fn uuid(&mut self) -> String {
        uuid::Builder::from_random_bytes(self.rng.random())
            .into_uuid()
            .to_string()
    }

    /// Seed mix: 60 % clicks, 30 % orders, 10 % errors.
    pub fn next(&mut self) -> Generated {
        let roll: f64 = self.rng.random();
        let stream = if roll < 0.6 {
            Stream::Clicks
        } else if roll < 0.9 {
            Stream::Orders
        } else {
            Stream::Errors
        };
        let at = match self.clock {
            Some(c) => {
                chrono::DateTime::from_timestamp_micros(c.start_us + self.emitted * c.step_us)
                    .unwrap_or_else(chrono::Utc::now)
            }
            None => chrono::Utc::now(),
        };
        self.emitted += 1;
        let now = at.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
        let id = self.uuid();
        let user = format!("user_{}", self.users.sample(&mut self.rng) as u64);
        let mut value = match stream {
            Stream::Orders => json!({
                "order_id": id,
                "user_id": user,
                "product_id": format!("product_{}", self.products.sample(&mut self.rng) as u64),
                "quantity": self.rng.random_range(1..=5),
                "price": (self.rng.random_range(5.0..500.0f64) * 100.0).round() / 100.0,
                "order_time": now,
                "status": (STATUSES[self.rng.random_range(0..5)]),
            }),
            Stream::Clicks => json!({
                "click_id": id,
                "user_id": user,
                "url": URLS[self.rng.random_range(0..URLS.len())],
                "device_type": (DEVICES[self.rng.random_range(0..3)]),
                "click_time": now,
            }),
            Stream::Errors => json!({
                "error_id": id,
                "service_name": SERVICES[self.rng.random_range(0..SERVICES.len())],
                "error_message": MESSAGES[self.rng.random_range(0..MESSAGES.len())],
                "severity": (SEVERITIES[self.weighted_severity()]),
                "error_time": now,
            }),
        };
        if self.rng.random::<f64>() >= self.malformed_fraction {
            return Generated {
                stream,
                id,
                payload: value.to_string().into_bytes(),
                malformed: None,
            };
        }
        let kind = MALFORMED_KINDS[self.rng.random_range(0..MALFORMED_KINDS.len())];
        let (time_field, id_field) = match stream {
            Stream::Orders => ("order_time", "order_id"),
            Stream::Clicks => ("click_time", "click_id"),
            Stream::Errors => ("error_time", "error_id"),
        };
        let payload = match kind {
            "not_json" => format!("not json {id}").into_bytes(),
            "truncated" => {
                let full = value.to_string();
                full.as_bytes()[..full.len() / 2].to_vec()
            }
            "wrong_type" => {
                value[time_field] = json!(12345);
                value.to_string().into_bytes()
            }
            "missing_field" => {
                value.as_object_mut().map(|o| o.remove(time_field));
                value.to_string().into_bytes()
            }
            "negative_quantity" if stream == Stream::Orders => {
                value["quantity"] = json!(-3);
                value.to_string().into_bytes()
            }
            "bad_timestamp" | "negative_quantity" => {
                value[time_field] = json!("not-a-time");
                value.to_string().into_bytes()
            }
            "unknown_enum" => {
                let field = match stream {
                    Stream::Orders => "status",
                    Stream::Clicks => "device_type",
                    Stream::Errors => "severity",
                };
                value[field] = json!("BOGUS");
                value.to_string().into_bytes()
            }
            _ => Vec::new(),
        };
        let _ = id_field;
        Generated {
            stream,
            id,
            payload,
            malformed: Some(kind),
        }
    }

    fn weighted_severity(&mut self) -> usize {
        let r: f64 = self.rng.random();
        if r < 0.6 {
            0
        } else if r < 0.95 {
            1
        } else {
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Generator::new(7, 0.1);
        let mut b = Generator::new(7, 0.1);
        for _ in 0..100 {
            let (x, y) = (a.next(), b.next());
            assert_eq!((x.id, x.stream, x.malformed), (y.id, y.stream, y.malformed));
        }
    }

    #[test]
    fn valid_payloads_use_seed_fields_and_microsecond_timestamps() {
        let mut g = Generator::new(1, 0.0);
        for _ in 0..50 {
            let e = g.next();
            let v: serde_json::Value = serde_json::from_slice(&e.payload).unwrap();
            let ts = ["order_time", "click_time", "error_time"]
                .iter()
                .find_map(|f| v.get(*f))
                .unwrap()
                .as_str()
                .unwrap()
                .to_string();
            assert_eq!(ts.len(), "2026-11-24T01:02:03.456789".len(), "{ts}");
            assert!(!ts.ends_with('Z'));
        }
    }

    #[test]
    fn malformed_fraction_is_respected_and_kinds_vary() {
        let mut g = Generator::new(3, 0.05);
        let items: Vec<_> = (0..20_000).map(|_| g.next()).collect();
        let bad = items.iter().filter(|e| e.malformed.is_some()).count();
        assert!((800..1200).contains(&bad), "{bad}");
        let kinds: std::collections::HashSet<_> =
            items.iter().filter_map(|e| e.malformed).collect();
        assert!(kinds.len() >= 5);
    }
}

//! Portable SQL pieces: what Dremio and the embedded DataFusion server both read the same way
//! (quoted identifiers, literal timestamps computed by the client, no functions that differ).

use crate::events::Micros;

/// A quoted identifier (`"a""b"` for `a"b`).
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `"source"."namespace"."table"`, the seed's three-part names.
pub fn table(source: &str, namespace: &str, name: &str) -> String {
    format!("{}.{}.{}", ident(source), ident(namespace), ident(name))
}

pub fn string_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A timestamp literal both Dremio and DataFusion read the same way (UTC wall time).
pub fn timestamp_literal(micros: Micros) -> String {
    let t = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    format!("CAST('{}' AS TIMESTAMP)", t.format("%Y-%m-%d %H:%M:%S%.3f"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_escaped() {
        assert_eq!(string_literal("o'brien"), "'o''brien'");
        assert_eq!(
            string_literal("x'; DROP TABLE t; --"),
            "'x''; DROP TABLE t; --'"
        );
        assert_eq!(table("a\"b", "ns", "t"), "\"a\"\"b\".\"ns\".\"t\"");
        assert_eq!(
            timestamp_literal(1_764_000_000_123_456),
            "CAST('2025-11-24 16:00:00.123' AS TIMESTAMP)"
        );
    }
}

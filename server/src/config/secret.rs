//! A configuration secret (a password, a token, a URL with a key in it). It never prints:
//! `Debug` shows `<redacted>`, and serializing inside [`redacted`] writes `<redacted>` too, so
//! `shopwatch config check` redacts every secret by its type, with no list to keep.

use std::cell::Cell;

use serde::{Deserialize, Serialize, Serializer};

#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

thread_local! {
    // Serialization is synchronous: the flag holds for exactly one `redacted` call.
    static REDACT: Cell<bool> = const { Cell::new(false) };
}

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The value itself: only for handing it to whoever needs it (a client, a comparison).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if REDACT.with(Cell::get) && !self.0.is_empty() {
            s.serialize_str("<redacted>")
        } else {
            s.serialize_str(&self.0)
        }
    }
}

/// Run `f` with every [`Secret`] serializing as `<redacted>`.
pub fn redacted<T>(f: impl FnOnce() -> T) -> T {
    REDACT.with(|r| r.set(true));
    let out = f();
    REDACT.with(|r| r.set(false));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
        assert_eq!(
            redacted(|| serde_json::to_string(&s).unwrap()),
            "\"<redacted>\""
        );
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
        assert_eq!(
            redacted(|| serde_json::to_string(&Secret::default()).unwrap()),
            "\"\""
        );
    }
}

//! `[http]`: the page, its API, the websocket and `/metrics`; how the page writes numbers.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// The page, its API, the websocket and `/metrics`: `IP:PORT` (flag `--http`). Off loopback,
    /// logins (`auth.users` or `auth.tokens`) are required.
    pub listen: String,
    /// A second listener serving only `/metrics`, without a login, for a Prometheus inside a
    /// private network (the compose stack: `0.0.0.0:9464`, never published on the host).
    /// Empty: `/metrics` only on `listen`.
    pub metrics_listen: String,
    /// The currency the page shows amounts in (ISO 4217: `USD`, `EUR`, `GBP`, …).
    pub currency: String,
    /// The page's number and date locale (BCP 47: `de-DE`, `en-GB`); empty = each browser's own.
    pub locale: String,
    /// Websocket clients at once; more get 503.
    pub ws_max_clients: usize,
    /// Origins allowed on /ws besides the page's own (`scheme://host[:port]`, or `*`).
    pub ws_allowed_origins: Vec<String>,
    /// Messages a websocket client may have waiting before it is skipped to a snapshot.
    pub ws_queue_frames: usize,
    /// The server pings each websocket client this often.
    pub ws_ping_interval_s: u64,
    /// A client silent (no pong, no frame) this long is closed.
    pub ws_idle_timeout_s: u64,
    /// How often the open windows' running values (provisional, straight from the
    /// aggregators) reach the page; 0 turns them off and the cards show closed windows only.
    pub provisional_ms: u64,
    /// Host names the page and API answer to (others get 421: a DNS-rebinding page names its
    /// own). Empty: the loopback names on a loopback listener; any name otherwise (warned).
    pub allowed_hosts: Vec<String>,
    /// Connections at once; more wait in the listen queue.
    pub max_connections: usize,
    /// A request's headers must arrive within this (a half-sent request is closed).
    pub header_timeout_s: u64,
    /// A TLS handshake must finish within this.
    pub tls_handshake_timeout_s: u64,
    /// Alert actions (acknowledge, silence) one user may record per minute.
    pub actions_per_minute: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            metrics_listen: String::new(),
            currency: "USD".into(),
            locale: String::new(),
            ws_max_clients: 1_000,
            ws_allowed_origins: Vec::new(),
            ws_queue_frames: 32,
            ws_ping_interval_s: 20,
            ws_idle_timeout_s: 60,
            provisional_ms: 200,
            allowed_hosts: Vec::new(),
            max_connections: 4_096,
            header_timeout_s: 10,
            tls_handshake_timeout_s: 10,
            actions_per_minute: 30,
        }
    }
}

impl HttpConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::check(
                "http.listen",
                "must be an IP:PORT address such as 127.0.0.1:8080 (flag --http)",
            ));
        }
        if !self.metrics_listen.is_empty() && self.metrics_listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::check(
                "http.metrics_listen",
                "must be empty or an IP:PORT address such as 0.0.0.0:9464",
            ));
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ConfigError::check(
                "http.currency",
                format!("{:?} is not an ISO 4217 currency code; use three capital letters such as USD or EUR", self.currency),
            ));
        }
        if !self.locale.is_empty() && !is_language_tag(&self.locale) {
            return Err(ConfigError::check(
                "http.locale",
                format!("{:?} is not a BCP 47 locale; use a tag such as de-DE or en-GB, or leave it empty for the browser's", self.locale),
            ));
        }
        if self.ws_max_clients == 0 || self.ws_queue_frames < 2 {
            return Err(ConfigError::check(
                "http.ws_max_clients",
                "http.ws_max_clients must be at least 1 and http.ws_queue_frames at least 2",
            ));
        }
        if self.ws_ping_interval_s == 0 || self.ws_idle_timeout_s <= self.ws_ping_interval_s {
            return Err(ConfigError::check(
                "http.ws_idle_timeout_s",
                "needs http.ws_ping_interval_s >= 1 and http.ws_idle_timeout_s > http.ws_ping_interval_s",
            ));
        }
        for (key, v) in [
            ("http.max_connections", self.max_connections as u64),
            ("http.header_timeout_s", self.header_timeout_s),
            ("http.tls_handshake_timeout_s", self.tls_handshake_timeout_s),
            (
                "http.actions_per_minute",
                u64::from(self.actions_per_minute),
            ),
        ] {
            if v == 0 {
                return Err(ConfigError::check(key, "must be at least 1"));
            }
        }
        if let Some(h) = self
            .allowed_hosts
            .iter()
            .find(|h| h.is_empty() || h.contains('/') || h.contains(' '))
        {
            return Err(ConfigError::check(
                "http.allowed_hosts",
                format!("{h:?} is not a host name; list names such as \"shop.example\", without scheme or path"),
            ));
        }
        if self.provisional_ms != 0 && !(20..=60_000).contains(&self.provisional_ms) {
            return Err(ConfigError::check(
                "http.provisional_ms",
                "must be 0 (off) or between 20 and 60000 milliseconds",
            ));
        }
        Ok(())
    }
}

impl HttpConfig {
    /// The accept loop's limits.
    pub fn serve_limits(&self) -> crate::serve::ServeLimits {
        crate::serve::ServeLimits {
            max_connections: self.max_connections,
            header_timeout: std::time::Duration::from_secs(self.header_timeout_s),
            tls_handshake_timeout: std::time::Duration::from_secs(self.tls_handshake_timeout_s),
        }
    }
}

/// A well-formed BCP 47 tag as browsers accept it: a 2–8 letter language, then subtags of
/// 1–8 letters or digits, at most 35 characters (`de-DE`, `en-GB`, `zh-Hant-TW`). A malformed
/// one would make the page's number formatting throw.
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let lang_ok = parts
        .next()
        .is_some_and(|l| (2..=8).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphabetic()));
    tag.len() <= 35
        && lang_ok
        && parts.all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn locales_are_well_formed_tags() {
        for ok in ["de-DE", "en", "en-GB", "zh-Hant-TW", "es-419"] {
            assert!(super::is_language_tag(ok), "{ok}");
        }
        for bad in [
            "-",
            "de-",
            "-DE",
            "d",
            "de--DE",
            "de_DE",
            "de-DE-toolongsubtag",
            "1a-DE",
            "de DE",
        ] {
            assert!(!super::is_language_tag(bad), "{bad}");
        }
    }
}

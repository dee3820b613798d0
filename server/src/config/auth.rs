//! `[auth]` and `[tls]`: who may read the page, its API, its websocket and Flight SQL, who may
//! act on alerts, and the certificate they are served with. Off loopback, auth is required.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::secret::Secret;
use super::ConfigError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Reads everything, acknowledges and silences alerts.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

/// `[auth.users.<name>]`: a login.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// `viewer` (reads everything) or `operator` (also acknowledges and silences alerts).
    pub role: Role,
    /// An argon2 PHC string (`shopwatch auth hash-password` prints one); never the password.
    pub password_hash: Secret,
}

/// `[auth.tokens.<name>]`: a bearer token for scripts, stored as its SHA-256.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// `viewer` or `operator`, as for a user.
    pub role: Role,
    /// Hex SHA-256 of the token (`shopwatch auth new-token` prints both).
    pub sha256: Secret,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub users: BTreeMap<String, UserConfig>,
    pub tokens: BTreeMap<String, TokenConfig>,
    /// A login lasts this long.
    pub session_ttl_s: u64,
    /// A session with no request and no open page for this long ends (0: only the TTL).
    pub session_idle_s: u64,
    /// Failed logins allowed per minute, per user name and per client address.
    pub login_attempts_per_minute: u32,
    /// Password checks (argon2, ~60 ms and 19 MiB each) at once; more are answered 503 at
    /// once rather than queued.
    pub max_concurrent_logins: usize,
    /// Serve `/metrics` without auth (a scraper on a trusted network); off by default.
    pub public_metrics: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            users: BTreeMap::new(),
            tokens: BTreeMap::new(),
            session_ttl_s: 8 * 3600,
            session_idle_s: 30 * 60,
            login_attempts_per_minute: 5,
            max_concurrent_logins: 2,
            public_metrics: false,
        }
    }
}

impl AuthConfig {
    /// Any login or token configured: every request must then carry one.
    pub fn enabled(&self) -> bool {
        !self.users.is_empty() || !self.tokens.is_empty()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (name, u) in &self.users {
            let key = format!("auth.users.{name}.password_hash");
            if name.is_empty() || name.contains(':') {
                return Err(ConfigError::check(
                    format!("auth.users.{name}"),
                    "a user name must be non-empty and without ':'",
                ));
            }
            let phc = argon2::PasswordHash::new(u.password_hash.expose()).map_err(|_| {
                ConfigError::check(
                    &key,
                    "must be an argon2 PHC string ($argon2id$v=19$…); make one with `shopwatch auth hash-password`",
                )
            })?;
            if !phc.algorithm.as_str().starts_with("argon2") {
                return Err(ConfigError::check(
                    &key,
                    "must be an argon2 hash (argon2id)",
                ));
            }
        }
        for (name, t) in &self.tokens {
            let hex = t.sha256.expose();
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(ConfigError::check(
                    format!("auth.tokens.{name}.sha256"),
                    "must be the 64 hex digits of the token's SHA-256; `shopwatch auth new-token` prints a token and its hash",
                ));
            }
        }
        if self.max_concurrent_logins == 0 {
            return Err(ConfigError::check(
                "auth.max_concurrent_logins",
                "must be at least 1 (password checks at once)",
            ));
        }
        if self.session_ttl_s == 0 || self.login_attempts_per_minute == 0 {
            return Err(ConfigError::check(
                "auth.session_ttl_s",
                "auth.session_ttl_s and auth.login_attempts_per_minute must be at least 1",
            ));
        }
        Ok(())
    }
}

/// `[tls]`: serve HTTP and Flight SQL over TLS from these PEM files (both or neither).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain for HTTPS and Flight over TLS (with `key_file`; both or neither).
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file` (never logged).
    pub key_file: PathBuf,
    /// The name the certificate is for, as this process's own Flight client checks it when
    /// it reads its own Flight server (the dashboard's queries); default `localhost`.
    pub server_name: String,
    /// What that client trusts (PEM); default `cert_file` itself (a self-signed certificate).
    /// Set it to the issuing CA when the certificate is not self-signed.
    pub ca_file: PathBuf,
}

impl TlsConfig {
    pub fn enabled(&self) -> bool {
        !self.cert_file.as_os_str().is_empty()
    }

    /// The trust root of this process's own Flight client.
    pub fn trust_file(&self) -> &std::path::Path {
        if self.ca_file.as_os_str().is_empty() {
            &self.cert_file
        } else {
            &self.ca_file
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let (c, k) = (
            self.cert_file.as_os_str().is_empty(),
            self.key_file.as_os_str().is_empty(),
        );
        if c != k {
            return Err(ConfigError::check(
                if c { "tls.cert_file" } else { "tls.key_file" },
                "set both tls.cert_file and tls.key_file (PEM), or neither",
            ));
        }
        for (key, path) in [
            ("tls.cert_file", &self.cert_file),
            ("tls.key_file", &self.key_file),
        ] {
            if !c && !path.is_file() {
                return Err(ConfigError::check(
                    key,
                    format!("{} is not a readable file", path.display()),
                ));
            }
        }
        Ok(())
    }
}

/// A listener off loopback needs auth: the page, its API, its websocket and Flight SQL carry
/// the shop's business data.
fn needs_auth(key: &str, listen: &str, auth: &AuthConfig) -> Result<(), ConfigError> {
    let Ok(addr) = listen.parse::<SocketAddr>() else {
        return Ok(()); // the listener's own check names the key
    };
    if addr.ip().is_loopback() || auth.enabled() {
        return Ok(());
    }
    Err(ConfigError::check(
        "auth.users",
        format!(
            "{key} = {listen} is not a loopback address, so logins are required: add a user \
             ([auth.users.NAME] role = \"operator\"|\"viewer\", password_hash from `shopwatch auth \
             hash-password`, or SHOPWATCH_AUTH__USERS__NAME__ROLE / __PASSWORD_HASH), or listen on 127.0.0.1"
        ),
    ))
}

impl super::Config {
    pub(super) fn validate_access(&self) -> Result<(), ConfigError> {
        self.auth.validate()?;
        self.tls.validate()?;
        needs_auth("http.listen", &self.http.listen, &self.auth)?;
        if self.flight.enabled {
            needs_auth("flight.listen", &self.flight.listen, &self.auth)?;
        }
        Ok(())
    }
}

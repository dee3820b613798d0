//! Dremio-style auth: Basic credentials on the handshake (or any first call) answered with a
//! bearer token in the `authorization` response header; the token is sent afterwards and
//! expires. Comparisons are constant-time; nothing here logs a credential or a token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

/// Go's Flight client (ADBC) sends Basic credentials without `=` padding; others pad.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;
use tonic::Status;

pub struct Auth {
    username: String,
    password: String,
    ttl: Duration,
    tokens: Mutex<HashMap<String, Instant>>,
    /// The page's logins and tokens (`[auth]`), accepted besides the credential above.
    users: Option<std::sync::Arc<crate::auth::Auth>>,
}

/// The one answer to any authentication failure: no detail about what was wrong.
pub fn unauthenticated() -> Status {
    Status::unauthenticated("authentication failed")
}

fn ct_eq(a: &str, b: &str) -> bool {
    // Lengths leak through the comparison's shape only; the content never does.
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

impl Auth {
    pub fn new(username: String, password: String, ttl: Duration) -> Self {
        Auth {
            username,
            password,
            ttl,
            tokens: Mutex::new(HashMap::new()),
            users: None,
        }
    }

    pub fn with_users(mut self, users: Option<std::sync::Arc<crate::auth::Auth>>) -> Self {
        self.users = users;
        self
    }

    /// Check `Basic base64(user:pass)`; on success, a new bearer token.
    pub fn basic(&self, header: &str) -> Result<String, Status> {
        let encoded = header.strip_prefix("Basic ").ok_or_else(unauthenticated)?;
        let decoded = LENIENT
            .decode(encoded.trim())
            .map_err(|_| unauthenticated())?;
        let text = String::from_utf8(decoded).map_err(|_| unauthenticated())?;
        let (user, pass) = text.split_once(':').ok_or_else(unauthenticated)?;
        // Evaluate both comparisons so timing does not tell which one failed.
        let ok = ct_eq(user, &self.username) & ct_eq(pass, &self.password);
        // Otherwise one of the page's users (argon2, rate-limited like the page's login; a
        // handshake is once per token lifetime, so its cost is paid rarely).
        let ok = ok
            || self
                .users
                .as_ref()
                .is_some_and(|u| u.verify(user, pass, None).is_ok());
        if !ok {
            return Err(unauthenticated());
        }
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = Instant::now();
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.retain(|_, expires| *expires > now);
            tokens.insert(token.clone(), now + self.ttl);
        }
        Ok(token)
    }

    /// Authenticate a call: a valid unexpired bearer token, or Basic credentials (Dremio
    /// accepts them on any first call). Returns a token to send back when Basic was used.
    pub fn check(&self, metadata: &MetadataMap) -> Result<Option<String>, Status> {
        let header = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(unauthenticated)?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            let token = token.trim();
            let now = Instant::now();
            let valid = self.tokens.lock().ok().is_some_and(|tokens| {
                tokens
                    .iter()
                    .any(|(t, expires)| ct_eq(t, token) && *expires > now)
            });
            // A script's bearer token from `[auth.tokens]` works here as on the page.
            let script = || {
                self.users
                    .as_ref()
                    .is_some_and(|u| u.bearer(token).is_some())
            };
            return if valid || script() {
                Ok(None)
            } else {
                Err(unauthenticated())
            };
        }
        self.basic(header).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use base64::prelude::{BASE64_STANDARD, BASE64_STANDARD_NO_PAD};

    fn basic(user: &str, pass: &str) -> String {
        format!("Basic {}", BASE64_STANDARD.encode(format!("{user}:{pass}")))
    }

    #[test]
    fn unpadded_basic_credentials_are_accepted() {
        let auth = Auth::new("dremio".into(), "dremio123".into(), Duration::from_secs(60));
        let h = format!(
            "Basic {}",
            BASE64_STANDARD_NO_PAD.encode("dremio:dremio123")
        );
        assert!(auth.basic(&h).is_ok());
    }

    #[test]
    fn basic_gives_a_token_that_works_until_it_expires() {
        let auth = Auth::new(
            "dremio".into(),
            "dremio123".into(),
            Duration::from_millis(50),
        );
        let token = auth.basic(&basic("dremio", "dremio123")).unwrap();
        let mut md = MetadataMap::new();
        md.insert("authorization", format!("Bearer {token}").parse().unwrap());
        assert_eq!(auth.check(&md).unwrap(), None);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(
            auth.check(&md).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn wrong_credentials_say_nothing_more() {
        let auth = Auth::new("dremio".into(), "dremio123".into(), Duration::from_secs(60));
        for h in [
            basic("dremio", "nope"),
            basic("root", "dremio123"),
            "Basic !!".into(),
            "Digest x".into(),
        ] {
            let e = auth.basic(&h).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated);
            assert_eq!(e.message(), "authentication failed");
        }
        let mut md = MetadataMap::new();
        md.insert("authorization", "Bearer made-up".parse().unwrap());
        assert_eq!(
            auth.check(&md).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }
}

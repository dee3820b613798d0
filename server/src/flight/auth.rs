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

use super::limits::Principal;

/// Live bearer tokens a principal may hold at once (each handshake makes one); the oldest
/// goes first. And at most this many in all.
const TOKENS_PER_PRINCIPAL: usize = 16;
const TOKENS_IN_ALL: usize = 10_000;

struct Issued {
    expires: Instant,
    who: Principal,
    /// The name it was issued to (the cap is per name).
    name: String,
}

pub struct Auth {
    username: String,
    password: String,
    ttl: Duration,
    tokens: Mutex<HashMap<String, Issued>>,
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

    /// Check `Basic base64(user:pass)`; on success, a new bearer token and who it is for.
    pub async fn basic(&self, header: &str) -> Result<(String, Principal), Status> {
        let encoded = header.strip_prefix("Basic ").ok_or_else(unauthenticated)?;
        let decoded = LENIENT
            .decode(encoded.trim())
            .map_err(|_| unauthenticated())?;
        let text = String::from_utf8(decoded).map_err(|_| unauthenticated())?;
        let (user, pass) = text.split_once(':').ok_or_else(unauthenticated)?;
        // Evaluate both comparisons so timing does not tell which one failed.
        let service = ct_eq(user, &self.username) & ct_eq(pass, &self.password);
        let who = if service {
            Principal::Service
        } else {
            // One of the page's users: the same path as the page's login (limited before the
            // hash is computed, hashed off the async threads, a few at a time).
            let Some(users) = &self.users else {
                return Err(unauthenticated());
            };
            match users.verify_async(user, pass, None).await {
                Ok(_) => Principal::User,
                Err(crate::auth::LoginError::Busy) => {
                    return Err(Status::unavailable(
                        "too many logins at once; try again in a second",
                    ))
                }
                Err(_) => return Err(unauthenticated()),
            }
        };
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = Instant::now();
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.retain(|_, t| t.expires > now);
            bound_tokens(&mut tokens, user);
            tokens.insert(
                token.clone(),
                Issued {
                    expires: now + self.ttl,
                    who,
                    name: user.to_string(),
                },
            );
        }
        Ok((token, who))
    }

    /// Authenticate a call: a valid unexpired bearer token, or Basic credentials (Dremio
    /// accepts them on any first call). Returns who it is, and a token to send back when
    /// Basic was used.
    pub async fn check(
        &self,
        metadata: &MetadataMap,
    ) -> Result<(Principal, Option<String>), Status> {
        let header = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(unauthenticated)?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            let token = token.trim();
            let now = Instant::now();
            let issued = self.tokens.lock().ok().and_then(|tokens| {
                tokens
                    .iter()
                    .find(|(t, i)| ct_eq(t, token) && i.expires > now)
                    .map(|(_, i)| i.who)
            });
            if let Some(who) = issued {
                return Ok((who, None));
            }
            // A script's bearer token from `[auth.tokens]` works here as on the page.
            let script = self
                .users
                .as_ref()
                .is_some_and(|u| u.bearer(token).is_some());
            return if script {
                Ok((Principal::Token, None))
            } else {
                Err(unauthenticated())
            };
        }
        self.basic(header)
            .await
            .map(|(token, who)| (who, Some(token)))
    }

    /// Live tokens now.
    #[cfg(test)]
    pub fn live_tokens(&self) -> usize {
        self.tokens.lock().map(|t| t.len()).unwrap_or(0)
    }
}

/// Make room for one more token of `name`: its oldest go past the per-principal cap, and the
/// soonest to expire of anyone's past the overall cap.
fn bound_tokens(tokens: &mut HashMap<String, Issued>, name: &str) {
    let mut own: Vec<(Instant, String)> = tokens
        .iter()
        .filter(|(_, i)| i.name == name)
        .map(|(t, i)| (i.expires, t.clone()))
        .collect();
    if own.len() >= TOKENS_PER_PRINCIPAL {
        own.sort();
        for (_, t) in own.iter().take(own.len() + 1 - TOKENS_PER_PRINCIPAL) {
            tokens.remove(t);
        }
    }
    if tokens.len() >= TOKENS_IN_ALL {
        if let Some(t) = tokens
            .iter()
            .min_by_key(|(_, i)| i.expires)
            .map(|(t, _)| t.clone())
        {
            tokens.remove(&t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use base64::prelude::{BASE64_STANDARD, BASE64_STANDARD_NO_PAD};

    fn basic(user: &str, pass: &str) -> String {
        format!("Basic {}", BASE64_STANDARD.encode(format!("{user}:{pass}")))
    }

    #[tokio::test]
    async fn unpadded_basic_credentials_are_accepted() {
        let auth = Auth::new("dremio".into(), "dremio123".into(), Duration::from_secs(60));
        let h = format!(
            "Basic {}",
            BASE64_STANDARD_NO_PAD.encode("dremio:dremio123")
        );
        assert!(auth.basic(&h).await.is_ok());
    }

    #[tokio::test]
    async fn basic_gives_a_token_that_works_until_it_expires() {
        let auth = Auth::new(
            "dremio".into(),
            "dremio123".into(),
            Duration::from_millis(50),
        );
        let (token, who) = auth.basic(&basic("dremio", "dremio123")).await.unwrap();
        assert_eq!(who, Principal::Service);
        let mut md = MetadataMap::new();
        md.insert("authorization", format!("Bearer {token}").parse().unwrap());
        assert_eq!(auth.check(&md).await.unwrap(), (Principal::Service, None));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(
            auth.check(&md).await.unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }

    #[tokio::test]
    async fn a_handshake_flood_keeps_a_bounded_number_of_tokens() {
        let auth = Auth::new("dremio".into(), "dremio123".into(), Duration::from_secs(60));
        let mut first = None;
        for _ in 0..200 {
            let (t, _) = auth.basic(&basic("dremio", "dremio123")).await.unwrap();
            first.get_or_insert(t);
        }
        assert_eq!(auth.live_tokens(), TOKENS_PER_PRINCIPAL);
        // The oldest went first.
        let mut md = MetadataMap::new();
        let old = first.unwrap();
        md.insert("authorization", format!("Bearer {old}").parse().unwrap());
        assert!(auth.check(&md).await.is_err());
    }

    #[tokio::test]
    async fn wrong_credentials_say_nothing_more() {
        let auth = Auth::new("dremio".into(), "dremio123".into(), Duration::from_secs(60));
        for h in [
            basic("dremio", "nope"),
            basic("root", "dremio123"),
            "Basic !!".into(),
            "Digest x".into(),
        ] {
            let e = auth.basic(&h).await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated);
            assert_eq!(e.message(), "authentication failed");
        }
        let mut md = MetadataMap::new();
        md.insert("authorization", "Bearer made-up".parse().unwrap());
        assert_eq!(
            auth.check(&md).await.unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }
}

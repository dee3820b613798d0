//! Who is asking: logins (argon2-hashed passwords) that open sessions, bearer tokens for
//! scripts (stored as SHA-256), one limiter for failed logins, and the roles that decide what
//! each may do. The page, its API, its websocket (`http`) and Flight SQL read the same users.
//! Nothing here logs, prints or stores a password, a token or a session id.

pub mod http;
pub mod limiter;
pub mod tls;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::{AuthConfig, Role};
use limiter::Limiter;

/// Someone authenticated, and what they may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

struct Session {
    principal: Principal,
    csrf: String,
    expires: Instant,
}

#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong name or password (never which one).
    Refused,
    /// Too many failures for this name or address; try again after this long.
    Limited(Duration),
}

pub struct Auth {
    users: BTreeMap<String, (Role, String)>,
    tokens: HashMap<[u8; 32], Principal>,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    ttl: Duration,
    limiter: Mutex<Limiter>,
    /// The hash of a password nobody has: unknown names cost as much as known ones.
    decoy: String,
    pub public_metrics: bool,
    /// Cookies get `Secure` when the page is served over TLS.
    pub secure_cookies: bool,
}

fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Auth {
    /// `None` when no user and no token is configured (loopback only; config checks that).
    pub fn from_config(cfg: &AuthConfig, tls: bool) -> Option<Auth> {
        if !cfg.enabled() {
            return None;
        }
        let tokens = cfg
            .tokens
            .iter()
            .filter_map(|(name, t)| {
                let mut h = [0u8; 32];
                for (i, pair) in t.sha256.expose().as_bytes().chunks(2).enumerate() {
                    let hex = std::str::from_utf8(pair).ok()?;
                    *h.get_mut(i)? = u8::from_str_radix(hex, 16).ok()?;
                }
                Some((
                    h,
                    Principal {
                        name: name.clone(),
                        role: t.role,
                    },
                ))
            })
            .collect();
        Some(Auth {
            users: cfg
                .users
                .iter()
                .map(|(n, u)| (n.clone(), (u.role, u.password_hash.expose().to_string())))
                .collect(),
            tokens,
            sessions: Mutex::new(HashMap::new()),
            ttl: Duration::from_secs(cfg.session_ttl_s),
            limiter: Mutex::new(Limiter::new(
                cfg.login_attempts_per_minute,
                Duration::from_secs(60),
            )),
            decoy: hash_password(&random_hex(16)).unwrap_or_default(),
            public_metrics: cfg.public_metrics,
            secure_cookies: tls,
        })
    }

    /// Check a name and password (slow on purpose: run it off the async threads). Failures
    /// count against the name and, if known, the client's address.
    pub fn verify(
        &self,
        user: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Principal, LoginError> {
        let keys: Vec<String> = std::iter::once(format!("user:{user}"))
            .chain(client.map(|ip| format!("addr:{ip}")))
            .collect();
        let now = Instant::now();
        {
            let mut l = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
            for k in &keys {
                l.check(k, now).map_err(LoginError::Limited)?;
            }
        }
        let (role, hash) = match self.users.get(user) {
            Some((r, h)) => (Some(*r), h.as_str()),
            None => (None, self.decoy.as_str()),
        };
        let ok = PasswordHash::new(hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        match (ok, role) {
            (true, Some(role)) => Ok(Principal {
                name: user.to_string(),
                role,
            }),
            _ => {
                let mut l = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
                for k in &keys {
                    l.fail(k, Instant::now());
                }
                Err(LoginError::Refused)
            }
        }
    }

    /// Open a session: its id (for the cookie; only its hash is kept) and its CSRF token.
    pub fn open_session(&self, principal: Principal) -> (String, String) {
        let id = random_hex(32);
        let csrf = random_hex(16);
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        s.retain(|_, v| v.expires > now);
        s.insert(
            sha256(&id),
            Session {
                principal,
                csrf: csrf.clone(),
                expires: now + self.ttl,
            },
        );
        (id, csrf)
    }

    /// The session's principal and CSRF token, while it lasts.
    pub fn session(&self, id: &str) -> Option<(Principal, String)> {
        let s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.get(&sha256(id))
            .filter(|v| v.expires > Instant::now())
            .map(|v| (v.principal.clone(), v.csrf.clone()))
    }

    pub fn close_session(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&sha256(id));
    }

    pub fn bearer(&self, token: &str) -> Option<Principal> {
        self.tokens.get(&sha256(token)).cloned()
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// `shopwatch auth hash-password`: an argon2id PHC string for `auth.users.NAME.password_hash`.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}

/// `shopwatch auth new-token`: a random token and the SHA-256 to configure.
pub fn new_token() -> (String, String) {
    let token = format!("sw_{}", random_hex(24));
    let hash = sha256(&token).iter().map(|b| format!("{b:02x}")).collect();
    (token, hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, TokenConfig, UserConfig};

    pub fn auth(max: u32) -> Auth {
        let mut cfg = AuthConfig::default();
        cfg.login_attempts_per_minute = max;
        cfg.users.insert(
            "ops".into(),
            UserConfig {
                role: Role::Operator,
                password_hash: Secret::new(hash_password("right horse").unwrap()),
            },
        );
        let (_, sha) = new_token();
        cfg.tokens.insert(
            "ci".into(),
            TokenConfig {
                role: Role::Viewer,
                sha256: Secret::new(sha),
            },
        );
        Auth::from_config(&cfg, false).unwrap()
    }

    #[test]
    fn logins_sessions_and_tokens() {
        let a = auth(5);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let p = a.verify("ops", "right horse", Some(ip)).unwrap();
        assert_eq!(
            p,
            Principal {
                name: "ops".into(),
                role: Role::Operator
            }
        );
        assert_eq!(a.verify("ops", "wrong", Some(ip)), Err(LoginError::Refused));
        assert_eq!(
            a.verify("nobody", "right horse", Some(ip)),
            Err(LoginError::Refused)
        );
        let (id, csrf) = a.open_session(p.clone());
        assert_eq!(a.session(&id), Some((p, csrf)));
        assert!(a.session("made-up").is_none());
        a.close_session(&id);
        assert!(a.session(&id).is_none());
        // A token is known by its hash only.
        let mut cfg = AuthConfig::default();
        let (token, sha) = new_token();
        cfg.tokens.insert(
            "ci".into(),
            TokenConfig {
                role: Role::Viewer,
                sha256: Secret::new(sha),
            },
        );
        let b = Auth::from_config(&cfg, false).unwrap();
        assert_eq!(b.bearer(&token).map(|p| p.role), Some(Role::Viewer));
        assert!(b.bearer("sw_guess").is_none());
        assert!(Auth::from_config(&AuthConfig::default(), false).is_none());
    }

    #[test]
    fn repeated_wrong_passwords_are_limited_even_with_the_right_one_after() {
        let a = auth(3);
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(a.verify("ops", "guess", Some(ip)), Err(LoginError::Refused));
        }
        assert!(matches!(
            a.verify("ops", "right horse", Some(ip)),
            Err(LoginError::Limited(_))
        ));
        // The same address trying another name is limited too.
        assert!(matches!(
            a.verify("other", "x", Some(ip)),
            Err(LoginError::Limited(_))
        ));
    }
}

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
    /// The last request (or page ping) of the session: idle past `idle`, it ends.
    seen: Instant,
    /// Dropped when the session ends: its pages' websockets close.
    ended: tokio::sync::watch::Sender<()>,
}

/// What a websocket of a session watches: it closes when the session ends or expires.
pub struct SessionWatch {
    pub ended: tokio::sync::watch::Receiver<()>,
    pub expires: Instant,
}

#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong name or password (never which one).
    Refused,
    /// Too many failures for this name or address; try again after this long.
    Limited(Duration),
    /// Every password check slot is busy: try again in a moment (answered at once).
    Busy,
}

pub struct Auth {
    users: BTreeMap<String, (Role, String)>,
    tokens: HashMap<[u8; 32], Principal>,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    ttl: Duration,
    idle: Option<Duration>,
    limiter: Mutex<Limiter>,
    /// Password checks running now: a flood is refused, not queued behind argon2.
    hashing: std::sync::Arc<tokio::sync::Semaphore>,
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
            idle: (cfg.session_idle_s > 0).then(|| Duration::from_secs(cfg.session_idle_s)),
            limiter: Mutex::new(Limiter::new(
                cfg.login_attempts_per_minute,
                Duration::from_secs(60),
            )),
            hashing: std::sync::Arc::new(tokio::sync::Semaphore::new(
                cfg.max_concurrent_logins.max(1),
            )),
            decoy: hash_password(&random_hex(16)).unwrap_or_default(),
            public_metrics: cfg.public_metrics,
            secure_cookies: tls,
        })
    }

    /// [`Auth::verify`] for async callers: at most `auth.max_concurrent_logins` checks at
    /// once, each on a blocking thread; past that `Busy` at once.
    pub async fn verify_async(
        self: &std::sync::Arc<Self>,
        user: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Principal, LoginError> {
        let permit = self
            .hashing
            .clone()
            .try_acquire_owned()
            .map_err(|_| LoginError::Busy)?;
        let (auth, user, password) = (self.clone(), user.to_string(), password.to_string());
        let verdict = tokio::task::spawn_blocking(move || {
            let v = auth.verify(&user, &password, client);
            drop(permit);
            v
        })
        .await;
        verdict.unwrap_or(Err(LoginError::Refused))
    }

    /// Check a name and password (slow on purpose: run it off the async threads, see
    /// [`Auth::verify_async`]). The attempt counts against the name and, if known, the
    /// client's address before the hash is computed (parallel guesses cannot outrun the
    /// limit), and is taken back if it succeeds.
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
            for k in &keys {
                l.fail(k, now);
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
            (true, Some(role)) => {
                let mut l = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
                for k in &keys {
                    l.forgive(k);
                }
                Ok(Principal {
                    name: user.to_string(),
                    role,
                })
            }
            _ => Err(LoginError::Refused),
        }
    }

    /// Open a session: its id (for the cookie; only its hash is kept) and its CSRF token.
    pub fn open_session(&self, principal: Principal) -> (String, String) {
        let id = random_hex(32);
        let csrf = random_hex(16);
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        s.retain(|_, v| self.alive(v, now));
        s.insert(
            sha256(&id),
            Session {
                principal,
                csrf: csrf.clone(),
                expires: now + self.ttl,
                seen: now,
                ended: tokio::sync::watch::channel(()).0,
            },
        );
        (id, csrf)
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        s.expires > now
            && self
                .idle
                .is_none_or(|idle| now.duration_since(s.seen) < idle)
    }

    /// The session's principal and CSRF token, while it lasts; a use keeps it from idling
    /// out. An ended session is forgotten (its websockets close).
    pub fn session(&self, id: &str) -> Option<(Principal, String)> {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let key = sha256(id);
        let now = Instant::now();
        match s.get_mut(&key) {
            Some(v) if self.alive(v, now) => {
                v.seen = now;
                Some((v.principal.clone(), v.csrf.clone()))
            }
            Some(_) => {
                s.remove(&key);
                None
            }
            None => None,
        }
    }

    /// What a page's websocket of session `id` watches to close with it.
    pub fn watch_session(&self, id: &str) -> Option<SessionWatch> {
        let s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.get(&sha256(id)).map(|v| SessionWatch {
            ended: v.ended.subscribe(),
            expires: v.expires,
        })
    }

    /// End sessions that expired or idled out (their websockets close). Run now and then.
    pub fn sweep_sessions(&self) {
        let now = Instant::now();
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, v| self.alive(v, now));
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
    fn an_idle_or_closed_session_ends_and_its_watchers_see_it() {
        let mut cfg = AuthConfig::default();
        cfg.session_idle_s = 1;
        cfg.tokens.insert(
            "ci".into(),
            TokenConfig {
                role: Role::Viewer,
                sha256: Secret::new(new_token().1),
            },
        );
        let a = Auth::from_config(&cfg, false).unwrap();
        let p = Principal {
            name: "ops".into(),
            role: Role::Operator,
        };
        let (id, _) = a.open_session(p.clone());
        let w = a.watch_session(&id).unwrap();
        assert!(a.session(&id).is_some());
        a.close_session(&id);
        assert!(w.ended.has_changed().is_err(), "logout ends the watch");
        let (id, _) = a.open_session(p);
        let w = a.watch_session(&id).unwrap();
        std::thread::sleep(Duration::from_millis(1_100));
        a.sweep_sessions();
        assert!(a.session(&id).is_none(), "idle past auth.session_idle_s");
        assert!(w.ended.has_changed().is_err());
    }

    #[tokio::test]
    async fn logins_past_the_hashing_slots_are_busy_at_once() {
        let mut cfg = AuthConfig::default();
        cfg.max_concurrent_logins = 1;
        cfg.login_attempts_per_minute = 1_000;
        cfg.users.insert(
            "ops".into(),
            UserConfig {
                role: Role::Operator,
                password_hash: Secret::new(hash_password("right horse").unwrap()),
            },
        );
        let a = std::sync::Arc::new(Auth::from_config(&cfg, false).unwrap());
        let tries: Vec<_> = (0..8)
            .map(|i| {
                let a = a.clone();
                tokio::spawn(async move { a.verify_async(&format!("u{i}"), "x", None).await })
            })
            .collect();
        let mut busy = 0;
        for t in tries {
            if t.await.unwrap() == Err(LoginError::Busy) {
                busy += 1;
            }
        }
        assert!(busy >= 1, "8 at once with one slot: some were refused");
        assert!(a.verify_async("ops", "right horse", None).await.is_ok());
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

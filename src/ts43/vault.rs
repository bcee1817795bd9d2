//! The source session, kept to bridge a temporary token the ECS spent on first use.
//!
//! When a source phone acquires a temporary token with fast re-authentication (`IMSI` +
//! `token`), the hub keeps that session — the IMSI, the carrier token and the parameters
//! its token is bound to — so that later uses of the temporary token by the target phone
//! can be served with a fresh carrier temporary token (an AcquireTemporaryToken made on
//! the source's behalf, for the same targets) when the ECS treats tokens as single-use.
//!
//! The trade-off (stated in the README): the hub holds a subscriber's carrier credential.
//! It is kept **only in memory**, sealed with AES-256-GCM under a key drawn at random
//! when the process starts (so nothing written anywhere can open it, and a restart
//! forgets every session), in a map keyed by the temporary token's SHA-256, **never longer
//! than the temporary token lives**, and used for nothing but that bridging.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

/// What bridging needs of the source's session.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SourceSession {
    /// The subscriber's IMSI.
    pub imsi: String,
    /// The carrier's fast re-authentication token (rotated as the ECS answers).
    pub token: String,
    /// The parameters the token is bound to and the request repeats (`terminal_id`,
    /// `app`, `app_name`, vendor, model, versions…), in order.
    pub params: Vec<(String, String)>,
    /// The `operation_targets` the temporary token was issued for.
    pub targets: String,
}

impl fmt::Debug for SourceSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SourceSession(<sealed>)")
    }
}

struct Sealed {
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
    expires_at_ms: u64,
}

/// Sealed source sessions by temporary-token hash.
pub struct Vault {
    cipher: Aes256Gcm,
    entries: Mutex<HashMap<String, Sealed>>,
}

impl Default for Vault {
    fn default() -> Vault {
        Vault::new()
    }
}

impl Vault {
    /// An empty vault with a fresh random key.
    pub fn new() -> Vault {
        Vault {
            cipher: Aes256Gcm::new(&Aes256Gcm::generate_key(OsRng)),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Sealed>> {
        // Entries are inserted and removed whole: a poisoned map is still consistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `session` for the temporary token `hash` until `expires_at_ms`.
    pub fn keep(&self, hash: &str, session: &SourceSession, expires_at_ms: u64, now_ms: u64) {
        let Ok(plain) = serde_json::to_vec(session) else {
            return;
        };
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let Ok(ciphertext) = self.cipher.encrypt(&nonce, plain.as_slice()) else {
            return;
        };
        let mut entries = self.entries();
        entries.retain(|_, s| s.expires_at_ms > now_ms);
        entries.insert(
            hash.to_owned(),
            Sealed {
                nonce: nonce.to_vec(),
                ciphertext,
                expires_at_ms,
            },
        );
    }

    /// The session kept for `hash`, if it has not expired.
    pub fn open(&self, hash: &str, now_ms: u64) -> Option<SourceSession> {
        let mut entries = self.entries();
        let sealed = entries.get(hash)?;
        if sealed.expires_at_ms <= now_ms {
            entries.remove(hash);
            return None;
        }
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                sealed.ciphertext.as_slice(),
            )
            .ok()?;
        serde_json::from_slice(&plain).ok()
    }

    /// Forgets sessions past their expiry; returns how many are left.
    pub fn purge(&self, now_ms: u64) -> usize {
        let mut entries = self.entries();
        entries.retain(|_, s| s.expires_at_ms > now_ms);
        entries.len()
    }

    /// How many sessions are kept now.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> SourceSession {
        SourceSession {
            imsi: "001010000000001".into(),
            token: "carrier-token".into(),
            params: vec![("terminal_id".into(), "356938035643809".into())],
            targets: "ManageSubscription".into(),
        }
    }

    #[test]
    fn sessions_open_until_they_expire_and_never_show() {
        let vault = Vault::new();
        vault.keep("h1", &session(), 2_000, 1_000);
        assert_eq!(vault.open("h1", 1_500), Some(session()));
        assert_eq!(vault.open("h2", 1_500), None);
        assert_eq!(vault.open("h1", 2_000), None, "expired");
        assert!(vault.is_empty());
        assert_eq!(format!("{:?}", session()), "SourceSession(<sealed>)");
    }

    #[test]
    fn sealed_bytes_do_not_hold_the_token() {
        let vault = Vault::new();
        vault.keep("h1", &session(), 2_000, 1_000);
        let entries = vault.entries();
        let sealed = &entries["h1"].ciphertext;
        assert!(!sealed.windows(13).any(|w| w == b"carrier-token"));
    }
}

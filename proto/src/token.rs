//! Chunk tokens: the master's signed, short-lived permission to use one chunk, which a
//! chunkserver checks before it serves a read, a write or a stat (as HDFS's block tokens). A
//! certificate says who a peer is; a token says the master let it at this chunk, so a client
//! certificate alone opens no chunk, and what the master refuses (a path outside an export, a
//! write on a read-only mount) cannot be had by asking a chunkserver directly.
//!
//! A token names the chunk, the highest version it may be used with, what it allows (read,
//! write), when it expires, and the key epoch it is signed in; its MAC is HMAC-SHA256 over those
//! fields (ring). The key of an epoch is derived from the cluster's token secret (HMAC of the
//! epoch number), so keys rotate every [`KEY_EPOCH`] without the masters agreeing on anything
//! but the secret, which the leader created once through the replicated log. Chunkservers never
//! see the secret: the master hands them the keys of the previous, current and next epoch with
//! every registration and heartbeat reply, over the registry service that only chunkserver
//! certificates may call. A token lives at most one epoch, so a chunkserver always holds the
//! key of any token still valid.
//!
//! Clocks: a token's expiry is the master's wall clock; chunkservers compare it with theirs,
//! so the cluster's clocks must agree to well within the token lifetime (NTP does).

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::hmac;

use crate::pb;

/// A token allows reading the chunk.
pub const READ: u32 = 1;
/// A token allows writing (and truncating, and re-versioning) the chunk.
pub const WRITE: u32 = 2;

/// How long one signing key is used. Tokens live at most this long.
pub const KEY_EPOCH: Duration = Duration::from_secs(3600);

/// The default lifetime of a token: long enough that an open file rarely refreshes its chunk
/// map, short enough that a token that leaked is soon worthless.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);

/// Length of the cluster's token secret, in bytes.
pub const SECRET_LEN: usize = 32;

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A fresh random token secret, for the leader to put into the metadata.
pub fn new_secret() -> [u8; SECRET_LEN] {
    let mut secret = [0u8; SECRET_LEN];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
        .expect("the operating system's random source");
    secret
}

/// The epoch a wall-clock time falls in.
fn epoch_of(unix_ms: u64) -> u64 {
    unix_ms / KEY_EPOCH.as_millis() as u64
}

/// The bytes a token's MAC covers: a domain tag and every field, fixed width.
fn signed_bytes(token: &pb::ChunkToken) -> [u8; 52] {
    let mut out = [0u8; 52];
    out[..8].copy_from_slice(b"dfstok01");
    out[8..16].copy_from_slice(&token.chunk_id.to_be_bytes());
    out[16..24].copy_from_slice(&token.version.to_be_bytes());
    out[24..28].copy_from_slice(&token.access.to_be_bytes());
    out[28..36].copy_from_slice(&token.expires_unix_ms.to_be_bytes());
    out[36..44].copy_from_slice(&token.key_epoch.to_be_bytes());
    // Room for fields to come keeps the layout's length fixed.
    out
}

/// The master's side: derives the epoch keys from the cluster's secret and signs tokens.
pub struct TokenSigner {
    secret: hmac::Key,
    lifetime: Duration,
    /// The signing key of the epoch tokens were last issued in: every chunk map of an hour
    /// is signed with it, so it is derived once, not per token.
    current: Mutex<Option<(u64, hmac::Key)>>,
}

impl TokenSigner {
    /// A signer over the cluster's `secret`, handing out tokens that live `lifetime` (at most
    /// one key epoch).
    pub fn new(secret: &[u8], lifetime: Duration) -> TokenSigner {
        TokenSigner {
            secret: hmac::Key::new(hmac::HMAC_SHA256, secret),
            lifetime: lifetime.min(KEY_EPOCH),
            current: Mutex::new(None),
        }
    }

    /// The signing key of `epoch`.
    fn epoch_key(&self, epoch: u64) -> Vec<u8> {
        let mut label = b"dfs chunk token key ".to_vec();
        label.extend_from_slice(&epoch.to_be_bytes());
        hmac::sign(&self.secret, &label).as_ref().to_vec()
    }

    /// The keys a chunkserver needs at `now_ms`: the previous epoch's (tokens signed just
    /// before the turn), the current one's, and the next one's (a master whose clock runs
    /// ahead).
    pub fn keys(&self, now_ms: u64) -> Vec<pb::TokenKey> {
        let epoch = epoch_of(now_ms);
        [epoch.saturating_sub(1), epoch, epoch + 1]
            .into_iter()
            .map(|epoch| pb::TokenKey {
                epoch,
                secret: self.epoch_key(epoch),
            })
            .collect()
    }

    /// A token for `chunk_id` up to `version`, allowing `access` ([`READ`], [`WRITE`]), signed
    /// at `now_ms`.
    pub fn issue(&self, chunk_id: u64, version: u64, access: u32, now_ms: u64) -> pb::ChunkToken {
        let epoch = epoch_of(now_ms);
        let mut token = pb::ChunkToken {
            chunk_id,
            version,
            access,
            expires_unix_ms: now_ms.saturating_add(self.lifetime.as_millis() as u64),
            key_epoch: epoch,
            mac: Vec::new(),
        };
        let key = {
            let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
            match &*current {
                Some((cached, key)) if *cached == epoch => key.clone(),
                _ => {
                    let key = hmac::Key::new(hmac::HMAC_SHA256, &self.epoch_key(epoch));
                    *current = Some((epoch, key.clone()));
                    key
                }
            }
        };
        token.mac = hmac::sign(&key, &signed_bytes(&token)).as_ref().to_vec();
        token
    }
}

/// Why a chunkserver refused a token. Each is a `PERMISSION_DENIED` for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The request carries no token.
    #[error("no chunk token: ask the master for the chunk first")]
    Missing,
    /// This chunkserver has no keys yet: it has just started and not yet registered. Not the
    /// token's fault, so it is `UNAVAILABLE` (another replica, or a retry, will do).
    #[error("this chunkserver has not registered with the master yet")]
    NoKeys,
    /// No key of the token's epoch (a forged epoch, or a chunkserver not yet told the keys).
    #[error("chunk token signed with an unknown key (epoch {0})")]
    UnknownKey(u64),
    /// The MAC does not match the fields.
    #[error("chunk token signature does not match")]
    BadSignature,
    /// Past its expiry.
    #[error("chunk token expired")]
    Expired,
    /// For another chunk.
    #[error("chunk token is for chunk {token} and not for chunk {asked}")]
    WrongChunk { token: u64, asked: u64 },
    /// For an older version than the request names.
    #[error("chunk token allows version {token} and not version {asked}")]
    WrongVersion { token: u64, asked: u64 },
    /// Does not allow what is asked.
    #[error("chunk token does not allow {0}")]
    NotAllowed(&'static str),
}

impl From<TokenError> for crate::FsError {
    fn from(err: TokenError) -> crate::FsError {
        match err {
            TokenError::NoKeys => crate::FsError::Unavailable(err.to_string()),
            _ => crate::FsError::TokenRefused(err.to_string()),
        }
    }
}

impl From<TokenError> for tonic::Status {
    fn from(err: TokenError) -> tonic::Status {
        crate::FsError::from(err).into()
    }
}

/// The chunkserver's side: the epoch keys the master sent last, and the check of a token.
#[derive(Default)]
pub struct TokenVerifier {
    keys: RwLock<HashMap<u64, hmac::Key>>,
}

impl std::fmt::Debug for TokenVerifier {
    /// The epochs known, never the keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let mut epochs: Vec<u64> = keys.keys().copied().collect();
        epochs.sort_unstable();
        f.debug_struct("TokenVerifier")
            .field("epochs", &epochs)
            .finish()
    }
}

impl TokenVerifier {
    /// Replaces the known keys with `keys` (as a registration or heartbeat reply brings
    /// them; an empty list, from a master that sent none, keeps the ones known).
    pub fn update(&self, keys: &[pb::TokenKey]) {
        if keys.is_empty() {
            return;
        }
        let fresh = keys
            .iter()
            .map(|k| (k.epoch, hmac::Key::new(hmac::HMAC_SHA256, &k.secret)))
            .collect();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    /// Whether `token` lets its bearer do `access` on `chunk_id` at `version` (`None` when
    /// the request names no version) at `now_ms`.
    pub fn check(
        &self,
        token: Option<&pb::ChunkToken>,
        chunk_id: u64,
        version: Option<u64>,
        access: u32,
        now_ms: u64,
    ) -> Result<(), TokenError> {
        let token = token.ok_or(TokenError::Missing)?;
        {
            let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
            if keys.is_empty() {
                return Err(TokenError::NoKeys);
            }
            let key = keys
                .get(&token.key_epoch)
                .ok_or(TokenError::UnknownKey(token.key_epoch))?;
            hmac::verify(key, &signed_bytes(token), &token.mac)
                .map_err(|_| TokenError::BadSignature)?;
        }
        if now_ms > token.expires_unix_ms {
            return Err(TokenError::Expired);
        }
        if token.chunk_id != chunk_id {
            return Err(TokenError::WrongChunk {
                token: token.chunk_id,
                asked: chunk_id,
            });
        }
        if let Some(asked) = version.filter(|&v| v > token.version) {
            return Err(TokenError::WrongVersion {
                token: token.version,
                asked,
            });
        }
        if token.access & access != access {
            return Err(TokenError::NotAllowed(if access & WRITE != 0 {
                "writing"
            } else {
                "reading"
            }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn pair() -> (TokenSigner, TokenVerifier) {
        let signer = TokenSigner::new(&[7u8; SECRET_LEN], DEFAULT_LIFETIME);
        let verifier = TokenVerifier::default();
        verifier.update(&signer.keys(NOW));
        (signer, verifier)
    }

    #[test]
    fn a_token_opens_its_chunk_up_to_its_version_for_what_it_allows() {
        let (signer, verifier) = pair();
        let token = signer.issue(42, 5, READ | WRITE, NOW);
        let check =
            |chunk, version, access| verifier.check(Some(&token), chunk, version, access, NOW);
        assert_eq!(check(42, Some(5), WRITE), Ok(()));
        assert_eq!(check(42, Some(3), READ), Ok(()));
        assert_eq!(check(42, None, READ), Ok(()));
        assert_eq!(
            check(43, Some(5), READ),
            Err(TokenError::WrongChunk {
                token: 42,
                asked: 43
            })
        );
        assert_eq!(
            check(42, Some(6), WRITE),
            Err(TokenError::WrongVersion { token: 5, asked: 6 })
        );
        let read_only = signer.issue(42, 5, READ, NOW);
        assert_eq!(
            verifier.check(Some(&read_only), 42, Some(5), WRITE, NOW),
            Err(TokenError::NotAllowed("writing"))
        );
        assert_eq!(
            verifier.check(None, 42, None, READ, NOW),
            Err(TokenError::Missing)
        );
    }

    #[test]
    fn expired_forged_and_foreign_tokens_are_refused() {
        let (signer, verifier) = pair();
        let token = signer.issue(42, 5, READ, NOW);
        let later = NOW + DEFAULT_LIFETIME.as_millis() as u64 + 1;
        assert_eq!(
            verifier.check(Some(&token), 42, None, READ, later),
            Err(TokenError::Expired)
        );
        // Any field changed after signing breaks the MAC, an extended expiry included.
        for tamper in [
            |t: &mut pb::ChunkToken| t.chunk_id += 1,
            |t: &mut pb::ChunkToken| t.version += 1,
            |t: &mut pb::ChunkToken| t.access |= WRITE,
            |t: &mut pb::ChunkToken| t.expires_unix_ms += 1,
            |t: &mut pb::ChunkToken| t.mac.truncate(3),
        ] {
            let mut forged = token.clone();
            tamper(&mut forged);
            assert_eq!(
                verifier.check(Some(&forged), forged.chunk_id, None, READ, NOW),
                Err(TokenError::BadSignature)
            );
        }
        let mut elsewhere = token.clone();
        elsewhere.key_epoch += 10;
        assert_eq!(
            verifier.check(Some(&elsewhere), 42, None, READ, NOW),
            Err(TokenError::UnknownKey(elsewhere.key_epoch))
        );
        // Another cluster's secret signs tokens this one does not accept.
        let other = TokenSigner::new(&[8u8; SECRET_LEN], DEFAULT_LIFETIME);
        assert_eq!(
            verifier.check(Some(&other.issue(42, 5, READ, NOW)), 42, None, READ, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn keys_handed_out_cover_tokens_signed_in_the_previous_epoch() {
        let signer = TokenSigner::new(&[7u8; SECRET_LEN], DEFAULT_LIFETIME);
        let turn = (epoch_of(NOW) + 1) * KEY_EPOCH.as_millis() as u64;
        let token = signer.issue(1, 1, READ, turn - 1);
        let verifier = TokenVerifier::default();
        verifier.update(&signer.keys(turn + 1));
        assert_eq!(
            verifier.check(Some(&token), 1, None, READ, turn + 1),
            Ok(())
        );
        // An empty list (from a master that sends none) keeps what is known.
        verifier.update(&[]);
        assert_eq!(
            verifier.check(Some(&token), 1, None, READ, turn + 1),
            Ok(())
        );
    }

    #[test]
    fn a_chunkserver_without_keys_is_unavailable_rather_than_refusing() {
        let (signer, _) = pair();
        let token = signer.issue(42, 5, READ, NOW);
        let fresh = TokenVerifier::default();
        let err = fresh.check(Some(&token), 42, None, READ, NOW).unwrap_err();
        assert_eq!(err, TokenError::NoKeys);
        assert!(crate::FsError::from(err).is_replica_fault());
    }
}

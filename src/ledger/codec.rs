//! Keys and the stored form of records, shared by the byte-oriented backends.
//!
//! Keys are binary: a federation or a request is keyed by its 16 UUID bytes, a profile
//! by the token's 16 bytes followed by the ICCID, so a token's profiles are one prefix.
//! A value is one schema-version byte followed by the record's JSON. A record of another
//! version is [`LedgerError::Corrupt`] naming its key, never a panic. Changing the serde
//! shape of a stored type means a new version here and a migration of version 1; the
//! golden test below fails until that is done.

use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use super::types::{AcRequest, AcState, Federation, FederationState, LedgerStats, Profile};
use super::LedgerError;

/// The schema version written in front of every value.
pub(super) const VERSION: u8 = 1;

/// What a record counts as in [`LedgerStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    FederationReserved,
    FederationActive,
    FederationInvalid,
    RequestPending,
    RequestOpen,
    RequestAnswering,
    RequestClosed,
    Profile,
}

impl Slot {
    /// Every slot, in a fixed order (the index of a slot's counter).
    pub(super) const ALL: [Slot; 8] = [
        Slot::FederationReserved,
        Slot::FederationActive,
        Slot::FederationInvalid,
        Slot::RequestPending,
        Slot::RequestOpen,
        Slot::RequestAnswering,
        Slot::RequestClosed,
        Slot::Profile,
    ];

    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// The field of `stats` this slot counts into.
    pub(super) fn field(self, stats: &mut LedgerStats) -> &mut u64 {
        match self {
            Slot::FederationReserved => &mut stats.federations_reserved,
            Slot::FederationActive => &mut stats.federations_active,
            Slot::FederationInvalid => &mut stats.federations_invalid,
            Slot::RequestPending => &mut stats.requests_pending,
            Slot::RequestOpen => &mut stats.requests_open,
            Slot::RequestAnswering => &mut stats.requests_answering,
            Slot::RequestClosed => &mut stats.requests_closed,
            Slot::Profile => &mut stats.profiles,
        }
    }
}

/// A record of any stored type, as kept in memory by the sled backend's write-behind map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum AnyRecord {
    Federation(Federation),
    Request(AcRequest),
    Profile(Profile),
}

impl AnyRecord {
    /// The stored form, as [`encode_into`] makes it.
    pub(super) fn encode_into(&self, key: &[u8], out: &mut Vec<u8>) -> Result<(), LedgerError> {
        match self {
            AnyRecord::Federation(r) => encode_into(key, r, out),
            AnyRecord::Request(r) => encode_into(key, r, out),
            AnyRecord::Profile(r) => encode_into(key, r, out),
        }
    }

    /// Whether nothing on the request path changes or reads the record any more: a closed
    /// activation-code request (only a repeated request id or a late answer looks it up
    /// again, and the sweeper removes it after the retention period).
    pub(super) fn is_final(&self) -> bool {
        matches!(self, AnyRecord::Request(r) if matches!(r.state, AcState::Closed { .. }))
    }
}

/// A stored record type.
pub(super) trait Record:
    Serialize + DeserializeOwned + Clone + Send + Sync + 'static
{
    /// The key prefix in error messages: `federation`, `request`, `profile`.
    const KIND: &'static str;
    /// What the record counts as.
    fn slot(&self) -> Slot;
    /// The record in an [`AnyRecord`].
    fn wrap(self) -> AnyRecord;
    /// The record in `any`, if it is of this type.
    fn unwrap(any: &AnyRecord) -> Option<&Self>;
}

impl Record for Federation {
    const KIND: &'static str = "federation";
    fn wrap(self) -> AnyRecord {
        AnyRecord::Federation(self)
    }
    fn unwrap(any: &AnyRecord) -> Option<&Self> {
        match any {
            AnyRecord::Federation(r) => Some(r),
            _ => None,
        }
    }
    fn slot(&self) -> Slot {
        match self.state {
            FederationState::Reserved { .. } => Slot::FederationReserved,
            FederationState::Active => Slot::FederationActive,
            FederationState::Invalid { .. } => Slot::FederationInvalid,
        }
    }
}

impl Record for AcRequest {
    const KIND: &'static str = "request";
    fn wrap(self) -> AnyRecord {
        AnyRecord::Request(self)
    }
    fn unwrap(any: &AnyRecord) -> Option<&Self> {
        match any {
            AnyRecord::Request(r) => Some(r),
            _ => None,
        }
    }
    fn slot(&self) -> Slot {
        match self.state {
            AcState::Pending => Slot::RequestPending,
            AcState::Open { .. } => Slot::RequestOpen,
            AcState::Answering { .. } => Slot::RequestAnswering,
            AcState::Closed { .. } => Slot::RequestClosed,
        }
    }
}

impl Record for Profile {
    const KIND: &'static str = "profile";
    fn wrap(self) -> AnyRecord {
        AnyRecord::Profile(self)
    }
    fn unwrap(any: &AnyRecord) -> Option<&Self> {
        match any {
            AnyRecord::Profile(r) => Some(r),
            _ => None,
        }
    }
    fn slot(&self) -> Slot {
        Slot::Profile
    }
}

/// The key of a federation or a request.
pub(super) fn id_key(id: Uuid) -> [u8; 16] {
    *id.as_bytes()
}

/// The key of one profile of `token`.
pub(super) fn profile_key(token: Uuid, iccid: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(16 + iccid.len());
    key.extend_from_slice(token.as_bytes());
    key.extend_from_slice(iccid.as_bytes());
    key
}

/// A key in words, for error messages: `request/<uuid>`, `profile/<uuid>/<iccid>`.
pub(super) fn key_name<T: Record>(key: &[u8]) -> String {
    let Some((id, rest)) = key.split_first_chunk::<16>() else {
        return format!("{}/{}", T::KIND, String::from_utf8_lossy(key));
    };
    let id = Uuid::from_bytes(*id);
    if rest.is_empty() {
        format!("{}/{id}", T::KIND)
    } else {
        format!("{}/{id}/{}", T::KIND, String::from_utf8_lossy(rest))
    }
}

/// The stored form of `record`, in a buffer of its own.
#[cfg(test)]
pub(super) fn encode<T: Record>(key: &[u8], record: &T) -> Result<Vec<u8>, LedgerError> {
    let mut value = Vec::with_capacity(TYPICAL_SIZE);
    encode_into(key, record, &mut value)?;
    Ok(value)
}

/// Room for most stored records (200–300 bytes): a value grown from empty would be copied
/// five or six times on its way there.
pub(super) const TYPICAL_SIZE: usize = 512;

/// The stored form of `record`, in place of what `out` held (a buffer the caller reuses).
pub(super) fn encode_into<T: Record>(
    key: &[u8],
    record: &T,
    out: &mut Vec<u8>,
) -> Result<(), LedgerError> {
    out.clear();
    out.push(VERSION);
    serde_json::to_writer(&mut *out, record).map_err(|e| LedgerError::Corrupt {
        key: key_name::<T>(key),
        reason: format!("cannot encode: {e}"),
    })
}

/// The record stored at `key` as `value`.
pub(super) fn decode<T: Record>(key: &[u8], value: &[u8]) -> Result<T, LedgerError> {
    let corrupt = |reason: String| LedgerError::Corrupt {
        key: key_name::<T>(key),
        reason,
    };
    match value.split_first() {
        Some((&VERSION, json)) => {
            serde_json::from_slice(json).map_err(|e| corrupt(format!("bad version 1 record: {e}")))
        }
        Some((other, _)) => Err(corrupt(format!("unknown schema version {other}"))),
        None => Err(corrupt("empty value".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::types::{Outcome, Pair, ProfileSource, Withdrawal};

    const TOKEN: Uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);

    /// The version 1 encoding, pinned: if this fails, bump [`VERSION`] and migrate.
    #[test]
    fn version_1_encoding_is_stable() {
        let fed = Federation {
            msp_token: TOKEN,
            pair: Pair::new("msp1", "cmp1"),
            sid: None,
            subscription_type: Some("private".into()),
            created_at: 5,
            learned: false,
            state: FederationState::Invalid {
                at: 7,
                by: Withdrawal::CmpRequested,
                reason: None,
            },
        };
        let req = AcRequest {
            id: TOKEN,
            msp_token: TOKEN,
            pair: Pair::new("m", "c"),
            created_at: 1,
            state: AcState::Closed {
                at: 2,
                outcome: Outcome::Refused { status: 404 },
            },
        };
        let profile = Profile {
            msp_token: TOKEN,
            iccid: "8944".into(),
            status: "dead".into(),
            source: ProfileSource::Swapped,
            at: 3,
        };
        let text = |v: Vec<u8>| String::from_utf8_lossy(&v[1..]).into_owned();
        let key = id_key(TOKEN);
        assert_eq!(
            text(encode(&key, &fed).unwrap()),
            r#"{"msp_token":"01234567-89ab-cdef-0123-456789abcdef","pair":{"msp":"msp1","cmp":"cmp1"},"sid":null,"subscription_type":"private","created_at":5,"learned":false,"state":{"is":"invalid","at":7,"by":"cmp_requested","reason":null}}"#
        );
        assert_eq!(
            text(encode(&key, &req).unwrap()),
            r#"{"id":"01234567-89ab-cdef-0123-456789abcdef","msp_token":"01234567-89ab-cdef-0123-456789abcdef","pair":{"msp":"m","cmp":"c"},"created_at":1,"state":{"is":"closed","at":2,"outcome":{"is":"refused","status":404}}}"#
        );
        assert_eq!(
            text(encode(&key, &profile).unwrap()),
            r#"{"msp_token":"01234567-89ab-cdef-0123-456789abcdef","iccid":"8944","status":"dead","source":"swapped","at":3}"#
        );
        assert_eq!(encode(&key, &fed).unwrap()[0], 1);

        // A reused buffer holds the last record alone, as the write-behind round reuses it.
        let mut buffer = Vec::new();
        AnyRecord::Federation(fed.clone())
            .encode_into(&key, &mut buffer)
            .unwrap();
        AnyRecord::Profile(profile.clone())
            .encode_into(&key, &mut buffer)
            .unwrap();
        assert_eq!(buffer, encode(&key, &profile).unwrap());
    }

    #[test]
    fn unknown_version_is_an_error_naming_the_key() {
        let key = profile_key(TOKEN, "8944");
        let err = decode::<Profile>(&key, b"\x02{}").unwrap_err();
        assert_eq!(
            err,
            LedgerError::Corrupt {
                key: format!("profile/{TOKEN}/8944"),
                reason: "unknown schema version 2".into(),
            }
        );
        assert!(matches!(
            decode::<Federation>(&id_key(TOKEN), b""),
            Err(LedgerError::Corrupt { .. })
        ));
        assert!(matches!(
            decode::<Federation>(&id_key(TOKEN), b"\x01{not json"),
            Err(LedgerError::Corrupt { key, .. }) if key == format!("federation/{TOKEN}")
        ));
    }
}

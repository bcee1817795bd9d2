//! Keys and the stored form of records, shared by the byte-oriented backends.
//!
//! Keys are binary: a federation or a request is keyed by its 16 UUID bytes, a profile
//! by the token's 16 bytes followed by the ICCID, so a token's profiles are one prefix.
//! A value is one tag byte followed by the record: [`BINARY_V1`] and the binary layout of
//! schema version 1 (`codec/binary.rs`), which is what is written; or [`JSON_V1`] and the
//! record's JSON, what the ledger wrote before the binary layout, still read (a record is
//! written in the binary layout the next time it changes). A value of another tag is
//! [`LedgerError::Corrupt`] naming its key, never a panic. Changing the shape of a stored
//! type means a new schema version here and a migration of version 1; the golden tests
//! below fail until that is done.

use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use super::types::{AcRequest, AcState, Federation, FederationState, LedgerStats, Profile};
use super::LedgerError;
use binary::Binary;

mod binary;

/// The schema version: the shape of the stored types (also PostgreSQL's `version` column).
pub(super) const VERSION: u8 = 1;
/// The tag of a value holding a version 1 record as JSON.
const JSON_V1: u8 = 1;
/// The tag of a value holding a version 1 record in the binary layout.
const BINARY_V1: u8 = 2;

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
    pub(super) fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            AnyRecord::Federation(r) => encode_into(r, out),
            AnyRecord::Request(r) => encode_into(r, out),
            AnyRecord::Profile(r) => encode_into(r, out),
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
    Serialize + DeserializeOwned + Binary + Clone + Send + Sync + 'static
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
pub(super) fn encode<T: Record>(record: &T) -> Vec<u8> {
    let mut value = Vec::with_capacity(TYPICAL_SIZE);
    encode_into(record, &mut value);
    value
}

/// Room for most stored records (50–100 bytes): a value grown from empty would be copied
/// three or four times on its way there.
pub(super) const TYPICAL_SIZE: usize = 256;

/// The stored form of `record`, in place of what `out` held (a buffer the caller reuses).
pub(super) fn encode_into<T: Record>(record: &T, out: &mut Vec<u8>) {
    out.clear();
    out.push(BINARY_V1);
    record.put(out);
}

/// The record stored at `key` as `value`.
pub(super) fn decode<T: Record>(key: &[u8], value: &[u8]) -> Result<T, LedgerError> {
    let corrupt = |reason: String| LedgerError::Corrupt {
        key: key_name::<T>(key),
        reason,
    };
    match value.split_first() {
        Some((&BINARY_V1, bytes)) => {
            binary::read(bytes).map_err(|e| corrupt(format!("bad version 1 record: {e}")))
        }
        Some((&JSON_V1, json)) => serde_json::from_slice(json)
            .map_err(|e| corrupt(format!("bad version 1 JSON record: {e}"))),
        Some((other, _)) => Err(corrupt(format!("unknown schema version tag {other}"))),
        None => Err(corrupt("empty value".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::types::{Outcome, Pair, ProfileSource, Withdrawal};

    const TOKEN: Uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);

    fn samples() -> (Federation, AcRequest, Profile) {
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
        (fed, req, profile)
    }

    /// Version 1's serde shape, pinned: export lines and PostgreSQL's jsonb have it, and
    /// ledgers written before the binary layout hold it. If this fails, bump [`VERSION`]
    /// and migrate.
    const FED_JSON: &str = r#"{"msp_token":"01234567-89ab-cdef-0123-456789abcdef","pair":{"msp":"msp1","cmp":"cmp1"},"sid":null,"subscription_type":"private","created_at":5,"learned":false,"state":{"is":"invalid","at":7,"by":"cmp_requested","reason":null}}"#;
    const REQ_JSON: &str = r#"{"id":"01234567-89ab-cdef-0123-456789abcdef","msp_token":"01234567-89ab-cdef-0123-456789abcdef","pair":{"msp":"m","cmp":"c"},"created_at":1,"state":{"is":"closed","at":2,"outcome":{"is":"refused","status":404}}}"#;
    const PROFILE_JSON: &str = r#"{"msp_token":"01234567-89ab-cdef-0123-456789abcdef","iccid":"8944","status":"dead","source":"swapped","at":3}"#;

    #[test]
    fn version_1_serde_shape_is_stable() {
        let (fed, req, profile) = samples();
        assert_eq!(serde_json::to_string(&fed).unwrap(), FED_JSON);
        assert_eq!(serde_json::to_string(&req).unwrap(), REQ_JSON);
        assert_eq!(serde_json::to_string(&profile).unwrap(), PROFILE_JSON);
    }

    /// What a ledger written before the binary layout holds is still read.
    #[test]
    fn version_1_json_values_are_read() {
        let (fed, req, profile) = samples();
        let value = |json: &str| [&[JSON_V1], json.as_bytes()].concat();
        let key = id_key(TOKEN);
        assert_eq!(decode::<Federation>(&key, &value(FED_JSON)), Ok(fed));
        assert_eq!(decode::<AcRequest>(&key, &value(REQ_JSON)), Ok(req));
        assert_eq!(decode::<Profile>(&key, &value(PROFILE_JSON)), Ok(profile));
    }

    /// The binary layout, pinned: if this fails, bump [`VERSION`] and migrate.
    #[test]
    fn version_1_binary_layout_is_stable() {
        let (fed, req, profile) = samples();
        let token: &[u8] = TOKEN.as_bytes();
        let u64le = |n: u64| n.to_le_bytes().to_vec();
        let fed_bytes = [
            &[BINARY_V1][..],
            token,
            b"\x04msp1\x04cmp1",
            b"\x00",            // no sid
            b"\x01\x07private", // subscription type
            &u64le(5),          // created
            b"\x00",            // not learned
            b"\x02",            // invalid
            &u64le(7),          // at
            b"\x01",            // by the CMP
            b"\x00",            // no reason
        ]
        .concat();
        assert_eq!(encode(&fed), fed_bytes);
        let req_bytes = [
            &[BINARY_V1][..],
            token,
            token,
            b"\x01m\x01c",
            &u64le(1),
            b"\x03",   // closed
            &u64le(2), // at
            b"\x01",   // refused
            &404u16.to_le_bytes(),
        ]
        .concat();
        assert_eq!(encode(&req), req_bytes);
        let profile_bytes = [
            &[BINARY_V1][..],
            token,
            b"\x048944\x04dead",
            b"\x02", // swapped
            &u64le(3),
        ]
        .concat();
        assert_eq!(encode(&profile), profile_bytes);

        // A reused buffer holds the last record alone, as the write-behind round reuses it.
        let mut buffer = Vec::new();
        AnyRecord::Federation(fed.clone()).encode_into(&mut buffer);
        AnyRecord::Profile(profile.clone()).encode_into(&mut buffer);
        assert_eq!(buffer, profile_bytes);
    }

    /// Every variant of every stored enum, and strings long enough for a two-byte length,
    /// come back as they went in.
    #[test]
    fn every_variant_round_trips() {
        let key = id_key(TOKEN);
        let long = "é".repeat(100); // 200 bytes: a length of two bytes
        let mut feds = Vec::new();
        for state in [
            FederationState::Reserved { at: u64::MAX },
            FederationState::Active,
            FederationState::Invalid {
                at: 9,
                by: Withdrawal::MspNotified,
                reason: Some(long.clone()),
            },
            FederationState::Invalid {
                at: 9,
                by: Withdrawal::Operator,
                reason: Some(String::new()),
            },
        ] {
            feds.push(Federation {
                msp_token: TOKEN,
                pair: Pair::new(long.as_str(), ""),
                sid: Some(Uuid::from_u128(7)),
                subscription_type: None,
                created_at: 0,
                learned: true,
                state,
            });
        }
        for fed in feds {
            assert_eq!(decode::<Federation>(&key, &encode(&fed)), Ok(fed));
        }
        let outcomes = [
            Outcome::Sync,
            Outcome::Refused { status: u16::MAX },
            Outcome::Answered,
            Outcome::AnsweredWithError,
            Outcome::Expired,
            Outcome::Abandoned,
        ];
        let states = [
            AcState::Pending,
            AcState::Open { deadline: 1 << 40 },
            AcState::Answering { at: 3, deadline: 4 },
        ]
        .into_iter()
        .chain(outcomes.map(|outcome| AcState::Closed { at: 5, outcome }));
        for state in states {
            let req = AcRequest {
                id: Uuid::from_u128(1),
                msp_token: TOKEN,
                pair: Pair::new("m", "c"),
                created_at: 2,
                state,
            };
            assert_eq!(decode::<AcRequest>(&key, &encode(&req)), Ok(req));
        }
        for source in [
            ProfileSource::SyncAnswer,
            ProfileSource::AsyncAnswer,
            ProfileSource::Swapped,
            ProfileSource::CsimStatus,
            ProfileSource::ProfileInformation,
            ProfileSource::ProfileStatusAnswer,
        ] {
            let profile = Profile {
                msp_token: TOKEN,
                iccid: "89440000000000000001".into(),
                status: long.clone(),
                source,
                at: 6,
            };
            assert_eq!(decode::<Profile>(&key, &encode(&profile)), Ok(profile));
        }
    }

    fn reason(result: Result<Federation, LedgerError>) -> String {
        match result {
            Err(LedgerError::Corrupt { key, reason }) => {
                assert_eq!(key, format!("federation/{TOKEN}"));
                reason
            }
            other => panic!("not a corrupt record: {other:?}"),
        }
    }

    /// A damaged value is an error naming the key and what is wrong, at every length.
    #[test]
    fn damaged_binary_values_are_errors_not_panics() {
        let key = id_key(TOKEN);
        let (mut fed, _, _) = samples();
        fed.state = FederationState::Invalid {
            at: 7,
            by: Withdrawal::Operator,
            reason: Some("gone".into()),
        };
        let whole = encode(&fed);
        for cut in 1..whole.len() {
            let reason = reason(decode::<Federation>(&key, &whole[..cut]));
            assert!(reason.contains("ends early"), "cut at {cut}: {reason}");
        }
        let longer = [&whole[..], b"\x00"].concat();
        assert_eq!(
            reason(decode(&key, &longer)),
            "bad version 1 record: 1 byte after the record"
        );
        // Byte 17 is the MSP id's length: 0x80, then 0xff ten times, holds more bits than a
        // usize.
        let mut overlong = whole[..18].to_vec();
        overlong[17] = 0x80;
        overlong.extend_from_slice(&[0xff; 10]);
        assert_eq!(
            reason(decode(&key, &overlong)),
            "bad version 1 record: a length does not fit in a usize"
        );
        let state_at = whole.len() - 16; // the state's tag: then at, by, reason
        let mut bad = whole.clone();
        bad[state_at] = 3;
        assert_eq!(
            reason(decode(&key, &bad)),
            "bad version 1 record: FederationState has no variant 3"
        );
        let mut bad = whole.clone();
        bad[state_at + 9] = 9;
        assert_eq!(
            reason(decode(&key, &bad)),
            "bad version 1 record: Withdrawal has no variant 9"
        );
        let mut bad = whole.clone();
        bad[state_at + 10] = 2;
        assert_eq!(
            reason(decode(&key, &bad)),
            "bad version 1 record: 2 is not an option's tag"
        );
        let mut bad = whole.clone();
        bad[state_at - 1] = 2;
        assert_eq!(
            reason(decode(&key, &bad)),
            "bad version 1 record: 2 is not a bool"
        );
        let mut bad = whole.clone();
        bad[state_at + 12] = 0xff; // inside "gone"
        assert_eq!(
            reason(decode(&key, &bad)),
            "bad version 1 record: a string is not UTF-8"
        );
    }

    #[test]
    fn unknown_version_is_an_error_naming_the_key() {
        let key = profile_key(TOKEN, "8944");
        let err = decode::<Profile>(&key, b"\x03{}").unwrap_err();
        assert_eq!(
            err,
            LedgerError::Corrupt {
                key: format!("profile/{TOKEN}/8944"),
                reason: "unknown schema version tag 3".into(),
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

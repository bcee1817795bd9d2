//! AID.02 5.2 account ids: HS256 JSON web tokens that the CMP signs with a secret agreed
//! per MSP, carrying `exp`, `sid`, `iat` and optionally `ver` (secret knowledge such as the
//! last digits of the phone number). [`verify`] checks one; [`sign`] makes one (for tests,
//! the demo and simulated partners).
//!
//! Decisions:
//!
//! * **Order.** Structure first (three Base64url segments of `[A-Za-z0-9_-]`, at most
//!   [`ACCOUNT_ID_MAX`] bytes; a header that is a JSON object with a string `alg`), then the
//!   algorithm and the signature, then the claims, then the expiry: an expired token with a
//!   bad signature is [`AccountIdError::BadSignature`], and a token whose signature fails is
//!   never read further.
//! * **Algorithm.** Only `HS256`. A readable header naming another algorithm (`none`,
//!   `HS512`, `RS256` …) is [`AccountIdError::BadSignature`] (code 12): the token is not
//!   signed the agreed way, which for the receiver is an invalid signature. A header that
//!   cannot be read is [`AccountIdError::Malformed`] (code 19).
//! * **`exp`** is a non-negative JSON integer or a string of 1–20 ASCII digits (5.2's example
//!   writes a string, RFC 7519 a number); anything else, or absent, is `Malformed`. The token
//!   is expired when `now >= exp` (RFC 7519 4.1.4: valid only *before* `exp`); no leeway.
//! * **`iat`** is optional, with the same two forms; garbage is `Malformed`. It is not
//!   checked against the clock.
//! * **`sid`** is required, a canonical hyphenated UUID.
//! * **`ver`** is optional, a string or a number; it is never exposed, only whether it is
//!   there ([`AccountClaims::has_ver`]). Other claims are ignored.
//! * The signature is verified by `jsonwebtoken` (its `crypto::verify`, which re-signs with
//!   ring's HMAC and compares in constant time); the segments, the header and the claims are
//!   read here, once each (`jsonwebtoken::decode` parsed the header a second time and the
//!   claims twice, and built a fresh `Validation` per token), and only the members named
//!   here are kept, borrowed from the decoded bytes (`members`; a `serde_json::Value`
//!   allocated a map node and a string per member). A repeated member keeps its last value,
//!   as it did in a `Value`. [`sign`] computes HMAC-SHA256
//!   itself with `sha2` (RFC 2104), so that it cannot fail, and the tests cross-check the two.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// Longest account id accepted (the `{account_id}` path parameter has the same cap).
pub const ACCOUNT_ID_MAX: usize = crate::aid1::types::ACCOUNT_ID_MAX;

/// The claims of a valid account id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountClaims {
    /// The onboarding session.
    pub sid: uuid::Uuid,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issue time, Unix seconds, if given.
    pub iat: Option<u64>,
    /// Whether the token carries `ver` secret knowledge (its value is never exposed).
    pub has_ver: bool,
}

/// Why an account id was refused. Messages never contain the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccountIdError {
    /// The signature is valid but `exp` has passed. Spec code 11 "The account ID was found
    /// but is no longer valid".
    #[error("the account id has expired")]
    Expired,
    /// The signature does not verify with the agreed secret, or the token is not HS256.
    /// Spec code 12 "The account ID has an invalid signature".
    #[error("the account id has an invalid signature")]
    BadSignature,
    /// The token cannot be read or lacks a required claim. Spec code 19 "Other account ID
    /// error".
    #[error("malformed account id: {0}")]
    Malformed(String),
}

/// Verifies `token` with `secret` at time `now_unix` (Unix seconds).
pub fn verify(token: &str, secret: &[u8], now_unix: u64) -> Result<AccountClaims, AccountIdError> {
    let parts = Parts::of(token)?;
    check_header(parts.header)?;
    let signed = jsonwebtoken::crypto::verify(
        parts.signature,
        parts.message.as_bytes(),
        &DecodingKey::from_secret(secret),
        Algorithm::HS256,
    )
    .map_err(|_| malformed("the token cannot be decoded"))?;
    if !signed {
        return Err(AccountIdError::BadSignature);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(parts.payload)
        .map_err(|_| malformed("the token cannot be decoded"))?;
    let claims = claims(&payload)?;
    if now_unix >= claims.exp {
        return Err(AccountIdError::Expired);
    }
    Ok(claims)
}

/// Signs an account id for `claims` with `secret`: header `{"alg":"HS256","typ":"JWT"}`,
/// `exp` as a number or (like 5.2's example) a string, `ver` when given, `iat` when set.
pub fn sign(
    claims: &AccountClaims,
    ver: Option<&str>,
    exp_as_string: bool,
    secret: &[u8],
) -> String {
    let mut payload = Map::new();
    let exp = if exp_as_string {
        Value::from(claims.exp.to_string())
    } else {
        Value::from(claims.exp)
    };
    payload.insert("exp".to_owned(), exp);
    if let Some(ver) = ver {
        payload.insert("ver".to_owned(), Value::from(ver));
    }
    payload.insert(
        "sid".to_owned(),
        Value::from(claims.sid.hyphenated().to_string()),
    );
    if let Some(iat) = claims.iat {
        payload.insert("iat".to_owned(), Value::from(iat));
    }
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(Value::Object(payload).to_string());
    let message = format!("{header}.{body}");
    let signature = URL_SAFE_NO_PAD.encode(hmac_sha256(secret, message.as_bytes()));
    format!("{message}.{signature}")
}

fn malformed(reason: &str) -> AccountIdError {
    AccountIdError::Malformed(reason.to_owned())
}

/// A token's three segments, and the signed message (header and payload with their dot).
struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    message: &'a str,
    signature: &'a str,
}

impl<'a> Parts<'a> {
    /// Three Base64url segments within the length cap, in one pass; header and payload
    /// non-empty (an empty signature, as `alg: none` tokens have, is left for the signature
    /// check to refuse).
    fn of(token: &'a str) -> Result<Parts<'a>, AccountIdError> {
        if token.len() > ACCOUNT_ID_MAX {
            return Err(malformed("too long"));
        }
        let not_three = || malformed("not three Base64url segments");
        let mut dots = 0;
        for byte in token.bytes() {
            match byte {
                b'.' => dots += 1,
                b'-' | b'_' => {}
                _ if byte.is_ascii_alphanumeric() => {}
                _ => return Err(not_three()),
            }
        }
        let (Some((message, signature)), 2) = (token.rsplit_once('.'), dots) else {
            return Err(not_three());
        };
        match message.split_once('.') {
            Some((header, payload)) if !header.is_empty() && !payload.is_empty() => Ok(Parts {
                header,
                payload,
                message,
                signature,
            }),
            _ => Err(not_three()),
        }
    }
}

/// The header must be a JSON object whose `alg` is `HS256`.
fn check_header(encoded: &str) -> Result<(), AccountIdError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| malformed("the header is not Base64url"))?;
    let [alg] = members(&bytes, ["alg"])
        .map_err(|_| malformed("the header is not JSON"))?
        .unwrap_or_default();
    match alg {
        Some(Member::Str(alg)) if alg == "HS256" => Ok(()),
        Some(Member::Str(_)) => Err(AccountIdError::BadSignature),
        _ => Err(malformed("the header has no alg")),
    }
}

fn claims(payload: &[u8]) -> Result<AccountClaims, AccountIdError> {
    let [sid, exp, iat, ver] = members(payload, ["sid", "exp", "iat", "ver"])
        .map_err(|_| malformed("the token cannot be decoded"))?
        .ok_or_else(|| malformed("the payload is not a JSON object"))?;
    let sid = match &sid {
        Some(Member::Str(sid)) => crate::aid1::types::parse_canonical_uuid(sid),
        _ => None,
    }
    .ok_or_else(|| malformed("sid must be a UUID"))?;
    let exp = match exp {
        Some(value) => unix_time(&value).ok_or_else(|| malformed("exp must be Unix seconds"))?,
        None => return Err(malformed("exp is required")),
    };
    let iat = match iat {
        None | Some(Member::Null) => None,
        Some(value) => {
            Some(unix_time(&value).ok_or_else(|| malformed("iat must be Unix seconds"))?)
        }
    };
    let has_ver = match ver {
        None | Some(Member::Null) => false,
        Some(Member::Str(_) | Member::Number(_)) => true,
        Some(Member::Other) => return Err(malformed("ver must be a string")),
    };
    Ok(AccountClaims {
        sid,
        exp,
        iat,
        has_ver,
    })
}

/// A non-negative integer, as a JSON number or a string of 1–20 ASCII digits.
fn unix_time(value: &Member<'_>) -> Option<u64> {
    match value {
        Member::Number(n) => *n,
        Member::Str(s)
            if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

/// A member's value, as far as the header and the claims need it.
#[derive(Debug, PartialEq)]
enum Member<'a> {
    Str(Cow<'a, str>),
    /// A number, and its value if it is a non-negative integer that fits in 64 bits.
    Number(Option<u64>),
    Null,
    /// `true`, `false`, an array or an object.
    Other,
}

/// The members `names` of the JSON object in `json`, read in one pass without building the
/// whole document (a `serde_json::Value` costs a map and a string per member): `Ok(None)`
/// when `json` is valid JSON but not an object, `Err` when it is not JSON. Like a `Value`,
/// a repeated name keeps its last value; other members are checked as JSON and skipped.
fn members<'a, const N: usize>(
    json: &'a [u8],
    names: [&'static str; N],
) -> Result<Option<[Option<Member<'a>>; N]>, serde_json::Error> {
    let mut reader = serde_json::Deserializer::from_slice(json);
    let object = (&mut reader).deserialize_any(Object { names })?;
    // As `serde_json::from_slice`: nothing but whitespace after the value.
    reader.end()?;
    Ok(object)
}

/// Reads the top-level value for [`members`].
struct Object<const N: usize> {
    names: [&'static str; N],
}

impl<'de, const N: usize> Visitor<'de> for Object<N> {
    type Value = Option<[Option<Member<'de>>; N]>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = [const { None }; N];
        // A name is read as a `Member` so that it is borrowed unless it has escapes (serde's
        // own `Cow<str>` always copies).
        while let Some(name) = map.next_key::<Member<'de>>()? {
            let wanted = match name {
                Member::Str(name) => self.names.iter().position(|wanted| *wanted == name),
                _ => None,
            };
            match wanted {
                Some(i) => found[i] = Some(map.next_value::<Member<'de>>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(found))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

impl<'de> Deserialize<'de> for Member<'de> {
    fn deserialize<D: Deserializer<'de>>(reader: D) -> Result<Self, D::Error> {
        reader.deserialize_any(MemberVisitor)
    }
}

struct MemberVisitor;

impl<'de> Visitor<'de> for MemberVisitor {
    type Value = Member<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Borrowed(text)))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Owned(text.to_owned())))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Member<'de>, E> {
        Ok(Member::Number(Some(n)))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Member<'de>, E> {
        Ok(Member::Number(u64::try_from(n).ok()))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Member<'de>, E> {
        Ok(Member::Number(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Member<'de>, E> {
        Ok(Member::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Member<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Member::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Member::Other)
    }
}

/// HMAC-SHA256 (RFC 2104) with a 64-byte block.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let hashed;
    let key = if key.len() > 64 {
        hashed = Sha256::digest(key);
        hashed.as_slice()
    } else {
        key
    };
    let mut block = [0u8; 64];
    block
        .iter_mut()
        .zip(key)
        .for_each(|(slot, byte)| *slot = *byte);
    let pad = |with: u8| block.map(|b| b ^ with);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"msp-specific-secret";
    const NOW: u64 = 1_648_541_816;

    fn claims(exp: u64) -> AccountClaims {
        AccountClaims {
            sid: uuid::Uuid::parse_str("a625211a-2cba-4136-aa8b-34c390b8a7d7").unwrap(),
            exp,
            iat: Some(NOW - 60),
            has_ver: true,
        }
    }

    /// A token with this header and payload JSON, signed with `SECRET`.
    fn forge(header: &str, payload: &str) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = URL_SAFE_NO_PAD.encode(hmac_sha256(SECRET, message.as_bytes()));
        format!("{message}.{signature}")
    }

    fn hs256(payload: &str) -> String {
        forge(r#"{"alg":"HS256","typ":"JWT"}"#, payload)
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn exp_as_number_and_as_string() {
        for as_string in [false, true] {
            let token = sign(&claims(NOW + 600), Some("6789"), as_string, SECRET);
            assert_eq!(verify(&token, SECRET, NOW), Ok(claims(NOW + 600)));
            assert!(!token.contains('='));
        }
        let no_ver = sign(
            &AccountClaims {
                iat: None,
                has_ver: false,
                ..claims(NOW + 1)
            },
            None,
            false,
            SECRET,
        );
        let verified = verify(&no_ver, SECRET, NOW).unwrap();
        assert_eq!((verified.has_ver, verified.iat), (false, None));
    }

    #[test]
    fn tokens_from_jsonwebtoken_verify_too() {
        let payload = serde_json::json!({"exp": "1648542000", "sid": "a625211a-2cba-4136-aa8b-34c390b8a7d7", "iat": "1648541816"});
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &payload,
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        let verified = verify(&token, SECRET, NOW).unwrap();
        assert_eq!(
            (verified.exp, verified.iat, verified.has_ver),
            (1_648_542_000, Some(NOW), false)
        );
    }

    #[test]
    fn expiry() {
        let token = sign(&claims(NOW), None, true, SECRET);
        assert_eq!(verify(&token, SECRET, NOW), Err(AccountIdError::Expired));
        assert_eq!(
            verify(&token, SECRET, NOW + 1),
            Err(AccountIdError::Expired)
        );
        assert!(verify(&token, SECRET, NOW - 1).is_ok());
    }

    #[test]
    fn the_signature_is_checked_before_the_expiry() {
        let token = sign(&claims(NOW - 1), None, false, SECRET);
        assert_eq!(
            verify(&token, b"another secret", NOW),
            Err(AccountIdError::BadSignature)
        );
        let fresh = sign(&claims(NOW + 600), None, false, SECRET);
        assert_eq!(
            verify(&fresh, b"another secret", NOW),
            Err(AccountIdError::BadSignature)
        );
        let mut tampered = fresh.clone();
        tampered.pop();
        tampered.push(if fresh.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(
            verify(&tampered, SECRET, NOW),
            Err(AccountIdError::BadSignature)
        );
    }

    #[test]
    fn other_algorithms_are_bad_signatures() {
        let payload = r#"{"exp":2000000000,"sid":"a625211a-2cba-4136-aa8b-34c390b8a7d7"}"#;
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        );
        assert_eq!(
            verify(&none, SECRET, NOW),
            Err(AccountIdError::BadSignature)
        );
        let hs512 = forge(r#"{"alg":"HS512"}"#, payload);
        assert_eq!(
            verify(&hs512, SECRET, NOW),
            Err(AccountIdError::BadSignature)
        );
        let empty_signature = format!(
            "{}.",
            hs256(payload)
                .rsplit_once('.')
                .map(|(m, _)| m)
                .unwrap_or_default()
        );
        assert_eq!(
            verify(&empty_signature, SECRET, NOW),
            Err(AccountIdError::BadSignature)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let long = "a".repeat(ACCOUNT_ID_MAX + 1);
        for token in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "..",
            "a.b.c",
            "e30.e30.e30",
            "eyJ.eyJ.abc",
            "ey J.e30.abc",
            "e30=.e30.abc",
            long.as_str(),
        ] {
            assert!(
                matches!(
                    verify(token, SECRET, NOW),
                    Err(AccountIdError::Malformed(_))
                ),
                "{token}"
            );
        }
        let no_alg = forge(r#"{"typ":"JWT"}"#, r#"{"exp":2000000000}"#);
        assert!(matches!(
            verify(&no_alg, SECRET, NOW),
            Err(AccountIdError::Malformed(_))
        ));
    }

    #[test]
    fn bad_claims_are_malformed() {
        for payload in [
            r#"{"exp":2000000000}"#,
            r#"{"exp":2000000000,"sid":"not-a-uuid"}"#,
            r#"{"exp":2000000000,"sid":7}"#,
            r#"{"sid":"a625211a-2cba-4136-aa8b-34c390b8a7d7"}"#,
            r#"{"exp":"soon","sid":"a625211a-2cba-4136-aa8b-34c390b8a7d7"}"#,
            r#"{"exp":"","sid":"a625211a-2cba-4136-aa8b-34c390b8a7d7"}"#,
            r#"{"exp":-1,"sid":"a625211a-2cba-4136-aa8b-34c390b8a7d7"}"#,
            r#"{"exp":2000000000.5,"sid":"a625211a-2cba-4136-aa8b-34c390b8a7d7"}"#,
            r#"{"exp":"99999999999999999999999","sid":"a625211a-2cba-4136-aa8b-34c390b8a7d7"}"#,
            r#"{"exp":null,"sid":"a625211a-2cba-4136-aa8b-34c390b8a7d7"}"#,
            r#"{"exp":2000000000,"iat":"x","sid":"a625211a-2cba-4136-aa8b-34c390b8a7d7"}"#,
            r#"{"exp":2000000000,"ver":{},"sid":"a625211a-2cba-4136-aa8b-34c390b8a7d7"}"#,
            r#"[1,2]"#,
            r#"not json"#,
        ] {
            let result = verify(&hs256(payload), SECRET, NOW);
            assert!(
                matches!(result, Err(AccountIdError::Malformed(_))),
                "{payload}: {result:?}"
            );
        }
    }

    /// Only `alg` is read from the header; the claims are read only once the signature holds.
    #[test]
    fn header_members_besides_alg_are_ignored_and_claims_wait_for_the_signature() {
        let payload = r#"{"exp":2000000000,"sid":"a625211a-2cba-4136-aa8b-34c390b8a7d7"}"#;
        let odd_header = forge(r#"{"alg":"HS256","kid":5,"typ":["JWT"]}"#, payload);
        assert_eq!(
            verify(&odd_header, SECRET, NOW).map(|c| c.exp),
            Ok(2_000_000_000)
        );
        let garbage = hs256("not json");
        let (message, _) = garbage.rsplit_once('.').unwrap();
        let unsigned = format!("{message}.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
        assert_eq!(
            verify(&unsigned, SECRET, NOW),
            Err(AccountIdError::BadSignature)
        );
        assert_eq!(
            verify(&garbage, SECRET, NOW),
            Err(AccountIdError::Malformed(
                "the token cannot be decoded".to_owned()
            ))
        );
    }

    /// The claims as the hub read them before, through a whole `serde_json::Value`: the
    /// member-by-member reader must decide every payload the same way.
    fn claims_through_a_value(payload: &[u8]) -> Result<AccountClaims, AccountIdError> {
        let value: Value = serde_json::from_slice(payload)
            .map_err(|_| malformed("the token cannot be decoded"))?;
        let object = value
            .as_object()
            .ok_or_else(|| malformed("the payload is not a JSON object"))?;
        let time = |value: &Value| match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s)
                if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) =>
            {
                s.parse().ok()
            }
            _ => None,
        };
        let sid = object
            .get("sid")
            .and_then(Value::as_str)
            .and_then(crate::aid1::types::parse_canonical_uuid)
            .ok_or_else(|| malformed("sid must be a UUID"))?;
        let exp = match object.get("exp") {
            Some(value) => time(value).ok_or_else(|| malformed("exp must be Unix seconds"))?,
            None => return Err(malformed("exp is required")),
        };
        let iat = match object.get("iat") {
            None | Some(Value::Null) => None,
            Some(value) => Some(time(value).ok_or_else(|| malformed("iat must be Unix seconds"))?),
        };
        let has_ver = match object.get("ver") {
            None | Some(Value::Null) => false,
            Some(Value::String(_) | Value::Number(_)) => true,
            Some(_) => return Err(malformed("ver must be a string")),
        };
        Ok(AccountClaims {
            sid,
            exp,
            iat,
            has_ver,
        })
    }

    #[test]
    fn claims_are_read_as_a_whole_json_value_would_read_them() {
        const SID: &str = "a625211a-2cba-4136-aa8b-34c390b8a7d7";
        let payloads = [
            format!(r#"{{"exp":2000000000,"sid":"{SID}"}}"#),
            // A repeated member keeps its last value, either way round.
            format!(r#"{{"exp":1,"exp":2000000000,"sid":"x","sid":"{SID}"}}"#),
            format!(r#"{{"exp":2000000000,"exp":"soon","sid":"{SID}"}}"#),
            format!(r#"{{"exp":2000000000,"sid":"{SID}","ver":{{}},"ver":"6789"}}"#),
            format!(r#"{{"exp":2000000000,"sid":"{SID}","iat":5,"iat":null}}"#),
            // Escapes in names and values.
            r#"{"\u0065xp":"2000000000","s\u0069d":"a625211a\u002d2cba-4136-aa8b-34c390b8a7d7"}"#
                .to_owned(),
            // Numbers: only a non-negative integer within 64 bits is a time; any number is a ver.
            format!(r#"{{"exp":2000000000.0,"sid":"{SID}"}}"#),
            format!(r#"{{"exp":2e9,"sid":"{SID}"}}"#),
            format!(r#"{{"exp":18446744073709551615,"sid":"{SID}"}}"#),
            format!(r#"{{"exp":18446744073709551616,"sid":"{SID}"}}"#),
            format!(r#"{{"exp":-0,"sid":"{SID}"}}"#),
            format!(r#"{{"exp":2000000000,"sid":"{SID}","ver":-1.5}}"#),
            format!(r#"{{"exp":2000000000,"sid":"{SID}","ver":true}}"#),
            format!(r#"{{"exp":2000000000,"sid":"{SID}","ver":[1]}}"#),
            format!(r#"{{"exp":2000000000,"sid":"{SID}","iat":"0123"}}"#),
            format!(r#"{{"exp":"000000000000000000002","sid":"{SID}"}}"#),
            format!(r#"{{"exp":"+5","sid":"{SID}"}}"#),
            // Other members are skipped, but must be JSON.
            format!(r#"{{"exp":2000000000,"sid":"{SID}","x":{{"y":[1,{{"z":null}}]}},"w":true}}"#),
            format!(r#"{{"exp":2000000000,"sid":"{SID}","x":[1,}}"#),
            format!(r#"{{"exp":2000000000,"sid":"{SID}"}}  "#),
            format!(r#"{{"exp":2000000000,"sid":"{SID}"}}x"#),
            format!(r#"{{"exp":2000000000,"sid":"{SID}"}}{{}}"#),
            format!(r#"{{"exp":2000000000,"sid":"{SID}""#),
            format!(r#"{{"exp":2000000000,"sid":{SID}}}"#),
            format!(r#"{{"exp":2000000000,"sid":"{}"}}"#, SID.to_uppercase()),
            "{}".to_owned(),
            // Not objects.
            "[1,2]".to_owned(),
            "\"x\"".to_owned(),
            "5".to_owned(),
            "-5".to_owned(),
            "1.5".to_owned(),
            "null".to_owned(),
            "true".to_owned(),
            "".to_owned(),
            "[1,".to_owned(),
            "\u{feff}{}".to_owned(),
        ];
        for payload in &payloads {
            assert_eq!(
                super::claims(payload.as_bytes()),
                claims_through_a_value(payload.as_bytes()),
                "{payload}"
            );
        }
        let first = super::claims(payloads[1].as_bytes()).unwrap();
        assert_eq!(first.exp, 2_000_000_000);
        assert!(super::claims(payloads[3].as_bytes()).unwrap().has_ver);
        assert_eq!(super::claims(payloads[4].as_bytes()).unwrap().iat, None);
        assert_eq!(
            super::claims(payloads[5].as_bytes()).unwrap().exp,
            2_000_000_000
        );
        assert_eq!(
            super::claims(payloads[8].as_bytes()).unwrap().exp,
            18_446_744_073_709_551_615
        );
    }

    #[test]
    fn the_header_is_read_as_a_whole_json_value_would_read_it() {
        let payload = r#"{"exp":2000000000,"sid":"a625211a-2cba-4136-aa8b-34c390b8a7d7"}"#;
        let signed = |header: &str| verify(&forge(header, payload), SECRET, NOW).map(|c| c.exp);
        assert_eq!(signed(r#"{"alg":"none","alg":"HS256"}"#), Ok(2_000_000_000));
        assert_eq!(
            signed(r#"{"\u0061lg":"HS\u0032\u0035\u0036"}"#),
            Ok(2_000_000_000)
        );
        assert_eq!(
            signed(r#"{"alg":"HS256","alg":"HS512"}"#),
            Err(AccountIdError::BadSignature)
        );
        for (header, reason) in [
            (r#"{"alg":5}"#, "the header has no alg"),
            (r#"{"alg":null}"#, "the header has no alg"),
            (r#"["alg","HS256"]"#, "the header has no alg"),
            (r#""HS256""#, "the header has no alg"),
            (r#"{"alg":"HS256"}x"#, "the header is not JSON"),
            (r#"{"alg":"HS256","kid":[}"#, "the header is not JSON"),
        ] {
            assert_eq!(
                signed(header),
                Err(AccountIdError::Malformed(reason.to_owned())),
                "{header}"
            );
        }
    }

    #[test]
    fn the_spec_example_does_not_panic_and_messages_hold_no_token() {
        let spec = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOiIxNTgwNzI0MDAwIiwidmVlIjoilNzg5Iiwic2kiOiYTYyNTIxMWEtMmNiYS00MTM2LWFhOGItMzRjMzkwYjhhN2Q3IiwiaWF0IjoxNTgwNzIwNDAwfQ.ZbD3EEYryEp4yub_8Ca_PYi22TatV2N3TBuf2nNy5Bs";
        let err = verify(spec, SECRET, NOW).unwrap_err();
        assert!(!err.to_string().contains("eyJ"));
    }
}

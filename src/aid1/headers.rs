//! The five headers of AID.02 5.1, plus HTTP basic authentication, which chapter 6 allows
//! instead of `api-key` on the MSP-hosted API.
//!
//! Rules:
//!
//! * `CMP-request-id` and `correlation-id`: required, one value, a canonical hyphenated
//!   UUID. Anything wrong with `correlation-id` other than its absence is
//!   [`ViolationKind::BadCorrelationId`] (code 92).
//! * `client-id` and `target-id`: required, one value, `[A-Za-z0-9]+`, at most
//!   [`ID_MAX`] characters.
//! * Credential: `api-key` (`[A-Za-z0-9]+`, at most [`API_KEY_MAX`]) or
//!   `Authorization: Basic base64(user:password)` (scheme case-insensitive, standard Base64,
//!   UTF-8, a non-empty user without `:`, a non-empty password); neither is
//!   [`Credential::None`] (whether that is allowed is the caller's decision); both, a
//!   repeated one, or another `Authorization` scheme is [`ViolationKind::BadCredential`].
//! * Names are case-insensitive (`http::HeaderMap` already is); a value that is not visible
//!   ASCII is malformed. Reasons never quote a header value.
//!
//! Chapter 6's `Content-Type` is checked by [`check_content_type`] in its own file.
//!
//! [`check_content_type`]: crate::aid1::check_content_type

use crate::aid1::types::parse_canonical_uuid;
use crate::aid1::violation::{Violation, ViolationKind};
use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use uuid::Uuid;

/// Longest accepted `client-id` / `target-id`.
pub const ID_MAX: usize = 64;
/// Longest accepted `api-key`.
pub const API_KEY_MAX: usize = 512;
/// Longest accepted `Authorization` header value.
pub const AUTHORIZATION_MAX: usize = 1024;

/// The headers the rules read, in the order they are checked.
#[derive(Clone, Copy)]
enum Read {
    CmpRequestId,
    CorrelationId,
    ClientId,
    TargetId,
    ApiKey,
    Authorization,
}

impl Read {
    const COUNT: usize = 6;

    /// The lower-case name, as `HeaderName::as_str` gives it.
    fn name(self) -> &'static str {
        match self {
            Read::CmpRequestId => "cmp-request-id",
            Read::CorrelationId => "correlation-id",
            Read::ClientId => "client-id",
            Read::TargetId => "target-id",
            Read::ApiKey => "api-key",
            Read::Authorization => "authorization",
        }
    }

    fn of(name: &HeaderName) -> Option<Read> {
        Some(match name.as_str() {
            "cmp-request-id" => Read::CmpRequestId,
            "correlation-id" => Read::CorrelationId,
            "client-id" => Read::ClientId,
            "target-id" => Read::TargetId,
            "api-key" => Read::ApiKey,
            "authorization" => Read::Authorization,
            _ => return None,
        })
    }
}

/// The first value of each header the rules read and whether it came again, from one pass
/// over the request's headers: a lookup by name hashes the name, and a request carries
/// hardly more headers than the rules read.
#[derive(Default)]
struct Found<'m> {
    first: [Option<&'m HeaderValue>; Read::COUNT],
    repeated: [bool; Read::COUNT],
}

impl<'m> Found<'m> {
    fn scan(map: &'m HeaderMap) -> Found<'m> {
        let mut found = Found::default();
        for (name, value) in map {
            if let Some(read) = Read::of(name) {
                let i = read as usize;
                if found.first[i].is_some() {
                    found.repeated[i] = true;
                } else {
                    found.first[i] = Some(value);
                }
            }
        }
        found
    }

    /// The one value of `read` as visible ASCII, `None` if absent. Repeated or not visible
    /// ASCII is a violation of `kind`.
    fn single(&self, read: Read, kind: ViolationKind) -> Result<Option<&'m str>, Violation> {
        let i = read as usize;
        one_value(self.first[i], self.repeated[i], read.name(), kind)
    }

    /// A required header (absent is [`ViolationKind::MissingHeader`]).
    fn required(&self, read: Read, kind: ViolationKind) -> Result<&'m str, Violation> {
        self.single(read, kind)?
            .ok_or_else(|| Violation::new(ViolationKind::MissingHeader, read.name(), "is required"))
    }
}

/// The validated AID1 headers of one request, borrowed from its header map: the hub reads
/// them while it decides the route and copies nothing it does not keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aid1Headers<'m> {
    /// `CMP-request-id`: identifies this request.
    pub cmp_request_id: Uuid,
    /// `correlation-id`: identifies the transaction.
    pub correlation_id: Uuid,
    /// `client-id`: the caller, as agreed between the partners.
    pub client_id: &'m str,
    /// `target-id`: the callee, as agreed between the partners.
    pub target_id: &'m str,
    /// `api-key` or basic authentication, if any.
    pub credential: Credential<'m>,
}

/// The credential a request carried. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential<'m> {
    /// `api-key`.
    ApiKey(&'m str),
    /// `Authorization: Basic …`, decoded (so owned).
    Basic {
        /// The user.
        username: String,
        /// The password.
        password: String,
    },
    /// No credential header.
    None,
}

impl std::fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            Credential::Basic { .. } => f.write_str("Basic { <redacted> }"),
            Credential::None => f.write_str("None"),
        }
    }
}

/// Reads and checks the AID1 headers.
pub fn headers(map: &HeaderMap) -> Result<Aid1Headers<'_>, Violation> {
    let found = Found::scan(map);
    let cmp_request_id = uuid_header(&found, Read::CmpRequestId, ViolationKind::BadHeader)?;
    let correlation_id = uuid_header(&found, Read::CorrelationId, ViolationKind::BadCorrelationId)?;
    let client_id = id_header(&found, Read::ClientId)?;
    let target_id = id_header(&found, Read::TargetId)?;
    let credential = credential(&found)?;
    Ok(Aid1Headers {
        cmp_request_id,
        correlation_id,
        client_id,
        target_id,
        credential,
    })
}

/// The one value of header `name` as visible ASCII, `None` if absent. Repeated or not
/// visible ASCII is a violation of `kind`.
pub(crate) fn single<'m>(
    map: &'m HeaderMap,
    name: &HeaderName,
    kind: ViolationKind,
) -> Result<Option<&'m str>, Violation> {
    let mut values = map.get_all(name).iter();
    let first = values.next();
    one_value(first, values.next().is_some(), name.as_str(), kind)
}

fn one_value<'m>(
    first: Option<&'m HeaderValue>,
    repeated: bool,
    name: &str,
    kind: ViolationKind,
) -> Result<Option<&'m str>, Violation> {
    let Some(first) = first else {
        return Ok(None);
    };
    if repeated {
        return Err(Violation::new(kind, name, "is repeated"));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| Violation::new(kind, name, "must be visible ASCII"))
}

fn uuid_header(found: &Found, read: Read, kind: ViolationKind) -> Result<Uuid, Violation> {
    let text = found.required(read, kind.clone())?;
    parse_canonical_uuid(text).ok_or_else(|| {
        Violation::new(
            kind,
            read.name(),
            "must be a UUID in the 8-4-4-4-12 hyphenated form",
        )
    })
}

fn id_header<'m>(found: &Found<'m>, read: Read) -> Result<&'m str, Violation> {
    let text = found.required(read, ViolationKind::BadHeader)?;
    if text.is_empty() || text.len() > ID_MAX || !text.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Violation::new(
            ViolationKind::BadHeader,
            read.name(),
            format!("must be 1 to {ID_MAX} characters A-Z, a-z, 0-9"),
        ));
    }
    Ok(text)
}

fn credential<'m>(found: &Found<'m>) -> Result<Credential<'m>, Violation> {
    let bad = |name: &str, reason: &str| Violation::new(ViolationKind::BadCredential, name, reason);
    let api_key = found.single(Read::ApiKey, ViolationKind::BadCredential)?;
    let authorization = found.single(Read::Authorization, ViolationKind::BadCredential)?;
    match (api_key, authorization) {
        (Some(_), Some(_)) => Err(bad(
            "api-key",
            "api-key and Authorization must not both be present",
        )),
        (Some(key), None) => {
            if key.is_empty()
                || key.len() > API_KEY_MAX
                || !key.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(bad("api-key", "must be 1 to 512 characters A-Z, a-z, 0-9"));
            }
            Ok(Credential::ApiKey(key))
        }
        (None, Some(value)) => basic(value).ok_or_else(|| {
            bad(
                "authorization",
                "must be Basic with base64 of a non-empty user, ':' and a non-empty password",
            )
        }),
        (None, None) => Ok(Credential::None),
    }
}

/// `Basic base64(user:password)`, or `None` when it is anything else.
fn basic(value: &str) -> Option<Credential<'static>> {
    if value.len() > AUTHORIZATION_MAX {
        return None;
    }
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (username, password) = text.split_once(':')?;
    if username.is_empty() || password.is_empty() {
        return None;
    }
    Some(Credential::Basic {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RID: &str = "14abc1e2-338f-11e6-ac61-9e71128cae77";
    const CID: &str = "31715660-01ac-4411-8f15-6f7ad4c269be";

    fn base() -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("CMP-request-id", HeaderValue::from_static(RID));
        map.insert("correlation-id", HeaderValue::from_static(CID));
        map.insert("client-id", HeaderValue::from_static("dk3kdwkef1"));
        map.insert("target-id", HeaderValue::from_static("msp42"));
        map
    }

    fn with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut map = base();
        map.insert(name, HeaderValue::from_static(value));
        map
    }

    fn kind_of(map: &HeaderMap) -> ViolationKind {
        headers(map).unwrap_err().kind
    }

    #[test]
    fn the_spec_examples_are_accepted() {
        let map = with("api-key", "1234abcdefghij0123456789");
        let h = headers(&map).unwrap();
        assert_eq!(h.cmp_request_id.to_string(), RID);
        assert_eq!(h.correlation_id.to_string(), CID);
        assert_eq!((h.client_id, h.target_id), ("dk3kdwkef1", "msp42"));
        assert_eq!(h.credential, Credential::ApiKey("1234abcdefghij0123456789"));
        assert_eq!(headers(&base()).unwrap().credential, Credential::None);
    }

    #[test]
    fn missing_headers() {
        for name in ["cmp-request-id", "correlation-id", "client-id", "target-id"] {
            let mut map = base();
            map.remove(name);
            let v = headers(&map).unwrap_err();
            assert_eq!(
                (v.kind, v.field.as_str()),
                (ViolationKind::MissingHeader, name)
            );
        }
    }

    #[test]
    fn malformed_ids() {
        assert_eq!(
            kind_of(&with("cmp-request-id", "14abc1e2")),
            ViolationKind::BadHeader
        );
        assert_eq!(
            kind_of(&with("correlation-id", "31715660")),
            ViolationKind::BadCorrelationId
        );
        assert_eq!(
            kind_of(&with(
                "correlation-id",
                "{31715660-01ac-4411-8f15-6f7ad4c269be}"
            )),
            ViolationKind::BadCorrelationId
        );
        assert!(headers(&with(
            "correlation-id",
            "31715660-01AC-4411-8F15-6F7AD4C269BE"
        ))
        .is_ok());
        for value in ["", "dk3-kdw", "dk3 kdw", "\u{e9}"] {
            let mut map = base();
            map.insert(
                "client-id",
                HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("a_b")),
            );
            assert_eq!(kind_of(&map), ViolationKind::BadHeader, "{value}");
        }
        let mut map = base();
        map.insert(
            "target-id",
            HeaderValue::from_str(&"a".repeat(ID_MAX + 1)).unwrap(),
        );
        assert_eq!(kind_of(&map), ViolationKind::BadHeader);
        let mut map = base();
        map.insert(
            "target-id",
            HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        );
        assert_eq!(kind_of(&map), ViolationKind::BadHeader);
    }

    #[test]
    fn repeated_headers() {
        for (name, kind) in [
            ("cmp-request-id", ViolationKind::BadHeader),
            ("correlation-id", ViolationKind::BadCorrelationId),
            ("client-id", ViolationKind::BadHeader),
            ("target-id", ViolationKind::BadHeader),
        ] {
            let mut map = base();
            let value = map.get(name).cloned().unwrap();
            map.append(name, value);
            assert_eq!(kind_of(&map), kind, "{name}");
        }
        let mut map = with("api-key", "abc");
        map.append("api-key", HeaderValue::from_static("abc"));
        assert_eq!(kind_of(&map), ViolationKind::BadCredential);
    }

    #[test]
    fn basic_authentication() {
        // base64("cmp:s3cr:et") — a password may contain ':'.
        let map = with("authorization", "Basic Y21wOnMzY3I6ZXQ=");
        let h = headers(&map).unwrap();
        assert_eq!(
            h.credential,
            Credential::Basic {
                username: "cmp".to_owned(),
                password: "s3cr:et".to_owned()
            }
        );
        assert!(headers(&with("authorization", "basic Y21wOnMzY3I6ZXQ=")).is_ok());
        for value in [
            "Bearer abc",
            "Basic",
            "Basic !!!",
            "Basic Y21w",     // "cmp": no ':'
            "Basic OnB3",     // ":pw": empty user
            "Basic Y21wOg==", // "cmp:": empty password
            "Basic /w==",     // not UTF-8
        ] {
            let v = headers(&with("authorization", value)).unwrap_err();
            assert_eq!(v.kind, ViolationKind::BadCredential, "{value}");
            assert!(!v.to_string().contains("Y21w"));
        }
    }

    #[test]
    fn credentials_are_never_printed() {
        let mut map = with("api-key", "topsecret123");
        assert!(!format!("{:?}", headers(&map).unwrap()).contains("topsecret123"));
        map.insert("api-key", HeaderValue::from_static("top-secret"));
        let v = headers(&map).unwrap_err();
        assert_eq!(v.kind, ViolationKind::BadCredential);
        assert!(!v.to_string().contains("secret"));
        let basic_map = with("authorization", "Basic Y21wOnMzY3I6ZXQ=");
        let basic = headers(&basic_map).unwrap();
        let printed = format!("{basic:?}");
        assert!(
            !printed.contains("s3cr") && !printed.contains("cmp\""),
            "{printed}"
        );
        map.insert("api-key", HeaderValue::from_static("abc"));
        map.insert(
            "authorization",
            HeaderValue::from_static("Basic Y21wOnMzY3I6ZXQ="),
        );
        assert_eq!(kind_of(&map), ViolationKind::BadCredential);
    }
}

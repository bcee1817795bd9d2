//! The AID1 data elements of chapter 5 and the body members shared by several functions, as
//! checked newtypes: a value of one of these types has passed its rules. Types that carry a
//! secret or personal data ([`AccountIdText`], [`PhoneNumber`], [`ActivationCode`]) have a
//! hand-written `Debug` that does not print it and no `Display`. Parse errors are plain
//! reasons that never quote the input.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use uuid::Uuid;

pub use crate::aid1::activation_code::ActivationCode;
pub use crate::aid1::iccid::Iccid;

/// Longest accepted `{account_id}` path parameter (a JWT; real ones are a few hundred).
pub const ACCOUNT_ID_MAX: usize = 4096;
/// Longest accepted EID (real EIDs have 32 digits).
pub const EID_MAX: usize = 64;

/// Parses a UUID in the canonical hyphenated 8-4-4-4-12 form, either case; refuses the
/// braced, URN and un-hyphenated forms that [`Uuid::try_parse`] would also take. Those forms
/// are 38, 45 and 32 bytes long, so at 36 bytes `uuid` parses exactly this form: hex digits
/// by table, hyphens at 8, 13, 18 and 23. (A shape check of our own before it walked every
/// UUID twice; an AID1 request carries two or three.)
pub fn parse_canonical_uuid(text: &str) -> Option<Uuid> {
    if text.len() != 36 {
        return None;
    }
    Uuid::try_parse_ascii(text.as_bytes()).ok()
}

/// The MSP's federated id for a user (5.3): a UUID. `Display` writes it lower-case
/// hyphenated, whatever case it arrived in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MspToken(pub Uuid);

impl MspToken {
    /// Parses the canonical hyphenated form (any case).
    pub fn parse(text: &str) -> Result<MspToken, String> {
        parse_canonical_uuid(text)
            .map(MspToken)
            .ok_or_else(|| "must be a UUID in the 8-4-4-4-12 hyphenated form".to_owned())
    }

    /// The UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl std::fmt::Display for MspToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

/// An `activationCodeRequestID` (7.7, 7.7.2.1): a UUID chosen by the CMP that Send
/// Activation Code must repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub Uuid);

impl RequestId {
    /// Parses the canonical hyphenated form (any case).
    pub fn parse(text: &str) -> Result<RequestId, String> {
        parse_canonical_uuid(text)
            .map(RequestId)
            .ok_or_else(|| "must be a UUID in the 8-4-4-4-12 hyphenated form".to_owned())
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

/// The `{account_id}` path parameter as text (5.2: `[A-Za-z0-9._-]+`), not yet verified as a
/// JWT (see `crate::account_id`). It is a bearer credential for one onboarding, so its
/// `Debug` is redacted and it has no `Display`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AccountIdText(String);

impl AccountIdText {
    /// Checks the 5.2 character set and a length cap of [`ACCOUNT_ID_MAX`], and refuses the
    /// path dot-segments `.` and `..` (an upstream could resolve them).
    pub fn parse(text: &str) -> Result<AccountIdText, String> {
        if text.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if text.len() > ACCOUNT_ID_MAX {
            return Err(format!("longer than {ACCOUNT_ID_MAX} characters"));
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err("may contain only A-Z, a-z, 0-9, '.', '_' and '-'".to_owned());
        }
        if text == "." || text == ".." {
            return Err("must not be a dot-segment".to_owned());
        }
        Ok(AccountIdText(text.to_owned()))
    }

    /// The text, for verification. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccountIdText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountIdText(<redacted>)")
    }
}

/// An EID: the spec's schema is "hexadecimal string ([A-Za-z0-9])", which is what is
/// checked (non-empty, at most [`EID_MAX`]); an empty `eid` is represented by `None` where it
/// is allowed. Real EIDs are 32 digits with MOD 97-10 check digits: see
/// [`eid_check_digits_ok`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Eid(String);

impl Eid {
    /// Parses a non-empty `[A-Za-z0-9]` string of at most [`EID_MAX`] characters.
    pub fn parse(text: &str) -> Result<Eid, String> {
        if text.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if text.len() > EID_MAX {
            return Err(format!("longer than {EID_MAX} characters"));
        }
        if !text.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("may contain only A-Z, a-z and 0-9".to_owned());
        }
        Ok(Eid(text.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// See [`eid_check_digits_ok`].
    pub fn check_digits_ok(&self) -> Option<bool> {
        eid_check_digits_ok(&self.0)
    }
}

impl std::fmt::Display for Eid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `None` unless `eid` is 32 decimal digits; then whether its value mod 97 is 1 (ISO/IEC
/// 7064 MOD 97-10, SGP.29). The hub accepts a failing EID and counts it.
pub fn eid_check_digits_ok(eid: &str) -> Option<bool> {
    if eid.len() != 32 || !eid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rest = eid
        .bytes()
        .fold(0u32, |acc, b| (acc * 10 + u32::from(b - b'0')) % 97);
    Some(rest == 1)
}

/// The Base64 engine for `phoneNumber` and `iv`: standard alphabet, padding optional.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Checks that `text` is non-empty standard Base64 of at most `max` characters.
fn check_base64(text: &str, max: usize) -> Result<(), String> {
    if text.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if text.len() > max {
        return Err(format!("longer than {max} characters"));
    }
    BASE64
        .decode(text)
        .map(|_| ())
        .map_err(|_| "must be standard Base64 (RFC 4648 section 4)".to_owned())
}

/// Longest accepted `phoneNumber`.
pub const PHONE_NUMBER_MAX: usize = 1024;
/// Longest accepted `iv`.
pub const IV_MAX: usize = 256;

/// The encrypted, Base64-encoded MSISDN of 7.3 (`phoneNumber`). The hub never decrypts it;
/// it is personal data all the same, so `Debug` is redacted and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Checks non-empty standard Base64 of at most [`PHONE_NUMBER_MAX`] characters.
    pub fn parse(text: &str) -> Result<PhoneNumber, String> {
        check_base64(text, PHONE_NUMBER_MAX).map(|()| PhoneNumber(text.to_owned()))
    }

    /// The Base64 text. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhoneNumber(<redacted>)")
    }
}

/// The Base64 initialization vector of the phone number encryption (`iv`, 7.3). Not secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iv(String);

impl Iv {
    /// Checks non-empty standard Base64 of at most [`IV_MAX`] characters.
    pub fn parse(text: &str) -> Result<Iv, String> {
        check_base64(text, IV_MAX).map(|()| Iv(text.to_owned()))
    }

    /// The Base64 text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A `profileType` the spec knows. 7.7: "Currently, there is only the profile type
/// personal".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProfileType {
    /// `personal`.
    Personal,
}

impl ProfileType {
    /// The known type spelled exactly `text` (case-sensitive), if any.
    pub fn from_spec(text: &str) -> Option<ProfileType> {
        match text {
            "personal" => Some(ProfileType::Personal),
            _ => None,
        }
    }

    /// The spelling on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileType::Personal => "personal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_must_be_canonical() {
        let lower = "14abc1e2-338f-11e6-ac61-9e71128cae77";
        let token = MspToken::parse(&lower.to_uppercase()).unwrap();
        assert_eq!(token.to_string(), lower);
        assert!(MspToken::parse("14abc1e2338f11e6ac619e71128cae77").is_err());
        assert!(MspToken::parse("{14abc1e2-338f-11e6-ac61-9e71128cae77}").is_err());
        assert!(MspToken::parse("urn:uuid:14abc1e2-338f-11e6-ac61-9e71128cae77").is_err());
        assert!(MspToken::parse("14abc1e2-338f-11e6-ac61-9e71128cae7g").is_err());
        assert!(MspToken::parse("").is_err());
        assert!(RequestId::parse("14abc1e2-338f-11e6-ac61-9e71128cae77").is_ok());
    }

    /// At 36 bytes the parse takes the canonical form and nothing else, checked against a
    /// reading of its own: every position is tried with a hyphen and with bytes that are or
    /// border a hex digit.
    #[test]
    fn canonical_uuid_parse_takes_only_the_canonical_form() {
        let hyphens = [8, 13, 18, 23];
        let by_hand = |text: &str| {
            let shape = text.bytes().enumerate().all(|(i, b)| {
                if hyphens.contains(&i) {
                    b == b'-'
                } else {
                    b.is_ascii_hexdigit()
                }
            });
            let digits: String = text.chars().filter(|c| *c != '-').collect();
            (shape && text.len() == 36)
                .then(|| u128::from_str_radix(&digits, 16).ok())
                .flatten()
                .map(Uuid::from_u128)
        };
        let base = *b"0123abcd-EF45-6789-aBcD-ef0123456789";
        let trials = b"-/09:@AFGZ`afgz{ ";
        let mut accepted = 0;
        for position in 0..36 {
            for &byte in trials.iter() {
                let mut text = base;
                text[position] = byte;
                let text = std::str::from_utf8(&text).unwrap();
                let parsed = parse_canonical_uuid(text);
                assert_eq!(parsed, by_hand(text), "{text}");
                accepted += usize::from(parsed.is_some());
            }
        }
        assert!(accepted > 36 * 4, "the trials must include good UUIDs");
        let base = std::str::from_utf8(&base).unwrap();
        assert_eq!(
            parse_canonical_uuid(base).map(|u| u.as_u128()),
            Some(0x0123abcd_ef45_6789_abcd_ef0123456789)
        );
        for other_form in [
            format!("{{{base}}}"),
            format!("urn:uuid:{base}"),
            base.replace('-', ""),
            format!("{base}-"),
            "é0123abc-ef45-6789-abcd-ef012345678".to_owned(),
        ] {
            assert_eq!(parse_canonical_uuid(&other_form), None, "{other_form}");
        }
    }

    #[test]
    fn account_id_text() {
        assert!(AccountIdText::parse("eyJh.eyJl-x_y.Zb").is_ok());
        assert!(AccountIdText::parse("").is_err());
        assert!(AccountIdText::parse("a b").is_err());
        assert!(AccountIdText::parse("a%2E").is_err());
        assert!(AccountIdText::parse("..").is_err());
        assert!(AccountIdText::parse(".").is_err());
        assert!(AccountIdText::parse("...").is_ok());
        assert!(AccountIdText::parse(&"a".repeat(ACCOUNT_ID_MAX + 1)).is_err());
        let a = AccountIdText::parse("secret.jwt.text").unwrap();
        assert_eq!(format!("{a:?}"), "AccountIdText(<redacted>)");
        assert_eq!(a.expose(), "secret.jwt.text");
    }

    #[test]
    fn eid_schema_and_check_digits() {
        assert!(Eid::parse("89882119900000000000000000001654").is_ok());
        assert!(Eid::parse("abcDEF0123").is_ok());
        assert!(Eid::parse("").is_err());
        assert!(Eid::parse("8988-2119").is_err());
        assert!(Eid::parse(&"1".repeat(EID_MAX + 1)).is_err());
        assert_eq!(
            eid_check_digits_ok("89882119900000000000000000001654"),
            Some(true)
        );
        assert_eq!(
            eid_check_digits_ok("89882119900000000000000000001655"),
            Some(false)
        );
        assert_eq!(eid_check_digits_ok("8988211990000000000000000000165"), None);
        assert_eq!(
            eid_check_digits_ok("8988211990000000000000000000165A"),
            None
        );
        assert_eq!(eid_check_digits_ok(""), None);
    }

    #[test]
    fn base64_members() {
        assert!(PhoneNumber::parse("b3YsYkQqi5xw1xRLsDxcfaRC1PANhnhGEICHXNvj").is_ok());
        assert!(Iv::parse("N1RnMnHhudFLgi1l").is_ok());
        assert!(Iv::parse("YWJj").is_ok());
        assert!(Iv::parse("YWI=").is_ok());
        assert!(Iv::parse("YWI").is_ok());
        assert!(Iv::parse("").is_err());
        assert!(Iv::parse("a-_b").is_err());
        assert!(Iv::parse("not base64!").is_err());
        assert!(Iv::parse(&"A".repeat(IV_MAX + 4)).is_err());
        let p = PhoneNumber::parse("YWJj").unwrap();
        assert_eq!(format!("{p:?}"), "PhoneNumber(<redacted>)");
    }

    #[test]
    fn profile_types() {
        assert_eq!(
            ProfileType::from_spec("personal"),
            Some(ProfileType::Personal)
        );
        assert_eq!(ProfileType::from_spec("Personal"), None);
        assert_eq!(ProfileType::Personal.as_str(), "personal");
    }
}

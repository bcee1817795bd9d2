//! 7.7 Request Activation Code, `POST /v1/activation-code-requests/{msp_token}`,
//! CMP → MSP: the CMP asks for an activation code for a new vehicle. The MSP answers 200
//! with the code (synchronous mode) or 201 and later calls Send Activation Code
//! (asynchronous mode).
//!
//! Request body rules:
//!
//! * `profileType`: required, 1–20 printable ASCII characters (`[ASCII]{20}` read as "at
//!   most 20"); anything but `personal` is [`ViolationKind::ProfileTypeUnknown`] (code 50).
//! * `deviceType`: required, 1–20 printable ASCII characters.
//! * `imei`: `NN-NNNNNN-NNNNNN-NN` or `""`; the spec says it is "empty but present", but an
//!   absent (or `null`) `imei` carries the same nothing and is accepted as empty.
//! * `eid`: `[A-Za-z0-9]*` (the schema), at most 64; absent, `null` and `""` are "no EID".
//!   A 32-digit EID failing MOD 97-10 is accepted; see [`crate::aid1::eid_check_digits_ok`].
//! * `activationCodeRequestID`: required UUID; malformed is [`ViolationKind::BadRequestId`].
//! * `replaceIccid`: optional. 4.3.1 says its content or existence "SHALL NOT lead to any
//!   API errors", so it is never a violation: a value that is not an ICCID is reported as
//!   [`ReplaceIccid::Unusable`] for the caller to count, and forwarded as it is.
//!
//! Answer rules ([`parse_answer`]): a 200 must carry `iccid`, a valid `activationCode`,
//! `profileType` (`personal`) and `swappedIccid` as an ICCID, `null` or absent, and becomes
//! an [`IssuedActivationCode`]; a 201's body is ignored.
//!
//! [`ViolationKind::ProfileTypeUnknown`]: crate::aid1::ViolationKind::ProfileTypeUnknown
//! [`ViolationKind::BadRequestId`]: crate::aid1::ViolationKind::BadRequestId

use crate::aid1::fields;
use crate::aid1::json::{parse_object, Json, Obj};
use crate::aid1::request::Rules;
use crate::aid1::types::{ActivationCode, Eid, Iccid, ProfileType, RequestId};
use crate::aid1::violation::{Breach, Violation};

/// `replaceIccid` as it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplaceIccid {
    /// Absent, `null` or `""`.
    Absent,
    /// A valid ICCID.
    Given(Iccid),
    /// Present but not an ICCID (wrong type, wrong length …): not an error (4.3.1).
    Unusable,
}

/// A validated Request Activation Code body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestActivationCode {
    /// The requested profile type.
    pub profile_type: ProfileType,
    /// The type of eSIM device in the vehicle, e.g. `tcu`.
    pub device_type: String,
    /// `NN-NNNNNN-NNNNNN-NN`, or `None` for empty.
    pub imei: Option<String>,
    /// The eUICC, or `None` for empty.
    pub eid: Option<Eid>,
    /// The id Send Activation Code must repeat.
    pub activation_code_request_id: RequestId,
    /// The CMP's candidate profile for a swap.
    pub replace_iccid: ReplaceIccid,
}

/// An activation code as the MSP issues it: in a 200 answer to Request Activation Code, or
/// in Send Activation Code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedActivationCode {
    /// The new profile.
    pub iccid: Iccid,
    /// The code (redacted in `Debug`).
    pub activation_code: ActivationCode,
    /// Its profile type.
    pub profile_type: ProfileType,
    /// The profile the MSP retired to make room, if it swapped one (the CMP deletes it).
    pub swapped_iccid: Option<Iccid>,
}

/// Parses a Request Activation Code body.
pub fn parse(body: &[u8], rules: &Rules) -> Result<RequestActivationCode, Violation> {
    let map = parse_object(body)?;
    let obj = Obj::root(&map);
    Ok(RequestActivationCode {
        profile_type: fields::profile_type(&obj, "profileType")?,
        device_type: fields::short_ascii(&obj, "deviceType")?.to_owned(),
        imei: imei(&obj, "imei")?,
        eid: fields::eid_or_empty(&obj, "eid")?,
        activation_code_request_id: fields::request_id(&obj, "activationCodeRequestID")?,
        replace_iccid: match obj.get("replaceIccid") {
            None => ReplaceIccid::Absent,
            Some(Json::String(s)) if s.is_empty() => ReplaceIccid::Absent,
            Some(Json::String(s)) => Iccid::parse(s, rules.strict_iccid)
                .map_or(ReplaceIccid::Unusable, ReplaceIccid::Given),
            Some(_) => ReplaceIccid::Unusable,
        },
    })
}

/// Reads the members of an issued activation code from `obj`.
pub(crate) fn issued(obj: &Obj<'_>, rules: &Rules) -> Result<IssuedActivationCode, Violation> {
    Ok(IssuedActivationCode {
        iccid: fields::iccid(obj, "iccid", rules)?,
        activation_code: fields::activation_code(obj, "activationCode")?,
        profile_type: fields::profile_type(obj, "profileType")?,
        swapped_iccid: fields::iccid_or_null(obj, "swappedIccid", rules)?,
    })
}

/// Checks the body of a 200 (synchronous) answer to Request Activation Code. (A 201's body
/// is ignored; [`crate::aid1::answer()`] does not call this for it.)
pub fn parse_answer(body: &[u8], rules: &Rules) -> Result<IssuedActivationCode, Breach> {
    parse_object(body)
        .and_then(|map| issued(&Obj::root(&map), rules))
        .map_err(|v| Breach::new(format!("200 answer to Request Activation Code: {v}")))
}

/// `imei`: `NN-NNNNNN-NNNNNN-NN`, `""`, `null` or absent (the last three are `None`).
fn imei(obj: &Obj<'_>, name: &str) -> Result<Option<String>, Violation> {
    let text = match obj.opt_str(name)? {
        None | Some("") => return Ok(None),
        Some(text) => text,
    };
    let shape_ok = text.len() == 19
        && text.bytes().enumerate().all(|(i, b)| match i {
            2 | 9 | 16 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if shape_ok {
        Ok(Some(text.to_owned()))
    } else {
        Err(Violation::syntax(
            obj.path_of(name),
            "must be NN-NNNNNN-NNNNNN-NN (digits) or empty",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aid1::violation::ViolationKind;

    const RID: &str = "14abc1e2-338f-11e6-ac61-9e71128cae77";

    fn body(extra: &str) -> Vec<u8> {
        format!(
            r#"{{"profileType":"personal","deviceType":"tcu","imei":"","eid":"","activationCodeRequestID":"{RID}"{extra}}}"#
        )
        .into_bytes()
    }

    /// The example body with member `name` set to the JSON `value`, or removed when `value`
    /// is not JSON (`"absent"`).
    fn with(name: &str, value: &str) -> Vec<u8> {
        let mut map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&body("")).unwrap();
        match serde_json::from_str::<serde_json::Value>(value) {
            Ok(v) => map.insert(name.to_owned(), v),
            Err(_) => map.remove(name),
        };
        serde_json::to_vec(&map).unwrap()
    }

    #[test]
    fn the_spec_example_is_accepted() {
        let parsed = parse(
            &body(r#","replaceIccid":"98341201501601380129""#),
            &Rules::default(),
        )
        .unwrap();
        assert_eq!(parsed.profile_type, ProfileType::Personal);
        assert_eq!(parsed.device_type, "tcu");
        assert_eq!((parsed.imei, parsed.eid), (None, None));
        assert_eq!(parsed.activation_code_request_id.to_string(), RID);
        assert!(matches!(parsed.replace_iccid, ReplaceIccid::Given(_)));
    }

    #[test]
    fn imei_and_eid_forms() {
        let parsed = parse(&with("imei", r#""35-209900-176148-23""#), &Rules::default()).unwrap();
        assert_eq!(parsed.imei.as_deref(), Some("35-209900-176148-23"));
        assert!(parse(&with("imei", "absent"), &Rules::default()).is_ok());
        let parsed = parse(
            &with("eid", r#""89882119900000000000000000001655""#),
            &Rules::default(),
        )
        .unwrap();
        assert_eq!(parsed.eid.and_then(|e| e.check_digits_ok()), Some(false));
        assert!(parse(&with("eid", "absent"), &Rules::default()).is_ok());
    }

    #[test]
    fn replace_iccid_never_fails_the_request() {
        for (value, expect_unusable) in [
            ("null", false),
            (r#""""#, false),
            ("absent", false),
            (r#""8944500805172032953""#, false),
            (r#""not an iccid""#, true),
            ("12345", true),
            (r#"{"iccid":"98341201501601380129"}"#, true),
        ] {
            let parsed = parse(&with("replaceIccid", value), &Rules::default()).unwrap();
            assert_eq!(
                parsed.replace_iccid == ReplaceIccid::Unusable,
                expect_unusable,
                "{value}"
            );
        }
        let strict = parse(
            &with("replaceIccid", r#""8944500805172032953""#),
            &Rules { strict_iccid: true },
        );
        assert_eq!(strict.unwrap().replace_iccid, ReplaceIccid::Unusable);
    }

    #[test]
    fn violations() {
        let cases = [
            (
                "profileType",
                r#""business""#,
                ViolationKind::ProfileTypeUnknown,
            ),
            (
                "profileType",
                r#""Personal""#,
                ViolationKind::ProfileTypeUnknown,
            ),
            (
                "profileType",
                r#""personal-profile-type-x""#,
                ViolationKind::Syntax,
            ),
            ("profileType", r#""""#, ViolationKind::Syntax),
            ("profileType", "absent", ViolationKind::Syntax),
            ("profileType", "null", ViolationKind::EmptyBody),
            ("deviceType", r#""tcu\n""#, ViolationKind::Syntax),
            ("deviceType", r#""t\u00e9""#, ViolationKind::Syntax),
            (
                "deviceType",
                r#""abcdefghijklmnopqrstu""#,
                ViolationKind::Syntax,
            ),
            ("deviceType", "absent", ViolationKind::Syntax),
            ("imei", r#""352099001761482""#, ViolationKind::Syntax),
            ("imei", r#""35-209900-176148-2X""#, ViolationKind::Syntax),
            ("imei", "0", ViolationKind::Syntax),
            ("eid", r#""8988-2119""#, ViolationKind::Syntax),
            (
                "activationCodeRequestID",
                r#""14abc1e2""#,
                ViolationKind::BadRequestId,
            ),
            ("activationCodeRequestID", "absent", ViolationKind::Syntax),
            ("activationCodeRequestID", "null", ViolationKind::EmptyBody),
        ];
        for (name, value, kind) in cases {
            let v = parse(&with(name, value), &Rules::default()).unwrap_err();
            assert_eq!((v.kind, v.field.as_str()), (kind, name), "{name}={value}");
        }
    }

    #[test]
    fn sync_answers_are_checked() {
        let ok = br#"{"iccid":"98341201501601380129","activationCode":"1$VR-01-43-CUST.SC.MY-ESIM.COM$DEF30A27E3CEFD34FA24B4A38D9681A5","profileType":"personal","swappedIccid":null}"#;
        let issued = parse_answer(ok, &Rules::default()).unwrap();
        assert_eq!(issued.swapped_iccid, None);
        assert_eq!(
            issued.activation_code.smdp_address(),
            "VR-01-43-CUST.SC.MY-ESIM.COM"
        );
        let swapped = br#"{"iccid":"98341201501601380129","activationCode":"1$A.B$C","profileType":"personal","swappedIccid":"9834120150160138012"}"#;
        assert!(parse_answer(swapped, &Rules::default()).is_ok());
        assert!(parse_answer(swapped, &Rules { strict_iccid: true }).is_err());
    }

    #[test]
    fn bad_sync_answers_are_breaches_without_secrets() {
        for body in [
            &br#"{"iccid":"98341201501601380129","activationCode":"1$SECRET$X","profileType":"personal"}"#[..],
            br#"{"activationCode":"1$A.B$SECRET","profileType":"personal"}"#,
            br#"{"iccid":"98341201501601380129","activationCode":"1$A.B$SECRET"}"#,
            br#"{"iccid":"98341201501601380129","activationCode":"1$A.B$SECRET","profileType":"personal","swappedIccid":""}"#,
            b"",
        ] {
            let breach = parse_answer(body, &Rules::default()).unwrap_err();
            assert!(!breach.reason.contains("SECRET"), "{breach}");
            assert!(breach.reason.starts_with("200 answer to Request Activation Code"));
        }
    }
}

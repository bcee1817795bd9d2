//! 7.5 Send Profile Information, `POST /cesim/msp/v1/users/{msp_token}/profiles`,
//! MSP → CMP: the new status of one or more of the user's profiles (`invalid` makes the CMP
//! delete the profile). Answer: 200, no body defined (any body is ignored).
//!
//! Body rules: `profiles` is a required, non-empty array of at most [`PROFILES_MAX`]
//! objects, each with a required `iccid` (see [`Iccid`]), a required `status`
//! (`invalid` | `valid` | `suspended`) and an optional `reason` (string, at most
//! [`REASON_MAX`] characters). The same ICCID twice in one request is refused (two statuses
//! for one profile would be ambiguous).

use crate::aid1::fields;
use crate::aid1::json::{parse_object, Obj};
use crate::aid1::request::Rules;
use crate::aid1::types::Iccid;
use crate::aid1::violation::Violation;
use std::collections::HashSet;

/// Most profiles accepted in one request (the spec gives no limit).
pub const PROFILES_MAX: usize = 1000;
/// Longest accepted `reason` (the spec gives none; "a short description").
pub const REASON_MAX: usize = 1024;

/// A profile status the MSP reports (7.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProfileInformationStatus {
    /// Unusable for good: the CMP deletes the profile.
    Invalid,
    /// Usable again after a suspension.
    Valid,
    /// Temporarily blocked.
    Suspended,
}

impl ProfileInformationStatus {
    /// The spelling on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileInformationStatus::Invalid => "invalid",
            ProfileInformationStatus::Valid => "valid",
            ProfileInformationStatus::Suspended => "suspended",
        }
    }
}

const STATUSES: &[(&str, ProfileInformationStatus)] = &[
    ("invalid", ProfileInformationStatus::Invalid),
    ("valid", ProfileInformationStatus::Valid),
    ("suspended", ProfileInformationStatus::Suspended),
];

/// One entry of `profiles`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileInformation {
    /// The profile.
    pub iccid: Iccid,
    /// Its new status.
    pub status: ProfileInformationStatus,
    /// Why, for customer care.
    pub reason: Option<String>,
}

/// A validated Send Profile Information body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendProfileInformation {
    /// At least one profile, each ICCID once.
    pub profiles: Vec<ProfileInformation>,
}

/// Parses a Send Profile Information body.
pub fn parse(body: &[u8], rules: &Rules) -> Result<SendProfileInformation, Violation> {
    let map = parse_object(body)?;
    let obj = Obj::root(&map);
    let items = obj.array("profiles", PROFILES_MAX)?;
    let mut seen = HashSet::with_capacity(items.len());
    let mut profiles = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let entry = obj.entry("profiles", index, item)?;
        let iccid = fields::iccid(&entry, "iccid", rules)?;
        if !seen.insert(iccid.clone()) {
            return Err(Violation::syntax(
                entry.path_of("iccid"),
                "repeats an ICCID listed before",
            ));
        }
        profiles.push(ProfileInformation {
            iccid,
            status: fields::one_of(&entry, "status", STATUSES)?,
            reason: fields::opt_text(&entry, "reason", REASON_MAX)?,
        });
    }
    Ok(SendProfileInformation { profiles })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aid1::violation::ViolationKind;

    /// 7.5's example, with the comma it forgot after `"invalid"`.
    const SPEC_EXAMPLE: &[u8] = br#"{"profiles":[{
        "iccid": "8944500805172032953", "status": "suspended", "reason": "contract was suspended" }, {
        "iccid": "8944500805172032954", "status": "invalid", "reason": "profile defect" }]}"#;

    #[test]
    fn the_spec_example_is_accepted_by_default() {
        let parsed = parse(SPEC_EXAMPLE, &Rules::default()).unwrap();
        assert_eq!(parsed.profiles.len(), 2);
        assert_eq!(
            parsed.profiles[0].status,
            ProfileInformationStatus::Suspended
        );
        assert_eq!(parsed.profiles[1].iccid.as_str(), "8944500805172032954");
        assert_eq!(parsed.profiles[1].reason.as_deref(), Some("profile defect"));
    }

    #[test]
    fn the_spec_example_is_refused_in_strict_mode() {
        let v = parse(SPEC_EXAMPLE, &Rules { strict_iccid: true }).unwrap_err();
        assert_eq!(
            (v.kind, v.field.as_str()),
            (ViolationKind::Syntax, "profiles[0].iccid")
        );
    }

    #[test]
    fn reason_is_optional() {
        let body = br#"{"profiles":[{"iccid":"98341201501601380129","status":"valid"}]}"#;
        assert_eq!(
            parse(body, &Rules::default()).unwrap().profiles[0].reason,
            None
        );
    }

    #[test]
    fn violations_name_the_json_path() {
        let cases: [(&[u8], ViolationKind, &str); 10] = [
            (br#"{}"#, ViolationKind::Syntax, "profiles"),
            (br#"{"profiles":null}"#, ViolationKind::EmptyBody, "profiles"),
            (br#"{"profiles":[]}"#, ViolationKind::Syntax, "profiles"),
            (br#"{"profiles":{}}"#, ViolationKind::Syntax, "profiles"),
            (br#"{"profiles":[7]}"#, ViolationKind::Syntax, "profiles[0]"),
            (
                br#"{"profiles":[{"iccid":"98341201501601380129","status":"valid"},{"iccid":"98341201501601380128","status":"deleted"}]}"#,
                ViolationKind::Syntax,
                "profiles[1].status",
            ),
            (
                br#"{"profiles":[{"iccid":"98341201501601380129","status":null}]}"#,
                ViolationKind::EmptyBody,
                "profiles[0].status",
            ),
            (
                br#"{"profiles":[{"iccid":"9834","status":"valid"}]}"#,
                ViolationKind::Syntax,
                "profiles[0].iccid",
            ),
            (
                br#"{"profiles":[{"iccid":"98341201501601380129","status":"valid","reason":1}]}"#,
                ViolationKind::Syntax,
                "profiles[0].reason",
            ),
            (
                br#"{"profiles":[{"iccid":"98341201501601380129","status":"valid"},{"iccid":"98341201501601380129F","status":"invalid"}]}"#,
                ViolationKind::Syntax,
                "profiles[1].iccid",
            ),
        ];
        for (body, kind, field) in cases {
            let v = parse(body, &Rules::default()).unwrap_err();
            assert_eq!((v.kind.clone(), v.field.as_str()), (kind, field), "{v}");
        }
    }

    #[test]
    fn the_list_is_capped() {
        let entry = r#"{"iccid":"98341201501601380129","status":"valid"}"#;
        let body = format!(
            r#"{{"profiles":[{}]}}"#,
            vec![entry; PROFILES_MAX + 1].join(",")
        );
        let v = parse(body.as_bytes(), &Rules::default()).unwrap_err();
        assert_eq!(v.field, "profiles");
    }

    #[test]
    fn spellings_round_trip() {
        for (text, value) in STATUSES {
            assert_eq!(value.as_str(), *text);
        }
    }
}

//! 7.8 Send CSIM Status, `POST /v1/statuses/{msp_token}`, CMP → MSP: a profile's new state
//! in the vehicle (deleted, enabled, …), as pre-arranged between the two. Answer: 201, no
//! body (any body is ignored).
//!
//! Body rules: `iccid` required (see [`Iccid`]); `eid` `[A-Za-z0-9]*` (at most 64; absent,
//! `null` and `""` are "no EID"; check digits are reported, not enforced); `status` required,
//! one of `deleted` | `enabled` | `disabled` | `installed` | `installation_failed`.

use crate::aid1::fields;
use crate::aid1::json::{parse_object, Obj};
use crate::aid1::request::Rules;
use crate::aid1::types::{Eid, Iccid};
use crate::aid1::violation::Violation;

/// A profile state the CMP reports (7.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CsimStatus {
    /// `deleted`.
    Deleted,
    /// `enabled`.
    Enabled,
    /// `disabled`.
    Disabled,
    /// `installed`.
    Installed,
    /// `installation_failed`.
    InstallationFailed,
}

impl CsimStatus {
    /// The spelling on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            CsimStatus::Deleted => "deleted",
            CsimStatus::Enabled => "enabled",
            CsimStatus::Disabled => "disabled",
            CsimStatus::Installed => "installed",
            CsimStatus::InstallationFailed => "installation_failed",
        }
    }
}

const STATUSES: &[(&str, CsimStatus)] = &[
    ("deleted", CsimStatus::Deleted),
    ("enabled", CsimStatus::Enabled),
    ("disabled", CsimStatus::Disabled),
    ("installed", CsimStatus::Installed),
    ("installation_failed", CsimStatus::InstallationFailed),
];

/// A validated Send CSIM Status body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendCsimStatus {
    /// The profile.
    pub iccid: Iccid,
    /// The eUICC it is on, if the CMP said.
    pub eid: Option<Eid>,
    /// Its new state.
    pub status: CsimStatus,
}

/// Parses a Send CSIM Status body.
pub fn parse(body: &[u8], rules: &Rules) -> Result<SendCsimStatus, Violation> {
    let map = parse_object(body)?;
    let obj = Obj::root(&map);
    Ok(SendCsimStatus {
        iccid: fields::iccid(&obj, "iccid", rules)?,
        eid: fields::eid_or_empty(&obj, "eid")?,
        status: fields::one_of(&obj, "status", STATUSES)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aid1::violation::ViolationKind;

    #[test]
    fn the_spec_example_is_accepted() {
        let parsed = parse(
            br#"{"iccid":"98341201501601380129","eid":"","status":"deleted"}"#,
            &Rules::default(),
        )
        .unwrap();
        assert_eq!(parsed.status, CsimStatus::Deleted);
        assert_eq!(parsed.eid, None);
    }

    #[test]
    fn every_status_and_an_eid() {
        for (text, status) in STATUSES {
            let body = format!(
                r#"{{"iccid":"8944500805172032953","eid":"89882119900000000000000000001654","status":"{text}"}}"#
            );
            let parsed = parse(body.as_bytes(), &Rules::default()).unwrap();
            assert_eq!(parsed.status, *status);
            assert_eq!(parsed.eid.and_then(|e| e.check_digits_ok()), Some(true));
        }
    }

    #[test]
    fn violations() {
        let cases: [(&[u8], ViolationKind, &str); 7] = [
            (
                br#"{"eid":"","status":"deleted"}"#,
                ViolationKind::Syntax,
                "iccid",
            ),
            (
                br#"{"iccid":null,"status":"deleted"}"#,
                ViolationKind::EmptyBody,
                "iccid",
            ),
            (
                br#"{"iccid":"98341201501601380129"}"#,
                ViolationKind::Syntax,
                "status",
            ),
            (
                br#"{"iccid":"98341201501601380129","status":"Deleted"}"#,
                ViolationKind::Syntax,
                "status",
            ),
            (
                br#"{"iccid":"98341201501601380129","status":"suspended"}"#,
                ViolationKind::Syntax,
                "status",
            ),
            (
                br#"{"iccid":"98341201501601380129","eid":"89-88","status":"deleted"}"#,
                ViolationKind::Syntax,
                "eid",
            ),
            (
                br#"{"iccid":98341201501601380129,"status":"deleted"}"#,
                ViolationKind::Syntax,
                "iccid",
            ),
        ];
        for (body, kind, field) in cases {
            let v = parse(body, &Rules::default()).unwrap_err();
            assert_eq!((v.kind.clone(), v.field.as_str()), (kind, field), "{v}");
        }
        let strict = parse(
            br#"{"iccid":"8944500805172032953","status":"deleted"}"#,
            &Rules { strict_iccid: true },
        );
        assert_eq!(strict.unwrap_err().field, "iccid");
    }

    #[test]
    fn spellings_round_trip() {
        for (text, value) in STATUSES {
            assert_eq!(value.as_str(), *text);
        }
    }
}

//! 7.10 Request Profile Status, `GET /v1/profiles/status/{msp_token}[?iccid={iccid}]`,
//! CMP → MSP: the MSP's view of the user's profiles that are not deleted, for
//! synchronisation in support cases; the optional query narrows it to one ICCID (see
//! [`crate::aid1::route()`] for the query rules).
//!
//! Request body rules: none is defined, so the request must not carry one.
//!
//! Answer rules ([`parse_answer`]): a 200 must carry `profiles`, an array (possibly empty:
//! a user may have no profile left; at most [`PROFILES_MAX`] entries) of objects with an
//! `iccid` and a `status` of `enabled` | `disabled` | `installed` | `prepared` (these are
//! AID.02's states, not SGP.22's). The spec's own example ends in `}],}`, which is not JSON;
//! answers must be JSON.

use crate::aid1::fields;
use crate::aid1::json::{parse_object, Obj};
use crate::aid1::request::Rules;
use crate::aid1::types::Iccid;
use crate::aid1::violation::{Breach, Violation};

/// Most profiles accepted in one answer (the spec gives no limit).
pub const PROFILES_MAX: usize = 1000;

/// A profile state in the MSP's answer (7.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProfileState {
    /// Installed and enabled.
    Enabled,
    /// Installed and disabled.
    Disabled,
    /// Installed; enablement unknown.
    Installed,
    /// Assigned to the user but not downloaded yet.
    Prepared,
}

impl ProfileState {
    /// The spelling on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileState::Enabled => "enabled",
            ProfileState::Disabled => "disabled",
            ProfileState::Installed => "installed",
            ProfileState::Prepared => "prepared",
        }
    }
}

const STATES: &[(&str, ProfileState)] = &[
    ("enabled", ProfileState::Enabled),
    ("disabled", ProfileState::Disabled),
    ("installed", ProfileState::Installed),
    ("prepared", ProfileState::Prepared),
];

/// One entry of the answer's `profiles`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileStatus {
    /// The profile.
    pub iccid: Iccid,
    /// Its state at the MSP.
    pub status: ProfileState,
}

/// Checks that a Request Profile Status carries no body.
pub fn parse(body: &[u8]) -> Result<(), Violation> {
    crate::aid1::request::no_body(body)
}

/// Checks the body of a 200 answer.
pub fn parse_answer(body: &[u8], rules: &Rules) -> Result<Vec<ProfileStatus>, Breach> {
    read_answer(body, rules)
        .map_err(|v| Breach::new(format!("200 answer to Request Profile Status: {v}")))
}

fn read_answer(body: &[u8], rules: &Rules) -> Result<Vec<ProfileStatus>, Violation> {
    let map = parse_object(body)?;
    let obj = Obj::root(&map);
    let items = obj.list("profiles", PROFILES_MAX)?;
    let mut profiles = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let entry = obj.entry("profiles", index, item)?;
        profiles.push(ProfileStatus {
            iccid: fields::iccid(&entry, "iccid", rules)?,
            status: fields::one_of(&entry, "status", STATES)?,
        });
    }
    Ok(profiles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_has_no_body() {
        assert!(parse(b"").is_ok());
        assert!(parse(b"{}").is_err());
    }

    #[test]
    fn the_spec_example_without_its_trailing_comma_is_accepted() {
        let body = br#"{ "profiles": [{ "iccid": "28918293818491828371", "status": "enabled" },
            { "iccid": "10918293818491828371", "status": "disabled" }] }"#;
        let answer = parse_answer(body, &Rules { strict_iccid: true }).unwrap();
        assert_eq!(answer.len(), 2);
        assert_eq!(answer[1].status, ProfileState::Disabled);
        let as_printed =
            br#"{ "profiles": [{ "iccid": "28918293818491828371", "status": "enabled" }], }"#;
        assert!(parse_answer(as_printed, &Rules::default()).is_err());
    }

    #[test]
    fn every_state_and_an_empty_list() {
        for (text, state) in STATES {
            let body =
                format!(r#"{{"profiles":[{{"iccid":"8944500805172032953","status":"{text}"}}]}}"#);
            let answer = parse_answer(body.as_bytes(), &Rules::default()).unwrap();
            assert_eq!(answer[0].status, *state);
        }
        assert!(parse_answer(br#"{"profiles":[]}"#, &Rules::default()).is_ok());
    }

    #[test]
    fn breaches_name_the_path() {
        for (body, path) in [
            (&b""[..], "body"),
            (b"{}", "profiles"),
            (br#"{"profiles":null}"#, "profiles"),
            (
                br#"{"profiles":[{"iccid":"8944500805172032953","status":"deleted"}]}"#,
                "profiles[0].status",
            ),
            (
                br#"{"profiles":[{"iccid":"89","status":"enabled"}]}"#,
                "profiles[0].iccid",
            ),
            (br#"{"profiles":["x"]}"#, "profiles[0]"),
        ] {
            let breach = parse_answer(body, &Rules::default()).unwrap_err();
            assert!(breach.reason.contains(path), "{breach}");
        }
    }

    #[test]
    fn spellings_round_trip() {
        for (text, value) in STATES {
            assert_eq!(value.as_str(), *text);
        }
    }
}

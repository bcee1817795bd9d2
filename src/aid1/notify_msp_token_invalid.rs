//! 7.4 Notify MSP Token Invalid, `POST /cesim/msp/v1/users/{msp_token}/invalidate`,
//! MSP → CMP: the user's subscription ended or the user unlinked the accounts; the token may
//! no longer be used to request activation codes. Answer: 204, no body (any body is
//! ignored).
//!
//! Body rules: the body is optional. An empty (or whitespace) body is accepted; otherwise it
//! must be a JSON object whose only known member, `reason`, is an optional string of at most
//! [`REASON_MAX`] characters (`null` is absent).

use crate::aid1::fields;
use crate::aid1::json::{is_blank, parse_object, Obj};
use crate::aid1::violation::Violation;

/// Longest accepted `reason` (the spec gives none; "a short description").
pub const REASON_MAX: usize = 1024;

/// A validated Notify MSP Token Invalid body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotifyMspTokenInvalid {
    /// Why the token is invalid, for customer care.
    pub reason: Option<String>,
}

/// Parses a Notify MSP Token Invalid body (which may be empty).
pub fn parse(body: &[u8]) -> Result<NotifyMspTokenInvalid, Violation> {
    if is_blank(body) {
        return Ok(NotifyMspTokenInvalid::default());
    }
    let map = parse_object(body)?;
    let obj = Obj::root(&map);
    Ok(NotifyMspTokenInvalid {
        reason: fields::opt_text(&obj, "reason", REASON_MAX)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aid1::violation::ViolationKind;

    #[test]
    fn the_body_is_optional() {
        assert_eq!(parse(b"").unwrap(), NotifyMspTokenInvalid::default());
        assert_eq!(parse(b" \n").unwrap(), NotifyMspTokenInvalid::default());
        assert_eq!(parse(b"{}").unwrap(), NotifyMspTokenInvalid::default());
        assert_eq!(
            parse(br#"{"reason":null}"#).unwrap(),
            NotifyMspTokenInvalid::default()
        );
    }

    #[test]
    fn the_spec_example_is_accepted() {
        let parsed = parse(br#"{"reason":"user subscription ended"}"#).unwrap();
        assert_eq!(parsed.reason.as_deref(), Some("user subscription ended"));
    }

    #[test]
    fn bad_reasons_are_syntax() {
        for body in [
            br#"{"reason":42}"#.to_vec(),
            format!(r#"{{"reason":"{}"}}"#, "r".repeat(REASON_MAX + 1)).into_bytes(),
        ] {
            let v = parse(&body).unwrap_err();
            assert_eq!(
                (v.kind, v.field.as_str()),
                (ViolationKind::Syntax, "reason")
            );
        }
        assert_eq!(parse(b"[]").unwrap_err().kind, ViolationKind::Syntax);
        assert_eq!(parse(b"reason").unwrap_err().kind, ViolationKind::Syntax);
    }
}

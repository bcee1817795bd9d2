//! 7.7.2.1 Send Activation Code, `POST /cesim/msp/v1/activation-codes/{msp_token}`,
//! MSP → CMP: the asynchronous delivery of the activation code (or of the reason there is
//! none) that a Request Activation Code answered with 201 promised. Answer: 200, no body
//! defined (any body is ignored).
//!
//! Body rules:
//!
//! * `activationCodeRequestID` is always required (the CMP matches it to its request; a
//!   malformed one is [`ViolationKind::BadRequestId`]).
//! * Either an activation code or an error, never both:
//!   * `error` set (a non-empty string of at most 512 characters, the figure 7.3 gives for
//!     its `error`): `activationCode` must be absent, `null` or `""`; `iccid`, `profileType`
//!     and `swappedIccid` are optional but checked when present.
//!   * `error` absent, `null` or `""`: `iccid`, `activationCode` (SGP.22 grammar, else
//!     [`ViolationKind::ActivationCodeFormat`]) and `profileType` (`personal`) are required;
//!     `swappedIccid` is an ICCID, `null` or absent (`""` is refused: the CMP deletes the
//!     profile it names).
//!
//! [`ViolationKind::BadRequestId`]: crate::aid1::ViolationKind::BadRequestId
//! [`ViolationKind::ActivationCodeFormat`]: crate::aid1::ViolationKind::ActivationCodeFormat

use crate::aid1::fields;
use crate::aid1::json::{parse_object, Obj};
use crate::aid1::request::Rules;
use crate::aid1::request_activation_code::{issued, IssuedActivationCode};
use crate::aid1::types::RequestId;
use crate::aid1::violation::Violation;

/// Longest accepted `error` (7.3's figure, applied here too).
pub const ERROR_MAX: usize = 512;

/// A validated Send Activation Code body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendActivationCode {
    /// The `activationCodeRequestID` of the Request Activation Code this answers.
    pub activation_code_request_id: RequestId,
    /// The code, or why there is none.
    pub outcome: ActivationCodeOutcome,
}

/// What the MSP delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActivationCodeOutcome {
    /// An activation code (redacted in `Debug`).
    Issued(IssuedActivationCode),
    /// No code could be made.
    Failed {
        /// Why, e.g. `1000:Customer not eligible`.
        error: String,
    },
}

/// Parses a Send Activation Code body.
pub fn parse(body: &[u8], rules: &Rules) -> Result<SendActivationCode, Violation> {
    let map = parse_object(body)?;
    let obj = Obj::root(&map);
    let activation_code_request_id = fields::request_id(&obj, "activationCodeRequestID")?;
    let outcome = match fields::opt_error(&obj, "error", ERROR_MAX)? {
        Some(error) => {
            if !matches!(obj.opt_str("activationCode"), Ok(None) | Ok(Some(""))) {
                return Err(Violation::syntax(
                    "activationCode",
                    "must be absent when error is set",
                ));
            }
            if obj.get("iccid").is_some() {
                fields::iccid(&obj, "iccid", rules)?;
            }
            if obj.get("profileType").is_some() {
                fields::profile_type(&obj, "profileType")?;
            }
            fields::iccid_or_null(&obj, "swappedIccid", rules)?;
            ActivationCodeOutcome::Failed { error }
        }
        None => ActivationCodeOutcome::Issued(issued(&obj, rules)?),
    };
    Ok(SendActivationCode {
        activation_code_request_id,
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aid1::violation::ViolationKind;

    const RID: &str = r#""activationCodeRequestID":"14abc1e2-338f-11e6-ac61-9e71128cae77""#;
    const CODE: &str = "1$VR-01-43-CUST.SC.MY-ESIM.COM$DEF30A27E3CEFD34FA24B4A38D9681A5";

    fn body(members: &str) -> Vec<u8> {
        format!("{{{RID}{members}}}").into_bytes()
    }

    #[test]
    fn the_spec_example_is_accepted() {
        let parsed = parse(
            &body(&format!(
                r#","iccid":"98341201501601380129","activationCode":"{CODE}","profileType":"personal","swappedIccid":"98341201501601380129""#
            )),
            &Rules::default(),
        )
        .unwrap();
        let ActivationCodeOutcome::Issued(issued) = parsed.outcome else {
            panic!("expected a code")
        };
        assert_eq!(issued.activation_code.expose(), CODE);
        assert!(issued.swapped_iccid.is_some());
        assert!(!format!("{issued:?}").contains("DEF30A27"));
    }

    #[test]
    fn swapped_iccid_may_be_null_or_absent() {
        for swapped in [r#","swappedIccid":null"#, ""] {
            let members = format!(
                r#","iccid":"98341201501601380129","activationCode":"{CODE}","profileType":"personal"{swapped}"#
            );
            assert!(parse(&body(&members), &Rules::default()).is_ok());
        }
    }

    #[test]
    fn an_error_instead_of_a_code() {
        let parsed = parse(
            &body(r#","error":"1000:Customer not eligible","activationCode":"""#),
            &Rules::default(),
        )
        .unwrap();
        assert_eq!(
            parsed.outcome,
            ActivationCodeOutcome::Failed {
                error: "1000:Customer not eligible".to_owned()
            }
        );
        let with_nulls = body(
            r#","error":"x","iccid":null,"activationCode":null,"swappedIccid":null,"profileType":null"#,
        );
        assert!(parse(&with_nulls, &Rules::default()).is_ok());
    }

    #[test]
    fn violations() {
        let full = format!(
            r#","iccid":"98341201501601380129","activationCode":"{CODE}","profileType":"personal""#
        );
        let cases: Vec<(Vec<u8>, ViolationKind, &str)> = vec![
            (
                format!(r#"{{"error":"x"{full}}}"#).into_bytes(),
                ViolationKind::Syntax,
                "activationCodeRequestID",
            ),
            (
                format!(r#"{{"activationCodeRequestID":"x"{full}}}"#).into_bytes(),
                ViolationKind::BadRequestId,
                "activationCodeRequestID",
            ),
            (
                body(&format!(r#","error":"x"{full}"#)),
                ViolationKind::Syntax,
                "activationCode",
            ),
            (body(""), ViolationKind::Syntax, "iccid"),
            (body(r#","error":"""#), ViolationKind::Syntax, "iccid"),
            (
                body(&full.replace(CODE, "1$SMDP.EXAMPLE.COM")),
                ViolationKind::ActivationCodeFormat,
                "activationCode",
            ),
            (
                body(&full.replace(CODE, "")),
                ViolationKind::ActivationCodeFormat,
                "activationCode",
            ),
            (
                body(&full.replace("personal", "business")),
                ViolationKind::ProfileTypeUnknown,
                "profileType",
            ),
            (
                body(&format!(r#"{full},"swappedIccid":"""#)),
                ViolationKind::Syntax,
                "swappedIccid",
            ),
            (
                body(&format!(r#"{full},"swappedIccid":12"#)),
                ViolationKind::Syntax,
                "swappedIccid",
            ),
            (
                body(r#","error":"x","iccid":"12""#),
                ViolationKind::Syntax,
                "iccid",
            ),
            (
                body(&format!(r#","error":"{}""#, "e".repeat(ERROR_MAX + 1))),
                ViolationKind::Syntax,
                "error",
            ),
        ];
        for (body, kind, field) in cases {
            let v = parse(&body, &Rules::default()).unwrap_err();
            assert_eq!((v.kind.clone(), v.field.as_str()), (kind, field), "{v}");
            assert!(!v.reason.contains("DEF30A27"));
        }
    }
}

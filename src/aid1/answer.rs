//! The partner's answer, checked before the hub passes it on: [`answer`] turns status and
//! body into an [`Aid1Answer`], or into a [`Breach`] naming what the partner got wrong.
//!
//! Rules:
//!
//! * A status outside 100–599 is a breach.
//! * A 2xx must be one of [`Function::success_statuses`]. Request Activation Code's 200 and
//!   Request Profile Status's 200 are checked by their files; every other success answer
//!   (including RAC's 201 and the 204s) is [`Aid1Answer::Empty`], its body ignored, because
//!   the spec defines none.
//! * Any other status (1xx, 3xx, 4xx, 5xx; documented in [`Function::error_statuses`] or not,
//!   which the caller may check) must carry the 5.5 error body, a JSON object with `code`
//!   and `error`. `code` is a string or, leniently, a JSON integer (reported as its decimal
//!   string); it must be 1–64 characters without control characters. `error` is a string of
//!   at most [`ERROR_TEXT_MAX`] characters. Both are required and not `null`; other members
//!   are ignored. An empty body on an error status is a breach.

use crate::aid1::function::Function;
use crate::aid1::json::{parse_object, Json, Obj};
use crate::aid1::request::Rules;
use crate::aid1::request_activation_code::{self, IssuedActivationCode};
use crate::aid1::request_profile_status::{self, ProfileStatus};
use crate::aid1::violation::{Breach, Violation};

/// Longest accepted `code` in an error body.
pub const ERROR_CODE_MAX: usize = 64;
/// Longest accepted `error` description in an error body.
pub const ERROR_TEXT_MAX: usize = 4096;

/// A valid answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Aid1Answer {
    /// 200 to Request Activation Code: the code is in the answer (synchronous mode).
    ActivationCode(IssuedActivationCode),
    /// 201 to Request Activation Code: the MSP will deliver the code, or why there is none,
    /// with Send Activation Code (asynchronous mode).
    ActivationCodeLater,
    /// 200 to Request Profile Status: the user's profiles that are not deleted.
    ProfileStatus(Vec<ProfileStatus>),
    /// Any other success: no body is defined.
    Empty {
        /// The success status.
        status: u16,
    },
    /// A non-2xx answer with the spec's error body.
    Error {
        /// The status.
        status: u16,
        /// The error code (a Table 10 code, a proprietary 200–300 code, or other).
        code: String,
        /// The error description.
        error: String,
    },
}

impl Aid1Answer {
    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        match self {
            Aid1Answer::ActivationCode(_) | Aid1Answer::ProfileStatus(_) => 200,
            Aid1Answer::ActivationCodeLater => 201,
            Aid1Answer::Empty { status } | Aid1Answer::Error { status, .. } => *status,
        }
    }
}

/// Checks the answer a partner gave to a request for `function`.
pub fn answer(
    function: Function,
    status: u16,
    body: &[u8],
    rules: &Rules,
) -> Result<Aid1Answer, Breach> {
    if !(100..=599).contains(&status) {
        return Err(Breach::new(format!("{status} is not an HTTP status")));
    }
    if !(200..=299).contains(&status) {
        return error_body(status, body).map_err(|v| {
            Breach::new(format!(
                "{status} answer to {} without the 5.5 error body: {v}",
                function.title()
            ))
        });
    }
    if !function.success_statuses().contains(&status) {
        return Err(Breach::new(format!(
            "{status} is not a success status of {} (expected {})",
            function.title(),
            list(function.success_statuses())
        )));
    }
    match function {
        Function::RequestActivationCode if status == 201 => Ok(Aid1Answer::ActivationCodeLater),
        Function::RequestActivationCode => {
            request_activation_code::parse_answer(body, rules).map(Aid1Answer::ActivationCode)
        }
        Function::RequestProfileStatus => {
            request_profile_status::parse_answer(body, rules).map(Aid1Answer::ProfileStatus)
        }
        Function::SendMspToken
        | Function::NotifyMspTokenInvalid
        | Function::SendProfileInformation
        | Function::UpdateSubscriptionInfo
        | Function::SendActivationCode
        | Function::SendCsimStatus
        | Function::RequestInvalidateMspToken => Ok(Aid1Answer::Empty { status }),
    }
}

/// Reads the 5.5 error body.
fn error_body(status: u16, body: &[u8]) -> Result<Aid1Answer, Violation> {
    let map = parse_object(body)?;
    let obj = Obj::root(&map);
    let code = match obj.required("code")? {
        Json::String(text) => text.to_string(),
        Json::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        _ => {
            return Err(Violation::syntax(
                "code",
                "must be a string (or an integer)",
            ))
        }
    };
    if code.is_empty()
        || code.chars().count() > ERROR_CODE_MAX
        || code.chars().any(char::is_control)
    {
        return Err(Violation::syntax(
            "code",
            format!("must be 1 to {ERROR_CODE_MAX} characters without control characters"),
        ));
    }
    let error = obj.str("error")?;
    if error.chars().count() > ERROR_TEXT_MAX {
        return Err(Violation::syntax(
            "error",
            format!("longer than {ERROR_TEXT_MAX} characters"),
        ));
    }
    Ok(Aid1Answer::Error {
        status,
        code,
        error: error.to_owned(),
    })
}

fn list(statuses: &[u16]) -> String {
    statuses
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(function: Function, status: u16, body: &[u8]) -> Result<Aid1Answer, Breach> {
        answer(function, status, body, &Rules::default())
    }

    #[test]
    fn plain_successes_ignore_the_body() {
        for function in Function::ALL {
            if matches!(
                function,
                Function::RequestActivationCode | Function::RequestProfileStatus
            ) {
                continue;
            }
            let status = function.success_statuses()[0];
            assert_eq!(
                check(function, status, b"anything"),
                Ok(Aid1Answer::Empty { status })
            );
        }
    }

    #[test]
    fn unknown_successes_are_breaches() {
        let breach = check(Function::SendMspToken, 200, b"").unwrap_err();
        assert_eq!(
            breach.reason,
            "200 is not a success status of Send MSP Token (expected 201)"
        );
        assert!(check(Function::RequestActivationCode, 202, b"").is_err());
        assert!(check(Function::RequestInvalidateMspToken, 200, b"").is_err());
        assert!(check(Function::SendCsimStatus, 0, b"").is_err());
        assert!(check(Function::SendCsimStatus, 600, b"").is_err());
    }

    #[test]
    fn the_special_successes_are_checked() {
        let code = br#"{"iccid":"98341201501601380129","activationCode":"1$A.B$C","profileType":"personal","swappedIccid":null}"#;
        let sync = check(Function::RequestActivationCode, 200, code).unwrap();
        assert_eq!(sync.status(), 200);
        assert!(!format!("{sync:?}").contains("1$A.B$C"));
        assert_eq!(
            check(Function::RequestActivationCode, 201, b""),
            Ok(Aid1Answer::ActivationCodeLater)
        );
        assert!(check(Function::RequestActivationCode, 200, b"{}").is_err());
        let status = check(Function::RequestProfileStatus, 200, br#"{"profiles":[]}"#).unwrap();
        assert_eq!(status.status(), 200);
        assert!(check(Function::RequestProfileStatus, 200, b"").is_err());
    }

    #[test]
    fn error_bodies() {
        let answer = check(
            Function::SendMspToken,
            422,
            br#"{"code":"12","error":"The account ID has an invalid signature"}"#,
        );
        assert_eq!(
            answer,
            Ok(Aid1Answer::Error {
                status: 422,
                code: "12".to_owned(),
                error: "The account ID has an invalid signature".to_owned()
            })
        );
        let numeric = check(
            Function::RequestActivationCode,
            404,
            br#"{"code":20,"error":"","extra":1}"#,
        )
        .unwrap();
        assert!(matches!(numeric, Aid1Answer::Error { ref code, .. } if code == "20"));
        assert_eq!(numeric.status(), 404);
        // Undocumented statuses are accepted when the body is right; the caller may check.
        assert!(check(
            Function::NotifyMspTokenInvalid,
            422,
            br#"{"code":"29","error":"x"}"#
        )
        .is_ok());
        assert!(check(
            Function::SendCsimStatus,
            503,
            br#"{"code":"90","error":"x"}"#
        )
        .is_ok());
    }

    #[test]
    fn bad_error_bodies_are_breaches() {
        for body in [
            &b""[..],
            b"<html>Bad Gateway</html>",
            b"[]",
            br#"{"error":"x"}"#,
            br#"{"code":"10"}"#,
            br#"{"code":null,"error":"x"}"#,
            br#"{"code":"10","error":null}"#,
            br#"{"code":1.5,"error":"x"}"#,
            br#"{"code":true,"error":"x"}"#,
            br#"{"code":"","error":"x"}"#,
            br#"{"code":"1\n0","error":"x"}"#,
            br#"{"code":"10","error":7}"#,
        ] {
            let breach = check(Function::SendActivationCode, 500, body).unwrap_err();
            assert!(
                breach
                    .reason
                    .starts_with("500 answer to Send Activation Code"),
                "{breach}"
            );
        }
        let long = format!(
            r#"{{"code":"10","error":"{}"}}"#,
            "x".repeat(ERROR_TEXT_MAX + 1)
        );
        assert!(check(Function::SendMspToken, 404, long.as_bytes()).is_err());
        let long_code = format!(
            r#"{{"code":"{}","error":"x"}}"#,
            "1".repeat(ERROR_CODE_MAX + 1)
        );
        assert!(check(Function::SendMspToken, 404, long_code.as_bytes()).is_err());
        assert!(check(Function::SendMspToken, 302, b"").is_err());
    }
}

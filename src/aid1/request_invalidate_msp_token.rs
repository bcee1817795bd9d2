//! 7.9 Request Invalidate MSP Token, `DELETE /v1/users/{msp_token}`, CMP → MSP: the user
//! unlinked the accounts; the MSP deactivates all the user's profiles at once and the token
//! may no longer be used to request activation codes. Answer: 204, no body (any body is
//! ignored; the spec's response table lists 204 and 401 twice, which means nothing more).
//!
//! Body rules: the spec defines no body, so the request must not carry one (whitespace is
//! tolerated); everything the function needs is the path's `msp_token`.

use crate::aid1::violation::Violation;

/// Checks that a Request Invalidate MSP Token carries no body.
pub fn parse(body: &[u8]) -> Result<(), Violation> {
    crate::aid1::request::no_body(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aid1::violation::ViolationKind;

    #[test]
    fn no_body_is_the_only_body() {
        assert!(parse(b"").is_ok());
        assert!(parse(b" \r\n").is_ok());
        for body in [&b"{}"[..], b"null", b"{\"reason\":\"x\"}"] {
            let v = parse(body).unwrap_err();
            assert_eq!((v.kind, v.field.as_str()), (ViolationKind::Syntax, "body"));
        }
    }
}

//! What a caller or an answering partner got wrong. A [`Violation`] is a request that does
//! not follow AID1 (the hub refuses it); a [`Breach`] is an answer that does not (the hub
//! does not pass it on as if it were valid). Neither chooses an HTTP status: the hub's error
//! module maps [`ViolationKind`] to status and spec code. Reasons never quote a value taken
//! from the input, so they are safe to log and to send back.

use http::Method;

/// The class of a [`Violation`]; each variant's doc names the spec error code (AID.02 5.5,
/// Table 10) it is meant to be answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViolationKind {
    /// The path is no AID1 function (or is a variant of one: trailing slash, `%`-escape,
    /// different case). The spec defines no code for it; meant for code 91 "Invalid request
    /// syntax".
    UnknownFunction,
    /// The path is a function's, the method is not; `allow` is the one method the path
    /// takes. Meant for code 91.
    MethodNotAllowed {
        /// The method the path takes.
        allow: Method,
    },
    /// The `{msp_token}` path parameter, or Send MSP Token's `msp_token` member, is not a
    /// canonical UUID (7.3 and 7.6 name "msp_token format is incorrect"). Meant for code 29
    /// "Other msp_token id error".
    BadMspToken,
    /// The `{account_id}` path parameter is not `[A-Za-z0-9._-]+` (or is too long). Meant for
    /// code 19 "Other account ID error".
    BadAccountId,
    /// A query string where none is defined, or a malformed `?iccid=` on Request Profile
    /// Status. Meant for code 91.
    BadPathParam,
    /// One of the required headers of 5.1 (`CMP-request-id`, `correlation-id`, `client-id`,
    /// `target-id`) is absent. Meant for code 91.
    MissingHeader,
    /// A header of 5.1 is malformed or repeated (other than `correlation-id`, and other than
    /// the credential headers). Meant for code 91.
    BadHeader,
    /// The `correlation-id` header is malformed or repeated. Meant for code 92 "The
    /// correlation-id does not match".
    BadCorrelationId,
    /// `api-key` or `Authorization` is malformed, or both are present (an ambiguous
    /// credential). Meant for the spec's 401 "Unauthorized", which has no code in Table 10;
    /// code 91 is the nearest.
    BadCredential,
    /// A body without `Content-Type: application/json` (chapter 6), or a `charset` other
    /// than UTF-8. Meant for code 91.
    UnsupportedMediaType,
    /// The body is empty (or whitespace) where one is required, a required member is
    /// `null`, or Update Subscription Info updates nothing. Meant for code 60 "The request
    /// body is empty or contains null values".
    EmptyBody,
    /// Not JSON, not an object, duplicate member, missing required member, wrong type,
    /// unknown enumeration value, over-length value, malformed ICCID/EID/Base64, a body where
    /// none is defined. Meant for code 91 "Invalid request syntax".
    Syntax,
    /// `activationCodeRequestID` is not a canonical UUID. Meant for code 39 "Other request
    /// ID error".
    BadRequestId,
    /// An `activationCode` that does not follow the SGP.22 grammar. Meant for code 47 "The
    /// activation code has an invalid format".
    ActivationCodeFormat,
    /// A well-formed `profileType` (printable ASCII, at most 20) other than `personal`, the
    /// only type the spec defines. Meant for code 50 "Profile type unknown".
    ProfileTypeUnknown,
}

/// A request that does not follow AID1: its class, the field it concerns (a header name, a
/// path parameter, `query`, `body`, or a JSON path such as `profiles[1].status`) and a plain
/// reason that never contains a value from the request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Violation {
    /// What class of problem it is (the error module maps it to status and code).
    pub kind: ViolationKind,
    /// Which part of the request it concerns.
    pub field: String,
    /// Why it was refused, in plain words, without values from the request.
    pub reason: String,
}

impl Violation {
    /// A violation of `kind` in `field`.
    pub fn new(kind: ViolationKind, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Violation {
            kind,
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A [`ViolationKind::Syntax`] violation in `field`.
    pub fn syntax(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Violation::new(ViolationKind::Syntax, field, reason)
    }
}

/// An answer from a partner that does not follow AID1: a 2xx the function does not know, a
/// success body that lacks what the spec requires, or an error answer without the 5.5 error
/// body. The reason names what is wrong, never a value (no activation code, no ICCID).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Breach {
    /// What the partner got wrong.
    pub reason: String,
}

impl Breach {
    /// A breach with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Breach {
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_field_then_reason() {
        let v = Violation::syntax("profiles[1].status", "must be one of invalid, valid");
        assert_eq!(
            v.to_string(),
            "profiles[1].status: must be one of invalid, valid"
        );
        assert_eq!(v.kind, ViolationKind::Syntax);
        assert_eq!(Breach::new("no body").to_string(), "no body");
    }
}

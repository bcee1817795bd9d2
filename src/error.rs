//! [`HubError`]: every way the hub itself can answer a request with an error, and its one
//! mapping to an HTTP status and the spec's error body (AID.02 5.5:
//! `{"code": "<string>", "error": "<description>"}`).
//!
//! Codes 10–103 are the spec's; the hub's own conditions use the proprietary range 200–300
//! ([`HubCode`]). This module is the only place that chooses a status or a code. 5xx
//! descriptions name the failure in plain words (which partner, what kind) and never carry
//! internals; the detail goes to the log.
//!
//! Errors are phrased in the protocol of the request they answer ([`Dialect`]): AID1 as
//! above; TS.43 as its devices expect — a refusal the protocol answers inside a document
//! is HTTP 200 with `OperationResult` 101/102 in the document format the device asked for,
//! token refusals are 401/403, and the hub's own faults keep their status with a plain-text
//! body (the AOSP client surfaces the status and `Retry-After`, never a body).

use crate::account_id::AccountIdError;
use crate::aid1::{Violation, ViolationKind};
use crate::touchpoints::urls::RedirectProblem;
use crate::touchpoints::Refusal;
use crate::ts43::{Format, Ts43Refusal};
use crate::upstream::UpstreamFault;
use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::Full;
use std::time::Duration;

/// Everything the hub refuses or fails on its own.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The request breaks the AID1 spec.
    #[error("{0}")]
    Invalid(Violation),
    /// The body is larger than the configured cap.
    #[error("the body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The cap.
        limit: usize,
    },
    /// The client certificate no longer maps to a partner (removed by a reload).
    #[error("the client certificate does not belong to any partner")]
    UnknownCertificate,
    /// `client-id` names another partner than the certificate.
    #[error("client-id does not match the client certificate")]
    ClientIdMismatch,
    /// The credential is missing or wrong.
    #[error("missing or invalid credential")]
    BadCredential,
    /// `target-id` names no partner (spec code 93).
    #[error("the partner {id} could not be found")]
    UnknownTarget {
        /// The id as given.
        id: String,
    },
    /// The function may not be called by this caller towards this target.
    #[error("{reason}")]
    NotPermitted {
        /// Plain words: which role pair or agreement is missing.
        reason: String,
    },
    /// The account id failed verification.
    #[error("account id: {0}")]
    AccountId(AccountIdError),
    /// The msp_token is not known to this caller/target pair (spec code 20).
    #[error("the msp_token was not found")]
    TokenUnknown,
    /// The msp_token was withdrawn (spec code 21).
    #[error("the msp_token was found but is no longer valid")]
    TokenWithdrawn,
    /// The msp_token belongs to another federation (spec code 23).
    #[error("the msp_token is already assigned to a user")]
    TokenTaken,
    /// Unknown activationCodeRequestID (spec code 30).
    #[error("the specified request ID was not found")]
    RequestUnknown,
    /// Expired or answered activationCodeRequestID (spec code 31).
    #[error("the specified request ID was found but is no longer valid")]
    RequestClosed,
    /// Another activationCodeRequestID problem (spec code 39).
    #[error("{0}")]
    RequestOther(String),
    /// Send Activation Code arrived before the request's 201 was relayed; retry.
    #[error(
        "the activation-code request is still awaiting its answer from the MSP; retry shortly"
    )]
    RequestPending,
    /// The ledger cannot be read or written.
    #[error("the ledger is unavailable")]
    LedgerUnavailable,
    /// A calling partner exceeded its rate limit.
    #[error("rate limit exceeded")]
    RateLimited {
        /// When to retry.
        retry_after: Duration,
    },
    /// Too many requests are already waiting on this upstream.
    #[error("partner {partner} is busy")]
    Overloaded {
        /// The upstream partner.
        partner: String,
    },
    /// The upstream failed.
    #[error("partner {partner}: {fault}")]
    Upstream {
        /// The upstream partner.
        partner: String,
        /// What happened.
        fault: UpstreamFault,
    },
    /// The upstream answered something the spec does not allow.
    #[error("partner {partner} answered outside its protocol's contract: {reason}")]
    Contract {
        /// The upstream partner.
        partner: String,
        /// What was wrong (no secret values).
        reason: String,
    },
    /// A TS.43 request refused by the hub.
    #[error("{reason}")]
    Ts43 {
        /// What kind of refusal (decides status and `OperationResult`).
        refusal: Ts43Refusal,
        /// Plain words, no secret values.
        reason: String,
    },
    /// A fault inside the hub.
    #[error("internal error")]
    Internal(String),
    /// A browser redirect the touchpoint directory refused (answered with a page, not the
    /// error body).
    #[error("touchpoint: {0}")]
    Touchpoint(Refusal),
}

/// The protocol an error answer is phrased in.
#[derive(Debug, Clone, Default)]
pub enum Dialect {
    /// AID1: the spec's JSON error body.
    #[default]
    Aid1,
    /// TS.43: documents in the format the device asked for.
    Ts43 {
        /// XML or JSON.
        format: Format,
        /// The app ID to name in a refusal document (`ap2009` when unknown).
        app: Option<String>,
    },
}

/// The hub's proprietary error codes (AID.02 5.5 reserves 200–300).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum HubCode {
    /// 429: the calling partner's rate limit is exhausted.
    RateLimited = 200,
    /// 503: the target's concurrency limit is reached.
    UpstreamBusy = 201,
    /// 502: the target refused the connection or could not be reached.
    UpstreamUnreachable = 202,
    /// 502: the TLS handshake with the target failed.
    UpstreamTls = 203,
    /// 504: the target did not answer in time.
    UpstreamTimeout = 204,
    /// 502: the target closed the connection or answered with invalid HTTP.
    UpstreamBroken = 205,
    /// 502: the target's answer breaks the AID1 contract.
    UpstreamContract = 206,
    /// 413: the body exceeds the size cap.
    BodyTooLarge = 207,
    /// 415: the content type is not application/json.
    UnsupportedMediaType = 208,
    /// 404: no AID1 function at this path.
    UnknownFunction = 209,
    /// 405: the path exists with another method.
    MethodNotAllowed = 210,
    /// 403: the caller may not call this function towards this target.
    NotPermitted = 211,
    /// 401: the credential is missing or wrong.
    BadCredential = 212,
    /// 403: client-id does not name the certificate's partner.
    ClientIdMismatch = 213,
    /// 403: the certificate no longer belongs to a partner.
    UnknownCertificate = 214,
    /// 503: the request's 201 is not relayed yet; retry after Retry-After.
    RequestPending = 215,
    /// 503: the ledger is unavailable.
    LedgerUnavailable = 216,
}

impl HubCode {
    /// Every proprietary code, in numeric order (documentation and conformance tests).
    pub fn all() -> &'static [HubCode] {
        use HubCode as H;
        &[
            H::RateLimited,
            H::UpstreamBusy,
            H::UpstreamUnreachable,
            H::UpstreamTls,
            H::UpstreamTimeout,
            H::UpstreamBroken,
            H::UpstreamContract,
            H::BodyTooLarge,
            H::UnsupportedMediaType,
            H::UnknownFunction,
            H::MethodNotAllowed,
            H::NotPermitted,
            H::BadCredential,
            H::ClientIdMismatch,
            H::UnknownCertificate,
            H::RequestPending,
            H::LedgerUnavailable,
        ]
    }
}

impl HubError {
    /// The status and the spec error code.
    pub fn status_and_code(&self) -> (StatusCode, u16) {
        use HubCode as H;
        let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
        match self {
            HubError::Invalid(v) => match &v.kind {
                ViolationKind::UnknownFunction => {
                    (StatusCode::NOT_FOUND, H::UnknownFunction as u16)
                }
                ViolationKind::MethodNotAllowed { .. } => {
                    (StatusCode::METHOD_NOT_ALLOWED, H::MethodNotAllowed as u16)
                }
                ViolationKind::UnsupportedMediaType => (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    H::UnsupportedMediaType as u16,
                ),
                ViolationKind::MissingHeader | ViolationKind::BadHeader => {
                    (StatusCode::BAD_REQUEST, 91)
                }
                ViolationKind::BadCorrelationId => (StatusCode::BAD_REQUEST, 92),
                ViolationKind::BadPathParam => (unprocessable, 91),
                ViolationKind::BadMspToken => (unprocessable, 29),
                ViolationKind::BadAccountId => (unprocessable, 19),
                ViolationKind::BadRequestId => (unprocessable, 39),
                ViolationKind::BadCredential => (StatusCode::UNAUTHORIZED, H::BadCredential as u16),
                ViolationKind::EmptyBody => (unprocessable, 60),
                ViolationKind::Syntax => (unprocessable, 91),
                ViolationKind::ActivationCodeFormat => (unprocessable, 47),
                ViolationKind::ProfileTypeUnknown => (unprocessable, 50),
            },
            HubError::BodyTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, H::BodyTooLarge as u16)
            }
            HubError::UnknownCertificate => (StatusCode::FORBIDDEN, H::UnknownCertificate as u16),
            HubError::ClientIdMismatch => (StatusCode::FORBIDDEN, H::ClientIdMismatch as u16),
            HubError::BadCredential => (StatusCode::UNAUTHORIZED, H::BadCredential as u16),
            HubError::UnknownTarget { .. } => (StatusCode::NOT_FOUND, 93),
            HubError::NotPermitted { .. } => (StatusCode::FORBIDDEN, H::NotPermitted as u16),
            HubError::AccountId(e) => (
                unprocessable,
                match e {
                    AccountIdError::Expired => 11,
                    AccountIdError::BadSignature => 12,
                    AccountIdError::Malformed(_) => 19,
                },
            ),
            HubError::TokenUnknown => (StatusCode::NOT_FOUND, 20),
            HubError::TokenWithdrawn => (unprocessable, 21),
            HubError::TokenTaken => (unprocessable, 23),
            HubError::RequestUnknown => (unprocessable, 30),
            HubError::RequestClosed => (unprocessable, 31),
            HubError::RequestOther(_) => (unprocessable, 39),
            HubError::RequestPending => (StatusCode::SERVICE_UNAVAILABLE, H::RequestPending as u16),
            HubError::LedgerUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, H::LedgerUnavailable as u16)
            }
            HubError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, H::RateLimited as u16),
            HubError::Overloaded { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, H::UpstreamBusy as u16)
            }
            HubError::Upstream { fault, .. } => match fault {
                UpstreamFault::Timeout(_) => {
                    (StatusCode::GATEWAY_TIMEOUT, H::UpstreamTimeout as u16)
                }
                UpstreamFault::Refused | UpstreamFault::Connect(_) => {
                    (StatusCode::BAD_GATEWAY, H::UpstreamUnreachable as u16)
                }
                UpstreamFault::Tls(_) => (StatusCode::BAD_GATEWAY, H::UpstreamTls as u16),
                UpstreamFault::Reset | UpstreamFault::Protocol(_) => {
                    (StatusCode::BAD_GATEWAY, H::UpstreamBroken as u16)
                }
                UpstreamFault::TooLarge => (StatusCode::BAD_GATEWAY, H::UpstreamContract as u16),
            },
            HubError::Contract { .. } => (StatusCode::BAD_GATEWAY, H::UpstreamContract as u16),
            HubError::Ts43 { refusal, .. } => match refusal.operation_result() {
                Some(result) => (StatusCode::OK, result),
                None => {
                    let status = match refusal {
                        Ts43Refusal::Malformed => StatusCode::BAD_REQUEST,
                        Ts43Refusal::TokenUnknown => StatusCode::UNAUTHORIZED,
                        Ts43Refusal::NoCarrier => StatusCode::NOT_FOUND,
                        Ts43Refusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
                        _ => StatusCode::FORBIDDEN,
                    };
                    (status, status.as_u16())
                }
            },
            HubError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, 90),
            HubError::Touchpoint(refusal) => touchpoint_status_and_code(refusal),
        }
    }

    /// The error answer in `dialect`.
    pub fn response_in(&self, dialect: &Dialect) -> Response<Full<Bytes>> {
        match dialect {
            Dialect::Aid1 => self.response(),
            Dialect::Ts43 { format, app } => self.ts43_response(*format, app.as_deref()),
        }
    }

    /// TS.43: a document with `OperationResult` (and `GeneralErrorText`) for the refusals
    /// the protocol answers in a document, the status alone (plain text) otherwise.
    fn ts43_response(&self, format: Format, app: Option<&str>) -> Response<Full<Bytes>> {
        let (status, code) = self.status_and_code();
        let (body, content_type) = match self {
            HubError::Ts43 { refusal, reason } if refusal.operation_result().is_some() => {
                let doc = crate::ts43::document::refusal(app.unwrap_or("ap2009"), code, reason);
                (doc.serialise(format), format.content_type())
            }
            _ => (Bytes::from(self.description()), "text/plain; charset=utf-8"),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        self.retry_after(response.headers_mut());
        response
    }

    fn retry_after(&self, headers: &mut http::HeaderMap) {
        match self {
            HubError::RateLimited { retry_after } => {
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                headers.insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            HubError::RequestPending
            | HubError::Overloaded { .. }
            | HubError::LedgerUnavailable => {
                headers.insert(RETRY_AFTER, HeaderValue::from(1u64));
            }
            _ => {}
        }
    }

    /// A short name of the condition, for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            HubError::Invalid(_) => "invalid",
            HubError::BodyTooLarge { .. } => "body_too_large",
            HubError::UnknownCertificate => "unknown_certificate",
            HubError::ClientIdMismatch => "client_id_mismatch",
            HubError::BadCredential => "bad_credential",
            HubError::UnknownTarget { .. } => "unknown_target",
            HubError::NotPermitted { .. } => "not_permitted",
            HubError::AccountId(_) => "account_id",
            HubError::TokenUnknown => "token_unknown",
            HubError::TokenWithdrawn => "token_withdrawn",
            HubError::TokenTaken => "token_taken",
            HubError::RequestUnknown => "request_unknown",
            HubError::RequestClosed => "request_closed",
            HubError::RequestOther(_) => "request_other",
            HubError::RequestPending => "request_pending",
            HubError::LedgerUnavailable => "ledger_unavailable",
            HubError::RateLimited { .. } => "rate_limited",
            HubError::Overloaded { .. } => "upstream_busy",
            HubError::Upstream { .. } => "upstream",
            HubError::Contract { .. } => "contract",
            HubError::Ts43 { refusal, .. } => refusal.reason(),
            HubError::Internal(_) => "internal",
            HubError::Touchpoint(_) => "touchpoint",
        }
    }

    /// The description sent to the caller. Internal faults are not described.
    pub fn description(&self) -> String {
        match self {
            HubError::Internal(_) => "Internal Server Error".to_owned(),
            HubError::Upstream { partner, fault } => match fault {
                // Certificate details stay in the log.
                UpstreamFault::Tls(_) => format!("partner {partner}: TLS handshake failed"),
                UpstreamFault::Protocol(_) => format!("partner {partner}: not a valid HTTP answer"),
                UpstreamFault::Connect(_) => format!("partner {partner}: cannot connect"),
                _ => self.to_string(),
            },
            _ => self.to_string(),
        }
    }

    /// The whole error response: status, spec error body, and `Retry-After` / `Allow` where
    /// they apply.
    pub fn response(&self) -> Response<Full<Bytes>> {
        let (status, code) = self.status_and_code();
        let body = error_body(code, &self.description());
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.retry_after(headers);
        if let HubError::Invalid(Violation {
            kind: ViolationKind::MethodNotAllowed { allow },
            ..
        }) = self
        {
            if let Ok(v) = HeaderValue::from_str(allow.as_str()) {
                headers.insert(ALLOW, v);
            }
        }
        response
    }
}

impl From<Violation> for HubError {
    fn from(v: Violation) -> HubError {
        HubError::Invalid(v)
    }
}

/// The status of a touchpoint refusal page, and the spec code that names its cause (for
/// logs; pages show no codes): 404 when the page asked for does not exist, 405 for another
/// method, 400 when the request is malformed, 403 when it is well-formed but not permitted
/// (no agreement, a domain not agreed, an account id that fails verification).
pub fn touchpoint_status_and_code(refusal: &Refusal) -> (StatusCode, u16) {
    use HubCode as H;
    let bad = StatusCode::BAD_REQUEST;
    let forbidden = StatusCode::FORBIDDEN;
    match refusal {
        Refusal::NoEndpoint | Refusal::NotAnMsp { .. } | Refusal::NoPage { .. } => {
            (StatusCode::NOT_FOUND, H::UnknownFunction as u16)
        }
        Refusal::UnknownPartner { .. } => (StatusCode::NOT_FOUND, 93),
        Refusal::Method => (StatusCode::METHOD_NOT_ALLOWED, H::MethodNotAllowed as u16),
        Refusal::QueryTooLong | Refusal::Parameter { .. } => (bad, 91),
        Refusal::UnknownFrom { .. } => (forbidden, 93),
        Refusal::WrongRole { .. } | Refusal::NoAgreement { .. } => {
            (forbidden, H::NotPermitted as u16)
        }
        Refusal::Redirect {
            problem: RedirectProblem::NotAgreed,
            ..
        } => (forbidden, H::NotPermitted as u16),
        Refusal::Redirect { .. } => (bad, 91),
        Refusal::AccountId(AccountIdError::Malformed(_)) => (bad, 19),
        Refusal::AccountId(AccountIdError::Expired) => (forbidden, 11),
        Refusal::AccountId(AccountIdError::BadSignature) => (forbidden, 12),
        Refusal::Internal => (StatusCode::INTERNAL_SERVER_ERROR, 90),
    }
}

/// Serialises `{"code": "<code>", "error": "<description>"}`.
pub fn error_body(code: u16, description: &str) -> Bytes {
    let body = serde_json::json!({ "code": code.to_string(), "error": description });
    Bytes::from(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_follow_the_spec_shape() {
        let e = HubError::UnknownTarget { id: "cmp9".into() };
        let (status, code) = e.status_and_code();
        assert_eq!((status.as_u16(), code), (404, 93));
        let body: serde_json::Value =
            serde_json::from_slice(&error_body(code, &e.description())).unwrap();
        assert_eq!(body["code"], "93");
        assert_eq!(body["error"], "the partner cmp9 could not be found");
    }

    #[test]
    fn internal_details_never_reach_the_caller() {
        let e = HubError::Internal("sled: /var/lib/secret path".into());
        assert_eq!(e.description(), "Internal Server Error");
        let e = HubError::Upstream {
            partner: "msp1".into(),
            fault: UpstreamFault::Tls("invalid peer certificate: UnknownIssuer".into()),
        };
        assert_eq!(e.description(), "partner msp1: TLS handshake failed");
    }

    #[test]
    fn rate_limits_round_retry_after_up() {
        let e = HubError::RateLimited {
            retry_after: Duration::from_millis(1200),
        };
        let r = e.response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[RETRY_AFTER], "2");
    }

    #[test]
    fn proprietary_codes_stay_in_the_reserved_range() {
        for code in [HubCode::RateLimited, HubCode::LedgerUnavailable] {
            assert!((200..=300).contains(&(code as u16)));
        }
    }
}

//! The AID1 protocol model (GSMA AID.02 v1.0, chapters 5–7): which of the nine functions a
//! request is, whether its path, headers and body follow the spec, and whether a partner's
//! answer does. It knows nothing of sockets, partners or the ledger; it turns bytes into
//! typed values or into a [`Violation`] (a caller's fault) or a [`Breach`] (an answering
//! partner's fault) that the hub's error module maps to a status and a spec error code.
//!
//! # Reading order
//!
//! 1. [`function`]: the nine functions, their method, path, host role and statuses.
//! 2. [`route()`]: method + path (+ query) → [`Route`] ([`route_with_rules`] when the
//!    deployment wants strict ICCIDs in Request Profile Status's query).
//! 3. [`headers()`] and [`check_content_type`]: the five headers of 5.1 and chapter 6's
//!    content type.
//! 4. [`request()`]: the body, into one [`Aid1Request`] variant; one file per function
//!    (`send_msp_token.rs` … `request_profile_status.rs`) holds its typed request, its
//!    answer and its tests.
//! 5. [`answer()`]: the partner's answer, into an [`Aid1Answer`] or a [`Breach`].
//!
//! [`types`] holds the newtypes (`MspToken`, `Iccid`, `Eid`, `ActivationCode` …); every
//! newtype that carries a secret has a hand-written `Debug` that does not print it, and no
//! [`Violation`] or [`Breach`] reason ever quotes a value taken from the input.
//!
//! # Decisions where the spec is silent
//!
//! Each function file lists its own body rules; the rules shared by all are these.
//!
//! * **JSON.** A body is parsed once. It must be one JSON object; duplicate member names are
//!   refused (the hub forwards the original bytes, and two parsers picking different
//!   duplicates would see different requests). Unknown members are accepted and ignored.
//! * **Null.** `null` for a required member is [`ViolationKind::EmptyBody`] (code 60,
//!   "contains null values"); `null` for an optional member means "absent".
//! * **Missing, wrong type, unknown enum value, too long** are [`ViolationKind::Syntax`]
//!   (code 91), with `field` naming the JSON path (`profiles[1].status`).
//! * **Enumerations** (`subscriptionType`, `status`, `profileType`) are case-sensitive.
//! * **Lengths** are counted in characters (Unicode scalar values). Caps the spec does not
//!   give: free text (`reason`, `customerGroup`) 1024 / 256 characters, `error` 512 (the
//!   spec's figure for Send MSP Token, applied to Send Activation Code too), `eid` 64,
//!   `phoneNumber` 1024, `iv` 256, `profiles` 1000 entries.
//! * **UUIDs** (`msp_token`, `activationCodeRequestID`, `CMP-request-id`,
//!   `correlation-id`) must be in the canonical hyphenated 8-4-4-4-12 form, any case;
//!   braced, URN and un-hyphenated forms are refused.
//! * **ICCID** (see [`types::Iccid`]): 18–22 digits, optionally followed by one `F`/`f`
//!   padding character; [`Rules::strict_iccid`] narrows this to the spec's 20–22. A failing
//!   Luhn digit is accepted; [`types::Iccid::luhn_ok`] lets the caller count it.
//! * **Base64** (`phoneNumber`, `iv`): the standard alphabet of RFC 4648 §4; padding may be
//!   present or omitted, but the URL-safe alphabet (`-`, `_`) is refused, because the spec
//!   says "Base64" and the receiving partner decodes it with its own agreed decoder.
//! * **Requests without a defined body** (Request Invalidate MSP Token, Request Profile
//!   Status) must not carry one (whitespace aside): a body there is `Syntax`.
//! * **Answers** are validated by [`answer()`]; the [`answer`](mod@answer) module lists the
//!   rules.

pub mod activation_code;
pub mod answer;
pub mod content_type;
pub mod exchange;
mod fields;
pub mod function;
pub mod headers;
pub mod iccid;
mod json;
pub mod lifecycle;
pub mod notify_msp_token_invalid;
pub mod request;
pub mod request_activation_code;
pub mod request_invalidate_msp_token;
pub mod request_profile_status;
pub mod route;
pub mod send_activation_code;
pub mod send_csim_status;
pub mod send_msp_token;
pub mod send_profile_information;
pub mod types;
pub mod update_subscription_info;
pub mod violation;

pub use answer::{answer, Aid1Answer};
pub use content_type::check_content_type;
pub use function::Function;
pub use headers::{headers, Aid1Headers, Credential};
pub use request::{request, Aid1Request, Rules};
pub use route::{route, route_with_rules, Route};
pub use types::{eid_check_digits_ok, AccountIdText, ActivationCode, Eid, Iccid, MspToken};
pub use violation::{Breach, Violation, ViolationKind};

/// The two kinds of partner on AID1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A mobile service provider (operator); hosts the "MSP CESIM CMP API" (`/v1/…`).
    Msp,
    /// A connectivity management platform (car maker); hosts the "CMP CESIM MSP API"
    /// (`/cesim/msp/v1/…`).
    Cmp,
}

impl Role {
    /// The lower-case name, `"msp"` or `"cmp"` (config files, metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Msp => "msp",
            Role::Cmp => "cmp",
        }
    }

    /// The other role: the one that talks to this one.
    pub fn other(self) -> Role {
        match self {
            Role::Msp => Role::Cmp,
            Role::Cmp => Role::Msp,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_and_other() {
        assert_eq!(Role::Msp.as_str(), "msp");
        assert_eq!(Role::Cmp.to_string(), "cmp");
        assert_eq!(Role::Msp.other(), Role::Cmp);
        assert_eq!(Role::Cmp.other(), Role::Msp);
    }
}

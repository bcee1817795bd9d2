//! [`Refusal`]: every reason the hub declines to send a browser on, with the metric label
//! of each. The status each one gets is chosen in [`crate::error`] (as
//! [`crate::error::HubError::Touchpoint`]); the words the user reads are in
//! [`super::page`].

use crate::account_id::AccountIdError;
use crate::aid1::Role;
use crate::touchpoints::urls::RedirectProblem;

/// User input as refusals keep it (for the page and the log): at most `max` characters, control
/// characters replaced, so that it can forge neither a log line nor the page's layout.
fn shown(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// What is wrong with one query parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamProblem {
    /// Required and absent.
    Missing,
    /// Given more than once.
    Duplicate,
    /// Not a parameter of this endpoint.
    Unknown,
    /// Given but empty.
    Empty,
    /// Longer than this parameter may be.
    TooLong,
    /// Contains control characters (an encoded CR/LF, NUL …) or bytes that are not UTF-8.
    Unprintable,
    /// Not one of the values this parameter takes (`env`, `code`), or given together with a
    /// parameter it excludes (`id` with `code`).
    Invalid,
}

/// Why a redirect was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// No touchpoint endpoint at this path.
    #[error("no touchpoint endpoint at this path")]
    NoEndpoint,
    /// Another method than GET or HEAD.
    #[error("only GET and HEAD are served")]
    Method,
    /// The partner named in the path is unknown or not in the touchpoint directory.
    #[error("{id} is not in the touchpoint directory")]
    UnknownPartner {
        /// The id as given (shown escaped).
        id: String,
    },
    /// `/return` towards a CMP: 7.2 returns go to MSPs only.
    #[error("returns (7.2) go to MSPs; {id} is a CMP")]
    NotAnMsp {
        /// The partner of the path.
        id: String,
    },
    /// The partner has no page for the requested environment.
    #[error("{id} has registered no pre-production page")]
    NoPage {
        /// The partner of the path.
        id: String,
    },
    /// The query is longer than the hub reads.
    #[error("the query is too long")]
    QueryTooLong,
    /// A parameter is missing, repeated, unknown or malformed.
    #[error("parameter {name}: {problem:?}")]
    Parameter {
        /// Its name (user input when unknown: shown escaped, cut to 40 characters).
        name: String,
        /// What is wrong.
        problem: ParamProblem,
    },
    /// `from` names no partner of the directory.
    #[error("from: {id} is not in the touchpoint directory")]
    UnknownFrom {
        /// The id as given.
        id: String,
    },
    /// `from` is a partner of the same role as the target.
    #[error("from: {id} is not a {expected}")]
    WrongRole {
        /// The id as given.
        id: String,
        /// The role the redirect needs.
        expected: &'static str,
    },
    /// The two partners have no agreement (one's `counterparts` excludes the other).
    #[error("{from} and {to} have no agreement")]
    NoAgreement {
        /// The `from` partner.
        from: String,
        /// The path partner.
        to: String,
    },
    /// `redirect_uri` is not acceptable.
    #[error("redirect_uri: {problem} (domains of {owner})")]
    Redirect {
        /// What is wrong.
        problem: RedirectProblem,
        /// The partner whose agreed domains apply.
        owner: String,
    },
    /// The account id failed verification.
    #[error("account id: {0}")]
    AccountId(AccountIdError),
    /// A fault inside the hub (a URL that cannot be a header value).
    #[error("internal error")]
    Internal,
}

impl Refusal {
    /// The metric label (`outcome`) of this refusal; bounded, never user input.
    pub fn outcome(&self) -> &'static str {
        match self {
            Refusal::NoEndpoint | Refusal::NotAnMsp { .. } => "no_endpoint",
            Refusal::Method => "method_not_allowed",
            Refusal::UnknownPartner { .. } => "unknown_partner",
            Refusal::NoPage { .. } => "no_page",
            Refusal::QueryTooLong | Refusal::Parameter { .. } => "bad_parameter",
            Refusal::UnknownFrom { .. } => "unknown_from",
            Refusal::WrongRole { .. } => "wrong_role",
            Refusal::NoAgreement { .. } => "no_agreement",
            Refusal::Redirect {
                problem: RedirectProblem::NotAgreed,
                ..
            } => "redirect_not_agreed",
            Refusal::Redirect { .. } => "bad_redirect_uri",
            Refusal::AccountId(AccountIdError::Expired) => "account_id_expired",
            Refusal::AccountId(AccountIdError::BadSignature) => "account_id_bad_signature",
            Refusal::AccountId(AccountIdError::Malformed(_)) => "account_id_malformed",
            Refusal::Internal => "internal",
        }
    }

    /// Whether this is a problem with parameter `name`.
    pub fn is_about(&self, name: &str) -> bool {
        matches!(self, Refusal::Parameter { name: n, .. } if n == name)
    }

    /// A parameter refusal.
    pub fn parameter(name: &str, problem: ParamProblem) -> Refusal {
        Refusal::Parameter {
            name: shown(name, 40),
            problem,
        }
    }

    /// The path names no partner of the directory.
    pub fn unknown_partner(id: &str) -> Refusal {
        Refusal::UnknownPartner { id: shown(id, 64) }
    }

    /// `from` names no partner of the directory.
    pub fn unknown_from(id: &str) -> Refusal {
        Refusal::UnknownFrom { id: shown(id, 64) }
    }

    /// `from` has the role of the target.
    pub fn wrong_role(id: &str, expected: Role) -> Refusal {
        Refusal::WrongRole {
            id: id.to_owned(),
            expected: match expected {
                Role::Msp => "MSP",
                Role::Cmp => "CMP",
            },
        }
    }
}

//! The TS.43 request: its parameters (from the query of a GET, or the flat JSON object of
//! a POST), the one authentication group, the ODSA operation and its type, and the formats
//! and length caps of the parameters the eSIM transfer uses (AOSP names, notes §1.2).
//!
//! What a device gets for a violation (decided here, rendered by `error.rs`):
//! * no authentication group, or more than one; `IMSI` without `token`; a non-integer
//!   `operation_type`: **400** (the request cannot be read as TS.43);
//! * an unknown `operation`: **200, `OperationResult` 101**;
//! * any other parameter breaking its format, cap or enumeration: **200,
//!   `OperationResult` 102** — both in the document format the device asked for.

use super::Ts43Refusal;
use crate::error::HubError;
use std::fmt;

/// Most parameters a request may carry.
const MAX_PARAMS: usize = 96;
/// Longest value of a parameter without its own cap.
const MAX_VALUE: usize = 1024;

/// The ODSA operations AOSP sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `CheckEligibility`.
    CheckEligibility,
    /// `ManageSubscription`.
    ManageSubscription,
    /// `ManageService`.
    ManageService,
    /// `AcquireConfiguration`.
    AcquireConfiguration,
    /// `AcquireTemporaryToken`.
    AcquireTemporaryToken,
    /// `GetPhoneNumber`.
    GetPhoneNumber,
    /// `AcquirePlan`.
    AcquirePlan,
    /// `VerifyPhoneNumber`.
    VerifyPhoneNumber,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 8] = [
        Operation::CheckEligibility,
        Operation::ManageSubscription,
        Operation::ManageService,
        Operation::AcquireConfiguration,
        Operation::AcquireTemporaryToken,
        Operation::GetPhoneNumber,
        Operation::AcquirePlan,
        Operation::VerifyPhoneNumber,
    ];

    /// Its wire name (also the `function` label of the metrics).
    pub fn name(self) -> &'static str {
        match self {
            Operation::CheckEligibility => "CheckEligibility",
            Operation::ManageSubscription => "ManageSubscription",
            Operation::ManageService => "ManageService",
            Operation::AcquireConfiguration => "AcquireConfiguration",
            Operation::AcquireTemporaryToken => "AcquireTemporaryToken",
            Operation::GetPhoneNumber => "GetPhoneNumber",
            Operation::AcquirePlan => "AcquirePlan",
            Operation::VerifyPhoneNumber => "VerifyPhoneNumber",
        }
    }

    /// The operation named `name`.
    pub fn parse(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|o| o.name() == name)
    }

    /// The `operation_type` values it takes (`None`: it takes none).
    fn types(self) -> Option<&'static [u8]> {
        match self {
            Operation::ManageSubscription => Some(&[0, 1, 2, 3, 4, 5, 6, 7]),
            Operation::ManageService => Some(&[10, 11]),
            _ => None,
        }
    }
}

/// `operation_type` 3: transfer a subscription from another device.
pub const TRANSFER: u8 = 3;
/// `operation_type` 4: update subscription (the transfer is complete).
pub const UPDATE: u8 = 4;

/// How the request authenticates: exactly one group.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// Full authentication: `EAP_ID` (the EAP-AKA relay follows).
    Eap,
    /// Fast re-authentication: `IMSI` + `token`.
    Fast {
        /// The IMSI.
        imsi: String,
        /// The token.
        token: String,
    },
    /// `temporary_token`.
    Temporary {
        /// The token.
        token: String,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Auth::Eap => "Eap",
            Auth::Fast { .. } => "Fast(…)",
            Auth::Temporary { .. } => "Temporary(…)",
        })
    }
}

/// Where the parameters came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The query string of a GET.
    Query,
    /// The JSON body of a POST.
    Json,
}

/// The request's parameters, decoded, in order; the raw query segments are kept so that
/// an unchanged request crosses the hub byte for byte.
#[derive(Clone)]
pub struct Params {
    pairs: Vec<(String, String, String)>,
    source: Source,
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.pairs.iter().map(|(_, n, _)| n.as_str()).collect();
        write!(f, "Params{names:?}")
    }
}

impl Params {
    /// Reads a query string.
    pub fn from_query(query: &str) -> Result<Params, HubError> {
        let mut pairs = Vec::new();
        for raw in query.split('&').filter(|s| !s.is_empty()) {
            let (name, value) = raw.split_once('=').unwrap_or((raw, ""));
            let name = decode(name).ok_or_else(|| bad_encoding("a parameter name"))?;
            let value = decode(value).ok_or_else(|| bad_encoding(&format!("`{name}`")))?;
            pairs.push((raw.to_owned(), name, value));
        }
        Params::checked(pairs, Source::Query)
    }

    /// Reads the flat JSON object of a POST.
    pub fn from_json(body: &[u8]) -> Result<Params, HubError> {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| Ts43Refusal::Malformed.because(format!("the body is not JSON: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(Ts43Refusal::Malformed.because("the JSON body is not an object"));
        };
        let mut pairs = Vec::new();
        for (name, value) in map {
            let value = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(Ts43Refusal::InvalidParameter
                        .because(format!("`{name}` is not a string or number")))
                }
            };
            pairs.push((String::new(), name, value));
        }
        Params::checked(pairs, Source::Json)
    }

    fn checked(pairs: Vec<(String, String, String)>, source: Source) -> Result<Params, HubError> {
        if pairs.len() > MAX_PARAMS {
            return Err(Ts43Refusal::InvalidParameter.because("too many parameters"));
        }
        Ok(Params { pairs, source })
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(_, n, _)| n == name)
            .map(|(_, _, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(_, n, _)| n == name)
            .map(|(_, _, v)| v.as_str())
    }

    /// Where they came from.
    pub fn source(&self) -> Source {
        self.source
    }

    /// The parameters with the authentication group replaced by `auth`: a query string
    /// (other segments byte for byte) or a JSON body.
    pub fn with_auth(&self, auth: &Auth) -> String {
        let replacement: Vec<(&str, &str)> = match auth {
            Auth::Eap => Vec::new(),
            Auth::Fast { imsi, token } => vec![("IMSI", imsi), ("token", token)],
            Auth::Temporary { token } => vec![("temporary_token", token)],
        };
        let is_auth = |n: &str| matches!(n, "EAP_ID" | "IMSI" | "token" | "temporary_token");
        let mut out: Vec<(String, String, String)> = Vec::new();
        let mut placed = false;
        for (raw, name, value) in &self.pairs {
            if is_auth(name) {
                if !placed {
                    placed = true;
                    for (n, v) in &replacement {
                        let raw = format!("{}={}", encode(n), encode(v));
                        out.push((raw, (*n).to_owned(), (*v).to_owned()));
                    }
                }
                continue;
            }
            out.push((raw.clone(), name.clone(), value.clone()));
        }
        match self.source {
            Source::Query => out
                .iter()
                .map(|(raw, _, _)| raw.as_str())
                .collect::<Vec<_>>()
                .join("&"),
            Source::Json => {
                let map: serde_json::Map<String, serde_json::Value> = out
                    .into_iter()
                    .map(|(_, n, v)| (n, serde_json::Value::String(v)))
                    .collect();
                serde_json::Value::Object(map).to_string()
            }
        }
    }
}

/// A validated TS.43 request.
#[derive(Debug, Clone)]
pub struct Ts43Request {
    /// Its parameters.
    pub params: Params,
    /// The ODSA operation (`None`: a plain entitlement configuration request).
    pub operation: Option<Operation>,
    /// `operation_type`, when given.
    pub operation_type: Option<u8>,
    /// The authentication group.
    pub auth: Auth,
    /// The app IDs (`app`, repeated, or `[a,b]` in POST mode).
    pub apps: Vec<String>,
    /// `terminal_id`, the device (rate limits key on its hash).
    pub terminal_id: Option<String>,
    /// `operation_targets` of AcquireTemporaryToken.
    pub targets: Vec<Operation>,
}

/// Validates `params` as one TS.43 request.
pub fn request(params: Params) -> Result<Ts43Request, HubError> {
    let operation_type = match params.get("operation_type") {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .map_err(|_| Ts43Refusal::Malformed.because("operation_type is not an integer"))?,
        ),
    };
    let auth = auth(&params)?;
    let operation = match params.get("operation") {
        None => None,
        Some(name) => Some(
            Operation::parse(name)
                .ok_or_else(|| Ts43Refusal::InvalidOperation.because("unknown operation"))?,
        ),
    };
    for (_, name, value) in &params.pairs {
        check_format(name, value).map_err(|reason| {
            Ts43Refusal::InvalidParameter.because(format!("`{name}` {reason}"))
        })?;
    }
    let operation_type = match (operation, operation_type) {
        (_, None) => None,
        (op, Some(t)) => {
            let allowed: &[u8] = op.and_then(Operation::types).unwrap_or(&[]);
            match u8::try_from(t).ok().filter(|t| allowed.contains(t)) {
                Some(t) => Some(t),
                None => {
                    return Err(Ts43Refusal::InvalidParameter.because(format!(
                        "operation_type {t} is not one this operation takes"
                    )))
                }
            }
        }
    };
    if operation.and_then(Operation::types).is_some() && operation_type.is_none() {
        return Err(Ts43Refusal::InvalidParameter.because("operation_type is missing"));
    }
    let targets = match params.get("operation_targets") {
        Some(list) => list
            .split(',')
            .map(|t| {
                Operation::parse(t.trim()).ok_or_else(|| {
                    Ts43Refusal::InvalidParameter
                        .because("operation_targets names an unknown operation")
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    if operation == Some(Operation::AcquireTemporaryToken) && targets.is_empty() {
        return Err(Ts43Refusal::InvalidParameter.because("operation_targets is missing"));
    }
    let apps = params
        .all("app")
        .flat_map(|v| v.trim_matches(|c| c == '[' || c == ']').split(','))
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect();
    let terminal_id = params.get("terminal_id").map(str::to_owned);
    Ok(Ts43Request {
        params,
        operation,
        operation_type,
        auth,
        apps,
        terminal_id,
        targets,
    })
}

/// Exactly one of `EAP_ID`, `IMSI`+`token`, `temporary_token`.
fn auth(params: &Params) -> Result<Auth, HubError> {
    let eap = params.get("EAP_ID");
    let imsi = params.get("IMSI");
    let token = params.get("token");
    let temporary = params.get("temporary_token");
    let groups = usize::from(eap.is_some())
        + usize::from(token.is_some())
        + usize::from(temporary.is_some());
    let malformed = |why: &str| Err(Ts43Refusal::Malformed.because(why.to_owned()));
    if groups != 1 {
        return malformed(
            "exactly one authentication group is needed: EAP_ID, IMSI and token, or temporary_token",
        );
    }
    match (eap, imsi, token, temporary) {
        (Some(_), None, None, None) => Ok(Auth::Eap),
        (None, Some(imsi), Some(token), None) => Ok(Auth::Fast {
            imsi: imsi.to_owned(),
            token: token.to_owned(),
        }),
        (None, None, None, Some(token)) => Ok(Auth::Temporary {
            token: token.to_owned(),
        }),
        (None, None, Some(_), None) => malformed("token without IMSI"),
        _ => malformed("IMSI belongs only with token"),
    }
}

/// Names the parameter, never its value (it may be a token or an IMSI).
fn bad_encoding(what: &str) -> HubError {
    let shown: String = what.chars().take(40).collect();
    Ts43Refusal::Malformed.because(format!("bad percent-encoding in {shown}"))
}

/// Decodes a query component (`+` is a space); `None` on a broken escape or non-UTF-8.
pub fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Encodes a query component: unreserved characters stay, everything else is `%XX`.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

mod format;

use format::check_format;

#[cfg(test)]
mod tests;

//! TS.43 (GSMA Service Entitlement Configuration, ODSA) through the hub: devices reach
//! their carrier's entitlement server (ECS) at `https://<hub>/<base path of the carrier>`,
//! and the hub relays EAP-AKA, checks both directions against the protocol, keeps the
//! eSIM transfer's temporary tokens and steps in the ledger, smooths over carrier quirks
//! that break Android phones, and measures each carrier against Android's requirements.
//!
//! The modules:
//! * [`operations`] — the request: parameters from the query or the JSON body, the one
//!   authentication group, formats and length caps;
//! * [`document`] — the answer: XML (`wap-provisioningdoc`) and JSON characteristic trees,
//!   parsed and written back;
//! * [`eap`] — the EAP-AKA relay: envelope and packet checks (the hub never computes AKA);
//! * [`answer`] — the answer's contract per operation (`OperationResult`, `DownloadInfo`,
//!   expiry, …);
//! * [`normalise`] — the per-carrier fixes for Android phones;
//! * [`vault`] — the source session kept, encrypted in memory, to bridge spent tokens;
//! * [`bridge`] — keeping a spent temporary token usable, and the older client's `TOKEN`;
//! * [`record`] — what each answer settles in the transfer ledger and the scores;
//! * [`scoring`] — each carrier measured against the Android page's requirements;
//! * [`exchange`] — the [`crate::proxy::Protocol`] implementation: the walk's phases.
//!
//! Tokens, IMSIs, MSISDNs, ICCIDs, EIDs and cookies never reach a log line in clear: logs
//! carry [`fingerprint`]s (the first 12 hex digits of a SHA-256).

pub mod answer;
pub mod bridge;
pub mod document;
pub mod eap;
pub mod exchange;
pub mod normalise;
pub mod operations;
pub mod record;
pub mod scoring;
pub mod vault;

use crate::ledger::transfers::TransferLedger;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The document format of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `text/vnd.wap.connectivity-xml`.
    #[default]
    Xml,
    /// `application/json`.
    Json,
}

/// The XML content type AOSP names.
pub const XML: &str = "text/vnd.wap.connectivity-xml";
/// The JSON content type.
pub const JSON: &str = "application/json";
/// The EAP relay envelope's content type.
pub const EAP_RELAY: &str = "application/vnd.gsma.eap-relay.v1.0+json";

impl Format {
    /// Its content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Xml => XML,
            Format::Json => JSON,
        }
    }

    /// The format of a body by its content type (AOSP: containing "xml" or "json"), if any.
    pub fn of_content_type(value: &str) -> Option<Format> {
        let value = value.to_ascii_lowercase();
        if value.contains("xml") || value.contains("text/vnd.wap.connectivity") {
            Some(Format::Xml)
        } else if value.contains("json") {
            Some(Format::Json)
        } else {
            None
        }
    }

    /// What a device asked for with `Accept`: XML whenever it accepts XML (the AOSP ODSA
    /// parser reads only XML, although the library's default Accept names JSON first),
    /// JSON only when it names JSON and not XML.
    pub fn of_accept(accept: Option<&str>) -> Format {
        let accept = accept.unwrap_or("").to_ascii_lowercase();
        if accept.contains("json") && !accept.contains("xml") {
            Format::Json
        } else {
            Format::Xml
        }
    }
}

/// Why the hub refuses a TS.43 request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ts43Refusal {
    /// An unknown `operation`: HTTP 200, `OperationResult` 101.
    InvalidOperation,
    /// A parameter breaks its format, cap or enumeration: HTTP 200, `OperationResult` 102.
    InvalidParameter,
    /// The request cannot be read as TS.43 at all (no or several authentication groups,
    /// a non-integer `operation_type`, a broken EAP relay envelope): 400.
    Malformed,
    /// The temporary token is unknown to this carrier, expired or bridging is impossible: 401.
    TokenUnknown,
    /// The operation is outside the temporary token's `OperationTargets`, or the token's
    /// one transfer was already requested: 403.
    TokenNotPermitted,
    /// No carrier at this path: 404.
    NoCarrier,
    /// Neither GET nor POST: 405.
    MethodNotAllowed,
}

impl Ts43Refusal {
    /// The `OperationResult` of refusals answered inside a document.
    pub fn operation_result(self) -> Option<u16> {
        match self {
            Ts43Refusal::InvalidOperation => Some(101),
            Ts43Refusal::InvalidParameter => Some(102),
            _ => None,
        }
    }

    /// A metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Ts43Refusal::InvalidOperation => "ts43_invalid_operation",
            Ts43Refusal::InvalidParameter => "ts43_invalid_parameter",
            Ts43Refusal::Malformed => "ts43_malformed",
            Ts43Refusal::TokenUnknown => "ts43_token_unknown",
            Ts43Refusal::TokenNotPermitted => "ts43_token_not_permitted",
            Ts43Refusal::NoCarrier => "ts43_no_carrier",
            Ts43Refusal::MethodNotAllowed => "ts43_method_not_allowed",
        }
    }

    /// The error carrying this refusal.
    pub fn because(self, reason: impl Into<String>) -> crate::error::HubError {
        crate::error::HubError::Ts43 {
            refusal: self,
            reason: reason.into(),
        }
    }
}

/// SHA-256 of a secret value, hex: how the ledger knows tokens.
pub fn token_hash(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// A short, non-reversible label for logs: the first 12 hex digits of the SHA-256.
pub fn fingerprint(value: &str) -> String {
    let mut hash = token_hash(value);
    hash.truncate(12);
    hash
}

/// How long a source's eligibility answer waits for its AcquireTemporaryToken.
pub const ELIGIBILITY_MEMORY_MS: u64 = 10 * 60 * 1000;

/// The hub's TS.43 state shared by the protocol, the admin API and the sweeper.
#[derive(Clone)]
pub struct Ts43State {
    /// Temporary tokens and transfers.
    pub transfers: Arc<dyn TransferLedger>,
    /// Source sessions kept for bridging, encrypted.
    pub vault: Arc<vault::Vault>,
    /// The last eligibility answer per (carrier, IMSI hash), to open the transfer with.
    pub eligibility: Arc<dashmap::DashMap<(Arc<str>, String), Eligibility>>,
    /// EAP sessions waiting for their relay POST, by the hash of the ECS's cookie.
    pub eap_sessions: Arc<dashmap::DashMap<String, EapPending>>,
}

/// When a source's eligibility was answered (Unix ms) and its outcome.
pub type Eligibility = (u64, Option<u16>);

/// What the first request of an EAP-AKA round asked, kept until its relay POST (which
/// carries only the cookie) brings the document back.
#[derive(Debug, Clone)]
pub struct EapPending {
    /// The operation of the first request.
    pub operation: Option<operations::Operation>,
    /// Its `operation_type`.
    pub operation_type: Option<u8>,
    /// The subscriber's IMSI from the `EAP_ID` (hashed before any use as a key).
    pub imsi: Option<String>,
    /// When (Unix ms).
    pub at: u64,
}

impl Ts43State {
    /// State over `transfers`, with a fresh vault (new random key).
    pub fn new(transfers: Arc<dyn TransferLedger>) -> Ts43State {
        Ts43State {
            transfers,
            vault: Arc::new(vault::Vault::new()),
            eligibility: Arc::default(),
            eap_sessions: Arc::default(),
        }
    }

    /// Forgets what is older than the memory of each map (the sweeper calls it).
    pub fn prune(&self, now: u64) {
        self.eligibility
            .retain(|_, (t, _)| t.saturating_add(ELIGIBILITY_MEMORY_MS) > now);
        self.eap_sessions
            .retain(|_, p| p.at.saturating_add(ELIGIBILITY_MEMORY_MS) > now);
        self.vault.purge(now);
    }

    /// Notes a source's eligibility answer.
    pub fn remember_eligibility(
        &self,
        carrier: &Arc<str>,
        imsi: &str,
        at: u64,
        outcome: Option<u16>,
    ) {
        if self.eligibility.len() > 10_000 {
            self.eligibility
                .retain(|_, (t, _)| t.saturating_add(ELIGIBILITY_MEMORY_MS) > at);
        }
        self.eligibility
            .insert((carrier.clone(), token_hash(imsi)), (at, outcome));
    }

    /// Takes the eligibility answer noted for this source, if recent.
    pub fn recall_eligibility(
        &self,
        carrier: &Arc<str>,
        imsi: &str,
        now: u64,
    ) -> Option<(u64, Option<u16>)> {
        self.eligibility
            .remove(&(carrier.clone(), token_hash(imsi)))
            .map(|(_, v)| v)
            .filter(|(t, _)| t.saturating_add(ELIGIBILITY_MEMORY_MS) > now)
    }
}

//! Keeping a temporary token usable for all its targets until it expires, when the ECS
//! spends it on first use (notes §1.9 gotcha 3, §4), and giving the older AOSP client a
//! `TOKEN` it can poll AcquireConfiguration with.
//!
//! * The first request on a temporary token goes to the ECS with the device's own token.
//!   Once the ECS has answered one, later requests on it are **bridged**: the hub asks the
//!   ECS for a fresh temporary token for the same targets on the source's behalf (an
//!   AcquireTemporaryToken with the source session kept in the [`super::vault`]) and sends
//!   the device's request with it.
//! * An answer given on a temporary token that carries no `TOKEN` gets one minted by the
//!   hub (random, 256 bits, known to the ledger only by its SHA-256, valid until the
//!   temporary token expires). A request presenting it as `token` (with any `IMSI`) is the
//!   older client's poll: it is routed by the temporary token's record and always bridged.

use super::document::Document;
use super::operations::{encode, Operation};
use super::vault::SourceSession;
use super::{normalise, token_hash, Format, Ts43Refusal, XML};
use crate::config::Carrier;
use crate::error::HubError;
use crate::ledger::transfers::TemporaryToken;
use crate::proxy::Cx;
use crate::upstream::AnswerHeaders;
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{ACCEPT, USER_AGENT};
use http::{Request, StatusCode};

/// Parameters of the source's request that go into the bridging AcquireTemporaryToken
/// (the ECS binds its fast-auth token to several of them).
const KEPT: [&str; 9] = [
    "terminal_id",
    "app_version",
    "app_name",
    "app",
    "terminal_vendor",
    "terminal_model",
    "terminal_sw_version",
    "vers",
    "entitlement_version",
];

/// The source session of an AcquireTemporaryToken request made with `IMSI` + `token`.
pub fn source_session(
    imsi: &str,
    token: &str,
    params: &super::operations::Params,
) -> SourceSession {
    let mut kept = Vec::new();
    for name in KEPT {
        for value in params.all(name) {
            kept.push((name.to_owned(), value.to_owned()));
        }
    }
    SourceSession {
        imsi: imsi.to_owned(),
        token: token.to_owned(),
        params: kept,
        targets: params
            .get("operation_targets")
            .unwrap_or_default()
            .to_owned(),
    }
}

/// A fresh carrier temporary token for `record`'s transfer, obtained with the kept
/// source session. 401 when there is no session to bridge with (the hub restarted, or
/// the token was acquired by full authentication).
pub async fn fresh_token(
    cx: &mut Cx,
    carrier: &Carrier,
    record: &TemporaryToken,
    now: u64,
) -> Result<String, HubError> {
    let unusable = || {
        Ts43Refusal::TokenUnknown
            .because("the temporary token was spent by the carrier and cannot be bridged")
    };
    let state = cx.hub.ts43().clone();
    let session = state.vault.open(&record.hash, now).ok_or_else(unusable)?;
    let mut query = format!(
        "IMSI={}&token={}",
        encode(&session.imsi),
        encode(&session.token)
    );
    for (name, value) in &session.params {
        query.push_str(&format!("&{}={}", encode(name), encode(value)));
    }
    query.push_str(&format!(
        "&operation={}&operation_targets={}",
        Operation::AcquireTemporaryToken.name(),
        encode(&session.targets)
    ));
    let upstream = cx
        .snap
        .upstream(&carrier.id)
        .cloned()
        .ok_or_else(|| HubError::Internal(format!("no ECS client for {}", carrier.id)))?;
    let path = if carrier.ecs.path.is_empty() { "/" } else { "" };
    let uri = upstream
        .uri(&format!("{path}?{query}"))
        .map_err(HubError::Internal)?;
    let mut request = Request::new(Bytes::new());
    *request.uri_mut() = uri;
    request
        .headers_mut()
        .insert(ACCEPT, http::HeaderValue::from_static(XML));
    request.headers_mut().insert(
        USER_AGENT,
        http::HeaderValue::from_static("aidhub-ts43-bridge"),
    );
    let answer = upstream
        .exchange(
            request,
            carrier.timeout,
            cx.snap.config.max_body_bytes,
            AnswerHeaders::All,
        )
        .await
        .map_err(|fault| HubError::Upstream {
            partner: carrier.id.to_string(),
            fault,
        })?;
    if answer.status != StatusCode::OK {
        tracing::warn!(carrier = %carrier.id, status = answer.status.as_u16(), "the ECS refused the bridging AcquireTemporaryToken");
        return Err(unusable());
    }
    let format = answer
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Format::of_content_type)
        .unwrap_or(Format::Xml);
    let doc = Document::parse(&answer.body, format).map_err(|_| unusable())?;
    let fresh = doc
        .application()
        .filter(|a| a.parm("OperationResult") == Some("1"))
        .and_then(|a| a.parm("TemporaryToken"))
        .filter(|t| !t.is_empty())
        .ok_or_else(unusable)?
        .to_owned();
    if let Some(rotated) = doc.token() {
        // The ECS rotates fast-auth tokens on use: keep the newest.
        let next = SourceSession {
            token: rotated.to_owned(),
            ..session
        };
        state
            .vault
            .keep(&record.hash, &next, record.expires_at, now);
    }
    cx.hub
        .metrics()
        .ts43_normalisations
        .inc((carrier.id.clone(), normalise::TEMPORARY_TOKEN_BRIDGED));
    Ok(fresh)
}

/// A new random token for the older client (URL-safe Base64 of 32 random bytes).
pub fn mint() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether a request's `token` is one the hub minted for `record`.
pub fn is_bridge_token(record: &TemporaryToken, token: &str) -> bool {
    record.bridge_hash.as_deref() == Some(token_hash(token).as_str())
}

//! TS.43 in the walk: the [`Protocol`] implementation for the device-facing listener.
//!
//! * **head** — the carrier by the request's path (its base path, exactly; the EAP relay
//!   POST comes to the same bare URL), GET or POST, the document format the device asked
//!   for (error answers use it);
//! * **limit** — the carrier's bucket (the device's, keyed by the hash of `terminal_id`,
//!   once the parameters are read);
//! * **call** — the parameters checked ([`super::operations`]), the EAP relay envelope
//!   checked ([`super::eap`]), a temporary token routed by its ledger record (unknown or
//!   expired: 401; outside its targets or a second transfer: 403) and bridged when the ECS
//!   has spent it ([`super::bridge`]), `Accept` narrowed to XML on ODSA operations; the
//!   rest of the request crosses byte for byte (query, cookies, body);
//! * **answer** — the document checked ([`super::answer`]) and normalised
//!   ([`super::normalise`]), its outcome recorded ([`super::record`]), then relayed with
//!   its cookies, `Retry-After` and content type. EAP challenges pass unchanged.

mod respond;

use super::operations::{self, Auth, Operation, Params, Ts43Request, TRANSFER};
use super::vault::SourceSession;
use super::{
    bridge, eap, fingerprint, normalise, token_hash, EapPending, Format, Ts43Refusal, XML,
};
use crate::config::Carrier;
use crate::error::{Dialect, HubError};
use crate::hub::Hub;
use crate::ledger::transfers::{Changed, Stage, Step, TemporaryToken, TokenChange};
use crate::proxy::{Cx, Outbound, Protocol};
use crate::upstream::{Answer, AnswerHeaders, Upstream};
use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, ACCEPT, ACCEPT_LANGUAGE, CACHE_CONTROL, CONTENT_TYPE, COOKIE,
    LOCATION, RETRY_AFTER, SET_COOKIE, USER_AGENT,
};
use http::request::Parts;
use http::{Method, Request, Response};
use http_body_util::Full;
use std::sync::Arc;

/// The TS.43 protocol (its state lives in [`Hub::ts43`]).
pub struct Ts43Hub;

/// What the head established.
pub struct Head {
    carrier: Arc<Carrier>,
    relay: bool,
    format: Format,
}

/// An admitted call, carried to the answer.
pub struct Call {
    carrier: Arc<Carrier>,
    format: Format,
    operation: Option<Operation>,
    operation_type: Option<u8>,
    token: Option<TemporaryToken>,
    bridged: bool,
    imsi: Option<String>,
    source: Option<SourceSession>,
}

/// Request headers that cross to the ECS (the device's `Accept-Encoding` does not: the hub
/// reads every answer).
static PASSED_UP: [HeaderName; 4] = [CONTENT_TYPE, COOKIE, USER_AGENT, ACCEPT_LANGUAGE];
/// Answer headers that cross back to the device, byte for byte.
static PASSED_DOWN: [HeaderName; 4] = [SET_COOKIE, RETRY_AFTER, CACHE_CONTROL, LOCATION];

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    crate::aid1::lifecycle::now_ms()
}

fn device_label() -> Arc<str> {
    static DEVICE: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    DEVICE.get_or_init(|| Arc::from("device")).clone()
}

impl Protocol for Ts43Hub {
    type Head = Head;
    type Call = Call;

    fn head(&self, cx: &mut Cx, parts: &Parts) -> Result<Head, HubError> {
        let accept = parts.headers.get(ACCEPT).and_then(|v| v.to_str().ok());
        let format = Format::of_accept(accept);
        cx.dialect = Dialect::Ts43 { format, app: None };
        cx.record.caller = Some(device_label());
        let carrier = cx
            .snap
            .carrier_at(parts.uri.path())
            .cloned()
            .ok_or_else(|| Ts43Refusal::NoCarrier.because("no carrier at this path"))?;
        cx.record.target = Some(carrier.id.clone());
        if parts.method != Method::GET && parts.method != Method::POST {
            return Err(Ts43Refusal::MethodNotAllowed.because("TS.43 takes GET or POST"));
        }
        let content_type = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let relay = parts.method == Method::POST
            && content_type.is_some_and(|c| c.to_ascii_lowercase().contains("eap-relay"));
        cx.record.function = Some(if relay { "EapRelay" } else { "Entitlement" });
        Ok(Head {
            carrier,
            relay,
            format,
        })
    }

    async fn limit(&self, cx: &mut Cx, head: &Head) -> Result<(), HubError> {
        match head.carrier.limits.rate {
            Some(spec) => cx
                .hub
                .limits()
                .admit_keyed(&head.carrier.id, "ts43_carrier", spec),
            None => Ok(()),
        }
    }

    async fn call(
        &self,
        cx: &mut Cx,
        head: Head,
        parts: Parts,
        body: Bytes,
    ) -> Result<Outbound<Call>, HubError> {
        let result = admit(cx, head, &parts, body).await;
        if let (Err(HubError::Ts43 { refusal, .. }), Some(carrier)) = (&result, &cx.record.target) {
            cx.hub
                .metrics()
                .ts43_device_violations
                .inc((carrier.clone(), refusal.reason()));
        }
        result
    }

    async fn answer(
        &self,
        cx: &mut Cx,
        call: Call,
        answer: Answer,
    ) -> Result<Response<Full<Bytes>>, HubError> {
        respond::respond(cx, call, answer).await
    }

    async fn failed(&self, cx: &mut Cx, call: Call, _error: &HubError) {
        if let (Some(token), Some(op)) = (&call.token, call.operation) {
            let note = Some(format!("{} got no answer from the ECS", op.name()));
            let at = now_ms();
            let _ = cx
                .hub
                .ts43()
                .transfers
                .step(
                    token.transfer,
                    Step {
                        at,
                        stage: Stage::Failed,
                        note,
                    },
                )
                .await;
        }
    }
}

async fn admit(
    cx: &mut Cx,
    head: Head,
    parts: &Parts,
    body: Bytes,
) -> Result<Outbound<Call>, HubError> {
    let Head {
        carrier,
        relay,
        format,
    } = head;
    let mut call = Call {
        carrier: carrier.clone(),
        format,
        operation: None,
        operation_type: None,
        token: None,
        bridged: false,
        imsi: None,
        source: None,
    };
    if relay {
        let packet = eap::open(&body).map_err(|r| Ts43Refusal::Malformed.because(r))?;
        let kind = eap::classify(&packet).map_err(|r| Ts43Refusal::Malformed.because(r))?;
        if !kind.from_device() {
            return Err(Ts43Refusal::Malformed.because("a device sends only EAP responses"));
        }
        cx.hub
            .metrics()
            .ts43_eap
            .inc((carrier.id.clone(), kind.name()));
        if let Some(pending) = pending_of(cx, parts) {
            call.operation = pending.operation;
            call.operation_type = pending.operation_type;
            call.imsi = pending.imsi;
        }
        let (request, upstream) =
            upstream_request(cx, &carrier, parts, parts.uri.query(), body, None)?;
        return Ok(outbound(call, request, upstream));
    }
    let params = if parts.method == Method::POST {
        Params::from_json(&body)?
    } else {
        Params::from_query(parts.uri.query().unwrap_or(""))?
    };
    let request = operations::request(params)?;
    call.operation = request.operation;
    call.operation_type = request.operation_type;
    cx.record.function = Some(request.operation.map_or("Entitlement", Operation::name));
    cx.dialect = Dialect::Ts43 {
        format,
        app: request.apps.first().cloned(),
    };
    if let (Some(spec), Some(terminal)) = (carrier.limits.device, &request.terminal_id) {
        let key: Arc<str> = Arc::from(format!("{}/{}", carrier.id, fingerprint(terminal)));
        cx.hub.limits().admit_keyed(&key, "ts43_device", spec)?;
    }
    let now = now_ms();
    let mut auth = None;
    match &request.auth {
        Auth::Temporary { token } => {
            let record = routed(cx, &carrier, &request, &token_hash(token), false, now).await?;
            if record.spent_upstream && carrier.normalise.keep_temporary_token {
                let fresh = bridge::fresh_token(cx, &carrier, &record, now).await?;
                auth = Some(Auth::Temporary { token: fresh });
                call.bridged = true;
            }
            call.token = Some(record);
        }
        Auth::Fast { imsi, token } => {
            let hash = token_hash(token);
            let bridged = cx.hub.ts43().transfers.token(&hash).await.map_err(down)?;
            if bridged.is_some_and(|t| t.hash != hash && t.carrier == *carrier.id) {
                // The older client polling with the TOKEN the hub gave it.
                let record = routed(cx, &carrier, &request, &hash, true, now).await?;
                let fresh = bridge::fresh_token(cx, &carrier, &record, now).await?;
                auth = Some(Auth::Temporary { token: fresh });
                call.bridged = true;
                call.token = Some(record);
            } else {
                call.imsi = Some(imsi.clone());
                if request.operation == Some(Operation::AcquireTemporaryToken) {
                    call.source = Some(bridge::source_session(imsi, token, &request.params));
                }
            }
        }
        Auth::Eap => {
            call.imsi = request.params.get("EAP_ID").and_then(imsi_of_nai);
        }
    }
    if let (Some(token), Some(Operation::ManageSubscription), Some(TRANSFER)) =
        (&call.token, call.operation, call.operation_type)
    {
        cx.hub
            .ts43()
            .transfers
            .step(
                token.transfer,
                Step {
                    at: now,
                    stage: Stage::TransferRequested,
                    note: None,
                },
            )
            .await
            .map_err(down)?;
    }
    let accept = narrowed_accept(cx, &carrier, parts, &request, format);
    let (query, body) = match (&auth, request.params.source()) {
        (Some(a), operations::Source::Query) => (Some(request.params.with_auth(a)), body),
        (Some(a), operations::Source::Json) => (
            parts.uri.query().map(str::to_owned),
            Bytes::from(request.params.with_auth(a)),
        ),
        (None, _) => (parts.uri.query().map(str::to_owned), body),
    };
    let (request, upstream) =
        upstream_request(cx, &carrier, parts, query.as_deref(), body, accept)?;
    Ok(outbound(call, request, upstream))
}

fn outbound(call: Call, request: Request<Bytes>, upstream: Arc<Upstream>) -> Outbound<Call> {
    Outbound {
        target: call.carrier.id.clone(),
        upstream,
        timeout: call.carrier.timeout,
        call,
        request,
        // Cookies and the content type pass back to the device.
        answer_headers: AnswerHeaders::All,
    }
}

fn down(e: crate::ledger::LedgerError) -> HubError {
    tracing::error!(cause = %e, "transfer ledger unavailable");
    HubError::LedgerUnavailable
}

/// The IMSI inside an AKA permanent identity `0<imsi>@realm`.
fn imsi_of_nai(nai: &str) -> Option<String> {
    let user = nai.split('@').next()?;
    let imsi = user.strip_prefix('0')?;
    (imsi.len() >= 6 && imsi.bytes().all(|b| b.is_ascii_digit())).then(|| imsi.to_owned())
}

/// The temporary token's record, checked for this request: its carrier, expiry, targets
/// and — for ManageSubscription(3) — that its one transfer was not requested yet.
async fn routed(
    cx: &mut Cx,
    carrier: &Carrier,
    request: &Ts43Request,
    hash: &str,
    via_bridge: bool,
    now: u64,
) -> Result<TemporaryToken, HubError> {
    let unknown = || Ts43Refusal::TokenUnknown.because("unknown or expired temporary token");
    let record = cx.hub.ts43().transfers.token(hash).await.map_err(down)?;
    let record = record
        .filter(|r| r.carrier == *carrier.id && (r.hash == hash) != via_bridge)
        .ok_or_else(unknown)?;
    if record.expires_at <= now {
        return Err(unknown());
    }
    let op = request.operation.ok_or_else(|| {
        Ts43Refusal::TokenNotPermitted.because("a temporary token serves ODSA operations only")
    })?;
    if !record.targets.iter().any(|t| t == op.name()) {
        return Err(Ts43Refusal::TokenNotPermitted.because(format!(
            "{} is not a target of this temporary token",
            op.name()
        )));
    }
    if op == Operation::ManageSubscription && request.operation_type == Some(TRANSFER) {
        let changed = cx
            .hub
            .ts43()
            .transfers
            .change_token(&record.hash, TokenChange::RequestTransfer)
            .await
            .map_err(down)?;
        return match changed {
            Changed::Done(record) => Ok(record),
            Changed::Refused(_) => Err(Ts43Refusal::TokenNotPermitted
                .because("this temporary token's transfer was already requested")),
            Changed::Unknown => Err(unknown()),
        };
    }
    Ok(record)
}

/// `Accept: text/vnd.wap.connectivity-xml` towards the ECS on ODSA operations, when the
/// carrier's switch is on and the device reads XML.
fn narrowed_accept(
    cx: &Cx,
    carrier: &Carrier,
    parts: &Parts,
    request: &Ts43Request,
    format: Format,
) -> Option<HeaderValue> {
    let given = parts
        .headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if request.operation.is_none() || !carrier.normalise.xml_for_odsa || format != Format::Xml {
        return None;
    }
    if given.to_ascii_lowercase().contains("json") || given.is_empty() {
        cx.hub
            .metrics()
            .ts43_normalisations
            .inc((carrier.id.clone(), normalise::XML_FOR_ODSA));
    }
    Some(HeaderValue::from_static(XML))
}

fn upstream_request(
    cx: &Cx,
    carrier: &Carrier,
    parts: &Parts,
    query: Option<&str>,
    body: Bytes,
    accept: Option<HeaderValue>,
) -> Result<(Request<Bytes>, Arc<Upstream>), HubError> {
    let upstream = cx
        .snap
        .upstream(&carrier.id)
        .cloned()
        .ok_or_else(|| HubError::Internal(format!("no ECS client for {}", carrier.id)))?;
    let path = if carrier.ecs.path.is_empty() { "/" } else { "" };
    let tail = match query {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    };
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = upstream.uri(&tail).map_err(HubError::Internal)?;
    let headers = request.headers_mut();
    for name in &PASSED_UP {
        for value in parts.headers.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    match accept.or_else(|| parts.headers.get(ACCEPT).cloned()) {
        Some(value) => headers.insert(ACCEPT, value),
        None => None,
    };
    Ok((request, upstream))
}

/// The EAP session a relay POST continues, by its cookie.
fn pending_of(cx: &Cx, parts: &Parts) -> Option<EapPending> {
    let cookies = parts.headers.get_all(COOKIE);
    let sessions = &cx.hub.ts43().eap_sessions;
    cookies
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| sessions.get(&token_hash(c.trim())).map(|p| p.clone()))
}

/// Every `ledger.sweep_interval`: forget expired tokens, transfers past retention, kept
/// sessions past their token, stale EAP rounds.
pub async fn sweeper(hub: Hub, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        let every = hub.snapshot().config.ledger.sweep_interval;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let now = now_ms();
        hub.ts43().prune(now);
        let retention = hub.snapshot().config.ledger.retention.as_millis() as u64;
        match hub.ts43().transfers.sweep_transfers(now, retention).await {
            Ok(n) if n > 0 => tracing::info!(records = n, "TS.43 ledger swept"),
            Ok(_) => {}
            Err(e) => tracing::warn!(cause = %e, "TS.43 ledger sweep failed"),
        }
    }
}

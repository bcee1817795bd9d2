//! The answer phase of the TS.43 exchange: EAP challenges relayed unchanged (their cookie
//! remembered for the relay POST), documents parsed, normalised, given the older client's
//! `TOKEN`, checked against the contract, recorded, and relayed with the ECS's cookies,
//! `Retry-After` and content type.

use super::{down, now_ms, Call, PASSED_DOWN};
use crate::config::Carrier;
use crate::error::HubError;
use crate::hub::Hub;
use crate::ledger::transfers::{Changed, TemporaryToken, TokenChange};
use crate::proxy::Cx;
use crate::ts43::document::Document;
use crate::ts43::record::{self, Context};
use crate::ts43::{bridge, eap, normalise, token_hash, EapPending, Format};
use crate::upstream::Answer;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, SET_COOKIE};
use http::{Response, StatusCode};
use http_body_util::Full;
use std::sync::Arc;

/// Remembers the operation of an EAP round by the cookies the ECS set.
fn remember_round(hub: &Hub, call: &Call, answer: &Answer) {
    for value in answer.headers.get_all(SET_COOKIE) {
        let Some(pair) = value.to_str().ok().and_then(|v| v.split(';').next()) else {
            continue;
        };
        hub.ts43().eap_sessions.insert(
            token_hash(pair.trim()),
            EapPending {
                operation: call.operation,
                operation_type: call.operation_type,
                imsi: call.imsi.clone(),
                at: now_ms(),
            },
        );
    }
}

fn content_format(answer: &Answer) -> Option<Format> {
    answer
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Format::of_content_type)
}

/// The answer phase.
pub(super) async fn respond(
    cx: &mut Cx,
    call: Call,
    answer: Answer,
) -> Result<Response<Full<Bytes>>, HubError> {
    let carrier = call.carrier.id.clone();
    let metrics = cx.hub.metrics();
    let ok = answer.status == StatusCode::OK;
    if let (Some(token), true, false) = (&call.token, ok, call.bridged) {
        // The ECS answered on the device's own temporary token: it may have spent it.
        let _ = cx
            .hub
            .ts43()
            .transfers
            .change_token(&token.hash, TokenChange::Spent)
            .await
            .map_err(down)?;
    }
    let format = content_format(&answer);
    if ok && format == Some(Format::Json) && eap::is_envelope(&answer.body) {
        let kind = eap::open(&answer.body).and_then(|p| eap::classify(&p));
        match kind {
            Ok(kind) => metrics.ts43_eap.inc((carrier.clone(), kind.name())),
            Err(reason) => return Err(violation(cx, &carrier, "eap_packet", &reason, true)),
        }
        remember_round(&cx.hub, &call, &answer);
        return Ok(relay(&answer, None));
    }
    let business = !ok && call.carrier.normalise.business_outcomes_as_200 && format.is_some();
    let doc = match format {
        Some(f) if ok || business => match Document::parse(&answer.body, f) {
            Ok(doc) => Some((doc, f)),
            Err(reason) if ok && call.operation.is_some() => {
                return Err(violation(cx, &carrier, "malformed_document", &reason, true))
            }
            Err(_) => None,
        },
        _ => None,
    };
    let Some((mut doc, answered_in)) = doc.filter(|(d, _)| {
        ok || d
            .application()
            .and_then(|a| a.parm("OperationResult"))
            .is_some()
    }) else {
        if ok && call.operation.is_some() {
            return Err(violation(
                cx,
                &carrier,
                "content_type",
                "no XML or JSON document",
                true,
            ));
        }
        return Ok(relay(&answer, None));
    };
    let mut changed = false;
    if !ok {
        violation(
            cx,
            &carrier,
            "non_200_business_outcome",
            "a business outcome with a non-200 status",
            false,
        );
        metrics
            .ts43_normalisations
            .inc((carrier.clone(), normalise::BUSINESS_OUTCOME_200));
        changed = true;
    }
    if call.operation.is_some() {
        for what in normalise::document(&mut doc, &call.carrier.normalise) {
            violation(cx, &carrier, what, "fixed by normalisation", false);
            metrics.ts43_normalisations.inc((carrier.clone(), what));
            changed = true;
        }
        if let Some(token) = &call.token {
            changed |= give_token(cx, &call.carrier, token, &mut doc).await?;
        }
    }
    let (outcome, findings) = crate::ts43::answer::check(call.operation, call.operation_type, &doc);
    let mut fatal = None;
    for f in &findings {
        let e = violation(cx, &carrier, f.what, &f.detail, f.fatal);
        if f.fatal && fatal.is_none() {
            fatal = Some(e);
        }
    }
    if let Some(e) = fatal {
        return Err(e);
    }
    let context = Context {
        carrier: &carrier,
        operation: call.operation,
        operation_type: call.operation_type,
        token: call.token.as_ref(),
        imsi: call.imsi.as_deref(),
        source: call.source.as_ref(),
        upstream: cx.record.upstream,
        now: now_ms(),
    };
    record::settle(cx.hub.ts43(), metrics, &context, &doc, &outcome).await?;
    let converted = call.operation.is_some()
        && call.carrier.normalise.xml_for_odsa
        && call.format == Format::Xml
        && answered_in == Format::Json;
    if converted {
        metrics
            .ts43_normalisations
            .inc((carrier.clone(), normalise::XML_FOR_ODSA));
    }
    let rewritten = (changed || converted).then(|| {
        let out = if converted { Format::Xml } else { answered_in };
        (doc.serialise(out), out)
    });
    Ok(relay(&answer, rewritten))
}

/// Gives the older client a `TOKEN` for its polls, once per temporary token.
async fn give_token(
    cx: &Cx,
    carrier: &Carrier,
    token: &TemporaryToken,
    doc: &mut Document,
) -> Result<bool, HubError> {
    if !carrier.normalise.token_for_older_clients
        || token.bridge_hash.is_some()
        || doc.token().is_some()
    {
        return Ok(false);
    }
    let minted = bridge::mint();
    let changed = cx
        .hub
        .ts43()
        .transfers
        .change_token(&token.hash, TokenChange::Bridge(token_hash(&minted)))
        .await
        .map_err(down)?;
    if !matches!(changed, Changed::Done(_)) {
        return Ok(false);
    }
    let validity = token.expires_at.saturating_sub(now_ms()) / 1000;
    normalise::add_token(doc, &minted, validity);
    cx.hub
        .metrics()
        .ts43_normalisations
        .inc((carrier.id.clone(), normalise::TOKEN_FOR_OLDER_CLIENTS));
    Ok(true)
}

/// Counts and logs a carrier's contract violation; the error to answer with when fatal.
fn violation(
    cx: &Cx,
    carrier: &Arc<str>,
    what: &'static str,
    detail: &str,
    fatal: bool,
) -> HubError {
    cx.hub
        .metrics()
        .ts43_violations
        .inc((carrier.clone(), what));
    tracing::warn!(carrier = %carrier, what, detail, fatal, "carrier answer breaks the TS.43 contract");
    HubError::Contract {
        partner: carrier.to_string(),
        reason: format!("{what}: {detail}"),
    }
}

/// The ECS's answer for the device: status (200 when a business outcome was lifted),
/// cookies, `Retry-After`, and the body unchanged or `rewritten`.
fn relay(answer: &Answer, rewritten: Option<(Bytes, Format)>) -> Response<Full<Bytes>> {
    let (body, content_type, status) = match rewritten {
        Some((body, format)) => (
            body,
            Some(HeaderValue::from_static(format.content_type())),
            StatusCode::OK,
        ),
        None => (
            answer.body.clone(),
            answer.headers.get(CONTENT_TYPE).cloned(),
            answer.status,
        ),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(ct) = content_type {
        headers.insert(CONTENT_TYPE, ct);
    }
    for name in &PASSED_DOWN {
        for value in answer.headers.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    response
}

//! AID1 in the walk: the [`Protocol`] implementation that binds a partner's certificate to its
//! `client-id` and credential, recognises the function, picks the target by `target-id`,
//! enforces who may call what towards whom, validates both directions, verifies account ids
//! and hands the lifecycle to [`super::lifecycle`].

use super::lifecycle::{self, Step};
use super::{Aid1Request, Credential as Presented, Function, Role, Route};
use crate::account_id::{self, AccountClaims, AccountIdError};
use crate::config::{Credential, Partner, PartnerId};
use crate::error::HubError;
use crate::ledger::Ledger;
use crate::proxy::{Cx, Outbound, Protocol};
use crate::upstream::{Answer, AnswerHeaders, Upstream};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::request::Parts;
use http::{Request, Response};
use http_body_util::Full;
use std::sync::Arc;
use std::time::Instant;

/// The AID1 protocol, with the ledger it keeps.
pub struct Aid1Hub {
    ledger: Arc<dyn Ledger>,
}

impl Aid1Hub {
    /// The protocol over `ledger`.
    pub fn new(ledger: Arc<dyn Ledger>) -> Aid1Hub {
        Aid1Hub { ledger }
    }
}

/// What the head established.
pub struct Head {
    caller: Arc<Partner>,
    target: Arc<Partner>,
    route: Route,
}

/// An admitted call, carried to the answer.
pub struct Call {
    function: Function,
    target: PartnerId,
    step: Step,
}

/// Whether a header crosses the hub unchanged; everything else (the caller's credential
/// included) stays behind. By name rather than by lookups in the map: one pass over the
/// request's few headers costs less than hashing each passed name.
fn passed(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-type" | "accept" | "cmp-request-id" | "correlation-id" | "client-id" | "target-id"
    )
}

impl Protocol for Aid1Hub {
    type Head = Head;
    type Call = Call;

    fn head(&self, cx: &mut Cx, parts: &Parts) -> Result<Head, HubError> {
        let caller = cx
            .snap
            .identify(&cx.conn.cert)
            .cloned()
            .ok_or(HubError::UnknownCertificate)?;
        cx.record.caller = Some(caller.id.clone());
        let headers = super::headers(&parts.headers)?;
        cx.record.correlation_id = Some(headers.correlation_id);
        cx.record.request_id = Some(headers.cmp_request_id);
        if headers.client_id != &*caller.id {
            return Err(HubError::ClientIdMismatch);
        }
        authenticate(&caller.credential, &headers.credential)?;
        let route = super::route_with_rules(
            &parts.method,
            parts.uri.path(),
            parts.uri.query(),
            &cx.snap.config.rules,
        )?;
        cx.record.function = Some(route.function.name());
        let target_id = headers.target_id;
        let target = cx.snap.partner(target_id).cloned().ok_or_else(|| {
            let id = target_id.to_owned();
            HubError::UnknownTarget { id }
        })?;
        cx.record.target = Some(target.id.clone());
        permit(route.function, &caller, &target)?;
        Ok(Head {
            caller,
            target,
            route,
        })
    }

    async fn limit(&self, cx: &mut Cx, head: &Head) -> Result<(), HubError> {
        cx.hub
            .limits()
            .admit(&head.caller, head.route.function.name())
            .await
    }

    async fn call(
        &self,
        cx: &mut Cx,
        head: Head,
        parts: Parts,
        body: Bytes,
    ) -> Result<Outbound<Call>, HubError> {
        let Head {
            caller,
            target,
            route,
        } = head;
        let function = route.function;
        super::check_content_type(&parts.headers, function, body.len())?;
        let request = super::request(function, &body, &cx.snap.config.rules)?;
        note_oddities(cx, &request);
        let claims = match (&request, &route.account_id) {
            (Aid1Request::SendMspToken(_), Some(account_id)) => {
                Some(verify_account_id(&caller, &target, account_id.expose())?)
            }
            _ => None,
        };
        let step = lifecycle::admit(
            &*self.ledger,
            &cx.snap,
            lifecycle::Parties {
                caller: &caller,
                target: &target,
            },
            &route,
            &request,
            claims.as_ref(),
        )
        .await?;
        if matches!(step, Step::Unchecked) {
            cx.hub.metrics().ledger_degraded.inc(function.name());
            tracing::info!(
                caller = %caller.id,
                target = %target.id,
                function = function.name(),
                "ledger unavailable: read-only call forwarded without its token check"
            );
        }
        let Some(upstream) = cx.snap.upstream(&target.id).cloned() else {
            lifecycle::abandon(&*self.ledger, &cx.snap, step).await;
            return Err(HubError::Internal(format!("no upstream for {}", target.id)));
        };
        let request = upstream_request(parts, body, &upstream)?;
        Ok(Outbound {
            call: Call {
                function,
                target: target.id.clone(),
                step,
            },
            target: target.id.clone(),
            upstream,
            request,
            timeout: cx.snap.config.timeouts.for_function(function),
            // The answer phase relays status and body and reads no header.
            answer_headers: AnswerHeaders::None,
        })
    }

    async fn answer(
        &self,
        cx: &mut Cx,
        call: Call,
        answer: Answer,
    ) -> Result<Response<Full<Bytes>>, HubError> {
        let status = answer.status.as_u16();
        let parsed = match super::answer(call.function, status, &answer.body, &cx.snap.config.rules)
        {
            Ok(parsed) => parsed,
            Err(breach) => {
                tracing::warn!(
                    partner = %call.target,
                    function = call.function.name(),
                    status,
                    breach = %breach.reason,
                    "partner broke the AID1 contract"
                );
                lifecycle::abandon(&*self.ledger, &cx.snap, call.step).await;
                return Err(HubError::Contract {
                    partner: call.target.to_string(),
                    reason: breach.reason,
                });
            }
        };
        // Timed only for calls with ledger work: no clock read for the others.
        let started = (!matches!(call.step, Step::Nothing | Step::Unchecked)).then(Instant::now);
        let settled = lifecycle::settle(&*self.ledger, &cx.snap, call.step, status, &parsed).await;
        if let Some(started) = started {
            let held = started.elapsed();
            cx.hub.metrics().observe_settle(call.function.name(), held);
        }
        settled?;
        Ok(relay(answer))
    }

    async fn failed(&self, cx: &mut Cx, call: Call, _error: &HubError) {
        lifecycle::abandon(&*self.ledger, &cx.snap, call.step).await;
    }
}

/// Counts and logs what the digest's decisions accept but a partner should hear about: ICCIDs
/// whose Luhn digit fails, 32-digit EIDs whose MOD 97-10 check fails.
fn note_oddities(cx: &Cx, request: &Aid1Request) {
    use super::send_activation_code::ActivationCodeOutcome;
    let mut iccids = Vec::new();
    let mut eids = Vec::new();
    match request {
        Aid1Request::RequestActivationCode(r) => eids.extend(r.eid.as_ref()),
        Aid1Request::SendCsimStatus(r) => {
            iccids.push(&r.iccid);
            eids.extend(r.eid.as_ref());
        }
        Aid1Request::SendProfileInformation(r) => {
            iccids.extend(r.profiles.iter().map(|p| &p.iccid))
        }
        Aid1Request::SendActivationCode(r) => {
            if let ActivationCodeOutcome::Issued(issued) = &r.outcome {
                iccids.push(&issued.iccid);
                iccids.extend(issued.swapped_iccid.as_ref());
            }
        }
        _ => {}
    }
    let metrics = cx.hub.metrics();
    let caller = cx.record.caller.as_deref().unwrap_or("-");
    for iccid in iccids.into_iter().filter(|i| !i.luhn_ok()) {
        metrics.validation_notes.inc("iccid_luhn_failed");
        tracing::info!(
            partner = caller,
            iccid = iccid.as_str(),
            "accepted an ICCID whose Luhn check digit fails"
        );
    }
    for _ in eids
        .into_iter()
        .filter(|e| e.check_digits_ok() == Some(false))
    {
        metrics.validation_notes.inc("eid_check_digits_failed");
        tracing::info!(
            partner = caller,
            "accepted a 32-digit EID whose MOD 97-10 check fails"
        );
    }
}

/// The presented credential must be the caller's hub credential, in the form the routing
/// table says.
fn authenticate(expected: &Credential, presented: &Presented<'_>) -> Result<(), HubError> {
    let ok = match (expected, presented) {
        (Credential::ApiKey(key), Presented::ApiKey(given)) => key.matches(given.as_bytes()),
        (
            Credential::Basic { username, password },
            Presented::Basic {
                username: user,
                password: pass,
            },
        ) => {
            // Both halves are always compared, so timing does not tell which one was wrong.
            let user_ok =
                crate::config::secret::constant_time_eq(username.as_bytes(), user.as_bytes());
            password.matches(pass.as_bytes()) & user_ok
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(HubError::BadCredential)
    }
}

/// Role pair and agreements: an MSP calls only CMP-hosted functions, towards a CMP, and the
/// reverse; both partners' tables must permit the pair.
fn permit(function: Function, caller: &Partner, target: &Partner) -> Result<(), HubError> {
    if caller.role != function.caller() {
        return Err(HubError::NotPermitted {
            reason: format!(
                "{} is called by {}s; {} is a {}",
                function.title(),
                role_name(function.caller()),
                caller.id,
                role_name(caller.role)
            ),
        });
    }
    if target.role != function.host() {
        return Err(HubError::NotPermitted {
            reason: format!(
                "{} is hosted by {}s; {} is a {}",
                function.title(),
                role_name(function.host()),
                target.id,
                role_name(target.role)
            ),
        });
    }
    if !caller.permits(&target.id) || !target.permits(&caller.id) {
        return Err(HubError::NotPermitted {
            reason: format!("no agreement between {} and {}", caller.id, target.id),
        });
    }
    Ok(())
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Msp => "MSP",
        Role::Cmp => "CMP",
    }
}

/// Verifies the account id of Send MSP Token with the target CMP's secret for this MSP.
fn verify_account_id(
    msp: &Partner,
    cmp: &Partner,
    account_id: &str,
) -> Result<AccountClaims, HubError> {
    let secret = cmp.account_id_secret_for(&msp.id).ok_or_else(|| {
        HubError::AccountId(AccountIdError::Malformed(format!(
            "no account-id secret is configured for {}",
            cmp.id
        )))
    })?;
    account_id::verify(account_id, secret.expose(), lifecycle::now_ms() / 1000)
        .map_err(HubError::AccountId)
}

fn upstream_request(
    parts: Parts,
    body: Bytes,
    upstream: &Upstream,
) -> Result<Request<Bytes>, HubError> {
    let uri = upstream
        .uri_for(parts.uri.path_and_query())
        .map_err(HubError::Internal)?;
    // The caller's own map, less what stays behind: most of its headers pass, so a few
    // removals cost less than a new map filled header by header. Host and the framing
    // headers need no removal: the upstream writes its own. Nor does the caller's
    // credential where the hub's has the same name: inserting the hub's replaces it.
    let mut headers = parts.headers;
    let credential = upstream.credential();
    let replaced = credential.map(|(name, _)| name);
    let dropped = |name: &&HeaderName| {
        !passed(name) && !crate::upstream::sets_itself(name) && Some(*name) != replaced
    };
    while let Some(name) = headers.keys().find(dropped).cloned() {
        headers.remove(&name);
    }
    if let Some((name, value)) = credential {
        headers.insert(name.clone(), value.clone());
    }
    let mut request = Request::new(body);
    *request.method_mut() = parts.method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// The upstream's answer, as validated: status and body unchanged.
fn relay(answer: Answer) -> Response<Full<Bytes>> {
    let has_body = !answer.body.is_empty();
    let mut response = Response::new(Full::new(answer.body));
    *response.status_mut() = answer.status;
    if has_body {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    response
}

//! The lifecycle rules the hub enforces with its ledger (AID.02 chapter 4, 7.7.2, 7.9,
//! Annex A; the ledger issue):
//!
//! * a federation is recorded when the CMP accepts Send MSP Token (201); a token held by
//!   another MSP/CMP pair is refused (23); every later call naming a token must come from and
//!   go to that federation's two partners, else 404 code 20 — unknown tokens too, except for
//!   pairs in migration mode, where the first use is learned;
//! * after a withdrawal (204 to either invalidation call) Request Activation Code is refused
//!   (21) while Send CSIM Status keeps passing;
//! * Request Activation Code records its `activationCodeRequestID` (duplicates refused); a
//!   200 closes it, a 201 leaves it open until its deadline; Send Activation Code must match
//!   it (MSP, token, CMP) — unknown 30, closed or expired 31.
//! * **Early answers**: a Send Activation Code that arrives while its request's 201 is still
//!   on its way back to the CMP waits (up to `ledger.early_answer_wait_ms`) until the 201 has
//!   been recorded, then proceeds; if it is still pending then, it is refused with a
//!   retryable 503 (code 215, `Retry-After`). Nothing is lost either way.
//!
//! * **The ledger unavailable** (PostgreSQL down): a call whose hub-side effect is a
//!   lifecycle write (Send MSP Token, both invalidations, Request Activation Code, Send
//!   Activation Code) or a profile record (Send CSIM Status, Send Profile Information) is
//!   refused with 503 code 216 — the hub never forwards what it cannot record. The two calls
//!   that only *read* the ledger, to check that the token belongs to the pair (Update
//!   Subscription Info, Request Profile Status), are forwarded unchecked and counted
//!   ([`Step::Unchecked`]): the partner holding the token checks it too, and the hub records
//!   nothing for them (Request Profile Status's answer is not remembered then).
//!
//! [`admit`] runs before forwarding and returns the [`Step`] to complete; [`settle`] records
//! what the partner's answer settled (durably, before the answer is released); [`abandon`]
//! undoes a reservation when the forward failed.

use super::send_activation_code::ActivationCodeOutcome;
use super::send_msp_token::SendMspToken;
use super::{Aid1Answer, Aid1Request, Function, Role, Route};
use crate::account_id::AccountClaims;
use crate::config::Partner;
use crate::error::HubError;
use crate::hub::Hub;
use crate::ledger::{
    Delivered, Ledger, LedgerError, NewAcRequest, NewFederation, Pair, ProfileEvent, ProfileSource,
    Settle, Standing, Withdrawal,
};
use crate::snapshot::Snapshot;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// How long a Send MSP Token reservation blocks other pairs if its forward never finished.
const RESERVATION_STALE_MS: u64 = 60_000;

/// The two partners of a call.
pub struct Parties<'a> {
    /// Who calls.
    pub caller: &'a Partner,
    /// Who is called.
    pub target: &'a Partner,
}

impl Parties<'_> {
    fn pair(&self) -> Pair {
        let (msp, cmp) = match self.caller.role {
            Role::Msp => (self.caller, self.target),
            Role::Cmp => (self.target, self.caller),
        };
        // `String::from`, not `to_string`: the `Display` route through the formatter cost
        // about 170 instructions more per id.
        Pair {
            msp: String::from(&*msp.id),
            cmp: String::from(&*cmp.id),
        }
    }

    /// Either side lists the other in `migration`.
    fn migrating(&self) -> bool {
        self.caller.migration.contains(&*self.target.id)
            || self.target.migration.contains(&*self.caller.id)
    }
}

/// What remains to be recorded once the partner answers.
#[derive(Debug)]
pub enum Step {
    /// No ledger work.
    Nothing,
    /// A reserved federation, confirmed by a 201.
    Onboard(NewFederation),
    /// A withdrawal, recorded on 204.
    Withdraw {
        /// The token.
        token: Uuid,
        /// Which call withdrew it.
        by: Withdrawal,
        /// The MSP's reason, if any.
        reason: Option<String>,
    },
    /// Profile events, recorded on success.
    Profiles {
        /// The token.
        token: Uuid,
        /// What the call says about its profiles.
        events: Vec<ProfileEvent>,
    },
    /// A pending activation-code request.
    AskCode {
        /// `activationCodeRequestID`.
        id: Uuid,
        /// The token.
        token: Uuid,
    },
    /// A claimed async answer.
    AnswerCode {
        /// `activationCodeRequestID`.
        id: Uuid,
        /// The token.
        token: Uuid,
        /// A code or an error.
        delivered: Delivered,
        /// The profiles it names.
        events: Vec<ProfileEvent>,
    },
    /// Profile status request: the answer's profiles are recorded.
    ProfileStatus {
        /// The token.
        token: Uuid,
    },
    /// A read-only call forwarded without its ledger check, the ledger being unavailable.
    Unchecked,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Checks a call against the ledger before it is forwarded, and reserves what it needs.
pub async fn admit(
    ledger: &dyn Ledger,
    snap: &Snapshot,
    parties: Parties<'_>,
    route: &Route,
    request: &Aid1Request,
    claims: Option<&AccountClaims>,
) -> Result<Step, HubError> {
    let now = now_ms();
    let pair = parties.pair();
    let path_token = route.msp_token.as_ref().map(|t| t.0);
    let token = || path_token.ok_or_else(|| HubError::Internal("route without msp_token".into()));
    let step = match request {
        Aid1Request::SendMspToken(SendMspToken::Token(new)) => {
            let token = new.msp_token.0;
            ledger
                .reserve_federation(token, &pair, now, RESERVATION_STALE_MS)
                .await
                .map_err(refusal)?;
            Step::Onboard(NewFederation {
                msp_token: token,
                pair,
                sid: claims.map(|c| c.sid),
                subscription_type: Some(new.subscription_type.as_str().to_owned()),
                at: now,
            })
        }
        Aid1Request::SendMspToken(SendMspToken::Refused { .. }) => Step::Nothing,
        Aid1Request::NotifyMspTokenInvalid(body) => {
            authorize(ledger, token()?, &pair, parties.migrating(), now).await?;
            Step::Withdraw {
                token: token()?,
                by: Withdrawal::MspNotified,
                reason: body.reason.clone(),
            }
        }
        Aid1Request::RequestInvalidateMspToken => {
            authorize(ledger, token()?, &pair, parties.migrating(), now).await?;
            Step::Withdraw {
                token: token()?,
                by: Withdrawal::CmpRequested,
                reason: None,
            }
        }
        Aid1Request::SendProfileInformation(body) => {
            authorize(ledger, token()?, &pair, parties.migrating(), now).await?;
            let events = body
                .profiles
                .iter()
                .map(|p| {
                    event(
                        p.iccid.as_str(),
                        p.status.as_str(),
                        ProfileSource::ProfileInformation,
                    )
                })
                .collect();
            Step::Profiles {
                token: token()?,
                events,
            }
        }
        Aid1Request::SendCsimStatus(body) => {
            authorize(ledger, token()?, &pair, parties.migrating(), now).await?;
            Step::Profiles {
                token: token()?,
                events: vec![event(
                    body.iccid.as_str(),
                    body.status.as_str(),
                    ProfileSource::CsimStatus,
                )],
            }
        }
        Aid1Request::UpdateSubscriptionInfo(_) => {
            match authorize(ledger, token()?, &pair, parties.migrating(), now).await {
                Ok(_) => Step::Nothing,
                Err(HubError::LedgerUnavailable) => Step::Unchecked,
                Err(e) => return Err(e),
            }
        }
        Aid1Request::RequestProfileStatus => {
            match authorize(ledger, token()?, &pair, parties.migrating(), now).await {
                Ok(_) => Step::ProfileStatus { token: token()? },
                Err(HubError::LedgerUnavailable) => Step::Unchecked,
                Err(e) => return Err(e),
            }
        }
        Aid1Request::RequestActivationCode(body) => {
            let standing = authorize(ledger, token()?, &pair, parties.migrating(), now).await?;
            if standing == Standing::Invalid {
                return Err(HubError::TokenWithdrawn);
            }
            let id = body.activation_code_request_id.0;
            ledger
                .open_request(NewAcRequest {
                    id,
                    msp_token: token()?,
                    pair,
                    at: now,
                })
                .await
                .map_err(refusal)?;
            Step::AskCode {
                id,
                token: token()?,
            }
        }
        Aid1Request::SendActivationCode(body) => {
            authorize(ledger, token()?, &pair, parties.migrating(), now).await?;
            let id = body.activation_code_request_id.0;
            claim(ledger, snap, id, &pair, token()?).await?;
            let (delivered, events) = match &body.outcome {
                ActivationCodeOutcome::Issued(issued) => {
                    let mut events = vec![event(
                        issued.iccid.as_str(),
                        "issued",
                        ProfileSource::AsyncAnswer,
                    )];
                    if let Some(swapped) = &issued.swapped_iccid {
                        events.push(event(swapped.as_str(), "swapped", ProfileSource::Swapped));
                    }
                    (Delivered::Code, events)
                }
                ActivationCodeOutcome::Failed { .. } => (Delivered::Error, Vec::new()),
            };
            Step::AnswerCode {
                id,
                token: token()?,
                delivered,
                events,
            }
        }
    };
    Ok(step)
}

/// Claims an open request for its async answer, waiting a while for an early answer's 201.
async fn claim(
    ledger: &dyn Ledger,
    snap: &Snapshot,
    id: Uuid,
    pair: &Pair,
    token: Uuid,
) -> Result<(), HubError> {
    let wait = snap.config.ledger.early_answer_wait;
    let stale = snap
        .config
        .timeouts
        .for_function(Function::SendActivationCode)
        + Duration::from_secs(5);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let outcome = ledger
            .claim_answer(
                id,
                &pair.msp,
                &pair.cmp,
                token,
                now_ms(),
                stale.as_millis() as u64,
            )
            .await;
        match outcome {
            Ok(_) => return Ok(()),
            Err(LedgerError::RequestPending) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Another MSP's request: as unknown as a request that never existed.
            Err(LedgerError::Mismatch { what: "msp" }) => return Err(HubError::RequestUnknown),
            Err(e) => return Err(refusal(e)),
        }
    }
}

/// How federation `token` stands if it is `pair`'s to use: [`Standing::Active`] or
/// [`Standing::Invalid`] (withdrawn); anything else is an unknown token. In migration, a
/// token the ledger does not know is learned from its first use.
async fn authorize(
    ledger: &dyn Ledger,
    token: Uuid,
    pair: &Pair,
    migrating: bool,
    now: u64,
) -> Result<Standing, HubError> {
    let standing = match ledger.standing(token, pair).await.map_err(refusal)? {
        Standing::Absent if migrating => {
            tracing::info!(msp = %pair.msp, cmp = %pair.cmp, "migration: learned a federation from its first use");
            let learned = ledger
                .learn_federation(NewFederation {
                    msp_token: token,
                    pair: pair.clone(),
                    sid: None,
                    subscription_type: None,
                    at: now,
                })
                .await
                .map_err(refusal)?;
            Standing::of(Some(&learned), pair)
        }
        standing => standing,
    };
    match standing {
        Standing::Active | Standing::Invalid => Ok(standing),
        Standing::Absent | Standing::Unusable => Err(HubError::TokenUnknown),
    }
}

/// Records what the partner's answer settled. Runs before the answer is released, and every
/// write is durable when it returns.
pub async fn settle(
    ledger: &dyn Ledger,
    snap: &Snapshot,
    step: Step,
    status: u16,
    answer: &Aid1Answer,
) -> Result<(), HubError> {
    let now = now_ms();
    let success = (200..300).contains(&status);
    let result = match step {
        Step::Nothing | Step::Unchecked => Ok(()),
        Step::Onboard(fed) if status == 201 => ledger.confirm_federation(fed).await.map(drop),
        Step::Onboard(fed) => ledger.release_federation(fed.msp_token, &fed.pair).await,
        Step::Withdraw { token, by, reason } if success => {
            match ledger.invalidate_federation(token, by, reason, now).await {
                Ok(_) | Err(LedgerError::NotFound) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Step::Withdraw { .. } => Ok(()),
        Step::Profiles { token, events } if success => {
            ledger.record_profiles(token, &events, now).await
        }
        Step::Profiles { .. } => Ok(()),
        Step::AskCode { id, token } => {
            let (settle, events) = match (status, answer) {
                (200, Aid1Answer::ActivationCode(issued)) => {
                    let mut events = vec![event(
                        issued.iccid.as_str(),
                        "issued",
                        ProfileSource::SyncAnswer,
                    )];
                    if let Some(swapped) = &issued.swapped_iccid {
                        events.push(event(swapped.as_str(), "swapped", ProfileSource::Swapped));
                    }
                    (Settle::Sync, events)
                }
                (201, _) => {
                    let deadline = now + snap.config.ledger.async_deadline.as_millis() as u64;
                    (Settle::Async { deadline }, Vec::new())
                }
                _ => (Settle::Refused { status }, Vec::new()),
            };
            match ledger.settle_request(id, settle, now).await {
                Ok(_) if !events.is_empty() => ledger.record_profiles(token, &events, now).await,
                other => other.map(drop),
            }
        }
        Step::AnswerCode {
            id,
            token,
            delivered,
            events,
        } => {
            if status == 200 {
                match ledger.finish_answer(id, Some(delivered), now).await {
                    Ok(_) if !events.is_empty() => {
                        ledger.record_profiles(token, &events, now).await
                    }
                    other => other.map(drop),
                }
            } else {
                ledger.finish_answer(id, None, now).await.map(drop)
            }
        }
        Step::ProfileStatus { token } => match answer {
            Aid1Answer::ProfileStatus(profiles) if status == 200 => {
                let events: Vec<ProfileEvent> = profiles
                    .iter()
                    .map(|p| {
                        event(
                            p.iccid.as_str(),
                            p.status.as_str(),
                            ProfileSource::ProfileStatusAnswer,
                        )
                    })
                    .collect();
                ledger.record_profiles(token, &events, now).await
            }
            _ => Ok(()),
        },
    };
    result.map_err(|e| {
        tracing::error!(cause = %e, "ledger write after a partner's answer failed");
        refusal(e)
    })
}

/// Undoes what [`admit`] reserved when the forward failed or the answer was unusable.
pub async fn abandon(ledger: &dyn Ledger, _snap: &Snapshot, step: Step) {
    let now = now_ms();
    let result = match step {
        Step::Onboard(fed) => ledger.release_federation(fed.msp_token, &fed.pair).await,
        Step::AskCode { id, .. } => ledger
            .settle_request(id, Settle::Abandoned, now)
            .await
            .map(drop),
        Step::AnswerCode { id, .. } => ledger.finish_answer(id, None, now).await.map(drop),
        _ => Ok(()),
    };
    if let Err(e) = result {
        tracing::error!(cause = %e, "ledger: undoing a reservation failed");
    }
}

fn event(iccid: &str, status: &str, source: ProfileSource) -> ProfileEvent {
    ProfileEvent {
        iccid: iccid.to_owned(),
        status: status.to_owned(),
        source,
    }
}

/// The one mapping of ledger refusals to hub errors.
fn refusal(error: LedgerError) -> HubError {
    match error {
        LedgerError::TokenTaken => HubError::TokenTaken,
        LedgerError::TokenWithdrawn => HubError::TokenWithdrawn,
        LedgerError::NotFound => HubError::TokenUnknown,
        LedgerError::DuplicateRequest => {
            HubError::RequestOther("the activationCodeRequestID was already used".into())
        }
        LedgerError::UnknownRequest => HubError::RequestUnknown,
        LedgerError::RequestClosed => HubError::RequestClosed,
        LedgerError::RequestPending | LedgerError::RequestBusy => HubError::RequestPending,
        LedgerError::Mismatch { what } => HubError::RequestOther(format!(
            "the activationCodeRequestID belongs to another {what}"
        )),
        LedgerError::Unavailable(cause) | LedgerError::Storage(cause) => {
            tracing::error!(%cause, "ledger unavailable");
            HubError::LedgerUnavailable
        }
        other => HubError::Internal(format!("ledger: {other}")),
    }
}

/// Expires overdue async requests and purges old records, every `ledger.sweep_interval`.
pub async fn sweeper(hub: Hub, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        let snap = hub.snapshot();
        let interval = snap.config.ledger.sweep_interval;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        let retention = snap.config.ledger.retention.as_millis() as u64;
        match hub.ledger().sweep(now_ms(), retention).await {
            Ok(report) => {
                let metrics = hub.metrics();
                metrics.swept.add("expired", report.expired);
                metrics.swept.add("abandoned", report.abandoned);
                metrics.swept.add("requests_purged", report.requests_purged);
                metrics
                    .swept
                    .add("federations_purged", report.federations_purged);
                metrics
                    .swept
                    .add("reservations_dropped", report.reservations_dropped);
                metrics.swept.add("profiles_purged", report.profiles_purged);
                if report.expired + report.requests_purged + report.federations_purged > 0 {
                    tracing::info!(?report, "ledger sweep");
                }
            }
            Err(e) => tracing::error!(cause = %e, "ledger sweep failed"),
        }
    }
}

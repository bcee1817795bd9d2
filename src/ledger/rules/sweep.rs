//! Retention rules: what a sweep at `now` does to one record.

use super::{older, with_state, Step};
use crate::ledger::types::{AcRequest, AcState, Federation, FederationState, Outcome};

/// What sweeping one request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::ledger) enum SweptRequest {
    /// Open past its deadline: closed as expired.
    Expired,
    /// Pending or answering for longer than [`IN_FLIGHT_STALE_MS`] (or the retention, if
    /// shorter): closed as abandoned.
    Abandoned,
    /// Closed for longer than the retention: removed.
    Purged,
}

/// Nothing is legitimately in flight this long (upstream timeouts are seconds): a request
/// still pending or answering, or a federation still reserved, after this was left behind by
/// a crash, and is settled without waiting for the whole retention.
pub(in crate::ledger) const IN_FLIGHT_STALE_MS: u64 = 10 * 60 * 1000;

/// What a sweep does to one request.
pub(in crate::ledger) fn sweep_request(
    cur: Option<&AcRequest>,
    now: u64,
    retention_ms: u64,
) -> Step<AcRequest, Option<SweptRequest>> {
    let Some(cur) = cur else {
        return Step::keep(Ok(None));
    };
    let close = |outcome, swept| {
        let closed = AcState::Closed { at: now, outcome };
        Step::put(with_state(cur, closed), Ok(Some(swept)))
    };
    match cur.state {
        AcState::Open { deadline } if now > deadline => {
            close(Outcome::Expired, SweptRequest::Expired)
        }
        AcState::Pending if older(now, cur.created_at, stale(retention_ms)) => {
            close(Outcome::Abandoned, SweptRequest::Abandoned)
        }
        AcState::Answering { at, .. } if older(now, at, stale(retention_ms)) => {
            close(Outcome::Abandoned, SweptRequest::Abandoned)
        }
        AcState::Closed { at, .. } if older(now, at, retention_ms) => {
            Step::delete(Ok(Some(SweptRequest::Purged)))
        }
        _ => Step::keep(Ok(None)),
    }
}

fn stale(retention_ms: u64) -> u64 {
    retention_ms.min(IN_FLIGHT_STALE_MS)
}

/// What sweeping one federation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::ledger) enum SweptFederation {
    /// A withdrawn federation removed; its profiles go too.
    Purged,
    /// A reservation whose forward never finished removed.
    Dropped,
}

/// Whether a federation is due to be swept (the backend removes its profiles first).
pub(in crate::ledger) fn sweepable(
    fed: &Federation,
    now: u64,
    retention_ms: u64,
) -> Option<SweptFederation> {
    match fed.state {
        FederationState::Invalid { at, .. } if older(now, at, retention_ms) => {
            Some(SweptFederation::Purged)
        }
        FederationState::Reserved { at } if older(now, at, stale(retention_ms)) => {
            Some(SweptFederation::Dropped)
        }
        _ => None,
    }
}

/// What a sweep does to one federation (its profiles are the backend's business).
pub(in crate::ledger) fn sweep_federation(
    cur: Option<&Federation>,
    now: u64,
    retention_ms: u64,
) -> Step<Federation, Option<SweptFederation>> {
    match cur.and_then(|f| sweepable(f, now, retention_ms)) {
        Some(swept) => Step::delete(Ok(Some(swept))),
        None => Step::keep(Ok(None)),
    }
}

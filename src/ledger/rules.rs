//! The lifecycle, as pure functions: given the current record (if any), what to write and
//! what to answer.
//!
//! Every backend reads the current record, calls one of these, and writes the result only
//! if the record is still the one it read (compare-and-swap, or a transaction); on a
//! conflict it reads again and calls the rule again. The rules have no side effects, so
//! rerunning them is harmless, and all backends share them, so they cannot disagree on
//! the lifecycle; the conformance suite checks the rules through each backend.

mod sweep;

use uuid::Uuid;

use super::types::{
    AcRequest, AcState, Delivered, Federation, FederationState, NewAcRequest, NewFederation,
    Outcome, Pair, Profile, ProfileEvent, RequestFilter, Settle,
};
use super::LedgerError;

pub(super) use self::sweep::{
    sweep_federation, sweep_request, sweepable, SweptFederation, SweptRequest,
};

/// A change to one record.
#[derive(Debug)]
pub(super) enum Write<T> {
    /// Store this as the new record.
    Put(T),
    /// Remove the record.
    Delete,
}

/// What a rule decided: an optional write and the answer for the caller. Both may be
/// present at once (an expired request is closed *and* refused).
#[derive(Debug)]
pub(super) struct Step<T, R> {
    pub(super) write: Option<Write<T>>,
    pub(super) reply: Result<R, LedgerError>,
}

impl<T, R> Step<T, R> {
    fn keep(reply: Result<R, LedgerError>) -> Self {
        Step { write: None, reply }
    }

    fn put(record: T, reply: Result<R, LedgerError>) -> Self {
        Step {
            write: Some(Write::Put(record)),
            reply,
        }
    }

    fn delete(reply: Result<R, LedgerError>) -> Self {
        Step {
            write: Some(Write::Delete),
            reply,
        }
    }
}

/// Whether something stamped `at` is strictly older than `ms` at `now`.
pub(super) fn older(now: u64, at: u64, ms: u64) -> bool {
    now.saturating_sub(at) > ms
}

/// [`Ledger::reserve_federation`](super::Ledger::reserve_federation).
pub(super) fn reserve(
    cur: Option<&Federation>,
    token: Uuid,
    pair: &Pair,
    now: u64,
    stale_after_ms: u64,
) -> Step<Federation, ()> {
    let fresh = || Federation {
        msp_token: token,
        pair: pair.clone(),
        sid: None,
        subscription_type: None,
        created_at: now,
        learned: false,
        state: FederationState::Reserved { at: now },
    };
    let Some(cur) = cur else {
        return Step::put(fresh(), Ok(()));
    };
    match &cur.state {
        FederationState::Invalid { .. } => Step::keep(Err(LedgerError::TokenWithdrawn)),
        FederationState::Active if cur.pair == *pair => Step::keep(Ok(())),
        FederationState::Active => Step::keep(Err(LedgerError::TokenTaken)),
        FederationState::Reserved { .. } if cur.pair == *pair => {
            let renewed = Federation {
                state: FederationState::Reserved { at: now },
                ..cur.clone()
            };
            Step::put(renewed, Ok(()))
        }
        FederationState::Reserved { at } if older(now, *at, stale_after_ms) => {
            Step::put(fresh(), Ok(()))
        }
        FederationState::Reserved { .. } => Step::keep(Err(LedgerError::TokenTaken)),
    }
}

fn new_active(fed: &NewFederation, learned: bool) -> Federation {
    Federation {
        msp_token: fed.msp_token,
        pair: fed.pair.clone(),
        sid: fed.sid,
        subscription_type: fed.subscription_type.clone(),
        created_at: fed.at,
        learned,
        state: FederationState::Active,
    }
}

/// [`Ledger::confirm_federation`](super::Ledger::confirm_federation).
pub(super) fn confirm(
    cur: Option<&Federation>,
    fed: &NewFederation,
) -> Step<Federation, Federation> {
    let Some(cur) = cur else {
        let active = new_active(fed, false);
        return Step::put(active.clone(), Ok(active));
    };
    match &cur.state {
        FederationState::Invalid { .. } => Step::keep(Err(LedgerError::TokenWithdrawn)),
        _ if cur.pair != fed.pair => Step::keep(Err(LedgerError::TokenTaken)),
        FederationState::Active => Step::keep(Ok(cur.clone())),
        FederationState::Reserved { .. } => {
            let active = Federation {
                sid: fed.sid,
                subscription_type: fed.subscription_type.clone(),
                learned: false,
                state: FederationState::Active,
                ..cur.clone()
            };
            Step::put(active.clone(), Ok(active))
        }
    }
}

/// [`Ledger::release_federation`](super::Ledger::release_federation).
pub(super) fn release(cur: Option<&Federation>, pair: &Pair) -> Step<Federation, ()> {
    match cur {
        Some(cur) if cur.pair == *pair && matches!(cur.state, FederationState::Reserved { .. }) => {
            Step::delete(Ok(()))
        }
        _ => Step::keep(Ok(())),
    }
}

/// A learned federation, and whether it is new.
pub(super) type Learned = (Federation, bool);

/// [`Ledger::learn_federation`](super::Ledger::learn_federation), telling whether it added one.
pub(super) fn learn(cur: Option<&Federation>, fed: &NewFederation) -> Step<Federation, Learned> {
    match cur {
        None => {
            let active = new_active(fed, true);
            Step::put(active.clone(), Ok((active, true)))
        }
        Some(cur) if cur.pair == fed.pair => Step::keep(Ok((cur.clone(), false))),
        Some(_) => Step::keep(Err(LedgerError::TokenTaken)),
    }
}

/// [`Ledger::invalidate_federation`](super::Ledger::invalidate_federation).
pub(super) fn invalidate(
    cur: Option<&Federation>,
    by: super::types::Withdrawal,
    reason: &Option<String>,
    now: u64,
) -> Step<Federation, Federation> {
    let Some(cur) = cur else {
        return Step::keep(Err(LedgerError::NotFound));
    };
    if let FederationState::Invalid { .. } = cur.state {
        return Step::keep(Ok(cur.clone()));
    }
    let invalid = Federation {
        state: FederationState::Invalid {
            at: now,
            by,
            reason: reason.clone(),
        },
        ..cur.clone()
    };
    Step::put(invalid.clone(), Ok(invalid))
}

/// Which attribute of a pair differs, if any.
fn pair_mismatch(have: &Pair, msp: &str, cmp: &str) -> Option<&'static str> {
    if have.msp != msp {
        Some("msp")
    } else if have.cmp != cmp {
        Some("cmp")
    } else {
        None
    }
}

/// What the token's federation, if any, says of a new activation-code request by `pair`:
/// refused if withdrawn or another pair's. Unknown is no objection (the hub checked the token
/// first, or learns it in migration).
pub(super) fn federation_allows(fed: Option<&Federation>, pair: &Pair) -> Result<(), LedgerError> {
    let Some(fed) = fed else { return Ok(()) };
    if let FederationState::Invalid { .. } = fed.state {
        return Err(LedgerError::TokenWithdrawn);
    }
    match pair_mismatch(&fed.pair, &pair.msp, &pair.cmp) {
        Some(what) => Err(LedgerError::Mismatch { what }),
        None => Ok(()),
    }
}

/// [`Ledger::open_request`](super::Ledger::open_request), given what the token's federation
/// says of it ([`federation_allows`]): a duplicate is refused as such first.
pub(super) fn open(
    fed: Result<(), LedgerError>,
    cur: Option<&AcRequest>,
    req: &NewAcRequest,
) -> Step<AcRequest, ()> {
    if let Some(cur) = cur {
        // A request the MSP never answered (the forward failed or the answer was unusable)
        // may be asked again with the same id, by the same pair for the same token: that is
        // the CMP retrying, not a duplicate.
        let retry = matches!(
            cur.state,
            AcState::Closed {
                outcome: Outcome::Abandoned,
                ..
            }
        ) && cur.msp_token == req.msp_token
            && cur.pair == req.pair;
        if !retry {
            return Step::keep(Err(LedgerError::DuplicateRequest));
        }
    }
    if let Err(refusal) = fed {
        return Step::keep(Err(refusal));
    }
    let pending = AcRequest {
        id: req.id,
        msp_token: req.msp_token,
        pair: req.pair.clone(),
        created_at: req.at,
        state: AcState::Pending,
    };
    Step::put(pending, Ok(()))
}

fn with_state(req: &AcRequest, state: AcState) -> AcRequest {
    AcRequest {
        state,
        ..req.clone()
    }
}

fn wrong_state(req: &AcRequest) -> LedgerError {
    LedgerError::WrongState {
        id: req.id,
        state: req.state.name(),
    }
}

/// [`Ledger::settle_request`](super::Ledger::settle_request).
pub(super) fn settle(
    cur: Option<&AcRequest>,
    settle: Settle,
    now: u64,
) -> Step<AcRequest, AcRequest> {
    let Some(cur) = cur else {
        return Step::keep(Err(LedgerError::UnknownRequest));
    };
    if cur.state != AcState::Pending {
        return Step::keep(Err(wrong_state(cur)));
    }
    let closed = |outcome| AcState::Closed { at: now, outcome };
    let state = match settle {
        Settle::Async { deadline } => AcState::Open { deadline },
        Settle::Sync => closed(Outcome::Sync),
        Settle::Refused { status } => closed(Outcome::Refused { status }),
        Settle::Abandoned => closed(Outcome::Abandoned),
    };
    let next = with_state(cur, state);
    Step::put(next.clone(), Ok(next))
}

/// Who sends a Send Activation Code, for [`claim`].
pub(super) struct Claimant<'a> {
    pub(super) msp: &'a str,
    pub(super) cmp: &'a str,
    pub(super) token: Uuid,
}

/// [`Ledger::claim_answer`](super::Ledger::claim_answer).
pub(super) fn claim(
    cur: Option<&AcRequest>,
    who: &Claimant<'_>,
    now: u64,
    stale_after_ms: u64,
) -> Step<AcRequest, AcRequest> {
    let Some(cur) = cur else {
        return Step::keep(Err(LedgerError::UnknownRequest));
    };
    let mismatch = pair_mismatch(&cur.pair, who.msp, who.cmp)
        .or((cur.msp_token != who.token).then_some("msp_token"));
    if let Some(what) = mismatch {
        return Step::keep(Err(LedgerError::Mismatch { what }));
    }
    let deadline = match cur.state {
        AcState::Closed { .. } => return Step::keep(Err(LedgerError::RequestClosed)),
        AcState::Pending => return Step::keep(Err(LedgerError::RequestPending)),
        AcState::Answering { at, .. } if !older(now, at, stale_after_ms) => {
            return Step::keep(Err(LedgerError::RequestBusy))
        }
        AcState::Open { deadline } | AcState::Answering { deadline, .. } => deadline,
    };
    if now > deadline {
        let expired = AcState::Closed {
            at: now,
            outcome: Outcome::Expired,
        };
        return Step::put(with_state(cur, expired), Err(LedgerError::RequestClosed));
    }
    let next = with_state(cur, AcState::Answering { at: now, deadline });
    Step::put(next.clone(), Ok(next))
}

/// [`Ledger::finish_answer`](super::Ledger::finish_answer).
pub(super) fn finish(
    cur: Option<&AcRequest>,
    delivered: Option<Delivered>,
    now: u64,
) -> Step<AcRequest, AcRequest> {
    let Some(cur) = cur else {
        return Step::keep(Err(LedgerError::UnknownRequest));
    };
    let AcState::Answering { deadline, .. } = cur.state else {
        return Step::keep(Err(wrong_state(cur)));
    };
    let state = match delivered {
        Some(d) => AcState::Closed {
            at: now,
            outcome: d.outcome(),
        },
        None => AcState::Open { deadline },
    };
    let next = with_state(cur, state);
    Step::put(next.clone(), Ok(next))
}

/// The record of one profile event.
pub(super) fn profile(token: Uuid, event: &ProfileEvent, now: u64) -> Profile {
    Profile {
        msp_token: token,
        iccid: event.iccid.clone(),
        status: event.status.clone(),
        source: event.source,
        at: now,
    }
}

/// Whether `req` passes `filter`.
pub(super) fn matches(req: &AcRequest, filter: &RequestFilter) -> bool {
    let open = !matches!(req.state, AcState::Closed { .. });
    (open || !filter.open_only)
        && filter
            .partner
            .as_deref()
            .is_none_or(|p| req.pair.involves(p))
        && filter
            .older_than_ms
            .is_none_or(|ms| older(filter.now, req.created_at, ms))
}

/// Oldest first, then by id, then at most `limit`.
pub(super) fn order_and_limit(reqs: &mut Vec<AcRequest>, filter: &RequestFilter) {
    reqs.sort_by_key(|r| (r.created_at, r.id));
    if let Some(limit) = filter.limit {
        reqs.truncate(limit);
    }
}

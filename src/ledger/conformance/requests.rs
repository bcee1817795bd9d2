//! Checks of the activation-code request lifecycle (7.7, 7.7.2: 201 before the answer).

use uuid::Uuid;

use super::{id, new_fed, new_req, pair_a, pair_b, STALE_MS};
use crate::ledger::{
    AcRequest, AcState, Delivered, Ledger, LedgerError, Outcome, Settle, Withdrawal,
};

/// An open request of `pair_a()` for a fresh token, settled with a 201 and `deadline`.
async fn open_async(l: &dyn Ledger, at: u64, deadline: u64) -> (Uuid, Uuid) {
    let (rid, token) = (id(), id());
    l.open_request(new_req(rid, token, &pair_a(), at))
        .await
        .unwrap();
    let open = l
        .settle_request(rid, Settle::Async { deadline }, at + 1)
        .await
        .unwrap();
    assert_eq!(open.state, AcState::Open { deadline });
    (rid, token)
}

fn state(req: Result<AcRequest, LedgerError>) -> AcState {
    req.unwrap().state
}

/// Open inserts `Pending` once; a withdrawn token or another pair's token is refused.
pub async fn request_open_rules(l: &dyn Ledger) {
    let (a, b) = (pair_a(), pair_b());
    let (rid, unknown_token) = (id(), id());
    l.open_request(new_req(rid, unknown_token, &a, 10))
        .await
        .unwrap();
    let pending = l.request(rid).await.unwrap().unwrap();
    let expected = AcRequest {
        id: rid,
        msp_token: unknown_token,
        pair: a.clone(),
        created_at: 10,
        state: AcState::Pending,
    };
    assert_eq!(pending, expected);
    let dup = l.open_request(new_req(rid, unknown_token, &a, 11)).await;
    assert_eq!(dup, Err(LedgerError::DuplicateRequest));
    let dup_elsewhere = l.open_request(new_req(rid, id(), &b, 11)).await;
    assert_eq!(dup_elsewhere, Err(LedgerError::DuplicateRequest));

    let token = id();
    l.confirm_federation(new_fed(token, &a, 1)).await.unwrap();
    l.open_request(new_req(id(), token, &a, 12)).await.unwrap();
    let other_cmp = l.open_request(new_req(id(), token, &b, 12)).await;
    assert_eq!(other_cmp, Err(LedgerError::Mismatch { what: "cmp" }));
    let other_msp = new_req(id(), token, &crate::ledger::Pair::new("m9", "c1"), 12);
    assert_eq!(
        l.open_request(other_msp).await,
        Err(LedgerError::Mismatch { what: "msp" })
    );

    // Rule 2: no new activation code on a withdrawn token.
    l.invalidate_federation(token, Withdrawal::CmpRequested, None, 13)
        .await
        .unwrap();
    let late = id();
    assert_eq!(
        l.open_request(new_req(late, token, &a, 14)).await,
        Err(LedgerError::TokenWithdrawn)
    );
    assert_eq!(l.request(late).await, Ok(None));
}

/// A 200, a refusal and a missing answer close the request at once.
pub async fn request_sync_refused_and_abandoned(l: &dyn Ledger) {
    let a = pair_a();
    let cases = [
        (Settle::Sync, Outcome::Sync),
        (
            Settle::Refused { status: 404 },
            Outcome::Refused { status: 404 },
        ),
        (Settle::Abandoned, Outcome::Abandoned),
    ];
    for (settle, outcome) in cases {
        let (rid, token) = (id(), id());
        l.open_request(new_req(rid, token, &a, 100)).await.unwrap();
        let closed = AcState::Closed { at: 150, outcome };
        assert_eq!(state(l.settle_request(rid, settle, 150).await), closed);
        assert_eq!(l.request(rid).await.unwrap().unwrap().state, closed);

        let again = l.settle_request(rid, Settle::Sync, 160).await;
        assert_eq!(
            again,
            Err(LedgerError::WrongState {
                id: rid,
                state: "closed"
            })
        );
        let answer = l
            .claim_answer(rid, &a.msp, &a.cmp, token, 170, STALE_MS)
            .await;
        assert_eq!(answer, Err(LedgerError::RequestClosed));
        let dup = l.open_request(new_req(rid, token, &a, 180)).await;
        if outcome == Outcome::Abandoned {
            // The MSP never answered: the CMP may ask again with the same id, and only it.
            let b = crate::ledger::Pair::new(&a.msp, "cmp-other");
            let other = l.open_request(new_req(rid, token, &b, 175)).await;
            assert_eq!(other, Err(LedgerError::DuplicateRequest));
            let other_token = l.open_request(new_req(rid, id(), &a, 176)).await;
            assert_eq!(other_token, Err(LedgerError::DuplicateRequest));
            assert_eq!(dup, Ok(()));
            assert_eq!(
                l.request(rid).await.unwrap().unwrap().state,
                AcState::Pending
            );
            assert_eq!(
                l.settle_request(rid, Settle::Sync, 190)
                    .await
                    .map(|r| r.state),
                Ok(AcState::Closed {
                    at: 190,
                    outcome: Outcome::Sync
                })
            );
        } else {
            assert_eq!(dup, Err(LedgerError::DuplicateRequest));
        }
    }
}

/// Pending → Open → Answering → Open (CMP did not take it) → Answering → Closed.
pub async fn request_async_lifecycle(l: &dyn Ledger) {
    let a = pair_a();
    let (rid, token) = (id(), id());
    l.open_request(new_req(rid, token, &a, 100)).await.unwrap();

    // Rule 3: an answer before the 201 has been relayed waits.
    let early = l
        .claim_answer(rid, &a.msp, &a.cmp, token, 101, STALE_MS)
        .await;
    assert_eq!(early, Err(LedgerError::RequestPending));
    assert!(early.unwrap_err().is_retryable());

    let open = state(
        l.settle_request(rid, Settle::Async { deadline: 10_000 }, 102)
            .await,
    );
    assert_eq!(open, AcState::Open { deadline: 10_000 });
    let settled_twice = l.settle_request(rid, Settle::Sync, 103).await;
    assert_eq!(
        settled_twice,
        Err(LedgerError::WrongState {
            id: rid,
            state: "open"
        })
    );

    let claimed = state(
        l.claim_answer(rid, &a.msp, &a.cmp, token, 200, STALE_MS)
            .await,
    );
    assert_eq!(
        claimed,
        AcState::Answering {
            at: 200,
            deadline: 10_000
        }
    );
    assert_eq!(
        state(l.finish_answer(rid, None, 300).await),
        AcState::Open { deadline: 10_000 }
    );

    l.claim_answer(rid, &a.msp, &a.cmp, token, 400, STALE_MS)
        .await
        .unwrap();
    let closed = state(l.finish_answer(rid, Some(Delivered::Code), 500).await);
    let expected = AcState::Closed {
        at: 500,
        outcome: Outcome::Answered,
    };
    assert_eq!(closed, expected);
    assert_eq!(l.request(rid).await.unwrap().unwrap().state, expected);
    let late = l
        .claim_answer(rid, &a.msp, &a.cmp, token, 600, STALE_MS)
        .await;
    assert_eq!(late, Err(LedgerError::RequestClosed));

    // An answer carrying `error` closes it differently.
    let (rid, token) = open_async(l, 1_000, 5_000).await;
    l.claim_answer(rid, &a.msp, &a.cmp, token, 1_100, STALE_MS)
        .await
        .unwrap();
    let closed = state(l.finish_answer(rid, Some(Delivered::Error), 1_200).await);
    assert_eq!(
        closed,
        AcState::Closed {
            at: 1_200,
            outcome: Outcome::AnsweredWithError
        }
    );
}

/// The answer must come from the request's MSP, for its CMP and token.
pub async fn request_claim_checks_the_pair_and_token(l: &dyn Ledger) {
    let (rid, token) = open_async(l, 100, 10_000).await;
    let claim = |msp: &'static str, cmp: &'static str, token| async move {
        l.claim_answer(rid, msp, cmp, token, 200, STALE_MS).await
    };
    assert_eq!(
        claim("m2", "c1", token).await,
        Err(LedgerError::Mismatch { what: "msp" })
    );
    assert_eq!(
        claim("m1", "c2", token).await,
        Err(LedgerError::Mismatch { what: "cmp" })
    );
    let wrong_token = claim("m1", "c1", id()).await;
    assert_eq!(
        wrong_token,
        Err(LedgerError::Mismatch { what: "msp_token" })
    );
    // Nothing changed; the right sender still gets it.
    assert_eq!(
        l.request(rid).await.unwrap().unwrap().state,
        AcState::Open { deadline: 10_000 }
    );
    assert!(claim("m1", "c1", token).await.is_ok());
}

/// An answer after the deadline is refused as closed, and the request closes as expired.
pub async fn request_claim_past_deadline_expires_it(l: &dyn Ledger) {
    let a = pair_a();
    let (rid, token) = open_async(l, 100, 1_000).await;
    let at_deadline = l
        .claim_answer(rid, &a.msp, &a.cmp, token, 1_000, STALE_MS)
        .await;
    assert_eq!(
        state(at_deadline),
        AcState::Answering {
            at: 1_000,
            deadline: 1_000
        }
    );
    assert_eq!(
        state(l.finish_answer(rid, None, 1_000).await),
        AcState::Open { deadline: 1_000 }
    );

    let late = l
        .claim_answer(rid, &a.msp, &a.cmp, token, 1_001, STALE_MS)
        .await;
    assert_eq!(late, Err(LedgerError::RequestClosed));
    let expired = AcState::Closed {
        at: 1_001,
        outcome: Outcome::Expired,
    };
    assert_eq!(l.request(rid).await.unwrap().unwrap().state, expired);
}

/// A second answer while one is being forwarded is busy, unless the first claim is stale.
pub async fn request_claim_busy_and_stale_takeover(l: &dyn Ledger) {
    let a = pair_a();
    let (rid, token) = open_async(l, 100, 100_000).await;
    l.claim_answer(rid, &a.msp, &a.cmp, token, 200, STALE_MS)
        .await
        .unwrap();
    let busy = l
        .claim_answer(rid, &a.msp, &a.cmp, token, 200 + STALE_MS, STALE_MS)
        .await;
    assert_eq!(busy, Err(LedgerError::RequestBusy));
    assert!(busy.unwrap_err().is_retryable());

    let retaken = l
        .claim_answer(rid, &a.msp, &a.cmp, token, 201 + STALE_MS, STALE_MS)
        .await;
    let answering = AcState::Answering {
        at: 201 + STALE_MS,
        deadline: 100_000,
    };
    assert_eq!(state(retaken), answering);

    // A stale claim past the deadline expires the request instead.
    let (rid, token) = open_async(l, 100, 500).await;
    l.claim_answer(rid, &a.msp, &a.cmp, token, 400, STALE_MS)
        .await
        .unwrap();
    let late = l
        .claim_answer(rid, &a.msp, &a.cmp, token, 401 + STALE_MS, STALE_MS)
        .await;
    assert_eq!(late, Err(LedgerError::RequestClosed));
    let expired = AcState::Closed {
        at: 401 + STALE_MS,
        outcome: Outcome::Expired,
    };
    assert_eq!(l.request(rid).await.unwrap().unwrap().state, expired);
}

/// Unknown ids are spec code 30; steps out of order are wrong-state errors.
pub async fn request_unknown_and_wrong_state(l: &dyn Ledger) {
    let a = pair_a();
    let (nobody, token) = (id(), id());
    assert_eq!(l.request(nobody).await, Ok(None));
    let claim = l
        .claim_answer(nobody, &a.msp, &a.cmp, token, 1, STALE_MS)
        .await;
    assert_eq!(claim, Err(LedgerError::UnknownRequest));
    let settle = l.settle_request(nobody, Settle::Sync, 1).await;
    assert_eq!(settle, Err(LedgerError::UnknownRequest));
    let finish = l.finish_answer(nobody, Some(Delivered::Code), 1).await;
    assert_eq!(finish, Err(LedgerError::UnknownRequest));

    let rid = id();
    l.open_request(new_req(rid, token, &a, 10)).await.unwrap();
    let finish = l.finish_answer(rid, None, 11).await;
    assert_eq!(
        finish,
        Err(LedgerError::WrongState {
            id: rid,
            state: "pending"
        })
    );
    l.settle_request(rid, Settle::Async { deadline: 1_000 }, 12)
        .await
        .unwrap();
    let finish = l.finish_answer(rid, Some(Delivered::Code), 13).await;
    assert_eq!(
        finish,
        Err(LedgerError::WrongState {
            id: rid,
            state: "open"
        })
    );
    l.claim_answer(rid, &a.msp, &a.cmp, token, 14, STALE_MS)
        .await
        .unwrap();
    let settle = l.settle_request(rid, Settle::Sync, 15).await;
    assert_eq!(
        settle,
        Err(LedgerError::WrongState {
            id: rid,
            state: "answering"
        })
    );
    l.finish_answer(rid, Some(Delivered::Code), 16)
        .await
        .unwrap();
    let finish = l.finish_answer(rid, Some(Delivered::Code), 17).await;
    assert_eq!(
        finish,
        Err(LedgerError::WrongState {
            id: rid,
            state: "closed"
        })
    );
}

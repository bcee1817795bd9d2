//! Checks of the federation lifecycle: reserve, confirm, release, learn, invalidate.

use super::{id, new_fed, pair_a, pair_b, STALE_MS};
use crate::ledger::{FederationState, Ledger, LedgerError, Standing, Withdrawal};

/// Reserve, retry, confirm; another pair is refused throughout.
pub async fn federation_reserve_confirm_and_retry(l: &dyn Ledger) {
    let (a, b, token) = (pair_a(), pair_b(), id());
    assert_eq!(l.federation(token).await, Ok(None));

    l.reserve_federation(token, &a, 100, STALE_MS)
        .await
        .unwrap();
    let fed = l.federation(token).await.unwrap().unwrap();
    assert_eq!(fed.state, FederationState::Reserved { at: 100 });
    assert_eq!(
        (fed.pair.clone(), fed.created_at, fed.learned),
        (a.clone(), 100, false)
    );

    // A retry of the same pair renews the reservation; another pair is refused.
    l.reserve_federation(token, &a, 200, STALE_MS)
        .await
        .unwrap();
    let renewed = l.federation(token).await.unwrap().unwrap();
    assert_eq!(
        (renewed.state, renewed.created_at),
        (FederationState::Reserved { at: 200 }, 100)
    );
    let taken = l.reserve_federation(token, &b, 300, STALE_MS).await;
    assert_eq!(taken, Err(LedgerError::TokenTaken));
    assert_eq!(
        l.confirm_federation(new_fed(token, &b, 300)).await,
        Err(LedgerError::TokenTaken)
    );

    let active = l.confirm_federation(new_fed(token, &a, 400)).await.unwrap();
    assert_eq!(active.state, FederationState::Active);
    assert_eq!(active.sid, Some(uuid::Uuid::from_u128(7)));
    assert_eq!(active.subscription_type.as_deref(), Some("private"));
    assert_eq!((active.created_at, active.learned), (100, false));
    assert_eq!(l.federation(token).await, Ok(Some(active.clone())));

    // Once active: a retry of the same pair is fine and changes nothing.
    l.reserve_federation(token, &a, 500, STALE_MS)
        .await
        .unwrap();
    assert_eq!(
        l.confirm_federation(new_fed(token, &a, 600)).await,
        Ok(active.clone())
    );
    assert_eq!(l.federation(token).await, Ok(Some(active)));
    // Another pair is refused, however old the federation is.
    let taken = l.reserve_federation(token, &b, 1_000_000, STALE_MS).await;
    assert_eq!(taken, Err(LedgerError::TokenTaken));
    assert_eq!(
        l.confirm_federation(new_fed(token, &b, 700)).await,
        Err(LedgerError::TokenTaken)
    );
}

/// Another pair's reservation is taken over only once it is older than `stale_after_ms`.
pub async fn federation_stale_reservation_is_taken_over(l: &dyn Ledger) {
    let (a, b, token) = (pair_a(), pair_b(), id());
    l.reserve_federation(token, &a, 1_000, STALE_MS)
        .await
        .unwrap();
    let young = l
        .reserve_federation(token, &b, 1_000 + STALE_MS, STALE_MS)
        .await;
    assert_eq!(young, Err(LedgerError::TokenTaken));

    l.reserve_federation(token, &b, 1_001 + STALE_MS, STALE_MS)
        .await
        .unwrap();
    let fed = l.federation(token).await.unwrap().unwrap();
    assert_eq!(fed.pair, b);
    assert_eq!(fed.created_at, 1_001 + STALE_MS);
    assert_eq!(
        fed.state,
        FederationState::Reserved {
            at: 1_001 + STALE_MS
        }
    );

    // The first pair's late 201 is refused and its release does nothing.
    assert_eq!(
        l.confirm_federation(new_fed(token, &a, 5_000)).await,
        Err(LedgerError::TokenTaken)
    );
    l.release_federation(token, &a).await.unwrap();
    assert_eq!(l.federation(token).await.unwrap().unwrap().pair, b);
}

/// Release drops a reservation of the same pair, and nothing else.
pub async fn federation_release_only_drops_own_reservation(l: &dyn Ledger) {
    let (a, b, token) = (pair_a(), pair_b(), id());
    l.release_federation(token, &a).await.unwrap();
    assert_eq!(l.federation(token).await, Ok(None));

    l.reserve_federation(token, &a, 10, STALE_MS).await.unwrap();
    l.release_federation(token, &b).await.unwrap();
    assert!(l.federation(token).await.unwrap().is_some());
    l.release_federation(token, &a).await.unwrap();
    assert_eq!(l.federation(token).await, Ok(None));

    // A released token can be reserved again, by anyone.
    l.reserve_federation(token, &b, 20, STALE_MS).await.unwrap();
    let active = l.confirm_federation(new_fed(token, &b, 30)).await.unwrap();
    l.release_federation(token, &b).await.unwrap();
    assert_eq!(l.federation(token).await, Ok(Some(active)));
}

/// A 201 for a token whose reservation is gone still records the federation.
pub async fn federation_confirm_without_reservation(l: &dyn Ledger) {
    let token = id();
    let fed = l
        .confirm_federation(new_fed(token, &pair_a(), 42))
        .await
        .unwrap();
    assert_eq!(
        (&fed.state, fed.created_at, fed.learned),
        (&FederationState::Active, 42, false)
    );
    assert_eq!(fed.msp_token, token);
    assert_eq!(l.federation(token).await, Ok(Some(fed)));
}

/// Learning inserts an active, learned federation once; the same pair leaves it alone.
pub async fn federation_learn(l: &dyn Ledger) {
    let (a, b, token) = (pair_a(), pair_b(), id());
    let learned = l.learn_federation(new_fed(token, &a, 5)).await.unwrap();
    assert_eq!(learned.state, FederationState::Active);
    assert!(learned.learned);
    assert_eq!(learned.created_at, 5);

    assert_eq!(
        l.learn_federation(new_fed(token, &a, 9)).await,
        Ok(learned.clone())
    );
    assert_eq!(
        l.learn_federation(new_fed(token, &b, 9)).await,
        Err(LedgerError::TokenTaken)
    );
    assert_eq!(
        l.confirm_federation(new_fed(token, &a, 9)).await,
        Ok(learned.clone())
    );
    l.reserve_federation(token, &a, 9, STALE_MS).await.unwrap();
    assert_eq!(l.federation(token).await, Ok(Some(learned)));

    // Learning never revives a withdrawn token: the record comes back as it is.
    let gone = id();
    l.learn_federation(new_fed(gone, &a, 1)).await.unwrap();
    let invalid = l
        .invalidate_federation(gone, Withdrawal::Operator, None, 2)
        .await
        .unwrap();
    assert_eq!(l.learn_federation(new_fed(gone, &a, 3)).await, Ok(invalid));
}

/// Invalidation is final and idempotent; a withdrawn token is never reused (A.3).
pub async fn federation_invalidate(l: &dyn Ledger) {
    let (a, b, token) = (pair_a(), pair_b(), id());
    let unknown = l
        .invalidate_federation(token, Withdrawal::MspNotified, None, 1)
        .await;
    assert_eq!(unknown, Err(LedgerError::NotFound));

    l.confirm_federation(new_fed(token, &a, 10)).await.unwrap();
    let reason = Some("customer left".to_string());
    let invalid = l
        .invalidate_federation(token, Withdrawal::MspNotified, reason.clone(), 20)
        .await
        .unwrap();
    let expected = FederationState::Invalid {
        at: 20,
        by: Withdrawal::MspNotified,
        reason,
    };
    assert_eq!(invalid.state, expected);
    assert_eq!(invalid.sid, Some(uuid::Uuid::from_u128(7)));

    // Again, by anyone, later: the first withdrawal stands.
    let again = l
        .invalidate_federation(token, Withdrawal::CmpRequested, None, 30)
        .await;
    assert_eq!(again, Ok(invalid.clone()));
    assert_eq!(l.federation(token).await, Ok(Some(invalid)));

    for pair in [&a, &b] {
        let reuse = l.reserve_federation(token, pair, 1_000_000, STALE_MS).await;
        assert_eq!(reuse, Err(LedgerError::TokenWithdrawn));
        let confirm = l.confirm_federation(new_fed(token, pair, 40)).await;
        assert_eq!(confirm, Err(LedgerError::TokenWithdrawn));
    }

    // A reservation can be withdrawn too; its late 201 is then refused.
    let reserved = id();
    l.reserve_federation(reserved, &a, 50, STALE_MS)
        .await
        .unwrap();
    let withdrawn = l
        .invalidate_federation(reserved, Withdrawal::Operator, None, 60)
        .await
        .unwrap();
    assert!(matches!(
        withdrawn.state,
        FederationState::Invalid { at: 60, .. }
    ));
    let late = l.confirm_federation(new_fed(reserved, &a, 70)).await;
    assert_eq!(late, Err(LedgerError::TokenWithdrawn));
    l.release_federation(reserved, &a).await.unwrap();
    assert_eq!(l.federation(reserved).await, Ok(Some(withdrawn)));
}

/// A federation's standing for its own pair and for another, at each step of its life, and
/// always what [`Standing::of`] makes of the record itself.
pub async fn federation_standing_follows_the_lifecycle(l: &dyn Ledger) {
    let (a, b, token) = (pair_a(), pair_b(), id());
    let check = |stage: &'static str, own: Standing, other: Standing| {
        let (a, b) = (a.clone(), b.clone());
        async move {
            let record = l.federation(token).await.unwrap();
            for (pair, expected) in [(&a, own), (&b, other)] {
                let standing: Standing = l.standing(token, pair).await.unwrap();
                assert_eq!(standing, expected, "{stage}, for {pair:?}");
                assert_eq!(standing, Standing::of(record.as_ref(), pair), "{stage}");
            }
        }
    };
    check("unknown", Standing::Absent, Standing::Absent).await;
    l.reserve_federation(token, &a, 100, STALE_MS)
        .await
        .unwrap();
    check("reserved", Standing::Unusable, Standing::Unusable).await;
    l.confirm_federation(new_fed(token, &a, 200)).await.unwrap();
    check("active", Standing::Active, Standing::Unusable).await;
    l.invalidate_federation(token, Withdrawal::CmpRequested, None, 300)
        .await
        .unwrap();
    check("withdrawn", Standing::Invalid, Standing::Unusable).await;
}

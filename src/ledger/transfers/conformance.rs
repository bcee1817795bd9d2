//! The checks every [`TransferLedger`] passes, through the trait alone; each takes a fresh,
//! empty ledger and panics on failure (test code compiled into the library so every
//! backend runs the same suite).

use super::{Changed, Stage, Step, TemporaryToken, TokenChange, Transfer, TransferLedger};
use std::future::Future;
use std::pin::Pin;
use uuid::Uuid;

/// A running check.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// One check, by name.
pub struct Check {
    /// Its name.
    pub name: &'static str,
    /// Runs it on an empty ledger.
    pub run: for<'a> fn(&'a dyn TransferLedger) -> CheckFuture<'a>,
}

/// Every check.
pub const ALL: &[Check] = &[
    Check {
        name: "tokens_are_found_by_hash_and_bridge",
        run: |l| Box::pin(tokens_are_found_by_hash_and_bridge(l)),
    },
    Check {
        name: "one_transfer_per_token",
        run: |l| Box::pin(one_transfer_per_token(l)),
    },
    Check {
        name: "steps_follow_the_transfer",
        run: |l| Box::pin(steps_follow_the_transfer(l)),
    },
    Check {
        name: "sweep_forgets_expired_tokens_and_old_transfers",
        run: |l| Box::pin(sweep_forgets_expired_tokens_and_old_transfers(l)),
    },
];

/// A token of carrier `c` for `transfer`, expiring at `expires`.
pub fn token(hash: &str, c: &str, transfer: Uuid, expires: u64) -> TemporaryToken {
    TemporaryToken {
        hash: hash.to_owned(),
        carrier: c.to_owned(),
        transfer,
        issued_at: 1_000,
        expires_at: expires,
        targets: vec!["ManageSubscription".into(), "AcquireConfiguration".into()],
        spent_upstream: false,
        transfer_requested: false,
        bridge_hash: None,
    }
}

fn step(at: u64, stage: Stage) -> Step {
    Step {
        at,
        stage,
        note: None,
    }
}

/// Opens a transfer of carrier `c` with one token.
pub async fn open(ledger: &dyn TransferLedger, hash: &str, c: &str, at: u64) -> Uuid {
    let id = Uuid::new_v4();
    let transfer = Transfer::new(id, c, vec![step(at, Stage::TokenIssued)]);
    ledger
        .open_transfer(transfer, token(hash, c, id, at + 300_000))
        .await
        .unwrap();
    id
}

/// Tokens are found by their hash and by their bridge `TOKEN`'s hash, nothing else.
pub async fn tokens_are_found_by_hash_and_bridge(ledger: &dyn TransferLedger) {
    let id = open(ledger, "h1", "acme", 1_000).await;
    let found = ledger.token("h1").await.unwrap().unwrap();
    assert_eq!(found.transfer, id);
    assert_eq!(ledger.token("nope").await.unwrap(), None);
    assert_eq!(
        ledger
            .change_token("nope", TokenChange::Spent)
            .await
            .unwrap(),
        Changed::Unknown
    );
    let Changed::Done(t) = ledger
        .change_token("h1", TokenChange::Bridge("b1".into()))
        .await
        .unwrap()
    else {
        panic!("bridge refused")
    };
    assert_eq!(t.bridge_hash.as_deref(), Some("b1"));
    assert_eq!(ledger.token("b1").await.unwrap().unwrap().hash, "h1");
    ledger.change_token("h1", TokenChange::Spent).await.unwrap();
    assert!(ledger.token("h1").await.unwrap().unwrap().spent_upstream);
    // A second open with the same hash keeps the first record.
    let other = Uuid::new_v4();
    ledger
        .open_transfer(
            Transfer::new(other, "acme", vec![step(5, Stage::TokenIssued)]),
            token("h1", "acme", other, 9),
        )
        .await
        .unwrap();
    assert_eq!(ledger.token("h1").await.unwrap().unwrap().transfer, id);
}

/// ManageSubscription(3) is granted once per token.
pub async fn one_transfer_per_token(ledger: &dyn TransferLedger) {
    open(ledger, "h2", "acme", 1_000).await;
    let first = ledger
        .change_token("h2", TokenChange::RequestTransfer)
        .await
        .unwrap();
    assert!(matches!(first, Changed::Done(t) if t.transfer_requested));
    let second = ledger
        .change_token("h2", TokenChange::RequestTransfer)
        .await
        .unwrap();
    assert!(matches!(second, Changed::Refused(_)));
}

/// Steps are appended in order, move the stage, and list newest first by carrier.
pub async fn steps_follow_the_transfer(ledger: &dyn TransferLedger) {
    let a = open(ledger, "ha", "acme", 1_000).await;
    let b = open(ledger, "hb", "other", 2_000).await;
    assert_eq!(
        ledger
            .step(Uuid::new_v4(), step(3, Stage::Poll))
            .await
            .unwrap(),
        None
    );
    ledger
        .step(a, step(3_000, Stage::TransferRequested))
        .await
        .unwrap();
    let t = ledger
        .step(a, step(4_000, Stage::Updated))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.stage, Stage::Updated);
    assert_eq!(t.steps.len(), 3);
    assert_eq!(t.updated_at, 4_000);
    let all = ledger.transfers(None, 10).await.unwrap();
    assert_eq!(all.iter().map(|t| t.id).collect::<Vec<_>>(), vec![a, b]);
    let mine = ledger.transfers(Some("other"), 10).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].id, b);
    assert_eq!(ledger.transfers(None, 1).await.unwrap().len(), 1);
    assert_eq!(ledger.transfer(b).await.unwrap().unwrap().carrier, "other");
    for i in 0..100 {
        ledger.step(b, step(5_000 + i, Stage::Poll)).await.unwrap();
    }
    let b = ledger.transfer(b).await.unwrap().unwrap();
    assert_eq!(b.steps.len(), super::MAX_STEPS);
    assert_eq!(b.updated_at, 5_099);
}

/// Expired tokens and old transfers go; live ones stay.
pub async fn sweep_forgets_expired_tokens_and_old_transfers(ledger: &dyn TransferLedger) {
    let old = open(ledger, "old", "acme", 1_000).await;
    ledger
        .change_token("old", TokenChange::Bridge("old-b".into()))
        .await
        .unwrap();
    let new = open(ledger, "new", "acme", 500_000).await;
    let gone = ledger.sweep_transfers(400_000, 200_000).await.unwrap();
    assert_eq!(gone, 2, "the old token and the old transfer");
    assert_eq!(ledger.token("old").await.unwrap(), None);
    assert_eq!(ledger.token("old-b").await.unwrap(), None);
    assert!(ledger.transfer(old).await.unwrap().is_none());
    assert!(ledger.token("new").await.unwrap().is_some());
    assert!(ledger.transfer(new).await.unwrap().is_some());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_model_passes_the_suite() {
        for check in ALL {
            let ledger = super::super::MemoryTransfers::new();
            (check.run)(&ledger).await;
        }
    }
}

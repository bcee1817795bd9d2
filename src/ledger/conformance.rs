//! The backend-agnostic test suite: every lifecycle rule and every refusal, checked
//! through the [`Ledger`] trait alone.
//!
//! Each check is a plain `pub async fn` taking a fresh, empty ledger; [`ALL`] lists them
//! so that a backend's tests run the whole suite in one loop:
//!
//! ```text
//! for check in conformance::ALL {
//!     let ledger = open_an_empty_ledger();
//!     (check.run)(&ledger).await;
//! }
//! ```
//!
//! This is test code compiled into the library so that every backend (and the
//! integration tests) can run it: a failed check panics, like a `#[test]` body.

mod federations;
mod records;
mod requests;

use std::future::Future;
use std::pin::Pin;

use uuid::Uuid;

pub use self::federations::*;
pub use self::records::*;
pub use self::requests::*;
use super::{Ledger, NewAcRequest, NewFederation, Pair};

/// A running check.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// One check of the suite, by name.
pub struct Check {
    /// The check's function name.
    pub name: &'static str,
    /// Runs it on an empty ledger; panics on failure.
    pub run: for<'a> fn(&'a dyn Ledger) -> CheckFuture<'a>,
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        /// Every check of the suite.
        pub const ALL: &[Check] = &[$(Check {
            name: stringify!($name),
            run: |ledger| Box::pin($name(ledger)),
        }),*];
    };
}

checks![
    federation_reserve_confirm_and_retry,
    federation_stale_reservation_is_taken_over,
    federation_release_only_drops_own_reservation,
    federation_confirm_without_reservation,
    federation_learn,
    federation_invalidate,
    federation_standing_follows_the_lifecycle,
    request_open_rules,
    request_sync_refused_and_abandoned,
    request_async_lifecycle,
    request_claim_checks_the_pair_and_token,
    request_claim_past_deadline_expires_it,
    request_claim_busy_and_stale_takeover,
    request_unknown_and_wrong_state,
    profiles_keep_the_last_status,
    list_requests_filters,
    export_round_trips_as_json_lines,
    import_reports_added_present_and_conflicting,
    stats_follow_transitions,
    sweep_expires_and_purges,
];

/// How long a reservation or a claim lives in the checks (ms).
pub const STALE_MS: u64 = 1_000;

/// The MSP `m1` with the CMP `c1`.
pub fn pair_a() -> Pair {
    Pair::new("m1", "c1")
}

/// The same MSP `m1` with another CMP, `c2`.
pub fn pair_b() -> Pair {
    Pair::new("m1", "c2")
}

/// A federation as the CMP's 201 confirms it.
pub fn new_fed(token: Uuid, pair: &Pair, at: u64) -> NewFederation {
    NewFederation {
        msp_token: token,
        pair: pair.clone(),
        sid: Some(Uuid::from_u128(7)),
        subscription_type: Some("private".into()),
        at,
    }
}

/// A request of `pair` for `token`.
pub fn new_req(id: Uuid, token: Uuid, pair: &Pair, at: u64) -> NewAcRequest {
    NewAcRequest {
        id,
        msp_token: token,
        pair: pair.clone(),
        at,
    }
}

/// A fresh random id.
pub fn id() -> Uuid {
    Uuid::new_v4()
}

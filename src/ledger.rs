//! The ledger: the hub's durable memory of federations (`msp_token`s), activation-code
//! requests and profile statuses, in domain words.
//!
//! Callers see [`Federation`]s, [`AcRequest`]s and [`Profile`]s and the transitions the
//! AID1 lifecycle allows (spec digest, "Lifecycle rules"); they never see trees, keys or
//! bytes. The [`Ledger`] trait is the seam: [`SledLedger`] (embedded, the default),
//! [`PostgresLedger`] (shared by several hub replicas) and [`MemoryLedger`] (the reference
//! model and a test double) implement it, [`open`] picks the configured one, and
//! [`conformance`] is the one test suite every backend runs.
//!
//! How it fits the request walk (`ARCHITECTURE.md`): the *ledger check* phase calls
//! [`Ledger::reserve_federation`], [`Ledger::open_request`] or [`Ledger::claim_answer`]
//! before forwarding; the *ledger record* phase calls [`Ledger::confirm_federation`],
//! [`Ledger::settle_request`], [`Ledger::finish_answer`] or [`Ledger::record_profiles`]
//! with what the partner answered, or [`Ledger::release_federation`] when it refused.
//!
//! The modules:
//! - `types.rs`: the domain types (plain data; no field can hold an activation code,
//!   a phone number or an account id);
//! - `rules.rs` (and `rules/sweep.rs` for retention): the lifecycle as pure functions
//!   from the current record to the next one, shared by every backend so that they
//!   cannot disagree;
//! - `codec.rs`: binary keys and the versioned stored form;
//! - `memory.rs`: [`MemoryLedger`], the model and test double;
//! - `sled.rs` (with `sled/group_commit.rs`, `counters.rs`, `sweep.rs`, and the tests
//!   `sled/tests.rs`, `sled/model_tests.rs`): [`SledLedger`];
//! - `conformance.rs` (and `conformance/*.rs`): the checks every backend passes;
//! - `transfers.rs` (and `transfers/*.rs`, `sled/transfers.rs`): TS.43 temporary tokens
//!   and eSIM transfers, behind their own [`transfers::TransferLedger`] trait.
//! - `postgres.rs` (with `postgres/rows.rs`, `reads.rs`, `schema.rs`, `sweep.rs`,
//!   `fault.rs`): [`PostgresLedger`];
//! - `conformance.rs` (and `conformance/*.rs`): the checks every backend passes;
//! - `bench.rs`: `aidhub ledger bench`; `cli.rs`: the other `aidhub ledger` commands.
//!
//! Conventions: times are Unix milliseconds passed in by the caller (`now`), so tests
//! control time; "older than `x` ms" means strictly older. Durability: the writes an answer
//! relayed to a partner depends on — [`Ledger::confirm_federation`],
//! [`Ledger::invalidate_federation`], [`Ledger::settle_request`] with [`Settle::Async`],
//! [`Ledger::finish_answer`], [`Ledger::learn_federation`], [`Ledger::import_federations`] —
//! return only once their effect, and anything they observed, is durable, whatever they
//! return. The others (reservations, opening a request, closing it synchronously, claiming
//! an answer, profiles) protect nothing once the process is gone, and a backend may let them
//! reach the disk with the next durable write.

pub mod bench;
pub mod cli;
pub mod conformance;
pub mod memory;
pub mod postgres;
pub mod sled;
pub mod transfers;

mod codec;
mod rules;
mod types;

pub use self::memory::MemoryLedger;
pub use self::postgres::PostgresLedger;
pub use self::sled::SledLedger;
pub use self::types::{
    AcRequest, AcState, Delivered, ExportRecord, Federation, FederationState, ImportReport,
    LedgerStats, NewAcRequest, NewFederation, Outcome, Pair, Profile, ProfileEvent, ProfileSource,
    RequestFilter, Settle, Standing, SweepReport, Withdrawal,
};

use std::sync::Arc;

use uuid::Uuid;

use crate::config::{LedgerBackend, LedgerSettings};

/// Opens the ledger the configuration names: sled under `ledger.path` (its directory
/// created when missing) or PostgreSQL (migrated to the current schema).
pub async fn open(
    settings: &LedgerSettings,
) -> Result<(Arc<dyn Ledger>, Arc<dyn transfers::TransferLedger>), String> {
    match &settings.backend {
        LedgerBackend::Sled => {
            let path = &settings.path;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            let ledger = SledLedger::open_with(path, settings.checkpoint)
                .map_err(|e| format!("ledger at {}: {e}", path.display()))?;
            Ok((Arc::new(ledger.clone()), Arc::new(ledger)))
        }
        LedgerBackend::Postgres(pg) => {
            let ledger = PostgresLedger::connect(pg)
                .await
                .map_err(|e| format!("ledger on PostgreSQL (schema {}): {e}", pg.schema))?;
            // TS.43 transfers have no PostgreSQL backend yet: each replica keeps its own, in
            // memory (README, "Running several replicas").
            tracing::warn!("TS.43 transfer records are kept in memory on this replica (the PostgreSQL ledger does not hold them yet)");
            Ok((
                Arc::new(ledger),
                Arc::new(transfers::MemoryTransfers::default()),
            ))
        }
    }
}

/// Why a ledger call did not do what was asked.
///
/// The lifecycle variants are answers, not faults: the caller maps them to the spec's
/// status and error code. [`LedgerError::Corrupt`], [`LedgerError::Storage`] and
/// [`LedgerError::Unavailable`] are faults; none of them carries a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The token is reserved for, or held by, another pair.
    #[error("the msp_token belongs to another pair")]
    TokenTaken,
    /// The token was withdrawn; it is never used again.
    #[error("the msp_token was withdrawn")]
    TokenWithdrawn,
    /// No such federation.
    #[error("no such msp_token")]
    NotFound,
    /// A request with this `activationCodeRequestID` already exists.
    #[error("the activationCodeRequestID is already known")]
    DuplicateRequest,
    /// No request with this `activationCodeRequestID` (spec error code 30).
    #[error("unknown activationCodeRequestID")]
    UnknownRequest,
    /// The request is closed, or its deadline passed (spec error code 31).
    #[error("the activation code request is closed")]
    RequestClosed,
    /// The MSP's 201 has not been relayed yet; retry shortly.
    #[error("the activation code request is still pending")]
    RequestPending,
    /// Another answer for this request is being forwarded; retry shortly.
    #[error("an answer for this request is being forwarded")]
    RequestBusy,
    /// The request belongs to another `what` (`"msp"`, `"cmp"` or `"msp_token"`).
    ///
    /// An `"msp"` mismatch should reach the caller as an unknown request, so that one MSP
    /// cannot probe another's request ids.
    #[error("the request's {what} does not match")]
    Mismatch {
        /// Which attribute differs.
        what: &'static str,
    },
    /// The request is not in a state that allows this step.
    #[error("request {id} is {state}")]
    WrongState {
        /// The request.
        id: Uuid,
        /// Its state's name ([`AcState::name`]).
        state: &'static str,
    },
    /// A stored record could not be read (unknown schema version, bad encoding).
    #[error("corrupt ledger record {key}: {reason}")]
    Corrupt {
        /// The record's key, e.g. `federation/<uuid>`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The storage engine failed (I/O, full disk).
    #[error("ledger storage failed: {0}")]
    Storage(String),
    /// A remote backend cannot be reached right now.
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
}

impl LedgerError {
    /// Whether the same call may succeed if retried a little later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LedgerError::RequestPending | LedgerError::RequestBusy | LedgerError::Unavailable(_)
        )
    }
}

/// The sink [`Ledger::export`] hands each record to.
pub type ExportSink<'a> = dyn FnMut(ExportRecord) -> Result<(), LedgerError> + Send + 'a;

/// The hub's durable record, in domain words. Object safe: use it as `Arc<dyn Ledger>`.
///
/// Writes an answer depends on are durable on return (see the module docs for which).
/// Methods never hold a lock across an `.await`.
#[async_trait::async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// The federation of `token`, if known.
    async fn federation(&self, token: Uuid) -> Result<Option<Federation>, LedgerError>;

    /// How the federation of `token` stands for `pair`: [`Standing::of`] what
    /// [`Ledger::federation`] gives. Every call naming a token asks this; a backend that
    /// holds its records in memory answers it without copying the record out.
    async fn standing(&self, token: Uuid, pair: &Pair) -> Result<Standing, LedgerError> {
        Ok(Standing::of(self.federation(token).await?.as_ref(), pair))
    }

    /// Before forwarding Send MSP Token: reserve `token` for `pair`.
    ///
    /// `Ok` if the token is unknown (now `Reserved` for `pair`) or already `Reserved`
    /// (renewed) or `Active` for the same pair (a retry). [`LedgerError::TokenTaken`] if
    /// another pair holds it, except that another pair's reservation older than
    /// `stale_after_ms` is taken over. [`LedgerError::TokenWithdrawn`] if it is `Invalid`.
    async fn reserve_federation(
        &self,
        token: Uuid,
        pair: &Pair,
        now: u64,
        stale_after_ms: u64,
    ) -> Result<(), LedgerError>;

    /// After the CMP's 201: `Reserved` (or absent) becomes `Active` with the sid and
    /// subscription type. An `Active` record of the same pair is returned unchanged.
    /// [`LedgerError::TokenTaken`] if another pair holds it,
    /// [`LedgerError::TokenWithdrawn`] if it is `Invalid`.
    async fn confirm_federation(&self, fed: NewFederation) -> Result<Federation, LedgerError>;

    /// The CMP refused or the forward failed: drop the reservation if it is still
    /// `Reserved` by `pair`; otherwise do nothing.
    async fn release_federation(&self, token: Uuid, pair: &Pair) -> Result<(), LedgerError>;

    /// Migration mode: insert `Active` and learned if absent. A record of the same pair,
    /// in any state, is returned unchanged (its state tells the caller whether it may be
    /// used); another pair's is [`LedgerError::TokenTaken`].
    async fn learn_federation(&self, fed: NewFederation) -> Result<Federation, LedgerError>;

    /// Withdraw `token`: `Active` (or `Reserved`) becomes `Invalid`. Idempotent: an
    /// `Invalid` record is returned as it is. [`LedgerError::NotFound`] if unknown.
    ///
    /// The caller checks beforehand that the withdrawing partner is one of the pair.
    async fn invalidate_federation(
        &self,
        token: Uuid,
        by: Withdrawal,
        reason: Option<String>,
        now: u64,
    ) -> Result<Federation, LedgerError>;

    /// Before forwarding Request Activation Code: insert it `Pending`.
    ///
    /// [`LedgerError::DuplicateRequest`] if the id exists in any state;
    /// [`LedgerError::TokenWithdrawn`] if the token's federation is `Invalid` (rule 2);
    /// [`LedgerError::Mismatch`] if the federation belongs to another pair. An unknown
    /// token is accepted (migration mode); the caller decides whether to allow it.
    async fn open_request(&self, req: NewAcRequest) -> Result<(), LedgerError>;

    /// The MSP answered: `Pending` becomes `Open { deadline }` (201) or `Closed` (200,
    /// refusal, no answer). [`LedgerError::UnknownRequest`] if unknown,
    /// [`LedgerError::WrongState`] if not `Pending`.
    async fn settle_request(
        &self,
        id: Uuid,
        settle: Settle,
        now: u64,
    ) -> Result<AcRequest, LedgerError>;

    /// A Send Activation Code arrived: `Open` becomes `Answering { at: now }`.
    ///
    /// In order: [`LedgerError::UnknownRequest`]; [`LedgerError::Mismatch`] naming the
    /// first of msp, cmp, token that differs; [`LedgerError::RequestClosed`] if closed, or
    /// open past its deadline (it is then closed as [`Outcome::Expired`] in the same
    /// step); [`LedgerError::RequestPending`] if the 201 has not been relayed yet;
    /// [`LedgerError::RequestBusy`] if another answer was claimed no longer than
    /// `stale_after_ms` ago (an older claim died and is taken over).
    async fn claim_answer(
        &self,
        id: Uuid,
        msp: &str,
        cmp: &str,
        token: Uuid,
        now: u64,
        stale_after_ms: u64,
    ) -> Result<AcRequest, LedgerError>;

    /// After forwarding a claimed answer: `Answering` becomes `Closed` with the outcome
    /// of what was delivered, or `Open` with the same deadline again when `delivered` is
    /// `None` (the CMP did not take it). [`LedgerError::WrongState`] if not `Answering`.
    async fn finish_answer(
        &self,
        id: Uuid,
        delivered: Option<Delivered>,
        now: u64,
    ) -> Result<AcRequest, LedgerError>;

    /// The request `id`, if known.
    async fn request(&self, id: Uuid) -> Result<Option<AcRequest>, LedgerError>;

    /// Keep the last status per (token, ICCID); later events in `events` win. The token
    /// need not be known (Send CSIM Status stays allowed on a withdrawn token, rule 2).
    async fn record_profiles(
        &self,
        token: Uuid,
        events: &[ProfileEvent],
        now: u64,
    ) -> Result<(), LedgerError>;

    /// The profiles of `token`, by ICCID.
    async fn profiles(&self, token: Uuid) -> Result<Vec<Profile>, LedgerError>;

    /// Inspection: the requests matching `filter`, oldest first. Scans every request.
    async fn list_requests(&self, filter: &RequestFilter) -> Result<Vec<AcRequest>, LedgerError>;

    /// Hand every record to `sink` (federations, then requests, then profiles) and return
    /// how many. Not a point-in-time snapshot: records written meanwhile may or may not
    /// appear. Stops at the first error of `sink`.
    async fn export(&self, sink: &mut ExportSink<'_>) -> Result<u64, LedgerError>;

    /// Learn many federations at once (as [`Ledger::learn_federation`]), durable on return.
    async fn import_federations(
        &self,
        lines: Vec<NewFederation>,
    ) -> Result<ImportReport, LedgerError>;

    /// Record counts by state. Cheap: see each backend for how.
    async fn stats(&self) -> Result<LedgerStats, LedgerError>;

    /// Retention: close `Open` requests past their deadline as expired and stale
    /// `Pending`/`Answering` ones as abandoned; purge closed requests, `Invalid`
    /// federations (with their profiles) and reservations older than `retention_ms`.
    async fn sweep(&self, now: u64, retention_ms: u64) -> Result<SweepReport, LedgerError>;

    /// Make every write so far durable.
    async fn flush(&self) -> Result<(), LedgerError>;

    /// Why this backend can record no change any more, if so: the embedded ledger's writer
    /// stops for good after a storage failure (a full or failing disk) until the hub is
    /// restarted. Cheap, for `/ready` and the metrics. A database backend's outages are
    /// passing and show on its calls instead.
    fn failure(&self) -> Option<LedgerError> {
        None
    }

    /// Whether this backend can serve the request path now, for `/ready`: it can still
    /// record changes ([`Ledger::failure`]) and answers a lookup — a primary-key lookup, not
    /// `stats`: cheap on every backend, probed often. A database backend also asks whether
    /// the server takes writes at all.
    async fn ready(&self) -> Result<(), LedgerError> {
        if let Some(failure) = self.failure() {
            return Err(failure);
        }
        self.federation(Uuid::nil()).await.map(drop)
    }

    /// How long this backend's own syncs took, by kind, for `aidhub_ledger_sync_seconds`.
    /// None by default: a database backend's durability is its commit, which
    /// `aidhub_ledger_settle_seconds` already times.
    fn sync_times(&self) -> Vec<(&'static str, &crate::metrics::Histogram)> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_errors_are_retryable() {
        let retryable = [
            LedgerError::RequestPending,
            LedgerError::RequestBusy,
            LedgerError::Unavailable("down".into()),
        ];
        assert!(retryable.iter().all(LedgerError::is_retryable));
        let final_ = [
            LedgerError::TokenTaken,
            LedgerError::TokenWithdrawn,
            LedgerError::NotFound,
            LedgerError::DuplicateRequest,
            LedgerError::UnknownRequest,
            LedgerError::RequestClosed,
            LedgerError::Mismatch { what: "cmp" },
            LedgerError::WrongState {
                id: Uuid::nil(),
                state: "open",
            },
            LedgerError::Corrupt {
                key: "k".into(),
                reason: "r".into(),
            },
            LedgerError::Storage("io".into()),
        ];
        assert!(!final_.iter().any(LedgerError::is_retryable));
    }
}

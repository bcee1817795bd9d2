//! The TS.43 side of the ledger: temporary tokens and the eSIM transfers they belong to.
//!
//! A separate trait from [`super::Ledger`] (which other backends implement too): the
//! [`TransferLedger`] keeps, for each temporary token an AcquireTemporaryToken answer
//! issued through the hub, the SHA-256 of the token (never the token), its carrier,
//! expiry and `OperationTargets`, and follows the [`Transfer`] it belongs to from
//! eligibility to the update, step by step with times, so an operator can see where a
//! transfer stopped. [`SledLedger`](super::SledLedger) keeps them in their own trees of the
//! same database; [`MemoryTransfers`] is the model; [`conformance`] the checks both pass.
//!
//! The transitions are pure functions here ([`change`]), shared by both backends.

pub mod conformance;
mod memory;

pub use self::memory::MemoryTransfers;

use super::LedgerError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A temporary token as the ledger knows it (by hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemporaryToken {
    /// SHA-256 of the token, hex.
    pub hash: String,
    /// The carrier that issued it.
    pub carrier: String,
    /// The transfer it belongs to.
    pub transfer: Uuid,
    /// When the answer carrying it crossed the hub (Unix ms).
    pub issued_at: u64,
    /// Its `TemporaryTokenExpiry` (Unix ms).
    pub expires_at: u64,
    /// Its `OperationTargets`.
    pub targets: Vec<String>,
    /// Whether a request on it reached the ECS and was answered (an ECS may spend it).
    pub spent_upstream: bool,
    /// Whether its one ManageSubscription(3) was requested.
    pub transfer_requested: bool,
    /// SHA-256 of the `TOKEN` the hub gave the older client for its polls, hex.
    pub bridge_hash: Option<String>,
}

/// Where a transfer stands; also the name of each step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The source's CheckEligibility.
    Eligibility,
    /// The source's AcquireTemporaryToken answered with a token.
    TokenIssued,
    /// The target's ManageSubscription(3) was sent.
    TransferRequested,
    /// A DownloadInfo (activation code) reached the target.
    DownloadInfo,
    /// ManageSubscription(3) answered delayed download (SubscriptionResult 4).
    DelayedDownload,
    /// An AcquireConfiguration poll was answered.
    Poll,
    /// ManageSubscription(4) was answered: the transfer is done.
    Updated,
    /// An answer ended the transfer with a failure.
    Failed,
}

/// One step of a transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// When (Unix ms).
    pub at: u64,
    /// What.
    pub stage: Stage,
    /// The outcome in short (`eligibility=1`, `service_status=2`, `operation_result=100`);
    /// never a token, identifier or code.
    pub note: Option<String>,
}

/// Most steps kept per transfer (polls beyond are counted in the last one's note).
pub const MAX_STEPS: usize = 64;

/// One eSIM transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Its id (the hub's).
    pub id: Uuid,
    /// The carrier.
    pub carrier: String,
    /// First step (Unix ms).
    pub created_at: u64,
    /// Last step (Unix ms).
    pub updated_at: u64,
    /// The last step's stage.
    pub stage: Stage,
    /// Its steps, oldest first.
    pub steps: Vec<Step>,
}

impl Transfer {
    /// A transfer beginning with `steps` (at least one).
    pub fn new(id: Uuid, carrier: &str, steps: Vec<Step>) -> Transfer {
        let first = steps.first().map_or(0, |s| s.at);
        let last = steps.last().map_or(Stage::TokenIssued, |s| s.stage);
        Transfer {
            id,
            carrier: carrier.to_owned(),
            created_at: first,
            updated_at: steps.last().map_or(first, |s| s.at),
            stage: last,
            steps,
        }
    }

    /// Adds a step (the last stays the last when the cap is reached).
    pub fn push(&mut self, step: Step) {
        self.updated_at = self.updated_at.max(step.at);
        self.stage = step.stage;
        if self.steps.len() >= MAX_STEPS {
            self.steps.pop();
        }
        self.steps.push(step);
    }
}

/// A change to a temporary token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenChange {
    /// A request on it was answered by the ECS.
    Spent,
    /// Its ManageSubscription(3) is being sent: refused when already requested.
    RequestTransfer,
    /// The hub gave the older client a `TOKEN` with this hash.
    Bridge(String),
}

/// What a change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// Done; the token as it is now.
    Done(TemporaryToken),
    /// Refused (a second ManageSubscription(3)); the token as it is.
    Refused(TemporaryToken),
    /// No such token.
    Unknown,
}

/// The rule: the token after `change`, and the answer.
pub fn change(cur: &TemporaryToken, change: &TokenChange) -> (Option<TemporaryToken>, Changed) {
    let mut next = cur.clone();
    match change {
        TokenChange::Spent => next.spent_upstream = true,
        TokenChange::RequestTransfer if cur.transfer_requested => {
            return (None, Changed::Refused(cur.clone()))
        }
        TokenChange::RequestTransfer => next.transfer_requested = true,
        TokenChange::Bridge(hash) => next.bridge_hash = Some(hash.clone()),
    }
    if next == *cur {
        return (None, Changed::Done(next));
    }
    (Some(next.clone()), Changed::Done(next))
}

/// Temporary tokens and transfers, durable on return.
#[async_trait::async_trait]
pub trait TransferLedger: Send + Sync + 'static {
    /// Records a new transfer and its temporary token (a token hash seen again replaces
    /// nothing: the first record stays).
    async fn open_transfer(
        &self,
        transfer: Transfer,
        token: TemporaryToken,
    ) -> Result<(), LedgerError>;

    /// The token whose hash, or whose bridge `TOKEN`'s hash, is `hash`.
    async fn token(&self, hash: &str) -> Result<Option<TemporaryToken>, LedgerError>;

    /// Applies `change` to the token `hash` (its own hash).
    async fn change_token(&self, hash: &str, change: TokenChange) -> Result<Changed, LedgerError>;

    /// Adds a step to transfer `id`; `None` if unknown.
    async fn step(&self, id: Uuid, step: Step) -> Result<Option<Transfer>, LedgerError>;

    /// The transfer `id`.
    async fn transfer(&self, id: Uuid) -> Result<Option<Transfer>, LedgerError>;

    /// Transfers, newest first, of `carrier` if given, at most `limit`.
    async fn transfers(
        &self,
        carrier: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Transfer>, LedgerError>;

    /// Forgets tokens expired before `now` and transfers untouched for `retention_ms`;
    /// returns how many records went.
    async fn sweep_transfers(&self, now: u64, retention_ms: u64) -> Result<u64, LedgerError>;
}

/// Sorts newest first (by last step, then id) and keeps `limit`.
pub fn newest_first(list: &mut Vec<Transfer>, limit: usize) {
    list.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.id.cmp(&b.id)));
    list.truncate(limit);
}

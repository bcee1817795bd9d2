//! The ledger's domain types: what callers store and read back.
//!
//! These are plain data. Nothing here can hold an activation code, a phone number or an
//! account id: the ledger has no field for them, so no backend can store them by mistake.
//! ICCIDs are kept in clear (they identify a profile, they do not unlock it).
//!
//! The serde shape of [`Federation`], [`AcRequest`] and [`Profile`] is schema version 1 (see
//! `codec.rs`): the shape of an export line and of PostgreSQL's `record` column; sled stores
//! the same fields in `codec/binary.rs`'s layout. Changing them needs a new schema version.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The two partners of a federation: the mobile operator and the car maker.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pair {
    /// The MSP's partner id.
    pub msp: String,
    /// The CMP's partner id.
    pub cmp: String,
}

impl Pair {
    /// A pair from two partner ids.
    pub fn new(msp: impl Into<String>, cmp: impl Into<String>) -> Pair {
        Pair {
            msp: msp.into(),
            cmp: cmp.into(),
        }
    }

    /// Whether `partner` is one of the two.
    pub fn involves(&self, partner: &str) -> bool {
        self.msp == partner || self.cmp == partner
    }
}

/// One `msp_token`: the link between a customer's MSP subscription and a CMP account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Federation {
    /// The token (the MSP made it; unique per customer and MSP).
    pub msp_token: Uuid,
    /// Who holds it.
    pub pair: Pair,
    /// The onboarding session id taken from the account id, when known.
    pub sid: Option<Uuid>,
    /// `subscriptionType` as last sent by the MSP, when known.
    pub subscription_type: Option<String>,
    /// When the record was first written (Unix ms).
    pub created_at: u64,
    /// True when learned in migration mode or imported, rather than seen being sent.
    pub learned: bool,
    /// Where it stands.
    pub state: FederationState,
}

/// How a federation stands for one pair: all a call naming its token needs to know
/// ([`Ledger::standing`](super::Ledger::standing)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// No federation has the token.
    Absent,
    /// Another pair's, or only reserved (still being onboarded): not this pair's to use.
    Unusable,
    /// Active, this pair's.
    Active,
    /// Withdrawn, this pair's.
    Invalid,
}

impl Standing {
    /// How `fed` stands for `pair`.
    pub fn of(fed: Option<&Federation>, pair: &Pair) -> Standing {
        match fed {
            None => Standing::Absent,
            Some(f) if f.pair != *pair => Standing::Unusable,
            Some(f) => match f.state {
                FederationState::Reserved { .. } => Standing::Unusable,
                FederationState::Active => Standing::Active,
                FederationState::Invalid { .. } => Standing::Invalid,
            },
        }
    }
}

/// The life of a federation: `Reserved` → `Active` → `Invalid`, never back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "is", rename_all = "snake_case")]
pub enum FederationState {
    /// Send MSP Token is being forwarded; the CMP has not answered yet.
    Reserved {
        /// When the reservation was made or last renewed (Unix ms).
        at: u64,
    },
    /// The CMP accepted the token.
    Active,
    /// Withdrawn. A withdrawn token is never used again (spec A.3).
    Invalid {
        /// When it was withdrawn (Unix ms).
        at: u64,
        /// Who withdrew it.
        by: Withdrawal,
        /// The reason given, if any.
        reason: Option<String>,
    },
}

/// Who withdrew a federation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Withdrawal {
    /// The MSP sent Notify MSP Token Invalid.
    MspNotified,
    /// The CMP sent Request Invalidate MSP Token.
    CmpRequested,
    /// The hub's operator withdrew it by hand.
    Operator,
}

/// What the caller knows about a federation it confirms, learns or imports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewFederation {
    /// The token.
    pub msp_token: Uuid,
    /// Who holds it.
    pub pair: Pair,
    /// The onboarding session id, when known.
    pub sid: Option<Uuid>,
    /// `subscriptionType`, when known.
    pub subscription_type: Option<String>,
    /// When it happened (Unix ms); becomes `created_at` of a new record.
    pub at: u64,
}

/// One Request Activation Code, identified by its `activationCodeRequestID`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcRequest {
    /// The `activationCodeRequestID`.
    pub id: Uuid,
    /// The token the code was requested for.
    pub msp_token: Uuid,
    /// The MSP asked and the CMP asking.
    pub pair: Pair,
    /// When the request was opened (Unix ms).
    pub created_at: u64,
    /// Where it stands.
    pub state: AcState,
}

/// The life of an activation-code request.
///
/// `Pending` → `Closed` (sync answer, refusal, abandon) or `Pending` → `Open` (201) →
/// `Answering` ⇄ `Open` → `Closed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "is", rename_all = "snake_case")]
pub enum AcState {
    /// Forwarded to the MSP; its answer has not been relayed yet.
    Pending,
    /// The MSP answered 201: a Send Activation Code is expected before `deadline`.
    Open {
        /// Last moment (Unix ms) a Send Activation Code is accepted.
        deadline: u64,
    },
    /// A Send Activation Code for it is being forwarded to the CMP.
    Answering {
        /// When the forward was claimed (Unix ms).
        at: u64,
        /// The deadline of the `Open` state it came from, restored if the CMP does not
        /// take the answer.
        deadline: u64,
    },
    /// Done; nothing more will be accepted for it.
    Closed {
        /// When it closed (Unix ms).
        at: u64,
        /// How it ended.
        outcome: Outcome,
    },
}

impl AcState {
    /// A short lowercase name, as used in [`crate::ledger::LedgerError::WrongState`].
    pub fn name(&self) -> &'static str {
        match self {
            AcState::Pending => "pending",
            AcState::Open { .. } => "open",
            AcState::Answering { .. } => "answering",
            AcState::Closed { .. } => "closed",
        }
    }
}

/// How an activation-code request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "is", rename_all = "snake_case")]
pub enum Outcome {
    /// The MSP answered 200 with the code.
    Sync,
    /// The MSP refused or failed.
    Refused {
        /// The HTTP status relayed to the CMP.
        status: u16,
    },
    /// A Send Activation Code was delivered to the CMP.
    Answered,
    /// A Send Activation Code carrying `error` was delivered to the CMP.
    AnsweredWithError,
    /// The deadline passed without an answer.
    Expired,
    /// The upstream never answered, or the hub lost track of the request.
    Abandoned,
}

/// The MSP's answer to a Request Activation Code, for [`crate::ledger::Ledger::settle_request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Settle {
    /// 201: the code follows by Send Activation Code before `deadline` (Unix ms).
    Async {
        /// Last moment (Unix ms) a Send Activation Code is accepted.
        deadline: u64,
    },
    /// 200 with the code.
    Sync,
    /// The MSP said no or failed with `status`.
    Refused {
        /// The HTTP status relayed to the CMP.
        status: u16,
    },
    /// No answer came (time-out, connection lost).
    Abandoned,
}

/// What a forwarded Send Activation Code carried, for
/// [`crate::ledger::Ledger::finish_answer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivered {
    /// An activation code: the request closes as [`Outcome::Answered`].
    Code,
    /// An `error` instead of a code: it closes as [`Outcome::AnsweredWithError`].
    Error,
}

impl Delivered {
    /// The outcome a request closes with.
    pub fn outcome(self) -> Outcome {
        match self {
            Delivered::Code => Outcome::Answered,
            Delivered::Error => Outcome::AnsweredWithError,
        }
    }
}

/// What the caller knows when opening a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAcRequest {
    /// The `activationCodeRequestID`.
    pub id: Uuid,
    /// The token in the path.
    pub msp_token: Uuid,
    /// The MSP asked and the CMP asking.
    pub pair: Pair,
    /// Now (Unix ms).
    pub at: u64,
}

/// The last known status of one profile (ICCID) of a federation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The federation's token.
    pub msp_token: Uuid,
    /// The profile's ICCID.
    pub iccid: String,
    /// The status as the message said it (`valid`, `enabled`, `deleted`, `dead`, ...).
    pub status: String,
    /// Which message said it.
    pub source: ProfileSource,
    /// When it was recorded (Unix ms).
    pub at: u64,
}

/// The message a profile status came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileSource {
    /// A 200 answer to Request Activation Code.
    SyncAnswer,
    /// A Send Activation Code.
    AsyncAnswer,
    /// `swappedIccid` of an answer: the profile is dead.
    Swapped,
    /// Send CSIM Status.
    CsimStatus,
    /// Send Profile Information.
    ProfileInformation,
    /// The answer to Request Profile Status.
    ProfileStatusAnswer,
}

/// One profile status seen in a message, for [`crate::ledger::Ledger::record_profiles`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileEvent {
    /// The ICCID.
    pub iccid: String,
    /// The status.
    pub status: String,
    /// Which message said it.
    pub source: ProfileSource,
}

/// Which requests [`crate::ledger::Ledger::list_requests`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestFilter {
    /// Only requests not yet closed (pending, open or answering).
    pub open_only: bool,
    /// Only requests where this partner id is the MSP or the CMP.
    pub partner: Option<String>,
    /// Only requests whose age at `now` is strictly greater than this many ms.
    pub older_than_ms: Option<u64>,
    /// The time ages are measured at (Unix ms).
    pub now: u64,
    /// At most this many, oldest first.
    pub limit: Option<usize>,
}

/// One line of an export: a record of any kind, tagged with `"kind"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExportRecord {
    /// A federation.
    Federation(Federation),
    /// An activation-code request.
    Request(AcRequest),
    /// A profile.
    Profile(Profile),
}

/// What [`crate::ledger::Ledger::import_federations`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Newly added (Active, learned).
    pub added: u64,
    /// Already known for the same pair (left as they were).
    pub already_present: u64,
    /// Held by another pair: not imported.
    pub conflicting: Vec<Uuid>,
}

/// Record counts by state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerStats {
    /// Federations being sent.
    pub federations_reserved: u64,
    /// Federations in use.
    pub federations_active: u64,
    /// Withdrawn federations not yet purged.
    pub federations_invalid: u64,
    /// Requests waiting for the MSP's answer.
    pub requests_pending: u64,
    /// Requests waiting for a Send Activation Code.
    pub requests_open: u64,
    /// Requests whose answer is being forwarded.
    pub requests_answering: u64,
    /// Closed requests not yet purged.
    pub requests_closed: u64,
    /// Profiles.
    pub profiles: u64,
}

/// What [`crate::ledger::Ledger::sweep`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepReport {
    /// Open requests past their deadline, closed as [`Outcome::Expired`].
    pub expired: u64,
    /// Pending or answering requests idle for longer than the retention, closed as
    /// [`Outcome::Abandoned`] (left over by a crash of the hub).
    pub abandoned: u64,
    /// Closed requests removed.
    pub requests_purged: u64,
    /// Invalid federations removed.
    pub federations_purged: u64,
    /// Reservations older than the retention removed (their forward never finished).
    pub reservations_dropped: u64,
    /// Profiles removed with their federation.
    pub profiles_purged: u64,
}

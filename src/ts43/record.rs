//! What each answer settles: the transfer's steps in the ledger, the temporary token's
//! record, the kept source session, and the carrier's scores. Runs after the answer was
//! checked and normalised, before it is released to the device.

use super::answer::{expiry_ms, Outcome};
use super::document::Document;
use super::operations::{Operation, TRANSFER, UPDATE};
use super::scoring::{self, SWAP_TARGET};
use super::vault::SourceSession;
use super::{token_hash, Ts43State};
use crate::error::HubError;
use crate::ledger::transfers::{Stage, Step, TemporaryToken, Transfer};
use crate::metrics::{Label, Metrics};
use std::time::Duration;

/// What the request established that the answer's bookkeeping needs.
pub struct Context<'a> {
    /// The carrier.
    pub carrier: &'a Label,
    /// The operation and its type.
    pub operation: Option<Operation>,
    /// `operation_type`.
    pub operation_type: Option<u8>,
    /// The temporary token the request was made on (its record).
    pub token: Option<&'a TemporaryToken>,
    /// The source's IMSI on fast re-authentication or EAP.
    pub imsi: Option<&'a str>,
    /// The source session of an AcquireTemporaryToken on fast re-authentication.
    pub source: Option<&'a SourceSession>,
    /// How long the ECS took.
    pub upstream: Option<Duration>,
    /// Now (Unix ms).
    pub now: u64,
}

fn step(at: u64, stage: Stage, note: Option<String>) -> Step {
    Step { at, stage, note }
}

/// Records the answer `doc` (outcome `out`) to the request `cx`.
pub async fn settle(
    state: &Ts43State,
    metrics: &Metrics,
    cx: &Context<'_>,
    doc: &Document,
    out: &Outcome,
) -> Result<(), HubError> {
    let carrier = cx.carrier;
    let count = |what| scoring::record(metrics, carrier, what);
    let success = out.operation_result == Some(1);
    let failed = out.operation_result.is_some() && !success;
    let ledger_down = |e: crate::ledger::LedgerError| {
        tracing::error!(cause = %e, "transfer ledger write failed");
        HubError::LedgerUnavailable
    };
    let transfer = cx.token.map(|t| t.transfer);
    let note = |name: &str, v: Option<u16>| v.map(|v| format!("{name}={v}"));
    match cx.operation {
        Some(Operation::CheckEligibility) => {
            if failed {
                count("failure");
                if out.error_text {
                    count("failure_with_text");
                }
            }
            match out.eligibility {
                Some(1) => count("eligibility_enabled"),
                Some(0) => count("eligibility_disabled"),
                Some(2) => count("eligibility_incompatible"),
                _ => {}
            }
            if let Some(imsi) = cx.imsi {
                state.remember_eligibility(carrier, imsi, cx.now, out.eligibility);
            }
        }
        Some(Operation::AcquireTemporaryToken) if success => {
            let app = doc.application();
            let (Some(token), Some(expires_at)) = (
                app.and_then(|a| a.parm("TemporaryToken")),
                app.and_then(|a| a.parm("TemporaryTokenExpiry"))
                    .and_then(|e| expiry_ms(e).ok()),
            ) else {
                return Ok(());
            };
            count("token_issued");
            if out.msisdn {
                count("token_with_msisdn");
            }
            let hash = token_hash(token);
            let mut steps = Vec::new();
            if let Some((at, eligibility)) = cx
                .imsi
                .and_then(|imsi| state.recall_eligibility(carrier, imsi, cx.now))
            {
                steps.push(step(
                    at,
                    Stage::Eligibility,
                    note("eligibility", eligibility),
                ));
            }
            steps.push(step(cx.now, Stage::TokenIssued, None));
            let id = uuid::Uuid::new_v4();
            let targets = app
                .and_then(|a| a.parm("OperationTargets"))
                .unwrap_or_default()
                .split(',')
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect();
            let record = TemporaryToken {
                hash: hash.clone(),
                carrier: carrier.to_string(),
                transfer: id,
                issued_at: cx.now,
                expires_at,
                targets,
                spent_upstream: false,
                transfer_requested: false,
                bridge_hash: None,
            };
            state
                .transfers
                .open_transfer(Transfer::new(id, carrier, steps), record)
                .await
                .map_err(ledger_down)?;
            if let Some(source) = cx.source {
                let mut session = source.clone();
                if let Some(rotated) = doc.token() {
                    session.token = rotated.to_owned();
                }
                state.vault.keep(&hash, &session, expires_at, cx.now);
            }
            tracing::info!(carrier = %carrier, transfer = %id, token = %&hash[..12], "temporary token issued");
        }
        Some(Operation::ManageSubscription) => {
            if failed {
                count("failure");
                if out.error_text {
                    count("failure_with_text");
                }
            }
            let stage = match (cx.operation_type, out.subscription_result) {
                _ if failed => Some(Stage::Failed),
                (Some(TRANSFER), Some(2)) if out.download_info => Some(Stage::DownloadInfo),
                (Some(TRANSFER), Some(4)) => Some(Stage::DelayedDownload),
                (Some(TRANSFER), Some(5)) => Some(Stage::Failed),
                (Some(UPDATE), _) if success => Some(Stage::Updated),
                _ => None,
            };
            if cx.operation_type == Some(TRANSFER) && success {
                count("transfer");
                if cx.upstream.is_some_and(|d| d < SWAP_TARGET) {
                    count("transfer_under_5s");
                }
                if out.subscription_result == Some(4) {
                    count("delayed_download");
                }
                if out.service_status == Some(1) {
                    count("combined_steps");
                }
            }
            if cx.operation_type == Some(UPDATE) && success {
                count("update_subscription");
                count("separate_steps");
            }
            if let (Some(id), Some(stage)) = (transfer, stage) {
                let note = note("operation_result", out.operation_result)
                    .filter(|_| failed)
                    .or_else(|| note("service_status", out.service_status));
                state
                    .transfers
                    .step(id, step(cx.now, stage, note))
                    .await
                    .map_err(ledger_down)?;
            }
        }
        Some(Operation::AcquireConfiguration) => {
            if let Some(id) = transfer {
                count("poll");
                let stage = if out.download_info {
                    count("poll_download_info");
                    Stage::DownloadInfo
                } else if failed {
                    Stage::Failed
                } else {
                    Stage::Poll
                };
                state
                    .transfers
                    .step(
                        id,
                        step(cx.now, stage, note("service_status", out.service_status)),
                    )
                    .await
                    .map_err(ledger_down)?;
            }
        }
        _ => {}
    }
    Ok(())
}

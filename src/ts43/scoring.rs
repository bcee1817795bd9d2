//! Each carrier measured against the Android eSIM-transfer page's requirements, from what
//! crosses the hub: counted in `aidhub_ts43_requirements_total{carrier,what}` and
//! summarised per carrier by [`report`] (admin `/ts43/carriers`).
//!
//! | requirement (the page) | measured as |
//! |---|---|
//! | SIM swap in under 5 s for most transfers | `transfer` / `transfer_under_5s`: ManageSubscription(3) answers and how many came in < 5 s |
//! | delayed download by polling | `delayed_download`, `poll`, `poll_download_info` |
//! | `GeneralErrorText` on failures | `failure` / `failure_with_text` (CheckEligibility, ManageSubscription) |
//! | MSISDN in AcquireTemporaryToken | `token_issued` / `token_with_msisdn` |
//! | eligibility outcomes | `eligibility_enabled` / `_disabled` / `_incompatible` |
//! | transfer and activation as separate steps | `separate_steps` (ManageSubscription(3) left the line activating, 4 followed) / `combined_steps` (3 answered ServiceStatus 1) |
//! | which normalisations were needed | `aidhub_ts43_normalisations_total` |
//!
//! The hub sees the target's answers only; whether the source line was already
//! deactivated at step 3 is visible only when the carrier says so (ServiceStatus 1 at
//! step 3), which is what `combined_steps` counts.

use crate::metrics::{Label, Metrics};
use serde_json::{json, Value};
use std::time::Duration;

/// The swap-time target of the page.
pub const SWAP_TARGET: Duration = Duration::from_secs(5);

/// Counts one requirement event for `carrier`.
pub fn record(metrics: &Metrics, carrier: &Label, what: &'static str) {
    metrics.ts43_requirements.inc((carrier.clone(), what));
}

fn share(part: u64, whole: u64) -> Value {
    if whole == 0 {
        Value::Null
    } else {
        json!((part as f64 / whole as f64 * 1000.0).round() / 1000.0)
    }
}

/// The per-carrier report.
pub fn report(metrics: &Metrics, carriers: &[Label]) -> Value {
    let list: Vec<Value> = carriers
        .iter()
        .map(|carrier| {
            let n = |what: &'static str| metrics.ts43_requirements.get(&(carrier.clone(), what));
            let normalisations: serde_json::Map<String, Value> = [
                super::normalise::XML_FOR_ODSA,
                super::normalise::BASE64_ACTIVATION_CODE,
                super::normalise::POLLING_INTERVAL,
                super::normalise::TEMPORARY_TOKEN_BRIDGED,
                super::normalise::TOKEN_FOR_OLDER_CLIENTS,
                super::normalise::BUSINESS_OUTCOME_200,
            ]
            .into_iter()
            .filter_map(|w| {
                let count = metrics.ts43_normalisations.get(&(carrier.clone(), w));
                (count > 0).then(|| (w.to_owned(), json!(count)))
            })
            .collect();
            let violations: serde_json::Map<String, Value> = metrics
                .ts43_violations
                .entries()
                .into_iter()
                .filter(|((c, _), _)| c == carrier)
                .map(|((_, w), count)| (w.to_owned(), json!(count)))
                .collect();
            json!({
                "carrier": &**carrier,
                "swap_under_5s": {
                    "transfers": n("transfer"),
                    "under_5s": n("transfer_under_5s"),
                    "share": share(n("transfer_under_5s"), n("transfer")),
                },
                "delayed_download": {
                    "delayed": n("delayed_download"),
                    "polls": n("poll"),
                    "completed_by_polling": n("poll_download_info"),
                },
                "general_error_text_on_failures": {
                    "failures": n("failure"),
                    "with_text": n("failure_with_text"),
                    "share": share(n("failure_with_text"), n("failure")),
                },
                "msisdn_in_acquire_temporary_token": {
                    "tokens": n("token_issued"),
                    "with_msisdn": n("token_with_msisdn"),
                    "share": share(n("token_with_msisdn"), n("token_issued")),
                },
                "eligibility": {
                    "enabled": n("eligibility_enabled"),
                    "disabled": n("eligibility_disabled"),
                    "incompatible": n("eligibility_incompatible"),
                },
                "activation_steps": {
                    "separate": n("separate_steps"),
                    "combined": n("combined_steps"),
                    "updates": n("update_subscription"),
                },
                "normalisations_needed": normalisations,
                "violations": violations,
            })
        })
        .collect();
    json!(list)
}

//! The carrier side of the contract: what an ECS answer must hold for each operation so
//! that an Android phone can act on it (notes §1.7), checked after normalisation.
//!
//! Every finding is a [`Finding`] counted per carrier
//! (`aidhub_ts43_carrier_violations_total{carrier,what}`) and logged without values. A
//! *fatal* one would make the phone fail in a worse way than an error would (no
//! `TemporaryToken`, an expiry it cannot parse, a `DownloadInfo` it cannot download):
//! the hub then answers 502 instead of relaying the document.

use super::document::{Characteristic, Document};
use super::operations::{Operation, TRANSFER};
use crate::aid1::{ActivationCode, Iccid};
use base64::Engine as _;

/// One way an answer breaks the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Metric label.
    pub what: &'static str,
    /// Plain words, no values.
    pub detail: String,
    /// Whether the document cannot be relayed.
    pub fatal: bool,
}

fn finding(what: &'static str, detail: impl Into<String>, fatal: bool) -> Finding {
    Finding {
        what,
        detail: detail.into(),
        fatal,
    }
}

/// What a successful answer told the hub (for the ledger and the scores).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// `OperationResult`.
    pub operation_result: Option<u16>,
    /// `SubscriptionResult`.
    pub subscription_result: Option<u16>,
    /// `ServiceStatus` (application level or primary configuration).
    pub service_status: Option<u16>,
    /// `PrimaryAppEligibility` / `CompanionAppEligibility`.
    pub eligibility: Option<u16>,
    /// Whether a usable `DownloadInfo` is present.
    pub download_info: bool,
    /// Whether `GeneralErrorText` is present.
    pub error_text: bool,
    /// Whether an MSISDN came with AcquireTemporaryToken.
    pub msisdn: bool,
}

fn number(c: &Characteristic, name: &str) -> Option<Result<u16, ()>> {
    c.parm(name)
        .map(|v| v.trim().parse::<u16>().map_err(|_| ()))
}

/// Checks `doc`, the answer to `operation`, and reads its outcome.
pub fn check(
    operation: Option<Operation>,
    operation_type: Option<u8>,
    doc: &Document,
) -> (Outcome, Vec<Finding>) {
    let mut out = Outcome::default();
    let mut found = Vec::new();
    let Some(op) = operation else {
        return (out, found);
    };
    let Some(app) = doc.application() else {
        found.push(finding(
            "no_application",
            "no APPLICATION characteristic",
            true,
        ));
        return (out, found);
    };
    match number(app, "OperationResult") {
        Some(Ok(r)) if r == 1 || (100..=104).contains(&r) => out.operation_result = Some(r),
        Some(_) => found.push(finding(
            "operation_result",
            "OperationResult out of range",
            false,
        )),
        None => found.push(finding("operation_result", "no OperationResult", false)),
    }
    out.error_text = app
        .parm("GeneralErrorText")
        .is_some_and(|t| !t.trim().is_empty());
    let success = out.operation_result == Some(1);
    if !success && !out.error_text && out.operation_result.is_some() {
        found.push(finding(
            "no_general_error_text",
            "a failure without GeneralErrorText",
            false,
        ));
    }
    let status_at = |c: &Characteristic, out: &mut Outcome, found: &mut Vec<Finding>| match number(
        c,
        "ServiceStatus",
    ) {
        Some(Ok(s)) if (1..=4).contains(&s) => out.service_status = Some(s),
        Some(_) => found.push(finding(
            "service_status",
            "ServiceStatus out of range",
            false,
        )),
        None => {}
    };
    status_at(app, &mut out, &mut found);
    match op {
        Operation::CheckEligibility if success => {
            let value = number(app, "PrimaryAppEligibility")
                .or_else(|| number(app, "CompanionAppEligibility"));
            match value {
                Some(Ok(e)) if e <= 2 => out.eligibility = Some(e),
                _ => found.push(finding(
                    "eligibility",
                    "no PrimaryAppEligibility of 0, 1 or 2",
                    false,
                )),
            }
        }
        Operation::AcquireTemporaryToken if success => {
            if app.parm("TemporaryToken").is_none_or(str::is_empty) {
                found.push(finding("no_temporary_token", "no TemporaryToken", true));
            }
            match app.parm("TemporaryTokenExpiry").map(expiry_ms) {
                Some(Ok(_)) => {}
                Some(Err(_)) => found.push(finding(
                    "temporary_token_expiry",
                    "TemporaryTokenExpiry is not ISO-8601 with an offset",
                    true,
                )),
                None => found.push(finding(
                    "temporary_token_expiry",
                    "no TemporaryTokenExpiry",
                    true,
                )),
            }
            let targets_ok = app
                .parm("OperationTargets")
                .is_some_and(|t| t.split(',').all(|o| Operation::parse(o.trim()).is_some()));
            if !targets_ok {
                found.push(finding(
                    "operation_targets",
                    "OperationTargets missing or unknown",
                    false,
                ));
            }
            out.msisdn = app.parm("MSISDN").is_some_and(|m| !m.is_empty());
        }
        Operation::ManageSubscription if success => {
            match number(app, "SubscriptionResult") {
                Some(Ok(s)) if (1..=8).contains(&s) => out.subscription_result = Some(s),
                _ => found.push(finding(
                    "subscription_result",
                    "no SubscriptionResult of 1 to 8",
                    operation_type == Some(TRANSFER),
                )),
            }
            if out.subscription_result == Some(2) {
                match app.child("DownloadInfo") {
                    Some(info) => download_info(info, &mut out, &mut found),
                    None => found.push(finding(
                        "download_info",
                        "SubscriptionResult 2 without DownloadInfo",
                        true,
                    )),
                }
            }
        }
        Operation::AcquireConfiguration if success => {
            if let Some(config) = app.child("PrimaryConfiguration") {
                status_at(config, &mut out, &mut found);
                if let Some(info) = config.child("DownloadInfo") {
                    download_info(info, &mut out, &mut found);
                }
                let polling = number(config, "PollingInterval").and_then(Result::ok);
                if out.service_status == Some(2) && polling.is_none_or(|p| p == 0) {
                    found.push(finding(
                        "no_polling_interval",
                        "ServiceStatus 2 without PollingInterval",
                        false,
                    ));
                }
            }
        }
        _ => {}
    }
    (out, found)
}

/// `DownloadInfo`: `ProfileIccid` (≤ 20 digits) and a Base64 activation code that is
/// valid, or an SM-DP+ address.
fn download_info(info: &Characteristic, out: &mut Outcome, found: &mut Vec<Finding>) {
    let iccid_ok = info
        .parm("ProfileIccid")
        .and_then(|i| Iccid::parse(i, false).ok())
        .is_some_and(|i| i.as_str().len() <= 20);
    if !iccid_ok {
        found.push(finding(
            "download_info",
            "DownloadInfo without a valid ProfileIccid",
            true,
        ));
        return;
    }
    let usable = match info.parm("ProfileActivationCode") {
        Some(code) => decoded_activation_code(code).is_some(),
        None => info
            .parm("ProfileSmdpAddress")
            .is_some_and(|a| !a.trim().is_empty()),
    };
    if usable {
        out.download_info = true;
    } else {
        found.push(finding(
            "download_info",
            "DownloadInfo without a valid Base64 activation code or SM-DP+ address",
            true,
        ));
    }
}

/// The activation code inside a Base64 `ProfileActivationCode`, if it is one.
pub fn decoded_activation_code(value: &str) -> Option<ActivationCode> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    ActivationCode::parse(std::str::from_utf8(&bytes).ok()?).ok()
}

/// `TemporaryTokenExpiry` as Unix milliseconds (ISO-8601 with an offset, as AOSP's
/// `OffsetDateTime.parse` needs).
pub fn expiry_ms(text: &str) -> Result<u64, String> {
    let at =
        time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
            .map_err(|_| "not ISO-8601 with an offset".to_owned())?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).map_err(|_| "before 1970".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts43::Format;

    fn doc(xml: &str) -> Document {
        Document::parse(format!("<r>{xml}</r>").as_bytes(), Format::Xml).unwrap()
    }

    fn whats(f: &[Finding]) -> Vec<&'static str> {
        f.iter().map(|f| f.what).collect()
    }

    #[test]
    fn a_good_token_answer_passes() {
        let d = doc(
            r#"<characteristic type="APPLICATION"><parm name="AppID" value="ap2009"/><parm name="OperationResult" value="1"/>
            <parm name="TemporaryToken" value="tt"/><parm name="TemporaryTokenExpiry" value="2026-11-22T12:00:00Z"/>
            <parm name="OperationTargets" value="ManageSubscription,AcquireConfiguration"/><parm name="MSISDN" value="+15551234"/></characteristic>"#,
        );
        let (out, found) = check(Some(Operation::AcquireTemporaryToken), None, &d);
        assert!(found.is_empty(), "{found:?}");
        assert!(out.msisdn);
        assert_eq!(expiry_ms("2019-01-29T13:15:31Z"), Ok(1_548_767_731_000));
    }

    #[test]
    fn contract_breaches_are_named() {
        let d = doc(
            r#"<characteristic type="APPLICATION"><parm name="OperationResult" value="1"/>
            <parm name="TemporaryToken" value="tt"/><parm name="TemporaryTokenExpiry" value="tomorrow"/></characteristic>"#,
        );
        let (_, found) = check(Some(Operation::AcquireTemporaryToken), None, &d);
        assert_eq!(
            whats(&found),
            ["temporary_token_expiry", "operation_targets"]
        );
        assert!(found[0].fatal);
        let d = doc(
            r#"<characteristic type="APPLICATION"><parm name="OperationResult" value="1"/><parm name="SubscriptionResult" value="2"/>
            <characteristic type="DownloadInfo"><parm name="ProfileActivationCode" value="MSRTTURQLkVYQU1QTEUuQ09NJEFCQy0xMjM="/></characteristic></characteristic>"#,
        );
        let (_, found) = check(Some(Operation::ManageSubscription), Some(3), &d);
        assert_eq!(whats(&found), ["download_info"]);
        let d = doc(
            r#"<characteristic type="APPLICATION"><parm name="OperationResult" value="100"/></characteristic>"#,
        );
        let (_, found) = check(Some(Operation::ManageSubscription), Some(3), &d);
        assert_eq!(whats(&found), ["no_general_error_text"]);
        assert!(!found[0].fatal);
    }

    #[test]
    fn download_info_needs_a_base64_valid_code() {
        let ok = "MSRTTURQLkVYQU1QTEUuQ09NJEFCQy0xMjM=";
        assert!(decoded_activation_code(ok).is_some());
        assert!(decoded_activation_code("1$SMDP.EXAMPLE.COM$ABC-123").is_none());
    }
}

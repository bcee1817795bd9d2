//! The per-carrier fixes that let an Android phone (either generation of the AOSP client)
//! complete a transfer through the hub when the carrier's ECS behaves like the
//! open-source one (notes §4). Each fix acts only when the answer needs it, is switched in
//! `routes.toml` (`[carrier.normalise]`), and is counted when it acts
//! (`aidhub_ts43_normalisations_total{carrier,what}`).
//!
//! The document fixes live here; the token fixes (keeping a spent temporary token usable,
//! giving older clients a `TOKEN`) need the ledger and the vault and live in the exchange.

use super::answer::decoded_activation_code;
use super::document::{Characteristic, Document};
use crate::aid1::ActivationCode;
use crate::config::Normalise;
use base64::Engine as _;

/// Base64-encodes a `ProfileActivationCode` sent as the raw SGP.22 text (without `LPA:`,
/// as AOSP's own example has it).
pub const BASE64_ACTIVATION_CODE: &str = "base64_activation_code";
/// Adds a `PollingInterval` to a configuration in ServiceStatus 2 without one.
pub const POLLING_INTERVAL: &str = "polling_interval";
/// Asked the ECS for XML on an ODSA operation.
pub const XML_FOR_ODSA: &str = "xml_for_odsa";
/// Bridged a temporary token the ECS had spent.
pub const TEMPORARY_TOKEN_BRIDGED: &str = "temporary_token_bridged";
/// Added a `TOKEN` for the older client's polls.
pub const TOKEN_FOR_OLDER_CLIENTS: &str = "token_for_older_clients";
/// Turned a business outcome sent with a non-200 status into HTTP 200.
pub const BUSINESS_OUTCOME_200: &str = "business_outcome_200";

/// Applies the document fixes `switches` allow; returns what acted.
pub fn document(doc: &mut Document, switches: &Normalise) -> Vec<&'static str> {
    let mut acted = Vec::new();
    for root in &mut doc.roots {
        if root.kind == "APPLICATION" {
            fix(root, switches, &mut acted, 0);
        }
    }
    acted
}

fn fix(c: &mut Characteristic, switches: &Normalise, acted: &mut Vec<&'static str>, depth: usize) {
    if depth > 4 {
        return;
    }
    if c.kind == "DownloadInfo" && switches.base64_activation_code {
        if let Some(code) = c.parm("ProfileActivationCode") {
            if decoded_activation_code(code).is_none() {
                let raw = code.trim();
                if let Ok(parsed) = ActivationCode::parse(raw) {
                    let text = parsed.expose();
                    let text = text.strip_prefix("LPA:").unwrap_or(text);
                    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
                    c.set_parm("ProfileActivationCode", &encoded);
                    acted.push(BASE64_ACTIVATION_CODE);
                }
            }
        }
    }
    if c.kind == "PrimaryConfiguration" && switches.polling_interval_minutes > 0 {
        let activating = c.parm("ServiceStatus").map(str::trim) == Some("2");
        let missing = c
            .parm("PollingInterval")
            .is_none_or(|p| p.trim().parse::<u32>().map_or(true, |p| p == 0));
        if activating && missing {
            c.set_parm(
                "PollingInterval",
                &switches.polling_interval_minutes.to_string(),
            );
            acted.push(POLLING_INTERVAL);
        }
    }
    for child in &mut c.children {
        fix(child, switches, acted, depth + 1);
    }
}

/// Puts `token` in the document's `TOKEN` characteristic (after `VERS`), unless it has one.
pub fn add_token(doc: &mut Document, token: &str, validity_secs: u64) -> bool {
    if doc.token().is_some() {
        return false;
    }
    let validity = validity_secs.to_string();
    let at = doc
        .roots
        .iter()
        .position(|c| c.kind == "VERS")
        .map_or(0, |i| i + 1);
    doc.roots.insert(
        at,
        Characteristic::new("TOKEN", &[("token", token), ("validity", &validity)]),
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts43::Format;

    #[test]
    fn raw_codes_become_base64_and_polling_intervals_appear() {
        let xml = r#"<r><characteristic type="APPLICATION"><parm name="OperationResult" value="1"/>
          <characteristic type="PrimaryConfiguration"><parm name="ServiceStatus" value="2"/>
          <characteristic type="DownloadInfo"><parm name="ProfileIccid" value="8988211000000530082"/>
          <parm name="ProfileActivationCode" value="LPA:1$SMDP.EXAMPLE.COM$04386-AGYFT-A74Y8-3F815"/></characteristic>
          </characteristic></characteristic></r>"#;
        let mut doc = Document::parse(xml.as_bytes(), Format::Xml).unwrap();
        let acted = document(&mut doc, &Normalise::default());
        assert_eq!(acted, [POLLING_INTERVAL, BASE64_ACTIVATION_CODE]);
        let config = doc
            .application()
            .unwrap()
            .child("PrimaryConfiguration")
            .unwrap();
        assert_eq!(config.parm("PollingInterval"), Some("1"));
        let code = config
            .child("DownloadInfo")
            .unwrap()
            .parm("ProfileActivationCode")
            .unwrap();
        let decoded = decoded_activation_code(code).unwrap();
        assert_eq!(
            decoded.expose(),
            "1$SMDP.EXAMPLE.COM$04386-AGYFT-A74Y8-3F815"
        );
        assert!(
            document(&mut doc, &Normalise::default()).is_empty(),
            "idempotent"
        );
    }

    #[test]
    fn switched_off_fixes_do_not_act() {
        let xml = r#"<r><characteristic type="APPLICATION"><characteristic type="PrimaryConfiguration"><parm name="ServiceStatus" value="2"/></characteristic></characteristic></r>"#;
        let mut doc = Document::parse(xml.as_bytes(), Format::Xml).unwrap();
        let off = Normalise {
            polling_interval_minutes: 0,
            ..Normalise::default()
        };
        assert!(document(&mut doc, &off).is_empty());
        assert!(add_token(&mut doc, "hub-token", 300));
        assert!(!add_token(&mut doc, "other", 300));
        assert_eq!(doc.token(), Some("hub-token"));
    }
}

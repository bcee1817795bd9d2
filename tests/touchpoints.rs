//! The touchpoint directory (AID.02 4.1, 4.2, 7.1, 7.2) over the hub's real browser-facing
//! TLS listener, against the stage (`aidhub::stage::TestHub`) and its `[partner.touchpoint]`
//! tables: mspalpha "Alpha Mobile" (`*.msp.example`, with a pre-production page), mspbeta
//! "Beta Telecom" (`beta-msp.example`), cmpone "One Motors" (`*.cmp.example`), cmptwo "Two
//! Cars" (exact hosts; an agreement with mspalpha only).
//!
//! Modules: `common` (a browser-like client that does not follow redirects, refusal-page
//! checks), `endpoints` (the three redirects as the spec writes them, counted), `refusals`
//! (agreed domains, account ids, parameters, partners and agreements), `browser` (a real
//! headless Chromium through the hub and back; skipped when Chromium is not installed).

#[path = "support/mod.rs"]
mod support;

#[path = "touchpoints/browser.rs"]
mod browser;
#[path = "touchpoints/common.rs"]
mod common;
#[path = "touchpoints/endpoints.rs"]
mod endpoints;
#[path = "touchpoints/refusals.rs"]
mod refusals;

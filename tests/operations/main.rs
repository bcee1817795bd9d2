//! Running the hub as a hosted broker (issue 4): live reloads (admin call, file change) under
//! load, refused reloads, per-partner rate limits and the upstream in-flight cap, the admin
//! API and its metrics checked against the traffic sent, and a graceful SIGTERM of the real
//! binary while partners keep calling.
//!
//! Modules: `common` (the admin client, routes.toml edits, a partner added to the PKI),
//! `load` (load generators), `reload` (reloads under load, on file change, refused),
//! `anchors` (trust anchors and the server certificate reloaded), `limits` (429 and 503),
//! `observe` (metrics, health, the admin views and its token), `shutdown` (SIGTERM during
//! load, real binary).

#[path = "../support/mod.rs"]
mod support;

mod anchors;
mod common;
mod limits;
mod load;
mod observe;
mod reload;
mod shutdown;

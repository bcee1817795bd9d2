//! aidhub: an aggregation hub for GSMA AID.02 ("Automotive Identity").
//!
//! Mobile operators (MSPs) and car makers (CMPs) each connect to the hub once, with mutual
//! TLS, and the hub carries every AID1 call to the partner named by its `target-id` —
//! validated against the spec on the way in and on the way back, and checked against a
//! durable ledger of federations and activation-code requests.
//!
//! # How a request flows
//!
//! ```text
//! server  accept ─► TLS handshake (client cert verified, identity resolved, or refused)
//! proxy   head ─► body ─► call ─► forward ─► answer ─► respond ─► access log
//!           │               │                   │
//! aid1      identify,       validate body,      validate answer,
//!           authenticate,   account id,         ledger record
//!           route           ledger check
//! ```
//!
//! Browsers take another, short road on their own listener (server TLS only):
//! `server` accept ─► [`touchpoints`] route ─► query ─► partners and agreement ─►
//! `redirect_uri` in the agreed domains ─► account id ─► `302` or a refusal page.
//!
//! # Modules
//!
//! * [`config`] — `config/hub.toml` and `routes.toml`, parsed then validated; secrets.
//! * [`snapshot`] — one immutable, validated configuration (routes, TLS, upstream pools),
//!   swapped whole by [`hub::Hub::reload`].
//! * [`identity`] — client certificate → partner (`cn:`, `dns:`, `uri:`, `sha256:`).
//! * [`tls`] — rustls server and client configurations, CRLs.
//! * [`server`] — listeners, handshakes, HTTP/1.1 and h2 (by ALPN), graceful drain.
//! * [`workers`] — the serving threads: one single-threaded runtime each, a connection and
//!   everything it causes staying on the thread it was given.
//! * [`proxy`] — the protocol-agnostic walk and the [`proxy::Protocol`] trait.
//! * [`aid1`] — the AID1 protocol: functions, validation, the hub's exchange and lifecycle.
//! * [`ts43`] — the TS.43 (ODSA) protocol on the device-facing listener: eSIM transfer
//!   through the hub, with EAP-AKA relayed, temporary tokens and transfers in the ledger,
//!   per-carrier normalisation for Android phones, and carrier scoring.
//! * [`account_id`] — HS256 account ids (AID.02 5.2).
//! * [`ledger`] — federations, activation-code requests, profiles; sled (embedded: records
//!   in memory, written behind by one thread, durable writes through a journal) and
//!   PostgreSQL (shared by replicas) backends, one conformance suite.
//! * [`upstream`] — per partner, HTTP/1.1 over mutual TLS on the request's own task, idle
//!   connections kept per serving thread, a few opening at once; fault classification.
//! * [`error`] — [`error::HubError`] and its one mapping to status + spec error body.
//! * [`access`] — the access log line; [`metrics`] — Prometheus counters and histograms.
//! * [`limits`] — per-partner rate limits (local, or in Redis for all replicas) and upstream
//!   in-flight caps.
//! * [`admin`] — the admin listener; [`watch`] — reload on file change.
//! * [`touchpoints`] — the browser-facing redirect directory of AID.02 7.1/7.2 (agreed
//!   domains, refusal pages); beside the AID1 walk, not part of it.
//! * [`run`] — starting and stopping a whole hub; [`cli`] — the command line; [`signals`] — the
//!   signals the long-running commands answer (stop, and reload for `serve`).
//! * [`bench`](mod@bench) — the load generator and the side-by-side measurement against a direct call
//!   and nginx (`aidhub bench`).
//! * [`pki`] — the development PKI; [`sim`] — simulated partners; [`client`] — a partner's
//!   client; [`demo`] — the walk-through; [`stage`] — a hub (or a cluster of replicas) in
//!   front of simulated partners, for the demo and the tests.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod account_id;
pub mod admin;
pub mod aid1;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod error;
pub mod hub;
pub mod identity;
pub mod ledger;
pub mod limits;
pub mod metrics;
pub mod pki;
pub mod proxy;
pub mod run;
pub mod server;
pub mod signals;
pub mod sim;
pub mod snapshot;
pub mod stage;
pub mod tls;
pub mod touchpoints;
pub mod ts43;
pub mod upstream;
pub mod watch;
pub mod workers;

/// Maps looked up on every request with keys from the configuration (partner ids, function
/// names, certificate identities): a seeded fast hasher instead of SipHash.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The concurrent maps of the same kind: metric series by label, rate-limit buckets.
pub type FastDashMap<K, V> = dashmap::DashMap<K, V, foldhash::fast::RandomState>;

//! The hub's routing, over real mutual TLS against the stage (`aidhub::stage::TestHub`): the
//! nine AID1 functions end to end over HTTP/1.1 and h2, every refusal the hub makes before
//! a partner is reached, upstream faults turned into prompt spec-format errors, and the
//! retry rule (a request is replayed only when it never reached the partner).
//!
//! Modules: `common` (helpers), `functions` (the nine functions end to end), `certificates`
//! (handshake refusals and CRLs), `refusals` (identity, credential, routing and role
//! refusals), `validation` (request validation classes and account ids), `upstream`
//! (partner faults and the retry rule), `idle` (client connections closed when idle).

#[path = "../support/mod.rs"]
mod support;

mod certificates;
mod common;
mod functions;
mod idle;
mod refusals;
mod upstream;
mod validation;

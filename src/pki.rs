//! The development PKI behind `aidhub certs`: one CA, the hub's server and client
//! certificates, and a client and a server certificate per partner, all ECDSA P-256 made
//! with rcgen, plus CRLs and one-off certificates for tests.
//!
//! [`ensure()`] only ever adds: files already on disk are kept, an existing CA is re-loaded
//! and signs whatever is missing, so adding a partner later adds just its two certificates.
//! The path functions ([`ca_cert`], [`hub_server`], [`partner_client`], ...) are the one
//! place that says where each file lives, so config examples, tests and the CLI agree.
//!
//! Layout of `dir`:
//!
//! ```text
//! ca.pem  ca.key                      the CA (CN "aidhub development CA")
//! hub-server.pem  hub-server.key      CN "aidhub", SANs = hub hosts, serverAuth
//! hub-client.pem  hub-client.key      CN "aidhub", DNS hub.aidhub.test, clientAuth
//! partners/<id>-client.pem  .key      CN <id>, DNS <id>.partners.aidhub.test,
//!                                     URI urn:aidhub:partner:<id>, clientAuth
//! partners/<id>-server.pem  .key      CN "<id> upstream", SANs = partner hosts, serverAuth
//! ```
//!
//! Keys are PKCS#8 PEM written with mode 0600 on unix, certificates 0644.
//!
//! Submodules: `ensure` (the plan of files and the create-or-keep walk over it), `ca`
//! (creating, re-loading and signing with a CA; certificate profiles), `files` (reading and
//! never-overwriting writes).

use std::path::{Path, PathBuf};

mod ca;
mod ensure;
mod files;
#[cfg(test)]
mod tests;

pub use ca::{foreign_leaf, issue, revoke};
pub use ensure::ensure;

/// Hosts of a server certificate when none are given.
pub const DEFAULT_HOSTS: [&str; 2] = ["localhost", "127.0.0.1"];
/// How long a CRL from [`revoke`] stays current (its `nextUpdate`).
pub const CRL_NEXT_UPDATE_DAYS: i64 = 30;
/// The CA's lifetime in days, unless the request asks for longer leaves.
pub const CA_MIN_DAYS: u32 = 3650;
/// DNS SAN of the hub's client certificate.
pub const HUB_CLIENT_DNS: &str = "hub.aidhub.test";
/// Subject common name of the hub's certificates.
pub const HUB_COMMON_NAME: &str = "aidhub";

/// One partner's certificates to create.
#[derive(Clone, Copy, Debug)]
pub struct PartnerCerts<'a> {
    /// The partner id; also its client certificate's CN and part of its file names.
    pub id: &'a str,
    /// DNS names or IP addresses for the partner's *server* certificate; empty means
    /// [`DEFAULT_HOSTS`].
    pub hosts: &'a [String],
}

/// What [`ensure()`] should make.
#[derive(Clone, Copy, Debug)]
pub struct PkiRequest<'a> {
    /// Where the files go, e.g. `certs`.
    pub dir: &'a Path,
    /// SANs (DNS names or IP addresses) of the hub's server certificate; empty means
    /// [`DEFAULT_HOSTS`].
    pub hub_hosts: &'a [String],
    /// The partners to make certificates for.
    pub partners: &'a [PartnerCerts<'a>],
    /// Validity of new leaf certificates in days (capped at the CA's own expiry).
    pub days: u32,
}

/// The files [`ensure()`] wrote and the ones it found and kept, in the order it visited them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PkiSummary {
    /// Files created by this run.
    pub written: Vec<PathBuf>,
    /// Files that were already there and were left untouched.
    pub kept: Vec<PathBuf>,
}

/// One extra certificate for [`issue`].
#[derive(Clone, Debug)]
pub struct LeafSpec {
    /// Subject common name.
    pub common_name: String,
    /// DNS SANs; an entry that parses as an IP address becomes an IP SAN.
    pub dns: Vec<String>,
    /// URI SANs.
    pub uris: Vec<String>,
    /// Extended key usage clientAuth.
    pub client: bool,
    /// Extended key usage serverAuth.
    pub server: bool,
    /// Start of validity, taken as given (a future one makes a not-yet-valid certificate).
    pub not_before: time::OffsetDateTime,
    /// End of validity, taken as given (a past one makes an expired certificate).
    pub not_after: time::OffsetDateTime,
}

impl LeafSpec {
    /// A client certificate named like the one [`ensure()`] makes for partner `id`, valid from
    /// five minutes ago for 30 days.
    pub fn partner_client(id: &str) -> LeafSpec {
        let now = time::OffsetDateTime::now_utc();
        LeafSpec {
            common_name: id.to_owned(),
            dns: vec![partner_dns(id)],
            uris: vec![partner_uri(id)],
            client: true,
            server: false,
            not_before: now - time::Duration::minutes(5),
            not_after: now + time::Duration::days(30),
        }
    }
}

/// Everything that can go wrong; each variant names the file or input and the cause.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // the fields are named for what they hold; each variant's message says it all
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    /// A PEM file could not be parsed.
    #[error("{what}: cannot parse: {source}")]
    Parse { what: String, source: rcgen::Error },
    /// rcgen could not make a key, certificate or CRL.
    #[error("{what}: cannot generate: {source}")]
    Generate { what: String, source: rcgen::Error },
    /// A certificate without its key, or the reverse.
    #[error(
        "{} exists but {} does not; delete it so both are made again",
        present.display(),
        missing.display()
    )]
    HalfPair { present: PathBuf, missing: PathBuf },
    /// Leaf files whose CA is gone.
    #[error(
        "{} exists but the CA that signed it ({}) is gone; restore the CA or delete the file",
        path.display(),
        ca.display()
    )]
    OrphanLeaf { path: PathBuf, ca: PathBuf },
    /// A file that exists but cannot serve (a CA key that does not match its certificate).
    #[error("{}: {reason}", path.display())]
    Unusable { path: PathBuf, reason: String },
    /// A request that cannot be met (a bad partner id or host).
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

/// The CA certificate; its key is [`ca_key`].
pub fn ca_cert(dir: &Path) -> PathBuf {
    dir.join("ca.pem")
}

/// The CA's private key.
pub fn ca_key(dir: &Path) -> PathBuf {
    dir.join("ca.key")
}

/// The hub's server certificate and key.
pub fn hub_server(dir: &Path) -> (PathBuf, PathBuf) {
    pair(dir, "hub-server")
}

/// The hub's client certificate and key, presented to partner upstreams.
pub fn hub_client(dir: &Path) -> (PathBuf, PathBuf) {
    pair(dir, "hub-client")
}

/// Partner `id`'s client certificate and key.
pub fn partner_client(dir: &Path, id: &str) -> (PathBuf, PathBuf) {
    pair(&dir.join("partners"), &format!("{id}-client"))
}

/// Partner `id`'s server (upstream) certificate and key.
pub fn partner_server(dir: &Path, id: &str) -> (PathBuf, PathBuf) {
    pair(&dir.join("partners"), &format!("{id}-server"))
}

/// The DNS SAN of partner `id`'s client certificate.
pub fn partner_dns(id: &str) -> String {
    format!("{id}.partners.aidhub.test")
}

/// The URI SAN of partner `id`'s client certificate.
pub fn partner_uri(id: &str) -> String {
    format!("urn:aidhub:partner:{id}")
}

fn pair(dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    )
}

//! Serde mirrors of `config/hub.toml` and `routes.toml`, exactly as written in the files.
//!
//! Nothing here is checked beyond its TOML type; [`super`] turns these into validated types.
//! Every struct denies unknown keys so that a typo is an error, not a silent default.

use serde::Deserialize;
use std::collections::BTreeMap;

/// `config/hub.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHub {
    /// Path of the routing table.
    #[serde(default = "default_routes")]
    pub routes: String,
    /// Listener addresses.
    #[serde(default)]
    pub listen: RawListen,
    /// The hub's own TLS material and the partner trust anchors.
    pub tls: RawTls,
    /// The embedded ledger.
    #[serde(default)]
    pub ledger: RawLedger,
    /// Size and concurrency limits.
    #[serde(default)]
    pub limits: RawLimits,
    /// Upstream timeouts.
    #[serde(default)]
    pub timeouts: RawTimeouts,
    /// Payload validation switches.
    #[serde(default)]
    pub validation: RawValidation,
    /// Logging.
    #[serde(default)]
    pub log: RawLog,
    /// Development conveniences.
    #[serde(default)]
    pub dev: RawDev,
    /// The admin listener.
    #[serde(default)]
    pub admin: RawAdmin,
    /// Live reloads.
    #[serde(default)]
    pub reload: RawReload,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Its address; loopback by default.
    pub listen: Option<String>,
    /// Bearer token; required when the address is not loopback.
    pub token: Option<String>,
    /// This replica's name in `/config` and `aidhub_config_info` (default: the host name).
    pub replica_id: Option<String>,
}

/// `[reload]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReload {
    /// Reload when a configuration or certificate file changes.
    pub watch: Option<bool>,
    /// Quiet time after the last change before reloading.
    pub debounce_ms: Option<u64>,
}

fn default_routes() -> String {
    "routes.toml".into()
}

/// `[listen]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    /// The partner-facing mutual-TLS listener.
    pub partners: Option<String>,
    /// The browser-facing listener (touchpoint redirects); absent: not started.
    pub browsers: Option<String>,
    /// The device-facing TS.43 listener (server TLS only).
    pub devices: Option<String>,
    /// Serving threads (0 or absent: one per core).
    pub threads: Option<usize>,
    /// How long a client connection may stay without a request in flight.
    pub idle_timeout_secs: Option<u64>,
    /// How long a request's body may take to arrive after its head.
    pub body_timeout_secs: Option<u64>,
}

/// `[tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// The hub's server certificate chain (PEM).
    pub server_cert: String,
    /// Its private key (PEM).
    pub server_key: String,
    /// The hub's client certificate chain, presented to partner upstreams.
    pub client_cert: String,
    /// Its private key.
    pub client_key: String,
    /// Trust anchors for partner client certificates.
    pub partner_ca: Vec<String>,
    /// Certificate revocation lists (PEM or DER) for partner client certificates.
    #[serde(default)]
    pub crls: Vec<String>,
    /// Create a development PKI under this directory when the files are missing.
    pub dev_pki: Option<String>,
    /// Extra names for the hub's development server certificate.
    #[serde(default)]
    pub dev_hosts: Vec<String>,
    /// Seconds a client may take to finish the TLS handshake.
    pub handshake_timeout_secs: Option<u64>,
    /// The certificate chain the browser-facing listener presents (default: `server_cert`).
    pub browsers_cert: Option<String>,
    /// Its private key (default: `server_key`).
    pub browsers_key: Option<String>,
}

/// `[ledger]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLedger {
    /// `sled` (embedded, the default) or `postgres`.
    pub backend: Option<String>,
    /// Directory of the sled database.
    pub path: Option<String>,
    /// PostgreSQL: the connection URL, a secret (literal, `env:NAME` or `file:PATH`).
    pub url: Option<String>,
    /// PostgreSQL: connections this replica keeps at most.
    pub pool_size: Option<u32>,
    /// PostgreSQL: the schema the hub's tables live in (created when missing).
    pub schema: Option<String>,
    /// PostgreSQL: how long one ledger call may take before it fails as unavailable.
    pub timeout_ms: Option<u64>,
    /// How long an asynchronous activation-code request stays open.
    pub async_deadline_secs: Option<u64>,
    /// How long closed requests and withdrawn federations are kept.
    pub retention_secs: Option<u64>,
    /// How often the sweeper runs.
    pub sweep_interval_secs: Option<u64>,
    /// How long Send Activation Code waits for its request's 201 to be relayed.
    pub early_answer_wait_ms: Option<u64>,
    /// sled: how often sled is flushed and the journal of durable writes emptied.
    pub checkpoint_ms: Option<u64>,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Largest request or answer body accepted.
    pub max_body_bytes: Option<u64>,
    /// Default cap of requests in flight towards one upstream.
    pub max_in_flight_per_upstream: Option<u64>,
    /// How many connections to one upstream may be opening at once.
    pub max_opening_per_upstream: Option<u64>,
    /// Redis holding the partners' token buckets for all replicas, a secret (literal,
    /// `env:NAME` or `file:PATH`).
    pub redis_url: Option<String>,
    /// Prefix of the hub's keys in Redis.
    pub redis_key_prefix: Option<String>,
    /// How long a rate-limit decision may wait for Redis before the local share applies.
    pub redis_timeout_ms: Option<u64>,
    /// How many replicas share the limits: without Redis each takes `limit / replicas`.
    pub replicas: Option<u32>,
}

/// `[timeouts]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    /// TCP connect timeout towards an upstream.
    pub connect_ms: Option<u64>,
    /// How long an idle upstream connection is kept for reuse.
    pub upstream_idle_ms: Option<u64>,
    /// Whole-exchange timeout for functions without their own.
    pub default_ms: Option<u64>,
    /// Per-function overrides, keyed by function name (e.g. `request_activation_code`).
    #[serde(default)]
    pub functions: BTreeMap<String, u64>,
}

/// `[validation]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawValidation {
    /// Narrow ICCIDs to the spec's 20–22 digits.
    #[serde(default)]
    pub strict_iccid: bool,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `text` (default) or `json`.
    pub format: Option<String>,
    /// A tracing filter, e.g. `info` or `aidhub=debug`.
    pub level: Option<String>,
}

/// `routes.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoutes {
    /// The partner directory.
    #[serde(default, rename = "partner")]
    pub partners: Vec<RawPartner>,
    /// The TS.43 carriers (entitlement servers devices reach through the hub).
    #[serde(default, rename = "carrier")]
    pub carriers: Vec<RawCarrier>,
}

/// One `[[carrier]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCarrier {
    /// Its id.
    pub id: String,
    /// The device-facing path (default `/ts43/{id}`).
    pub base_path: Option<String>,
    /// The ECS URL, `https://host:port[/path]`.
    pub ecs_url: String,
    /// Trust anchors for the ECS certificate.
    pub ecs_ca: Vec<String>,
    /// The hub's client certificate towards this ECS (mutual TLS), with `client_key`.
    pub client_cert: Option<String>,
    /// Its key.
    pub client_key: Option<String>,
    /// TLS name of the ECS when it differs from the URL's host.
    pub server_name: Option<String>,
    /// Deadline of one upstream exchange.
    pub timeout_ms: Option<u64>,
    /// Normalisation switches.
    pub normalise: Option<RawNormalise>,
    /// Limits.
    #[serde(default)]
    pub limits: RawCarrierLimits,
}

/// `[carrier.normalise]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNormalise {
    /// Ask the ECS for XML on ODSA operations.
    pub xml_for_odsa: Option<bool>,
    /// Base64-encode raw activation codes.
    pub base64_activation_code: Option<bool>,
    /// Add this `PollingInterval` (minutes) when missing; 0 is off.
    pub polling_interval_minutes: Option<u32>,
    /// Keep temporary tokens usable until expiry.
    pub keep_temporary_token: Option<bool>,
    /// Give older clients a `TOKEN` to poll with.
    pub token_for_older_clients: Option<bool>,
    /// Business outcomes always as HTTP 200.
    pub business_outcomes_as_200: Option<bool>,
}

/// `[carrier.limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCarrierLimits {
    /// Requests per second for all devices of the carrier.
    pub rate: Option<f64>,
    /// Its burst.
    pub burst: Option<u32>,
    /// Requests per second per device (`terminal_id`).
    pub device_rate: Option<f64>,
    /// Its burst.
    pub device_burst: Option<u32>,
    /// Requests in flight towards the ECS.
    pub max_in_flight: Option<u64>,
}

/// One `[[partner]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPartner {
    /// Its id, as used in `client-id` / `target-id`.
    pub id: String,
    /// `msp` or `cmp`.
    pub role: String,
    /// Certificate identities: `cn:`, `dns:`, `uri:`, `sha256:`.
    pub identities: Vec<String>,
    /// How the partner authenticates to the hub.
    pub credential: RawCredential,
    /// Where the hub forwards calls for this partner.
    pub upstream: RawUpstream,
    /// The counterparts it has agreements with (absent: every partner of the other role).
    pub counterparts: Option<Vec<String>>,
    /// Counterparts whose federations predate the hub (first use of an unknown token is learned).
    #[serde(default)]
    pub migration: Vec<String>,
    /// CMPs: the secret its account ids are signed with.
    pub account_id_secret: Option<String>,
    /// CMPs: per-MSP account-id secrets overriding `account_id_secret`.
    #[serde(default)]
    pub account_id_secrets: BTreeMap<String, String>,
    /// Rate limits and the upstream in-flight cap.
    #[serde(default)]
    pub limits: RawPartnerLimits,
    /// Its onboarding pages and agreed redirect domains (absent: not in the touchpoint
    /// directory).
    pub touchpoint: Option<RawTouchpoint>,
}

/// `[partner.touchpoint]`: what a browser is sent to and may be sent back to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTouchpoint {
    /// The name shown to users on the hub's refusal pages (default: the partner id).
    pub name: Option<String>,
    /// The production onboarding (login) page.
    pub login_url: String,
    /// The pre-production onboarding page.
    pub preproduction_login_url: Option<String>,
    /// Hosts a `redirect_uri` towards this partner may name: `*.cmp.example`,
    /// `portal.cmp.example`, optionally with `:port`.
    pub redirect_domains: Vec<String>,
}

/// `[partner.limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPartnerLimits {
    /// Requests per second this partner may make (all functions together).
    pub rate: Option<f64>,
    /// Requests it may make at once before the rate applies (default: the rate, at least 1).
    pub burst: Option<u32>,
    /// Requests the hub sends to this partner's upstream at once.
    pub max_in_flight: Option<u64>,
    /// Per-function rates, keyed by function name.
    #[serde(default)]
    pub functions: BTreeMap<String, RawRate>,
}

/// A rate and its burst.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRate {
    /// Requests per second.
    pub rate: f64,
    /// Burst size.
    pub burst: Option<u32>,
}

/// A credential: an api-key or HTTP basic auth.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredential {
    /// `api-key` value.
    pub api_key: Option<String>,
    /// Basic-auth user name.
    pub username: Option<String>,
    /// Basic-auth password.
    pub password: Option<String>,
}

/// `[partner.upstream]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// Base URL, `https://host:port[/prefix]`.
    pub url: String,
    /// Trust anchors for the upstream's server certificate.
    pub ca: Vec<String>,
    /// The credential the hub presents upstream.
    pub credential: RawCredential,
    /// TLS server name, when it differs from the URL's host.
    pub server_name: Option<String>,
    /// How long an idle connection to this upstream is kept (default
    /// `timeouts.upstream_idle_ms`).
    pub idle_ms: Option<u64>,
}

/// `[dev]`: development conveniences, off by default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDev {
    /// Start a simulated partner on every loopback upstream of the routing table.
    #[serde(default)]
    pub simulate_partners: bool,
}

//! Configuration: `config/hub.toml` (listeners, TLS files, ledger, limits) and `routes.toml`
//! (the partner directory), parsed into [`raw`] mirrors and then validated into the typed
//! [`HubConfig`] and [`Routes`], collecting every problem with its location rather than
//! stopping at the first. Loading is pure: [`HubConfig::from_str`] and [`Routes::from_str`]
//! work in unit tests. Relative paths resolve against the base directory given by the caller
//! (the hub's working directory).

pub mod carrier;
pub mod cluster;
pub mod raw;
pub mod secret;
pub mod touchpoint;

use crate::aid1::{Function, Role, Rules};
use crate::identity::Identity;
use crate::FastMap;
pub use carrier::{Carrier, CarrierLimits, EcsSpec, Normalise};
pub use cluster::{LedgerBackend, PostgresSettings, SharedLimits};
use raw::{RawCredential, RawHub, RawPartner, RawRoutes};
pub use secret::Secret;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
pub use touchpoint::{Environment, Touchpoint};

/// Every problem found in a configuration, each with its location.
#[derive(Debug, Default)]
pub struct ConfigError {
    /// `file: location: problem` lines.
    pub problems: Vec<String>,
}

impl ConfigError {
    fn push(&mut self, file: &str, location: &str, problem: impl fmt::Display) {
        self.problems.push(if location.is_empty() {
            format!("{file}: {problem}")
        } else {
            format!("{file}: {location}: {problem}")
        });
    }

    fn into_result<T>(self, value: T) -> Result<T, ConfigError> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// Merges another error's problems into this one.
    pub fn extend(&mut self, other: ConfigError) {
        self.problems.extend(other.problems);
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(p)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// The validated `config/hub.toml`.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The routing table's path.
    pub routes: PathBuf,
    /// The partner-facing listener.
    pub partners_addr: SocketAddr,
    /// The browser-facing listener (touchpoint redirects), when configured.
    pub browsers_addr: Option<SocketAddr>,
    /// The device-facing TS.43 listener, when configured.
    pub devices_addr: Option<SocketAddr>,
    /// How many serving threads serve the listeners' connections (read at start only).
    pub serving_threads: usize,
    /// How long a client connection (every listener) may stay without a request in flight
    /// before it is closed.
    pub idle_timeout: Duration,
    /// How long a request's body may take to arrive after its head (partner and device
    /// listeners): a request in flight keeps its connection open, so the idle timeout does not
    /// bound it.
    pub body_timeout: Duration,
    /// TLS material.
    pub tls: TlsFiles,
    /// Ledger settings.
    pub ledger: LedgerSettings,
    /// Largest request or answer body.
    pub max_body_bytes: usize,
    /// Upstream timeouts.
    pub timeouts: Timeouts,
    /// Payload validation switches.
    pub rules: Rules,
    /// Log format and filter.
    pub log: LogSettings,
    /// Development only: run simulated partners on loopback upstreams.
    pub simulate_partners: bool,
    /// Default cap of requests in flight towards one upstream.
    pub max_in_flight_per_upstream: usize,
    /// How many connections to one upstream may be opening (TCP connect and TLS handshake)
    /// at once.
    pub max_opening_per_upstream: usize,
    /// Rate limits shared by several replicas (Redis, the local share).
    pub shared_limits: SharedLimits,
    /// The admin listener.
    pub admin: AdminSettings,
    /// Live reloads on file changes.
    pub reload: ReloadSettings,
}

/// `[admin]`, validated.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// Address (port 0 to disable is not supported: the admin listener always runs).
    pub addr: SocketAddr,
    /// Bearer token, required on non-loopback addresses.
    pub token: Option<Secret>,
    /// This replica's name, reported by `/config` and `aidhub_config_info`.
    pub replica_id: String,
}

/// `[reload]`, validated.
#[derive(Debug, Clone)]
pub struct ReloadSettings {
    /// Watch the configuration and certificate files.
    pub watch: bool,
    /// Quiet time after the last change.
    pub debounce: Duration,
}

/// A rate limit: `rate` requests per second with bursts of `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitSpec {
    /// Requests per second (> 0).
    pub rate: f64,
    /// Burst size (>= 1).
    pub burst: u32,
}

/// A partner's limits.
#[derive(Debug, Clone, Default)]
pub struct PartnerLimits {
    /// All its calls together.
    pub rate: Option<LimitSpec>,
    /// Per function name.
    pub functions: FastMap<&'static str, LimitSpec>,
    /// Requests in flight towards its upstream (default: the hub-wide value).
    pub max_in_flight: Option<usize>,
}

/// The hub's TLS files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Server certificate chain.
    pub server_cert: PathBuf,
    /// Server key.
    pub server_key: PathBuf,
    /// Client certificate chain for upstream calls.
    pub client_cert: PathBuf,
    /// Client key.
    pub client_key: PathBuf,
    /// Trust anchors for partner client certificates.
    pub partner_ca: Vec<PathBuf>,
    /// Revocation lists.
    pub crls: Vec<PathBuf>,
    /// Where to create a development PKI when files are missing.
    pub dev_pki: Option<PathBuf>,
    /// Extra names for the development server certificate.
    pub dev_hosts: Vec<String>,
    /// TLS handshake deadline for partners.
    pub handshake_timeout: Duration,
    /// Certificate chain of the browser-facing listener (default: `server_cert`).
    pub browsers_cert: PathBuf,
    /// Its key (default: `server_key`).
    pub browsers_key: PathBuf,
}

/// `[ledger]`, validated.
#[derive(Debug, Clone)]
pub struct LedgerSettings {
    /// sled (with `path`) or PostgreSQL.
    pub backend: LedgerBackend,
    /// sled directory.
    pub path: PathBuf,
    /// Open time of an async activation-code request.
    pub async_deadline: Duration,
    /// Retention of closed records.
    pub retention: Duration,
    /// Sweeper period.
    pub sweep_interval: Duration,
    /// How long an early Send Activation Code waits for its request's 201.
    pub early_answer_wait: Duration,
    /// sled: how often sled is flushed and the journal emptied (the most a restart after a
    /// crash replays).
    pub checkpoint: Duration,
}

/// Upstream timeouts.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// TCP connect, and the TLS handshake after it.
    pub connect: Duration,
    /// How long an idle upstream connection is kept for reuse.
    pub upstream_idle: Duration,
    /// Per function, for the whole upstream exchange.
    pub functions: FastMap<Function, Duration>,
}

impl Timeouts {
    /// The exchange timeout for `function`.
    pub fn for_function(&self, function: Function) -> Duration {
        self.functions
            .get(&function)
            .copied()
            .unwrap_or(Duration::from_secs(10))
    }
}

/// `[log]`, validated.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// One JSON object per line.
    pub json: bool,
    /// The tracing filter.
    pub level: String,
}

/// Default exchange timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Request Activation Code: the spec's 3-second sync rule plus a margin.
pub const RAC_TIMEOUT_MS: u64 = 4_000;

impl HubConfig {
    /// Reads and validates `path`; relative paths inside resolve against `base`.
    pub fn load(path: &Path, base: &Path) -> Result<HubConfig, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![format!("{name}: cannot read: {e}")],
        })?;
        HubConfig::from_str(&text, &name, base)
    }

    /// Validates the text of a hub.toml (`name` is used in messages).
    pub fn from_str(text: &str, name: &str, base: &Path) -> Result<HubConfig, ConfigError> {
        let raw: RawHub = toml::from_str(text).map_err(|e| ConfigError {
            problems: vec![format!("{name}: {}", e.to_string().trim_end())],
        })?;
        let mut errors = ConfigError::default();
        let path = |p: &str| base.join(p);
        let partners_addr = raw
            .listen
            .partners
            .as_deref()
            .unwrap_or("127.0.0.1:8443")
            .parse()
            .unwrap_or_else(|e| {
                errors.push(name, "listen.partners", format_args!("not an address: {e}"));
                SocketAddr::from(([127, 0, 0, 1], 8443))
            });
        let browsers_addr = raw.listen.browsers.as_deref().and_then(|text| {
            text.parse()
                .map_err(|e| {
                    errors.push(name, "listen.browsers", format_args!("not an address: {e}"))
                })
                .ok()
        });
        if raw.tls.browsers_cert.is_some() != raw.tls.browsers_key.is_some() {
            errors.push(
                name,
                "tls.browsers_cert",
                "browsers_cert and browsers_key come together (or neither: the server certificate serves)",
            );
        }
        let devices_addr = raw.listen.devices.as_deref().and_then(|a| {
            a.parse()
                .map_err(|e| {
                    errors.push(name, "listen.devices", format_args!("not an address: {e}"))
                })
                .ok()
        });
        if raw.tls.partner_ca.is_empty() {
            errors.push(
                name,
                "tls.partner_ca",
                "at least one trust anchor is needed",
            );
        }
        let mut functions = FastMap::default();
        for function in Function::ALL {
            let ms = match function {
                Function::RequestActivationCode => RAC_TIMEOUT_MS,
                _ => raw.timeouts.default_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
            };
            functions.insert(function, Duration::from_millis(ms));
        }
        for (key, ms) in &raw.timeouts.functions {
            match Function::ALL.iter().find(|f| f.name() == key) {
                Some(f) if *ms > 0 => {
                    functions.insert(*f, Duration::from_millis(*ms));
                }
                Some(_) => errors.push(name, &format!("timeouts.functions.{key}"), "must be > 0"),
                None => errors.push(
                    name,
                    &format!("timeouts.functions.{key}"),
                    "not a function name (e.g. request_activation_code)",
                ),
            }
        }
        let checkpoint_ms = raw.ledger.checkpoint_ms.unwrap_or(1000);
        if !(10..=3_600_000).contains(&checkpoint_ms) {
            errors.push(name, "ledger.checkpoint_ms", "must be 10..=3600000");
        }
        let connect_ms = raw.timeouts.connect_ms.unwrap_or(2000);
        if !(1..=600_000).contains(&connect_ms) {
            errors.push(name, "timeouts.connect_ms", "must be 1..=600000");
        }
        let upstream_idle_ms = raw.timeouts.upstream_idle_ms.unwrap_or(90_000);
        if !(1..=3_600_000).contains(&upstream_idle_ms) {
            errors.push(name, "timeouts.upstream_idle_ms", "must be 1..=3600000");
        }
        let max_opening = raw.limits.max_opening_per_upstream.unwrap_or(8);
        if !(1..=1024).contains(&max_opening) {
            errors.push(name, "limits.max_opening_per_upstream", "must be 1..=1024");
        }
        let serving_threads = match raw.listen.threads {
            None | Some(0) => std::thread::available_parallelism().map_or(1, |n| n.get()),
            Some(n) if n > 1024 => {
                errors.push(name, "listen.threads", "must be 0..=1024");
                1
            }
            Some(n) => n,
        };
        let idle_timeout_secs = raw.listen.idle_timeout_secs.unwrap_or(120);
        if !(1..=86_400).contains(&idle_timeout_secs) {
            errors.push(name, "listen.idle_timeout_secs", "must be 1..=86400");
        }
        let body_timeout_secs = raw.listen.body_timeout_secs.unwrap_or(10);
        if !(1..=86_400).contains(&body_timeout_secs) {
            errors.push(name, "listen.body_timeout_secs", "must be 1..=86400");
        }
        let format = raw.log.format.as_deref().unwrap_or("text");
        if format != "text" && format != "json" {
            errors.push(name, "log.format", "must be \"text\" or \"json\"");
        }
        let max_body = raw.limits.max_body_bytes.unwrap_or(1 << 20);
        if max_body == 0 || max_body > (64 << 20) {
            errors.push(name, "limits.max_body_bytes", "must be 1..=67108864");
        }
        let config = HubConfig {
            routes: path(&raw.routes),
            partners_addr,
            browsers_addr,
            devices_addr,
            serving_threads,
            idle_timeout: Duration::from_secs(idle_timeout_secs),
            body_timeout: Duration::from_secs(body_timeout_secs),
            tls: TlsFiles {
                server_cert: path(&raw.tls.server_cert),
                server_key: path(&raw.tls.server_key),
                client_cert: path(&raw.tls.client_cert),
                client_key: path(&raw.tls.client_key),
                partner_ca: raw.tls.partner_ca.iter().map(|p| path(p)).collect(),
                crls: raw.tls.crls.iter().map(|p| path(p)).collect(),
                dev_pki: raw.tls.dev_pki.as_deref().map(path),
                dev_hosts: raw.tls.dev_hosts.clone(),
                handshake_timeout: Duration::from_secs(
                    raw.tls.handshake_timeout_secs.unwrap_or(10),
                ),
                browsers_cert: path(
                    raw.tls
                        .browsers_cert
                        .as_deref()
                        .unwrap_or(&raw.tls.server_cert),
                ),
                browsers_key: path(
                    raw.tls
                        .browsers_key
                        .as_deref()
                        .unwrap_or(&raw.tls.server_key),
                ),
            },
            ledger: LedgerSettings {
                backend: cluster::ledger_backend(&raw.ledger, base, name, &mut errors),
                path: path(raw.ledger.path.as_deref().unwrap_or("data/ledger")),
                async_deadline: Duration::from_secs(
                    raw.ledger.async_deadline_secs.unwrap_or(7 * 24 * 3600),
                ),
                retention: Duration::from_secs(raw.ledger.retention_secs.unwrap_or(30 * 24 * 3600)),
                sweep_interval: Duration::from_secs(raw.ledger.sweep_interval_secs.unwrap_or(60)),
                early_answer_wait: Duration::from_millis(
                    raw.ledger
                        .early_answer_wait_ms
                        .unwrap_or(RAC_TIMEOUT_MS + 1000),
                ),
                checkpoint: Duration::from_millis(checkpoint_ms),
            },
            max_body_bytes: max_body as usize,
            timeouts: Timeouts {
                connect: Duration::from_millis(connect_ms),
                upstream_idle: Duration::from_millis(upstream_idle_ms),
                functions,
            },
            rules: Rules {
                strict_iccid: raw.validation.strict_iccid,
            },
            log: LogSettings {
                json: format == "json",
                level: raw.log.level.unwrap_or_else(|| "info".into()),
            },
            simulate_partners: raw.dev.simulate_partners,
            max_in_flight_per_upstream: raw.limits.max_in_flight_per_upstream.unwrap_or(256).max(1)
                as usize,
            max_opening_per_upstream: max_opening as usize,
            shared_limits: cluster::shared_limits(&raw.limits, base, name, &mut errors),
            admin: AdminSettings {
                addr: raw
                    .admin
                    .listen
                    .as_deref()
                    .unwrap_or("127.0.0.1:9090")
                    .parse()
                    .unwrap_or_else(|e| {
                        errors.push(name, "admin.listen", format_args!("not an address: {e}"));
                        SocketAddr::from(([127, 0, 0, 1], 9090))
                    }),
                token: raw.admin.token.as_deref().and_then(|t| {
                    Secret::resolve(t, base)
                        .map_err(|e| errors.push(name, "admin.token", e))
                        .ok()
                }),
                replica_id: cluster::replica_id(&raw.admin, name, &mut errors),
            },
            reload: ReloadSettings {
                watch: raw.reload.watch.unwrap_or(true),
                debounce: Duration::from_millis(raw.reload.debounce_ms.unwrap_or(500)),
            },
        };
        if !config.admin.addr.ip().is_loopback() && config.admin.token.is_none() {
            errors.push(
                name,
                "admin.token",
                "required when admin.listen is not a loopback address",
            );
        }
        errors.into_result(config)
    }
}

/// A partner's id, cheap to clone.
pub type PartnerId = Arc<str>;

/// A credential: what a partner presents to the hub, or the hub presents upstream.
#[derive(Clone, Debug)]
pub enum Credential {
    /// The `api-key` header.
    ApiKey(Secret),
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
}

/// One validated partner of the routing table.
#[derive(Debug)]
pub struct Partner {
    /// Its id.
    pub id: PartnerId,
    /// MSP or CMP.
    pub role: Role,
    /// Certificate identities.
    pub identities: Vec<Identity>,
    /// What it must present to the hub.
    pub credential: Credential,
    /// Where calls to it go.
    pub upstream: UpstreamSpec,
    /// Counterparts with an agreement; `None` means every partner of the other role.
    pub counterparts: Option<BTreeSet<String>>,
    /// Counterparts in migration mode.
    pub migration: BTreeSet<String>,
    /// CMPs: account-id secret (default for every MSP).
    pub account_id_secret: Option<Secret>,
    /// CMPs: per-MSP account-id secrets.
    pub account_id_secrets: BTreeMap<String, Secret>,
    /// Rate limits and in-flight cap.
    pub limits: PartnerLimits,
    /// Its onboarding pages and agreed redirect domains, when it is in the touchpoint
    /// directory.
    pub touchpoint: Option<Touchpoint>,
}

impl Partner {
    /// Whether this partner's table allows talking to `other`.
    pub fn permits(&self, other: &str) -> bool {
        self.counterparts.as_ref().is_none_or(|c| c.contains(other))
    }

    /// The secret this CMP signs account ids with for `msp`.
    pub fn account_id_secret_for(&self, msp: &str) -> Option<&Secret> {
        self.account_id_secrets
            .get(msp)
            .or(self.account_id_secret.as_ref())
    }
}

/// A partner's upstream.
#[derive(Debug)]
pub struct UpstreamSpec {
    /// Scheme and authority, e.g. `https://127.0.0.1:9001`.
    pub origin: http::Uri,
    /// Path prefix without a trailing slash (may be empty).
    pub prefix: String,
    /// Trust anchors for its server certificate.
    pub ca: Vec<PathBuf>,
    /// What the hub presents.
    pub credential: Credential,
    /// TLS server name override.
    pub server_name: Option<String>,
    /// How long an idle connection is kept, when not `timeouts.upstream_idle_ms`.
    pub idle: Option<Duration>,
}

/// The validated routing table.
#[derive(Debug)]
pub struct Routes {
    /// Partners, in file order.
    pub partners: Vec<Arc<Partner>>,
    /// TS.43 carriers, in file order.
    pub carriers: Vec<Arc<Carrier>>,
}

impl Routes {
    /// Reads and validates a routes.toml.
    pub fn load(path: &Path, base: &Path) -> Result<Routes, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![format!("{name}: cannot read: {e}")],
        })?;
        Routes::from_str(&text, &name, base)
    }

    /// Validates the text of a routes.toml.
    pub fn from_str(text: &str, name: &str, base: &Path) -> Result<Routes, ConfigError> {
        let raw: RawRoutes = toml::from_str(text).map_err(|e| ConfigError {
            problems: vec![format!("{name}: {}", e.to_string().trim_end())],
        })?;
        let mut errors = ConfigError::default();
        if raw.partners.is_empty() && raw.carriers.is_empty() {
            // Also what a half-written file looks like to a reload: never swap that in.
            errors.push(
                name,
                "",
                "no [[partner]] or [[carrier]] tables: a routing table needs at least one partner or carrier",
            );
        }
        let roles: HashMap<&str, &str> = raw
            .partners
            .iter()
            .map(|p| (p.id.as_str(), p.role.as_str()))
            .collect();
        let mut seen = BTreeSet::new();
        let mut partners = Vec::new();
        for (i, p) in raw.partners.iter().enumerate() {
            let at = format!("partner[{i}] ({})", p.id);
            if !seen.insert(p.id.as_str()) {
                errors.push(name, &at, "duplicate partner id");
            }
            if let Some(partner) = partner(p, &roles, base, name, &at, &mut errors) {
                partners.push(Arc::new(partner));
            }
        }
        let partner_ids: Vec<&str> = raw.partners.iter().map(|p| p.id.as_str()).collect();
        let carriers = carrier::carriers(&raw.carriers, &partner_ids, base, name, &mut errors);
        errors.into_result(Routes { partners, carriers })
    }
}

fn partner(
    p: &RawPartner,
    roles: &HashMap<&str, &str>,
    base: &Path,
    file: &str,
    at: &str,
    errors: &mut ConfigError,
) -> Option<Partner> {
    let before = errors.problems.len();
    if p.id.is_empty() || p.id.len() > 64 || !p.id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        errors.push(
            file,
            at,
            "id must be 1-64 characters [A-Za-z0-9] (spec 5.1 client-id)",
        );
    }
    let role = match p.role.as_str() {
        "msp" => Role::Msp,
        "cmp" => Role::Cmp,
        _ => {
            errors.push(file, &format!("{at}.role"), "must be \"msp\" or \"cmp\"");
            Role::Msp
        }
    };
    if p.identities.is_empty() {
        errors.push(
            file,
            &format!("{at}.identities"),
            "at least one identity is needed",
        );
    }
    let identities: Vec<Identity> = p
        .identities
        .iter()
        .filter_map(|text| {
            Identity::parse(text)
                .map_err(|e| errors.push(file, &format!("{at}.identities"), e))
                .ok()
        })
        .collect();
    let credential = credential_of(
        &p.credential,
        base,
        file,
        &format!("{at}.credential"),
        errors,
    );
    let upstream_credential = credential_of(
        &p.upstream.credential,
        base,
        file,
        &format!("{at}.upstream.credential"),
        errors,
    );
    let (origin, prefix) = upstream_url(&p.upstream.url)
        .map_err(|e| errors.push(file, &format!("{at}.upstream.url"), e))
        .unwrap_or_default();
    if p.upstream.ca.is_empty() {
        errors.push(
            file,
            &format!("{at}.upstream.ca"),
            "at least one trust anchor is needed",
        );
    }
    let other_role = if role == Role::Msp { "cmp" } else { "msp" };
    let mut check_ids = |list: &[String], key: &str| {
        for id in list {
            match roles.get(id.as_str()) {
                None => errors.push(
                    file,
                    &format!("{at}.{key}"),
                    format_args!("unknown partner `{id}`"),
                ),
                Some(r) if *r != other_role => errors.push(
                    file,
                    &format!("{at}.{key}"),
                    format_args!(
                        "`{id}` is not a {other_role}: only the other role can be a counterpart"
                    ),
                ),
                Some(_) => {}
            }
        }
    };
    if let Some(list) = &p.counterparts {
        check_ids(list, "counterparts");
    }
    check_ids(&p.migration, "migration");
    let ids: Vec<String> = p.account_id_secrets.keys().cloned().collect();
    check_ids(&ids, "account_id_secrets");
    let secret = |spec: &str, key: &str, errors: &mut ConfigError| {
        Secret::resolve(spec, base)
            .map_err(|e| errors.push(file, &format!("{at}.{key}"), e))
            .ok()
    };
    let account_id_secret = p
        .account_id_secret
        .as_deref()
        .and_then(|s| secret(s, "account_id_secret", errors));
    let mut account_id_secrets = BTreeMap::new();
    for (msp, spec) in &p.account_id_secrets {
        if let Some(s) = secret(spec, &format!("account_id_secrets.{msp}"), errors) {
            account_id_secrets.insert(msp.clone(), s);
        }
    }
    // AID.02 chapter 6: calls to the CMP-hosted API carry an api-key; only the MSP-hosted API
    // may use basic authentication. MSPs call the hub's CMP-hosted side, and the hub calls
    // CMPs' own CMP-hosted API.
    if role == Role::Msp && matches!(credential, Some(Credential::Basic { .. })) {
        errors.push(
            file,
            &format!("{at}.credential"),
            "an MSP calls the CMP-hosted API, which takes an api_key (AID.02 chapter 6), not basic auth",
        );
    }
    if role == Role::Cmp && matches!(upstream_credential, Some(Credential::Basic { .. })) {
        errors.push(
            file,
            &format!("{at}.upstream.credential"),
            "a CMP's API takes an api_key (AID.02 chapter 6), not basic auth",
        );
    }
    match role {
        Role::Cmp if p.account_id_secret.is_none() && p.account_id_secrets.is_empty() => errors
            .push(
                file,
                at,
                "a CMP needs account_id_secret (the HS256 secret its account ids are signed with)",
            ),
        Role::Msp if p.account_id_secret.is_some() || !p.account_id_secrets.is_empty() => {
            errors.push(file, at, "account_id_secret belongs to CMPs only")
        }
        _ => {}
    }
    if p.upstream
        .idle_ms
        .is_some_and(|ms| !(1..=3_600_000).contains(&ms))
    {
        errors.push(
            file,
            &format!("{at}.upstream.idle_ms"),
            "must be 1..=3600000",
        );
    }
    let limits = partner_limits(&p.limits, file, &format!("{at}.limits"), errors);
    let touchpoint = p.touchpoint.as_ref().and_then(|raw| {
        touchpoint::touchpoint(raw, &p.id, file, &format!("{at}.touchpoint"), errors)
    });
    if errors.problems.len() > before {
        return None;
    }
    Some(Partner {
        id: Arc::from(p.id.as_str()),
        role,
        identities,
        credential: credential?,
        upstream: UpstreamSpec {
            origin,
            prefix,
            ca: p.upstream.ca.iter().map(|c| base.join(c)).collect(),
            credential: upstream_credential?,
            server_name: p.upstream.server_name.clone(),
            idle: p.upstream.idle_ms.map(Duration::from_millis),
        },
        counterparts: p.counterparts.as_ref().map(|c| c.iter().cloned().collect()),
        migration: p.migration.iter().cloned().collect(),
        account_id_secret,
        account_id_secrets,
        limits,
        touchpoint,
    })
}

fn partner_limits(
    raw: &raw::RawPartnerLimits,
    file: &str,
    at: &str,
    errors: &mut ConfigError,
) -> PartnerLimits {
    let spec = |rate: f64, burst: Option<u32>, key: &str, errors: &mut ConfigError| {
        if !(rate.is_finite() && rate > 0.0) {
            errors.push(
                file,
                &format!("{at}.{key}"),
                "rate must be a positive number of requests per second",
            );
            return None;
        }
        if burst == Some(0) {
            errors.push(file, &format!("{at}.{key}"), "burst must be at least 1");
            return None;
        }
        Some(LimitSpec {
            rate,
            burst: burst.unwrap_or((rate.ceil() as u32).max(1)),
        })
    };
    let rate = match (raw.rate, raw.burst) {
        (Some(rate), burst) => spec(rate, burst, "rate", errors),
        (None, Some(_)) => {
            errors.push(file, &format!("{at}.burst"), "a burst needs a rate");
            None
        }
        (None, None) => None,
    };
    let mut functions = FastMap::default();
    for (name, r) in &raw.functions {
        match Function::ALL.iter().find(|f| f.name() == name) {
            Some(f) => {
                if let Some(s) = spec(r.rate, r.burst, &format!("functions.{name}"), errors) {
                    functions.insert(f.name(), s);
                }
            }
            None => errors.push(
                file,
                &format!("{at}.functions.{name}"),
                "not a function name (e.g. request_activation_code)",
            ),
        }
    }
    if raw.max_in_flight == Some(0) {
        errors.push(file, &format!("{at}.max_in_flight"), "must be at least 1");
    }
    PartnerLimits {
        rate,
        functions,
        max_in_flight: raw.max_in_flight.map(|n| n.max(1) as usize),
    }
}

fn credential_of(
    raw: &RawCredential,
    base: &Path,
    file: &str,
    at: &str,
    errors: &mut ConfigError,
) -> Option<Credential> {
    let resolve = |spec: &str, errors: &mut ConfigError| {
        Secret::resolve(spec, base)
            .map_err(|e| errors.push(file, at, e))
            .ok()
    };
    match (&raw.api_key, &raw.username, &raw.password) {
        (Some(key), None, None) => {
            let secret = resolve(key, errors)?;
            if !secret.expose().iter().all(u8::is_ascii_alphanumeric) {
                errors.push(file, at, "an api-key must be [A-Za-z0-9]+ (spec 5.1)");
                return None;
            }
            Some(Credential::ApiKey(secret))
        }
        (None, Some(user), Some(pass)) => {
            if user.is_empty() || user.contains(':') {
                errors.push(
                    file,
                    at,
                    "a basic-auth username must be non-empty and without ':'",
                );
                return None;
            }
            Some(Credential::Basic {
                username: user.clone(),
                password: resolve(pass, errors)?,
            })
        }
        _ => {
            errors.push(
                file,
                at,
                "give either api_key, or username and password (basic auth)",
            );
            None
        }
    }
}

/// Splits an upstream URL into origin and path prefix; https only, no query or fragment.
fn upstream_url(url: &str) -> Result<(http::Uri, String), String> {
    https_origin(url, "the hub speaks mutual TLS upstream")
}

/// Splits an https URL into its origin and its path without a trailing slash; refuses other
/// schemes (saying `why` https is needed), queries and fragments.
pub(crate) fn https_origin(url: &str, why: &str) -> Result<(http::Uri, String), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("must be an https:// URL ({why})"));
    }
    let authority = uri.authority().ok_or("has no host")?.clone();
    if uri.query().is_some() || url.contains('#') {
        return Err("must not carry a query or fragment".into());
    }
    let path = uri.path().trim_end_matches('/').to_owned();
    let origin = http::Uri::builder()
        .scheme("https")
        .authority(authority)
        .path_and_query("/")
        .build()
        .map_err(|e| e.to_string())?;
    Ok((origin, path))
}

#[cfg(test)]
mod tests;

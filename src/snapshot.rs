//! The configuration snapshot: hub settings, routing table, TLS configurations and upstream
//! pools, validated together and swapped whole.
//!
//! A request loads the current [`Snapshot`] once (one `Arc` load) and keeps it to the end, so
//! a reload never changes the rules under a request in flight. Building a snapshot does all
//! the work that can fail — reading certificates and keys, checking that identities are
//! unique — so a bad configuration is refused before it replaces a good one.

use crate::config::{Carrier, ConfigError, HubConfig, Partner, PartnerId, Routes};
use crate::identity::{CertIdentities, IdentityIndex, Resolved};
use crate::tls;
use crate::upstream::{PoolSettings, Upstream};
use crate::FastMap;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// One immutable, validated configuration.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with every successful load.
    pub version: u64,
    /// SHA-256 over both files and every certificate, key and CRL they name.
    pub hash: String,
    /// SHA-256 of the routing table's text alone: the same on every replica serving the
    /// same table, whatever else differs in their hub.toml.
    pub routes_hash: String,
    /// When it was built.
    pub loaded_at: SystemTime,
    /// Hub settings.
    pub config: HubConfig,
    /// The routing table.
    pub routes: Routes,
    partners: FastMap<PartnerId, Arc<Partner>>,
    identities: Arc<IdentityIndex>,
    /// The partner-facing TLS configuration.
    pub server_tls: Arc<rustls::ServerConfig>,
    /// The browser-facing TLS configuration (no client certificates).
    pub browser_tls: Arc<rustls::ServerConfig>,
    /// The device-facing (TS.43) TLS configuration: server authentication only.
    pub devices_tls: Arc<rustls::ServerConfig>,
    carriers: FastMap<Arc<str>, Arc<Carrier>>,
    upstreams: FastMap<PartnerId, Arc<Upstream>>,
    /// What each upstream pool was built from (reused on reload when equal).
    upstream_keys: FastMap<PartnerId, [u8; 32]>,
}

/// How every upstream pool opens and keeps its connections (`hub.toml`; a partner may keep its
/// idle connections for a time of its own, `upstream.idle_ms`).
fn pool_settings(config: &HubConfig) -> PoolSettings {
    PoolSettings {
        connect_timeout: config.timeouts.connect,
        idle_timeout: config.timeouts.upstream_idle,
        max_opening: config.max_opening_per_upstream,
    }
}

/// Everything an upstream pool depends on: the partner's upstream settings, its trust
/// anchors' contents, the hub's client certificate and key, the pool's settings.
fn upstream_key(partner: &Partner, hub_client: &[u8], pool: PoolSettings) -> [u8; 32] {
    let mut h = Sha256::new();
    let spec = &partner.upstream;
    h.update(
        format!(
            "{}|{}|{:?}|{:?}|{:?}",
            spec.origin, spec.prefix, spec.server_name, pool, spec.ca
        )
        .as_bytes(),
    );
    match &spec.credential {
        crate::config::Credential::ApiKey(k) => h.update(k.expose()),
        crate::config::Credential::Basic { username, password } => {
            h.update(username.as_bytes());
            h.update(password.expose());
        }
    }
    for ca in &spec.ca {
        h.update(std::fs::read(ca).unwrap_or_default());
    }
    h.update(hub_client);
    h.finalize().into()
}

/// Everything a carrier's ECS client depends on.
fn carrier_key(carrier: &Carrier, pool: PoolSettings) -> [u8; 32] {
    let mut h = Sha256::new();
    let spec = &carrier.ecs;
    h.update(
        format!(
            "carrier|{}|{}|{:?}|{:?}|{:?}|{:?}",
            spec.origin, spec.path, spec.server_name, pool, spec.ca, spec.client_cert
        )
        .as_bytes(),
    );
    let client = spec.client_cert.iter().flat_map(|(c, k)| [c, k]);
    for file in spec.ca.iter().chain(client) {
        h.update(std::fs::read(file).unwrap_or_default());
    }
    h.finalize().into()
}

impl Snapshot {
    /// Reads `config/hub.toml` and the routing table it names, and builds a snapshot.
    pub fn load(hub_path: &Path, base: &Path, version: u64) -> Result<Snapshot, ConfigError> {
        Snapshot::load_after(hub_path, base, version, None)
    }

    /// Like [`Snapshot::load`], reusing `previous`'s upstream pools where nothing they depend
    /// on changed, so a reload does not drop warm connections.
    pub fn load_after(
        hub_path: &Path,
        base: &Path,
        version: u64,
        previous: Option<&Snapshot>,
    ) -> Result<Snapshot, ConfigError> {
        let config = HubConfig::load(hub_path, base)?;
        let routes = Routes::load(&config.routes, base)?;
        let mut hasher = Sha256::new();
        for path in [hub_path, config.routes.as_path()] {
            hasher.update(std::fs::read(path).unwrap_or_default());
        }
        Snapshot::build(config, routes, version, hasher, previous)
    }

    /// Builds a snapshot from validated parts; `hasher` already holds the config texts.
    pub fn build(
        config: HubConfig,
        routes: Routes,
        version: u64,
        mut hasher: Sha256,
        previous: Option<&Snapshot>,
    ) -> Result<Snapshot, ConfigError> {
        let mut errors = ConfigError::default();
        let mut problem = |p: String| errors.problems.push(p);
        let routes_name = config.routes.display().to_string();
        let mut index = IdentityIndex::default();
        let mut partners = FastMap::default();
        for partner in &routes.partners {
            for identity in &partner.identities {
                if let Some(holder) = index.insert(identity.clone(), partner.id.clone()) {
                    problem(format!(
                        "{routes_name}: partner {}: identity {identity} is already partner {holder}'s",
                        partner.id
                    ));
                }
            }
            partners.insert(partner.id.clone(), partner.clone());
        }
        let identities = Arc::new(index);
        let tls_files = &config.tls;
        let mut files: Vec<(&Path, String)> = vec![
            (&tls_files.server_cert, "tls.server_cert".into()),
            (&tls_files.server_key, "tls.server_key".into()),
            (&tls_files.client_cert, "tls.client_cert".into()),
            (&tls_files.client_key, "tls.client_key".into()),
        ];
        if tls_files.browsers_cert != tls_files.server_cert {
            files.push((&tls_files.browsers_cert, "tls.browsers_cert".into()));
            files.push((&tls_files.browsers_key, "tls.browsers_key".into()));
        }
        files.extend(
            tls_files
                .partner_ca
                .iter()
                .map(|p| (p.as_path(), "tls.partner_ca".into())),
        );
        files.extend(
            tls_files
                .crls
                .iter()
                .map(|p| (p.as_path(), "tls.crls".into())),
        );
        for partner in &routes.partners {
            let key = format!("{routes_name}: partner {}: upstream.ca", partner.id);
            files.extend(
                partner
                    .upstream
                    .ca
                    .iter()
                    .map(|p| (p.as_path(), key.clone())),
            );
        }
        for carrier in &routes.carriers {
            let key = format!("{routes_name}: carrier {}", carrier.id);
            files.extend(
                carrier
                    .ecs
                    .ca
                    .iter()
                    .map(|p| (p.as_path(), format!("{key}: ecs_ca"))),
            );
            if let Some((cert, key_file)) = &carrier.ecs.client_cert {
                files.push((cert.as_path(), format!("{key}: client_cert")));
                files.push((key_file.as_path(), format!("{key}: client_key")));
            }
        }
        let mut missing = false;
        for (file, key) in &files {
            if let Err(e) = std::fs::metadata(file) {
                missing = true;
                problem(format!("{key}: {}: {e}", file.display()));
            }
        }
        if missing {
            return Err(errors);
        }
        let server_tls = tls::server_config(
            &tls_files.server_cert,
            &tls_files.server_key,
            &tls_files.partner_ca,
            &tls_files.crls,
            identities.clone(),
        )
        .map_err(|e| problem(format!("partner listener TLS: {e}")))
        .ok();
        let browser_tls = tls::browser_config(&tls_files.browsers_cert, &tls_files.browsers_key)
            .map_err(|e| problem(format!("browser listener TLS: {e}")))
            .ok();
        let devices_tls = tls::device_server_config(&tls_files.server_cert, &tls_files.server_key)
            .map_err(|e| problem(format!("device listener TLS: {e}")))
            .ok();
        let hub_client = [
            std::fs::read(&tls_files.client_cert).unwrap_or_default(),
            std::fs::read(&tls_files.client_key).unwrap_or_default(),
        ]
        .concat();
        let mut upstreams = FastMap::default();
        let mut upstream_keys = FastMap::default();
        let pool = pool_settings(&config);
        for partner in &routes.partners {
            let pool = PoolSettings {
                idle_timeout: partner.upstream.idle.unwrap_or(pool.idle_timeout),
                ..pool
            };
            let key = upstream_key(partner, &hub_client, pool);
            let reused = previous
                .filter(|p| p.upstream_keys.get(&partner.id) == Some(&key))
                .and_then(|p| p.upstreams.get(&partner.id).cloned());
            let upstream = match reused {
                Some(u) => Ok(u),
                None => Upstream::new(
                    &partner.upstream,
                    &tls_files.client_cert,
                    &tls_files.client_key,
                    pool,
                )
                .map(Arc::new),
            };
            match upstream {
                Ok(u) => {
                    upstreams.insert(partner.id.clone(), u);
                    upstream_keys.insert(partner.id.clone(), key);
                }
                Err(e) => problem(format!(
                    "{routes_name}: partner {}: upstream: {e}",
                    partner.id
                )),
            }
        }
        let mut carriers = FastMap::default();
        for carrier in &routes.carriers {
            let key = carrier_key(carrier, pool);
            let reused = previous
                .filter(|p| p.upstream_keys.get(&carrier.id) == Some(&key))
                .and_then(|p| p.upstreams.get(&carrier.id).cloned());
            let upstream = match reused {
                Some(u) => Ok(u),
                None => Upstream::carrier(&carrier.ecs, pool).map(Arc::new),
            };
            match upstream {
                Ok(u) => {
                    upstreams.insert(carrier.id.clone(), u);
                    upstream_keys.insert(carrier.id.clone(), key);
                }
                Err(e) => problem(format!(
                    "{routes_name}: carrier {}: ECS client: {e}",
                    carrier.id
                )),
            }
            carriers.insert(carrier.id.clone(), carrier.clone());
        }
        for (file, _) in &files {
            hasher.update(std::fs::read(file).unwrap_or_default());
        }
        let (Some(server_tls), Some(browser_tls), Some(devices_tls)) =
            (server_tls, browser_tls, devices_tls)
        else {
            return Err(errors);
        };
        if !errors.problems.is_empty() {
            return Err(errors);
        }
        Ok(Snapshot {
            version,
            hash: hex::encode(hasher.finalize()),
            routes_hash: hex::encode(Sha256::digest(
                std::fs::read(&config.routes).unwrap_or_default(),
            )),
            loaded_at: SystemTime::now(),
            config,
            routes,
            partners,
            identities,
            server_tls: Arc::new(server_tls),
            browser_tls: Arc::new(browser_tls),
            devices_tls: Arc::new(devices_tls),
            carriers,
            upstreams,
            upstream_keys,
        })
    }

    /// A partner by id.
    pub fn partner(&self, id: &str) -> Option<&Arc<Partner>> {
        self.partners.get(id)
    }

    /// A partner's upstream.
    pub fn upstream(&self, id: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.get(id)
    }

    /// Every upstream (partners and carriers), by id.
    pub fn upstreams(&self) -> impl Iterator<Item = (&PartnerId, &Arc<Upstream>)> {
        self.upstreams.iter()
    }

    /// Partners added and removed between `self` and `next`.
    pub fn partner_diff(&self, next: &Snapshot) -> (Vec<String>, Vec<String>) {
        let added = next
            .partners
            .keys()
            .filter(|id| !self.partners.contains_key(*id))
            .map(|id| id.to_string())
            .collect();
        let removed = self
            .partners
            .keys()
            .filter(|id| !next.partners.contains_key(*id))
            .map(|id| id.to_string())
            .collect();
        (added, removed)
    }

    /// The in-flight cap towards a partner's or a carrier's upstream.
    pub fn max_in_flight(&self, partner: &str) -> usize {
        self.partners
            .get(partner)
            .and_then(|p| p.limits.max_in_flight)
            .or_else(|| {
                self.carriers
                    .get(partner)
                    .and_then(|c| c.limits.max_in_flight)
            })
            .unwrap_or(self.config.max_in_flight_per_upstream)
    }

    /// A TS.43 carrier by id.
    pub fn carrier(&self, id: &str) -> Option<&Arc<Carrier>> {
        self.carriers.get(id)
    }

    /// The TS.43 carrier whose base path is `path` exactly.
    pub fn carrier_at(&self, path: &str) -> Option<&Arc<Carrier>> {
        self.routes.carriers.iter().find(|c| c.base_path == path)
    }

    /// The partner a certificate belongs to under this configuration.
    pub fn identify(&self, cert: &CertIdentities) -> Option<&Arc<Partner>> {
        match self.identities.resolve(cert) {
            Resolved::Partner(id) => self.partners.get(id),
            Resolved::Unknown | Resolved::Ambiguous => None,
        }
    }
}

//! The configuration snapshot: hub settings, routing table, TLS configurations and upstream
//! pools, validated together and swapped whole.
//!
//! A request loads the current [`Snapshot`] once (one `Arc` load) and keeps it to the end, so
//! a reload never changes the rules under a request in flight. Building a snapshot does all
//! the work that can fail — reading certificates and keys, checking that identities are
//! unique — so a bad configuration is refused before it replaces a good one.

use crate::config::{ConfigError, HubConfig, Partner, PartnerId, Routes};
use crate::identity::{CertIdentities, IdentityIndex, Resolved};
use crate::tls;
use crate::upstream::Upstream;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
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
    /// When it was built.
    pub loaded_at: SystemTime,
    /// Hub settings.
    pub config: HubConfig,
    /// The routing table.
    pub routes: Routes,
    partners: HashMap<PartnerId, Arc<Partner>>,
    identities: Arc<IdentityIndex>,
    /// The partner-facing TLS configuration.
    pub server_tls: Arc<rustls::ServerConfig>,
    upstreams: HashMap<PartnerId, Arc<Upstream>>,
}

impl Snapshot {
    /// Reads `config/hub.toml` and the routing table it names, and builds a snapshot.
    pub fn load(hub_path: &Path, base: &Path, version: u64) -> Result<Snapshot, ConfigError> {
        let config = HubConfig::load(hub_path, base)?;
        let routes = Routes::load(&config.routes, base)?;
        let mut hasher = Sha256::new();
        for path in [hub_path, config.routes.as_path()] {
            hasher.update(std::fs::read(path).unwrap_or_default());
        }
        Snapshot::build(config, routes, version, hasher)
    }

    /// Builds a snapshot from validated parts; `hasher` already holds the config texts.
    pub fn build(
        config: HubConfig,
        routes: Routes,
        version: u64,
        mut hasher: Sha256,
    ) -> Result<Snapshot, ConfigError> {
        let mut errors = ConfigError::default();
        let mut problem = |p: String| errors.problems.push(p);
        let routes_name = config.routes.display().to_string();
        let mut index = IdentityIndex::default();
        let mut partners = HashMap::new();
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
        let mut upstreams = HashMap::new();
        for partner in &routes.partners {
            match Upstream::new(
                &partner.upstream,
                &tls_files.client_cert,
                &tls_files.client_key,
                config.timeouts.connect,
            ) {
                Ok(u) => {
                    upstreams.insert(partner.id.clone(), Arc::new(u));
                }
                Err(e) => problem(format!(
                    "{routes_name}: partner {}: upstream: {e}",
                    partner.id
                )),
            }
        }
        for (file, _) in &files {
            hasher.update(std::fs::read(file).unwrap_or_default());
        }
        let Some(server_tls) = server_tls else {
            return Err(errors);
        };
        if !errors.problems.is_empty() {
            return Err(errors);
        }
        Ok(Snapshot {
            version,
            hash: hex::encode(hasher.finalize()),
            loaded_at: SystemTime::now(),
            config,
            routes,
            partners,
            identities,
            server_tls: Arc::new(server_tls),
            upstreams,
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

    /// The partner a certificate belongs to under this configuration.
    pub fn identify(&self, cert: &CertIdentities) -> Option<&Arc<Partner>> {
        match self.identities.resolve(cert) {
            Resolved::Partner(id) => self.partners.get(id),
            Resolved::Unknown | Resolved::Ambiguous => None,
        }
    }
}

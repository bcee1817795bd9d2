//! Starting and stopping a whole hub: load and validate the configuration (creating the
//! development PKI first when the config asks for it), open the ledger, bind the listeners,
//! start the background tasks, and drain on shutdown. `aidhub serve`, the demo and the
//! integration tests all start the hub through [`start`].

use crate::aid1::exchange::Aid1Hub;
use crate::aid1::Role;
use crate::client::{Caller, HubClient, Version};
use crate::config::{HubConfig, Routes};
use crate::hub::{Hub, Source};
use crate::pki;
use crate::sim::{AsyncDelivery, Side, SimPartner};
use crate::snapshot::Snapshot;
use crate::ts43::exchange::Ts43Hub;
use crate::ts43::Ts43State;
use crate::workers::Workers;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// `config/hub.toml`.
    pub hub_toml: PathBuf,
    /// Base directory for relative paths.
    pub base: PathBuf,
    /// Override of the partner listener address (tests bind port 0).
    pub partners_addr: Option<SocketAddr>,
    /// Override of the admin listener address (tests bind port 0).
    pub admin_addr: Option<SocketAddr>,
    /// Override of the browser listener address (tests bind port 0); `None` uses
    /// `listen.browsers`, and without that no browser listener is started.
    pub browsers_addr: Option<SocketAddr>,
    /// Override of the device (TS.43) listener address; it runs when this or
    /// `listen.devices` is set.
    pub devices_addr: Option<SocketAddr>,
    /// How long open requests may take to finish on shutdown.
    pub grace: Duration,
}

/// A running hub.
pub struct Running {
    /// The partner listener's bound address.
    pub partners_addr: SocketAddr,
    /// The admin listener's bound address.
    pub admin_addr: SocketAddr,
    /// The browser listener's bound address (touchpoint redirects), when one runs.
    pub browsers_addr: Option<SocketAddr>,
    /// The device-facing TS.43 listener's bound address, when it runs.
    pub devices_addr: Option<SocketAddr>,
    /// The shared state (snapshot, ledger).
    pub hub: Hub,
    /// Simulated partners started by `[dev] simulate_partners`.
    pub simulated: Vec<(String, SimPartner)>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    workers: Workers,
}

/// Creates the development PKI if `dev_pki` is set and the hub's files are missing.
pub fn ensure_dev_pki(
    config: &HubConfig,
    routes_text: Option<&Routes>,
    progress: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let Some(dir) = &config.tls.dev_pki else {
        return Ok(());
    };
    let ids: Vec<String> = routes_text
        .map(|r| r.partners.iter().map(|p| p.id.to_string()).collect())
        .unwrap_or_default();
    let hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let partners: Vec<pki::PartnerCerts<'_>> = ids
        .iter()
        .map(|id| pki::PartnerCerts { id, hosts: &hosts })
        .collect();
    let mut hub_hosts = hosts.clone();
    hub_hosts.extend(config.tls.dev_hosts.iter().cloned());
    let request = pki::PkiRequest {
        dir,
        hub_hosts: &hub_hosts,
        partners: &partners,
        days: 825,
    };
    pki::ensure(&request, progress)
        .map(|_| ())
        .map_err(|e| format!("development PKI: {e}"))
}

/// Loads everything and starts serving.
pub async fn start(options: Options) -> Result<Running, String> {
    let config = HubConfig::load(&options.hub_toml, &options.base).map_err(|e| e.to_string())?;
    if config.tls.dev_pki.is_some() {
        // Partner ids come from the routing table; problems in it are reported by the load below.
        let routes = Routes::load(&config.routes, &options.base).ok();
        ensure_dev_pki(&config, routes.as_ref(), &mut |line| {
            tracing::info!("{line}")
        })?;
    }
    let snapshot =
        Snapshot::load(&options.hub_toml, &options.base, 1).map_err(|e| e.to_string())?;
    let (ledger, transfers) = crate::ledger::open(&snapshot.config.ledger).await?;
    let addr = options
        .partners_addr
        .unwrap_or(snapshot.config.partners_addr);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let partners_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let admin_bind = options.admin_addr.unwrap_or(snapshot.config.admin.addr);
    let admin = TcpListener::bind(admin_bind)
        .await
        .map_err(|e| format!("cannot listen on {admin_bind} (admin): {e}"))?;
    let admin_addr = admin.local_addr().map_err(|e| e.to_string())?;
    let browsers = match options.browsers_addr.or(snapshot.config.browsers_addr) {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} (browsers): {e}"))?,
        ),
        None => None,
    };
    let browsers_addr = match &browsers {
        Some(listener) => Some(listener.local_addr().map_err(|e| e.to_string())?),
        None => None,
    };
    let devices = match options.devices_addr.or(snapshot.config.devices_addr) {
        Some(bind) => Some(
            TcpListener::bind(bind)
                .await
                .map_err(|e| format!("cannot listen on {bind} (devices): {e}"))?,
        ),
        None => None,
    };
    let devices_addr = match &devices {
        Some(l) => Some(l.local_addr().map_err(|e| e.to_string())?),
        None => None,
    };
    let hub = Hub::new(
        snapshot,
        ledger.clone(),
        Ts43State::new(transfers),
        Source {
            hub_toml: options.hub_toml.clone(),
            base: options.base.clone(),
        },
    );
    let simulated = if hub.snapshot().config.simulate_partners {
        simulate_partners(&hub.snapshot(), partners_addr).await?
    } else {
        Vec::new()
    };
    let (shutdown, watch) = watch::channel(false);
    let protocol = Arc::new(Aid1Hub::new(ledger));
    let workers = Workers::start(hub.snapshot().config.serving_threads)
        .map_err(|e| format!("cannot start the serving threads: {e}"))?;
    let accept = |listener| crate::server::Accept {
        listener,
        workers: workers.clone(),
        shutdown: watch.clone(),
        grace: options.grace,
    };
    let mut tasks = vec![
        tokio::spawn(crate::server::partner_listener(
            accept(listener),
            hub.clone(),
            protocol,
        )),
        tokio::spawn(crate::aid1::lifecycle::sweeper(hub.clone(), watch.clone())),
        tokio::spawn(crate::admin::listener(admin, hub.clone(), watch.clone())),
        tokio::spawn(crate::ts43::exchange::sweeper(hub.clone(), watch.clone())),
        tokio::spawn(crate::watch::watcher(hub.clone(), watch.clone())),
        tokio::spawn(crate::upstream::pruner(hub.clone(), watch.clone())),
    ];
    if let Some(listener) = browsers {
        tasks.push(tokio::spawn(crate::server::browser_listener(
            accept(listener),
            hub.clone(),
        )));
    }
    if let Some(devices) = devices {
        tasks.push(tokio::spawn(crate::server::device_listener(
            accept(devices),
            hub.clone(),
            Arc::new(Ts43Hub),
        )));
    }
    Ok(Running {
        partners_addr,
        admin_addr,
        browsers_addr,
        devices_addr,
        hub,
        simulated,
        shutdown,
        tasks,
        workers,
    })
}

/// Starts a simulated partner on every loopback upstream, with the development PKI's
/// certificates; simulated MSPs deliver async activation codes back through the hub.
async fn simulate_partners(
    snap: &Snapshot,
    hub_addr: SocketAddr,
) -> Result<Vec<(String, SimPartner)>, String> {
    let Some(dir) = &snap.config.tls.dev_pki else {
        return Err("[dev] simulate_partners needs tls.dev_pki (the simulated partners use its certificates)".into());
    };
    let mut started = Vec::new();
    for partner in &snap.routes.partners {
        let Some(authority) = partner.upstream.origin.authority() else {
            continue;
        };
        let loopback = matches!(authority.host(), "127.0.0.1" | "localhost" | "[::1]");
        let Ok(addr) = format!(
            "{}:{}",
            authority.host().replace("localhost", "127.0.0.1"),
            authority.port_u16().unwrap_or(443)
        )
        .parse::<SocketAddr>() else {
            continue;
        };
        if !loopback {
            continue;
        }
        let side = match partner.role {
            Role::Msp => Side::Msp,
            Role::Cmp => Side::Cmp,
        };
        let (cert, key) = pki::partner_server(dir, &partner.id);
        let sim = SimPartner::start(side, addr, &cert, &key, &pki::ca_cert(dir)).await?;
        if side == Side::Msp {
            let (client_cert, client_key) = pki::partner_client(dir, &partner.id);
            let hub = HubClient::new(
                &format!("https://localhost:{}", hub_addr.port()),
                &pki::ca_cert(dir),
                &client_cert,
                &client_key,
                Version::Http1,
            )?;
            sim.deliver_async_with(AsyncDelivery {
                hub,
                caller: Caller::for_partner(partner),
                after: Duration::from_millis(200),
            });
        }
        tracing::info!(partner = %partner.id, %addr, "simulated partner started");
        started.push((partner.id.to_string(), sim));
    }
    Ok(started)
}

impl Running {
    /// Stops accepting, lets requests in flight finish within the grace period, flushes the
    /// ledger.
    pub async fn shutdown(self) -> Result<(), String> {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.workers.stop().await;
        self.hub
            .ledger()
            .flush()
            .await
            .map_err(|e| format!("ledger flush: {e}"))
    }
}

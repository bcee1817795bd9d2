//! The bench's world: one temporary directory with the stage's PKI, partner directory and
//! hub configuration on free loopback ports, the simulated partners in their own child
//! process (`aidhub simulate`), and the servers under test started on demand — a fresh
//! `aidhub serve` (with a fresh ledger) or nginx for each measurement.

use super::child::{free_port, ChildProc};
use super::{nginx, Setup};
use crate::config::{Partner, Routes};
use crate::stage;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long a child may take to start listening.
const START_WITHIN: Duration = Duration::from_secs(20);

/// Everything shared by all measurements of one bench.
pub struct World {
    /// The temporary directory (removed on drop, after the children are stopped).
    pub dir: tempfile::TempDir,
    /// The PKI directory.
    pub certs: PathBuf,
    /// The partner directory as the hub reads it.
    pub routes: Routes,
    /// The simulated partners' listeners, by partner id.
    pub partner_addrs: BTreeMap<String, SocketAddr>,
    /// The simulated partners' process.
    pub sims: ChildProc,
    /// This binary, started again as `aidhub serve` and `aidhub simulate`.
    pub exe: PathBuf,
    /// The nginx binary, when nginx is among the setups.
    pub nginx: Option<PathBuf>,
    /// Where the hubs' ledgers go, when not in `dir` (removed on drop).
    ledgers: Option<tempfile::TempDir>,
    /// Serving threads of the hub, worker processes of nginx.
    pub threads: usize,
}

/// A server under test, stopped when dropped.
pub struct Server {
    /// Where the load generator connects (`None`: directly to the partners).
    pub addr: Option<SocketAddr>,
    /// Its process (`None` for the direct setup).
    pub process: Option<ChildProc>,
    /// The hub's admin listener (`None` for the other setups).
    pub admin: Option<SocketAddr>,
}

impl World {
    /// Writes the PKI and configuration and starts the simulated partners.
    /// `ledger_dir` puts the hubs' ledgers in a temporary directory there (another file
    /// system, e.g. tmpfs, to tell disk latency from the hub's own cost).
    pub async fn create(
        nginx: Option<PathBuf>,
        ledger_dir: Option<&Path>,
        threads: usize,
    ) -> Result<World, String> {
        let dir = tempfile::Builder::new()
            .prefix("aidhub-bench-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let ledgers = match ledger_dir {
            Some(parent) => Some(
                tempfile::Builder::new()
                    .prefix("aidhub-bench-ledgers-")
                    .tempdir_in(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?,
            ),
            None => None,
        };
        let certs = stage::certs(dir.path());
        stage::ensure_pki(&certs)?;
        std::fs::create_dir_all(dir.path().join("logs")).map_err(|e| e.to_string())?;
        let mut ports = BTreeMap::new();
        for (id, _) in stage::PARTNERS {
            ports.insert(id.to_string(), free_port()?);
        }
        let routes_toml = dir.path().join("routes.toml");
        std::fs::write(&routes_toml, stage::routes_toml_for_ports(&ports))
            .map_err(|e| format!("{}: {e}", routes_toml.display()))?;
        let routes = Routes::load(&routes_toml, dir.path()).map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().map_err(|e| format!("cannot find aidhub itself: {e}"))?;
        let mut command = ChildProc::command(&exe);
        command.current_dir(dir.path()).args([
            "simulate",
            "--routes",
            "routes.toml",
            "--certs",
            "certs",
        ]);
        let mut sims = ChildProc::spawn(
            "the simulated partners",
            command,
            &dir.path().join("logs/simulate.log"),
        )?;
        let partner_addrs: BTreeMap<String, SocketAddr> = ports
            .into_iter()
            .map(|(id, port)| (id, SocketAddr::from(([127, 0, 0, 1], port))))
            .collect();
        let addrs: Vec<SocketAddr> = partner_addrs.values().copied().collect();
        sims.wait_for_ports(&addrs, START_WITHIN).await?;
        Ok(World {
            dir,
            certs,
            routes,
            partner_addrs,
            sims,
            exe,
            nginx,
            ledgers,
            threads,
        })
    }

    /// A partner of the directory.
    pub fn partner(&self, id: &str) -> Result<&Arc<Partner>, String> {
        self.routes
            .partners
            .iter()
            .find(|p| p.id.as_ref() == id)
            .ok_or_else(|| format!("no partner {id} in routes.toml"))
    }

    /// Starts the server of `setup`; `tag` names its files (one per measurement).
    pub async fn start(&self, setup: Setup, tag: &str, h2: bool) -> Result<Server, String> {
        match setup {
            Setup::Direct => Ok(Server {
                addr: None,
                process: None,
                admin: None,
            }),
            Setup::Aidhub => self.start_hub(tag).await,
            Setup::Nginx => {
                let binary = self.nginx.as_deref().ok_or("nginx is not available")?;
                let port = free_port()?;
                let dir = self.dir.path().join(format!("nginx-{tag}"));
                let mut process = nginx::start(binary, self, &dir, port, h2)?;
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                process.wait_for_ports(&[addr], START_WITHIN).await?;
                Ok(Server {
                    addr: Some(addr),
                    process: Some(process),
                    admin: None,
                })
            }
        }
    }

    async fn start_hub(&self, tag: &str) -> Result<Server, String> {
        let port = free_port()?;
        let admin = free_port()?;
        let hub_toml = self.dir.path().join(format!("hub-{tag}.toml"));
        let ledger = match &self.ledgers {
            Some(dir) => dir.path().join(format!("ledger-{tag}")),
            None => PathBuf::from(format!("ledger-{tag}")),
        };
        // A TOML literal string: no escapes, so any path without a quote fits.
        let text = stage::HUB_TOML.replace(
            "path = \"ledger\"",
            &format!("path = '{}'", ledger.display()),
        ) + &format!(
            "[listen]\npartners = \"127.0.0.1:{port}\"\nthreads = {}\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n",
            self.threads
        );
        std::fs::write(&hub_toml, text).map_err(|e| format!("{}: {e}", hub_toml.display()))?;
        let mut command = ChildProc::command(&self.exe);
        command.current_dir(self.dir.path()).args([
            "serve",
            "--grace-secs",
            "1",
            "--config",
            &hub_toml.display().to_string(),
        ]);
        let log = self.dir.path().join(format!("logs/hub-{tag}.log"));
        let mut process = ChildProc::spawn("aidhub serve", command, &log)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        process.wait_for_ports(&[addr], START_WITHIN).await?;
        Ok(Server {
            addr: Some(addr),
            process: Some(process),
            admin: Some(SocketAddr::from(([127, 0, 0, 1], admin))),
        })
    }

    /// The process whose cost a setup measures: the server, or for the direct setup the
    /// simulated partners themselves (the floor).
    pub fn measured_pid(&self, server: &Server) -> u32 {
        server
            .process
            .as_ref()
            .map_or(self.sims.pid(), ChildProc::pid)
    }

    /// The directory of the bench.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Server {
    /// Fails when the server process has died.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match &mut self.process {
            Some(p) => p.check_alive(),
            None => Ok(()),
        }
    }
}

//! The bench's world: one temporary directory with the stage's PKI, partner directory and
//! hub configuration on free loopback ports, the simulated partners in their own child
//! process (`aidhub simulate`), and the servers under test started on demand — a fresh
//! `aidhub serve` (with a fresh ledger) or nginx for each measurement.

use super::callgrind::Callgrind;
use super::child::ChildProc;
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
/// The same for the hub or nginx under callgrind, which loads and instruments it first.
const START_UNDER_CALLGRIND: Duration = Duration::from_secs(120);

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
    /// valgrind, when the hub runs under callgrind (`--callgrind`).
    pub callgrind: Option<Callgrind>,
    /// Where the hubs' ledgers go, when not in `dir` (removed on drop).
    ledgers: Option<tempfile::TempDir>,
    /// Serving threads of the hub, worker processes of nginx.
    pub threads: usize,
}

/// How the bench's temporary directories are named (the ledgers' too, `<prefix>ledgers-`).
const DIR_PREFIX: &str = "aidhub-bench-";
/// The file in each of them that names the bench process that made it.
const OWNER_FILE: &str = "bench.pid";

/// Records this process as the owner of `dir`.
fn mark_owner(dir: &Path) -> Result<(), String> {
    let file = dir.join(OWNER_FILE);
    std::fs::write(&file, std::process::id().to_string())
        .map_err(|e| format!("{}: {e}", file.display()))
}

/// Removes the directories in `parent` that a bench made and left behind when it was killed
/// (SIGKILL runs no cleanup): those whose owner process is gone. A directory without an owner
/// file, or whose owner still runs, is left alone.
fn sweep_abandoned(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let named = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(DIR_PREFIX));
        if !named || !path.is_dir() {
            continue;
        }
        let Some(owner) = std::fs::read_to_string(path.join(OWNER_FILE))
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
        else {
            continue;
        };
        if super::procfs::alive(owner) {
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => println!(
                "   removed {}, left by a bench (process {owner}) that was killed",
                path.display()
            ),
            Err(e) => eprintln!(
                "   cannot remove {}, left by a killed bench: {e}",
                path.display()
            ),
        }
    }
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
        callgrind: Option<Callgrind>,
        ledger_dir: Option<&Path>,
        threads: usize,
    ) -> Result<World, String> {
        let temp = std::env::temp_dir();
        sweep_abandoned(&temp);
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        mark_owner(dir.path())?;
        let ledgers = match ledger_dir {
            Some(parent) => {
                if parent != temp {
                    sweep_abandoned(parent);
                }
                let ledgers = tempfile::Builder::new()
                    .prefix(&format!("{DIR_PREFIX}ledgers-"))
                    .tempdir_in(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
                mark_owner(ledgers.path())?;
                Some(ledgers)
            }
            None => None,
        };
        let certs = stage::certs(dir.path());
        stage::ensure_pki(&certs)?;
        std::fs::create_dir_all(dir.path().join("logs")).map_err(|e| e.to_string())?;
        let mut ports = BTreeMap::new();
        for (id, _) in stage::PARTNERS {
            ports.insert(id.to_string(), stage::free_port()?);
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
            callgrind,
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
                let port = stage::free_port()?;
                let dir = self.dir.path().join(format!("nginx-{tag}"));
                let under = self
                    .callgrind
                    .as_ref()
                    .map(|c| (c, Self::profile(Setup::Nginx, tag)));
                let within = if under.is_some() {
                    START_UNDER_CALLGRIND
                } else {
                    START_WITHIN
                };
                let mut process = nginx::start(binary, self, &dir, port, h2, under)?;
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                process.wait_for_ports(&[addr], within).await?;
                Ok(Server {
                    addr: Some(addr),
                    process: Some(process),
                    admin: None,
                })
            }
        }
    }

    async fn start_hub(&self, tag: &str) -> Result<Server, String> {
        let port = stage::free_port()?;
        let admin = stage::free_port()?;
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
        let (mut command, within) = match &self.callgrind {
            Some(callgrind) => (
                callgrind.command(&self.exe, &Self::profile(Setup::Aidhub, tag)),
                START_UNDER_CALLGRIND,
            ),
            None => (ChildProc::command(&self.exe), START_WITHIN),
        };
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
        process.wait_for_ports(&[addr], within).await?;
        Ok(Server {
            addr: Some(addr),
            process: Some(process),
            admin: Some(SocketAddr::from(([127, 0, 0, 1], admin))),
        })
    }

    /// The name of the callgrind profile of `setup`'s server started for `tag`
    /// (`callgrind.out.<name>`).
    pub fn profile(setup: Setup, tag: &str) -> String {
        format!("{}-{tag}", setup.name())
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
    /// `error`, seen by the load generator, with what became of the server process (none
    /// for the direct setup): a server that crashed or refused shows why in its log.
    pub fn explain(&mut self, error: String) -> String {
        match &mut self.process {
            Some(process) => format!("{error}\n   {}", process.report()),
            None => error,
        }
    }

    /// Fails when the server process has died.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match &mut self.process {
            Some(p) => p.check_alive(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directories_of_benches_that_are_gone_are_swept() {
        let parent = tempfile::tempdir().unwrap();
        let make = |name: &str, owner: Option<u32>| {
            let dir = parent.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            if let Some(pid) = owner {
                std::fs::write(dir.join(OWNER_FILE), pid.to_string()).unwrap();
            }
            dir
        };
        // A process that has exited and been reaped: its pid names no process.
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let gone_pid = gone.id();
        gone.wait().unwrap();

        let abandoned = make("aidhub-bench-abandoned", Some(gone_pid));
        let ledgers = make("aidhub-bench-ledgers-abandoned", Some(gone_pid));
        let running = make("aidhub-bench-running", Some(std::process::id()));
        let unowned = make("aidhub-bench-unowned", None);
        let other = make("someone-else", Some(gone_pid));

        sweep_abandoned(parent.path());
        assert!(!abandoned.exists());
        assert!(!ledgers.exists());
        assert!(running.is_dir(), "its bench still runs");
        assert!(unowned.is_dir(), "no owner file: not known to be a bench's");
        assert!(other.is_dir(), "not a bench's name");
    }
}

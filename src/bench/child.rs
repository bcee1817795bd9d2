//! Child processes of a bench (the simulated partners, a hub, nginx): started with their
//! output in a log file, waited for until their port answers, and always stopped — a
//! [`ChildProc`] ends its process (and every process below it) when dropped, so an error, a
//! panic or Ctrl-C leaves nothing running. A bench killed outright (SIGKILL, the OOM killer)
//! runs no drop; its children then get SIGTERM from the kernel as their parent dies
//! ([`ChildProc::command`]).

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a child gets to exit on SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// A running child process that is stopped when dropped.
pub struct ChildProc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ChildProc {
    /// A command that runs `program` with SIGTERM as its parent-death signal, by util-linux's
    /// `setpriv --pdeathsig TERM`, which sets it and then execs `program` in the same process
    /// (the crate forbids `unsafe`, so no `prctl` of its own). The kernel sends the signal
    /// when the thread that started the child ends: the bench starts its children from the
    /// future the main thread's `block_on` runs (no `spawn_blocking`), on threads that live
    /// as long as the bench (the main thread, the runtime's workers). Without `setpriv` the
    /// command is plain and only a bench that ends normally stops its children.
    pub fn command(program: impl AsRef<OsStr>) -> Command {
        match setpriv() {
            Some(setpriv) => {
                let mut command = Command::new(setpriv);
                command.args(["--pdeathsig", "TERM", "--"]).arg(program);
                command
            }
            None => Command::new(program),
        }
    }

    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<ChildProc, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(ChildProc {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What became of the child, for an error its counterpart saw (a connection reset, say):
    /// whether it still runs or how it exited, and the end of its log.
    pub fn report(&mut self) -> String {
        let state = match self.child.try_wait() {
            Ok(None) => "still runs".to_owned(),
            Ok(Some(status)) => format!("exited ({status})"),
            Err(e) => format!("cannot be waited for: {e}"),
        };
        format!(
            "{} {state}; the end of {}:\n{}",
            self.name,
            self.log.display(),
            tail(&self.log)
        )
    }

    /// An error naming the exit status and the end of the log, if the child has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            // `report` reads the same status again: the child keeps it once reaped.
            Ok(Some(_)) => Err(self.report()),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    /// Waits until every address accepts TCP connections, or the child dies, or `within`
    /// passes.
    pub async fn wait_for_ports(
        &mut self,
        addrs: &[SocketAddr],
        within: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + within;
        for addr in addrs {
            loop {
                self.check_alive()?;
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "{} did not listen on {addr} within {} s; the end of {}:\n{}",
                        self.name,
                        within.as_secs(),
                        self.log.display(),
                        tail(&self.log)
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        // Children of the child (nginx's workers) are collected first: once their parent is
        // gone they are no longer below our child.
        let family = super::procfs::tree(self.child.id());
        signal("-TERM", self.child.id());
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in family.into_iter().skip(1) {
            if super::procfs::alive(pid) {
                signal("-KILL", pid);
            }
        }
    }
}

/// Sends a signal by process id with the `kill` command (the crate forbids `unsafe`, so no
/// libc call).
fn signal(which: &str, pid: u32) {
    succeeds(Path::new("kill"), &[which, &pid.to_string()]);
}

/// Runs `program` with `args`, its output discarded; true when it ran and exited 0.
pub fn succeeds(program: &Path, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The program `name` in a directory of `PATH` or, failing that, of `also` (directories a
/// non-login shell's `PATH` may lack).
pub fn which(name: &str, also: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(also.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|file| file.is_file())
}

/// util-linux's `setpriv`, if installed and it knows `--pdeathsig` (util-linux 2.33 on).
pub fn setpriv() -> Option<&'static Path> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let setpriv = which("setpriv", &["/usr/bin", "/bin"])?;
            let works = succeeds(&setpriv, &["--pdeathsig", "TERM", "--", "true"]);
            works.then_some(setpriv)
        })
        .as_deref()
}

/// The last lines of a log file.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_says_whether_the_child_runs_or_how_it_exited_and_shows_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("child.log");
        let mut command = Command::new("sh");
        command.args(["-c", "echo about to fail >&2; exit 3"]);
        let mut failing = ChildProc::spawn("failing", command, &log).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while failing.check_alive().is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let report = failing.report();
        assert!(
            report.starts_with("failing exited (exit status: 3)"),
            "{report}"
        );
        assert!(report.ends_with("about to fail"), "{report}");

        let mut command = Command::new("sleep");
        command.arg("10");
        let mut running = ChildProc::spawn("sleeper", command, &dir.path().join("s.log")).unwrap();
        let report = running.report();
        assert!(
            report.starts_with("sleeper still runs; the end of "),
            "{report}"
        );
    }
}

//! `--callgrind`: the hub, and nginx beside it, under valgrind's callgrind, and the
//! instructions each executes per request in the measured window. Wall-clock figures on these
//! shared VMs move by 10–30% from run to run; an instruction count of the same build and load
//! moved by 0.7% over three runs with [`DEFAULT_CONNECTIONS`] (3% with 64 connections, whose
//! windows hold more upstream handshakes), so it shows a change of a few per cent in the hub's
//! own code. It counts user space only: the kernel's share of a request (the socket calls,
//! the journal's sync) is not in it.
//!
//! The counters are zeroed as the window opens and dumped as it closes (`callgrind_control`),
//! so start-up, onboarding and the lanes' handshakes are left out. The dump stays in the
//! current directory for `callgrind_annotate`; [`by_crate`] says which crates' code (for
//! nginx, which libraries) its instructions ran. With `--cache-sim` callgrind also simulates
//! the caches, and the window's cache misses ([`Misses`]) are read from the same dump.
//!
//! nginx runs as one process there (`master_process off`): valgrind follows a fork, but its
//! control channel, which `callgrind_control` talks to, is the first process's alone (valgrind
//! 3.19), so the workers a master forks could be neither zeroed nor dumped. One process does
//! a worker's whole job, and valgrind runs one thread at a time anyway.

mod by_crate;

pub use by_crate::{by_crate, describe, ByCrate};

use super::child::{which, ChildProc};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The fixed rate of a callgrind run when `--rate` is not given: the hub runs some fifty
/// times slower under callgrind, and a closed loop would measure valgrind.
pub const DEFAULT_RATE: f64 = 100.0;

/// The load generator's connections in a callgrind run when `--connections` is not given:
/// few lanes keep the hub's upstream pools from growing in the window whenever valgrind
/// stalls it (a new upstream connection costs a full handshake, about a million
/// instructions, and how many the hub opens varies from run to run).
pub const DEFAULT_CONNECTIONS: usize = 8;

/// valgrind and its `callgrind_control`, as installed.
#[derive(Debug, Clone)]
pub struct Callgrind {
    valgrind: PathBuf,
    control: PathBuf,
    /// Where the dumps go (the directory the bench was started in).
    out_dir: PathBuf,
    /// Simulate the caches too (`--cache-sim`).
    cache_sim: bool,
}

impl Callgrind {
    /// Finds valgrind; the error says how to install it.
    pub fn find() -> Result<Callgrind, String> {
        let missing = || {
            "--callgrind needs valgrind (Debian: `apt-get install valgrind`), not found on PATH"
                .to_owned()
        };
        let valgrind = which("valgrind", &["/usr/bin"]).ok_or_else(missing)?;
        let control = which("callgrind_control", &["/usr/bin"]).ok_or_else(missing)?;
        let out_dir = std::env::current_dir().map_err(|e| format!("current directory: {e}"))?;
        Ok(Callgrind {
            valgrind,
            control,
            out_dir,
            cache_sim: false,
        })
    }

    /// The same, simulating the caches when `on`: callgrind then also counts each
    /// instruction's data reads and writes and the misses of a first-level and a last-level
    /// cache shaped like the host's (valgrind reads their sizes from CPUID), and runs about
    /// twice as slowly (1.9–2.4 times the CPU per request on VM 55).
    pub fn simulating_caches(self, on: bool) -> Callgrind {
        Callgrind {
            cache_sim: on,
            ..self
        }
    }

    /// The file a server started as `name` (its setup's and its measurement's: `aidhub-<tag>`,
    /// `nginx-<tag>`) writes its profile to.
    pub fn out_file(&self, name: &str) -> PathBuf {
        self.out_dir.join(format!("callgrind.out.{name}"))
    }

    /// The command that runs `exe` under callgrind, writing to [`Callgrind::out_file`] of
    /// `name` (a [`ChildProc::command`]: stopped with the bench); the caller adds `exe`'s
    /// arguments.
    pub fn command(&self, exe: &Path, name: &str) -> Command {
        let mut args = vec![
            "--tool=callgrind".to_owned(),
            // valgrind runs one thread at a time. With its default lock, a thread that spins
            // on an atomic can keep the lock while the thread it waits for never runs: sled's
            // lazy thread pool does that at start-up, and on VM 13 the debug build never
            // listened (it sat in `pthread_create` under a spinning pool thread). The fair
            // lock hands the threads their turns in order.
            "--fair-sched=yes".to_owned(),
            format!("--callgrind-out-file={}", self.out_file(name).display()),
        ];
        if self.cache_sim {
            args.push("--cache-sim=yes".to_owned());
        }
        args.push(exe.display().to_string());
        let mut command = ChildProc::command(&self.valgrind);
        command.args(args);
        command
    }

    /// Zeroes the counters of `pid`, started as `name`, at `from` and dumps them at `end`; the
    /// dump's instruction total, or why there is none.
    pub async fn window(&self, pid: u32, name: &str, from: Instant, end: Instant) -> Counted {
        tokio::time::sleep_until(from.into()).await;
        if let Err(e) = self.control("-z", pid).await {
            return Counted::Failed(e);
        }
        tokio::time::sleep_until(end.into()).await;
        if let Err(e) = self.control("-d", pid).await {
            return Counted::Failed(e);
        }
        // The first dump of a process is `<out file>.1`.
        let dump = PathBuf::from(format!("{}.1", self.out_file(name).display()));
        let text = match std::fs::read_to_string(&dump) {
            Ok(text) => text,
            Err(e) => return Counted::Failed(format!("{}: {e}", dump.display())),
        };
        match parse_summary(&text) {
            Some(instructions) => Counted::Instructions {
                instructions,
                misses: parse_misses(&text),
                dump,
            },
            None => Counted::Failed(format!("{}: no `summary:` line", dump.display())),
        }
    }

    async fn control(&self, action: &str, pid: u32) -> Result<(), String> {
        let mut command = tokio::process::Command::new(&self.control);
        command
            .arg(action)
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let out = command
            .output()
            .await
            .map_err(|e| format!("{}: {e}", self.control.display()))?;
        let said = String::from_utf8_lossy(&out.stderr);
        if !failed(out.status.success(), &said) {
            Ok(())
        } else {
            Err(format!(
                "callgrind_control {action} {pid} failed ({}): {}",
                out.status,
                said.trim()
            ))
        }
    }

    /// valgrind's version line, for the report.
    pub fn version(&self) -> String {
        Command::new(&self.valgrind)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "valgrind (version unknown)".to_owned())
    }
}

/// Whether a `callgrind_control` run failed: it exits 0 when it finds no callgrind process of
/// the pid given (a worker nginx forked, say), and says so on stderr.
fn failed(success: bool, stderr: &str) -> bool {
    !success || stderr.contains("Error:")
}

/// What the window's dump counted.
#[derive(Debug, Clone)]
pub enum Counted {
    /// What the window's dump holds.
    Instructions {
        /// Instructions the server executed in the window, all threads.
        instructions: u64,
        /// With the caches simulated, their misses in the window.
        misses: Option<Misses>,
        /// The dump file.
        dump: PathBuf,
    },
    /// Why nothing was counted.
    Failed(String),
}

/// The `summary:` line of a callgrind dump: the total of its one event, instructions.
pub fn summary(dump: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(dump).map_err(|e| format!("{}: {e}", dump.display()))?;
    parse_summary(&text).ok_or_else(|| format!("{}: no `summary:` line", dump.display()))
}

/// A dump's cache figures, with the caches simulated (`--cache-sim=yes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Misses {
    /// Data reads and writes (`Dr` + `Dw`).
    pub data: u64,
    /// First-level data-cache misses, reads and writes (`D1mr` + `D1mw`).
    pub first: u64,
    /// Last-level cache misses of data, reads and writes (`DLmr` + `DLmw`): what went to
    /// memory.
    pub last: u64,
    /// First-level instruction-cache misses (`I1mr`): code fetched from the next level. A
    /// program whose request path runs through much code misses here even when each
    /// function's data stays in the cache.
    pub code: u64,
}

/// The cache figures of a dump's `events:` and `summary:` lines; `None` when the caches
/// were not simulated.
fn parse_misses(text: &str) -> Option<Misses> {
    let names: Vec<&str> = text
        .lines()
        .find_map(|line| line.strip_prefix("events:"))?
        .split_whitespace()
        .collect();
    let values: Vec<u64> = text
        .lines()
        .find_map(|line| line.strip_prefix("summary:"))?
        .split_whitespace()
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    // callgrind leaves a line's trailing zero counts out (`summary: 1000 300 100` when
    // nothing missed): an event named but not given is zero.
    let sum = |wanted: &[&str]| -> Option<u64> {
        wanted
            .iter()
            .map(|w| {
                names
                    .iter()
                    .position(|n| n == w)
                    .map(|i| values.get(i).copied().unwrap_or(0))
            })
            .sum::<Option<u64>>()
    };
    Some(Misses {
        data: sum(&["Dr", "Dw"])?,
        first: sum(&["D1mr", "D1mw"])?,
        last: sum(&["DLmr", "DLmw"])?,
        code: sum(&["I1mr"])?,
    })
}

fn parse_summary(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("summary:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_summary_line() {
        let dump =
            "# callgrind format\nversion: 1\nevents: Ir\nsummary: 380710927\n\nfn=(1) main\n3 4\n";
        assert_eq!(parse_summary(dump), Some(380_710_927));
        assert_eq!(parse_summary("events: Ir\n"), None);
        assert_eq!(parse_summary("summary: lots\n"), None);
    }

    #[test]
    fn reads_the_data_cache_misses_when_the_caches_were_simulated() {
        // The header of a dump of valgrind 3.19's `--cache-sim=yes`.
        let dump = "events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\n\
                    summary: 1000 300 100 7 20 10 5 3 1\n";
        assert_eq!(parse_summary(dump), Some(1000));
        assert_eq!(
            parse_misses(dump),
            Some(Misses {
                data: 400,
                first: 30,
                last: 4,
                code: 7
            })
        );
        assert_eq!(parse_misses("events: Ir\nsummary: 1000\n"), None);
        // Trailing zeros left out, as callgrind writes them: a short window of nginx's in a
        // CI run missed no last-level line by writing, and its summary ended early.
        assert_eq!(
            parse_misses("events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\nsummary: 9 5 2 0 1\n"),
            Some(Misses {
                data: 7,
                first: 1,
                last: 0,
                code: 0
            })
        );
    }

    #[test]
    fn a_control_run_that_finds_no_such_process_failed_though_it_exits_0() {
        // valgrind 3.19's callgrind_control, given the pid of a process valgrind follows
        // after a fork.
        let said = "Error: Callgrind task with PID/name '17136' not detected.\n\
                    See '/usr/bin/callgrind_control -h' for help.\n";
        assert!(failed(true, said));
        assert!(failed(false, ""));
        assert!(!failed(true, ""));
    }
}

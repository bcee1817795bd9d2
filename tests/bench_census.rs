//! The bench names the other processes that used the machine during a window: a busy
//! process beside a real `aidhub bench --smoke` run shows on the run's line, by its command
//! name, and the bench's own processes never do. A test binary of its own, so that no other
//! bench test runs beside it and crowds the names.

mod support;
use support::wait_exit;

use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_aidhub");

/// Far above the few seconds a one-setup smoke run takes; only a hang gets here.
const WITHIN: Duration = Duration::from_secs(120);

/// A shell loop under a name of its own (a process's command name is the name it was
/// started by, here a link to `sh`), killed when dropped.
struct Neighbour(std::process::Child);

impl Neighbour {
    fn start(dir: &std::path::Path) -> Neighbour {
        let link = dir.join("busy-neighbour");
        std::os::unix::fs::symlink("/bin/sh", &link).expect("link to /bin/sh");
        let child = Command::new(&link)
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("start the busy neighbour");
        Neighbour(child)
    }
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_busy_neighbour_is_named_on_the_runs_line_and_the_bench_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let neighbour = Neighbour::start(tmp.path());
    let out_path = tmp.path().join("out");
    let mut bench = Command::new(BIN)
        .args(["bench", "--smoke", "--setups", "direct"])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start aidhub bench");
    let status = wait_exit(&mut bench, WITHIN, "its start");
    drop(neighbour);
    let out = std::fs::read_to_string(&out_path).unwrap();
    assert!(status.success(), "exit code not 0:\n{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("-- direct run 1: "))
        .unwrap_or_else(|| panic!("no run line:\n{out}"));
    // `other processes used 0.93 cores (busiest: busy-neighbour 0.91, …), the hypervisor`
    let named = line
        .split_once("(busiest: ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(names, _)| names)
        .unwrap_or_else(|| panic!("no other process named:\n{line}"));
    let (first, cores) = named
        .split([',', ';'])
        .next()
        .and_then(|n| n.trim().rsplit_once(' '))
        .unwrap_or_else(|| panic!("not `name cores`: {named}"));
    assert_eq!(first, "busy-neighbour", "{line}");
    let cores: f64 = cores.parse().unwrap();
    assert!(cores > 0.3, "a shell loop keeps a core busy: {line}");
    assert!(
        !named.contains("aidhub"),
        "the bench's own processes are not other processes: {line}"
    );
}

//! `aidhub bench --smoke`: every setup serves the mix without errors — through the real
//! binary, its child processes (simulated partners, `aidhub serve`, nginx when installed)
//! and real mutual TLS. A check that the bench works, not of speed.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::wait_exit;

const BIN: &str = env!("CARGO_BIN_EXE_aidhub");

/// Far above the ~10 s a smoke run takes; only a hang gets here.
const WITHIN: Duration = Duration::from_secs(120);

fn nginx_installed() -> bool {
    aidhub::bench::nginx::find().is_some()
}

/// Runs the binary, killing it if it outlives `WITHIN`; returns (success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    run_command(aidhub(args))
}

/// [`run`] in the working directory `dir`.
fn run_in(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let mut command = aidhub(args);
    command.current_dir(dir);
    run_command(command)
}

/// The binary with `args`.
fn aidhub(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args);
    command
}

/// [`run`] for a command built by the caller.
fn run_command(mut command: Command) -> (bool, String, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start aidhub");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + WITHIN;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.is_some(), "the smoke bench hung:\n{out}\n{err}");
    (status.is_some_and(|s| s.success()), out, err)
}

/// The milliseconds that follow `label` on a run's `line` (`…, no answer for up to 3 ms`).
fn ms_after(line: &str, label: &str) -> f64 {
    line.split(label)
        .nth(1)
        .and_then(|rest| rest.split(" ms").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no \"{label}\" on the run line: {line}"))
}

/// The rows of the table that follows the line starting with `heading`, by setup name.
fn table<'a>(text: &'a str, heading: &str) -> (Vec<&'a str>, Vec<Vec<&'a str>>) {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(heading)).skip(1);
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let rows = lines
        .take_while(|l| !l.trim().is_empty() && !l.starts_with(' '))
        .map(|l| l.split_whitespace().collect())
        .collect();
    (header, rows)
}

#[test]
fn every_setup_serves_the_mix_without_errors() {
    let mut setups = vec!["direct", "aidhub"];
    if nginx_installed() {
        setups.push("nginx");
    } else {
        println!("skipped nginx: not installed");
    }
    let list = setups.join(",");
    let started = Instant::now();
    let (ok, out, err) = run(&["bench", "--smoke", "--setups", &list]);
    println!("{out}\nsmoke bench took {:?}", started.elapsed());
    assert!(ok, "exit code not 0:\n{out}\n{err}");
    assert!(
        out.contains("smoke: every setup served traffic without errors"),
        "{out}"
    );
    // A closed loop's latency is the operations' own time already: no second figure.
    assert!(!out.contains("own time"), "{out}");

    let (header, rows) = table(&out, "== load");
    let errors = header
        .iter()
        .position(|h| *h == "errors")
        .expect("errors column");
    let throughput = header
        .iter()
        .position(|h| *h == "req/s")
        .expect("req/s column");
    let cores = header
        .iter()
        .position(|h| *h == "cores")
        .expect("cores column");
    let machine = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    for setup in &setups {
        let row = rows
            .iter()
            .find(|r| r.first() == Some(setup))
            .unwrap_or_else(|| panic!("no row for {setup} in:\n{out}"));
        assert_eq!(row[errors], "0", "{setup} had errors:\n{out}");
        let rate: f64 = row[throughput].parse().unwrap();
        assert!(rate > 0.0, "{setup} served nothing:\n{out}");
        // The setup's processes were busy, and not on more cores than the machine has (CPU
        // time and requests are counted over the same window).
        let busy: f64 = row[cores].parse().unwrap();
        assert!(
            busy > 0.0 && busy <= machine + 0.25,
            "{setup} kept {busy} cores busy of {machine}:\n{out}"
        );
    }

    // What the hypervisor took is printed apart from other processes, for every setup,
    // and is no more than the machine's cores.
    let steal = out
        .lines()
        .find(|l| l.contains("cores the hypervisor took from the machine"))
        .unwrap_or_else(|| panic!("no line on the hypervisor's steal in:\n{out}"));
    let figures = steal.split("): ").nth(1).unwrap_or_default();
    for setup in &setups {
        let taken: f64 = figures
            .split(", ")
            .find_map(|f| f.strip_prefix(&format!("{setup} ")))
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("no steal figure for {setup} in: {steal}"));
        assert!((0.0..=machine).contains(&taken), "{steal}");
    }

    // The hub's serving threads are found among its threads and cost something; the last
    // six columns are user µs, kernel µs, waits and preemptions per request, then the time
    // they waited for a core per request and per run (where the kernel keeps `schedstat`).
    let (_, rows) = table(&out, "== where the CPU");
    let serving = rows
        .iter()
        .find(|r| r.first() == Some(&"aidhub") && r.get(1) == Some(&"aidhub-serve"))
        .unwrap_or_else(|| panic!("no row for the hub's serving threads in:\n{out}"));
    let last = |n: usize| serving[serving.len() - n];
    let cpu: f64 = [6, 5].map(|n| last(n).parse::<f64>().unwrap()).iter().sum();
    assert!(cpu > 0.0, "the serving threads cost nothing:\n{out}");
    if std::path::Path::new("/proc/thread-self/schedstat").exists() {
        let queued: f64 = last(2).parse().unwrap();
        assert!(queued >= 0.0, "{out}");
        assert!(last(1) == "-" || last(1).parse::<f64>().is_ok(), "{out}");
    } else {
        assert_eq!([last(2), last(1)], ["-", "-"], "{out}");
    }

    // The load generator's own wait for a core, charged to each setup as latency.
    let generator = out
        .lines()
        .find(|l| l.contains("the load generator's own wait for a core during the windows"))
        .unwrap_or_else(|| panic!("no line on the load generator's wait in:\n{out}"));
    for setup in &setups {
        let figure = generator
            .split(&format!(" {setup} "))
            .nth(1)
            .and_then(|rest| rest.split(" µs (").next())
            .unwrap_or_else(|| panic!("no figure for {setup}: {generator}"));
        if std::path::Path::new("/proc/thread-self/schedstat").exists() {
            let us: f64 = figure
                .parse()
                .unwrap_or_else(|_| panic!("{setup}: {generator}"));
            assert!(us >= 0.0, "{generator}");
        } else {
            assert!(figure.starts_with('-'), "{generator}");
        }
    }

    // The hub's own view of its requests' time inside it, read from its metrics over the
    // window: every function's together, each request counted once.
    let (inside, counted) = summed_line(
        &out,
        "requests inside the hub, from the head read to the answer made",
        "all functions",
        "requests",
    );
    assert!(counted > 0, "{inside}");
    // And of the part of it spent on the exchanges with the partners: every request the
    // window forwarded made one, and no request more than one.
    let (exchanges, exchanged) = summed_line(
        &out,
        "exchanges with the partners, from a connection taken to the answer read",
        "all partners",
        "exchanges",
    );
    assert!(
        exchanged > 0 && exchanged <= counted,
        "{exchanges}\n{inside}"
    );
    // And of the part before the exchange: one admission per forwarded request.
    let (admissions, admitted) = summed_line(
        &out,
        "admissions, from the head read to the exchange's start",
        "all functions",
        "admissions",
    );
    assert!(
        admitted > 0 && admitted <= counted,
        "{admissions}\n{inside}"
    );

    // The hub's own view of its ledger's hold on answers, read from its metrics over the
    // window: Send MSP Token's 201 waits for a durable write on every onboarding.
    let held = out
        .lines()
        .find(|l| l.contains("answers held for the ledger"))
        .unwrap_or_else(|| panic!("no line on answers held for the ledger in:\n{out}"));
    assert!(
        held.contains("send_msp_token ") && held.contains(" ms mean, "),
        "{held}"
    );
    // And of the journal syncs those durable writes waited for.
    let syncs = out
        .lines()
        .find(|l| l.contains("the ledger's syncs (the hub's aidhub_ledger_sync_seconds"))
        .unwrap_or_else(|| panic!("no line on the ledger's syncs in:\n{out}"));
    assert!(
        syncs.contains(": journal ") || syncs.contains("; journal "),
        "{syncs}"
    );
    // And of the connections it opened to the partners in the window (whether its pools
    // stayed warm), read from its counters.
    let upstream = out
        .lines()
        .find(|l| l.contains("upstream connections (the hub's aidhub_upstream_connections"))
        .unwrap_or_else(|| panic!("no line on the hub's upstream connections in:\n{out}"));
    let counts = upstream
        .rsplit_once("): ")
        .and_then(|(_, counts)| counts.strip_suffix(" waited for one"))
        .and_then(|counts| counts.split_once(" opened, "))
        .and_then(|(opened, waits)| {
            let waits = waits.split_once(' ')?.0;
            Some((opened.parse::<u64>().ok()?, waits.parse::<u64>().ok()?))
        });
    assert!(counts.is_some(), "{upstream}");

    let (header, rows) = table(&out, "== connections");
    let errors = header
        .iter()
        .position(|h| *h == "errors")
        .expect("errors column");
    let per_conn = header
        .iter()
        .position(|h| *h == "KiB/conn")
        .expect("KiB/conn column");
    for setup in &setups {
        let row = rows.iter().find(|r| r.first() == Some(setup)).unwrap();
        assert_eq!(row[errors], "0", "{setup} failed fresh connections:\n{out}");
        if *setup != "direct" {
            // Memory per idle connection is read on a second server, started for it.
            assert!(
                out.contains(&format!("idle connections on a fresh {setup}")),
                "{out}"
            );
            let kib: Result<f64, _> = row[per_conn].parse();
            assert!(kib.is_ok(), "{setup} has no memory per connection:\n{out}");
        }
    }
}

#[test]
fn callgrind_counts_the_hubs_and_nginxs_instructions_per_request_in_the_window() {
    if let Err(why) = aidhub::bench::callgrind::Callgrind::find() {
        println!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A low rate: this is the debug build, under valgrind, which runs one thread at a time.
    // On VM 14 beside the other smoke tests, 20 requests a second fell more than the
    // generator's 2 s grace behind in one run of three; at 8, answers were 1.3 s late at
    // the median.
    let nginx = nginx_installed();
    let setups = if nginx {
        "direct,aidhub,nginx"
    } else {
        println!("nginx not installed: its count is skipped");
        "direct,aidhub"
    };
    let args = [
        "bench",
        "--callgrind",
        "--smoke",
        "--rate",
        "5",
        "--setups",
        setups,
        "--cache-sim",
    ];
    let (mut ok, mut out, mut err) = run_in(dir.path(), &args);
    // Once, in the CI run after VM 40's session, the bench's native client refused the TLS
    // handshake of the hub under valgrind while onboarding: `tls: invalid peer certificate:
    // BadSignature`. That signature is the hub's (ring's ECDSA, run by valgrind's emulator).
    // No native run of the bench has failed a handshake so, and on VM 41 some 5 000
    // handshakes of the hub under valgrind did not repeat it. So the emulator gets one more
    // try, said here; any other failure, or this one twice, fails the test.
    if !ok && format!("{out}{err}").contains("BadSignature") {
        println!("first try refused a handshake of the hub under valgrind, tried again:\n{err}");
        (ok, out, err) = run_in(dir.path(), &args);
    }
    assert!(ok, "exit code not 0:\n{out}\n{err}");
    let measuring = if nginx {
        "measuring aidhub and nginx, not direct"
    } else {
        "measuring aidhub, not direct"
    };
    assert!(out.contains(measuring), "{out}");
    assert!(
        out.contains("smoke: every setup served traffic without errors"),
        "{out}"
    );

    let line = line_after(&out, "callgrind: ");
    let per_request = leading_number(line);
    // Two TLS records decrypted and two encrypted, HTTP both ways, validation and the ledger:
    // tens of thousands of instructions at least (about 100 000 in a release build).
    assert!(
        (10_000.0..100_000_000.0).contains(&per_request),
        "{per_request} instructions per request:\n{out}"
    );
    // Whether its window's count holds a handshake with a partner, from the hub's counters.
    assert!(
        line.contains("no window opened an upstream connection")
            || line.contains("every window opened an upstream connection"),
        "{line}"
    );

    // The dump is left where the bench was started, and holds the window's whole count.
    let dump = Path::new(line_after(&out, "callgrind dump of the window (aidhub): "));
    assert!(dump.starts_with(dir.path()), "{}", dump.display());
    let total = aidhub::bench::callgrind::summary(dump).unwrap();
    assert!(total as f64 >= per_request, "{total} in {}", dump.display());

    // Which crates' code ran the window's instructions: the shares printed add up to the
    // whole, and the dump's list has the hub's own code, TLS's and the ledger's. (In this
    // debug build the standard library's functions are not inlined: "std" leads.)
    let crates = out
        .lines()
        .find_map(|l| {
            l.split_once("the window's instructions by crate ")
                .map(|(_, r)| r)
        })
        .unwrap_or_else(|| panic!("no breakdown by crate in:\n{out}"));
    let (_, shares) = crates.split_once("): ").expect(crates);
    let sum: f64 = shares
        .split(", ")
        .map(|share| {
            let percent = match share.split_once("% in ") {
                Some((percent, _)) => percent,
                None => share
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.strip_suffix('%'))
                    .expect(share),
            };
            percent.parse::<f64>().expect(share)
        })
        .sum();
    assert!((99.5..=100.5).contains(&sum), "{sum}: {crates}");
    let by = aidhub::bench::callgrind::by_crate(dump).unwrap();
    for name in ["aidhub", "ring", "rustls", "sled", "hyper"] {
        assert!(
            by.crates.iter().any(|(c, n)| c == name && *n > 0),
            "{name} not in {:?}",
            by.crates
        );
    }
    assert!(by.total >= total, "{} against {total}", by.total);

    caches_were_simulated(&out, "aidhub");
    if nginx {
        nginx_is_counted_beside_the_hub(&out, per_request);
        caches_were_simulated(&out, "nginx");
    }

    // Handshakes, memory and the targets would be valgrind's figures: not printed.
    assert!(!out.contains("== connections"), "{out}");
    assert!(!out.contains("== targets"), "{out}");
}

/// The rest of the first line of `out` that starts with `prefix` (leading blanks aside).
fn line_after<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting `{prefix}` in:\n{out}"))
}

/// The number `line` starts with (`80405 instructions…`, `1.19× the…`).
fn leading_number(line: &str) -> f64 {
    line.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number at the start of: {line}"))
}

/// `--cache-sim`: the setup's data reads and writes and its misses per request, each level
/// missing no more often than the one before it, and its instruction-cache misses.
fn caches_were_simulated(out: &str, setup: &str) {
    let line = line_after(out, &format!("callgrind's cache simulation: {setup} "));
    let numbers: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|n| n.parse().ok())
        .collect();
    let [data, first, last] = [numbers[0], numbers[1], numbers[2]];
    assert!(data > 1_000.0, "{line}");
    assert!(first > 0.0 && first <= data, "{line}");
    assert!(last <= first, "{line}");
    // A request runs through TLS, HTTP and the checks: more code than a first-level
    // instruction cache holds, so some of it is fetched again each time.
    let (_, instruction_cache) = line
        .split_once("1 000 instructions); ")
        .unwrap_or_else(|| panic!("no instruction-cache misses in: {line}"));
    assert!(
        instruction_cache.contains(" first-level instruction misses per request ("),
        "{line}"
    );
    assert!(leading_number(instruction_cache) > 0.0, "{line}");
}

/// nginx under callgrind, as one process: its count, its dump, by object, and the hub's count
/// over nginx's.
fn nginx_is_counted_beside_the_hub(out: &str, hub: f64) {
    let line = line_after(out, "callgrind: nginx ");
    let nginx = leading_number(line);
    // TLS both ways and HTTP parsed twice, in C: thousands of instructions at least (some
    // 66 000 on VM 55).
    assert!((5_000.0..100_000_000.0).contains(&nginx), "{line}");

    let dump = Path::new(line_after(out, "callgrind dump of the window (nginx): "));
    let total = aidhub::bench::callgrind::summary(dump).unwrap();
    assert!(total as f64 >= nginx, "{total} in {}", dump.display());
    let by = aidhub::bench::callgrind::by_crate(dump).unwrap();
    for name in ["nginx", "libssl", "libcrypto"] {
        assert!(
            by.crates.iter().any(|(c, n)| c == name && *n > 0),
            "{name} not in {:?}",
            by.crates
        );
    }
    assert!(
        out.contains("nginx's instructions in the window by object"),
        "{out}"
    );

    let ratio = leading_number(line_after(out, "callgrind: aidhub/nginx "));
    let expected = hub / nginx;
    // The counts are printed rounded to whole instructions, the ratio to two decimals.
    assert!(
        (ratio - expected).abs() <= 0.006 + expected * 0.001,
        "{ratio} against {hub} / {nginx}"
    );
}

/// An open loop prints each operation's own time (send to last answer) beside its latency,
/// on every run's line and as a median per setup, so that queueing behind a lane's earlier
/// operations shows as the gap between the two; a closed loop has no such figure.
#[test]
fn an_open_loop_prints_each_operations_own_time_beside_its_latency() {
    let (ok, out, err) = run(&[
        "bench",
        "--smoke",
        "--setups",
        "direct,aidhub",
        "--rate",
        "200",
    ]);
    assert!(ok, "exit code not 0:\n{out}\n{err}");
    let median = out
        .lines()
        .find(|l| l.contains("each operation's own time, from its send to its last answer"))
        .unwrap_or_else(|| panic!("no own-time line in:\n{out}"));
    for setup in ["direct", "aidhub"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("-- {setup} run 1: ")))
            .unwrap_or_else(|| panic!("no run line for {setup}:\n{out}"));
        let own = ms_after(line, ", own time p99 ");
        assert!(own > 0.0, "{line}");
        assert!(
            median.contains(&format!(" {setup} p99 {own:.2} ms, max ")),
            "{median}\n{line}"
        );
    }
}

#[test]
fn a_rate_that_is_not_a_number_is_refused_before_anything_starts() {
    let (ok, _, err) = run(&["bench", "--smoke", "--rate", "fast"]);
    assert!(!ok);
    assert!(err.contains("--rate fast"), "{err}");
}

/// The bench's temporary directory: the working directory of its children.
fn bench_dir(family: &[u32]) -> Option<std::path::PathBuf> {
    family.iter().find_map(|pid| {
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
        let name = cwd.file_name()?.to_str()?;
        name.starts_with("aidhub-bench-").then_some(cwd)
    })
}

/// A bench measuring the hub, started and waited for until it measures, with its stderr
/// collected on a thread; and the processes below it then (the simulator and the hub).
struct Measuring {
    bench: std::process::Child,
    children: Vec<u32>,
    stderr: std::thread::JoinHandle<String>,
    /// Its stdout so far, and the lines still to come.
    out: String,
    lines: std::sync::mpsc::Receiver<String>,
}

/// Bench directories go into `tmp` (the bench's `TMPDIR`), where no other test's bench looks
/// for abandoned ones to remove.
fn start_measuring(tmp: &Path) -> Measuring {
    let measuring = start_bench(tmp, &["--setups", "aidhub", "--duration-secs", "60"]);
    let family = aidhub::bench::procfs::tree(measuring.bench.id());
    assert!(
        family.len() >= 3,
        "the simulator and the hub run below the bench: {family:?}"
    );
    measuring
}

/// `aidhub bench` with `args` and a light load (1 s warm-up, 4 connections, 4 federations),
/// once it prints that it measures.
fn start_bench(tmp: &Path, args: &[&str]) -> Measuring {
    let light = [
        "--warmup-secs",
        "1",
        "--connections",
        "4",
        "--federations",
        "4",
    ];
    let mut bench = aidhub(&[&["bench"], args, &light].concat())
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start aidhub bench");
    let stdout = bench.stdout.take().unwrap();
    let mut stderr = bench.stderr.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    // Once it measures, the processes it measures are running.
    let deadline = Instant::now() + WITHIN;
    let mut out = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                out.push_str(&line);
                out.push('\n');
                if line.contains("measuring for") {
                    break;
                }
            }
            Err(_) => {
                let _ = bench.kill();
                panic!("the bench never started measuring:\n{out}");
            }
        }
    }
    let family = aidhub::bench::procfs::tree(bench.id());
    Measuring {
        bench,
        children: family[1..].to_vec(),
        stderr,
        out,
        lines,
    }
}

fn still_running(pids: &[u32]) -> Vec<u32> {
    pids.iter()
        .copied()
        .filter(|&pid| aidhub::bench::procfs::alive(pid))
        .collect()
}

#[test]
fn sigterm_stops_the_children_and_removes_the_bench_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let Measuring {
        mut bench,
        children,
        stderr,
        ..
    } = start_measuring(tmp.path());
    let dir = bench_dir(&children).expect("a child works in the bench directory");
    assert!(dir.is_dir());

    let sent = Command::new("kill")
        .args(["-TERM", &bench.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = wait_exit(&mut bench, Duration::from_secs(30), "SIGTERM");
    let err = stderr.join().unwrap();
    assert_eq!(status.code(), Some(143), "128 + SIGTERM; stderr:\n{err}");
    assert!(
        err.contains("SIGTERM: stopping the child processes"),
        "{err}"
    );
    let left = still_running(&children);
    assert!(left.is_empty(), "children still running: {left:?}");
    assert!(!dir.exists(), "{} is left behind", dir.display());
}

/// SIGKILL runs none of the bench's own cleanup: the kernel's parent-death signal, set by
/// `setpriv`, is what stops the children then, and the next bench removes the directory.
/// Both benches get a `TMPDIR` of their own: a bench another test starts meanwhile would
/// otherwise be the next bench, and remove the directory before this test looks at it.
#[test]
fn sigkill_of_the_bench_still_stops_its_children() {
    if aidhub::bench::child::setpriv().is_none() {
        eprintln!("skipped: no util-linux setpriv with --pdeathsig, so nothing stops the children of a killed bench");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Measuring {
        mut bench,
        children,
        ..
    } = start_measuring(tmp.path());
    let dir = bench_dir(&children).expect("a child works in the bench directory");
    let pid = bench.id();
    bench.kill().unwrap();
    let status = wait_exit(&mut bench, Duration::from_secs(5), "SIGKILL");
    assert_eq!(status.signal(), Some(9));
    // The hub drains for its 1 s grace period; the simulator stops at once.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut left = still_running(&children);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = still_running(&children);
    }
    for pid in &left {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    assert!(
        left.is_empty(),
        "children still running 20 s after the bench was killed: {left:?}"
    );

    // The killed bench's directory stays until the next bench starts and removes it.
    assert!(dir.is_dir(), "{}", dir.display());
    let mut next = aidhub(&[
        "bench",
        "--setups",
        "direct",
        "--duration-secs",
        "1",
        "--warmup-secs",
        "0",
        "--connections",
        "2",
        "--federations",
        "1",
        "--handshake-secs",
        "0",
    ]);
    next.env("TMPDIR", tmp.path());
    let (ok, out, err) = run_command(next);
    let removed = !dir.exists();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "{out}\n{err}");
    assert!(
        removed,
        "the next bench left {} behind:\n{out}",
        dir.display()
    );
    let said = format!("removed {}, left by a bench (process {pid})", dir.display());
    assert!(out.contains(&said), "{out}");
}

/// The simulated partners' process, as the bench's header names it.
fn partners_pid(out: &str) -> String {
    out.split("simulated partners in process ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no partners' process named:\n{out}"))
        .to_owned()
}

/// Which process a test signals inside the window.
enum Signalled {
    /// The bench itself: as a hypervisor taking both cores would stop everything.
    Bench,
    /// The process under test (`--setups direct`: the simulated partners), as a server
    /// stalled on its disk would stop answering while the machine runs on.
    Partners,
}

/// Sends `kill <signal> <pid>`.
fn signal(signal: &str, pid: &str) {
    let sent = Command::new("kill").args([signal, pid]).status().unwrap();
    assert!(sent.success(), "kill {signal} {pid}");
}

/// How a short direct bench runs, and when a test acts on it.
enum Run {
    /// A measuring run whose window lasts this many seconds, acted on half a second into
    /// the window (after the 1 s warm-up).
    Window(&'static str),
    /// A `--smoke` run (300 ms of warm-up, a 1 s window), acted on as soon as it starts
    /// measuring: its lanes fail from the warm-up on, whatever the machine's pace.
    Smoke,
}

/// Runs a short direct bench, hands `which`'s pid to `act` when `run` says, and returns the
/// bench's exit status, its whole output and its stderr.
fn direct_bench_signalling(
    run: Run,
    which: Signalled,
    act: impl FnOnce(&str),
) -> (std::process::ExitStatus, String, String) {
    let (mut args, after) = match run {
        Run::Window(secs) => (vec!["--duration-secs", secs], Duration::from_millis(1_500)),
        Run::Smoke => (vec!["--smoke"], Duration::ZERO),
    };
    args.extend(["--setups", "direct", "--handshake-secs", "0"]);
    let tmp = tempfile::tempdir().unwrap();
    let Measuring {
        mut bench,
        mut out,
        lines,
        stderr,
        ..
    } = start_bench(tmp.path(), &args);
    let pid = match which {
        Signalled::Bench => bench.id().to_string(),
        Signalled::Partners => partners_pid(&out),
    };
    std::thread::sleep(after);
    act(&pid);
    let status = wait_exit(&mut bench, WITHIN, "the window");
    for line in lines.iter() {
        out.push_str(&line);
        out.push('\n');
    }
    (status, out, stderr.join().unwrap())
}

/// A measuring run in which requests failed is no measurement: with direct's server (the
/// simulated partners) killed inside the window, the bench still prints its report, then
/// says that it failed and why, and exits 1; a script running it never takes those figures.
#[test]
fn a_measuring_run_whose_requests_fail_fails_the_bench_and_says_why() {
    let (status, out, err) =
        direct_bench_signalling(Run::Window("2"), Signalled::Partners, |pid| {
            signal("-KILL", pid)
        });
    assert_eq!(status.code(), Some(1), "{out}\n{err}");
    // The report is whole: the load table and the errors by kind, then the verdict last.
    let (header, rows) = table(&out, "== load");
    let column = header.iter().position(|h| *h == "errors").unwrap();
    let direct = rows
        .iter()
        .find(|row| row[0] == "direct")
        .unwrap_or_else(|| panic!("no direct row:\n{out}"));
    let errors: u64 = direct[column].parse().unwrap();
    assert!(errors > 0, "{out}");
    assert!(out.contains("connect: connection refused"), "{out}");
    let verdict = out.lines().last().unwrap_or_default();
    assert!(
        verdict.starts_with(&format!(
            "bench failed: requests failed (direct {errors}), and figures taken while requests \
             fail measure no setup"
        )),
        "{out}"
    );
    // The verdict names what failed, so that a run that prints no errors table (under
    // callgrind, or at half rate) still says why.
    assert!(
        verdict.contains("; by kind: direct: ")
            && verdict.contains("connect: connection refused ×"),
        "{verdict}"
    );
    // It failed on its verdict, not on an error of its own.
    assert!(!err.contains("aidhub bench:"), "{err}");
}

/// A smoke run whose requests fail says so on its `smoke:` line, with the errors' kinds
/// (under `--callgrind` no errors table is printed, so the line is all a reader gets), and
/// exits 1.
#[test]
fn a_failed_smoke_run_names_its_errors_kinds() {
    let (status, out, err) =
        direct_bench_signalling(Run::Smoke, Signalled::Partners, |pid| signal("-KILL", pid));
    assert_eq!(status.code(), Some(1), "{out}\n{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("smoke: direct failed ("))
        .unwrap_or_else(|| panic!("no smoke verdict for direct in:\n{out}"));
    assert!(
        line.contains(" errors, ") && line.contains("): ") && line.contains("connection refused ×"),
        "{line}"
    );
    assert!(!out.contains("smoke: every setup served traffic"), "{out}");
}

/// Runs a short direct bench, stops `which` for 300 ms half a second into its window, and
/// returns its first run's line, its longest stall and its longest stretch without an answer
/// (ms), and the whole output.
fn stopped_for_300_ms(which: Signalled) -> (String, f64, f64, String) {
    let (status, out, _) = direct_bench_signalling(Run::Window("3"), which, |pid| {
        signal("-STOP", pid);
        std::thread::sleep(Duration::from_millis(300));
        signal("-CONT", pid);
    });
    assert!(status.success(), "{out}");

    let line = out
        .lines()
        .find(|l| l.starts_with("-- direct run 1:"))
        .unwrap_or_else(|| panic!("no run line:\n{out}"))
        .to_owned();
    println!("{line}");
    // A window in which no meter woke 0.5 ms late says `stalls under 0.5 ms`.
    let stall = if line.contains("; stalls under ") {
        ms_after(&line, "; stalls under ")
    } else {
        ms_after(&line, "; stalls up to ")
    };
    let silence = ms_after(&line, ", no answer for up to ");
    (line, stall, silence, out)
}

/// A stall of the whole machine reaches the run's line: with the bench stopped (SIGSTOP) for
/// 300 ms inside its window, its per-core meters wake that late, and no answer came in that
/// time either.
#[test]
fn a_stall_inside_the_window_is_reported_on_the_runs_line() {
    let (line, stall, silence, out) = stopped_for_300_ms(Signalled::Bench);
    assert!(stall >= 250.0, "the 300 ms stop not seen: {line}");
    assert!(
        silence >= 250.0,
        "the 300 ms without answers not seen: {line}"
    );
    let over: u32 = line
        .split("; stalls up to ")
        .nth(1)
        .and_then(|stalls| stalls.split(", ").nth(1))
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of long stalls: {line}"));
    assert!(over >= 1, "{line}");
    assert!(
        out.contains("longest stall during the windows (median;"),
        "{out}"
    );
    assert!(
        out.contains("longest stretch without an answer during the windows (median;"),
        "{out}"
    );
}

/// A stall of the server under test alone is told apart from the machine's: with the
/// simulated partners (direct's server) stopped for 300 ms, nothing is answered for that
/// long, while the meters, which the stop does not touch, see no such stall.
#[test]
fn a_stall_of_the_server_alone_shows_as_silence_not_as_a_machine_stall() {
    let (line, stall, silence, _) = stopped_for_300_ms(Signalled::Partners);
    assert!(
        silence >= 250.0,
        "the 300 ms without answers not seen: {line}"
    );
    assert!(
        stall < 250.0,
        "the machine did not stall, only the server: {line}"
    );
}

/// The first line of `out` that says `what`, and the count at its end: the hub's figures of
/// one series summed over its labels (`…: {series} 0.25 ms mean, … (1000 {noun})`).
fn summed_line<'a>(out: &'a str, what: &str, series: &str, noun: &str) -> (&'a str, u64) {
    let line = out
        .lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no line on the {what} in:\n{out}"));
    let count = line
        .split(&format!(": {series} "))
        .nth(1)
        .filter(|rest| rest.contains(" ms mean, "))
        .and_then(|rest| rest.rsplit_once(" ("))
        .and_then(|(_, count)| count.strip_suffix(&format!(" {noun})")))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no mean and count of {noun}: {line}"));
    (line, count)
}

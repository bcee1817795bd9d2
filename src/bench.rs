//! `aidhub bench`: what the hub costs over a direct call, side by side with nginx doing the
//! same routing job, on the same machine, partners and traffic.
//!
//! Three setups, each measured in turn (and `--runs` times, medians reported):
//!
//! * **direct** — the load generator calls the simulated partners itself, presenting the
//!   hub's client certificate (the floor);
//! * **aidhub** — through a fresh `aidhub serve` child process (validation and ledger on,
//!   log level warn);
//! * **nginx** — through nginx doing mutual TLS on both sides and routing by `target-id`
//!   ([`nginx`]).
//!
//! The simulated partners run in their own child process (`aidhub simulate`, [`simulate`]).
//! Each measurement starts its server, reads its idle memory, onboards the federations the
//! mix then uses ([`mix`]), drives the mix for a warm-up and a measured window ([`load`]),
//! reads CPU time and peak memory from `/proc` ([`procfs`]) and, from the hub's metrics,
//! how long it held answers for its ledger and its ledger's syncs took ([`held`]), then
//! measures fresh connections ([`fresh`]) and stops the server; memory per idle connection
//! is read on a second, fresh server, so that the load before does not shape it. Everything
//! lives in one temporary directory ([`world`]); every child process is stopped when the
//! bench ends, however it ends ([`child`]). [`measure`](mod@measure) runs one measurement;
//! [`report`] prints the figures. With `--callgrind` the hub and nginx run under valgrind and
//! the figures that count are their instructions per request in the window ([`callgrind`]),
//! with the crates (nginx: the libraries) whose code ran them, and the hub's over nginx's.

pub mod callgrind;
pub mod child;
pub mod fresh;
pub mod held;
pub mod load;
pub mod measure;
pub mod mix;
pub mod nginx;
pub mod procfs;
pub mod report;
pub mod simulate;
pub mod stalls;
pub mod wire;
pub mod world;

use crate::signals::Signals;
use measure::{measure, Settings};
use report::Figures;
use std::process::ExitCode;
use world::World;

/// One way of reaching the partners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Setup {
    /// Straight to the simulated partners.
    Direct,
    /// Through `aidhub serve`.
    Aidhub,
    /// Through nginx.
    Nginx,
}

impl Setup {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Setup::Direct => "direct",
            Setup::Aidhub => "aidhub",
            Setup::Nginx => "nginx",
        }
    }
}

/// `aidhub bench` options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Seconds of each measured window.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Seconds of traffic before each window.
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    /// Partner connections of the load generator (half on the CMP side, half on the MSP side);
    /// 64 by default, 8 with --callgrind.
    #[arg(long)]
    pub connections: Option<usize>,
    /// Speak h2 to the setup instead of HTTP/1.1.
    #[arg(long)]
    pub http2: bool,
    /// With --http2: concurrent streams (lanes) per connection.
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// Requests per second on a fixed schedule (open loop), or `max` (closed loop).
    #[arg(long, default_value = "max")]
    pub rate: String,
    /// Measure each setup this many times and report medians.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// The setups to measure, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "direct,aidhub,nginx"
    )]
    pub setups: Vec<Setup>,
    /// Federations onboarded (Send MSP Token) before each measurement.
    #[arg(long, default_value_t = 200)]
    pub federations: usize,
    /// Concurrent tasks opening fresh connections.
    #[arg(long, default_value_t = 8)]
    pub handshake_tasks: usize,
    /// Seconds of the fresh-connection loop.
    #[arg(long, default_value_t = 3)]
    pub handshake_secs: u64,
    /// Idle keep-alive connections opened to measure memory per connection.
    #[arg(long, default_value_t = 500)]
    pub idle_connections: usize,
    /// Put the hub's ledger in a temporary directory here (e.g. /dev/shm) instead of the
    /// bench directory, to tell the disk's fsync latency from the hub's own cost.
    #[arg(long)]
    pub ledger_dir: Option<std::path::PathBuf>,
    /// Serving threads of the hub under test (`listen.threads`) and worker processes of
    /// nginx; 0: one per core
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Then run every setup at half of aidhub's measured throughput and compare p99.
    #[arg(long)]
    pub half_rate: bool,
    /// A few seconds in total with small numbers: checks that every setup served traffic
    /// without errors (exit 1 otherwise), not speed.
    #[arg(long)]
    pub smoke: bool,
    /// Run the hub and nginx (as one process) under valgrind's callgrind and report the
    /// instructions each executes per request in the window, which crates' code (for nginx,
    /// which libraries) ran them, and the hub's count over nginx's: user space only, but
    /// repeatable where wall-clock figures are not. Measures the aidhub and nginx setups (not
    /// direct; `--setups aidhub` for the hub alone), at a fixed rate (--rate, 100 by default),
    /// without the connection measurements; the dumps are left in the current directory.
    #[arg(long, conflicts_with = "half_rate")]
    pub callgrind: bool,
    /// With --callgrind: simulate the caches too (valgrind's --cache-sim=yes) and report
    /// each server's data reads and writes and its first-level and last-level data-cache
    /// misses per request; about twice as slow.
    #[arg(long, requires = "callgrind")]
    pub cache_sim: bool,
}

/// Runs the bench; SIGINT (Ctrl-C), SIGTERM or SIGHUP stops it, and its children with it
/// (the handlers are in place before any child starts).
pub async fn run(args: BenchArgs) -> ExitCode {
    let mut signals = match Signals::register() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("aidhub bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        code = bench(args) => code,
        received = signals.next() => {
            eprintln!("{}: stopping the child processes", received.name());
            ExitCode::from(received.exit_status())
        }
    }
}

async fn bench(args: BenchArgs) -> ExitCode {
    match bench_inner(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("aidhub bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn bench_inner(args: &BenchArgs) -> Result<bool, String> {
    let settings = Settings::from(args)?;
    let mut setups = args.setups.clone();
    setups.dedup();
    let callgrind = if args.callgrind {
        let found = callgrind::Callgrind::find()?.simulating_caches(args.cache_sim);
        // The direct setup is the simulated partners: the floor, not a server to count.
        let counted = |s: &Setup| matches!(s, Setup::Aidhub | Setup::Nginx);
        let (kept, left): (Vec<Setup>, Vec<Setup>) = setups.iter().partition(|s| counted(s));
        if !kept.contains(&Setup::Aidhub) {
            return Err("--callgrind needs the aidhub setup".into());
        }
        if !left.is_empty() {
            let names = |list: &[Setup]| {
                list.iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(" and ")
            };
            println!(
                "   --callgrind: measuring {}, not {}",
                names(&kept),
                names(&left)
            );
        }
        setups = kept;
        Some(found)
    } else {
        None
    };
    println!(
        "== aidhub bench: {}; load average {:.2} at start",
        machine(),
        procfs::load_average()
    );
    if cfg!(debug_assertions) {
        println!("   (a debug build: figures are not representative; use --release)");
    }
    println!("   traffic: {}", mix::MIX_TEXT);
    println!("   load: {}", settings.describe());
    if let Some(callgrind) = &callgrind {
        println!(
            "   the servers run under {} (callgrind): their latency, CPU and memory below are valgrind's; read their instructions per request",
            callgrind.version()
        );
    }
    let nginx = if setups.contains(&Setup::Nginx) {
        Some(nginx::ensure_installed(&mut |line| println!("   {line}"))?)
    } else {
        None
    };
    let threads = match args.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    println!(
        "   servers: aidhub with {threads} serving threads, nginx with {threads} worker processes"
    );
    let world = World::create(nginx, callgrind, args.ledger_dir.as_deref(), threads).await?;
    println!(
        "   bench directory {}; simulated partners in process {}",
        world.path().display(),
        world.sims.pid()
    );
    let rows = measure_all(&world, &settings, &setups, settings.plan.rate, true).await?;
    let what = if settings.plan.rate.is_some() {
        "fixed rate"
    } else {
        "max throughput"
    };
    println!("\n== load ({what}; median of {} runs)", settings.runs);
    print!("{}", report::load_table(&rows));
    print!("{}", report::own_line(&rows));
    println!();
    print!("{}", report::label_table(&rows));
    println!("   cpu_µs/req: the process under test (direct: the simulated partners); partners_µs and loadgen_µs: the simulated partners and this load generator, per request");
    print_cores_legend();
    print_held(&rows, settings.runs);
    print_instructions(&rows, settings.runs);
    println!("\n== where the CPU of the process under test goes, per request");
    print!("{}", report::thread_table(&rows));
    if world.callgrind.is_some() {
        // Connections, ratios and targets would measure valgrind, not the hub.
        return Ok(verdict(args, &rows));
    }
    println!("\n== connections (new: full mutual-TLS handshake, no resumption, one request each; idle: {} keep-alive connections)", settings.idle);
    print!("{}", report::connections_table(&rows));
    let errors = report::error_lines(&rows);
    if !errors.is_empty() {
        println!("\n== errors\n{errors}");
    }
    print!("{}", report::noise_lines(&rows));
    println!("   load average now {:.2}", procfs::load_average());
    println!("\n== ratios");
    print!("{}", report::ratios(&rows));
    println!("\n== targets");
    print!("{}", report::targets(&rows));
    let mut all = rows.clone();
    if args.half_rate {
        let Some((_, hub)) = rows.iter().find(|(s, _)| *s == Setup::Aidhub) else {
            return Err("--half-rate needs the aidhub setup".into());
        };
        let rate = hub.throughput / 2.0;
        println!(
            "\n== half rate: every setup at {rate:.0} req/s (half of aidhub's max), open loop"
        );
        let half = measure_all(&world, &settings, &setups, Some(rate), false).await?;
        print!("{}", report::half_rate(rate, &half));
        print!("{}", report::own_line(&half));
        print_cores_legend();
        print!("{}", report::noise_lines(&half));
        println!();
        print!("{}", report::label_table(&half));
        print_held(&half, settings.runs);
        println!();
        print!("{}", report::thread_table(&half));
        all.extend(half);
    }
    Ok(verdict(args, &all))
}

/// Whether the bench succeeded: the smoke check's verdict, or else whether every request was
/// answered (a measuring run with errors measured failures as well as the setup).
fn verdict(args: &BenchArgs, rows: &[(Setup, Figures)]) -> bool {
    if args.smoke {
        smoke_verdict(rows)
    } else {
        measured_verdict(rows)
    }
}

/// What the tables' `cores` column counts.
fn print_cores_legend() {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "   cores: the cores the setup's processes kept busy (the server, the partners and this load generator; direct's server is the partners), of the machine's {cores}"
    );
}

/// The hub's median view of its ledger's hold on answers and of its syncs, under the table
/// by request kind (one run's was printed with it).
fn print_held(rows: &[(Setup, Figures)], runs: usize) {
    if runs < 2 {
        return;
    }
    let hub = rows.iter().find(|(setup, _)| *setup == Setup::Aidhub);
    let over = format!("the windows, median of {runs} runs");
    for line in hub.map(|(_, f)| f.held.lines(&over)).unwrap_or_default() {
        println!("{line}");
    }
}

/// The median instruction counts of a `--callgrind` bench, and the hub's over nginx's.
fn print_instructions(rows: &[(Setup, Figures)], runs: usize) {
    let of = |which: Setup| rows.iter().find(|(setup, _)| *setup == which);
    if let Some(line) = of(Setup::Aidhub).and_then(|(_, f)| report::instructions_line(f, runs)) {
        println!("{line}");
    }
    if let Some(line) = of(Setup::Nginx).and_then(|(_, f)| report::nginx_instructions_line(f, runs))
    {
        println!("{line}");
    }
    for (setup, f) in rows {
        if let Some(line) = report::misses_line(setup.name(), f) {
            println!("{line}");
        }
    }
    let count = |which: Setup| of(which).and_then(|(_, f)| f.instructions);
    if let (Some(hub), Some(nginx)) = (count(Setup::Aidhub), count(Setup::Nginx)) {
        println!(
            "   callgrind: aidhub/nginx {:.2}× the instructions per request (user space only: \
             the kernel's part of each request, sockets and the journal's syncs, is not in \
             either count)",
            hub / nginx.max(1.0)
        );
    }
}

/// The smoke check: every setup served traffic and nothing failed.
fn smoke_verdict(rows: &[(Setup, Figures)]) -> bool {
    let mut ok = true;
    for (setup, f) in rows {
        if f.throughput <= 0.0 || f.error_count() > 0 || f.conns_per_s.is_some_and(|c| c <= 0.0) {
            let kinds = report::error_kinds([f]);
            println!(
                "smoke: {} failed ({} errors, {:.0} req/s){}",
                setup.name(),
                f.error_count(),
                f.throughput,
                if kinds.is_empty() {
                    String::new()
                } else {
                    format!(": {kinds}")
                }
            );
            ok = false;
        }
    }
    if ok {
        println!("smoke: every setup served traffic without errors");
    }
    ok
}

/// A measuring run's check: figures taken while requests fail measure no setup. Says which
/// setups failed how often and of what, and fails the bench, so that no script takes them
/// for figures (they stay printed).
fn measured_verdict(rows: &[(Setup, Figures)]) -> bool {
    let mut failed: Vec<(Setup, u64)> = Vec::new();
    for (setup, f) in rows.iter().filter(|(_, f)| f.error_count() > 0) {
        match failed.iter_mut().find(|(s, _)| s == setup) {
            Some((_, n)) => *n += f.error_count(),
            None => failed.push((*setup, f.error_count())),
        }
    }
    if failed.is_empty() {
        return true;
    }
    let counts: Vec<String> = failed
        .iter()
        .map(|(setup, n)| format!("{} {n}", setup.name()))
        .collect();
    let kinds: Vec<String> = failed
        .iter()
        .map(|(setup, _)| {
            let of_setup = rows.iter().filter(|(s, _)| s == setup).map(|(_, f)| f);
            format!("{}: {}", setup.name(), report::error_kinds(of_setup))
        })
        .collect();
    println!(
        "\nbench failed: requests failed ({}), and figures taken while requests fail measure \
         no setup; by kind: {}",
        counts.join(", "),
        kinds.join("; ")
    );
    false
}

async fn measure_all(
    world: &World,
    settings: &Settings,
    setups: &[Setup],
    rate: Option<f64>,
    full: bool,
) -> Result<Vec<(Setup, Figures)>, String> {
    let mut runs: Vec<(Setup, Vec<Figures>)> = setups.iter().map(|s| (*s, Vec::new())).collect();
    for run in 1..=settings.runs {
        for (setup, figures) in &mut runs {
            let tag = format!(
                "{}-{run}-{}",
                setup.name(),
                if full { "max" } else { "half" }
            );
            println!("-- {} run {run}/{}: starting", setup.name(), settings.runs);
            let f = measure(world, settings, *setup, &tag, rate, full).await?;
            println!("-- {} run {run}: {}", setup.name(), f.line());
            for line in f.held.lines("the window") {
                println!("{line}");
            }
            figures.push(f);
        }
    }
    Ok(runs
        .into_iter()
        .map(|(setup, figures)| (setup, report::median(&figures)))
        .collect())
}

/// Cores and CPU model, as the report states them.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cores} cores, {model}")
}

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
//! reads CPU time and peak memory from `/proc` ([`procfs`]), then measures fresh
//! connections and memory per idle connection ([`fresh`]) and stops the server. Everything
//! lives in one temporary directory ([`world`]); every child process is stopped when the
//! bench ends, however it ends ([`child`]). [`report`] prints the figures.

pub mod child;
pub mod fresh;
pub mod load;
pub mod mix;
pub mod nginx;
pub mod procfs;
pub mod report;
pub mod simulate;
pub mod wire;
pub mod world;

use report::Figures;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use wire::{Conn, Route, Wire};
use world::{Server, World};

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
    /// Partner connections of the load generator (half on the CMP side, half on the MSP side).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
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
    /// Then run every setup at half of aidhub's measured throughput and compare p99.
    #[arg(long)]
    pub half_rate: bool,
    /// A few seconds in total with small numbers: checks that every setup served traffic
    /// without errors (exit 1 otherwise), not speed.
    #[arg(long)]
    pub smoke: bool,
}

/// The options once `--smoke` and `--rate` are applied.
#[derive(Debug, Clone)]
struct Settings {
    plan: load::Plan,
    connections: usize,
    streams: usize,
    h2: bool,
    runs: usize,
    federations: usize,
    handshake_tasks: usize,
    handshake: Duration,
    idle: usize,
}

impl Settings {
    fn from(args: &BenchArgs) -> Result<Settings, String> {
        let rate = match args.rate.as_str() {
            "max" => None,
            text => Some(
                text.parse::<f64>()
                    .ok()
                    .filter(|r| *r > 0.0)
                    .ok_or_else(|| format!("--rate {text}: a positive number or `max`"))?,
            ),
        };
        let mut s = Settings {
            plan: load::Plan {
                warmup: Duration::from_secs(args.warmup_secs),
                duration: Duration::from_secs(args.duration_secs.max(1)),
                rate,
            },
            connections: args.connections.max(2),
            streams: if args.http2 { args.streams.max(1) } else { 1 },
            h2: args.http2,
            runs: args.runs.max(1),
            federations: args.federations.max(mix::PAIRS.len()),
            handshake_tasks: args.handshake_tasks,
            handshake: Duration::from_secs(args.handshake_secs),
            idle: args.idle_connections,
        };
        if args.smoke {
            s.plan.warmup = Duration::from_millis(300);
            s.plan.duration = Duration::from_secs(1);
            s.connections = s.connections.min(4);
            s.runs = 1;
            s.federations = 12;
            s.handshake_tasks = 2;
            s.handshake = Duration::from_millis(500);
            s.idle = 10;
        }
        Ok(s)
    }

    fn describe(&self) -> String {
        let lanes = self.connections / 2 * self.streams;
        let protocol = if self.h2 {
            format!("h2 ({} streams per connection)", self.streams)
        } else {
            "HTTP/1.1 keep-alive".to_owned()
        };
        let lp = match self.plan.rate {
            None => "closed loop (as fast as answers come)".to_owned(),
            Some(r) => format!("open loop at {r:.0} req/s (latency from the intended send time)"),
        };
        format!(
            "{protocol}, {} connections, {lanes} lanes, {lp}, {} s after {} ms warm-up",
            self.connections / 2 * 2,
            self.plan.duration.as_secs(),
            self.plan.warmup.as_millis()
        )
    }
}

/// Runs the bench; Ctrl-C stops it (and its children) too.
pub async fn run(args: BenchArgs) -> ExitCode {
    tokio::select! {
        code = bench(args) => code,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: stopping the child processes");
            ExitCode::from(130)
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
    let nginx = if setups.contains(&Setup::Nginx) {
        Some(nginx::ensure_installed(&mut |line| println!("   {line}"))?)
    } else {
        None
    };
    let world = World::create(nginx, args.ledger_dir.as_deref()).await?;
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
    println!("   cpu_µs/req: the process under test (direct: the simulated partners); partners_µs and loadgen_µs: the simulated partners and this load generator, per request");
    println!("\n== connections (new: full mutual-TLS handshake, no resumption, one request each; idle: {} keep-alive connections)", settings.idle);
    print!("{}", report::connections_table(&rows));
    let errors = report::error_lines(&rows);
    if !errors.is_empty() {
        println!("\n== errors\n{errors}");
    }
    println!(
        "   cores used by other processes during the windows (median): {}; load average now {:.2}",
        rows.iter()
            .map(|(s, f)| format!("{} {:.2}", s.name(), f.other_cores))
            .collect::<Vec<_>>()
            .join(", "),
        procfs::load_average()
    );
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
        all.extend(half);
    }
    if args.smoke {
        return Ok(smoke_verdict(&all));
    }
    Ok(true)
}

/// The smoke check: every setup served traffic and nothing failed.
fn smoke_verdict(rows: &[(Setup, Figures)]) -> bool {
    let mut ok = true;
    for (setup, f) in rows {
        if f.throughput <= 0.0 || f.error_count() > 0 || f.conns_per_s.is_some_and(|c| c <= 0.0) {
            println!(
                "smoke: {} failed ({} errors, {:.0} req/s)",
                setup.name(),
                f.error_count(),
                f.throughput
            );
            ok = false;
        }
    }
    if ok {
        println!("smoke: every setup served traffic without errors");
    }
    ok
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
            figures.push(f);
        }
    }
    Ok(runs
        .into_iter()
        .map(|(setup, figures)| (setup, report::median(&figures)))
        .collect())
}

/// One measurement of one setup.
async fn measure(
    world: &World,
    settings: &Settings,
    setup: Setup,
    tag: &str,
    rate: Option<f64>,
    full: bool,
) -> Result<Figures, String> {
    let mut server = world.start(setup, tag, settings.h2).await?;
    let pid = world.measured_pid(&server);
    let idle_rss = server
        .process
        .as_ref()
        .and_then(|p| procfs::memory(p.pid(), "VmRSS"));
    let wire = Wire {
        h2: settings.h2,
        resume: true,
    };
    let mut pairs = Vec::new();
    for (msp, cmp) in mix::PAIRS {
        let route = Arc::new(Route::new(world, &server, msp, cmp, wire)?);
        pairs.push((Conn::new(route, None), secret(world, msp, cmp)?));
    }
    let tokens = load::onboard(pairs, settings.federations).await?;
    println!(
        "   onboarded {} federations through {}",
        settings.federations,
        setup.name()
    );
    let lanes = lanes(world, &server, settings, &tokens).await?;
    let plan = load::Plan {
        rate,
        ..settings.plan
    };
    println!(
        "   measuring for {} s after {} ms warm-up over {} lanes",
        plan.duration.as_secs(),
        plan.warmup.as_millis(),
        lanes.len()
    );
    let watch = vec![
        load::Watch::Tree(pid),
        load::Watch::Tree(world.sims.pid()),
        load::Watch::Own(std::process::id()),
        load::Watch::Machine,
    ];
    let measured = load::run(lanes, plan, watch).await;
    server.check_alive()?;
    let requests = measured.requests.max(1) as f64;
    let per_request =
        |cpu: Option<&Duration>| cpu.map_or(0.0, |c| c.as_secs_f64() * 1e6 / requests);
    let p = |q: f64| measured.latency.value_at_quantile(q) as f64 / 1000.0;
    // What the machine did besides the bench's own processes (the direct setup measures
    // the partners, so they are not counted twice).
    let cpu = |i: usize| measured.cpu.get(i).copied().unwrap_or_default();
    let ours = if pid == world.sims.pid() {
        cpu(0) + cpu(2)
    } else {
        cpu(0) + cpu(1) + cpu(2)
    };
    let others = cpu(3).saturating_sub(ours).as_secs_f64() / measured.window.as_secs_f64();
    let mut figures = Figures {
        throughput: measured.requests as f64 / measured.window.as_secs_f64(),
        latency_ms: [
            p(0.5),
            p(0.9),
            p(0.99),
            p(0.999),
            measured.latency.max() as f64 / 1000.0,
        ],
        errors: measured.errors,
        cpu_us: per_request(measured.cpu.first()),
        partners_cpu_us: per_request(measured.cpu.get(1)),
        loadgen_cpu_us: per_request(measured.cpu.get(2)),
        peak_rss: server
            .process
            .as_ref()
            .and_then(|p| procfs::memory(p.pid(), "VmHWM"))
            .map(|b| b as f64),
        idle_rss: idle_rss.map(|b| b as f64),
        other_cores: others,
        ..Figures::default()
    };
    if full {
        connections(world, &server, settings, &tokens, pid, &mut figures).await?;
    }
    server.check_alive()?;
    Ok(figures)
}

/// Fresh connections per second, and memory per idle connection (servers only).
async fn connections(
    world: &World,
    server: &Server,
    settings: &Settings,
    tokens: &[Arc<Vec<uuid::Uuid>>],
    pid: u32,
    figures: &mut Figures,
) -> Result<(), String> {
    let (msp, cmp) = mix::PAIRS[0];
    let token = tokens
        .first()
        .and_then(|t| t.first())
        .ok_or("no federation")?;
    let path = format!("/v1/profiles/status/{token}");
    if server.process.is_some() && settings.idle > 0 {
        println!("   holding {} idle connections", settings.idle);
        let wire = Wire {
            h2: settings.h2,
            resume: true,
        };
        let route = Arc::new(Route::new(world, server, cmp, msp, wire)?);
        let idle = fresh::hold_idle(route, path.clone(), settings.idle, pid).await;
        figures.rss_per_conn = idle.per_connection();
        figures.conn_errors.extend(
            idle.errors
                .into_iter()
                .map(|(k, n)| (format!("idle: {k}"), n)),
        );
    }
    if settings.handshake_tasks > 0 && !settings.handshake.is_zero() {
        println!(
            "   opening fresh connections for {} ms",
            settings.handshake.as_millis()
        );
        let wire = Wire {
            h2: false,
            resume: false,
        };
        let route = Arc::new(Route::new(world, server, cmp, msp, wire)?);
        let f = fresh::handshakes(
            route,
            path,
            settings.handshake_tasks,
            settings.handshake,
            pid,
        )
        .await;
        figures.conns_per_s = Some(f.connections as f64 / f.window.as_secs_f64());
        figures.cpu_per_conn_us = Some(f.cpu.as_secs_f64() * 1e6 / f.connections.max(1) as f64);
        figures.conn_errors.extend(
            f.errors
                .into_iter()
                .map(|(k, n)| (format!("fresh: {k}"), n)),
        );
    }
    Ok(())
}

/// Opens every lane's connections before the measurement starts.
async fn lanes(
    world: &World,
    server: &Server,
    settings: &Settings,
    tokens: &[Arc<Vec<uuid::Uuid>>],
) -> Result<Vec<load::Lane>, String> {
    let wire = Wire {
        h2: settings.h2,
        resume: true,
    };
    let mut lanes = Vec::new();
    for group in 0..settings.connections / 2 {
        let pair = group % mix::PAIRS.len();
        let (msp, cmp) = mix::PAIRS[pair];
        let cmp_route = Arc::new(Route::new(world, server, cmp, msp, wire)?);
        let msp_route = Arc::new(Route::new(world, server, msp, cmp, wire)?);
        let cmp_sender = cmp_route.connect().await?;
        let msp_sender = msp_route.connect().await?;
        let secret = secret(world, msp, cmp)?;
        // h2 lanes of a group share its two connections; an HTTP/1.1 group has one lane.
        let mut cmp_senders: Vec<_> = (1..settings.streams)
            .filter_map(|_| cmp_sender.share())
            .collect();
        let mut msp_senders: Vec<_> = (1..settings.streams)
            .filter_map(|_| msp_sender.share())
            .collect();
        cmp_senders.push(cmp_sender);
        msp_senders.push(msp_sender);
        for (stream, (c, m)) in cmp_senders.into_iter().zip(msp_senders).enumerate() {
            lanes.push(load::Lane {
                cmp: Conn::new(cmp_route.clone(), Some(c)),
                msp: Conn::new(msp_route.clone(), Some(m)),
                tokens: tokens[pair].clone(),
                secret: secret.clone(),
                rng: mix::Rng::new((group * 1000 + stream) as u64 + 1),
            });
        }
    }
    Ok(lanes)
}

fn secret(world: &World, msp: &str, cmp: &str) -> Result<Arc<[u8]>, String> {
    world
        .partner(cmp)?
        .account_id_secret_for(msp)
        .map(|s| Arc::from(s.expose()))
        .ok_or_else(|| format!("{cmp} has no account-id secret for {msp}"))
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

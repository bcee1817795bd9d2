//! One measurement of one setup: start its server, read its idle memory, onboard the
//! federations, open the lanes' connections, drive the mix, read CPU time and peak memory,
//! then fresh connections, and stop the server; memory per idle connection is read on a
//! fresh server of its own. Also the options as a measurement uses them ([`Settings`]).

use super::callgrind::Counted;
use super::report::{Figures, ThreadShare};
use super::wire::{Conn, Route, Wire};
use super::world::{Server, World};
use super::{fresh, load, mix, procfs, stalls, BenchArgs, Setup};
use std::sync::Arc;
use std::time::Duration;

/// The options once `--smoke` and `--rate` are applied.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Warm-up, window and rate.
    pub plan: load::Plan,
    /// Connections of the load generator (both sides).
    pub connections: usize,
    /// Lanes per connection pair (h2), else 1.
    pub streams: usize,
    /// Speak h2.
    pub h2: bool,
    /// Measurements per setup.
    pub runs: usize,
    /// Federations onboarded before each measurement.
    pub federations: usize,
    /// Concurrent tasks opening fresh connections.
    pub handshake_tasks: usize,
    /// How long they open connections.
    pub handshake: Duration,
    /// Idle connections held to measure memory per connection.
    pub idle: usize,
}

impl Settings {
    /// Applies `--smoke` and `--rate` to the options.
    pub fn from(args: &BenchArgs) -> Result<Settings, String> {
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
            connections: args
                .connections
                .unwrap_or(if args.callgrind {
                    super::callgrind::DEFAULT_CONNECTIONS
                } else {
                    64
                })
                .max(2),
            streams: if args.http2 { args.streams.max(1) } else { 1 },
            h2: args.http2,
            runs: args.runs.max(1),
            federations: args.federations.max(mix::PAIRS.len()),
            handshake_tasks: args.handshake_tasks,
            handshake: Duration::from_secs(args.handshake_secs),
            idle: args.idle_connections,
        };
        if args.callgrind && s.plan.rate.is_none() {
            s.plan.rate = Some(super::callgrind::DEFAULT_RATE);
        }
        if args.smoke {
            // Under valgrind the first requests of each kind wait while their code is
            // translated, a debug build's most of all: warm up long enough that the window
            // does not start behind its schedule.
            s.plan.warmup = Duration::from_millis(if args.callgrind { 2_000 } else { 300 });
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

    /// The load in words.
    pub fn describe(&self) -> String {
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

/// One measurement of one setup.
pub async fn measure(
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
    let tokens = load::onboard(pairs, settings.federations)
        .await
        .map_err(|e| server.explain(e))?;
    println!(
        "   onboarded {} federations through {}",
        settings.federations,
        setup.name()
    );
    let lanes = lanes(world, &server, settings, &tokens)
        .await
        .map_err(|e| server.explain(e))?;
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
        load::Watch::Steal,
    ];
    // Started before the schedule: settling the meters' priority runs two commands each.
    let meter = stalls::Meter::start();
    let schedule = plan.schedule();
    let counting = async {
        match (&world.callgrind, setup) {
            (Some(callgrind), Setup::Aidhub | Setup::Nginx) => {
                let name = World::profile(setup, tag);
                Some(
                    callgrind
                        .window(pid, &name, schedule.from, schedule.end)
                        .await,
                )
            }
            _ => None,
        }
    };
    let (measured, counted) = tokio::join!(
        load::run(lanes, plan, schedule, watch, pid, server.admin),
        counting
    );
    let stalls = meter.stop(schedule.from, schedule.end);
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
    let window = measured.window.as_secs_f64();
    // The hypervisor's steal is in the machine's busy time but is no process's.
    let others = cpu(3)
        .saturating_sub(ours)
        .saturating_sub(cpu(4))
        .as_secs_f64()
        / window;
    let steal = cpu(4).as_secs_f64() / window;
    let mut figures = Figures {
        throughput: measured.requests as f64 / window,
        latency_ms: [
            p(0.5),
            p(0.9),
            p(0.99),
            p(0.999),
            measured.latency.max() as f64 / 1000.0,
        ],
        silence_ms: measured.silence.as_secs_f64() * 1000.0,
        own_ms: (!measured.own.is_empty()).then(|| {
            let ms = |us: u64| us as f64 / 1000.0;
            [
                ms(measured.own.value_at_quantile(0.99)),
                ms(measured.own.max()),
            ]
        }),
        by_label: measured
            .by_label
            .iter()
            .map(|(label, h)| {
                let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
                (*label, [h.len() as f64 / requests, ms(0.5), ms(0.99)])
            })
            .collect(),
        errors: measured.errors,
        cpu_us: per_request(measured.cpu.first()),
        partners_cpu_us: per_request(measured.cpu.get(1)),
        loadgen_cpu_us: per_request(measured.cpu.get(2)),
        threads: measured
            .threads
            .iter()
            .map(|(group, t)| {
                let share = ThreadShare {
                    threads: f64::from(t.threads),
                    user_us: per_request(Some(&t.user)),
                    system_us: per_request(Some(&t.system)),
                    voluntary: t.voluntary as f64 / requests,
                    involuntary: t.involuntary as f64 / requests,
                    queued_us: t.queued.map_or(f64::NAN, |q| per_request(Some(&q))),
                    runs: t.runs as f64 / requests,
                };
                (group.clone(), share)
            })
            .collect(),
        peak_rss: server
            .process
            .as_ref()
            .and_then(|p| procfs::memory(p.pid(), "VmHWM"))
            .map(|b| b as f64),
        idle_rss: idle_rss.map(|b| b as f64),
        other_cores: others,
        others: Some(measured.others),
        steal_cores: steal,
        stalls,
        loadgen_queued_us: measured
            .generator
            .queued
            .map_or(f64::NAN, |q| per_request(Some(&q))),
        loadgen_queued_per_run_us: measured.generator.queued.map_or(f64::NAN, |q| {
            q.as_secs_f64() * 1e6 / measured.generator.runs.max(1) as f64
        }),
        held: measured.held,
        ..Figures::default()
    };
    match counted {
        Some(Counted::Instructions {
            instructions,
            misses,
            dump,
        }) => {
            figures.instructions = Some(instructions as f64 / requests);
            figures.misses = misses.map(|m| {
                [
                    m.data as f64 / requests,
                    m.first as f64 / requests,
                    m.last as f64 / requests,
                    m.code as f64 / requests,
                ]
            });
            println!(
                "   callgrind dump of the window ({}): {}",
                setup.name(),
                dump.display()
            );
            match super::callgrind::by_crate(&dump) {
                Ok(by) => println!(
                    "{}",
                    super::callgrind::describe(&by, setup.name(), requests, 10)
                ),
                Err(e) => println!("   no breakdown by crate: {e}"),
            }
        }
        Some(Counted::Failed(e)) => return Err(format!("callgrind: {e}")),
        None => {}
    }
    // Under callgrind a handshake costs valgrind's time, not the hub's: not measured.
    if full && world.callgrind.is_none() {
        handshakes(world, &server, settings, &tokens, pid, &mut figures).await?;
        if server.process.is_some() && settings.idle > 0 {
            idle_connections(world, setup, tag, settings, &mut figures).await?;
        }
    }
    server.check_alive()?;
    Ok(figures)
}

/// Fresh connections per second (full mutual-TLS handshakes) on the server that carried the
/// load.
async fn handshakes(
    world: &World,
    server: &Server,
    settings: &Settings,
    tokens: &[Arc<Vec<uuid::Uuid>>],
    pid: u32,
    figures: &mut Figures,
) -> Result<(), String> {
    if settings.handshake_tasks == 0 || settings.handshake.is_zero() {
        return Ok(());
    }
    let (msp, cmp) = mix::PAIRS[0];
    let path = status_path(tokens)?;
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
    Ok(())
}

/// Memory per idle connection, on a fresh server of its own: the one that carried the load
/// would place new connections in memory the load left free, and the figure would depend on
/// the load before it rather than on what a connection holds.
async fn idle_connections(
    world: &World,
    setup: Setup,
    tag: &str,
    settings: &Settings,
    figures: &mut Figures,
) -> Result<(), String> {
    let (msp, cmp) = mix::PAIRS[0];
    let mut server = world
        .start(setup, &format!("{tag}-idle"), settings.h2)
        .await?;
    let pid = world.measured_pid(&server);
    let wire = Wire {
        h2: settings.h2,
        resume: true,
    };
    // One federation: each connection sends one Request Profile Status with its token.
    let onboarding = Arc::new(Route::new(world, &server, msp, cmp, wire)?);
    let pair = (Conn::new(onboarding, None), secret(world, msp, cmp)?);
    let path = status_path(&load::onboard(vec![pair], 1).await?)?;
    println!(
        "   holding {} idle connections on a fresh {}",
        settings.idle,
        setup.name()
    );
    let route = Arc::new(Route::new(world, &server, cmp, msp, wire)?);
    let idle = fresh::hold_idle(route, path, settings.idle, pid).await;
    figures.rss_per_conn = idle.per_connection();
    figures.conn_errors.extend(
        idle.errors
            .into_iter()
            .map(|(k, n)| (format!("idle: {k}"), n)),
    );
    server.check_alive()
}

/// The path of Request Profile Status for the first federation onboarded.
fn status_path(tokens: &[Arc<Vec<uuid::Uuid>>]) -> Result<String, String> {
    let token = tokens
        .first()
        .and_then(|t| t.first())
        .ok_or("no federation")?;
    Ok(format!("/v1/profiles/status/{token}"))
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

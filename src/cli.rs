//! The command line: `serve`, `check`, `certs`, `demo`, `ledger …`, `bench` (and the hidden
//! `simulate`, the bench's partner process).
//!
//! Each subcommand prints what it does and names the cause of any failure; exit codes are 0
//! (done), 1 (the configuration or the data is wrong), 2 (usage).

use crate::aid1::Role;
use crate::config::{Credential, HubConfig, Routes};
use crate::run::{self, Options};
use crate::signals::{Received, Signals};
use crate::snapshot::Snapshot;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// aidhub: the AID.02 aggregation hub between MSPs and CMPs.
#[derive(Debug, Parser)]
#[command(name = "aidhub", version, about)]
pub struct Cli {
    /// The hub configuration file.
    #[arg(
        long,
        short,
        global = true,
        default_value = "config/hub.toml",
        env = "AIDHUB_CONFIG"
    )]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub until SIGTERM or Ctrl-C.
    Serve {
        /// Seconds requests in flight may take to finish on shutdown.
        #[arg(long, default_value_t = 10)]
        grace_secs: u64,
    },
    /// Validate config/hub.toml and routes.toml (and every file they name); print every problem.
    Check,
    /// Create the development PKI (CA, hub and partner certificates) for routes.toml.
    Certs {
        /// Where to write; defaults to the config's tls.dev_pki, else `certs`.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Start a hub with simulated partners on loopback and walk through every AID1 function.
    Demo,
    /// Inspect or load the ledger of a stopped hub.
    #[command(subcommand)]
    Ledger(crate::ledger::cli::LedgerCommand),
    /// Measure throughput, latency, CPU and memory: direct calls, through aidhub, through nginx.
    Bench(crate::bench::BenchArgs),
    /// Run the simulated partners of a routes file until SIGTERM (the bench's partner process).
    #[command(hide = true)]
    Simulate {
        /// The routes file naming the partners and their loopback upstream addresses.
        #[arg(long)]
        routes: PathBuf,
        /// The PKI directory with the partners' server certificates and the CA.
        #[arg(long)]
        certs: PathBuf,
    },
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("aidhub: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let base = PathBuf::from(".");
    match cli.command {
        Command::Serve { grace_secs } => runtime.block_on(serve(cli.config, base, grace_secs)),
        Command::Check => check(&cli.config, &base),
        Command::Certs { dir } => certs(&cli.config, &base, dir),
        Command::Demo => runtime.block_on(crate::demo::run()),
        Command::Ledger(command) => {
            runtime.block_on(crate::ledger::cli::run(command, &cli.config, &base))
        }
        Command::Bench(args) => runtime.block_on(crate::bench::run(args)),
        Command::Simulate { routes, certs } => {
            runtime.block_on(crate::bench::simulate::run(&routes, &certs))
        }
    }
}

/// Sets up logging from the config (text or JSON, filter), overridable by `RUST_LOG`. Lines
/// are written by a background thread, so a request never waits on a write to stderr (the
/// channel blocks rather than drops when the writer falls behind). Keep the guard alive
/// until exit: dropping it flushes what is queued.
pub fn init_logging(json: bool, level: &str) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    guard
}

async fn serve(config: PathBuf, base: PathBuf, grace_secs: u64) -> ExitCode {
    let (_logging, json) = match HubConfig::load(&config, &base) {
        Ok(c) => (init_logging(c.log.json, &c.log.level), c.log.json),
        Err(e) => {
            eprintln!("aidhub: {} is not valid:\n{e}", config.display());
            return ExitCode::FAILURE;
        }
    };
    // Once logging is set up, a failure is said in the log's format: with `log.format =
    // "json"` every line on stderr is a JSON object.
    let fail = |what: &dyn std::fmt::Display| {
        if json {
            tracing::error!("{what}");
        } else {
            eprintln!("aidhub: {what}");
        }
        ExitCode::FAILURE
    };
    let options = Options {
        hub_toml: config,
        base,
        partners_addr: None,
        admin_addr: None,
        browsers_addr: None,
        devices_addr: None,
        grace: Duration::from_secs(grace_secs),
    };
    let mut signals = match Signals::register() {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let running = match run::start(options).await {
        Ok(r) => r,
        Err(e) => return fail(&format_args!("cannot start: {e}")),
    };
    print_welcome(&running, json);
    // Reloads on SIGHUP; stops on SIGTERM or SIGINT.
    while signals.next().await == Received::Hup {
        let hub = running.hub.clone();
        // Reading certificates is blocking file I/O; the outcome is logged and counted by
        // the reload itself.
        let _ = tokio::task::spawn_blocking(move || hub.reload("SIGHUP")).await;
    }
    tracing::info!("shutting down: draining requests in flight");
    match running.shutdown().await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// Tells a developer how to call the hub: on a development PKI, two ready-to-paste calls
/// (onboarding, then an activation-code request) between the first MSP and CMP. With
/// `json`, one log event with the addresses and partners instead, and no calls: they are
/// for a developer's terminal, and carry a signed account id the log must not.
fn print_welcome(running: &run::Running, json: bool) {
    let snap = running.hub.snapshot();
    let addr = running.partners_addr;
    let partners: Vec<String> = snap
        .routes
        .partners
        .iter()
        .map(|p| format!("{} ({})", p.id, p.role.as_str()))
        .collect();
    if json {
        tracing::info!(
            partners_addr = %addr,
            admin_addr = %running.admin_addr,
            browsers_addr = running.browsers_addr.map(|a| a.to_string()),
            partners = partners.join(", "),
            "aidhub is serving AID1 (mutual TLS)"
        );
        return;
    }
    eprintln!("aidhub is serving AID1 on https://{addr} (mutual TLS)");
    eprintln!("admin API on http://{}", running.admin_addr);
    eprintln!("partners: {}", partners.join(", "));
    if let Some(browsers) = running.browsers_addr {
        eprintln!(
            "touchpoint redirects for browsers on https://{browsers}/touchpoints/{{partner}}/onboarding and …/return"
        );
    }
    let Some(dir) = &snap.config.tls.dev_pki else {
        return;
    };
    let first = |role| snap.routes.partners.iter().find(|p| p.role == role);
    let (Some(msp), Some(cmp)) = (first(Role::Msp), first(Role::Cmp)) else {
        return;
    };
    let Some(secret) = cmp.account_id_secret_for(&msp.id) else {
        return;
    };
    let now = crate::aid1::lifecycle::now_ms() / 1000;
    let claims = crate::account_id::AccountClaims {
        sid: uuid::Uuid::new_v4(),
        exp: now + 3600,
        iat: Some(now),
        has_ver: false,
    };
    let account_id = crate::account_id::sign(&claims, None, false, secret.expose());
    let token = uuid::Uuid::new_v4();
    let ca = crate::pki::ca_cert(dir);
    let call = |from: &crate::config::Partner, to: &crate::config::Partner, rest: &str| {
        let (cert, key) = crate::pki::partner_client(dir, &from.id);
        let credential = match &from.credential {
            Credential::ApiKey(_) => {
                format!("-H \"api-key: <{}'s api_key in routes.toml>\"", from.id)
            }
            Credential::Basic { username, .. } => {
                format!("-u '{username}:<password in routes.toml>'")
            }
        };
        format!(
            "  curl --cacert {ca} --cert {cert} --key {key} \\\n    -H 'client-id: {from}' -H 'target-id: {to}' {credential} \\\n    -H \"CMP-request-id: $(cat /proc/sys/kernel/random/uuid)\" -H \"correlation-id: $(cat /proc/sys/kernel/random/uuid)\" \\\n    {rest}",
            ca = ca.display(),
            cert = cert.display(),
            key = key.display(),
            from = from.id,
            to = to.id,
        )
    };
    let base = format!("https://localhost:{}", addr.port());
    eprintln!(
        "\nonboard a user ({} tells {} its msp_token; the account id is valid for an hour):",
        msp.id, cmp.id
    );
    eprintln!(
        "{}",
        call(msp, cmp, &format!("-H 'content-type: application/json' -d '{{\"msp_token\":\"{token}\",\"phoneNumber\":\"b3YsYkQq\",\"subscriptionType\":\"private\",\"iv\":\"N1RnMnHh\"}}' \\\n    {base}/cesim/msp/v1/users/{account_id}"))
    );
    eprintln!(
        "\nthen ask for an activation code ({} calling {}):",
        cmp.id, msp.id
    );
    eprintln!(
        "{}",
        call(cmp, msp, &format!("-H 'content-type: application/json' -d '{{\"profileType\":\"personal\",\"deviceType\":\"tcu\",\"imei\":\"\",\"eid\":\"\",\"activationCodeRequestID\":\"'$(cat /proc/sys/kernel/random/uuid)'\"}}' \\\n    {base}/v1/activation-code-requests/{token}"))
    );
    eprintln!("\nor watch every function cross the hub: cargo run --release -- demo\n");
}

fn check(config: &Path, base: &Path) -> ExitCode {
    let mut problems = Vec::new();
    let hub = match HubConfig::load(config, base) {
        Ok(h) => Some(h),
        Err(e) => {
            problems.extend(e.problems);
            None
        }
    };
    if let Some(hub) = &hub {
        if let Err(e) = Routes::load(&hub.routes, base) {
            problems.extend(e.problems);
        }
    }
    if problems.is_empty() {
        if let Err(e) = Snapshot::load(config, base, 0) {
            problems.extend(e.problems);
        }
    }
    if problems.is_empty() {
        if let Ok(s) = Snapshot::load(config, base, 0) {
            println!(
                "ok: {} partners, configuration hash {}",
                s.routes.partners.len(),
                s.hash
            );
        }
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            println!("{p}");
        }
        println!("{} problem(s) found", problems.len());
        ExitCode::FAILURE
    }
}

fn certs(config: &Path, base: &Path, dir: Option<PathBuf>) -> ExitCode {
    let hub = match HubConfig::load(config, base) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("aidhub: {e}");
            return ExitCode::FAILURE;
        }
    };
    let routes = match Routes::load(&hub.routes, base) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("aidhub: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut hub = hub;
    hub.tls.dev_pki = Some(
        dir.or(hub.tls.dev_pki.clone())
            .unwrap_or_else(|| base.join("certs")),
    );
    match run::ensure_dev_pki(&hub, Some(&routes), &mut |line| println!("{line}")) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aidhub: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.ci/pgo-build` trains its profile with `aidhub bench`: each of its bench command lines
    /// must still parse here, or the profile-guided build would break only when someone runs
    /// it (it takes a quarter of an hour, too long for CI).
    #[test]
    fn the_profile_guided_builds_training_commands_parse() {
        let script = include_str!("../.ci/pgo-build");
        let joined = script.replace("\\\n", " ");
        let benches: Vec<Vec<&str>> = joined
            .lines()
            .filter_map(|line| line.trim().strip_prefix("\"$trained\" "))
            .map(|rest| rest.split_whitespace().collect())
            .collect();
        assert_eq!(benches.len(), 2, "{script}");
        for args in benches {
            let cli = Cli::try_parse_from(std::iter::once("aidhub").chain(args.iter().copied()))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert!(matches!(cli.command, Command::Bench(_)), "{args:?}");
        }
    }
}

//! `aidhub ledger …`: inspection of the configured ledger, export and import, and a
//! benchmark of either backend.
//!
//! They work on whichever backend `[ledger]` names. sled allows one process per database,
//! so on sled these commands refuse (naming the cause) while the hub runs on the same files
//! (use the admin endpoints of a running hub instead); on PostgreSQL they run beside the
//! replicas.

use super::bench;
use super::postgres::PostgresLedger;
use super::sled::SledLedger;
use super::transfers::TransferLedger;
use super::{Ledger, NewFederation, Pair, RequestFilter};
use crate::config::{HubConfig, LedgerBackend, PostgresSettings, Secret};
use clap::Subcommand;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `aidhub ledger` subcommands.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// What the hub knows about one msp_token: its federation and profiles.
    Show {
        /// The msp_token (UUID).
        token: uuid::Uuid,
    },
    /// Activation-code requests (open ones by default).
    Requests {
        /// Include closed requests.
        #[arg(long)]
        all: bool,
        /// Only requests involving this partner.
        #[arg(long)]
        partner: Option<String>,
        /// Only requests older than this many seconds.
        #[arg(long)]
        older_than_secs: Option<u64>,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// TS.43 eSIM transfers, newest first, with their steps: where each one stopped.
    Transfers {
        /// Only this carrier's.
        #[arg(long)]
        carrier: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Counts of federations, requests and profiles.
    Stats,
    /// Every record as one JSON object per line, to standard output or a file.
    Export {
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Load federations made before the hub existed, from JSON lines:
    /// `{"msp_token": "<uuid>", "msp": "<id>", "cmp": "<id>", "subscription_type": "private"}`.
    Import {
        /// The JSON-lines file (`-` for standard input).
        file: PathBuf,
    },
    /// Measure a backend: calls per second and latency, one writer and many at once. Works
    /// on a scratch database (sled: a temporary directory; PostgreSQL: a schema of its own,
    /// dropped afterwards), never on the hub's records.
    Bench {
        /// `sled` or `postgres`.
        #[arg(long, default_value = "sled")]
        backend: String,
        /// PostgreSQL URL (default: `[ledger] url`, else `AIDHUB_DATABASE_URL`).
        #[arg(long)]
        url: Option<String>,
        /// Rounds of five ledger calls per run.
        #[arg(long, default_value_t = 2000)]
        rounds: usize,
        /// Concurrent writers of each run, comma-separated.
        #[arg(long, default_value = "1,64", value_delimiter = ',')]
        writers: Vec<usize>,
        /// PostgreSQL connections (default: the largest writer count).
        #[arg(long)]
        pool_size: Option<usize>,
        /// Then load this many federations and time lookups among them (e.g. 1000000).
        #[arg(long, default_value_t = 0)]
        preload: usize,
    },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportLine {
    msp_token: uuid::Uuid,
    msp: String,
    cmp: String,
    #[serde(default)]
    sid: Option<uuid::Uuid>,
    #[serde(default)]
    subscription_type: Option<String>,
}

/// Runs one ledger subcommand against the ledger named by the hub config.
pub async fn run(command: LedgerCommand, config: &Path, base: &Path) -> ExitCode {
    let config = match HubConfig::load(config, base) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("aidhub: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let LedgerCommand::Bench {
        backend,
        url,
        rounds,
        writers,
        pool_size,
        preload,
    } = command
    {
        let scratch = Scratch {
            backend,
            url,
            pool_size: pool_size.unwrap_or_else(|| writers.iter().copied().max().unwrap_or(1)),
        };
        return match benchmark(&config, scratch, rounds, &writers, preload).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("aidhub: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // TS.43 transfers live in the sled database only (the PostgreSQL ledger does not hold them).
    let mut transfers: Option<Arc<dyn TransferLedger>> = None;
    let ledger: Arc<dyn Ledger> = match &config.ledger.backend {
        LedgerBackend::Sled => {
            let path = &config.ledger.path;
            if !path.exists() && !matches!(command, LedgerCommand::Import { .. }) {
                eprintln!(
                    "aidhub: no ledger at {} (has the hub run yet?)",
                    path.display()
                );
                return ExitCode::FAILURE;
            }
            match SledLedger::open(path) {
                Ok(l) => {
                    transfers = Some(Arc::new(l.clone()));
                    Arc::new(l)
                }
                Err(e) => {
                    eprintln!(
                        "aidhub: cannot open the ledger at {}: {e} (is the hub still running on it?)",
                        path.display()
                    );
                    return ExitCode::FAILURE;
                }
            }
        }
        LedgerBackend::Postgres(pg) => match PostgresLedger::connect(pg).await {
            Ok(l) => Arc::new(l),
            Err(e) => {
                eprintln!("aidhub: cannot open the ledger on PostgreSQL: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    match execute(command, &*ledger, transfers.as_deref()).await {
        Ok(()) => match ledger.flush().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("aidhub: ledger flush: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("aidhub: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where `ledger bench` works.
struct Scratch {
    backend: String,
    url: Option<String>,
    pool_size: usize,
}

async fn benchmark(
    config: &HubConfig,
    scratch: Scratch,
    rounds: usize,
    writers: &[usize],
    preload: usize,
) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let (ledger, schema): (Arc<dyn Ledger>, Option<PostgresSettings>) =
        match scratch.backend.as_str() {
            "sled" => {
                let ledger =
                    SledLedger::open(&dir.path().join("ledger")).map_err(|e| e.to_string())?;
                (Arc::new(ledger), None)
            }
            "postgres" => {
                let url = match (&scratch.url, &config.ledger.backend) {
                    (Some(url), _) => Secret::literal(url),
                    (None, LedgerBackend::Postgres(pg)) => pg.url.clone(),
                    (None, LedgerBackend::Sled) => {
                        Secret::resolve("env:AIDHUB_DATABASE_URL", Path::new(".")).map_err(|e| {
                            format!(
                            "no PostgreSQL URL (--url, [ledger] url or AIDHUB_DATABASE_URL): {e}"
                        )
                        })?
                    }
                };
                let settings = PostgresSettings {
                    url,
                    pool_size: scratch.pool_size.max(1),
                    schema: format!("aidhub_bench_{}", uuid::Uuid::new_v4().simple()),
                    timeout: Duration::from_secs(30),
                };
                let ledger = PostgresLedger::connect(&settings)
                    .await
                    .map_err(|e| e.to_string())?;
                (Arc::new(ledger), Some(settings))
            }
            other => return Err(format!("--backend must be sled or postgres, not {other}")),
        };
    println!("{}", bench::HEADER);
    let mut outcome = Ok(());
    for &n in writers {
        match bench::run(ledger.clone(), n, rounds).await {
            Ok(run) => run
                .rows(&scratch.backend)
                .iter()
                .for_each(|row| println!("{row}")),
            Err(e) => {
                outcome = Err(e.to_string());
                break;
            }
        }
    }
    if outcome.is_ok() && preload > 0 {
        outcome = lookups(&*ledger, &scratch.backend, preload).await;
    }
    drop(ledger);
    if let Some(settings) = schema {
        PostgresLedger::drop_schema(&settings)
            .await
            .map_err(|e| format!("dropping the bench schema {}: {e}", settings.schema))?;
    }
    outcome
}

/// Loads `count` federations, then prints lookup latency among them and this process's memory.
async fn lookups(ledger: &dyn Ledger, backend: &str, count: usize) -> Result<(), String> {
    eprintln!("   loading {count} federations");
    let (latencies, load) = bench::preload_and_lookup(ledger, count, 10_000)
        .await
        .map_err(|e| e.to_string())?;
    let (rss, peak) = bench::rss_mib().unwrap_or((0.0, 0.0));
    println!(
        "\n{backend}: {count} federations loaded in {:.1} s; {} lookups: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; RSS {rss:.1} MiB (peak {peak:.1} MiB)",
        load.as_secs_f64(),
        latencies.len(),
        latencies.value_at_quantile(0.5) as f64 / 1000.0,
        latencies.value_at_quantile(0.99) as f64 / 1000.0,
        latencies.max() as f64 / 1000.0,
    );
    Ok(())
}

async fn execute(
    command: LedgerCommand,
    ledger: &dyn Ledger,
    transfers: Option<&dyn TransferLedger>,
) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    match command {
        LedgerCommand::Transfers { carrier, limit } => {
            let transfers = transfers.ok_or(
                "TS.43 transfers are kept in the sled ledger only; this hub's ledger is PostgreSQL",
            )?;
            let list = transfers
                .transfers(carrier.as_deref(), limit)
                .await
                .map_err(|e| e.to_string())?;
            for t in list {
                writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string(&t).map_err(|e| e.to_string())?
                )
                .map_err(|e| e.to_string())?;
            }
        }
        LedgerCommand::Show { token } => {
            let federation = ledger.federation(token).await.map_err(|e| e.to_string())?;
            let Some(federation) = federation else {
                return Err(format!("no federation with msp_token {token}"));
            };
            let profiles = ledger.profiles(token).await.map_err(|e| e.to_string())?;
            let view = serde_json::json!({ "federation": federation, "profiles": profiles });
            writeln!(
                stdout,
                "{}",
                serde_json::to_string_pretty(&view).map_err(|e| e.to_string())?
            )
            .map_err(|e| e.to_string())?;
        }
        LedgerCommand::Requests {
            all,
            partner,
            older_than_secs,
            limit,
        } => {
            let filter = RequestFilter {
                open_only: !all,
                partner,
                older_than_ms: older_than_secs.map(|s| s * 1000),
                now: crate::aid1::lifecycle::now_ms(),
                limit: Some(limit),
            };
            let requests = ledger
                .list_requests(&filter)
                .await
                .map_err(|e| e.to_string())?;
            for request in &requests {
                writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string(request).map_err(|e| e.to_string())?
                )
                .map_err(|e| e.to_string())?;
            }
            eprintln!("{} request(s)", requests.len());
        }
        LedgerCommand::Stats => {
            let stats = ledger.stats().await.map_err(|e| e.to_string())?;
            writeln!(
                stdout,
                "{}",
                serde_json::to_string_pretty(&stats).map_err(|e| e.to_string())?
            )
            .map_err(|e| e.to_string())?;
        }
        LedgerCommand::Export { out } => {
            let mut sink: Box<dyn Write + Send> = match &out {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            let mut failure = None;
            let count = ledger
                .export(&mut |record| {
                    let line = serde_json::to_string(&record)
                        .map_err(|e| super::LedgerError::Storage(e.to_string()))?;
                    if let Err(e) = writeln!(sink, "{line}") {
                        failure = Some(e.to_string());
                        return Err(super::LedgerError::Storage(e.to_string()));
                    }
                    Ok(())
                })
                .await
                .map_err(|e| failure.clone().unwrap_or_else(|| e.to_string()))?;
            sink.flush().map_err(|e| e.to_string())?;
            eprintln!("exported {count} record(s)");
        }
        LedgerCommand::Bench { .. } => return Err("bench runs on its own ledger".into()),
        LedgerCommand::Import { file } => {
            let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
                Box::new(std::io::BufReader::new(std::io::stdin()))
            } else {
                Box::new(std::io::BufReader::new(
                    std::fs::File::open(&file).map_err(|e| format!("{}: {e}", file.display()))?,
                ))
            };
            let mut federations = Vec::new();
            let mut problems = Vec::new();
            let now = crate::aid1::lifecycle::now_ms();
            for (n, line) in reader.lines().enumerate() {
                let line = line.map_err(|e| format!("{}: line {}: {e}", file.display(), n + 1))?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<ImportLine>(&line) {
                    Ok(l) => federations.push(NewFederation {
                        msp_token: l.msp_token,
                        pair: Pair {
                            msp: l.msp,
                            cmp: l.cmp,
                        },
                        sid: l.sid,
                        subscription_type: l.subscription_type,
                        at: now,
                    }),
                    Err(e) => problems.push(format!("{}: line {}: {e}", file.display(), n + 1)),
                }
                if (n + 1) % 100_000 == 0 {
                    eprintln!("read {} lines", n + 1);
                }
            }
            if !problems.is_empty() {
                for p in &problems {
                    eprintln!("{p}");
                }
                return Err(format!("{} bad line(s); nothing imported", problems.len()));
            }
            let total = federations.len();
            let report = ledger
                .import_federations(federations)
                .await
                .map_err(|e| e.to_string())?;
            writeln!(
                stdout,
                "imported {} of {total} federation(s); {} already present; {} conflicting",
                report.added,
                report.already_present,
                report.conflicting.len()
            )
            .map_err(|e| e.to_string())?;
            for token in &report.conflicting {
                writeln!(stdout, "conflict: {token} is held by another MSP/CMP pair")
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

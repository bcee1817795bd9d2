//! `aidhub ledger …`: offline inspection of a stopped hub's ledger, export and import.
//!
//! sled allows one process per database, so these commands refuse (naming the cause) while
//! the hub runs on the same files; use the admin endpoints of a running hub instead.

use super::sled::SledLedger;
use super::{Ledger, NewFederation, Pair, RequestFilter};
use crate::config::HubConfig;
use clap::Subcommand;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    let path = match HubConfig::load(config, base) {
        Ok(c) => c.ledger.path,
        Err(e) => {
            eprintln!("aidhub: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !path.exists() && !matches!(command, LedgerCommand::Import { .. }) {
        eprintln!(
            "aidhub: no ledger at {} (has the hub run yet?)",
            path.display()
        );
        return ExitCode::FAILURE;
    }
    let ledger = match SledLedger::open(&path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "aidhub: cannot open the ledger at {}: {e} (is the hub still running on it?)",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    };
    match execute(command, &ledger).await {
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

async fn execute(command: LedgerCommand, ledger: &SledLedger) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    match command {
        LedgerCommand::Transfers { carrier, limit } => {
            use super::transfers::TransferLedger as _;
            let list = ledger
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

//! `aidhub ledger bench`: what a ledger backend costs, measured through the [`Ledger`] trait.
//!
//! Each writer repeats the request path's ledger calls for one customer — reserve and
//! confirm a federation (Send MSP Token), read it (every later call's token check), open
//! and settle an activation-code request — on fresh keys, so writers never wait for each
//! other's rows: what is measured is the backend, not contention on one record. It runs
//! with one writer and with many at once, and prints, per call, how many ran, their rate
//! over the run's wall time, and the 50th and 99th percentile latency. With `--preload N`
//! it then loads N federations (as `ledger import` does, in batches, printing progress)
//! and measures token lookups among them, with the process's resident memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use uuid::Uuid;

use super::{Ledger, LedgerError, NewAcRequest, NewFederation, Pair, Settle};

/// The calls of one round, in order.
pub const CALLS: [&str; 5] = ["reserve", "confirm", "read", "open_request", "settle"];

/// The figures of one run.
#[derive(Debug)]
pub struct Run {
    /// Concurrent writers.
    pub writers: usize,
    /// Wall time of the whole run.
    pub wall: Duration,
    /// Latencies (µs) per call, in the order of [`CALLS`].
    pub latencies: Vec<Histogram<u64>>,
}

impl Run {
    /// One table row per call: `writers  call  calls  calls/s  p50 ms  p99 ms`.
    pub fn rows(&self, backend: &str) -> Vec<String> {
        let secs = self.wall.as_secs_f64().max(1e-9);
        let mut rows: Vec<String> = CALLS
            .iter()
            .zip(&self.latencies)
            .map(|(call, h)| {
                format!(
                    "{backend:<9} {:>7}  {call:<13} {:>7} {:>9.0} {:>8.2} {:>8.2}",
                    self.writers,
                    h.len(),
                    h.len() as f64 / secs,
                    h.value_at_quantile(0.5) as f64 / 1000.0,
                    h.value_at_quantile(0.99) as f64 / 1000.0,
                )
            })
            .collect();
        let total: u64 = self.latencies.iter().map(Histogram::len).sum();
        rows.push(format!(
            "{backend:<9} {:>7}  {:<13} {total:>7} {:>9.0}",
            self.writers,
            "all calls",
            total as f64 / secs
        ));
        rows
    }
}

/// The table's header line.
pub const HEADER: &str = "backend   writers  call            calls   calls/s   p50 ms   p99 ms";

fn histogram() -> Histogram<u64> {
    // Auto-resizing, 3 significant digits: `new` fails only for more than 5 digits.
    Histogram::new(3).expect("3 significant digits are allowed")
}

/// Runs `rounds` rounds spread over `writers` concurrent writers.
pub async fn run(
    ledger: Arc<dyn Ledger>,
    writers: usize,
    rounds: usize,
) -> Result<Run, LedgerError> {
    let writers = writers.max(1);
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let ledger = ledger.clone();
            let mine = rounds / writers + usize::from(w < rounds % writers);
            tokio::spawn(async move { writer(&*ledger, w, mine).await })
        })
        .collect();
    let mut latencies: Vec<Histogram<u64>> = CALLS.iter().map(|_| histogram()).collect();
    for task in tasks {
        let theirs = task
            .await
            .map_err(|e| LedgerError::Storage(format!("bench writer: {e}")))??;
        for (all, one) in latencies.iter_mut().zip(&theirs) {
            all.add(one)
                .map_err(|e| LedgerError::Storage(e.to_string()))?;
        }
    }
    Ok(Run {
        writers,
        wall: started.elapsed(),
        latencies,
    })
}

async fn writer(
    ledger: &dyn Ledger,
    w: usize,
    rounds: usize,
) -> Result<Vec<Histogram<u64>>, LedgerError> {
    let mut latencies: Vec<Histogram<u64>> = CALLS.iter().map(|_| histogram()).collect();
    let pair = Pair::new(format!("benchmsp{w}"), "benchcmp");
    let now = crate::aid1::lifecycle::now_ms();
    for _ in 0..rounds {
        let (token, id) = (Uuid::new_v4(), Uuid::new_v4());
        let mut timed = |i: usize, since: Instant| {
            let _ = latencies[i].record(since.elapsed().as_micros().max(1) as u64);
        };
        let t = Instant::now();
        ledger.reserve_federation(token, &pair, now, 60_000).await?;
        timed(0, t);
        let t = Instant::now();
        let fed = NewFederation {
            msp_token: token,
            pair: pair.clone(),
            sid: None,
            subscription_type: Some("private".into()),
            at: now,
        };
        ledger.confirm_federation(fed).await?;
        timed(1, t);
        let t = Instant::now();
        ledger.federation(token).await?;
        timed(2, t);
        let t = Instant::now();
        let req = NewAcRequest {
            id,
            msp_token: token,
            pair: pair.clone(),
            at: now,
        };
        ledger.open_request(req).await?;
        timed(3, t);
        let t = Instant::now();
        ledger.settle_request(id, Settle::Sync, now).await?;
        timed(4, t);
    }
    Ok(latencies)
}

/// Loads `count` federations in batches of 10 000 (printing progress), then times
/// `lookups` reads of random loaded tokens. Returns the lookup latencies (µs) and the load
/// time.
pub async fn preload_and_lookup(
    ledger: &dyn Ledger,
    count: usize,
    lookups: usize,
) -> Result<(Histogram<u64>, Duration), LedgerError> {
    const BATCH: usize = 10_000;
    let started = Instant::now();
    let now = crate::aid1::lifecycle::now_ms();
    let pair = Pair::new("benchmsp", "benchcmp");
    let mut sample = Vec::with_capacity(lookups.min(count));
    let mut loaded = 0;
    while loaded < count {
        let n = BATCH.min(count - loaded);
        let batch: Vec<NewFederation> = (0..n)
            .map(|_| NewFederation {
                msp_token: Uuid::new_v4(),
                pair: pair.clone(),
                sid: None,
                subscription_type: Some("private".into()),
                at: now,
            })
            .collect();
        // Every `count / lookups`-th token is looked up later.
        let stride = (count / lookups.max(1)).max(1);
        sample.extend(
            batch
                .iter()
                .enumerate()
                .filter(|(i, _)| (loaded + i) % stride == 0)
                .map(|(_, f)| f.msp_token),
        );
        ledger.import_federations(batch).await?;
        loaded += n;
        if loaded % 100_000 == 0 || loaded == count {
            eprintln!("   loaded {loaded} of {count} federations");
        }
    }
    let load_time = started.elapsed();
    let mut latencies = histogram();
    for token in sample.iter().take(lookups) {
        let t = Instant::now();
        let found = ledger.federation(*token).await?;
        let _ = latencies.record(t.elapsed().as_micros().max(1) as u64);
        if found.is_none() {
            return Err(LedgerError::Storage(format!(
                "loaded token {token} not found"
            )));
        }
    }
    Ok((latencies, load_time))
}

/// The resident and peak resident memory of this process, in MiB (Linux `/proc`).
pub fn rss_mib() -> Option<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

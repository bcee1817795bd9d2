//! Connections rather than requests: how many new partner connections per second a setup
//! takes (a full mutual-TLS handshake each — session resumption off — and one small request
//! with `Connection: close`, over a few concurrent tasks in a closed loop), and how much
//! memory an open, idle keep-alive partner connection holds (resident size before and after
//! opening many, each after one request).

use super::procfs;
use super::wire::{Conn, Route};
use http::{HeaderValue, Method};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// New connections per second.
pub struct Fresh {
    /// Connections that completed their handshake and request.
    pub connections: u64,
    /// How long the loop ran.
    pub window: Duration,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// CPU time of the measured process over the loop.
    pub cpu: Duration,
}

/// Opens connections on `route` (which must not resume sessions) from `tasks` concurrent
/// tasks for `duration`, each sending one GET of `path`.
pub async fn handshakes(
    route: Arc<Route>,
    path: String,
    tasks: usize,
    duration: Duration,
    pid: u32,
) -> Fresh {
    let ticks = procfs::clock_ticks();
    let cpu_before = procfs::cpu_time(pid, ticks);
    let started = Instant::now();
    let end = started + duration;
    let mut handles = Vec::new();
    for _ in 0..tasks.max(1) {
        let route = route.clone();
        let path = path.clone();
        handles.push(tokio::spawn(async move {
            let mut done = 0u64;
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            while Instant::now() < end {
                let mut request = route.request(Method::GET, &path, None);
                request
                    .headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                // A fresh connection each time: the Conn opens one and is dropped after.
                let mut conn = Conn::new(route.clone(), None);
                match conn.exchange(request).await {
                    Ok((status, _)) if status.is_success() => done += 1,
                    Ok((status, _)) => *errors.entry(format!("status {status}")).or_default() += 1,
                    Err(e) => *errors.entry(e).or_default() += 1,
                }
            }
            (done, errors)
        }));
    }
    let mut fresh = Fresh {
        connections: 0,
        window: Duration::ZERO,
        errors: BTreeMap::new(),
        cpu: Duration::ZERO,
    };
    for handle in handles {
        match handle.await {
            Ok((done, errors)) => {
                fresh.connections += done;
                for (kind, n) in errors {
                    *fresh.errors.entry(kind).or_default() += n;
                }
            }
            Err(e) => *fresh.errors.entry(format!("task failed: {e}")).or_default() += 1,
        }
    }
    fresh.window = started.elapsed();
    fresh.cpu = procfs::cpu_time(pid, ticks).saturating_sub(cpu_before);
    fresh
}

/// Memory held by idle connections.
pub struct Idle {
    /// Connections opened (and held) at the second reading.
    pub opened: usize,
    /// Resident size before, bytes.
    pub rss_before: u64,
    /// Resident size with all of them open, bytes.
    pub rss_after: u64,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
}

impl Idle {
    /// Resident bytes per open connection.
    pub fn per_connection(&self) -> Option<f64> {
        (self.opened > 0)
            .then(|| (self.rss_after as f64 - self.rss_before as f64) / self.opened as f64)
    }
}

/// Opens `count` keep-alive connections on `route`, each with one GET of `path`, and reads
/// the resident size of `pid`'s process tree before and while they are all open.
pub async fn hold_idle(route: Arc<Route>, path: String, count: usize, pid: u32) -> Idle {
    let rss_before = procfs::memory(pid, "VmRSS").unwrap_or_default();
    const OPENERS: usize = 16;
    let mut handles = Vec::new();
    for i in 0..OPENERS {
        let share = count / OPENERS + usize::from(i < count % OPENERS);
        let route = route.clone();
        let path = path.clone();
        handles.push(tokio::spawn(async move {
            let mut held = Vec::with_capacity(share);
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            for _ in 0..share {
                let mut conn = Conn::new(route.clone(), None);
                match conn.exchange(route.request(Method::GET, &path, None)).await {
                    Ok((status, _)) if status.is_success() => held.push(conn),
                    Ok((status, _)) => *errors.entry(format!("status {status}")).or_default() += 1,
                    Err(e) => *errors.entry(e).or_default() += 1,
                }
            }
            (held, errors)
        }));
    }
    let mut held = Vec::new();
    let mut errors = BTreeMap::new();
    for handle in handles {
        match handle.await {
            Ok((conns, errs)) => {
                held.extend(conns);
                for (kind, n) in errs {
                    *errors.entry(kind).or_default() += n;
                }
            }
            Err(e) => *errors.entry(format!("task failed: {e}")).or_default() += 1,
        }
    }
    // The server finishes its side of the last exchanges (buffers released or kept) before
    // the reading; a short pause, not a wait for a condition.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after = procfs::memory(pid, "VmRSS").unwrap_or_default();
    let opened = held.len();
    drop(held);
    Idle {
        opened,
        rss_before,
        rss_after,
        errors,
    }
}

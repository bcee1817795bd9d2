//! Serving threads: a few threads, each with a single-threaded tokio runtime of its own.
//!
//! A listener accepts on the main runtime and hands each connection to the thread serving
//! the fewest connections ([`Workers::serve`]); from then on the connection, its requests
//! and the upstream connections they use stay on that thread. Nothing on the request path
//! wakes another thread, steals a task or contends for a run queue: under load, those
//! hand-offs cost more than the requests themselves. Per-thread state (the upstream pools'
//! idle lists) is indexed by [`index`].

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The serving thread this code runs on: `1..=n` on serving threads, `0` elsewhere (the
/// main runtime, tests, tools).
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

/// How often a serving thread's keep-awake timer fires: sooner than request deadlines
/// (`[timeouts]`, seconds as shipped), so that this timer is always due first. A deadline
/// configured shorter only brings back the wake-up described at [`until_stopped`].
const KEEP_AWAKE: Duration = Duration::from_secs(1);

/// Runs a serving thread's runtime until `stopped` fires, holding a timer due within
/// [`KEEP_AWAKE`] meanwhile.
///
/// Why the timer: every upstream exchange arms a deadline. When tokio registers a timer due
/// before the earliest one its driver knew of at its last park (any timer, when the thread
/// parked with none armed), it writes to the runtime's eventfd to wake the driver, although on a
/// single-threaded runtime the driver is this very thread and will look at the timers
/// anyway before it parks again. With this timer always due first, the deadlines of
/// requests are never the earliest: the serving threads made 0.21 such `write` calls per
/// request under the bench's load before, none after (README "Performance").
async fn until_stopped(stopped: oneshot::Receiver<()>) {
    let mut keep_awake = tokio::time::interval(KEEP_AWAKE);
    keep_awake.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = keep_awake.tick() => {}
        }
    }
}

/// The serving threads; a cheap handle, clones share them.
#[derive(Clone)]
pub struct Workers {
    inner: Arc<Inner>,
}

struct Inner {
    workers: Vec<Worker>,
    /// Spreads ties between equally loaded threads.
    next: AtomicUsize,
    threads: std::sync::Mutex<Vec<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

struct Worker {
    handle: Handle,
    /// Connections it serves now.
    open: Arc<AtomicUsize>,
}

impl Workers {
    /// Starts `count` serving threads (at least one).
    pub fn start(count: usize) -> std::io::Result<Workers> {
        let mut workers = Vec::new();
        let mut threads = Vec::new();
        for index in 1..=count.max(1) {
            let (started, handle) = std::sync::mpsc::channel();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("aidhub-serve-{index}"))
                .spawn(move || {
                    INDEX.with(|i| i.set(index));
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(e) => {
                            let _ = started.send(Err(e));
                            return;
                        }
                    };
                    let _ = started.send(Ok(runtime.handle().clone()));
                    runtime.block_on(until_stopped(stopped));
                })?;
            let handle = handle
                .recv()
                .map_err(|_| std::io::Error::other("a serving thread died while starting"))??;
            workers.push(Worker {
                handle,
                open: Arc::default(),
            });
            threads.push((stop, thread));
        }
        Ok(Workers {
            inner: Arc::new(Inner {
                workers,
                next: AtomicUsize::new(0),
                threads: std::sync::Mutex::new(threads),
            }),
        })
    }

    /// How many serving threads there are.
    pub fn count(&self) -> usize {
        self.inner.workers.len()
    }

    /// Connections each serving thread serves now, in thread order.
    pub fn open_connections(&self) -> Vec<usize> {
        let load = |w: &Worker| w.open.load(Ordering::Relaxed);
        self.inner.workers.iter().map(load).collect()
    }

    /// Moves `tcp` (accepted on another runtime) to the serving thread with the fewest open
    /// connections and runs `serve` on it there.
    pub fn serve<F, Fut>(&self, tcp: TcpStream, peer: SocketAddr, serve: F)
    where
        F: FnOnce(TcpStream, SocketAddr) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        // The least loaded, ties broken at random: connections opened in a regular pattern
        // (a CMP-side and an MSP-side one per lane, say) must not all land on one thread.
        let workers = &self.inner.workers;
        let start = self
            .inner
            .next
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9)
            >> 7;
        let worker = (0..workers.len())
            .map(|i| &workers[(start + i) % workers.len()])
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
            .expect("start made at least one serving thread");
        // Deregistered from the accepting runtime, registered again on the serving one.
        let tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::debug!(%peer, cause = %e, "accepted connection lost before serving");
                return;
            }
        };
        let open = OpenGuard::new(worker.open.clone());
        worker.handle.spawn(async move {
            let _open = open;
            match TcpStream::from_std(tcp) {
                Ok(tcp) => serve(tcp, peer).await,
                Err(e) => tracing::warn!(%peer, cause = %e, "cannot serve an accepted connection"),
            }
        });
    }

    /// Stops the serving threads (what still runs on them is dropped) and waits for them.
    pub async fn stop(&self) {
        let threads = std::mem::take(&mut *lock(&self.inner.threads));
        let joins: Vec<JoinHandle<()>> = threads
            .into_iter()
            .map(|(stop, thread)| {
                let _ = stop.send(());
                thread
            })
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for thread in joins {
                let _ = thread.join();
            }
        })
        .await;
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Signal only: joining here could block an async caller.
        for (stop, _) in std::mem::take(&mut *lock(&self.threads)) {
            let _ = stop.send(());
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded list is plain data: a panic elsewhere cannot leave it inconsistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts a connection as open on its thread until dropped.
struct OpenGuard(Arc<AtomicUsize>);

impl OpenGuard {
    fn new(open: Arc<AtomicUsize>) -> OpenGuard {
        open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(open)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

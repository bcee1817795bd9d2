//! One upstream's connections: new ones opened (TCP, then the TLS handshake, under the
//! connect timeout), idle ones kept for reuse.
//!
//! Idle connections are kept per serving thread ([`crate::workers::index`]): a connection is
//! registered with the runtime of the thread that opened it, and reusing it there keeps every
//! wake-up on that thread. A request takes the most recently used connection (the warmest),
//! after checking that the partner has not closed it meanwhile; a connection idle for longer
//! than the idle timeout (`timeouts.upstream_idle_ms`, or the partner's `upstream.idle_ms`)
//! is closed instead of reused.
//!
//! At most [`PoolSettings::max_opening`] connections to one upstream
//! (`limits.max_opening_per_upstream`) are opening at once. A burst of calls
//! on a cold hub (just started, or its idle connections closed by the partner) would
//! otherwise open one connection per call at the same moment: a full handshake each at the
//! partner, and as many connections kept afterwards. A call beyond that waits for whichever
//! comes first: a connection another call brings back (from any thread's list; it returns to
//! the list of the thread that opened it) or its turn to open one.

use super::UpstreamFault;
use bytes::BytesMut;
use rustls::pki_types::ServerName;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore, SemaphorePermit};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How many idle connections one thread keeps per upstream.
const MAX_IDLE_PER_THREAD: usize = 256;
/// Idle lists (a power of two); threads beyond it share.
const SHARDS: usize = 16;

/// How the hub opens and keeps the connections to an upstream (`hub.toml`, and the partner's
/// `upstream.idle_ms`); a reload that changes them builds the pool again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// The longest a new connection may take, TCP connect and TLS handshake each, and a
    /// call may wait for a connection or a turn to open one (`timeouts.connect_ms`).
    pub connect_timeout: Duration,
    /// How long an idle connection is kept for reuse (`timeouts.upstream_idle_ms`, or the
    /// partner's `upstream.idle_ms`): below the partner's own keep-alive timeout, the hub
    /// never sends on a connection the partner is closing.
    pub idle_timeout: Duration,
    /// How many connections to one upstream may be opening (TCP connect and TLS handshake)
    /// at once (`limits.max_opening_per_upstream`).
    pub max_opening: usize,
}

/// `hub.toml`'s defaults.
impl Default for PoolSettings {
    fn default() -> PoolSettings {
        PoolSettings {
            connect_timeout: Duration::from_millis(2000),
            idle_timeout: Duration::from_secs(90),
            max_opening: 8,
        }
    }
}

/// An open connection to the upstream.
pub(super) struct Conn {
    pub io: TlsStream<TcpStream>,
    /// Bytes read but not yet consumed.
    pub read: BytesMut,
    /// The request being written.
    pub write: Vec<u8>,
    /// Whether it carried a request before this one.
    pub reused: bool,
    /// The idle list of the thread that opened it, whose runtime its socket is registered
    /// with.
    home: usize,
}

/// Connections move between the pool and requests boxed: a TLS connection is over a
/// kilobyte, and requests should not copy it in and out.
pub(super) type Boxed = Box<Conn>;

struct Idle {
    conn: Boxed,
    since: Instant,
}

/// Where and how to connect, and the idle connections.
pub(super) struct Pool {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    host: String,
    port: u16,
    settings: PoolSettings,
    shards: Box<[Mutex<VecDeque<Idle>>]>,
    /// Turns to open a connection ([`PoolSettings::max_opening`]).
    opening: Semaphore,
    /// Calls waiting for a connection or a turn, and the signal that one was brought back.
    waiting: AtomicUsize,
    returned: Notify,
    /// Connections opened, and calls that waited for one, since the pool was built.
    opened: AtomicU64,
    waited: AtomicU64,
}

/// What a call waiting in [`Pool::open`] got first.
enum Turn<'a> {
    Returned(Boxed),
    Open(SemaphorePermit<'a>),
}

impl Pool {
    /// A pool for `host:port`, verifying the server as `server_name`.
    pub fn new(
        config: rustls::ClientConfig,
        server_name: ServerName<'static>,
        host: String,
        port: u16,
        settings: PoolSettings,
    ) -> Pool {
        Pool {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            host,
            port,
            settings,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            opening: Semaphore::new(settings.max_opening.max(1)),
            waiting: AtomicUsize::new(0),
            returned: Notify::new(),
            opened: AtomicU64::new(0),
            waited: AtomicU64::new(0),
        }
    }

    fn shard(&self, index: usize) -> MutexGuard<'_, VecDeque<Idle>> {
        // The list holds plain connections: a panic elsewhere cannot leave it inconsistent.
        self.shards[index].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A live idle connection of this thread, if there is one.
    pub fn checkout(&self) -> Option<Boxed> {
        self.checkout_from(crate::workers::index() % SHARDS)
    }

    fn checkout_from(&self, index: usize) -> Option<Boxed> {
        let mut idle = self.shard(index);
        while let Some(Idle { mut conn, since }) = idle.pop_back() {
            if since.elapsed() < self.settings.idle_timeout && still_open(&conn.io) {
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    }

    /// A live idle connection of any thread, this thread's first.
    fn checkout_any(&self) -> Option<Boxed> {
        let own = crate::workers::index() % SHARDS;
        (0..SHARDS).find_map(|i| self.checkout_from((own + i) % SHARDS))
    }

    /// Keeps `conn` for the next request of the thread that opened it.
    pub fn checkin(&self, conn: Boxed) {
        let mut idle = self.shard(conn.home);
        self.expire(&mut idle);
        if idle.len() < MAX_IDLE_PER_THREAD {
            idle.push_back(Idle {
                conn,
                since: Instant::now(),
            });
            drop(idle);
            // Read after the list's lock: a call that counted itself waiting before looking
            // at this list either found this connection or is woken now.
            if self.waiting.load(Ordering::SeqCst) > 0 {
                self.returned.notify_one();
            }
        }
    }

    /// A connection for a call that found no idle one: a new one, opened now when fewer than
    /// [`PoolSettings::max_opening`] are opening, else the first of a connection brought back
    /// or a turn.
    pub async fn open(&self) -> Result<Boxed, UpstreamFault> {
        let _turn = match self.opening.try_acquire() {
            Ok(turn) => turn,
            Err(_) => {
                self.waited.fetch_add(1, Ordering::Relaxed);
                match self.wait().await? {
                    Turn::Returned(conn) => return Ok(conn),
                    Turn::Open(turn) => turn,
                }
            }
        };
        let conn = self.connect().await?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(conn)
    }

    /// Connections opened (TCP connect and TLS handshake done) since the pool was built.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Calls that found no idle connection and [`PoolSettings::max_opening`] already
    /// opening, and waited.
    pub fn waited(&self) -> u64 {
        self.waited.load(Ordering::Relaxed)
    }

    /// Waits, at most the connect timeout, for a connection brought back or a turn to open
    /// one.
    async fn wait(&self) -> Result<Turn<'_>, UpstreamFault> {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        let first = async {
            loop {
                let returned = self.returned.notified();
                tokio::pin!(returned);
                // Registered before looking, so that a connection brought back after the
                // look wakes this call.
                returned.as_mut().enable();
                if let Some(conn) = self.checkout_any() {
                    return Turn::Returned(conn);
                }
                tokio::select! {
                    turn = self.opening.acquire() => {
                        return Turn::Open(turn.expect("the pool never closes its turns"));
                    }
                    () = &mut returned => {}
                }
            }
        };
        let PoolSettings {
            connect_timeout,
            max_opening,
            ..
        } = self.settings;
        tokio::time::timeout(connect_timeout, first)
            .await
            .map_err(|_| {
                UpstreamFault::Connect(format!(
                    "no connection within {} ms: {max_opening} were already opening",
                    connect_timeout.as_millis()
                ))
            })
    }

    /// Closes connections idle for too long or closed by the partner (called now and then,
    /// so that a quiet upstream does not keep sockets its partner has long closed); returns
    /// when the oldest of those left times out, if any is left.
    pub fn prune(&self) -> Option<Instant> {
        let mut due: Option<Instant> = None;
        for index in 0..SHARDS {
            let mut idle = self.shard(index);
            self.expire(&mut idle);
            idle.retain(|i| still_open(&i.conn.io));
            // Each list is oldest first (connections come back at its end).
            if let Some(oldest) = idle.front() {
                let at = oldest.since + self.settings.idle_timeout;
                due = Some(due.map_or(at, |d| d.min(at)));
            }
        }
        due
    }

    /// How long an idle connection is kept.
    pub fn idle_timeout(&self) -> Duration {
        self.settings.idle_timeout
    }

    /// How many idle connections the pool keeps, all threads together.
    pub fn idle(&self) -> usize {
        (0..SHARDS).map(|index| self.shard(index).len()).sum()
    }

    /// Opens a new connection: resolve, connect (each address in turn), TLS handshake.
    async fn connect(&self) -> Result<Boxed, UpstreamFault> {
        let connect_timeout = self.settings.connect_timeout;
        let tcp = tokio::time::timeout(connect_timeout, self.tcp())
            .await
            .map_err(|_| {
                UpstreamFault::Connect(format!(
                    "no connection within {} ms",
                    connect_timeout.as_millis()
                ))
            })??;
        let _ = tcp.set_nodelay(true);
        let handshake = self.connector.connect(self.server_name.clone(), tcp);
        let io = match tokio::time::timeout(connect_timeout, handshake).await {
            Ok(Ok(io)) => io,
            Ok(Err(e)) => return Err(handshake_fault(&e)),
            Err(_) => {
                return Err(UpstreamFault::Tls(format!(
                    "no handshake within {} ms",
                    connect_timeout.as_millis()
                )))
            }
        };
        Ok(Box::new(Conn {
            io,
            read: BytesMut::with_capacity(8 * 1024),
            write: Vec::with_capacity(1024),
            reused: false,
            home: crate::workers::index() % SHARDS,
        }))
    }

    async fn tcp(&self) -> Result<TcpStream, UpstreamFault> {
        let addrs: Vec<SocketAddr> = match self.host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, self.port)],
            Err(_) => tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(|e| UpstreamFault::Connect(format!("{}: {e}", self.host)))?
                .collect(),
        };
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(tcp) => return Ok(tcp),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => UpstreamFault::Refused,
            Some(e) => UpstreamFault::Connect(e.to_string()),
            None => UpstreamFault::Connect(format!("{}: no address", self.host)),
        })
    }

    /// Closes the connections of `idle` (oldest first) kept longer than the idle timeout.
    fn expire(&self, idle: &mut VecDeque<Idle>) {
        while idle
            .front()
            .is_some_and(|i| i.since.elapsed() >= self.settings.idle_timeout)
        {
            idle.pop_front();
        }
    }
}

/// Whether an idle connection is still usable: nothing to read (no close, no alert, no
/// stray bytes). Costs no system call unless the runtime saw the socket become readable.
fn still_open(io: &TlsStream<TcpStream>) -> bool {
    let mut probe = [0u8; 1];
    matches!(io.get_ref().0.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// The fault of a failed TLS handshake: the rustls error when there is one.
fn handshake_fault(error: &std::io::Error) -> UpstreamFault {
    match super::wrapped_tls_error(error) {
        Some(tls) => UpstreamFault::Tls(tls.to_string()),
        None if error.kind() == std::io::ErrorKind::ConnectionRefused => UpstreamFault::Refused,
        None => UpstreamFault::Tls(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool for a port nothing is asked of: the test holds every turn itself.
    fn pool(settings: PoolSettings) -> Pool {
        let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(crate::tls::VERSIONS)
            .expect("protocol versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = ServerName::try_from("partner.test").expect("a server name");
        Pool::new(config, name, "127.0.0.1".into(), 9, settings)
    }

    #[tokio::test]
    async fn a_call_that_gets_neither_a_connection_nor_a_turn_in_time_fails_to_connect() {
        let pool = pool(PoolSettings {
            connect_timeout: Duration::from_millis(50),
            max_opening: 3,
            ..PoolSettings::default()
        });
        let _all_turns = pool.opening.try_acquire_many(3).expect("every turn free");
        let started = Instant::now();
        let open = tokio::time::timeout(Duration::from_secs(5), pool.open());
        let fault = open
            .await
            .expect("the wait is bounded by the connect timeout")
            .err()
            .expect("no connection");
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(fault.kind(), "connect");
        assert!(fault.never_sent(), "tried once more, as any failed connect");
        assert_eq!(
            fault.to_string(),
            "cannot connect: no connection within 50 ms: 3 were already opening"
        );
        assert_eq!((pool.waited(), pool.opened()), (1, 0));
        assert_eq!(pool.waiting.load(Ordering::SeqCst), 0, "no longer counted");
    }
}

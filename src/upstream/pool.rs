//! One upstream's connections: new ones opened (TCP, then the TLS handshake, under the
//! connect timeout), idle ones kept for reuse.
//!
//! Idle connections are kept per serving thread ([`crate::workers::index`]): a connection is
//! registered with the runtime of the thread that opened it, and reusing it there keeps every
//! wake-up on that thread. A request takes the most recently used connection (the warmest),
//! after checking that the partner has not closed it meanwhile; a connection idle for longer
//! than the idle timeout is closed instead of reused.

use super::UpstreamFault;
use bytes::BytesMut;
use rustls::pki_types::ServerName;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How many idle connections one thread keeps per upstream.
const MAX_IDLE_PER_THREAD: usize = 256;
/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle lists (a power of two); threads beyond it share.
const SHARDS: usize = 16;

/// An open connection to the upstream.
pub(super) struct Conn {
    pub io: TlsStream<TcpStream>,
    /// Bytes read but not yet consumed.
    pub read: BytesMut,
    /// The request being written.
    pub write: Vec<u8>,
    /// Whether it carried a request before this one.
    pub reused: bool,
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
    connect_timeout: Duration,
    shards: Box<[Mutex<VecDeque<Idle>>]>,
}

impl Pool {
    /// A pool for `host:port`, verifying the server as `server_name`.
    pub fn new(
        config: rustls::ClientConfig,
        server_name: ServerName<'static>,
        host: String,
        port: u16,
        connect_timeout: Duration,
    ) -> Pool {
        Pool {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            host,
            port,
            connect_timeout,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self) -> MutexGuard<'_, VecDeque<Idle>> {
        let shard = &self.shards[crate::workers::index() % SHARDS];
        // The list holds plain connections: a panic elsewhere cannot leave it inconsistent.
        shard.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A live idle connection of this thread, if there is one.
    pub fn checkout(&self) -> Option<Boxed> {
        let mut idle = self.shard();
        while let Some(Idle { mut conn, since }) = idle.pop_back() {
            if since.elapsed() < IDLE_TIMEOUT && still_open(&conn.io) {
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next request of this thread.
    pub fn checkin(&self, conn: Boxed) {
        let mut idle = self.shard();
        expire(&mut idle);
        if idle.len() < MAX_IDLE_PER_THREAD {
            idle.push_back(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Closes connections idle for too long (called now and then, so that a quiet
    /// upstream does not keep sockets its partner has long closed).
    pub fn prune(&self) {
        for shard in self.shards.iter() {
            let mut idle = shard.lock().unwrap_or_else(|p| p.into_inner());
            expire(&mut idle);
            idle.retain(|i| still_open(&i.conn.io));
        }
    }

    /// How many idle connections the pool keeps, all threads together.
    pub fn idle(&self) -> usize {
        let len = |s: &Mutex<VecDeque<Idle>>| s.lock().unwrap_or_else(|p| p.into_inner()).len();
        self.shards.iter().map(len).sum()
    }

    /// Opens a new connection: resolve, connect (each address in turn), TLS handshake.
    pub async fn connect(&self) -> Result<Boxed, UpstreamFault> {
        let tcp = tokio::time::timeout(self.connect_timeout, self.tcp())
            .await
            .map_err(|_| {
                UpstreamFault::Connect(format!(
                    "no connection within {} ms",
                    self.connect_timeout.as_millis()
                ))
            })??;
        let _ = tcp.set_nodelay(true);
        let handshake = self.connector.connect(self.server_name.clone(), tcp);
        let io = match tokio::time::timeout(self.connect_timeout, handshake).await {
            Ok(Ok(io)) => io,
            Ok(Err(e)) => return Err(handshake_fault(&e)),
            Err(_) => {
                return Err(UpstreamFault::Tls(format!(
                    "no handshake within {} ms",
                    self.connect_timeout.as_millis()
                )))
            }
        };
        Ok(Box::new(Conn {
            io,
            read: BytesMut::with_capacity(8 * 1024),
            write: Vec::with_capacity(1024),
            reused: false,
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
}

fn expire(idle: &mut VecDeque<Idle>) {
    while idle
        .front()
        .is_some_and(|i| i.since.elapsed() >= IDLE_TIMEOUT)
    {
        idle.pop_front();
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

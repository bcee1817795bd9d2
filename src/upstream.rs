//! Upstream calls: one pooled mutual-TLS HTTP client per partner.
//!
//! Each partner's [`Upstream`] owns a keep-alive pool of HTTP/1.1 connections (`pool.rs`)
//! whose TLS configuration trusts that partner's anchors and presents the hub's client
//! certificate. [`Upstream::exchange`] writes one request and reads the whole answer
//! (`wire.rs`) under one deadline, on the calling task: no connection task, no channel, no
//! wake-up of another thread between the caller and the socket. Every failure is classified
//! into an [`UpstreamFault`]. A request is retried only when it provably never reached the
//! partner: a failed connect or TLS handshake, or a write to an idle connection the partner
//! had closed.

mod pool;
mod wire;

use crate::config::{Credential, EcsSpec, UpstreamSpec};
use crate::tls;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
pub use pool::PoolSettings;
use pool::{Conn, Pool};
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use wire::WireError;

/// Why an upstream exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamFault {
    /// Nothing listens at the upstream address.
    Refused,
    /// TCP connect failed otherwise (unreachable, connect timeout).
    Connect(String),
    /// The TLS handshake failed (certificate, protocol).
    Tls(String),
    /// No complete answer within the deadline.
    Timeout(Duration),
    /// The connection was closed or reset mid-exchange.
    Reset,
    /// The answer was not valid HTTP.
    Protocol(String),
    /// The answer body exceeded the size cap.
    TooLarge,
}

impl UpstreamFault {
    /// A short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamFault::Refused => "refused",
            UpstreamFault::Connect(_) => "connect",
            UpstreamFault::Tls(_) => "tls",
            UpstreamFault::Timeout(_) => "timeout",
            UpstreamFault::Reset => "reset",
            UpstreamFault::Protocol(_) => "protocol",
            UpstreamFault::TooLarge => "too_large",
        }
    }

    /// Whether the request cannot have reached the partner.
    pub fn never_sent(&self) -> bool {
        matches!(
            self,
            UpstreamFault::Refused | UpstreamFault::Connect(_) | UpstreamFault::Tls(_)
        )
    }
}

impl fmt::Display for UpstreamFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamFault::Refused => f.write_str("connection refused"),
            UpstreamFault::Connect(e) => write!(f, "cannot connect: {e}"),
            UpstreamFault::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            UpstreamFault::Timeout(d) => write!(f, "no answer within {} ms", d.as_millis()),
            UpstreamFault::Reset => f.write_str("connection closed before a complete answer"),
            UpstreamFault::Protocol(e) => write!(f, "not a valid HTTP answer: {e}"),
            UpstreamFault::TooLarge => f.write_str("answer body too large"),
        }
    }
}

/// Which of an answer's headers [`Upstream::exchange`] hands back. Its framing headers
/// are read either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerHeaders {
    /// All of them, in [`Answer::headers`].
    All,
    /// None: [`Answer::headers`] stays empty. For a protocol that relays only an answer's
    /// status and body, this saves a header map built and dropped per request.
    None,
}

/// A complete upstream answer.
#[derive(Debug)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its headers, if asked for ([`AnswerHeaders`]).
    pub headers: HeaderMap,
    /// Its whole body.
    pub body: Bytes,
}

/// One partner's upstream: base URL, credential and connection pool.
pub struct Upstream {
    pool: Pool,
    base: Base,
    credential: Option<(HeaderName, HeaderValue)>,
}

/// An upstream's base URL (origin and path prefix) as text, and its origin parsed once.
struct Base {
    text: String,
    scheme: Option<Scheme>,
    authority: Option<Authority>,
    prefixed: bool,
}

impl Base {
    fn new(origin: &Uri, prefix: &str) -> Base {
        Base {
            text: format!("{}{prefix}", origin.to_string().trim_end_matches('/')),
            scheme: origin.scheme().cloned(),
            authority: origin.authority().cloned(),
            prefixed: !prefix.is_empty(),
        }
    }

    /// The full URI for a path and query given as text.
    fn join(&self, path_and_query: &str) -> Result<Uri, String> {
        format!("{}{path_and_query}", self.text)
            .parse()
            .map_err(|e| format!("cannot build the upstream URI: {e}"))
    }

    /// The full URI for an incoming request's path and query. Without a prefix the parsed
    /// origin and the incoming path are put together as they are: nothing built or parsed
    /// again on the way to every partner.
    fn join_parsed(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, String> {
        match path_and_query {
            Some(path_and_query) if !self.prefixed => {
                let mut parts = http::uri::Parts::default();
                parts.scheme = self.scheme.clone();
                parts.authority = self.authority.clone();
                parts.path_and_query = Some(path_and_query.clone());
                Uri::from_parts(parts).map_err(|e| format!("cannot build the upstream URI: {e}"))
            }
            _ => self.join(path_and_query.map_or("/", |p| p.as_str())),
        }
    }
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("base", &self.base.text)
            .finish()
    }
}

/// Where an upstream is: origin, path prefix, and the TLS name to verify when it is not the
/// origin's host.
struct Target<'a> {
    origin: &'a Uri,
    path: &'a str,
    server_name: Option<&'a str>,
}

/// How many connect attempts a request gets when it provably never reached the partner.
const CONNECT_ATTEMPTS: u32 = 2;

impl Upstream {
    /// Builds the client for one partner.
    pub fn new(
        spec: &UpstreamSpec,
        hub_cert: &Path,
        hub_key: &Path,
        settings: PoolSettings,
    ) -> Result<Upstream, String> {
        let config = tls::client_config(&spec.ca, hub_cert, hub_key)?;
        let credential = credential_header(&spec.credential)?;
        let target = Target {
            origin: &spec.origin,
            path: &spec.prefix,
            server_name: spec.server_name.as_deref(),
        };
        Upstream::build(config, target, Some(credential), settings)
    }

    /// Builds the client for a TS.43 carrier's entitlement server: its trust anchors, the
    /// hub's client certificate only if the carrier asks for mutual TLS, no credential
    /// header (devices authenticate themselves, inside TS.43).
    pub fn carrier(spec: &EcsSpec, settings: PoolSettings) -> Result<Upstream, String> {
        let config = match &spec.client_cert {
            Some((cert, key)) => tls::client_config(&spec.ca, cert, key)?,
            None => tls::client_config_anonymous(&spec.ca)?,
        };
        let target = Target {
            origin: &spec.origin,
            path: &spec.path,
            server_name: spec.server_name.as_deref(),
        };
        Upstream::build(config, target, None, settings)
    }

    fn build(
        config: rustls::ClientConfig,
        target: Target<'_>,
        credential: Option<(HeaderName, HeaderValue)>,
        settings: PoolSettings,
    ) -> Result<Upstream, String> {
        let pool = pool_for(config, target.origin, target.server_name, settings)?;
        Ok(Upstream {
            pool,
            base: Base::new(target.origin, target.path),
            credential,
        })
    }

    /// The upstream's base URL (origin and path prefix).
    pub fn base(&self) -> &str {
        &self.base.text
    }

    /// Closes idle connections that timed out or that the partner closed; returns when this
    /// upstream needs the next round: when its oldest idle connection times out, and no
    /// later than one idle timeout from now (a connection put back after this round times
    /// out no sooner).
    pub fn prune(&self) -> Instant {
        let latest = Instant::now() + self.pool.idle_timeout();
        self.pool.prune().map_or(latest, |due| due.min(latest))
    }

    /// How many keep-alive connections wait for a request.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle()
    }

    /// Connections opened to this upstream since its pool was built (a reload that keeps
    /// the upstream's settings keeps its pool).
    pub fn connections_opened(&self) -> u64 {
        self.pool.opened()
    }

    /// Calls that waited for a connection because [`PoolSettings::max_opening`] were
    /// already opening.
    pub fn connection_waits(&self) -> u64 {
        self.pool.waited()
    }
}

/// The longest between two rounds of the pruner: a connection its partner closed, or the
/// upstreams a reload brought, wait at most this long.
pub const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// The shortest between two rounds: an idle timeout below it (1 ms is allowed) does not make
/// the pruner spin.
const PRUNE_AT_MOST_EVERY: Duration = Duration::from_millis(100);

/// Until `shutdown` fires, closes the idle connections of the current snapshot's upstreams
/// that timed out or that their partner closed: a quiet upstream then keeps no socket its
/// partner has long given up. Each round wakes for the next idle connection to time out
/// (and at least every [`PRUNE_EVERY`]), so a connection is closed at its timeout, not up to
/// a round later.
pub async fn pruner(hub: crate::hub::Hub, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut next = Instant::now() + PRUNE_EVERY;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = shutdown.changed() => return,
        }
        let now = Instant::now();
        let due = hub
            .snapshot()
            .upstreams()
            .map(|(_, upstream)| upstream.prune())
            .fold(now + PRUNE_EVERY, Instant::min);
        next = due.max(now + PRUNE_AT_MOST_EVERY);
    }
}

/// The pool for an `https://host[:port]` origin. HTTP/1.1 only, as a reverse proxy keeps
/// upstream connections: every AID1 partner speaks it, and a request per connection at a
/// time needs no stream multiplexing on the hub's side. (h2 through hyper's client was
/// measured slower: more CPU on both sides, README "Performance".)
fn pool_for(
    mut config: rustls::ClientConfig,
    origin: &Uri,
    server_name: Option<&str>,
    settings: PoolSettings,
) -> Result<Pool, String> {
    let host = origin
        .host()
        .ok_or_else(|| format!("{origin}: no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = origin.port_u16().unwrap_or(443);
    let name = server_name.unwrap_or(&host).to_owned();
    let server_name = rustls::pki_types::ServerName::try_from(name.clone())
        .map_err(|e| format!("server_name `{name}`: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Pool::new(config, server_name, host, port, settings))
}

/// Whether the upstream writes this header itself (`Host` and the message framing: what a
/// request carries under these names is not sent).
pub fn sets_itself(name: &HeaderName) -> bool {
    wire::framing_header(name)
}

impl Upstream {
    /// The full upstream URI for an incoming path and query.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, String> {
        self.base.join(path_and_query)
    }

    /// The same for an incoming request's parsed path and query (`/` when it has none).
    pub fn uri_for(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, String> {
        self.base.join_parsed(path_and_query)
    }

    /// The header carrying the hub's credential at this partner (none for carriers).
    pub fn credential(&self) -> Option<(&HeaderName, &HeaderValue)> {
        self.credential.as_ref().map(|(n, v)| (n, v))
    }

    /// Sends `request` (absolute URI) and reads the whole answer, all within `deadline`,
    /// keeping the answer's `headers` asked for.
    pub async fn exchange(
        &self,
        request: Request<Bytes>,
        deadline: Duration,
        max_body: usize,
        headers: AnswerHeaders,
    ) -> Result<Answer, UpstreamFault> {
        let started = Instant::now();
        let attempts = self.attempts(&request, max_body, headers);
        match tokio::time::timeout(deadline, attempts).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamFault::Timeout(started.elapsed())),
        }
    }

    /// Takes an idle connection or opens one (again, when connecting failed: nothing was
    /// sent), writes the request and reads the answer. A request is never written twice,
    /// except when writing it to a reused connection failed: the partner had closed it
    /// while idle, so nothing reached it.
    async fn attempts(
        &self,
        request: &Request<Bytes>,
        max_body: usize,
        headers: AnswerHeaders,
    ) -> Result<Answer, UpstreamFault> {
        let mut connects = 0;
        loop {
            let mut conn = match self.pool.checkout() {
                Some(conn) => conn,
                None => {
                    connects += 1;
                    // Boxed: connecting is rare, and its state need not sit in every exchange.
                    match Box::pin(self.pool.open()).await {
                        Ok(conn) => conn,
                        Err(fault) if fault.never_sent() && connects < CONNECT_ATTEMPTS => continue,
                        Err(fault) => return Err(fault),
                    }
                }
            };
            if let Err(e) = send(&mut conn, request).await {
                if conn.reused {
                    continue;
                }
                return Err(io_fault(&e));
            }
            let head_request = request.method() == Method::HEAD;
            let read = wire::read(
                &mut conn.io,
                &mut conn.read,
                head_request,
                max_body,
                headers,
            )
            .await
            .map_err(|e| match e {
                WireError::Io(e) => io_fault(&e),
                WireError::Eof => UpstreamFault::Reset,
                WireError::Protocol(reason) => UpstreamFault::Protocol(reason),
                WireError::TooLarge => UpstreamFault::TooLarge,
            })?;
            if read.reusable {
                self.pool.checkin(conn);
            }
            return Ok(Answer {
                status: read.status,
                headers: read.headers,
                body: read.body,
            });
        }
    }
}

/// Writes the request in one piece.
async fn send(conn: &mut Conn, request: &Request<Bytes>) -> std::io::Result<()> {
    conn.write.clear();
    wire::encode(request, &mut conn.write);
    conn.io.write_all(&conn.write).await?;
    conn.io.flush().await
}

fn credential_header(credential: &Credential) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = match credential {
        Credential::ApiKey(key) => (
            HeaderName::from_static("api-key"),
            key.expose_str().ok_or("api-key is not text")?.to_owned(),
        ),
        Credential::Basic { username, password } => {
            use base64::Engine as _;
            let pass = password.expose_str().ok_or("password is not text")?;
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{pass}"));
            (AUTHORIZATION, format!("Basic {token}"))
        }
    };
    let mut value =
        HeaderValue::from_str(&value).map_err(|_| "credential is not a valid header value")?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// Names a failure of the connection after the request was (being) sent.
fn io_fault(error: &std::io::Error) -> UpstreamFault {
    use std::io::ErrorKind::*;
    if let Some(tls) = wrapped_tls_error(error) {
        return UpstreamFault::Tls(tls.to_string());
    }
    match error.kind() {
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => UpstreamFault::Reset,
        _ => UpstreamFault::Protocol(error.to_string()),
    }
}

/// tokio-rustls wraps the rustls error in an `io::Error` (sometimes in another), and
/// `io::Error::source` skips the wrapped error itself: look through every layer for it.
fn wrapped_tls_error(io: &std::io::Error) -> Option<&rustls::Error> {
    let mut inner = io.get_ref();
    while let Some(wrapped) = inner {
        if let Some(tls) = wrapped.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        inner = wrapped
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incoming_path_joins_the_origin_as_the_text_would() {
        let paths = [
            "/v1/activation-codes",
            "/v1/profiles/status/0b0e7c43-3f7a-4d43-9c1b-2d9a8c7f6e5d",
            "/v1/x?a=1&b=%20",
        ];
        for (origin, prefix) in [
            ("https://127.0.0.1:9001", ""),
            ("https://msp.example/", ""),
            ("https://msp.example:8443", "/aid"),
        ] {
            let base = Base::new(&origin.parse().unwrap(), prefix);
            for path in paths {
                let parsed: PathAndQuery = path.parse().unwrap();
                let joined = base.join_parsed(Some(&parsed)).unwrap();
                assert_eq!(joined, base.join(path).unwrap(), "{origin} {prefix} {path}");
                assert_eq!(
                    joined.to_string(),
                    format!("{}{prefix}{path}", origin.trim_end_matches('/'))
                );
            }
            assert_eq!(base.join_parsed(None).unwrap(), base.join("/").unwrap());
        }
    }
}

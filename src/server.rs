//! Listeners: accept TCP, finish the TLS handshake under the current snapshot's
//! configuration, read the peer's identity once, and serve HTTP/1.1 or h2 (by ALPN) on the
//! connection until it closes or the hub drains.
//!
//! Three kinds: the partner listener (mutual TLS, the AID1 walk of [`crate::proxy`]), the
//! device listener (server TLS, the TS.43 walk) and the browser listener (server TLS only,
//! answered by [`crate::touchpoints`]). Each accepts on the calling runtime and serves every
//! connection on one of the serving threads ([`crate::workers`]).

mod idle;

use crate::hub::Hub;
use crate::identity::CertIdentities;
use crate::proxy::{self, Protocol};
use crate::workers::Workers;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulConnection;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// What the hub knows about one connection.
#[derive(Debug)]
pub struct ConnInfo {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The client certificate's identities (empty on listeners without client certificates).
    pub cert: CertIdentities,
    /// Whether ALPN chose h2.
    pub h2: bool,
}

/// Which listener a connection arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Partners (AID1): mutual TLS, a client certificate naming a partner.
    Partners,
    /// Devices (TS.43): server TLS only.
    Devices,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Partners => "partners",
            Side::Devices => "devices",
        }
    }
}

/// Accepts partner connections until the drain begins, then lets open requests finish
/// within the grace period.
pub async fn partner_listener<P: Protocol>(accept: Accept, hub: Hub, protocol: Arc<P>) {
    serve(Side::Partners, accept, hub, protocol).await
}

/// Accepts device connections (TS.43, no client certificates) until the drain begins.
pub async fn device_listener<P: Protocol>(accept: Accept, hub: Hub, protocol: Arc<P>) {
    serve(Side::Devices, accept, hub, protocol).await
}

/// A listener and where its connections are served.
pub struct Accept {
    /// The bound listener.
    pub listener: TcpListener,
    /// The serving threads.
    pub workers: Workers,
    /// Fires when the hub drains.
    pub shutdown: watch::Receiver<bool>,
    /// How long open requests may take to finish then.
    pub grace: Duration,
}

async fn serve<P: Protocol>(side: Side, accept: Accept, hub: Hub, protocol: Arc<P>) {
    accept_until_shutdown(accept, move |tcp, peer, draining| {
        let hub = hub.clone();
        let protocol = protocol.clone();
        async move {
            // Boxed: the connection's task is as large as its largest state, and the
            // handshake's (the TLS state and the socket, held once more) would otherwise
            // set it for the life of the connection.
            let Some((tls, info)) = Box::pin(handshake(side, tcp, peer, &hub)).await else {
                return;
            };
            let h2 = info.h2;
            let info = Arc::new(info);
            let (io, activity) = idle_io(tls, h2, &hub);
            let requests = activity.clone();
            let service = service_fn(move |request| {
                let busy = requests.busy();
                let hub = hub.clone();
                let protocol = protocol.clone();
                let info = info.clone();
                async move {
                    let answer = proxy::handle(protocol, hub, info, request).await;
                    drop(busy);
                    Ok::<_, Infallible>(answer)
                }
            });
            if let Err(e) = serve_http(io, h2, service, draining, activity).await {
                tracing::debug!(%peer, cause = %e, "connection ended with an error");
            }
        }
    })
    .await
}

/// Tells a connection that the hub drains (`true`); the drain waits until every connection
/// has dropped its receiver.
type Draining = watch::Receiver<bool>;

/// Accepts connections until `shutdown` fires, each served by `serve` on a task of its own
/// on a serving thread, then lets open connections finish within `grace` (the receiver given
/// to `serve` ties a connection to the drain).
async fn accept_until_shutdown<F, Fut>(accept: Accept, serve: F)
where
    F: Fn(TcpStream, SocketAddr, Draining) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Accept {
        listener,
        workers,
        mut shutdown,
        grace,
    } = accept;
    let (drain, draining) = watch::channel(false);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(cause = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let serve = serve.clone();
        let draining = draining.clone();
        workers.serve(tcp, peer, move |tcp, peer| serve(tcp, peer, draining));
    }
    drop(listener);
    drop(draining);
    drain.send_replace(true);
    if tokio::time::timeout(grace, drain.closed()).await.is_err() {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "grace period over; closing open connections"
        );
    }
}

/// Accepts browser connections (server TLS, no client certificate) and answers every request
/// with [`crate::touchpoints::respond`], until `shutdown` fires; then lets open requests
/// finish within `grace`.
pub async fn browser_listener(accept: Accept, hub: Hub) {
    accept_until_shutdown(accept, move |tcp, peer, draining| {
        let hub = hub.clone();
        async move {
            let _ = tcp.set_nodelay(true);
            let snap = hub.snapshot();
            let acceptor = TlsAcceptor::from(snap.browser_tls.clone());
            let deadline = snap.config.tls.handshake_timeout;
            // Boxed, as the partner listeners' handshake is (`serve`).
            let handshake = Box::pin(tokio::time::timeout(deadline, acceptor.accept(tcp)));
            let tls = match handshake.await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    let reason = handshake_failure(&e);
                    hub.metrics().handshake_failures.inc(("browsers", reason));
                    tracing::debug!(%peer, reason, cause = %e, "browser TLS handshake failed");
                    return;
                }
                Err(_) => {
                    hub.metrics()
                        .handshake_failures
                        .inc(("browsers", "timeout"));
                    return;
                }
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let (io, activity) = idle_io(tls, h2, &hub);
            let requests = activity.clone();
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let _busy = requests.busy();
                let response = crate::touchpoints::respond(&hub, request.method(), request.uri());
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(e) = serve_http(io, h2, service, draining, activity).await {
                tracing::debug!(%peer, cause = %e, "browser connection ended with an error");
            }
        }
    })
    .await
}

/// `tls`, closed once it has been without a request in flight for `listen.idle_timeout_secs`
/// (the current snapshot's; an h2 connection is asked to go away first), and what its
/// requests mark busy.
fn idle_io<IO>(tls: IO, h2: bool, hub: &Hub) -> (idle::IdleIo<IO>, Arc<idle::Activity>) {
    let activity = idle::Activity::new();
    let timeout = hub.snapshot().config.idle_timeout;
    let close = if h2 {
        idle::Close::GoAway
    } else {
        idle::Close::Eof
    };
    let io = idle::IdleIo::new(tls, activity.clone(), timeout, close);
    (io, activity)
}

/// Serves HTTP on an established TLS connection until it closes, shut down gracefully when
/// the hub drains or an idle h2 connection is asked to go away: h2 when ALPN chose it (h2
/// over TLS is negotiated by ALPN, RFC 9113 §3.2), else HTTP/1.1.
///
/// Not an async fn, and the connection boxed: an async fn keeps its arguments apart from the
/// locals they move into, so that `io` (some 1.3 KiB with its TLS state) and the hyper
/// connection made of it (1.9 KiB, h2 2.7) would each be kept twice in the connection's task.
fn serve_http<IO, S, B>(
    io: IO,
    h2: bool,
    service: S,
    draining: Draining,
    activity: Arc<idle::Activity>,
) -> impl std::future::Future<Output = Result<(), hyper::Error>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = B> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use futures_util::future::Either;
    let io = TokioIo::new(io);
    if h2 {
        let builder = http2::Builder::new(TokioExecutor::new());
        let connection = Box::pin(builder.serve_connection(io, service));
        Either::Left(until_closed(connection, draining, activity))
    } else {
        let connection = Box::pin(http1::Builder::new().serve_connection(io, service));
        Either::Right(until_closed(connection, draining, activity))
    }
}

/// Runs `connection` until it ends; once the hub drains or the connection is asked to go
/// away, shuts it down gracefully (HTTP/1.1: closed after the request in flight, if any; h2:
/// GOAWAY, then closed when its streams are done) and runs it to its end.
async fn until_closed<C: GracefulConnection>(
    mut connection: std::pin::Pin<Box<C>>,
    mut draining: Draining,
    activity: Arc<idle::Activity>,
) -> Result<(), C::Error> {
    let go_away = std::future::poll_fn(|_| {
        // The idle timer wakes this task when it asks (`idle::IdleIo`).
        if activity.go_away_asked() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    });
    tokio::select! {
        biased;
        ended = connection.as_mut() => return ended,
        () = go_away => {}
        // Every receiver was cloned before the drain's send; an error means the drain is
        // over (its sender gone): end the connection too.
        _ = draining.changed() => {}
    }
    connection.as_mut().graceful_shutdown();
    connection.await
}

async fn handshake(
    side: Side,
    tcp: TcpStream,
    peer: SocketAddr,
    hub: &Hub,
) -> Option<(tokio_rustls::server::TlsStream<TcpStream>, ConnInfo)> {
    let _ = tcp.set_nodelay(true);
    let snap = hub.snapshot();
    let config = match side {
        Side::Partners => snap.server_tls.clone(),
        Side::Devices => snap.devices_tls.clone(),
    };
    let acceptor = TlsAcceptor::from(config);
    let deadline = snap.config.tls.handshake_timeout;
    let tls = match tokio::time::timeout(deadline, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let reason = handshake_failure(&e);
            hub.metrics().handshake_failures.inc((side.label(), reason));
            tracing::info!(%peer, reason, cause = %e, "TLS handshake refused");
            return None;
        }
        Err(_) => {
            hub.metrics()
                .handshake_failures
                .inc((side.label(), "timeout"));
            tracing::info!(%peer, "TLS handshake timed out");
            return None;
        }
    };
    let (_, session) = tls.get_ref();
    let cert = match side {
        Side::Partners => session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|der| CertIdentities::from_der(der))?,
        Side::Devices => CertIdentities::default(),
    };
    let h2 = session.alpn_protocol() == Some(b"h2");
    Some((tls, ConnInfo { peer, cert, h2 }))
}

/// A metric label for a failed handshake.
fn handshake_failure(error: &std::io::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    match error.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
        Some(Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)) => {
            "unknown_partner"
        }
        Some(Error::InvalidCertificate(CertificateError::Revoked)) => "revoked",
        Some(Error::InvalidCertificate(CertificateError::Expired)) => "expired",
        Some(Error::InvalidCertificate(_)) => "bad_certificate",
        Some(Error::NoCertificatesPresented) => "no_certificate",
        Some(Error::PeerIncompatible(_)) => "incompatible",
        Some(Error::AlertReceived(_)) => "alert_received",
        Some(_) => "protocol",
        None if error.kind() == std::io::ErrorKind::UnexpectedEof => "eof",
        None => "io",
    }
}

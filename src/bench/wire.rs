//! The load generator's wire: for one setup and one (caller, target) pair, where to connect,
//! which certificate to present, which credential and path prefix to send — and raw
//! HTTP/1.1 or h2 connections over rustls on which the bench controls exactly how many
//! connections are open.
//!
//! Through the hub or nginx, a caller presents its own certificate and credential, as a
//! partner would. Directly, the load generator stands where the hub stands: it presents the
//! hub's client certificate and the hub's credential at the target, under the target's path
//! prefix.

use super::world::{Server, World};
use crate::client::{error_chain, Caller};
use crate::config::Credential;
use crate::pki;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How long one request may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how one caller reaches one target in one setup.
pub struct Route {
    addr: SocketAddr,
    tls: TlsConnector,
    h2: bool,
    authority: String,
    prefix: String,
    headers: HeaderMap,
}

/// How a [`Route`] connects.
#[derive(Clone, Copy, Debug)]
pub struct Wire {
    /// Speak h2 (ALPN `h2`) rather than HTTP/1.1.
    pub h2: bool,
    /// Allow TLS session resumption (off when measuring full handshakes).
    pub resume: bool,
}

impl Route {
    /// The route from `caller` to `target` in the setup `server` stands for.
    pub fn new(
        world: &World,
        server: &Server,
        caller: &str,
        target: &str,
        wire: Wire,
    ) -> Result<Route, String> {
        let target_partner = world.partner(target)?;
        let mut headers = HeaderMap::new();
        headers.insert("client-id", header(caller)?);
        headers.insert("target-id", header(target)?);
        let (addr, (cert, key), prefix) = match server.addr {
            Some(addr) => {
                credential_headers(&mut headers, &Caller::for_partner(world.partner(caller)?))?;
                (
                    addr,
                    pki::partner_client(&world.certs, caller),
                    String::new(),
                )
            }
            None => {
                let addr = *world
                    .partner_addrs
                    .get(target)
                    .ok_or_else(|| format!("no simulated partner {target}"))?;
                // The hub's credential at the target, as the hub would send it.
                let hub = match &target_partner.upstream.credential {
                    Credential::ApiKey(key) => Caller {
                        client_id: caller.to_owned(),
                        api_key: key.expose_str().map(str::to_owned),
                        basic: None,
                    },
                    Credential::Basic { username, password } => Caller {
                        client_id: caller.to_owned(),
                        api_key: None,
                        basic: password.expose_str().map(|p| (username.clone(), p.into())),
                    },
                };
                credential_headers(&mut headers, &hub)?;
                let prefix = target_partner.upstream.prefix.clone();
                (addr, pki::hub_client(&world.certs), prefix)
            }
        };
        let mut config = crate::tls::client_config(&[pki::ca_cert(&world.certs)], &cert, &key)?;
        config.alpn_protocols = vec![if wire.h2 {
            b"h2".to_vec()
        } else {
            b"http/1.1".to_vec()
        }];
        if !wire.resume {
            config.resumption = rustls::client::Resumption::disabled();
        }
        Ok(Route {
            addr,
            tls: TlsConnector::from(Arc::new(config)),
            h2: wire.h2,
            authority: format!("localhost:{}", addr.port()),
            prefix,
            headers,
        })
    }

    /// A request with fresh `CMP-request-id` and `correlation-id`.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Request<Full<Bytes>> {
        let uri = if self.h2 {
            format!("https://{}{}{path}", self.authority, self.prefix)
        } else {
            format!("{}{path}", self.prefix)
        };
        let mut request = Request::new(Full::new(
            body.as_ref()
                .map_or(Bytes::new(), |b| Bytes::copy_from_slice(b.as_bytes())),
        ));
        *request.method_mut() = method;
        *request.uri_mut() = uri.parse().unwrap_or_default();
        let headers = request.headers_mut();
        headers.clone_from(&self.headers);
        if !self.h2 {
            headers.insert(
                http::header::HOST,
                header(&self.authority).unwrap_or(HeaderValue::from_static("localhost")),
            );
        }
        headers.insert("cmp-request-id", uuid_value());
        headers.insert("correlation-id", uuid_value());
        if body.is_some() {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        request
    }

    /// Opens one connection: TCP, TLS (client certificate), HTTP handshake.
    pub async fn connect(&self) -> Result<Sender, String> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {}", e.kind()))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        let io = TokioIo::new(tls);
        if self.h2 {
            let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(connection);
            Ok(Sender::H2(sender))
        } else {
            let (sender, connection) = http1::handshake(io)
                .await
                .map_err(|e| format!("http/1.1 handshake: {e}"))?;
            tokio::spawn(connection);
            Ok(Sender::H1(sender))
        }
    }
}

/// One open connection's request handle.
pub enum Sender {
    /// HTTP/1.1: one request at a time.
    H1(http1::SendRequest<Full<Bytes>>),
    /// h2: clones share the connection's streams.
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    /// Another handle on the same connection (h2), or `None` (HTTP/1.1).
    pub fn share(&self) -> Option<Sender> {
        match self {
            Sender::H1(_) => None,
            Sender::H2(s) => Some(Sender::H2(s.clone())),
        }
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), String> {
        let response = match self {
            Sender::H1(s) => {
                s.ready().await.map_err(|e| transport(&e))?;
                s.send_request(request).await
            }
            Sender::H2(s) => {
                s.ready().await.map_err(|e| transport(&e))?;
                s.send_request(request).await
            }
        }
        .map_err(|e| transport(&e))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| transport(&e))?
            .to_bytes();
        Ok((status, body))
    }
}

/// A connection that reopens itself after a failure.
pub struct Conn {
    route: Arc<Route>,
    sender: Option<Sender>,
}

impl Conn {
    /// A connection on `route`, already open (`sender`) or opened on first use.
    pub fn new(route: Arc<Route>, sender: Option<Sender>) -> Conn {
        Conn { route, sender }
    }

    /// The route.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// One exchange under [`REQUEST_TIMEOUT`]; any failure closes the connection.
    pub async fn exchange(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), String> {
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, async {
            if self.sender.is_none() {
                self.sender = Some(self.route.connect().await?);
            }
            match &mut self.sender {
                Some(sender) => sender.send(request).await,
                None => Err("not connected".to_owned()),
            }
        })
        .await
        .unwrap_or_else(|_| Err("timeout".to_owned()));
        if outcome.is_err() {
            self.sender = None;
        }
        outcome
    }
}

/// A short, stable label for a transport failure (errors are counted by kind).
fn transport(error: &hyper::Error) -> String {
    if error.is_closed() || error.is_incomplete_message() || error.is_canceled() {
        return "connection closed".to_owned();
    }
    if error.is_timeout() {
        return "timeout".to_owned();
    }
    let mut text = error_chain(error);
    text.truncate(80);
    text
}

fn credential_headers(headers: &mut HeaderMap, caller: &Caller) -> Result<(), String> {
    if let Some(key) = &caller.api_key {
        headers.insert("api-key", header(key)?);
    }
    if let Some((user, pass)) = &caller.basic {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        headers.insert(
            HeaderName::from_static("authorization"),
            header(&format!("Basic {token}"))?,
        );
    }
    Ok(())
}

fn header(value: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(value).map_err(|e| format!("header value {value:?}: {e}"))
}

fn uuid_value() -> HeaderValue {
    let mut buffer = uuid::Uuid::encode_buffer();
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
    // A hyphenated UUID is ASCII letters, digits and hyphens: always a valid header value.
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("0"))
}

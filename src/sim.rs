//! Simulated partners: a real mutual-TLS MSP or CMP backend that answers every AID1 function
//! it hosts with a valid answer, demands the hub's client certificate, and remembers every
//! request it saw. The demo, the load generator and the tests put these behind the hub.
//!
//! A simulated MSP answers Request Activation Code synchronously (200 with a code), or — when
//! the request's `deviceType` is `async` — with 201, and then delivers the code through the
//! hub with Send Activation Code; when it is `slow`, it answers after [`SLOW_ANSWER`]. Tests
//! can make any path misbehave with [`Fault`].

use crate::client::{Caller, HubClient};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::server::WebPkiClientVerifier;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Which side a simulated partner plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Hosts `/v1/*`.
    Msp,
    /// Hosts `/cesim/msp/v1/*`.
    Cmp,
}

/// A request the partner received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// All headers as received.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// A misbehaviour for requests whose path contains a marker.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer after a delay.
    Delay(Duration),
    /// Answer this status and body instead.
    Answer(u16, String),
    /// Drop the connection without an answer.
    Hangup,
}

/// How the MSP delivers async activation codes.
#[derive(Clone)]
pub struct AsyncDelivery {
    /// A client to the hub with the MSP's certificate.
    pub hub: HubClient,
    /// The MSP's caller identity at the hub.
    pub caller: Caller,
    /// Delay before delivering.
    pub after: Duration,
}

#[derive(Default)]
struct State {
    /// Load runs: keep no record of requests (memory would grow with every request).
    forget: bool,
    seen: Vec<Seen>,
    faults: Vec<(String, Fault)>,
    delivered: Vec<(u16, String)>,
}

/// A running simulated partner.
#[derive(Clone)]
pub struct SimPartner {
    /// Its address.
    pub addr: SocketAddr,
    side: Side,
    state: Arc<Mutex<State>>,
    delivery: Arc<Mutex<Option<AsyncDelivery>>>,
}

/// The activation code the simulated MSP hands out.
pub const SIM_ACTIVATION_CODE: &str = "1$SMDP.AIDHUB.TEST$04386-AGYFT-A74Y8-3F815";
/// How long the simulated MSP takes for a Request Activation Code whose `deviceType` is
/// `slow` (tests of requests in flight).
pub const SLOW_ANSWER: Duration = Duration::from_millis(1500);
/// The ICCID of the profiles it issues.
pub const SIM_ICCID: &str = "8944500805172032953";

impl SimPartner {
    /// Starts a partner on `addr` with its server `cert`/`key`, demanding client certificates
    /// issued by `client_ca` (the hub's).
    pub async fn start(
        side: Side,
        addr: SocketAddr,
        cert: &Path,
        key: &Path,
        client_ca: &Path,
    ) -> Result<SimPartner, String> {
        let roots = crate::tls::read_roots(&[client_ca])?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crate::tls::provider())
                .build()
                .map_err(|e| e.to_string())?;
        let mut config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(crate::tls::VERSIONS)
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(verifier)
            .with_single_cert(crate::tls::read_certs(cert)?, crate::tls::read_key(key)?)
            .map_err(|e| e.to_string())?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let partner = SimPartner {
            addr,
            side,
            state: Arc::default(),
            delivery: Arc::default(),
        };
        let serving = partner.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let partner = serving.clone();
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |req| {
                        let partner = partner.clone();
                        async move { partner.serve(req).await }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(partner)
    }

    /// Sets how the MSP delivers async codes.
    pub fn deliver_async_with(&self, delivery: AsyncDelivery) {
        *lock(&self.delivery) = Some(delivery);
    }

    /// Stops recording requests: [`SimPartner::seen`] stays empty, so a long load run does
    /// not grow the partner's memory.
    pub fn forget_requests(&self) {
        let mut state = lock(&self.state);
        state.forget = true;
        state.seen = Vec::new();
    }

    /// Makes requests whose path contains `marker` misbehave.
    pub fn fault(&self, marker: &str, fault: Fault) {
        lock(&self.state).faults.push((marker.to_owned(), fault));
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        lock(&self.state).faults.clear();
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.state).seen.clone()
    }

    /// How many requests it has seen.
    pub fn seen_count(&self) -> usize {
        lock(&self.state).seen.len()
    }

    /// The outcome (status, error code) of each async delivery made through the hub.
    pub fn deliveries(&self) -> Vec<(u16, String)> {
        lock(&self.state).delivered.clone()
    }

    async fn serve(&self, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, String> {
        let (parts, body) = request.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let fault = {
            let mut state = lock(&self.state);
            if !state.forget {
                state.seen.push(Seen {
                    method: parts.method.clone(),
                    path: path.clone(),
                    headers: parts.headers.clone(),
                    body: body.clone(),
                });
            }
            state
                .faults
                .iter()
                .find(|(marker, _)| path.contains(marker.as_str()))
                .map(|(_, f)| f.clone())
        };
        match fault {
            Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
            Some(Fault::Answer(status, body)) => return Ok(reply(status, body)),
            Some(Fault::Hangup) => return Err("hang up".into()),
            None => {}
        }
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        tracing::debug!(target: "aidhub::sim", method = %parts.method, %path, "simulated partner received a request");
        if json["deviceType"] == "slow" {
            tokio::time::sleep(SLOW_ANSWER).await;
        }
        // Partners may serve the API under a path prefix: route on what follows it.
        let path = ["/cesim/msp/v1/", "/v1/"]
            .iter()
            .find_map(|api| path.find(api).map(|at| path[at..].to_owned()))
            .unwrap_or(path);
        Ok(match self.side {
            Side::Msp => self.msp(&parts.method, &path, &parts.headers, &json),
            Side::Cmp => cmp(&parts.method, &path),
        })
    }

    fn msp(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &serde_json::Value,
    ) -> Response<Full<Bytes>> {
        let token = path.rsplit('/').next().unwrap_or_default();
        let token = token.split('?').next().unwrap_or_default().to_owned();
        if path.starts_with("/v1/activation-code-requests/") {
            if body["deviceType"] == "async" {
                self.deliver_later(token, headers, body);
                return reply(201, String::new());
            }
            let answer = serde_json::json!({
                "iccid": SIM_ICCID,
                "activationCode": SIM_ACTIVATION_CODE,
                "profileType": "personal",
                "swappedIccid": body.get("replaceIccid").cloned().unwrap_or(serde_json::Value::Null),
            });
            return reply(200, answer.to_string());
        }
        if path.starts_with("/v1/statuses/") {
            return reply(201, String::new());
        }
        if method == Method::DELETE && path.starts_with("/v1/users/") {
            return reply(204, String::new());
        }
        if path.starts_with("/v1/profiles/status/") {
            let answer =
                serde_json::json!({"profiles": [{"iccid": SIM_ICCID, "status": "enabled"}]});
            return reply(200, answer.to_string());
        }
        reply(404, r#"{"code":"91","error":"unknown path"}"#.into())
    }

    fn deliver_later(&self, token: String, headers: &HeaderMap, body: &serde_json::Value) {
        let Some(delivery) = lock(&self.delivery).clone() else {
            return;
        };
        let cmp = headers
            .get("client-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let answer = serde_json::json!({
            "iccid": SIM_ICCID,
            "activationCode": SIM_ACTIVATION_CODE,
            "profileType": "personal",
            "activationCodeRequestID": body["activationCodeRequestID"],
            "swappedIccid": serde_json::Value::Null,
        });
        let state = self.state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delivery.after).await;
            let path = format!("/cesim/msp/v1/activation-codes/{token}");
            let outcome = delivery
                .hub
                .call(&delivery.caller, &cmp, Method::POST, &path, Some(&answer))
                .await;
            let record = match outcome {
                Ok(reply) => (reply.status.as_u16(), reply.code().unwrap_or_default()),
                Err(e) => (0, e),
            };
            lock(&state).delivered.push(record);
        });
    }
}

fn cmp(method: &Method, path: &str) -> Response<Full<Bytes>> {
    let status = match (method.as_str(), path) {
        ("POST", p) if p.ends_with("/invalidate") => 204,
        ("POST", p) if p.ends_with("/profiles") => 200,
        ("POST", p) if p.starts_with("/cesim/msp/v1/users/") => 201,
        ("PATCH", _) => 201,
        ("POST", p) if p.starts_with("/cesim/msp/v1/activation-codes/") => 200,
        _ => return reply(404, r#"{"code":"91","error":"unknown path"}"#.into()),
    };
    reply(status, String::new())
}

fn reply(status: u16, body: String) -> Response<Full<Bytes>> {
    let has_body = !body.is_empty();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if has_body {
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
    }
    response
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the recorded lists inconsistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

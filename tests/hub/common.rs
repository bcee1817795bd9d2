//! Helpers shared by the hub tests: starting a stage, sending calls with known ids over a
//! chosen HTTP version, checking the spec error body, editing the generated configuration.

use crate::support::{bodies, TestHub};
use aidhub::client::{Caller, HubClient, Reply, Version};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::Value;
use uuid::Uuid;

/// Both HTTP versions a partner may speak to the hub.
pub const VERSIONS: [Version; 2] = [Version::Http1, Version::Http2];

/// The default stage.
pub async fn stage() -> TestHub {
    TestHub::start().await.expect("the stage starts")
}

/// A client presenting partner `id`'s stage certificate.
pub fn client(hub: &TestHub, id: &str, version: Version) -> HubClient {
    hub.client(id, version)
        .expect("a client for a stage partner")
}

/// Partner `id`'s own `client-id` and hub credential.
pub fn caller(hub: &TestHub, id: &str) -> Caller {
    hub.caller(id).expect("a stage partner")
}

/// The `CMP-request-id` and `correlation-id` of one call.
pub struct Ids {
    /// `CMP-request-id`.
    pub request: String,
    /// `correlation-id`.
    pub correlation: String,
}

impl Ids {
    /// Fresh ids.
    pub fn new() -> Ids {
        Ids {
            request: Uuid::new_v4().to_string(),
            correlation: Uuid::new_v4().to_string(),
        }
    }

    /// Both as headers.
    pub fn headers(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("cmp-request-id", header(&self.request));
        map.insert("correlation-id", header(&self.correlation));
        map
    }
}

/// A header value from text the test controls.
pub fn header(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("a valid header value")
}

/// One call in full: `cert` is the partner whose certificate is presented, `caller` the
/// `client-id` and credential sent, `extra` headers are set last (they replace the defaults).
/// A call that gets no HTTP answer comes back as [`Reply::transport_error`].
#[allow(clippy::too_many_arguments)]
pub async fn send(
    hub: &TestHub,
    version: Version,
    cert: &str,
    caller: &Caller,
    target: &str,
    method: Method,
    path: &str,
    body: Option<Bytes>,
    extra: HeaderMap,
) -> Reply {
    client(hub, cert, version)
        .call_with(caller, target, method, path, body, extra)
        .await
        .unwrap_or_else(|e| Reply::transport_error(&e))
}

/// A call as partner `from` (its certificate and credential, fresh ids) towards `to`.
pub async fn call(
    hub: &TestHub,
    version: Version,
    from: &str,
    to: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Reply {
    let body = body.map(|b| Bytes::from(b.to_string()));
    let caller = caller(hub, from);
    send(
        hub,
        version,
        from,
        &caller,
        to,
        method,
        path,
        body,
        Ids::new().headers(),
    )
    .await
}

/// How many requests all simulated partners have seen together.
pub fn seen_total(hub: &TestHub) -> usize {
    hub.partners.values().map(|p| p.seen_count()).sum()
}

/// Asserts a hub error: `status`, JSON content type, and exactly the spec's error body
/// `{"code": "<code>", "error": "<description>"}` with the code as a string.
#[track_caller]
pub fn assert_error(reply: &Reply, status: u16, code: &str, case: &str) {
    let body = String::from_utf8_lossy(&reply.body);
    assert_eq!(
        reply.status.as_u16(),
        status,
        "{case}: status (body {body})"
    );
    assert_eq!(
        reply
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{case}: content type"
    );
    let json = reply.json();
    let object = json
        .as_object()
        .unwrap_or_else(|| panic!("{case}: the body is not a JSON object: {body}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "error"], "{case}: error body members");
    assert_eq!(
        json["code"],
        Value::String(code.to_owned()),
        "{case}: code (a string) in {body}"
    );
    let description = json["error"].as_str().unwrap_or_default();
    assert!(
        !description.is_empty(),
        "{case}: the error description is a non-empty string: {body}"
    );
}

/// Federates a fresh token between `msp` and `cmp` with Send MSP Token; returns it.
pub async fn onboard(hub: &TestHub, msp: &str, cmp: &str) -> Uuid {
    let (account_id, _) = hub.account_id(cmp, 600);
    let token = Uuid::new_v4();
    let reply = call(
        hub,
        Version::Http1,
        msp,
        cmp,
        Method::POST,
        &format!("/cesim/msp/v1/users/{account_id}"),
        Some(&bodies::msp_token(&token)),
    )
    .await;
    assert_eq!(
        reply.status.as_u16(),
        201,
        "onboarding {msp} with {cmp}: {:?}",
        reply.body
    );
    token
}

/// A loopback port that refuses connections: bound and never listening, so a connection
/// attempt gets a reset. The socket holds the port until it is dropped; a port bound and
/// released at once could be taken meanwhile by another test's listener.
pub fn refusing_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket
        .bind("127.0.0.1:0".parse().expect("a loopback address"))
        .expect("bind a loopback port");
    let port = socket.local_addr().expect("its address").port();
    (socket, port)
}

pub use crate::support::edit_partner;

/// Replaces the line of `block` that starts with `start` by `line`.
pub fn replace_line(block: &str, start: &str, line: &str) -> String {
    assert!(
        block.lines().any(|l| l.starts_with(start)),
        "a line starting with {start:?} in {block}"
    );
    block
        .lines()
        .map(|l| if l.starts_with(start) { line } else { l })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Writes a fresh development CA (and certificates for `partners`) into `dir`; returns the
/// CA certificate's path. Nothing the stage trusts signs it.
pub fn own_ca(dir: &std::path::Path, partners: &[&str]) -> std::path::PathBuf {
    let hosts = Vec::new();
    let specs: Vec<aidhub::pki::PartnerCerts<'_>> = partners
        .iter()
        .map(|id| aidhub::pki::PartnerCerts { id, hosts: &hosts })
        .collect();
    aidhub::pki::ensure(
        &aidhub::pki::PkiRequest {
            dir,
            hub_hosts: &[],
            partners: &specs,
            days: 2,
        },
        &mut |_| {},
    )
    .expect("a second PKI");
    aidhub::pki::ca_cert(dir)
}

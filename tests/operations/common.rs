//! Helpers for the operations tests: a small admin client (plain HTTP/1.1 over a TCP stream),
//! polling with a deadline, calls with fresh ids and bodies, edits of the stage's routes.toml,
//! and a partner added to the stage's PKI.

use crate::support::{account_secret, bodies, TestHub};
use aidhub::client::{Caller, HubClient, Reply};
use aidhub::sim::{Side, SimPartner};
use http::Method;
use serde_json::Value;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// How long a condition may take to hold.
pub const WITHIN: Duration = Duration::from_secs(10);

/// A hub.toml edit that turns the file watch off, so only the test triggers reloads and the
/// configuration versions it sees are exactly the ones it caused.
pub fn no_watch(hub: &str) -> String {
    format!("{hub}\n[reload]\nwatch = false\n")
}

/// Polls the async `check` until it holds or `within` passes.
pub async fn until<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check().await
}

/// One answer of the admin listener.
#[derive(Debug)]
pub struct AdminReply {
    /// Status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

impl AdminReply {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A client of the admin listener: one connection per request, `Connection: close`.
#[derive(Clone)]
pub struct Admin {
    addr: SocketAddr,
    token: Option<String>,
}

impl Admin {
    /// The stage hub's admin listener, without a token.
    pub fn of(hub: &TestHub) -> Admin {
        let running = hub.running.as_ref().expect("the stage hub runs");
        Admin {
            addr: running.admin_addr,
            token: None,
        }
    }

    /// The admin listener at `addr`.
    pub fn at(addr: SocketAddr) -> Admin {
        Admin { addr, token: None }
    }

    /// The same listener, sending `Authorization: Bearer <token>`.
    pub fn with_token(&self, token: &str) -> Admin {
        Admin {
            addr: self.addr,
            token: Some(token.to_owned()),
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> AdminReply {
        self.request("GET", path).await
    }

    /// `POST path` without a body.
    pub async fn post(&self, path: &str) -> AdminReply {
        self.request("POST", path).await
    }

    /// One request; panics when the listener cannot be reached or answers no HTTP.
    pub async fn request(&self, method: &str, path: &str) -> AdminReply {
        let mut tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .unwrap_or_else(|e| panic!("connect to the admin listener {}: {e}", self.addr));
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n",
            self.addr
        );
        tcp.write_all(head.as_bytes())
            .await
            .expect("send an admin request");
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw)
            .await
            .expect("read the admin answer");
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{method} {path}: not an HTTP answer: {text}"));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{method} {path}: no status line: {head}"));
        AdminReply {
            status,
            body: body.to_owned(),
        }
    }

    /// `GET /config` as JSON, asserting 200.
    pub async fn config(&self) -> Value {
        let reply = self.get("/config").await;
        assert_eq!(reply.status, 200, "GET /config: {}", reply.body);
        reply.json()
    }

    /// The text of `GET /metrics`, asserting 200.
    pub async fn metrics(&self) -> String {
        let reply = self.get("/metrics").await;
        assert_eq!(reply.status, 200, "GET /metrics: {}", reply.body);
        reply.body
    }
}

/// The value of one series (`name{labels}` exactly as rendered) in a Prometheus text, if
/// present.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// Asserts one series' value, showing the whole scrape when it differs.
#[track_caller]
pub fn assert_metric(text: &str, series: &str, expected: f64) {
    assert_eq!(metric(text, series), Some(expected), "{series} in\n{text}");
}

/// Asserts a hub error: `status`, JSON, and exactly the spec's error body with `code`.
#[track_caller]
pub fn assert_error(reply: &Reply, status: u16, code: &str, case: &str) {
    let body = String::from_utf8_lossy(&reply.body);
    assert_eq!(reply.status.as_u16(), status, "{case}: status ({body})");
    assert_eq!(
        reply
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{case}: content type"
    );
    let json = reply.json();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap_or_else(|| panic!("{case}: not a JSON object: {body}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "error"], "{case}: error body members");
    assert_eq!(json["code"], code, "{case}: code (a string) in {body}");
}

/// The `Retry-After` seconds of a reply.
#[track_caller]
pub fn retry_after(reply: &Reply) -> u64 {
    reply
        .headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a numeric Retry-After in {:?}", reply.headers))
}

/// An account id signed by stage CMP `cmp`, valid for ten minutes.
pub fn account_id(cmp: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = aidhub::account_id::AccountClaims {
        sid: Uuid::new_v4(),
        exp: now + 600,
        iat: Some(now),
        has_ver: false,
    };
    aidhub::account_id::sign(&claims, None, false, account_secret(cmp).as_bytes())
}

/// Send MSP Token's path and a fresh body: (path, body, token).
pub fn onboarding(cmp: &str) -> (String, Value, Uuid) {
    let token = Uuid::new_v4();
    let path = format!("/cesim/msp/v1/users/{}", account_id(cmp));
    (path, bodies::msp_token(&token), token)
}

/// Federates a fresh token between `msp` and `cmp`; returns it.
pub async fn onboard(hub: &TestHub, msp: &str, cmp: &str) -> Uuid {
    let (path, body, token) = onboarding(cmp);
    let reply = hub.call(msp, cmp, Method::POST, &path, Some(&body)).await;
    assert_eq!(
        reply.status,
        201,
        "onboarding {msp} with {cmp}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    token
}

/// Request Activation Code's path for `token`.
pub fn rac_path(token: &Uuid) -> String {
    format!("/v1/activation-code-requests/{token}")
}

/// Send CSIM Status's path for `token`.
pub fn scs_path(token: &Uuid) -> String {
    format!("/v1/statuses/{token}")
}

/// Request Profile Status's path for `token`.
pub fn rps_path(token: &Uuid) -> String {
    format!("/v1/profiles/status/{token}")
}

/// A stage client and caller for partner `id`.
pub fn partner(hub: &TestHub, id: &str) -> (HubClient, Caller) {
    (
        hub.client(id, aidhub::client::Version::Http1)
            .expect("a client for a stage partner"),
        hub.caller(id).expect("a partner of the routing table"),
    )
}

/// The stage's routes.toml.
pub fn routes_path(hub: &TestHub) -> PathBuf {
    hub.dir.path().join("routes.toml")
}

/// Rewrites the stage's routes.toml with `edit` applied to its current text.
pub fn rewrite_routes(hub: &TestHub, edit: impl Fn(&str) -> String) {
    let path = routes_path(hub);
    let text = std::fs::read_to_string(&path).expect("read routes.toml");
    std::fs::write(&path, edit(&text)).expect("write routes.toml");
}

pub use crate::support::edit_partner;

/// Adds `lines` at the end of partner `id`'s block (its last table is `[partner.upstream]`,
/// so `[partner.limits]` tables may follow).
pub fn append_to_partner(routes: &str, id: &str, lines: &str) -> String {
    edit_partner(routes, id, |block| {
        format!("{}\n{lines}\n\n", block.trim_end())
    })
}

/// Removes partner `id` from a routes.toml text.
pub fn remove_partner(routes: &str, id: &str) -> String {
    let marker = format!("id = \"{id}\"\n");
    let kept: Vec<&str> = routes
        .split("[[partner]]")
        .filter(|block| !block.contains(&marker))
        .collect();
    assert_eq!(
        kept.len() + 1,
        routes.split("[[partner]]").count(),
        "routes.toml has one [[partner]] {id}"
    );
    kept.join("[[partner]]")
}

/// A new MSP for the stage: certificates from the stage CA (client and server), a simulated
/// partner behind them, and its `[[partner]]` block (identity `cn:<id>`, api-key
/// `<id>Key1`).
pub async fn new_msp(hub: &TestHub, id: &str) -> (SimPartner, String) {
    let certs = hub.certs();
    let hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    aidhub::pki::ensure(
        &aidhub::pki::PkiRequest {
            dir: &certs,
            hub_hosts: &hosts,
            partners: &[aidhub::pki::PartnerCerts { id, hosts: &hosts }],
            days: 30,
        },
        &mut |_| {},
    )
    .expect("certificates for the new partner");
    let (cert, key) = aidhub::pki::partner_server(&certs, id);
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let sim = SimPartner::start(
        Side::Msp,
        any_port,
        &cert,
        &key,
        &aidhub::pki::ca_cert(&certs),
    )
    .await
    .expect("the new partner's backend starts");
    let block = format!(
        "[[partner]]\nid = \"{id}\"\nrole = \"msp\"\nidentities = [\"cn:{id}\"]\n\
         credential = {{ api_key = \"{id}Key1\" }}\n[partner.upstream]\n\
         url = \"https://127.0.0.1:{port}\"\nca = [\"certs/ca.pem\"]\n\
         credential = {{ api_key = \"hubAt{id}\" }}\nserver_name = \"localhost\"\n\n",
        port = sim.addr.port()
    );
    (sim, block)
}

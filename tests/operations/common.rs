//! Helpers for the operations tests: the admin client (from the shared support module, which
//! the crash tests use too), polling with a deadline, calls with fresh ids and bodies, edits
//! of the stage's routes.toml, and a partner added to the stage's PKI.

use crate::support::{account_secret, bodies, TestHub};
pub use crate::support::{assert_metric, metric, Admin};
use aidhub::client::{Caller, HubClient, Reply};
use aidhub::sim::{Side, SimPartner};
use http::Method;
use serde_json::Value;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

/// How long a condition may take to hold.
pub const WITHIN: Duration = Duration::from_secs(10);

/// A hub.toml edit that turns the file watch off, so only the test triggers reloads and the
/// configuration versions it sees are exactly the ones it caused.
pub fn no_watch(hub: &str) -> String {
    format!("{hub}\n[reload]\nwatch = false\n")
}

/// A stage whose hub reloads only when the test asks (`POST /reload`, [`no_watch`]), and the
/// client of its admin listener.
pub async fn stage_reloaded_on_request() -> (TestHub, Admin) {
    let hub = TestHub::builder()
        .hub(no_watch)
        .start()
        .await
        .expect("the stage starts");
    let admin = Admin::of(&hub);
    (hub, admin)
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

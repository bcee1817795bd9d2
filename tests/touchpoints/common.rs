//! Helpers for the touchpoint tests: a stage, a client that behaves like a browser's first
//! hop (server TLS only, no redirect following), fresh account ids, and the checks every
//! refusal page must pass.

use crate::support::TestHub;
use aidhub::client::Reply;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The default stage.
pub async fn stage() -> TestHub {
    TestHub::start().await.expect("the stage starts")
}

/// Percent-encodes a query value.
pub fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// An account id signed by `cmp` (with its stage secret), expiring in `secs` seconds.
pub fn account_id(hub: &TestHub, cmp: &str, secs: i64) -> String {
    hub.account_id(cmp, secs).0
}

/// Sends `method` to `path_and_query` on the hub's browser listener, trusting the stage CA and
/// presenting no client certificate.
pub async fn request(hub: &TestHub, method: Method, path_and_query: &str) -> Reply {
    let roots = aidhub::tls::read_roots(&[aidhub::pki::ca_cert(&hub.certs())]).expect("stage CA");
    let config = rustls::ClientConfig::builder_with_provider(aidhub::tls::provider())
        .with_protocol_versions(aidhub::tls::VERSIONS)
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let uri = format!("https://localhost:{}{path_and_query}", hub.browsers.port());
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::new()))
        .expect("a valid request");
    match client.request(request).await {
        Ok(response) => {
            let (head, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Reply {
                status: head.status,
                headers: head.headers,
                body,
            }
        }
        Err(e) => Reply::transport_error(&aidhub::client::error_chain(&e)),
    }
}

/// A GET on the browser listener.
pub async fn get(hub: &TestHub, path_and_query: &str) -> Reply {
    request(hub, Method::GET, path_and_query).await
}

/// The `Location` of a `302`, or a panic that shows what came instead.
pub fn location(reply: &Reply) -> String {
    assert_eq!(
        reply.status,
        302,
        "expected a redirect, got {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert_eq!(reply.headers["referrer-policy"], "no-referrer");
    reply.headers["location"]
        .to_str()
        .expect("an ASCII Location")
        .to_owned()
}

/// Checks a refusal page: its status, no `Location`, the security headers, an accessible
/// skeleton, and that it says `says`. Returns the page's HTML.
pub fn refused(reply: &Reply, status: u16, says: &[&str]) -> String {
    let html = String::from_utf8_lossy(&reply.body).into_owned();
    assert_eq!(reply.status, status, "{html}");
    assert!(
        reply.headers.get("location").is_none(),
        "a refusal never redirects"
    );
    let header = |name: &str| {
        reply
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert_eq!(
        header("content-security-policy"),
        "default-src 'none'; style-src 'unsafe-inline'"
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("cache-control"), "no-store");
    assert!(reply.headers.get("set-cookie").is_none());
    assert!(html.contains("<html lang=\"en\">"), "{html}");
    assert!(html.contains("<title>") && html.contains("<h1>"), "{html}");
    for tag in ["<script", "<img", "<link", "<iframe", "url("] {
        assert!(
            !html.contains(tag),
            "no scripts, no external assets: {html}"
        );
    }
    for text in says {
        assert!(html.contains(text), "the page should say {text:?}:\n{html}");
    }
    html
}

/// The `href` of the page's "Go back" link, if any.
pub fn way_back(html: &str) -> Option<String> {
    let start = html.find("<a href=\"")? + "<a href=\"".len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&amp;", "&"))
}

/// The touchpoint counter for one series.
pub fn counted(
    hub: &TestHub,
    from: &str,
    to: &str,
    kind: &'static str,
    outcome: &'static str,
) -> u64 {
    let running = hub.running.as_ref().expect("the hub runs");
    running
        .hub
        .metrics()
        .touchpoint_redirects
        .get(&(from.into(), to.into(), kind, outcome))
}

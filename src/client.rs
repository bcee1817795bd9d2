//! A partner's client towards the hub: mutual TLS with the partner's certificate, the five
//! AID1 headers, JSON bodies. Used by the simulated partners (async answers), the demo, the
//! load generator and the tests — the same wire a real partner speaks.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::path::Path;
use std::time::Duration;

/// HTTP version to speak to the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.1 (ALPN offers only http/1.1).
    Http1,
    /// h2 (ALPN offers only h2).
    Http2,
}

/// Who is calling and with which credential.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `client-id`.
    pub client_id: String,
    /// `api-key` (or `None` to send none).
    pub api_key: Option<String>,
    /// Basic auth instead of an api-key.
    pub basic: Option<(String, String)>,
}

impl Caller {
    /// The caller a partner of the routing table is, with its hub credential.
    pub fn for_partner(partner: &crate::config::Partner) -> Caller {
        use crate::config::Credential;
        let mut caller = Caller {
            client_id: partner.id.to_string(),
            api_key: None,
            basic: None,
        };
        match &partner.credential {
            Credential::ApiKey(key) => caller.api_key = key.expose_str().map(str::to_owned),
            Credential::Basic { username, password } => {
                caller.basic = password
                    .expose_str()
                    .map(|p| (username.clone(), p.to_owned()))
            }
        }
        caller
    }
}

/// One answer, fully read.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A stand-in for a request that got no HTTP answer at all: status 599 and the cause as
    /// the error body, so callers that compare statuses see the failure.
    pub fn transport_error(cause: &str) -> Reply {
        let body = serde_json::json!({"code": "transport", "error": cause}).to_string();
        Reply {
            status: StatusCode::from_u16(599).unwrap_or(StatusCode::BAD_GATEWAY),
            headers: HeaderMap::new(),
            body: Bytes::from(body),
        }
    }

    /// The spec error code of an error body, if any.
    pub fn code(&self) -> Option<String> {
        self.json()
            .get("code")
            .and_then(|c| c.as_str())
            .map(str::to_owned)
    }
}

/// A pooled mTLS client to one hub address.
#[derive(Clone)]
pub struct HubClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
}

impl HubClient {
    /// Builds a client presenting `cert`/`key`, trusting `ca`, speaking `version` to `base`
    /// (e.g. `https://127.0.0.1:8443`). `server_name` overrides the name checked in the hub's
    /// certificate.
    pub fn new(
        base: &str,
        ca: &Path,
        cert: &Path,
        key: &Path,
        version: Version,
    ) -> Result<HubClient, String> {
        let config = crate::tls::client_config(&[ca], cert, key)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only();
        let connector = match version {
            Version::Http1 => builder.enable_http1().wrap_connector(http),
            Version::Http2 => builder.enable_http2().wrap_connector(http),
        };
        let mut client = Client::builder(TokioExecutor::new());
        client.pool_idle_timeout(Duration::from_secs(30));
        if version == Version::Http2 {
            client.http2_only(true);
        }
        Ok(HubClient {
            client: client.build(connector),
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// Sends one AID1 call with fresh request and correlation ids.
    pub async fn call(
        &self,
        caller: &Caller,
        target: &str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, String> {
        let mut headers = HeaderMap::new();
        headers.insert("cmp-request-id", uuid_header());
        headers.insert("correlation-id", uuid_header());
        self.call_with(
            caller,
            target,
            method,
            path,
            body.map(|b| b.to_string().into()),
            headers,
        )
        .await
    }

    /// Sends one call with explicit extra headers and a raw body.
    pub async fn call_with(
        &self,
        caller: &Caller,
        target: &str,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        extra: HeaderMap,
    ) -> Result<Reply, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        let headers = request.headers_mut().ok_or("bad request parts")?;
        headers.insert(
            "client-id",
            HeaderValue::from_str(&caller.client_id).map_err(|e| e.to_string())?,
        );
        headers.insert(
            "target-id",
            HeaderValue::from_str(target).map_err(|e| e.to_string())?,
        );
        if let Some(key) = &caller.api_key {
            headers.insert(
                "api-key",
                HeaderValue::from_str(key).map_err(|e| e.to_string())?,
            );
        }
        if let Some((user, pass)) = &caller.basic {
            use base64::Engine as _;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            headers.insert(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Basic {token}")).map_err(|e| e.to_string())?,
            );
        }
        if body.is_some() {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        // Each extra header replaces the default of its name, with all its values.
        for name in extra.keys() {
            headers.remove(name);
        }
        for (name, value) in &extra {
            headers.append(name.clone(), value.clone());
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| e.to_string())?;
        self.send(request).await
    }

    /// Sends a prepared request (tests that need full control).
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<Reply, String> {
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| error_chain(&e))?;
        let (head, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| error_chain(&e))?
            .to_bytes();
        Ok(Reply {
            status: head.status,
            headers: head.headers,
            body,
        })
    }
}

fn uuid_header() -> HeaderValue {
    HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
        .expect("a UUID is a valid header value")
}

/// An error with all its causes, for messages.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

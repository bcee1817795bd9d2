//! A real headless Chromium (Debian's `/usr/bin/chromium`, driven over the DevTools protocol)
//! through the hub: a simulated CMP portal sends the browser through the hub to a simulated
//! MSP login page and on back (4.1), a simulated MSP portal sends it through the hub to the
//! CMP and back to its return page with the account id (4.2, 7.2.1), and a refused redirect
//! leaves the browser on the hub's refusal page. The simulated pages are served over HTTPS
//! with certificates of the stage's CA on `portal.cmp.example` and `login.msp.example`,
//! which Chromium resolves to 127.0.0.1 (`--host-resolver-rules`). Skipped, with a notice,
//! when Chromium is not installed.

use crate::common::{counted, enc};
use aidhub::stage::{account_secret, touchpoint_toml, TestHub};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const CHROMIUM: &str = "/usr/bin/chromium";
const CMP_HOST: &str = "portal.cmp.example";
const MSP_HOST: &str = "login.msp.example";

/// What the simulated pages need to know, and what they saw.
struct Site {
    /// The hub's browser listener port.
    hub: u16,
    /// The pages' own port.
    port: u16,
    /// The account id the simulated CMP hands out (signed with cmpone's secret).
    account_id: String,
    /// `host path?query` of every request.
    seen: Mutex<Vec<String>>,
}

impl Site {
    fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.port)
    }

    fn hub(&self, path_and_query: &str) -> String {
        format!("https://localhost:{}{path_and_query}", self.hub)
    }

    /// The page for one request: a title, some text and, where the flow goes on, a meta
    /// refresh (no script needed).
    fn page(&self, host: &str, path: &str, query: &str) -> (String, Option<String>) {
        let param = |name: &str| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        match (host, path) {
            // 4.1 [5]: the CMP portal sends the user to the MSP, through the hub.
            (CMP_HOST, "/start") => (
                "One Motors portal: choose your operator".into(),
                Some(self.hub(&format!(
                    "/touchpoints/mspalpha/onboarding?from=cmpone&id={}&redirect_uri={}",
                    self.account_id,
                    enc(&self.url(CMP_HOST, "/done"))
                ))),
            ),
            // 4.1 [6]–[16]: the MSP logs the user in, then returns to the CMP's redirect_uri.
            (MSP_HOST, "/portal/login") => {
                ("Alpha Mobile login".into(), Some(param("redirect_uri")))
            }
            (CMP_HOST, "/done") => ("Onboarding finished at One Motors".into(), None),
            // 4.2 [3]: the MSP portal sends the user to the CMP, through the hub.
            (MSP_HOST, "/start") => (
                "Alpha Mobile portal: choose your car maker".into(),
                Some(self.hub(&format!(
                    "/touchpoints/cmpone/onboarding?from=mspalpha&redirect_uri={}",
                    enc(&self.url(MSP_HOST, "/return?foo=bar"))
                ))),
            ),
            // 4.2 [4]–[7]: the CMP logs the user in and sends the account id back, through
            // the hub.
            (CMP_HOST, "/login") => (
                "One Motors login".into(),
                Some(self.hub(&format!(
                    "/touchpoints/mspalpha/return?from=cmpone&redirect_uri={}&id={}",
                    enc(&param("redirect_uri")),
                    self.account_id
                ))),
            ),
            (MSP_HOST, "/return") => ("Welcome back at Alpha Mobile".into(), None),
            _ => ("Not found".into(), None),
        }
    }

    fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let host = request
            .uri()
            .host()
            .map(str::to_owned)
            .or_else(|| {
                let header = request.headers().get(http::header::HOST)?.to_str().ok()?;
                Some(header.split(':').next().unwrap_or_default().to_owned())
            })
            .unwrap_or_default();
        let path = request.uri().path();
        let query = request.uri().query().unwrap_or_default();
        self.seen
            .lock()
            .unwrap()
            .push(format!("{host} {path}?{query}"));
        let (title, next) = self.page(&host, path, query);
        let refresh = next.map_or(String::new(), |url| {
            format!(
                "<meta http-equiv=\"refresh\" content=\"0; url={}\">",
                aidhub::touchpoints::page::escape(&url)
            )
        });
        let html = format!(
            "<!DOCTYPE html><html lang=\"en\"><head><title>{title}</title>{refresh}</head>\
             <body><h1>{title}</h1></body></html>"
        );
        let mut response = Response::new(Full::new(Bytes::from(html)));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/html; charset=utf-8"),
        );
        response
    }
}

/// Serves the simulated pages on `listener` with a certificate of the stage's CA.
fn serve_site(listener: TcpListener, certs: &Path, site: Arc<Site>) {
    let now = time::OffsetDateTime::now_utc();
    let spec = aidhub::pki::LeafSpec {
        common_name: "simulated touchpoints".into(),
        dns: vec![CMP_HOST.into(), MSP_HOST.into()],
        uris: vec![],
        client: false,
        server: true,
        not_before: now - time::Duration::minutes(5),
        not_after: now + time::Duration::days(1),
    };
    let (cert, key) = aidhub::pki::issue(certs, &spec).expect("a certificate for the pages");
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut key.as_bytes())
        .unwrap()
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(aidhub::tls::provider())
        .with_protocol_versions(aidhub::tls::VERSIONS)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, site) = (acceptor.clone(), site.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |request: Request<Incoming>| {
                    let response = site.answer(&request);
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A headless Chromium with one page, spoken to over the DevTools protocol.
struct Browser {
    child: std::process::Child,
    socket: Socket,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(resolver_rules: &str) -> Result<Browser, String> {
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let child = std::process::Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--ignore-certificate-errors",
                "--remote-debugging-port=0",
                &format!("--user-data-dir={}", profile.path().display()),
                &format!("--host-resolver-rules={resolver_rules}"),
                "about:blank",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {CHROMIUM}: {e}"))?;
        // Chromium writes its DevTools port and browser path once it listens.
        let file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let endpoint = loop {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                break format!("ws://127.0.0.1:{port}{path}");
            }
            if Instant::now() > deadline {
                return Err("Chromium wrote no DevToolsActivePort within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (socket, _) = tokio_tungstenite::connect_async(endpoint.as_str())
            .await
            .map_err(|e| format!("DevTools socket: {e}"))?;
        let mut browser = Browser {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let target = browser
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await?;
        let target_id = target["targetId"].clone();
        let attached = browser
            .call(
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await?;
        browser.session = attached["sessionId"]
            .as_str()
            .ok_or("no session id")?
            .to_owned();
        Ok(browser)
    }

    /// Sends one command (to the page's session once attached) and waits for its answer.
    async fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        let answer = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(frame) = self.socket.next().await {
                let Ok(Message::Text(text)) = frame else {
                    continue;
                };
                let value: Value = serde_json::from_str(&text).unwrap_or_default();
                if value["id"] == json!(id) {
                    return Ok(value);
                }
            }
            Err("the DevTools socket closed".to_owned())
        })
        .await
        .map_err(|_| format!("{method}: no answer within 20 s"))??;
        match answer.get("error") {
            Some(error) => Err(format!("{method}: {error}")),
            None => Ok(answer["result"].clone()),
        }
    }

    /// Opens `url` in the page.
    async fn navigate(&mut self, url: &str) -> Result<(), String> {
        self.call("Page.navigate", json!({"url": url}))
            .await
            .map(|_| ())
    }

    /// The page's address and visible text once it has loaded, polled until `done` holds
    /// (or 20 s pass). A page still loading is not judged: its text may stop halfway.
    async fn wait_for(&mut self, done: impl Fn(&str, &str) -> bool) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = (String::new(), String::new());
        while Instant::now() < deadline {
            let expression = "JSON.stringify([location.href, document.readyState, \
                              document.body ? document.body.innerText : ''])";
            // Mid-navigation the context may be gone; the next poll asks again.
            if let Ok(result) = self
                .call(
                    "Runtime.evaluate",
                    json!({"expression": expression, "returnByValue": true}),
                )
                .await
            {
                let page: Vec<String> = result["result"]["value"]
                    .as_str()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or_default();
                if let [href, state, text] = &page[..] {
                    last = (href.clone(), text.clone());
                    if state == "complete" && done(href, text) {
                        return last;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        last
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Our own child, by its handle; its helpers exit with it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_goes_through_the_hub_and_back() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("skipped: {CHROMIUM} is not installed (apt-get install chromium)");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hub = TestHub::builder()
        .routes(move |routes| {
            routes
                .replace(
                    touchpoint_toml("mspalpha"),
                    &format!(
                        "[partner.touchpoint]\nname = \"Alpha Mobile\"\n\
                         login_url = \"https://{MSP_HOST}:{port}/portal/login\"\n\
                         redirect_domains = [\"*.msp.example:{port}\"]\n"
                    ),
                )
                .replace(
                    touchpoint_toml("cmpone"),
                    &format!(
                        "[partner.touchpoint]\nname = \"One Motors\"\n\
                         login_url = \"https://{CMP_HOST}:{port}/login\"\n\
                         redirect_domains = [\"*.cmp.example:{port}\"]\n"
                    ),
                )
        })
        .start()
        .await
        .expect("the stage starts");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = aidhub::account_id::AccountClaims {
        sid: uuid::Uuid::new_v4(),
        exp: now + 600,
        iat: Some(now),
        has_ver: false,
    };
    let site = Arc::new(Site {
        hub: hub.browsers.port(),
        port,
        account_id: aidhub::account_id::sign(
            &claims,
            None,
            false,
            account_secret("cmpone").as_bytes(),
        ),
        seen: Mutex::new(Vec::new()),
    });
    serve_site(listener, &hub.certs(), site.clone());
    let mut browser = Browser::start("MAP *.cmp.example 127.0.0.1, MAP *.msp.example 127.0.0.1")
        .await
        .expect("Chromium starts and speaks DevTools");

    // 4.1: CMP portal → hub → MSP login page (with the account id) → back to the CMP.
    let done = site.url(CMP_HOST, "/done");
    browser
        .navigate(&site.url(CMP_HOST, "/start"))
        .await
        .unwrap();
    let (href, text) = browser
        .wait_for(|href, text| href == done && text.contains("Onboarding finished"))
        .await;
    assert_eq!(href, done, "the browser ended on the CMP's page: {text}");
    assert!(text.contains("Onboarding finished at One Motors"), "{text}");
    let expected = format!(
        "{MSP_HOST} /portal/login?id={}&redirect_uri={}",
        site.account_id,
        enc(&done)
    );
    assert!(
        site.seen.lock().unwrap().contains(&expected),
        "the MSP page got the account id and redirect_uri: {:?}",
        site.seen.lock().unwrap()
    );

    // 4.2 and 7.2.1: MSP portal → hub → CMP login → hub → the MSP's return page with the id.
    let back = format!(
        "{}?foo=bar&id={}",
        site.url(MSP_HOST, "/return"),
        site.account_id
    );
    browser
        .navigate(&site.url(MSP_HOST, "/start"))
        .await
        .unwrap();
    let (href, text) = browser
        .wait_for(|href, text| href == back && text.contains("Welcome back"))
        .await;
    assert_eq!(
        href, back,
        "the browser ended on the MSP's return page: {text}"
    );
    assert!(text.contains("Welcome back at Alpha Mobile"), "{text}");

    // A redirect_uri outside the agreed domains: the browser stays on the hub's page.
    let refused = site.hub(&format!(
        "/touchpoints/mspalpha/onboarding?from=cmpone&id={}&redirect_uri={}",
        site.account_id,
        enc("https://cmp.example.evil.com/esim")
    ));
    browser.navigate(&refused).await.unwrap();
    let (href, text) = browser
        .wait_for(|_, text| text.contains("unsafe redirect"))
        .await;
    assert_eq!(href, refused, "no redirect happened");
    assert!(text.contains("We stopped an unsafe redirect"), "{text}");
    assert!(
        text.contains("an address that One Motors has not registered with us"),
        "{text}"
    );
    assert!(text.contains("Go back to One Motors"), "{text}");

    assert_eq!(
        counted(&hub, "cmpone", "mspalpha", "to_msp", "redirected"),
        1
    );
    assert_eq!(
        counted(&hub, "mspalpha", "cmpone", "to_cmp", "redirected"),
        1
    );
    assert_eq!(
        counted(&hub, "cmpone", "mspalpha", "back_to_msp", "redirected"),
        1
    );
    assert_eq!(
        counted(&hub, "cmpone", "mspalpha", "to_msp", "redirect_not_agreed"),
        1
    );
}

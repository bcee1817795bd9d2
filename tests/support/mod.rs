//! The integration-test harness: the library's stage plus test helpers.
#![allow(dead_code)]

#[allow(unused_imports)] // not every test binary that shares these helpers stages a hub
pub use aidhub::stage::*;

/// `text` with `from` replaced by `to`; `from` must be there (a stage file changed shape).
pub fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} is not in:\n{text}");
    text.replace(from, to)
}

/// Applies `edit` to the `[[partner]]` block of partner `id` in a routes.toml text.
pub fn edit_partner(routes: &str, id: &str, edit: impl Fn(&str) -> String) -> String {
    let marker = format!("id = \"{id}\"\n");
    let mut found = false;
    let blocks: Vec<String> = routes
        .split("[[partner]]")
        .map(|block| {
            if block.contains(&marker) {
                found = true;
                edit(block)
            } else {
                block.to_owned()
            }
        })
        .collect();
    assert!(found, "routes.toml has a [[partner]] {id}");
    blocks.join("[[partner]]")
}

/// Waits up to `within` for `child` to exit, killing it and failing the test if it does
/// not (`after`: what it should have stopped after, for the message).
pub fn wait_exit(
    child: &mut std::process::Child,
    within: std::time::Duration,
    after: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not stop within {within:?} of {after}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
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
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A client of the admin listener: one connection per request, `Connection: close`.
#[derive(Clone)]
pub struct Admin {
    addr: std::net::SocketAddr,
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
    pub fn at(addr: std::net::SocketAddr) -> Admin {
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
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    pub async fn config(&self) -> serde_json::Value {
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

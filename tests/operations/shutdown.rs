//! SIGTERM while partners keep calling, on the real binary with a copy of the shipped
//! configuration: the hub stops accepting, lets every request in flight finish, flushes the
//! ledger and exits 0. Every call that got an HTTP answer got its success status.

use crate::common::{until, Admin, WITHIN};
use aidhub::client::{Caller, HubClient, Version};
use http::Method;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_aidhub");

/// A copy of the shipped configuration: the hub's listeners on port 0 (the welcome lines
/// say where they are), the four simulated upstreams on free ports.
fn shipped_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(dir.path().join("config")).expect("config directory");
    let ports: Vec<u16> = (0..4)
        .map(|_| aidhub::stage::free_port().expect("a free loopback port"))
        .collect();
    let hub = std::fs::read_to_string(root.join("config/hub.toml"))
        .expect("the shipped hub.toml")
        .replace("127.0.0.1:8443", "127.0.0.1:0")
        .replace("127.0.0.1:9090", "127.0.0.1:0")
        .replace("127.0.0.1:8444", "127.0.0.1:0");
    std::fs::write(dir.path().join("config/hub.toml"), hub).expect("write hub.toml");
    let mut routes =
        std::fs::read_to_string(root.join("routes.toml")).expect("the shipped routes.toml");
    for (old, new) in ["9101", "9102", "9201", "9202"].iter().zip(&ports) {
        routes = routes.replace(&format!("127.0.0.1:{old}"), &format!("127.0.0.1:{new}"));
    }
    std::fs::write(dir.path().join("routes.toml"), routes).expect("write routes.toml");
    dir
}

struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    port: u16,
    admin_port: u16,
}

impl Drop for Served {
    fn drop(&mut self) {
        // A failed assertion must not leave the hub running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `aidhub serve` and waits for its welcome line.
fn serve(dir: &Path) -> Served {
    let mut child = Command::new(BIN)
        .args(["serve", "--grace-secs", "10"])
        .current_dir(dir)
        .env("RUST_LOG", "warn,aidhub::sim=debug")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start aidhub serve");
    let stderr = child.stderr.take().expect("its stderr");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let (mut partners, mut admin) = (None, None);
    while Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            let port_of = |rest: &str| -> u16 {
                let addr = rest.split(' ').next().unwrap_or_default();
                let port = addr.rsplit(':').next().and_then(|p| p.parse().ok());
                port.unwrap_or_else(|| panic!("a port in {line}"))
            };
            if let Some(rest) = line.strip_prefix("aidhub is serving AID1 on https://") {
                partners = Some(port_of(rest));
            } else if let Some(rest) = line.strip_prefix("admin API on http://") {
                admin = Some(port_of(rest));
            } else {
                seen.push(line);
            }
            if let (Some(port), Some(admin_port)) = (partners, admin) {
                return Served {
                    child,
                    lines,
                    port,
                    admin_port,
                };
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("no welcome line within 30 s:\n{}", seen.join("\n"));
}

/// Waits for a log line containing `needle` written after this call.
fn wait_line(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    while lines.try_recv().is_ok() {}
    let deadline = Instant::now() + WITHIN;
    while Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
            if line.contains(needle) {
                return line;
            }
        }
    }
    panic!("no log line containing {needle:?}");
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("the hub's status") {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the hub did not exit within {within:?}");
}

fn client(dir: &Path, id: &str, port: u16) -> HubClient {
    let certs = dir.join("certs");
    let (cert, key) = aidhub::pki::partner_client(&certs, id);
    HubClient::new(
        &format!("https://localhost:{port}"),
        &aidhub::pki::ca_cert(&certs),
        &cert,
        &key,
        Version::Http1,
    )
    .expect("a partner client")
}

/// A caller with an api-key, or basic auth when `credential` is `user:password`.
fn caller(id: &str, credential: &str) -> Caller {
    let basic = credential
        .split_once(':')
        .map(|(user, pass)| (user.to_owned(), pass.to_owned()));
    Caller {
        client_id: id.into(),
        api_key: basic.is_none().then(|| credential.into()),
        basic,
    }
}

/// The shipped partners' hub credentials and account-id secrets.
const ALPHA_KEY: &str = "alphaHubKey1";
const ONE_KEY: &str = "oneHubKey1";
const TWO_KEY: &str = "cmptwo:twoHubPassword";

async fn onboard(dir: &Path, port: u16, cmp: &str) -> Uuid {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = aidhub::account_id::AccountClaims {
        sid: Uuid::new_v4(),
        exp: now + 600,
        iat: Some(now),
        has_ver: false,
    };
    let secret = format!("{cmp}-account-id-secret");
    let account_id = aidhub::account_id::sign(&claims, None, false, secret.as_bytes());
    let token = Uuid::new_v4();
    let body = serde_json::json!({
        "msp_token": token.to_string(), "phoneNumber": "b3YsYkQq",
        "subscriptionType": "private", "iv": "N1RnMnHh"
    });
    let reply = client(dir, "mspalpha", port)
        .call(
            &caller("mspalpha", ALPHA_KEY),
            cmp,
            Method::POST,
            &format!("/cesim/msp/v1/users/{account_id}"),
            Some(&body),
        )
        .await
        .expect("onboarding is answered");
    assert_eq!(reply.status, 201, "onboarding with {cmp}: {:?}", reply.body);
    token
}

/// What one load task saw.
#[derive(Default, Debug)]
struct Tally {
    /// Success answers received before SIGTERM was sent.
    before: usize,
    /// Success answers received after SIGTERM was sent (the drain window).
    drained: usize,
    /// Calls that got no HTTP answer after SIGTERM, with the cause: the listener is closed
    /// (connection refused), or — for a call sent on an idle kept-alive connection just as
    /// the hub closed it — "connection closed before message completed", the race every
    /// HTTP/1.1 client retries.
    unanswered: Vec<String>,
    /// Anything else: a wrong status, or no answer before SIGTERM.
    failures: Vec<String>,
}

/// A call a load task repeats: (caller id, key, target, method, path, body, status).
type Repeat = (
    &'static str,
    &'static str,
    &'static str,
    Method,
    String,
    Box<dyn Fn() -> Option<serde_json::Value> + Send>,
    u16,
);

fn spawn(
    client: HubClient,
    repeat: Repeat,
    terminated: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<Tally> {
    let (id, key, target, method, path, body, expect) = repeat;
    tokio::spawn(async move {
        let caller = caller(id, key);
        let mut tally = Tally::default();
        loop {
            let outcome = client
                .call(&caller, target, method.clone(), &path, body().as_ref())
                .await;
            let after = terminated.load(Ordering::SeqCst);
            if matches!(&outcome, Ok(reply) if reply.status.as_u16() == expect) {
                answered.fetch_add(1, Ordering::SeqCst);
            }
            match outcome {
                Ok(reply) if reply.status.as_u16() == expect && after => tally.drained += 1,
                Ok(reply) if reply.status.as_u16() == expect => tally.before += 1,
                Ok(reply) => tally.failures.push(format!(
                    "{method} {path}: {} {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                )),
                Err(e) if after => {
                    // The hub closed its listener: no later call can connect either.
                    tally.unanswered.push(e);
                    return tally;
                }
                Err(e) => {
                    tally
                        .failures
                        .push(format!("{method} {path}: no answer: {e}"));
                    return tally;
                }
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_every_request_in_flight_and_exits_zero() {
    let dir = shipped_copy();
    let mut served = serve(dir.path());
    let port = served.port;
    let admin_port = served.admin_port;
    let admin = Admin::at(std::net::SocketAddr::from(([127, 0, 0, 1], admin_port)));
    assert_eq!(admin.get("/health").await.status, 200);
    let one = onboard(dir.path(), port, "cmpone").await;
    let two = onboard(dir.path(), port, "cmptwo").await;
    let slow_tokens = [
        onboard(dir.path(), port, "cmpone").await,
        onboard(dir.path(), port, "cmpone").await,
    ];

    let terminated = Arc::new(AtomicBool::new(false));
    let mut repeats: Vec<Repeat> = vec![
        (
            "mspalpha",
            ALPHA_KEY,
            "cmpone",
            Method::PATCH,
            format!("/cesim/msp/v1/subscriptions/{one}"),
            Box::new(|| Some(serde_json::json!({"subscriptionType": "business"}))),
            201,
        ),
        (
            "cmptwo",
            TWO_KEY,
            "mspalpha",
            Method::GET,
            format!("/v1/profiles/status/{two}"),
            Box::new(|| None),
            200,
        ),
    ];
    for token in slow_tokens {
        repeats.push((
            "cmpone",
            ONE_KEY,
            "mspalpha",
            Method::POST,
            format!("/v1/activation-code-requests/{token}"),
            Box::new(|| {
                Some(serde_json::json!({
                    "profileType": "personal", "deviceType": "slow", "imei": "", "eid": "",
                    "activationCodeRequestID": Uuid::new_v4().to_string()
                }))
            }),
            200,
        ));
    }
    let answered: Vec<Arc<AtomicUsize>> = repeats.iter().map(|_| Arc::default()).collect();
    let tasks: Vec<_> = repeats
        .into_iter()
        .zip(&answered)
        .map(|(r, count)| {
            let client = client(dir.path(), r.0, port);
            spawn(client, r, terminated.clone(), count.clone())
        })
        .collect();

    // SIGTERM once every task has had a success, while a slow activation-code request is
    // held by the simulated MSP.
    let answered = &answered;
    let warm = until(Duration::from_secs(30), || async move {
        answered.iter().all(|n| n.load(Ordering::SeqCst) >= 1)
    })
    .await;
    assert!(warm, "every load task got an answer: {answered:?}");
    tokio::task::block_in_place(|| {
        let lines = &served.lines;
        let mut received = wait_line(lines, "simulated partner received a request");
        while !received.contains("activation-code-requests") {
            received = wait_line(lines, "simulated partner received a request");
        }
    });
    terminated.store(true, Ordering::SeqCst);
    let status = Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());

    let mut tallies = Vec::new();
    for task in tasks {
        tallies.push(task.await.expect("a load task ends"));
    }
    let mut tally = Tally::default();
    for t in &tallies {
        tally.before += t.before;
        tally.drained += t.drained;
        tally.unanswered.extend(t.unanswered.iter().cloned());
        tally.failures.extend(t.failures.iter().cloned());
    }
    // Tasks 2 and 3 asked for activation codes.
    let codes: usize = tallies[2..].iter().map(|t| t.before + t.drained).sum();
    let codes_unanswered: usize = tallies[2..].iter().map(|t| t.unanswered.len()).sum();
    let code =
        tokio::task::block_in_place(|| wait_exit(&mut served.child, Duration::from_secs(20)));
    assert_eq!(code, Some(0), "the hub exits 0 after draining");
    assert!(
        tally.failures.is_empty(),
        "every answer was a success ({tally:?}):\n{}",
        tally.failures.join("\n")
    );
    assert!(
        tally.before > 0,
        "calls succeeded before SIGTERM: {tally:?}"
    );
    // The activation-code requests were in flight at SIGTERM, on connections the hub closed
    // after answering: their next call could only fail to connect, or meet the keep-alive
    // race (sent on a pooled connection the hub was closing idle, never read by it).
    for t in &tallies[2..] {
        assert!(
            t.unanswered.iter().all(|e| e.contains("Connect")
                || e.contains("connection closed before message completed")),
            "an activation-code request was dropped: {t:?}"
        );
    }
    let codes_drained: usize = tallies[2..].iter().map(|t| t.drained).sum();
    assert!(
        codes_drained >= 1,
        "the slow request held at SIGTERM finished during the drain: {tallies:?}"
    );
    let admin_closed = until(Duration::from_secs(1), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", admin_port))
            .await
            .is_err()
    })
    .await;
    assert!(admin_closed, "the admin listener is closed too");

    // The ledger was flushed: the stopped hub's ledger holds the federations made and every
    // activation-code request answered (closed, synchronous).
    let ledger = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("ledger")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("run aidhub ledger");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "aidhub ledger {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let shown: serde_json::Value =
        serde_json::from_str(&ledger(&["show", &one.to_string()])).expect("a JSON view");
    assert_eq!(shown["federation"]["state"]["is"], "active", "{shown}");
    let sync = ledger(&["requests", "--all"])
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["state"]["outcome"]["is"] == "sync")
        .count();
    assert!(
        (codes..=codes + codes_unanswered).contains(&sync),
        "{sync} requests closed with a code in the ledger, {codes} codes received"
    );
}

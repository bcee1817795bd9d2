//! The `aidhub` binary as an operator runs it: `check`, `certs`, `serve` (with the shipped
//! configuration, real signals; on PostgreSQL when `AIDHUB_TEST_POSTGRES_URL` is set, for its
//! slow-commit warning) and `demo`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_aidhub");

/// A copy of the shipped configuration in a temporary directory, on free ports.
fn shipped_copy() -> (tempfile::TempDir, Vec<u16>) {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    let ports: Vec<u16> = (0..5)
        .map(|_| aidhub::stage::free_port().unwrap())
        .collect();
    let hub = std::fs::read_to_string(root.join("config/hub.toml"))
        .unwrap()
        .replace("127.0.0.1:8443", "127.0.0.1:0")
        .replace("127.0.0.1:9090", "127.0.0.1:0")
        .replace("127.0.0.1:8444", "127.0.0.1:0");
    std::fs::write(dir.path().join("config/hub.toml"), hub).unwrap();
    let mut routes = std::fs::read_to_string(root.join("routes.toml")).unwrap();
    for (old, new) in ["9101", "9102", "9201", "9202"].iter().zip(&ports[1..]) {
        routes = routes.replace(&format!("127.0.0.1:{old}"), &format!("127.0.0.1:{new}"));
    }
    std::fs::write(dir.path().join("routes.toml"), routes).unwrap();
    (dir, ports)
}

fn aidhub(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn check_accepts_the_shipped_configuration_once_certificates_exist() {
    let (dir, _) = shipped_copy();
    let out = aidhub(dir.path(), &["certs"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("wrote") && text.contains("ca.pem"), "{text}");
    let again = aidhub(dir.path(), &["certs"]);
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(
        !text.contains("wrote"),
        "a second run writes nothing: {text}"
    );
    let out = aidhub(dir.path(), &["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.starts_with("ok: 4 partners, configuration hash "),
        "{text}"
    );
}

#[test]
fn check_lists_every_problem_with_its_location() {
    let (dir, _) = shipped_copy();
    let routes = dir.path().join("routes.toml");
    let text = std::fs::read_to_string(&routes)
        .unwrap()
        .replace("role = \"cmp\"", "role = \"car\"")
        .replace(
            "counterparts = [\"mspalpha\"]",
            "counterparts = [\"nobody\"]",
        );
    std::fs::write(&routes, text).unwrap();
    let out = aidhub(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("routes.toml: partner[2] (cmpone).role: must be \"msp\" or \"cmp\""),
        "{text}"
    );
    assert!(
        text.contains("partner[3] (cmptwo).counterparts: unknown partner `nobody`"),
        "{text}"
    );
    assert!(text.contains("problem(s) found"), "{text}");
}

#[test]
fn check_names_missing_certificate_files() {
    let (dir, _) = shipped_copy();
    let out = aidhub(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tls.server_cert: ./certs/hub-server.pem"),
        "{text}"
    );
    assert!(text.contains("tls.partner_ca: ./certs/ca.pem"), "{text}");
    assert!(text.contains("partner cmptwo: upstream.ca"), "{text}");
}

struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: String,
    /// The lines written before the welcome.
    before: Vec<String>,
}

/// A test that fails before it stops the hub must not leave it running: the next tests (the
/// bench's census among them) would find it.
impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `aidhub serve` and waits for its welcome line (with `log.format = "json"`, its
/// welcome event).
fn serve(dir: &Path, extra: &[&str]) -> Served {
    let mut args = vec!["serve"];
    args.extend_from_slice(extra);
    let mut child = Command::new(BIN)
        .args(&args)
        .current_dir(dir)
        .env("RUST_LOG", "info,aidhub::sim=debug")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
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
    while Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            let addr = match line.strip_prefix("aidhub is serving AID1 on https://") {
                Some(rest) => rest.split(' ').next().map(str::to_owned),
                None => serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .filter(|v| v["message"] == "aidhub is serving AID1 (mutual TLS)")
                    .and_then(|v| v["partners_addr"].as_str().map(str::to_owned)),
            };
            if let Some(addr) = addr {
                let before = seen;
                return Served {
                    child,
                    lines,
                    addr,
                    before,
                };
            }
            seen.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("no welcome line within 30 s:\n{}", seen.join("\n"));
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("did not exit within {within:?}");
}

fn client(dir: &Path, id: &str, addr: &str) -> aidhub::client::HubClient {
    let certs = dir.join("certs");
    let (cert, key) = aidhub::pki::partner_client(&certs, id);
    let port = addr.rsplit(':').next().unwrap();
    aidhub::client::HubClient::new(
        &format!("https://localhost:{port}"),
        &aidhub::pki::ca_cert(&certs),
        &cert,
        &key,
        aidhub::client::Version::Http1,
    )
    .unwrap()
}

fn caller(id: &str, key: &str) -> aidhub::client::Caller {
    aidhub::client::Caller {
        client_id: id.into(),
        api_key: Some(key.into()),
        basic: None,
    }
}

fn account_id(secret: &str) -> String {
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
    aidhub::account_id::sign(&claims, None, false, secret.as_bytes())
}

/// Send MSP Token from mspalpha for an account of the shipped cmpone: federates `token`.
async fn onboard(msp: &aidhub::client::HubClient, token: uuid::Uuid) -> aidhub::client::Reply {
    let account = account_id("cmpone-account-id-secret");
    onboard_as(msp, token, &account, ids(uuid::Uuid::new_v4())).await
}

/// [`onboard`] for the account id `account`, with the headers `ids`.
async fn onboard_as(
    msp: &aidhub::client::HubClient,
    token: uuid::Uuid,
    account: &str,
    ids: http::HeaderMap,
) -> aidhub::client::Reply {
    let body = serde_json::json!({
        "msp_token": token.to_string(), "phoneNumber": "b3YsYkQq",
        "subscriptionType": "private", "iv": "N1RnMnHh"
    });
    msp.call_with(
        &caller("mspalpha", "alphaHubKey1"),
        "cmpone",
        http::Method::POST,
        &format!("/cesim/msp/v1/users/{account}"),
        Some(body.to_string().into()),
        ids,
    )
    .await
    .unwrap()
}

/// A fresh `CMP-request-id` and the `correlation-id` `correlation`.
fn ids(correlation: uuid::Uuid) -> http::HeaderMap {
    let value = |id: uuid::Uuid| http::HeaderValue::from_str(&id.to_string()).unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("cmp-request-id", value(uuid::Uuid::new_v4()));
    headers.insert("correlation-id", value(correlation));
    headers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_works_out_of_the_box_and_drains_on_sigterm() {
    let (dir, _) = shipped_copy();
    let mut served = serve(dir.path(), &[]);
    assert!(
        dir.path().join("certs/ca.pem").exists(),
        "the development PKI was created"
    );
    let msp = client(dir.path(), "mspalpha", &served.addr);
    let token = uuid::Uuid::new_v4();
    let reply = onboard(&msp, token).await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    // A slow request is in flight when SIGTERM arrives; it still completes.
    let cmp = client(dir.path(), "cmpone", &served.addr);
    let request = serde_json::json!({
        "profileType": "personal", "deviceType": "slow", "imei": "", "eid": "",
        "activationCodeRequestID": uuid::Uuid::new_v4().to_string()
    });
    let in_flight = tokio::spawn(async move {
        cmp.call(
            &caller("cmpone", "oneHubKey1"),
            "mspalpha",
            http::Method::POST,
            &format!("/v1/activation-code-requests/{token}"),
            Some(&request),
        )
        .await
    });
    // Wait until the simulated MSP holds the request, so it is surely in flight.
    let mut received = wait_line(&served.lines, "simulated partner received a request");
    while !received.contains("activation-code-requests") {
        received = wait_line(&served.lines, "simulated partner received a request");
    }
    signal(&served.child, "TERM");
    let reply = match in_flight.await.unwrap() {
        Ok(reply) => reply,
        Err(e) => {
            let _ = wait_exit(&mut served.child, Duration::from_secs(15));
            let logs: Vec<String> = served.lines.try_iter().collect();
            panic!("the request in flight failed: {e}\n{}", logs.join("\n"));
        }
    };
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        wait_exit(&mut served.child, Duration::from_secs(15)),
        Some(0)
    );
    let logs: Vec<String> = served.lines.try_iter().collect();
    let all = logs.join("\n");
    assert!(all.contains("shutting down"), "{all}");
    assert!(
        !all.contains("1$SMDP.AIDHUB.TEST"),
        "an activation code reached the log"
    );
    assert!(
        !all.contains("alphaHubKey1") && !all.contains("oneHubKey1"),
        "an api-key reached the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_a_bad_edit_keeps_the_old_table() {
    let (dir, _) = shipped_copy();
    let mut served = serve(dir.path(), &[]);
    let routes = dir.path().join("routes.toml");
    let good = std::fs::read_to_string(&routes).unwrap();
    std::fs::write(&routes, good.replace("role = \"cmp\"", "role = \"car\"")).unwrap();
    signal(&served.child, "HUP");
    let refused = wait_line(&served.lines, "reload refused");
    assert!(refused.contains("role"), "{refused}");
    // Still serving the old table.
    let msp = client(dir.path(), "mspalpha", &served.addr);
    let path = format!("/cesim/msp/v1/users/{}/invalidate", uuid::Uuid::new_v4());
    let reply = msp
        .call(
            &caller("mspalpha", "alphaHubKey1"),
            "cmpone",
            http::Method::POST,
            &path,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        reply.code().as_deref(),
        Some("20"),
        "the old table still routes: {:?}",
        reply.body
    );
    std::fs::write(&routes, good).unwrap();
    signal(&served.child, "HUP");
    wait_line(&served.lines, "configuration reloaded");
    signal(&served.child, "TERM");
    assert_eq!(
        wait_exit(&mut served.child, Duration::from_secs(15)),
        Some(0)
    );
}

/// With `log.format = "json"` each request is one JSON object on the `aidhub::access` target,
/// with the fields the README's "Logs" lists: the forwarded call's timings (the admission, the
/// exchange, the whole), and for a refusal the hub's code and cause and no timings it never had.
/// The account id in the forwarded call's path never reaches the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_writes_one_json_object_per_request() {
    let (dir, _) = shipped_copy();
    let hub = dir.path().join("config/hub.toml");
    let text = std::fs::read_to_string(&hub).unwrap();
    assert!(
        text.contains("format = \"text\""),
        "the shipped config names the format"
    );
    std::fs::write(&hub, text.replace("format = \"text\"", "format = \"json\"")).unwrap();
    let mut served = serve(dir.path(), &[]);
    let mut seen = std::mem::take(&mut served.before);
    let msp = client(dir.path(), "mspalpha", &served.addr);

    let token = uuid::Uuid::new_v4();
    let account = account_id("cmpone-account-id-secret");
    let forwarded = uuid::Uuid::new_v4();
    let reply = onboard_as(&msp, token, &account, ids(forwarded)).await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let line = access_line(&served.lines, &mut seen, forwarded);
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["message"], "request", "{line}");
    assert_eq!(line["status"], 201, "{line}");
    assert_eq!(line["caller"], "mspalpha", "{line}");
    assert_eq!(line["target_id"], "cmpone", "{line}");
    assert_eq!(line["function"], "send_msp_token", "{line}");
    assert_eq!(line["upstream_status"], 201, "{line}");
    assert!(line.get("hub_code").is_none(), "{line}");
    assert!(line.get("cause").is_none(), "{line}");
    let ms = |name: &str| {
        line[name]
            .as_f64()
            .unwrap_or_else(|| panic!("{name} is a number: {line}"))
    };
    let (admission, upstream, total) = (ms("admission_ms"), ms("upstream_ms"), ms("total_ms"));
    assert!(admission >= 0.0 && upstream > 0.0, "{line}");
    assert!(
        admission + upstream <= total,
        "the parts within the whole: {line}"
    );

    // Refused before any partner was asked: no body for Request Activation Code.
    let cmp = client(dir.path(), "cmpone", &served.addr);
    let refused = uuid::Uuid::new_v4();
    let reply = cmp
        .call_with(
            &caller("cmpone", "oneHubKey1"),
            "mspalpha",
            http::Method::POST,
            &format!("/v1/activation-code-requests/{token}"),
            None,
            ids(refused),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    let line = access_line(&served.lines, &mut seen, refused);
    assert_eq!(line["status"], 422, "{line}");
    assert_eq!(line["caller"], "cmpone", "{line}");
    assert_eq!(line["function"], "request_activation_code", "{line}");
    let code = reply.code().expect("an error body with a code");
    assert_eq!(line["hub_code"].to_string(), code, "{line}");
    assert!(
        line["cause"].as_str().is_some_and(|c| !c.is_empty()),
        "{line}"
    );
    for absent in ["admission_ms", "upstream_ms", "upstream_status"] {
        assert!(line.get(absent).is_none(), "{absent}: {line}");
    }

    signal(&served.child, "TERM");
    assert_eq!(
        wait_exit(&mut served.child, Duration::from_secs(15)),
        Some(0)
    );
    seen.extend(served.lines.try_iter());
    for line in &seen {
        let parsed = serde_json::from_str::<serde_json::Value>(line);
        assert!(
            parsed.is_ok_and(|v| v.is_object()),
            "not a JSON object: {line}"
        );
    }
    // The simulated partners (development only) log the paths they receive; the hub does not.
    let hub_lines = seen
        .iter()
        .filter(|l| !l.contains("\"target\":\"aidhub::sim\""));
    assert!(
        !hub_lines.clone().any(|l| l.contains(&account)),
        "an account id reached the log"
    );
    assert!(hub_lines.count() >= 2, "the hub's lines were read");
}

/// With the JSON format a failure to start is an error event too, and nothing on stderr is
/// plain text: here the partners' port is taken.
#[test]
fn with_json_logs_a_failure_to_start_is_an_error_event() {
    let (dir, _) = shipped_copy();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let hub = dir.path().join("config/hub.toml");
    let text = std::fs::read_to_string(&hub).unwrap();
    let taken = format!("partners = \"127.0.0.1:{port}\"");
    let text = text
        .replacen("partners = \"127.0.0.1:0\"", &taken, 1)
        .replace("format = \"text\"", "format = \"json\"");
    assert!(text.contains(&taken) && text.contains("format = \"json\""));
    std::fs::write(&hub, text).unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    assert_eq!(wait_exit(&mut child, Duration::from_secs(30)), Some(1));
    let lines = reader.join().unwrap();
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let failure = events
        .iter()
        .find(|e| e["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no error event: {lines:?}"));
    let message = failure["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("cannot start") && message.contains(&port.to_string()),
        "{failure}"
    );
    drop(busy);
}

/// The access-log line of the request with `correlation` as a JSON object; every line the
/// hub writes on the way must be JSON too, and each is kept in `seen`.
fn access_line(
    lines: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    correlation: uuid::Uuid,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        seen.push(line);
        if value["target"] == "aidhub::access" && value["correlation_id"] == correlation.to_string()
        {
            return value;
        }
    }
    panic!("no access-log line for correlation-id {correlation}");
}

/// On PostgreSQL a commit that stalls is named in the log, as a stalled journal sync is on
/// sled: a deferred constraint trigger makes every commit that wrote a federation take
/// 150 ms, and a stall of many such commits is one warning that counts the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_postgresql_commit_is_named_in_the_log() {
    let Some(schema) = aidhub::stage::outside::TestSchema::new() else {
        return;
    };
    let (dir, _) = shipped_copy();
    let hub_toml = dir.path().join("config/hub.toml");
    let text = std::fs::read_to_string(&hub_toml).unwrap();
    assert!(text.contains("backend = \"sled\""));
    let keys = schema.hub_toml_keys(4);
    std::fs::write(
        &hub_toml,
        text.replace("backend = \"sled\"", keys.trim_end()),
    )
    .unwrap();
    // The welcome line comes once the ledger is open: the schema and its tables exist.
    let mut served = serve(dir.path(), &[]);
    let db = schema.connect().await.unwrap();
    db.batch_execute(
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_sleep(0.15); RETURN NULL; END $$; \
         CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT OR UPDATE ON federations \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();",
    )
    .await
    .unwrap();
    let msp = client(dir.path(), "mspalpha", &served.addr);
    let started = Instant::now();
    let reply = onboard(&msp, uuid::Uuid::new_v4()).await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "the trigger held the commit"
    );
    let first = wait_line(&served.lines, "PostgreSQL commit took");
    assert!(first.contains("WARN"), "{first}");
    assert!(
        first.contains(
            "the database or its disk stalled, and the call that committed waited for it"
        ),
        "{first}"
    );
    // Each onboarding commits twice to `federations` (the token reserved, then confirmed),
    // so six of them make twelve slow commits. A stall names one a second at most and counts
    // the rest in the next warning: by the end every commit but the last (less than a second
    // after its warning, and no slow commit after it) is named or counted.
    let burst: Vec<_> = (0..4)
        .map(|_| {
            let msp = msp.clone();
            tokio::spawn(async move { onboard(&msp, uuid::Uuid::new_v4()).await })
        })
        .collect();
    for call in burst {
        assert_eq!(call.await.unwrap().status, 201);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reply = onboard(&msp, uuid::Uuid::new_v4()).await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let mut warnings = vec![first];
    let mut told: u64 = slow_commits_told(&warnings[0]);
    while told < 11 {
        let line = wait_line(&served.lines, "PostgreSQL commit took");
        told += slow_commits_told(&line);
        warnings.push(line);
    }
    assert_eq!(told, 11, "{warnings:#?}");
    assert!(
        warnings[1..]
            .iter()
            .any(|w| w.contains("more slow commits since the last warning)")),
        "{warnings:#?}"
    );
    signal(&served.child, "TERM");
    assert_eq!(
        wait_exit(&mut served.child, Duration::from_secs(15)),
        Some(0)
    );
}

/// How many slow commits a warning tells of: the one it names and those it counts.
fn slow_commits_told(warning: &str) -> u64 {
    let counted = warning
        .split_once(" more slow commits")
        .and_then(|(before, _)| before.rsplit('(').next())
        .map(|n| n.parse::<u64>().expect("a count"));
    1 + counted.unwrap_or(0)
}

fn wait_line(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
            if line.contains(needle) {
                return line;
            }
        }
    }
    panic!("no log line containing {needle:?}");
}

#[test]
fn demo_walks_through_every_function() {
    let dir: PathBuf = tempfile::tempdir().unwrap().keep();
    let out = aidhub(&dir, &["demo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("all steps ended as the spec says"), "{text}");
    assert!(
        !text.contains("SMDP.AIDHUB.TEST"),
        "the demo never prints activation codes"
    );
    let _ = std::fs::remove_dir_all(dir);
}

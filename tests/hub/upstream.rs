//! Upstream faults: whatever the partner behind the hub does (not listening, too slow,
//! hanging up, answering garbage, failing TLS), the caller promptly gets a spec-format
//! error; a proper partner error is relayed unchanged; and a request that reached the
//! partner is never replayed.

use crate::common::{self, assert_error, edit_partner, replace_line};
use crate::support::{bodies, TestHub};
use aidhub::client::{Reply, Version};
use aidhub::sim::{Fault, SIM_ICCID};
use http::Method;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// Send MSP Token from mspalpha to cmpone with a valid account id.
async fn send_msp_token(hub: &TestHub, version: Version) -> Reply {
    let (account_id, _) = hub.account_id("cmpone", 600);
    common::call(
        hub,
        version,
        "mspalpha",
        "cmpone",
        Method::POST,
        &format!("/cesim/msp/v1/users/{account_id}"),
        Some(&bodies::msp_token(&Uuid::new_v4())),
    )
    .await
}

/// Request Activation Code (synchronous) from cmpone to mspalpha for `token`.
async fn request_code(hub: &TestHub, token: Uuid) -> Reply {
    common::call(
        hub,
        Version::Http1,
        "cmpone",
        "mspalpha",
        Method::POST,
        &format!("/v1/activation-code-requests/{token}"),
        Some(&bodies::ac_request(&Uuid::new_v4(), "tcu")),
    )
    .await
}

/// Send CSIM Status from cmpone to mspalpha for `token`.
async fn csim_status(hub: &TestHub, version: Version, token: Uuid) -> Reply {
    common::call(
        hub,
        version,
        "cmpone",
        "mspalpha",
        Method::POST,
        &format!("/v1/statuses/{token}"),
        Some(&bodies::csim_status("installed")),
    )
    .await
}

#[tokio::test]
async fn a_partner_that_is_not_listening_gives_502_code_202() {
    let (_held, port) = common::refusing_port();
    let hub = stage_with_cmpone_on(port, str::to_owned, "").await;
    for version in common::VERSIONS {
        let started = Instant::now();
        let reply = send_msp_token(&hub, version).await;
        assert_error(&reply, 502, "202", &format!("cmpone down ({version:?})"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "answered promptly"
        );
    }
    assert_eq!(hub.partner("cmpone").seen_count(), 0);
}

#[tokio::test]
async fn a_partner_slower_than_the_function_timeout_gives_504_code_204_on_time() {
    const DEFAULT_MS: u64 = 300;
    const RAC_MS: u64 = 600;
    let hub = TestHub::builder()
        .hub(|t| {
            format!(
                "{}\n[timeouts.functions]\nrequest_activation_code = {RAC_MS}\n",
                t.replace("default_ms = 2000", &format!("default_ms = {DEFAULT_MS}"))
            )
        })
        .start()
        .await
        .expect("the stage starts");
    let token = common::onboard(&hub, "mspalpha", "cmpone").await;
    let slow = Fault::Delay(Duration::from_secs(10));
    hub.partner("cmpone")
        .fault("/cesim/msp/v1/users/", slow.clone());
    hub.partner("mspalpha")
        .fault("/v1/activation-code-requests/", slow);
    let margin = Duration::from_millis(1500);

    let cmp_before = hub.partner("cmpone").seen_count();
    let started = Instant::now();
    let reply = send_msp_token(&hub, Version::Http1).await;
    let took = started.elapsed();
    assert_error(&reply, 504, "204", "slow Send MSP Token");
    let timeout = Duration::from_millis(DEFAULT_MS);
    assert!(
        took >= timeout && took < timeout + margin,
        "Send MSP Token answered after {took:?}, its timeout is {timeout:?}"
    );
    assert_eq!(
        hub.partner("cmpone").seen_count(),
        cmp_before + 1,
        "sent once"
    );

    let msp_before = hub.partner("mspalpha").seen_count();
    let started = Instant::now();
    let reply = request_code(&hub, token).await;
    let took = started.elapsed();
    assert_error(&reply, 504, "204", "slow Request Activation Code");
    let timeout = Duration::from_millis(RAC_MS);
    assert!(
        took >= timeout && took < timeout + margin,
        "Request Activation Code answered after {took:?}, its timeout is {timeout:?}"
    );
    assert_eq!(
        hub.partner("mspalpha").seen_count(),
        msp_before + 1,
        "sent once"
    );
}

#[tokio::test]
async fn a_partner_that_hangs_up_gives_502_code_205_and_is_never_sent_the_request_again() {
    let hub = common::stage().await;
    let token = common::onboard(&hub, "mspalpha", "cmpone").await;
    let msp = hub.partner("mspalpha");
    msp.fault("/v1/statuses/", Fault::Hangup);
    for version in common::VERSIONS {
        for attempt in 1..=3 {
            let case = format!("hang-up #{attempt} ({version:?})");
            let before = msp.seen_count();
            let reply = csim_status(&hub, version, token).await;
            assert_error(&reply, 502, "205", &case);
            assert_eq!(
                msp.seen_count(),
                before + 1,
                "{case}: the partner saw the request exactly once"
            );
        }
    }
    msp.clear_faults();
    let reply = csim_status(&hub, Version::Http1, token).await;
    assert_eq!(
        reply.status, 201,
        "the partner answers again once it behaves"
    );
}

#[tokio::test]
async fn an_activation_code_answer_that_breaks_the_contract_gives_502_code_206() {
    let hub = common::stage().await;
    let token = common::onboard(&hub, "mspalpha", "cmpone").await;
    let msp = hub.partner("mspalpha");
    let no_code = json!({"iccid": SIM_ICCID, "profileType": "personal", "swappedIccid": null});
    let answers = [
        (
            "200 with a body that is not JSON",
            "here is your code: 42".to_owned(),
        ),
        ("200 without activationCode", no_code.to_string()),
    ];
    for (case, body) in answers {
        msp.clear_faults();
        msp.fault("/v1/activation-code-requests/", Fault::Answer(200, body));
        let before = msp.seen_count();
        let reply = request_code(&hub, token).await;
        assert_error(&reply, 502, "206", case);
        assert_eq!(msp.seen_count(), before + 1, "{case}: sent once");
    }
    msp.clear_faults();
    let reply = request_code(&hub, token).await;
    assert_eq!(reply.status, 200, "the federation still takes requests");
}

#[tokio::test]
async fn a_partner_error_with_the_spec_error_body_is_relayed_unchanged() {
    let hub = common::stage().await;
    let token = common::onboard(&hub, "mspalpha", "cmpone").await;
    let msp = hub.partner("mspalpha");
    let answers = [
        (
            404,
            r#"{"code":"20","error":"The msp_token was not found"}"#,
        ),
        (
            422,
            r#"{"code": "39", "error": "Other error", "vendor": {"ref": 7}}"#,
        ),
        (500, r#"{"code":"90","error":"Internal Server Error"}"#),
    ];
    for (status, body) in answers {
        msp.clear_faults();
        msp.fault("/v1/statuses/", Fault::Answer(status, body.to_owned()));
        for version in common::VERSIONS {
            let before = msp.seen_count();
            let reply = csim_status(&hub, version, token).await;
            assert_eq!(
                reply.status.as_u16(),
                status,
                "{status} relayed ({version:?})"
            );
            assert_eq!(
                reply.body,
                body.as_bytes(),
                "{status}: body relayed byte for byte"
            );
            assert_eq!(msp.seen_count(), before + 1, "{status}: sent once");
        }
    }
}

#[tokio::test]
async fn a_partner_error_without_the_spec_error_body_gives_502_code_206() {
    let hub = common::stage().await;
    let token = common::onboard(&hub, "mspalpha", "cmpone").await;
    let msp = hub.partner("mspalpha");
    let answers = [
        (500, ""),
        (404, "<html><body>Not Found</body></html>"),
        (422, r#"{"error":"no code"}"#),
    ];
    for (status, body) in answers {
        msp.clear_faults();
        msp.fault("/v1/statuses/", Fault::Answer(status, body.to_owned()));
        let before = msp.seen_count();
        let reply = csim_status(&hub, Version::Http1, token).await;
        assert_error(&reply, 502, "206", &format!("{status} {body:?}"));
        assert_eq!(msp.seen_count(), before + 1, "{status}: sent once");
    }
}

#[tokio::test]
async fn an_upstream_whose_certificate_the_hub_does_not_trust_gives_502_code_203() {
    let foreign = tempfile::tempdir().expect("a temp dir");
    let ca = common::own_ca(foreign.path(), &[]);
    let ca_line = format!("ca = [\"{}\"]", ca.display());
    let hub = TestHub::builder()
        .routes(move |t| edit_partner(t, "cmpone", |block| replace_line(block, "ca = ", &ca_line)))
        .start()
        .await
        .expect("the stage starts");
    for version in common::VERSIONS {
        let reply = send_msp_token(&hub, version).await;
        assert_error(
            &reply,
            502,
            "203",
            &format!("untrusted cmpone ({version:?})"),
        );
    }
    assert_eq!(hub.partner("cmpone").seen_count(), 0, "no request crossed");
    // The other partners' upstreams are unaffected.
    let token = common::onboard(&hub, "mspalpha", "cmptwo").await;
    let reply = common::call(
        &hub,
        Version::Http1,
        "mspalpha",
        "cmptwo",
        Method::PATCH,
        &format!("/cesim/msp/v1/subscriptions/{token}"),
        Some(&json!({"subscriptionType": "business"})),
    )
    .await;
    assert_eq!(reply.status, 201);
}

/// A TLS acceptor for a hand-made HTTP/1.1-only partner with `cert` and `key`.
fn http1_acceptor(cert: &std::path::Path, key: &std::path::Path) -> tokio_rustls::TlsAcceptor {
    let mut config = rustls::ServerConfig::builder_with_provider(aidhub::tls::provider())
        .with_protocol_versions(aidhub::tls::VERSIONS)
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            aidhub::tls::read_certs(cert).expect("the partner's certificate"),
            aidhub::tls::read_key(key).expect("the partner's key"),
        )
        .expect("a server configuration");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A stage whose cmpone is a hand-made HTTP/1.1-only partner: the loopback listener it is
/// to accept on, and the TLS acceptor with cmpone's server credential.
async fn stage_with_hand_made_cmpone(
) -> (TestHub, tokio::net::TcpListener, tokio_rustls::TlsAcceptor) {
    stage_with_hand_made_cmpone_and(str::to_owned, "").await
}

/// [`stage_with_hand_made_cmpone`] with `hub.toml` edited by `hub_toml` and
/// `upstream_lines` added to cmpone's `[partner.upstream]`.
async fn stage_with_hand_made_cmpone_and(
    hub_toml: impl Fn(&str) -> String + 'static,
    upstream_lines: &'static str,
) -> (TestHub, tokio::net::TcpListener, tokio_rustls::TlsAcceptor) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let port = listener.local_addr().expect("its address").port();
    let hub = stage_with_cmpone_on(port, hub_toml, upstream_lines).await;
    let (cert, key) = aidhub::pki::partner_server(&hub.certs(), "cmpone");
    let acceptor = http1_acceptor(&cert, &key);
    (hub, listener, acceptor)
}

/// A stage whose cmpone is at `https://127.0.0.1:{port}`, `upstream_lines` added to its
/// `[partner.upstream]`, `hub.toml` edited by `hub_toml`.
async fn stage_with_cmpone_on(
    port: u16,
    hub_toml: impl Fn(&str) -> String + 'static,
    upstream_lines: &'static str,
) -> TestHub {
    TestHub::builder()
        .hub(hub_toml)
        .routes(move |t| {
            edit_partner(t, "cmpone", |block| {
                replace_line(
                    block,
                    "url = ",
                    &format!("url = \"https://127.0.0.1:{port}\"\n{upstream_lines}"),
                )
            })
        })
        .start()
        .await
        .expect("the stage starts")
}

/// Reads one request (head and body, by its `content-length`) from `tls` into `buffer`;
/// false when the connection ended first.
async fn read_request<S: tokio::io::AsyncRead + Unpin>(tls: &mut S, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |n| n.trim().parse().expect("a numeric content-length"));
            if buffer.len() >= end + 4 + length {
                buffer.drain(..end + 4 + length);
                return true;
            }
        }
        match tls.read(&mut chunk).await {
            Ok(n @ 1..) => buffer.extend_from_slice(&chunk[..n]),
            _ => return false,
        }
    }
}

/// A partner that speaks only HTTP/1.1 and closes the connection as soon as it has read a
/// request, without answering; counts the requests it read.
fn start_hang_up_partner(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
) -> Arc<AtomicUsize> {
    let heads = Arc::new(AtomicUsize::new(0));
    let counted = heads.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if read_request(&mut tls, &mut Vec::new()).await {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                let _ = tls.shutdown().await;
            });
        }
    });
    heads
}

#[tokio::test]
async fn a_partner_closing_an_http1_connection_unanswered_gives_502_code_205_without_replay() {
    let (hub, listener, acceptor) = stage_with_hand_made_cmpone().await;
    let heads = start_hang_up_partner(listener, acceptor);
    for (attempt, version) in common::VERSIONS.into_iter().enumerate() {
        let reply = send_msp_token(&hub, version).await;
        assert_error(&reply, 502, "205", &format!("hang-up ({version:?})"));
        assert_eq!(
            heads.load(Ordering::SeqCst),
            attempt + 1,
            "the request reached the partner once and was not replayed ({version:?})"
        );
    }
}

/// A keep-alive connection its partner closes while it is idle is dropped from the pool by
/// the hub's own pruner within a second or so (it checks at least every second), never
/// handed to a request; the next request opens a new one.
#[tokio::test]
async fn an_idle_connection_the_partner_closed_is_pruned_and_not_reused() {
    let (hub, listener, acceptor) = stage_with_hand_made_cmpone().await;
    // Answers one request with a keep-alive 201, then closes the connection after a while.
    let connections = serve_each_connection(listener, acceptor, |mut tls| async move {
        if read_request(&mut tls, &mut Vec::new()).await {
            let answer = b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n";
            let _ = tls.write_all(answer).await;
            let _ = tls.flush().await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = tls.shutdown().await;
    });
    let snap = hub.running.as_ref().expect("running").hub.snapshot();
    let upstream = snap.upstream("cmpone").expect("cmpone's upstream").clone();
    let reply = send_msp_token(&hub, Version::Http1).await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    assert_eq!(upstream.idle_connections(), 1, "kept for the next request");
    // The partner closes it 0.1 s after its answer; the pruner notices without sending
    // anything.
    let deadline = Instant::now() + Duration::from_millis(2500);
    while upstream.idle_connections() > 0 {
        assert!(
            Instant::now() < deadline,
            "the closed connection is still in the pool 2.5 s after the answer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reply = send_msp_token(&hub, Version::Http1).await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    assert_eq!(connections.load(Ordering::SeqCst), 2, "a new connection");
}

/// Accepts the hub's connections on `listener`, counting them, and runs `serve` on each once
/// its TLS handshake is done. The count is returned.
fn serve_each_connection<F, Fut>(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    serve: F,
) -> Arc<AtomicUsize>
where
    F: Fn(tokio_rustls::server::TlsStream<tokio::net::TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let (acceptor, serve) = (acceptor.clone(), serve.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve(tls).await;
                }
            });
        }
    });
    connections
}

/// Answers every request on `tls` with a keep-alive 201 until the hub closes it.
async fn answer_every_request_with_201<S>(tls: &mut S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buffer = Vec::new();
    while read_request(tls, &mut buffer).await {
        let answer = b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n";
        if tls.write_all(answer).await.is_err() || tls.flush().await.is_err() {
            return;
        }
    }
}

/// A keep-alive connection idle for longer than `timeouts.upstream_idle_ms` is closed, not
/// reused, though its partner still holds it open (set below a partner's own keep-alive
/// timeout, the hub never sends on a connection the partner is about to close); within it,
/// the connection is reused.
#[tokio::test]
async fn a_connection_idle_past_the_idle_timeout_is_not_reused() {
    idle_past_one_second_is_not_reused("upstream_idle_ms = 1000", "").await;
}

/// The same with the hub's default kept and the partner's own `upstream.idle_ms`.
#[tokio::test]
async fn a_partner_s_own_idle_timeout_overrides_the_hub_s() {
    idle_past_one_second_is_not_reused("upstream_idle_ms = 90000", "idle_ms = 1000").await;
}

/// cmpone's connection, with `timeouts_line` in `hub.toml`'s `[timeouts]` and
/// `upstream_line` in cmpone's `[partner.upstream]`, is reused at once and not after 1.5 s.
/// One serving thread: idle connections are kept per thread.
async fn idle_past_one_second_is_not_reused(
    timeouts_line: &'static str,
    upstream_line: &'static str,
) {
    let (hub, listener, acceptor) = stage_with_hand_made_cmpone_and(
        move |t| {
            let t = t.replace(
                "connect_ms = 500",
                &format!("connect_ms = 500\n{timeouts_line}"),
            );
            format!("{t}\n[listen]\nthreads = 1\n")
        },
        upstream_line,
    )
    .await;
    let connections = serve_each_connection(listener, acceptor, |mut tls| async move {
        answer_every_request_with_201(&mut tls).await;
    });
    let snap = hub.running.as_ref().expect("running").hub.snapshot();
    let upstream = snap.upstream("cmpone").expect("cmpone's upstream").clone();
    for _ in 0..2 {
        let reply = send_msp_token(&hub, Version::Http1).await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1, "reused while fresh");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reply = send_msp_token(&hub, Version::Http1).await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "a new connection once the idle one timed out"
    );
    assert_eq!(upstream.connections_opened(), 2);
    assert_eq!(
        upstream.idle_connections(),
        1,
        "the old one closed, the new one kept"
    );
}

/// An idle connection is closed when it times out, though its partner still holds it open:
/// the pruner wakes for the oldest idle connection's timeout rather than at a round of its
/// own (it closed them up to 10 s late, a socket the partner had to keep meanwhile).
#[tokio::test]
async fn an_idle_connection_is_closed_when_it_times_out() {
    let (hub, listener, acceptor) = stage_with_hand_made_cmpone_and(
        |t| {
            t.replace(
                "connect_ms = 500",
                "connect_ms = 500\nupstream_idle_ms = 1000",
            )
        },
        "",
    )
    .await;
    let (closed_tx, mut closed) = tokio::sync::mpsc::unbounded_channel();
    serve_each_connection(listener, acceptor, move |mut tls| {
        let closed_tx = closed_tx.clone();
        async move {
            answer_every_request_with_201(&mut tls).await;
            let _ = closed_tx.send(Instant::now());
        }
    });
    let snap = hub.running.as_ref().expect("running").hub.snapshot();
    let upstream = snap.upstream("cmpone").expect("cmpone's upstream").clone();
    let reply = send_msp_token(&hub, Version::Http1).await;
    let answered = Instant::now();
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    assert_eq!(upstream.idle_connections(), 1, "kept after the call");
    let closed_at = tokio::time::timeout(Duration::from_secs(5), closed.recv())
        .await
        .expect("the hub closed its idle connection within 5 s")
        .expect("the partner's task reported");
    let idle_for = closed_at - answered;
    assert!(
        idle_for >= Duration::from_millis(500) && idle_for < Duration::from_millis(2500),
        "closed {idle_for:?} after the answer, idle timeout 1 s"
    );
    assert_eq!(upstream.idle_connections(), 0, "the closed one is gone");
}

/// A burst of calls on a cold hub opens only a few connections to the partner at a time
/// (`limits.max_opening_per_upstream`; a slow handshake here, so that every call of the burst
/// finds none idle); the calls beyond wait for one another brings back, or for a turn to
/// open one, and all are answered.
#[tokio::test]
async fn a_burst_on_a_cold_hub_opens_a_few_upstream_connections_at_a_time() {
    const BURST: usize = 32;
    const CAP: usize = 3;
    let (hub, listener, acceptor) = stage_with_hand_made_cmpone_and(
        |t| format!("{t}\n[limits]\nmax_opening_per_upstream = {CAP}\n"),
        "",
    )
    .await;
    let opening = Arc::new(AtomicUsize::new(0));
    let most_opening = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let (counts, most, all) = (opening.clone(), most_opening.clone(), accepted.clone());
    // Takes 150 ms over each handshake, then answers every request with a keep-alive 201.
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            all.fetch_add(1, Ordering::SeqCst);
            let now = counts.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            let (acceptor, counts) = (acceptor.clone(), counts.clone());
            tokio::spawn(async move {
                // Counted while the hub waits for the handshake's answer (from the hub's
                // side, a connection is opening until a little after that).
                tokio::time::sleep(Duration::from_millis(150)).await;
                counts.fetch_sub(1, Ordering::SeqCst);
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                answer_every_request_with_201(&mut tls).await;
            });
        }
    });
    let snap = hub.running.as_ref().expect("running").hub.snapshot();
    let upstream = snap.upstream("cmpone").expect("cmpone's upstream").clone();
    let calls = (0..BURST).map(|_| send_msp_token(&hub, Version::Http1));
    for reply in futures_util::future::join_all(calls).await {
        assert_eq!(reply.status, 201, "{:?}", reply.body);
    }
    let most = most_opening.load(Ordering::SeqCst);
    assert!(
        (2..=CAP).contains(&most),
        "{most} connections were opening at once (a cap of {CAP})"
    );
    let accepted = accepted.load(Ordering::SeqCst);
    assert!(
        accepted < BURST,
        "{accepted} connections for {BURST} calls: the waiting calls took none brought back"
    );
    // What the metrics report (`aidhub_upstream_connections_opened_total`, `…_waits_total`).
    assert_eq!(upstream.connections_opened(), accepted as u64);
    assert!(upstream.connection_waits() >= 1, "no call waited");
}

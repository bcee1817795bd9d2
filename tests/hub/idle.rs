//! Idle client connections (`listen.idle_timeout_secs`, 1 s here): a connection without a
//! request in flight for the timeout is closed, whether it never sent a request, trickles a
//! request head that never ends, speaks h2 without a request (asked to go away first), or went
//! quiet after an answer; a request in flight for longer than the timeout is still answered.

use crate::common::{self, caller};
use crate::support::TestHub;
use aidhub::sim::Fault;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::client::TlsStream;

const IDLE: Duration = Duration::from_secs(1);

/// A stage whose hub closes client connections idle for [`IDLE`], its exchanges allowed
/// `default_ms` each.
async fn stage(default_ms: u64) -> TestHub {
    stage_with(default_ms, "").await
}

/// The same with `listen_lines` added to `hub.toml`'s `[listen]`.
async fn stage_with(default_ms: u64, listen_lines: &'static str) -> TestHub {
    TestHub::builder()
        .hub(move |t| {
            let t = t.replace("default_ms = 2000", &format!("default_ms = {default_ms}"));
            format!("{t}\n[listen]\nidle_timeout_secs = 1\n{listen_lines}")
        })
        .start()
        .await
        .expect("the stage starts")
}

/// A mutual-TLS connection to the hub as partner `who`, offering `alpn`.
async fn connect(hub: &TestHub, who: &str, alpn: &[u8]) -> TlsStream<tokio::net::TcpStream> {
    let certs = hub.certs();
    let (cert, key) = aidhub::pki::partner_client(&certs, who);
    let mut config = aidhub::tls::client_config(&[aidhub::pki::ca_cert(&certs)], &cert, &key)
        .expect("a client configuration");
    config.alpn_protocols = vec![alpn.to_vec()];
    tls_to(hub.addr, config).await
}

/// A server-TLS connection to the hub's browser listener (no client certificate).
async fn connect_browser(hub: &TestHub) -> TlsStream<tokio::net::TcpStream> {
    let config = aidhub::tls::client_config_anonymous(&[aidhub::pki::ca_cert(&hub.certs())])
        .expect("a client configuration");
    tls_to(hub.browsers, config).await
}

/// A TLS session with `addr`, verified as `localhost`.
async fn tls_to(
    addr: std::net::SocketAddr,
    config: rustls::ClientConfig,
) -> TlsStream<tokio::net::TcpStream> {
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.expect("a TLS session")
}

/// Reads until the hub closes the connection (or it fails); how long that took from
/// `from`. A connection still open after 10 s fails the test.
async fn closed_after(tls: &mut TlsStream<tokio::net::TcpStream>, from: Instant) -> Duration {
    let mut sink = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "the idle connection is still open after 10 s");
    from.elapsed()
}

/// The client's h2 connection preface and an empty SETTINGS frame.
const H2_PREFACE_AND_SETTINGS: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// h2 frame types (RFC 9113 §6).
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;

/// One h2 frame from the hub (type, flags, payload), or `None` once it closed.
async fn h2_frame(tls: &mut TlsStream<tokio::net::TcpStream>) -> Option<(u8, u8, Vec<u8>)> {
    let mut head = [0u8; 9];
    tls.read_exact(&mut head).await.ok()?;
    let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; length];
    tls.read_exact(&mut payload).await.ok()?;
    Some((head[3], head[4], payload))
}

/// A GOAWAY payload's last stream id and error code.
fn go_away_fields(payload: &[u8]) -> (u32, u32) {
    let word = |at: usize| u32::from_be_bytes(payload[at..at + 4].try_into().unwrap());
    (word(0) & 0x7fff_ffff, word(4))
}

fn assert_closed_for_idleness(took: Duration, what: &str) {
    assert!(
        took >= IDLE - Duration::from_millis(50) && took < IDLE * 4,
        "{what}: closed after {took:?}, the idle timeout is {IDLE:?}"
    );
}

#[tokio::test]
async fn a_connection_without_a_request_is_closed_after_the_idle_timeout() {
    let hub = stage(2000).await;

    let mut silent = connect(&hub, "mspalpha", b"http/1.1").await;
    let opened = Instant::now();
    assert_closed_for_idleness(closed_after(&mut silent, opened).await, "silent");

    // A head that never ends, a byte at a time: bytes arrive, no request does.
    let mut trickle = connect(&hub, "mspalpha", b"http/1.1").await;
    let opened = Instant::now();
    let head = b"POST /cesim/msp/v1/users/x HTTP/1.1\r\nhost: localhost\r\nclient-id: ";
    let writer = async {
        for byte in head.iter().cycle().take(60) {
            if trickle.write_all(&[*byte]).await.is_err() || trickle.flush().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        trickle
    };
    let mut trickle = writer.await;
    assert_closed_for_idleness(closed_after(&mut trickle, opened).await, "trickled head");

    // h2: the preface and SETTINGS, then nothing (not even the answer to the hub's PING: the
    // connection is closed the grace after it was asked to go away).
    let mut h2 = connect(&hub, "mspalpha", b"h2").await;
    let opened = Instant::now();
    h2.write_all(H2_PREFACE_AND_SETTINGS).await.unwrap();
    h2.flush().await.unwrap();
    assert_closed_for_idleness(closed_after(&mut h2, opened).await, "h2 without a request");

    // The browser listener, open to anyone: the same.
    let mut browser = connect_browser(&hub).await;
    let opened = Instant::now();
    browser.write_all(b"GET /touch").await.unwrap();
    browser.flush().await.unwrap();
    assert_closed_for_idleness(
        closed_after(&mut browser, opened).await,
        "browser listener, an unfinished head",
    );
}

/// An idle h2 connection is asked to go away before it is closed (RFC 9113 §6.8: the final
/// GOAWAY names the last stream the hub processed, so a client knows that none of its later
/// ones was lost): after the idle timeout a GOAWAY and a PING; a client that answers the PING
/// is sent the final GOAWAY and the connection closes at once; one that does not is closed
/// the grace later (as long as the idle timeout here).
#[tokio::test]
async fn an_idle_h2_connection_is_sent_a_goaway_before_it_is_closed() {
    let hub = stage(2000).await;
    for answers in [true, false] {
        let mut h2 = connect(&hub, "mspalpha", b"h2").await;
        let opened = Instant::now();
        h2.write_all(H2_PREFACE_AND_SETTINGS).await.unwrap();
        h2.flush().await.unwrap();
        // The hub's SETTINGS and its acknowledgement of ours come first.
        let (mut go_away, mut ping) = (None, None);
        while go_away.is_none() || ping.is_none() {
            let frame = h2_frame(&mut h2).await;
            match frame.expect("a GOAWAY and a PING before the connection closes") {
                (GOAWAY, _, payload) => go_away = Some(go_away_fields(&payload)),
                (PING, 0, payload) => ping = Some(payload),
                _ => {}
            }
        }
        let asked = Instant::now();
        let took = asked - opened;
        assert!(
            took >= IDLE - Duration::from_millis(50) && took < IDLE * 3,
            "asked to go away after {took:?}, the idle timeout is {IDLE:?}"
        );
        assert_eq!(go_away.unwrap().1, 0, "NO_ERROR");
        if answers {
            let mut ack = vec![0, 0, 8, PING, 0x1, 0, 0, 0, 0];
            ack.extend_from_slice(&ping.unwrap());
            h2.write_all(&ack).await.unwrap();
            h2.flush().await.unwrap();
            let answered = Instant::now();
            let last = loop {
                match h2_frame(&mut h2).await.expect("the final GOAWAY") {
                    (GOAWAY, _, payload) => break go_away_fields(&payload),
                    _ => continue,
                }
            };
            assert_eq!(last, (0, 0), "no stream was processed; NO_ERROR");
            let closed = closed_after(&mut h2, answered).await;
            assert!(
                closed < IDLE / 2,
                "closed {closed:?} after the PING's answer, not at once"
            );
        } else {
            let closed = closed_after(&mut h2, asked).await;
            assert!(
                closed >= IDLE - Duration::from_millis(50) && closed < IDLE * 3,
                "closed {closed:?} after the GOAWAY; the grace is {IDLE:?}"
            );
        }
    }
}

/// The timeout counts from the last answer, not from the connection's start.
#[tokio::test]
async fn a_keep_alive_connection_is_closed_the_idle_timeout_after_its_last_answer() {
    let hub = stage(2000).await;
    let mut tls = connect(&hub, "mspalpha", b"http/1.1").await;
    tokio::time::sleep(IDLE * 6 / 10).await;
    let me = caller(&hub, "mspalpha");
    let request = format!(
        "GET /cesim/msp/v1/nothing HTTP/1.1\r\nhost: localhost\r\nclient-id: {}\r\n\
         target-id: cmpone\r\n\r\n",
        me.client_id
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut chunk).await.expect("an answer");
        assert!(n > 0, "closed before answering: {answer:?}");
        answer.extend_from_slice(&chunk[..n]);
    }
    let answered = Instant::now();
    let head = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 4"), "{head}");
    assert!(!head.contains("connection: close"), "kept alive: {head}");
    assert_closed_for_idleness(closed_after(&mut tls, answered).await, "after an answer");
}

/// A request whose partner takes longer than the idle timeout keeps its connection open.
#[tokio::test]
async fn a_request_in_flight_longer_than_the_idle_timeout_is_answered() {
    let hub = stage(6000).await;
    let token = common::onboard(&hub, "mspalpha", "cmpone").await;
    hub.partner("mspalpha")
        .fault("/v1/statuses/", Fault::Delay(IDLE * 2));
    for version in common::VERSIONS {
        let started = Instant::now();
        let reply = common::call(
            &hub,
            version,
            "cmpone",
            "mspalpha",
            http::Method::POST,
            &format!("/v1/statuses/{token}"),
            Some(&crate::support::bodies::csim_status("installed")),
        )
        .await;
        assert_eq!(reply.status, 201, "{version:?}: {:?}", reply.body);
        assert!(
            started.elapsed() >= IDLE * 2,
            "{version:?}: the partner's delay"
        );
    }
}

/// A request whose body trickles in is in flight, so the connection stays open past the idle
/// timeout; the body itself must all come within `listen.body_timeout_secs` (2 s here, twice
/// the idle timeout), or the request is refused with the spec error body (422, as a body that
/// cannot be read) naming the bound.
#[tokio::test]
async fn a_request_body_that_does_not_all_arrive_within_the_body_timeout_is_refused() {
    const BODY: Duration = Duration::from_secs(2);
    let hub = stage_with(2000, "body_timeout_secs = 2\n").await;
    let tls = connect(&hub, "cmpone", b"http/1.1").await;
    let (mut read, mut write) = tokio::io::split(tls);
    let me = caller(&hub, "cmpone");
    let ids = common::Ids::new();
    let head = format!(
        "POST /v1/statuses/{} HTTP/1.1\r\nhost: localhost\r\nclient-id: {}\r\n\
         target-id: mspalpha\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\
         cmp-request-id: {}\r\ncorrelation-id: {}\r\napi-key: {}\r\n\r\n{{\"iccid\": ",
        uuid::Uuid::new_v4(),
        me.client_id,
        ids.request,
        ids.correlation,
        me.api_key
            .as_deref()
            .expect("the stage's partners use api keys"),
    );
    write.write_all(head.as_bytes()).await.unwrap();
    write.flush().await.unwrap();
    let sent = Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if write.write_all(b" ").await.is_err() || write.flush().await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let read_all = tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut answer));
    let _ = read_all.await.expect("an answer within 10 s");
    let took = sent.elapsed();
    trickle.abort();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 422"), "{text}");
    assert!(text.contains(r#"{"code":"91","#), "{text}");
    assert!(
        text.contains("the request body did not all arrive within 2 s"),
        "{text}"
    );
    assert!(
        took >= BODY - Duration::from_millis(50) && took < BODY * 2,
        "refused after {took:?}, the bound is {BODY:?} (the idle timeout {IDLE:?})"
    );
}

//! The admin listener: health and readiness, the configuration in force, partners with their
//! limits and live state, reload, metrics, and the ledger views.
//!
//! It listens on loopback by default (plain HTTP). Bound elsewhere it requires a bearer token
//! (`admin.token`) and speaks TLS with the hub's server certificate; `/health` and `/ready`
//! stay open for probes.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/health` | 200 while the process serves |
//! | GET | `/ready` | 200 when the ledger answers a lookup, else 503 |
//! | GET | `/config` | replica, version, hash, routes hash, load time, partner count, last refused reload |
//! | GET | `/partners` | each partner: role, identities, agreements, limits, requests in flight |
//! | POST | `/reload` | reload now: 200 with the new version and hash, or 422 with every problem |
//! | GET | `/metrics` | Prometheus text format |
//! | GET | `/ledger/stats` | ledger sizes |
//! | GET | `/ledger/federations/{msp_token}` | a federation and its profiles |
//! | GET | `/ledger/requests?all=&partner=&older_than_secs=&limit=` | activation-code requests (open by default) |
//! | GET | `/ledger/export` | every record, JSON lines |
//! | GET | `/ts43/transfers?carrier=&limit=` | TS.43 transfers, newest first, with their steps |
//! | GET | `/ts43/carriers` | each carrier against the Android eSIM-transfer requirements |

mod ts43;

use crate::hub::Hub;
use crate::ledger::RequestFilter;
use crate::limits::Mode;
use crate::metrics::{counter, counters, gauge, histograms, Histogram};
use crate::upstream::Upstream;
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Serves the admin API until `shutdown` fires.
pub async fn listener(listener: TcpListener, hub: Hub, mut shutdown: watch::Receiver<bool>) {
    let tls = !listener
        .local_addr()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(true);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(cause = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let hub = hub.clone();
        tokio::spawn(async move {
            let serving = hub.clone();
            let service = service_fn(move |request| {
                let hub = serving.clone();
                async move { Ok::<_, Infallible>(handle(&hub, request).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let result = if tls {
                let acceptor = TlsAcceptor::from(admin_tls(&hub));
                match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                    }
                    Err(e) => {
                        hub.metrics().handshake_failures.inc(("admin", "protocol"));
                        tracing::info!(%peer, cause = %e, "admin TLS handshake failed");
                        return;
                    }
                }
            } else {
                builder.serve_connection(TokioIo::new(tcp), service).await
            };
            if let Err(e) = result {
                tracing::debug!(%peer, cause = %e, "admin connection ended with an error");
            }
        });
    }
}

/// Server-only TLS for a non-loopback admin listener, with the hub's server certificate.
fn admin_tls(hub: &Hub) -> Arc<rustls::ServerConfig> {
    let snap = hub.snapshot();
    let files = &snap.config.tls;
    let built = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(crate::tls::VERSIONS)
        .map_err(|e| e.to_string())
        .and_then(|b| {
            b.with_no_client_auth()
                .with_single_cert(
                    crate::tls::read_certs(&files.server_cert)?,
                    crate::tls::read_key(&files.server_key)?,
                )
                .map_err(|e| e.to_string())
        });
    match built {
        Ok(config) => Arc::new(config),
        // The same files built the partner listener's configuration moments ago; if they
        // became unreadable since, reuse that configuration (it still holds the certificate).
        Err(_) => snap.server_tls.clone(),
    }
}

async fn handle(hub: &Hub, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let open = matches!(path.as_str(), "/health" | "/ready");
    if !open && !authorized(hub, &request) {
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "a bearer token is required"}),
        );
    }
    let query = request.uri().query().unwrap_or("").to_owned();
    match (request.method(), path.as_str()) {
        (&Method::GET, "/health") => reply(StatusCode::OK, json!({"status": "ok"})),
        (&Method::GET, "/ready") => match hub.ledger().ready().await {
            Ok(()) => reply(StatusCode::OK, json!({"ready": true})),
            Err(e) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"ready": false, "cause": e.to_string()}),
            ),
        },
        (&Method::GET, "/config") => config(hub),
        (&Method::GET, "/partners") => partners(hub),
        (&Method::POST, "/reload") => {
            let hub = hub.clone();
            // Reading certificates is blocking file I/O.
            let outcome = tokio::task::spawn_blocking(move || hub.reload("admin")).await;
            match outcome {
                Ok(Ok(s)) => reply(
                    StatusCode::OK,
                    json!({"version": s.version, "hash": s.hash}),
                ),
                Ok(Err(e)) => reply(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"error": "the configuration was refused; the previous one keeps serving", "problems": e.problems}),
                ),
                Err(e) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": e.to_string()}),
                ),
            }
        }
        (&Method::GET, "/metrics") => metrics(hub).await,
        (&Method::GET, "/ledger/stats") => match hub.ledger().stats().await {
            Ok(stats) => reply(StatusCode::OK, json!(stats)),
            Err(e) => unavailable(e),
        },
        (&Method::GET, "/ledger/export") => export(hub).await,
        (&Method::GET, "/ledger/requests") => requests(hub, &query).await,
        (&Method::GET, "/ts43/transfers") => ts43::transfers(hub, &query).await,
        (&Method::GET, "/ts43/carriers") => ts43::carriers(hub),
        (&Method::GET, p) if p.starts_with("/ledger/federations/") => {
            federation(hub, &p["/ledger/federations/".len()..]).await
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no admin endpoint {path}")}),
        ),
    }
}

fn authorized(hub: &Hub, request: &Request<Incoming>) -> bool {
    let snap = hub.snapshot();
    let Some(token) = &snap.config.admin.token else {
        return true;
    };
    request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| token.matches(given.as_bytes()))
}

fn config(hub: &Hub) -> Response<Full<Bytes>> {
    let snap = hub.snapshot();
    let loaded = snap
        .loaded_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    reply(
        StatusCode::OK,
        json!({
            "replica": snap.config.admin.replica_id,
            "version": snap.version,
            "hash": snap.hash,
            "routes_hash": snap.routes_hash,
            "loaded_at": loaded,
            "partners": snap.routes.partners.len(),
            "last_reload_error": hub.last_reload_error(),
        }),
    )
}

fn partners(hub: &Hub) -> Response<Full<Bytes>> {
    let snap = hub.snapshot();
    let list: Vec<serde_json::Value> = snap
        .routes
        .partners
        .iter()
        .map(|p| {
            let functions: serde_json::Map<String, serde_json::Value> = p
                .limits
                .functions
                .iter()
                .map(|(f, l)| (f.to_string(), json!({"rate": l.rate, "burst": l.burst})))
                .collect();
            json!({
                "id": &*p.id,
                "role": p.role.as_str(),
                "identities": p.identities.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
                "counterparts": p.counterparts,
                "migration": p.migration,
                "upstream": format!("{}{}", p.upstream.origin.to_string().trim_end_matches('/'), p.upstream.prefix),
                "limits": {
                    "rate": p.limits.rate.map(|l| json!({"rate": l.rate, "burst": l.burst})),
                    "functions": functions,
                    "max_in_flight": snap.max_in_flight(&p.id),
                },
                "in_flight": hub.limits().in_flight(&p.id),
            })
        })
        .collect();
    reply(StatusCode::OK, json!(list))
}

async fn metrics(hub: &Hub) -> Response<Full<Bytes>> {
    let snap = hub.snapshot();
    let mut gauges = String::new();
    gauge(
        &mut gauges,
        "config_info",
        "The configuration in force (value 1).",
        &[(
            format!(
                "version=\"{}\",hash=\"{}\",routes_hash=\"{}\",replica=\"{}\"",
                snap.version, snap.hash, snap.routes_hash, snap.config.admin.replica_id
            ),
            1.0,
        )],
    );
    let mode = hub.limits().mode();
    gauge(
        &mut gauges,
        "rate_limit_mode",
        "Where rate limits are decided: 1 for the mode in force (redis: global; local: this replica's share).",
        &[Mode::Redis, Mode::Local].map(|m| {
            (
                format!("mode=\"{}\"", m.as_str()),
                f64::from(u8::from(m == mode)),
            )
        }),
    );
    counter(
        &mut gauges,
        "rate_limit_fallbacks_total",
        "Times this replica fell back from Redis to its local share of the rate limits.",
        hub.limits().fallbacks(),
    );
    let in_flight: Vec<(String, f64)> = snap
        .routes
        .partners
        .iter()
        .map(|p| {
            (
                format!("target=\"{}\"", p.id),
                hub.limits().in_flight(&p.id) as f64,
            )
        })
        .collect();
    gauge(
        &mut gauges,
        "in_flight",
        "Requests in flight towards each upstream.",
        &in_flight,
    );
    let per_upstream = |count: fn(&Upstream) -> u64| -> Vec<(String, u64)> {
        snap.upstreams()
            .map(|(id, upstream)| (format!("target=\"{id}\""), count(upstream)))
            .collect()
    };
    gauge(
        &mut gauges,
        "upstream_idle_connections",
        "Keep-alive connections to each upstream (partners and carriers) waiting for a request.",
        &per_upstream(|upstream| upstream.idle_connections() as u64),
    );
    counters(
        &mut gauges,
        "upstream_connections_opened_total",
        "Connections opened to each upstream (TCP connect and TLS handshake), since its pool was built.",
        &per_upstream(Upstream::connections_opened),
    );
    counters(
        &mut gauges,
        "upstream_connection_waits_total",
        "Calls that found no idle connection to the upstream while the most allowed were already opening, and waited.",
        &per_upstream(Upstream::connection_waits),
    );
    gauge(
        &mut gauges,
        "ledger_stopped",
        "1 once the embedded ledger stopped for good after a storage failure (restart the hub once storage is fixed), else 0. A PostgreSQL outage passes by itself and shows in /ready instead.",
        &[(String::new(), f64::from(u8::from(hub.ledger().failure().is_some())))],
    );
    if let Ok(stats) = hub.ledger().stats().await {
        gauge(
            &mut gauges,
            "ledger_federations",
            "Federations in the ledger by state.",
            &[
                (
                    "state=\"reserved\"".into(),
                    stats.federations_reserved as f64,
                ),
                ("state=\"active\"".into(), stats.federations_active as f64),
                ("state=\"invalid\"".into(), stats.federations_invalid as f64),
            ],
        );
        gauge(
            &mut gauges,
            "ledger_requests",
            "Activation-code requests in the ledger by state (open = async, awaiting Send Activation Code).",
            &[
                ("state=\"pending\"".into(), stats.requests_pending as f64),
                ("state=\"open\"".into(), stats.requests_open as f64),
                ("state=\"answering\"".into(), stats.requests_answering as f64),
                ("state=\"closed\"".into(), stats.requests_closed as f64),
            ],
        );
        gauge(
            &mut gauges,
            "ledger_profiles",
            "Profiles known to the ledger.",
            &[(String::new(), stats.profiles as f64)],
        );
    }
    let syncs: Vec<(String, &Histogram)> = hub
        .ledger()
        .sync_times()
        .into_iter()
        .map(|(kind, histogram)| (format!("kind=\"{kind}\""), histogram))
        .collect();
    if !syncs.is_empty() {
        histograms(
            &mut gauges,
            "ledger_sync_seconds",
            "Time the embedded ledger took to make writes durable, by kind: journal (one fdatasync, what durable answers wait for), checkpoint (a sled flush; durable answers arriving meanwhile wait for it).",
            &syncs,
        );
    }
    let body = hub.metrics().render(&gauges);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

async fn federation(hub: &Hub, token: &str) -> Response<Full<Bytes>> {
    let Ok(token) = uuid::Uuid::parse_str(token) else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "the msp_token must be a UUID"}),
        );
    };
    match hub.ledger().federation(token).await {
        Ok(Some(federation)) => match hub.ledger().profiles(token).await {
            Ok(profiles) => reply(
                StatusCode::OK,
                json!({"federation": federation, "profiles": profiles}),
            ),
            Err(e) => unavailable(e),
        },
        Ok(None) => reply(
            StatusCode::NOT_FOUND,
            json!({"error": "no federation with this msp_token"}),
        ),
        Err(e) => unavailable(e),
    }
}

async fn requests(hub: &Hub, query: &str) -> Response<Full<Bytes>> {
    let mut filter = RequestFilter {
        open_only: true,
        partner: None,
        older_than_ms: None,
        now: crate::aid1::lifecycle::now_ms(),
        limit: Some(1000),
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "all" => filter.open_only = !matches!(value, "" | "true" | "1"),
            "partner" => filter.partner = Some(value.to_owned()),
            "older_than_secs" => match value.parse::<u64>() {
                Ok(s) => filter.older_than_ms = Some(s * 1000),
                Err(_) => return bad_query(key),
            },
            "limit" => match value.parse::<usize>() {
                Ok(n) => filter.limit = Some(n),
                Err(_) => return bad_query(key),
            },
            _ => return bad_query(key),
        }
    }
    match hub.ledger().list_requests(&filter).await {
        Ok(list) => reply(StatusCode::OK, json!(list)),
        Err(e) => unavailable(e),
    }
}

async fn export(hub: &Hub) -> Response<Full<Bytes>> {
    let mut out = Vec::new();
    let result = hub
        .ledger()
        .export(&mut |record| {
            serde_json::to_writer(&mut out, &record)
                .map_err(|e| crate::ledger::LedgerError::Storage(e.to_string()))?;
            out.push(b'\n');
            Ok(())
        })
        .await;
    match result {
        Ok(_) => {
            let mut response = Response::new(Full::new(Bytes::from(out)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            );
            response
        }
        Err(e) => unavailable(e),
    }
}

fn bad_query(key: &str) -> Response<Full<Bytes>> {
    reply(
        StatusCode::BAD_REQUEST,
        json!({"error": format!("bad query parameter `{key}` (use all, partner, older_than_secs, limit)")}),
    )
}

fn unavailable(e: crate::ledger::LedgerError) -> Response<Full<Bytes>> {
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": format!("ledger: {e}")}),
    )
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

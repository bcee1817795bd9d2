//! A scripted fake ECS over real TLS (the stage PKI's `ecs` certificate) on a loopback
//! port, for what the real one never does and for exact accounts of what reached the
//! carrier: every request is answered by the test's script, given the request's head.

use bytes::Bytes;
use http::request::Parts;
use http::Response;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

/// A `wap-provisioningdoc` whose `APPLICATION` (ap2009) holds `app`.
pub fn xml(app: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><wap-provisioningdoc version=\"1.1\"><characteristic type=\"VERS\"><parm name=\"version\" value=\"1\"/></characteristic><characteristic type=\"APPLICATION\"><parm name=\"AppID\" value=\"ap2009\"/>{app}</characteristic></wap-provisioningdoc>"
    )
}

/// Starts a fake ECS on a loopback port answering each request with `script` (the body
/// is not read); returns the port.
pub fn start<S, F>(certs: &Path, script: S) -> Result<u16, String>
where
    S: Fn(Parts) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let script = Arc::new(script);
    let (cert, key) = aidhub::pki::partner_server(certs, aidhub::stage::ECS_ENTITY);
    let config = aidhub::tls::device_server_config(&cert, &key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    let port = std_listener.local_addr().map_err(|e| e.to_string())?.port();
    tokio::spawn(async move {
        let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let script = script.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let answer = script(req.into_parts().0);
                    async move { Ok::<_, std::convert::Infallible>(answer.await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok(port)
}

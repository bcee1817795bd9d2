//! The walk every request takes, whatever its protocol, written once:
//!
//! ```text
//! head (identify, authenticate, route) ─► read body (capped) ─► call (validate, ledger check,
//! build the upstream request) ─► forward (pooled mTLS) ─► answer (validate, ledger record,
//! respond) ─► access log
//! ```
//!
//! A [`Protocol`] supplies the protocol knowledge for each phase; this module never reads a
//! protocol field. Once a request is admitted, the forward and the ledger record run to the
//! end whatever the caller does: should the caller hang up, the rest of the walk moves to a
//! task of its own (`Finish`), so the ledger never stops half-way through a lifecycle step.

use crate::access::AccessRecord;
use crate::error::HubError;
use crate::hub::Hub;
use crate::server::ConnInfo;
use crate::snapshot::Snapshot;
use crate::upstream::{Answer, AnswerHeaders, Upstream};
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt as _;
use http::request::Parts;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// What the walk carries between phases.
pub struct Cx {
    /// The hub's shared state (ledger, limits, metrics).
    pub hub: Hub,
    /// The configuration this request runs on, start to end.
    pub snap: Arc<Snapshot>,
    /// The connection it arrived on.
    pub conn: Arc<ConnInfo>,
    /// What the access log will say.
    pub record: AccessRecord,
    /// The protocol error answers are phrased in (set by the protocol's head phase).
    pub dialect: crate::error::Dialect,
}

/// An admitted request, ready to go upstream.
pub struct Outbound<C> {
    /// The protocol's own view of the call, handed back in [`Protocol::answer`].
    pub call: C,
    /// The partner it goes to.
    pub target: Arc<str>,
    /// That partner's upstream, as found in the snapshot when the request was built.
    pub upstream: Arc<Upstream>,
    /// The upstream request (absolute URI, credential set).
    pub request: Request<Bytes>,
    /// Deadline for the whole upstream exchange.
    pub timeout: Duration,
    /// Which of the answer's headers [`Protocol::answer`] reads.
    pub answer_headers: AnswerHeaders,
}

/// The protocol knowledge the walk needs, phase by phase.
pub trait Protocol: Send + Sync + 'static {
    /// What the request head established (caller, function, target).
    type Head: Send + 'static;
    /// What the whole request established.
    type Call: Send + 'static;

    /// Identify and authenticate the caller, recognise the function, pick the target. No body
    /// has been read yet.
    fn head(&self, cx: &mut Cx, parts: &Parts) -> Result<Self::Head, HubError>;

    /// Apply the caller's rate limits (the protocol knows who the caller is and which
    /// function it calls). Asynchronous: the buckets may live in Redis, shared by replicas.
    fn limit(
        &self,
        cx: &mut Cx,
        head: &Self::Head,
    ) -> impl Future<Output = Result<(), HubError>> + Send;

    /// Validate the body, check the ledger, and build the upstream request.
    fn call(
        &self,
        cx: &mut Cx,
        head: Self::Head,
        parts: Parts,
        body: Bytes,
    ) -> impl Future<Output = Result<Outbound<Self::Call>, HubError>> + Send;

    /// Validate the upstream answer, record what it settles, and phrase the response.
    fn answer(
        &self,
        cx: &mut Cx,
        call: Self::Call,
        answer: Answer,
    ) -> impl Future<Output = Result<Response<Full<Bytes>>, HubError>> + Send;

    /// The upstream exchange failed: undo what [`Protocol::call`] reserved.
    fn failed(
        &self,
        cx: &mut Cx,
        call: Self::Call,
        error: &HubError,
    ) -> impl Future<Output = ()> + Send;
}

/// Runs one request through the walk and always produces a response.
pub async fn handle<P: Protocol>(
    protocol: Arc<P>,
    hub: Hub,
    conn: Arc<ConnInfo>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let mut cx = Cx {
        snap: hub.snapshot(),
        hub,
        conn,
        record: AccessRecord::default(),
        dialect: crate::error::Dialect::default(),
    };
    let (parts, body) = request.into_parts();
    let outbound = match admit(&*protocol, &mut cx, parts, body).await {
        Ok(outbound) => outbound,
        Err(error) => {
            let response = respond(Err(error), &mut cx);
            cx.record
                .finish(cx.hub.metrics(), response.status(), started.elapsed());
            return response;
        }
    };
    // From here on the request runs to completion even if the caller goes away, so the
    // ledger never stops half-way through a lifecycle step.
    let rest = boxed_in_place(move || {
        AssertUnwindSafe(async move {
            let result = forward(&*protocol, &mut cx, outbound, started).await;
            let response = respond(result, &mut cx);
            cx.record
                .finish(cx.hub.metrics(), response.status(), started.elapsed());
            response
        })
        .catch_unwind()
    });
    Finish(Some(rest)).await.unwrap_or_else(|panic| {
        let cause = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(%cause, "request walk panicked");
        HubError::Internal(format!("the request walk panicked: {cause}")).response()
    })
}

/// Boxes the future `make` returns, allocating first and writing it into the allocation,
/// which lets the optimizer build it there. `Box::pin(future)` built it on the stack and
/// copied it in whole: a future is as large as its largest state, several KiB for the rest
/// of the walk, and under callgrind's cache simulation that copy missed the first-level
/// cache 52 times per request (VM 56), on memory the request had not touched.
fn boxed_in_place<F>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}

/// The rest of a walk, polled in place by the request's own task; if that task lets go of
/// it before it is done (hyper drops a request's future when its connection closes), the
/// rest is spawned to finish on its own. Cheaper than a task per request, as safe.
struct Finish<F: Future + Send + 'static>(Option<Pin<Box<F>>>);

impl<F: Future + Send + 'static> Future for Finish<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(rest) = self.0.as_mut() else {
            // Only a caller polling a finished future gets here; it never finishes again.
            return Poll::Pending;
        };
        let output = std::task::ready!(rest.as_mut().poll(cx));
        self.0 = None;
        Poll::Ready(output)
    }
}

impl<F: Future + Send + 'static> Drop for Finish<F> {
    fn drop(&mut self) {
        let Some(rest) = self.0.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    rest.await;
                });
            }
            Err(_) => {
                tracing::warn!("a request was abandoned mid-walk with no runtime to finish it")
            }
        }
    }
}

/// Phases before the upstream: head, body, call.
async fn admit<P: Protocol>(
    protocol: &P,
    cx: &mut Cx,
    parts: Parts,
    body: Incoming,
) -> Result<Outbound<P::Call>, HubError> {
    let head = protocol.head(cx, &parts)?;
    protocol.limit(cx, &head).await?;
    let config = &cx.snap.config;
    let body = read_body_within(body, config.max_body_bytes, config.body_timeout).await?;
    protocol.call(cx, head, parts, body).await
}

/// [`read_body`], refused when the body has not all come within `bound`
/// (`listen.body_timeout_secs`): a request in flight keeps its connection open, and a body
/// trickled in a byte at a time would otherwise hold it (and the request's task) forever. A
/// body that came with its head (the usual case) is read without a timer.
async fn read_body_within(
    body: Incoming,
    limit: usize,
    bound: Duration,
) -> Result<Bytes, HubError> {
    let mut reading = std::pin::pin!(read_body(body, limit));
    let first = std::future::poll_fn(|cx| Poll::Ready(reading.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(body) => body,
        Poll::Pending => tokio::time::timeout(bound, reading)
            .await
            .unwrap_or_else(|_| {
                let reason = format!(
                    "the request body did not all arrive within {} s",
                    bound.as_secs()
                );
                Err(HubError::Invalid(crate::aid1::Violation::syntax(
                    "body", reason,
                )))
            }),
    }
}

/// The upstream exchange and the answer phase, for a request whose head was read at
/// `received`.
async fn forward<P: Protocol>(
    protocol: &P,
    cx: &mut Cx,
    outbound: Outbound<P::Call>,
    received: Instant,
) -> Result<Response<Full<Bytes>>, HubError> {
    let Outbound {
        call,
        target,
        upstream,
        request,
        timeout,
        answer_headers,
    } = outbound;
    let gate = match cx
        .hub
        .limits()
        .enter(&target, cx.snap.max_in_flight(&target))
    {
        Ok(gate) => gate,
        Err(error) => {
            protocol.failed(cx, call, &error).await;
            return Err(error);
        }
    };
    let started = Instant::now();
    cx.record.admission = Some(started.duration_since(received));
    let result = upstream
        .exchange(
            request,
            timeout,
            cx.snap.config.max_body_bytes,
            answer_headers,
        )
        .await;
    drop(gate);
    cx.record.upstream = Some(started.elapsed());
    match result {
        Ok(answer) => {
            cx.record.upstream_status = Some(answer.status.as_u16());
            protocol.answer(cx, call, answer).await
        }
        Err(fault) => {
            cx.record.upstream_fault = Some(fault.kind());
            let error = HubError::Upstream {
                partner: target.to_string(),
                fault,
            };
            protocol.failed(cx, call, &error).await;
            Err(error)
        }
    }
}

fn respond(result: Result<Response<Full<Bytes>>, HubError>, cx: &mut Cx) -> Response<Full<Bytes>> {
    match result {
        Ok(response) => response,
        Err(error) => {
            cx.record.refuse(&error);
            error.response_in(&cx.dialect)
        }
    }
}

/// Reads the whole request body, refusing more than `limit` bytes. A body that comes as one
/// frame (the usual case: a small body with its `Content-Length`, read with the head) is
/// passed on as it came; a body in several frames is joined.
async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, HubError> {
    if body.size_hint().lower() > limit as u64 {
        return Err(HubError::BodyTooLarge { limit });
    }
    let mut first = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let reason = format!("the request body could not be read: {e}");
            HubError::Invalid(crate::aid1::Violation::syntax("body", reason))
        })?;
        // Trailers carry nothing the walk reads.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let read = joined.as_ref().map_or(first.len(), BytesMut::len);
        if data.len() > limit - read {
            return Err(HubError::BodyTooLarge { limit });
        }
        match &mut joined {
            Some(joined) => joined.extend_from_slice(&data),
            None if first.is_empty() => first = data,
            None => {
                let mut both = BytesMut::with_capacity(first.len() + data.len());
                both.extend_from_slice(&first);
                both.extend_from_slice(&data);
                joined = Some(both);
            }
        }
    }
    Ok(joined.map_or(first, BytesMut::freeze))
}

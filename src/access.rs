//! The access log: one structured line per request.
//!
//! Phases fill an [`AccessRecord`] as they learn things (caller, function, ids); the walk
//! writes it once at the end. It holds only identifiers, statuses and timings — never a
//! credential, activation code, phone number or account id.

use crate::error::HubError;
use crate::metrics::Metrics;
use http::StatusCode;
use std::sync::Arc;
use std::time::Duration;

/// What one request's log line says.
#[derive(Debug, Default)]
pub struct AccessRecord {
    /// The calling partner, once identified.
    pub caller: Option<Arc<str>>,
    /// The target partner, once resolved.
    pub target: Option<Arc<str>>,
    /// The function's name, once recognised.
    pub function: Option<&'static str>,
    /// `correlation-id`, once read.
    pub correlation_id: Option<uuid::Uuid>,
    /// `CMP-request-id`, once read.
    pub request_id: Option<uuid::Uuid>,
    /// The hub's own error code when the hub answered with an error.
    pub hub_code: Option<u16>,
    /// Why the hub refused or failed, in plain words (no secrets).
    pub cause: Option<String>,
    /// Time from the head read to the upstream exchange's start (forwarded requests only).
    pub admission: Option<Duration>,
    /// Time spent on the upstream exchange.
    pub upstream: Option<Duration>,
    /// The status the upstream answered.
    pub upstream_status: Option<u16>,
    /// How the upstream exchange failed, if it did.
    pub upstream_fault: Option<&'static str>,
    /// Why the hub refused, as a metric label.
    pub reason: Option<&'static str>,
}

impl AccessRecord {
    /// Notes that the hub answered with `error`.
    pub fn refuse(&mut self, error: &HubError) {
        let (status, code) = error.status_and_code();
        self.hub_code = Some(code);
        self.reason = Some(error.reason());
        let detail = match error {
            HubError::Internal(detail) => detail.clone(),
            HubError::Upstream { fault, .. } => fault.to_string(),
            other => other.to_string(),
        };
        if status.is_server_error() {
            tracing::warn!(cause = %detail, code, "request failed");
        }
        self.cause = Some(detail);
    }

    /// Counts the request in the metrics and writes its access-log line.
    pub fn finish(&self, metrics: &Metrics, status: StatusCode, total: Duration) {
        let function = self.function.unwrap_or("-");
        let caller = self.caller.as_ref().unwrap_or_else(|| unknown());
        let target = self.target.as_ref().unwrap_or_else(|| unknown());
        metrics
            .requests
            .inc((caller.clone(), target.clone(), function, status.as_u16()));
        metrics.observe_request(function, total);
        if let Some(admission) = self.admission {
            metrics.observe_admission(function, admission);
        }
        if let Some(upstream) = self.upstream {
            metrics.observe_upstream(target, function, upstream);
        }
        if let Some(kind) = self.upstream_fault {
            metrics.upstream_errors.inc((target.clone(), kind));
        }
        if let (Some(reason), Some(code)) = (self.reason, self.hub_code) {
            metrics.refused.inc((reason, code));
            if reason == "rate_limited" {
                metrics.rate_limited.inc((caller.clone(), function));
            } else if reason == "contract" {
                metrics.upstream_errors.inc((target.clone(), "contract"));
            }
        }
        self.log(status, total);
    }

    /// Writes the access-log line.
    pub fn log(&self, status: StatusCode, total: Duration) {
        tracing::info!(
            target: "aidhub::access",
            status = status.as_u16(),
            caller = self.caller.as_deref().unwrap_or("-"),
            target_id = self.target.as_deref().unwrap_or("-"),
            function = self.function.unwrap_or("-"),
            correlation_id = %OptDisplay(self.correlation_id),
            cmp_request_id = %OptDisplay(self.request_id),
            hub_code = self.hub_code,
            upstream_status = self.upstream_status,
            admission_ms = self.admission.map(|d| d.as_secs_f64() * 1000.0),
            upstream_ms = self.upstream.map(|d| d.as_secs_f64() * 1000.0),
            total_ms = total.as_secs_f64() * 1000.0,
            cause = self.cause.as_deref(),
            "request"
        );
    }
}

/// The label of a caller or target not (yet) known.
fn unknown() -> &'static Arc<str> {
    static UNKNOWN: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    UNKNOWN.get_or_init(|| Arc::from("-"))
}

struct OptDisplay<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for OptDisplay<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
    }
}

//! `[[carrier]]` tables of `routes.toml`: the carriers whose TS.43 entitlement servers (ECS)
//! devices reach through the hub, validated into [`Carrier`]s with located errors.
//!
//! A carrier has a base path on the device-facing listener (`/ts43/{carrier}` by
//! convention), the URL of its ECS (https only), the trust anchors for the ECS certificate,
//! an optional client certificate when the carrier wants mutual TLS from the hub, the
//! normalisation switches the hub applies for Android phones, and its limits.

use super::raw::{RawCarrier, RawCarrierLimits, RawNormalise};
use super::{ConfigError, LimitSpec};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// One validated carrier.
#[derive(Debug)]
pub struct Carrier {
    /// Its id (`[A-Za-z0-9]`, 1–64), also the metric label.
    pub id: Arc<str>,
    /// The path devices use as their entitlement server URL, e.g. `/ts43/acme`.
    pub base_path: String,
    /// The ECS: origin and path prefix.
    pub ecs: EcsSpec,
    /// What the hub smooths over for Android phones.
    pub normalise: Normalise,
    /// Rate limits and the in-flight cap.
    pub limits: CarrierLimits,
    /// Deadline for one upstream exchange.
    pub timeout: Duration,
}

/// Where a carrier's ECS is and how the hub reaches it.
#[derive(Debug, Clone)]
pub struct EcsSpec {
    /// Scheme and authority, e.g. `https://127.0.0.1:9443`.
    pub origin: http::Uri,
    /// Path without a trailing slash (may be empty: the ECS answers at `/`).
    pub path: String,
    /// Trust anchors for the ECS certificate.
    pub ca: Vec<PathBuf>,
    /// The hub's client certificate and key for this ECS, when it asks for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// TLS name to verify, when it differs from the URL's host.
    pub server_name: Option<String>,
}

/// The per-carrier normalisation switches (all on by default: they only act when the
/// carrier's answer needs them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalise {
    /// Ask the ECS for XML on ODSA operations (the AOSP ODSA parser reads XML only).
    pub xml_for_odsa: bool,
    /// Base64-encode a `ProfileActivationCode` sent as raw text.
    pub base64_activation_code: bool,
    /// Minutes of `PollingInterval` added when ServiceStatus is 2 without one (0: off).
    pub polling_interval_minutes: u32,
    /// Keep a temporary token usable for all its targets until it expires, even when the
    /// ECS spends it on first use (bridged with the source's session).
    pub keep_temporary_token: bool,
    /// Give answers on a temporary token a `TOKEN` the older AOSP client can poll with.
    pub token_for_older_clients: bool,
    /// Turn a business outcome sent with a non-200 status into HTTP 200.
    pub business_outcomes_as_200: bool,
}

impl Default for Normalise {
    fn default() -> Normalise {
        Normalise {
            xml_for_odsa: true,
            base64_activation_code: true,
            polling_interval_minutes: 1,
            keep_temporary_token: true,
            token_for_older_clients: true,
            business_outcomes_as_200: true,
        }
    }
}

/// A carrier's limits.
#[derive(Debug, Clone, Default)]
pub struct CarrierLimits {
    /// All devices of this carrier together.
    pub rate: Option<LimitSpec>,
    /// Each device (`terminal_id`, hashed) on its own.
    pub device: Option<LimitSpec>,
    /// Requests in flight towards the ECS.
    pub max_in_flight: Option<usize>,
}

/// Validates every `[[carrier]]`; `partner_ids` are the partners' ids (the two share the
/// upstream namespace).
pub fn carriers(
    raw: &[RawCarrier],
    partner_ids: &[&str],
    base: &Path,
    file: &str,
    errors: &mut ConfigError,
) -> Vec<Arc<Carrier>> {
    let mut out = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    let mut paths = std::collections::BTreeSet::new();
    for (i, c) in raw.iter().enumerate() {
        let at = format!("carrier[{i}] ({})", c.id);
        if !ids.insert(c.id.as_str()) {
            errors.push(file, &at, "duplicate carrier id");
        }
        if partner_ids.contains(&c.id.as_str()) {
            errors.push(file, &at, "a partner already has this id");
        }
        if let Some(carrier) = carrier(c, base, file, &at, errors) {
            if !paths.insert(carrier.base_path.clone()) {
                errors.push(
                    file,
                    &format!("{at}.base_path"),
                    "another carrier has this base path",
                );
            }
            out.push(Arc::new(carrier));
        }
    }
    out
}

fn carrier(
    c: &RawCarrier,
    base: &Path,
    file: &str,
    at: &str,
    errors: &mut ConfigError,
) -> Option<Carrier> {
    let before = errors.problems.len();
    if c.id.is_empty() || c.id.len() > 64 || !c.id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        errors.push(file, at, "id must be 1-64 characters [A-Za-z0-9]");
    }
    let base_path = c
        .base_path
        .clone()
        .unwrap_or_else(|| format!("/ts43/{}", c.id));
    let path_ok = base_path.starts_with('/')
        && base_path.len() > 1
        && !base_path.ends_with('/')
        && base_path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
        && !base_path.contains("//");
    if !path_ok {
        errors.push(
            file,
            &format!("{at}.base_path"),
            "must be an absolute path like /ts43/acme ([A-Za-z0-9/-_.], no trailing slash)",
        );
    }
    let (origin, path) = ecs_url(&c.ecs_url)
        .map_err(|e| errors.push(file, &format!("{at}.ecs_url"), e))
        .unwrap_or_default();
    if c.ecs_ca.is_empty() {
        errors.push(
            file,
            &format!("{at}.ecs_ca"),
            "at least one trust anchor is needed",
        );
    }
    let client_cert = match (&c.client_cert, &c.client_key) {
        (Some(cert), Some(key)) => Some((base.join(cert), base.join(key))),
        (None, None) => None,
        _ => {
            errors.push(
                file,
                at,
                "client_cert and client_key come together (mutual TLS towards the ECS)",
            );
            None
        }
    };
    let normalise = normalise(
        c.normalise.as_ref(),
        file,
        &format!("{at}.normalise"),
        errors,
    );
    let limits = limits(&c.limits, file, &format!("{at}.limits"), errors);
    let timeout_ms = c.timeout_ms.unwrap_or(10_000);
    if timeout_ms == 0 {
        errors.push(file, &format!("{at}.timeout_ms"), "must be > 0");
    }
    if errors.problems.len() > before {
        return None;
    }
    Some(Carrier {
        id: Arc::from(c.id.as_str()),
        base_path,
        ecs: EcsSpec {
            origin,
            path,
            ca: c.ecs_ca.iter().map(|p| base.join(p)).collect(),
            client_cert,
            server_name: c.server_name.clone(),
        },
        normalise,
        limits,
        timeout: Duration::from_millis(timeout_ms),
    })
}

fn normalise(
    raw: Option<&RawNormalise>,
    file: &str,
    at: &str,
    errors: &mut ConfigError,
) -> Normalise {
    let d = Normalise::default();
    let Some(raw) = raw else { return d };
    let minutes = raw
        .polling_interval_minutes
        .unwrap_or(d.polling_interval_minutes);
    if minutes > 1440 {
        errors.push(
            file,
            &format!("{at}.polling_interval_minutes"),
            "must be 0 (off) to 1440 minutes",
        );
    }
    Normalise {
        xml_for_odsa: raw.xml_for_odsa.unwrap_or(d.xml_for_odsa),
        base64_activation_code: raw
            .base64_activation_code
            .unwrap_or(d.base64_activation_code),
        polling_interval_minutes: minutes,
        keep_temporary_token: raw.keep_temporary_token.unwrap_or(d.keep_temporary_token),
        token_for_older_clients: raw
            .token_for_older_clients
            .unwrap_or(d.token_for_older_clients),
        business_outcomes_as_200: raw
            .business_outcomes_as_200
            .unwrap_or(d.business_outcomes_as_200),
    }
}

fn limits(raw: &RawCarrierLimits, file: &str, at: &str, errors: &mut ConfigError) -> CarrierLimits {
    let mut spec = |rate: Option<f64>, burst: Option<u32>, key: &str| match (rate, burst) {
        (Some(rate), burst) if rate.is_finite() && rate > 0.0 && burst != Some(0) => {
            Some(LimitSpec {
                rate,
                burst: burst.unwrap_or((rate.ceil() as u32).max(1)),
            })
        }
        (Some(_), _) => {
            errors.push(
                file,
                &format!("{at}.{key}"),
                "rate must be a positive number per second, burst at least 1",
            );
            None
        }
        (None, Some(_)) => {
            errors.push(file, &format!("{at}.{key}"), "a burst needs a rate");
            None
        }
        (None, None) => None,
    };
    let rate = spec(raw.rate, raw.burst, "rate");
    let device = spec(raw.device_rate, raw.device_burst, "device_rate");
    if raw.max_in_flight == Some(0) {
        errors.push(file, &format!("{at}.max_in_flight"), "must be at least 1");
    }
    CarrierLimits {
        rate,
        device,
        max_in_flight: raw.max_in_flight.map(|n| n.max(1) as usize),
    }
}

/// Splits an ECS URL into origin and path; https only, no query or fragment.
fn ecs_url(url: &str) -> Result<(http::Uri, String), String> {
    super::https_origin(url, "device data crosses it")
}

//! The touchpoint directory: the browser redirects of AID.02 4.1, 4.2, 7.1 and 7.2, carried
//! through the hub so that each partner registers its onboarding pages and agreed redirect
//! domains once (`[partner.touchpoint]` in `routes.toml`) instead of with every counterpart.
//!
//! It is a directory, not a proxy: the hub answers every request itself, with a `302` to a
//! checked address or a refusal page ([`page`]); nothing is forwarded and nothing goes
//! through the AID1 walk of [`crate::proxy`]. It is served on the browser-facing listener
//! (`listen.browsers`: server TLS, no client certificate).
//!
//! | endpoint | spec | checks | answer |
//! |---|---|---|---|
//! | `GET /touchpoints/{msp}/onboarding?from={cmp}&id=…&redirect_uri=…[&env=…]` | 7.1 Redirect to MSP Content | `redirect_uri` in the CMP's domains; `id` signed by the CMP for this MSP, unexpired | `302` to the MSP's page `?id=…&redirect_uri=…` |
//! | `GET /touchpoints/{cmp}/onboarding?from={msp}&redirect_uri=…[&env=…]` | 7.1 Redirect to CMP content | `redirect_uri` in the MSP's domains | `302` to the CMP's page `?redirect_uri=…` |
//! | `GET /touchpoints/{msp}/return?from={cmp}&redirect_uri=…&id=…` | 7.2.1 | `redirect_uri` in the MSP's domains; `id` as above | `302` to `redirect_uri` + `&id=…` |
//! | `GET /touchpoints/{msp}/return?from={cmp}&redirect_uri=…&code=…[&error=…]` | 7.2.2 | `redirect_uri` as above; `code` a 5.5 code; `error` printable, ≤ 512 | `302` to `redirect_uri` + `&code=…&error=…` |
//!
//! Every request, in this order (`walk`): the path names an endpoint and a partner of the
//! directory (else 404) → GET or HEAD (else 405) → the query ([`query`]: known names, each
//! once, bounded, no control characters; else 400) → `from` is a partner of the directory
//! with the other role (else 403) and both partners' `counterparts` permit the pair (else
//! 403) → `env` → `redirect_uri` ([`urls`]: https, no userinfo or fragment, else 400; host
//! in the agreed domains, else 403) → the account id or code → the `Location`, built from
//! the parsed URL. Each answer is counted in `aidhub_touchpoint_redirects_total` and logged
//! (target `aidhub::touchpoints`) without account ids or full URLs.

pub mod page;
pub mod query;
pub mod refusal;
pub mod urls;

use crate::account_id;
use crate::aid1::Role;
use crate::config::{Environment, Partner};
use crate::error;
use crate::hub::Hub;
use crate::metrics::Label;
use crate::snapshot::Snapshot;
use bytes::Bytes;
use http::{Method, Response, Uri};
use http_body_util::Full;
use query::Query;
pub use refusal::{ParamProblem, Refusal};
use std::sync::Arc;
use url::Url;

/// Error codes a CMP may send back in 7.2.2: the table of AID.02 5.5, and the range it
/// reserves for proprietary codes (200–300).
pub const RETURN_CODES: &[u16] = &[
    10, 11, 12, 19, 20, 21, 23, 24, 29, 30, 31, 39, 44, 47, 48, 49, 50, 51, 59, 60, 61, 62, 63, 64,
    65, 90, 91, 92, 93, 94, 100, 101, 102, 103,
];

/// Which redirect a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leg {
    /// 7.1 Redirect to MSP Content (onboarding via a CMP touchpoint).
    ToMsp,
    /// 7.1 Redirect to CMP content (onboarding via an MSP touchpoint).
    ToCmp,
    /// 7.2 Redirect back to MSP content.
    BackToMsp,
}

impl Leg {
    /// The metric label (`kind`).
    pub fn label(self) -> &'static str {
        match self {
            Leg::ToMsp => "to_msp",
            Leg::ToCmp => "to_cmp",
            Leg::BackToMsp => "back_to_msp",
        }
    }

    /// The query parameters it takes.
    fn parameters(self) -> &'static [&'static str] {
        match self {
            Leg::ToMsp => &["from", "id", "redirect_uri", "env"],
            Leg::ToCmp => &["from", "redirect_uri", "env"],
            Leg::BackToMsp => &["from", "redirect_uri", "id", "code", "error"],
        }
    }
}

/// What the walk learnt, for the page, the metric and the log.
#[derive(Default)]
struct Cx {
    to: Option<Arc<Partner>>,
    from: Option<Arc<Partner>>,
    leg: Option<Leg>,
    env: Option<Environment>,
}

/// Answers one browser request.
pub fn respond(hub: &Hub, method: &Method, uri: &Uri) -> Response<Full<Bytes>> {
    let snap = hub.snapshot();
    let mut cx = Cx::default();
    let outcome = walk(&snap, &mut cx, method, uri, now_unix()).and_then(|url| {
        let response = page::redirect(&url)?;
        Ok((url, response))
    });
    let label = |p: &Option<Arc<Partner>>| -> Label {
        p.as_ref()
            .map_or_else(|| Arc::from("unknown"), |p| p.id.clone())
    };
    let kind = cx.leg.map_or("unknown", Leg::label);
    let result = match &outcome {
        Ok(_) => "redirected",
        Err(refusal) => refusal.outcome(),
    };
    hub.metrics()
        .touchpoint_redirects
        .inc((label(&cx.from), label(&cx.to), kind, result));
    match outcome {
        Ok((url, response)) => {
            tracing::info!(
                target: "aidhub::touchpoints",
                from = %label(&cx.from),
                to = %label(&cx.to),
                kind,
                host = url.host_str().unwrap_or_default(),
                "redirected"
            );
            response
        }
        Err(refusal) => {
            let (status, _) = error::touchpoint_status_and_code(&refusal);
            tracing::info!(
                target: "aidhub::touchpoints",
                from = %label(&cx.from),
                to = %label(&cx.to),
                kind,
                outcome = result,
                status = status.as_u16(),
                cause = %refusal,
                "refused"
            );
            let parties = page::Parties {
                from: cx.from.as_deref(),
                to: cx.to.as_deref(),
                env: cx.env.unwrap_or(Environment::Production),
            };
            page::refusal(status, &refusal, &parties)
        }
    }
}

/// The checks of one request, in order; the address to send the browser to.
fn walk(
    snap: &Snapshot,
    cx: &mut Cx,
    method: &Method,
    uri: &Uri,
    now: u64,
) -> Result<Url, Refusal> {
    let (id, endpoint) = route(uri.path())?;
    if method != Method::GET && method != Method::HEAD {
        return Err(Refusal::Method);
    }
    let to = listed(snap, id).ok_or_else(|| Refusal::unknown_partner(id))?;
    cx.to = Some(to.clone());
    let leg = match (endpoint, to.role) {
        (Endpoint::Onboarding, Role::Msp) => Leg::ToMsp,
        (Endpoint::Onboarding, Role::Cmp) => Leg::ToCmp,
        (Endpoint::Return, Role::Msp) => Leg::BackToMsp,
        (Endpoint::Return, Role::Cmp) => {
            return Err(Refusal::NotAnMsp {
                id: to.id.to_string(),
            })
        }
    };
    cx.leg = Some(leg);
    let query = Query::parse(uri.query(), leg.parameters());
    let from_id = query.require("from")?;
    let from = listed(snap, from_id).ok_or_else(|| Refusal::unknown_from(from_id))?;
    cx.from = Some(from.clone());
    agreement(&from, &to)?;
    cx.env = Some(environment(&query)?);
    query.check()?;
    match leg {
        Leg::ToMsp => to_msp(&query, &from, &to, cx.env, now),
        Leg::ToCmp => to_cmp(&query, &from, &to, cx.env),
        Leg::BackToMsp => back_to_msp(&query, &from, &to, now),
    }
}

/// The two endpoints under `/touchpoints/{partner}/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Onboarding,
    Return,
}

/// `/touchpoints/{partner}/onboarding` or `/touchpoints/{partner}/return`.
fn route(path: &str) -> Result<(&str, Endpoint), Refusal> {
    let rest = path
        .strip_prefix("/touchpoints/")
        .ok_or(Refusal::NoEndpoint)?;
    let (id, endpoint) = rest.split_once('/').ok_or(Refusal::NoEndpoint)?;
    let endpoint = match endpoint {
        "onboarding" => Endpoint::Onboarding,
        "return" => Endpoint::Return,
        _ => return Err(Refusal::NoEndpoint),
    };
    if id.is_empty() {
        return Err(Refusal::NoEndpoint);
    }
    Ok((id, endpoint))
}

/// A partner of the touchpoint directory.
fn listed(snap: &Snapshot, id: &str) -> Option<Arc<Partner>> {
    snap.partner(id).filter(|p| p.touchpoint.is_some()).cloned()
}

/// `from` is of the other role, and both partners' `counterparts` permit the pair.
fn agreement(from: &Partner, to: &Partner) -> Result<(), Refusal> {
    if from.role != to.role.other() {
        return Err(Refusal::wrong_role(&from.id, to.role.other()));
    }
    if !(from.permits(&to.id) && to.permits(&from.id)) {
        return Err(Refusal::NoAgreement {
            from: from.id.to_string(),
            to: to.id.to_string(),
        });
    }
    Ok(())
}

/// `env`: `production` (the default) or `preproduction`.
fn environment(query: &Query) -> Result<Environment, Refusal> {
    match query.get("env") {
        None => Ok(Environment::Production),
        Some(text) => {
            Environment::parse(text).ok_or_else(|| Refusal::parameter("env", ParamProblem::Invalid))
        }
    }
}

/// `redirect_uri`, checked against `owner`'s agreed domains.
fn redirect_uri(query: &Query, owner: &Partner) -> Result<Url, Refusal> {
    let text = query.require("redirect_uri")?;
    let domains = owner
        .touchpoint
        .as_ref()
        .map_or(&[][..], |t| &t.redirect_domains[..]);
    urls::check_redirect(text, domains).map_err(|problem| Refusal::Redirect {
        problem,
        owner: owner.id.to_string(),
    })
}

/// Verifies an account id signed by `cmp` for `msp`.
fn account_id(id: &str, cmp: &Partner, msp: &Partner, now: u64) -> Result<(), Refusal> {
    let secret = cmp
        .account_id_secret_for(&msp.id)
        .ok_or_else(|| Refusal::NoAgreement {
            from: cmp.id.to_string(),
            to: msp.id.to_string(),
        })?;
    account_id::verify(id, secret.expose(), now)
        .map(|_| ())
        .map_err(Refusal::AccountId)
}

/// `to`'s page for `env`.
fn page_of(to: &Partner, env: Option<Environment>) -> Result<Url, Refusal> {
    to.touchpoint
        .as_ref()
        .and_then(|t| t.page(env.unwrap_or(Environment::Production)))
        .cloned()
        .ok_or_else(|| Refusal::NoPage {
            id: to.id.to_string(),
        })
}

/// 7.1, onboarding via a CMP touchpoint: to the MSP's page with `id` and `redirect_uri`.
fn to_msp(
    query: &Query,
    cmp: &Partner,
    msp: &Partner,
    env: Option<Environment>,
    now: u64,
) -> Result<Url, Refusal> {
    let back = redirect_uri(query, cmp)?;
    let id = query.require("id")?;
    account_id(id, cmp, msp, now)?;
    let mut page = page_of(msp, env)?;
    urls::append_query(&mut page, &[("id", id), ("redirect_uri", back.as_str())]);
    Ok(page)
}

/// 7.1, onboarding via an MSP touchpoint: to the CMP's page with `redirect_uri`.
fn to_cmp(
    query: &Query,
    msp: &Partner,
    cmp: &Partner,
    env: Option<Environment>,
) -> Result<Url, Refusal> {
    let back = redirect_uri(query, msp)?;
    let mut page = page_of(cmp, env)?;
    urls::append_query(&mut page, &[("redirect_uri", back.as_str())]);
    Ok(page)
}

/// 7.2, back to the MSP: `redirect_uri` with `id` (7.2.1) or `code` and `error` (7.2.2)
/// appended after its own query.
fn back_to_msp(query: &Query, cmp: &Partner, msp: &Partner, now: u64) -> Result<Url, Refusal> {
    let mut back = redirect_uri(query, msp)?;
    match (query.get("id"), query.get("code")) {
        (Some(id), None) => {
            if query.get("error").is_some() {
                return Err(Refusal::parameter("error", ParamProblem::Invalid));
            }
            account_id(id, cmp, msp, now)?;
            urls::append_query(&mut back, &[("id", id)]);
        }
        (None, Some(code)) => {
            let code = return_code(code)?.to_string();
            let mut pairs = vec![("code", code.as_str())];
            if let Some(error) = query.get("error") {
                pairs.push(("error", error));
            }
            urls::append_query(&mut back, &pairs);
        }
        (Some(_), Some(_)) => return Err(Refusal::parameter("code", ParamProblem::Invalid)),
        (None, None) => return Err(Refusal::parameter("id", ParamProblem::Missing)),
    }
    Ok(back)
}

/// A 7.2.2 `code`: one of [`RETURN_CODES`] or 200–300, as 1–3 digits.
fn return_code(text: &str) -> Result<u16, Refusal> {
    let invalid = || Refusal::parameter("code", ParamProblem::Invalid);
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let code: u16 = text.parse().map_err(|_| invalid())?;
    if RETURN_CODES.contains(&code) || (200..=300).contains(&code) {
        Ok(code)
    } else {
        Err(invalid())
    }
}

fn now_unix() -> u64 {
    crate::aid1::lifecycle::now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_a_partner_and_an_endpoint() {
        assert_eq!(
            route("/touchpoints/mspalpha/onboarding"),
            Ok(("mspalpha", Endpoint::Onboarding))
        );
        assert_eq!(
            route("/touchpoints/mspalpha/return"),
            Ok(("mspalpha", Endpoint::Return))
        );
        for bad in [
            "/",
            "/touchpoints/",
            "/touchpoints//onboarding",
            "/touchpoints/mspalpha",
            "/touchpoints/mspalpha/onboarding/",
            "/touchpoints/mspalpha/other",
            "/touchpoints/a/b/onboarding",
        ] {
            assert_eq!(route(bad), Err(Refusal::NoEndpoint), "{bad}");
        }
    }

    #[test]
    fn return_codes_are_the_specs() {
        for ok in [
            "100", "101", "102", "103", "10", "11", "19", "200", "300", "010",
        ] {
            assert!(return_code(ok).is_ok(), "{ok}");
        }
        for bad in [
            "0", "13", "104", "199", "301", "999", "-1", "+100", "1e2", " 100",
        ] {
            assert!(return_code(bad).is_err(), "{bad}");
        }
    }
}

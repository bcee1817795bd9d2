//! What the browser receives: a `302` to a checked address, or a small refusal page.
//!
//! The refusal page is self-contained (no external assets, no script), in English with a
//! `lang` attribute, a title, one heading and plain words; dark text on white (contrast well
//! above WCAG AA) and a visible focus outline on its one link. It says what went wrong and,
//! when the hub knows a safe way back — the `from` partner's *registered* page, never the
//! unchecked `redirect_uri` — offers it. Everything that came from the request is
//! HTML-escaped. Both kinds of answer forbid caching and referrers; pages also carry a CSP
//! that allows nothing but their inline style, and `nosniff`.

use super::refusal::{ParamProblem, Refusal};
use crate::account_id::AccountIdError;
use crate::config::{Environment, Partner};
use crate::touchpoints::urls::RedirectProblem;
use bytes::Bytes;
use http::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS,
};
use http::{Response, StatusCode};
use http_body_util::Full;
use url::Url;

/// The partners a request named, as far as they are known.
#[derive(Clone, Copy, Debug)]
pub struct Parties<'a> {
    /// The partner that sent the browser (`from`).
    pub from: Option<&'a Partner>,
    /// The partner of the path.
    pub to: Option<&'a Partner>,
    /// The environment asked for.
    pub env: Environment,
}

/// The `302 Found` to `location` (already checked and re-serialised).
pub fn redirect(location: &Url) -> Result<Response<Full<Bytes>>, Refusal> {
    // A serialised URL is visible ASCII, which is always a valid header value.
    let location = HeaderValue::from_str(location.as_str()).map_err(|_| Refusal::Internal)?;
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::FOUND;
    let headers = response.headers_mut();
    headers.insert(LOCATION, location);
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Ok(response)
}

/// The refusal page for `refusal`, with `status`.
pub fn refusal(status: StatusCode, refusal: &Refusal, parties: &Parties) -> Response<Full<Bytes>> {
    let (heading, text) = explain(refusal, parties);
    let html = render(&heading, &text, way_back(parties), refusal.outcome());
    let mut response = Response::new(Full::new(Bytes::from(html)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if *refusal == Refusal::Method {
        headers.insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    response
}

/// Escapes text for HTML content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A partner's name as users know it, escaped.
fn name(partner: Option<&Partner>, fallback: &str) -> String {
    match partner {
        Some(p) => escape(p.touchpoint.as_ref().map_or(&*p.id, |t| t.name.as_str())),
        None => escape(fallback),
    }
}

/// The `from` partner's registered page (the asked environment's, else production's).
fn way_back<'a>(parties: &Parties<'a>) -> Option<(String, &'a Url)> {
    let from = parties.from?;
    let touchpoint = from.touchpoint.as_ref()?;
    let page = touchpoint
        .page(parties.env)
        .unwrap_or(&touchpoint.login_url);
    Some((escape(&touchpoint.name), page))
}

/// Heading and paragraph (already escaped HTML) for a refusal.
fn explain(refusal: &Refusal, parties: &Parties) -> (String, String) {
    let from = name(parties.from, "the service you came from");
    let to = name(parties.to, "the service you chose");
    let start_again = "Please go back to where you started and try again.";
    let (heading, text) = match refusal {
        Refusal::NoEndpoint | Refusal::NotAnMsp { .. } | Refusal::Method => (
            "Page not found".to_owned(),
            format!("There is no onboarding page at this address. {start_again}"),
        ),
        Refusal::UnknownPartner { id } => (
            "We could not find this service".to_owned(),
            format!(
                "The link names a service (“{}”) that is not connected to this onboarding directory. {start_again}",
                escape(id)
            ),
        ),
        Refusal::NoPage { .. } => (
            "This test page is not available".to_owned(),
            format!("{to} has not registered a pre-production (test) page. {start_again}"),
        ),
        Refusal::QueryTooLong | Refusal::Parameter { .. } => (
            "This link is incomplete or damaged".to_owned(),
            format!("{} {start_again}", parameter_words(refusal)),
        ),
        Refusal::UnknownFrom { id } => (
            "We could not find this service".to_owned(),
            format!(
                "The link says it comes from “{}”, which is not connected to this onboarding directory. {start_again}",
                escape(id)
            ),
        ),
        Refusal::WrongRole { .. } | Refusal::NoAgreement { .. } => (
            "These services are not linked".to_owned(),
            format!(
                "{from} and {to} have no agreement to link your accounts, so we cannot continue."
            ),
        ),
        Refusal::Redirect { problem, owner } => {
            let owner = if parties.to.is_some_and(|p| *p.id == **owner) {
                to
            } else {
                from.clone()
            };
            match problem {
                RedirectProblem::NotAgreed => (
                    "We stopped an unsafe redirect".to_owned(),
                    format!(
                        "The link asks us to send you on to an address that {owner} has not registered with us, so we did not follow it."
                    ),
                ),
                _ => (
                    "This link is incomplete or damaged".to_owned(),
                    format!(
                        "The address to return to is not a valid secure (https) web address, so we did not follow it. {start_again}"
                    ),
                ),
            }
        }
        Refusal::AccountId(AccountIdError::Expired) => (
            "This link has expired".to_owned(),
            format!("The link is valid for a short time only. Please go back to {from} and start again."),
        ),
        Refusal::AccountId(_) => (
            "This link could not be verified".to_owned(),
            format!(
                "We could not confirm that this link was issued by {from}, so we did not continue. {start_again}"
            ),
        ),
        Refusal::Internal => (
            "Something went wrong".to_owned(),
            format!("We could not continue because of a fault on our side. {start_again}"),
        ),
    };
    (heading, text)
}

fn parameter_words(refusal: &Refusal) -> String {
    let Refusal::Parameter { name, problem } = refusal else {
        return "The link is longer than we accept.".to_owned();
    };
    let name = escape(name);
    match problem {
        ParamProblem::Missing => format!("The link lacks the value “{name}”."),
        ParamProblem::Duplicate => format!("The link gives the value “{name}” more than once."),
        ParamProblem::Unknown => format!("The link carries a value we do not know (“{name}”)."),
        ParamProblem::Empty => format!("The value “{name}” in the link is empty."),
        ParamProblem::TooLong => format!("The value “{name}” in the link is too long."),
        ParamProblem::Unprintable => {
            format!("The value “{name}” in the link contains characters that are not allowed.")
        }
        ParamProblem::Invalid => format!("The value “{name}” in the link is not valid."),
    }
}

const STYLE: &str = "body{margin:0;font:1.125rem/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;color:#1a1a1a;background:#fff}\
main{max-width:36rem;margin:3rem auto;padding:0 1.25rem}\
h1{font-size:1.6rem;line-height:1.25;margin:0 0 1rem}\
a{color:#0645ad;text-decoration:underline}\
a:focus{outline:3px solid #1a1a1a;outline-offset:2px}\
.ref{margin-top:2rem;font-size:.9rem;color:#4a4a4a}";

fn render(heading: &str, text: &str, back: Option<(String, &Url)>, reference: &str) -> String {
    let back = match back {
        Some((name, url)) => format!(
            "<p><a href=\"{}\">Go back to {name}</a></p>\n",
            escape(url.as_str())
        ),
        None => String::new(),
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{heading}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <h1>{heading}</h1>\n<p>{text}</p>\n{back}\
         <p class=\"ref\">If you contact support, mention the reference <code>{reference}</code>.</p>\n\
         </main>\n</body>\n</html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }

    #[test]
    fn pages_escape_what_the_request_said() {
        let parties = Parties {
            from: None,
            to: None,
            env: Environment::Production,
        };
        let refusal = Refusal::UnknownPartner {
            id: "<img src=x onerror=alert(1)>".into(),
        };
        let response = super::refusal(StatusCode::NOT_FOUND, &refusal, &parties);
        assert_eq!(response.status(), 404);
        assert!(response.headers().get(LOCATION).is_none());
        let html = render_body(&refusal, &parties);
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(!html.contains("<img"), "{html}");
        assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
        assert!(html.contains("<title>We could not find this service</title>"));
        assert!(!html.contains("Go back to"), "no way back is known");
    }

    fn render_body(refusal: &Refusal, parties: &Parties) -> String {
        let (heading, text) = explain(refusal, parties);
        render(&heading, &text, way_back(parties), refusal.outcome())
    }

    #[test]
    fn redirects_carry_no_cache_and_no_referrer() {
        let url = Url::parse("https://www.cmp.example/return?foo=bar&id=x").unwrap();
        let response = redirect(&url).unwrap();
        assert_eq!(response.status(), 302);
        assert_eq!(response.headers()[LOCATION], url.as_str());
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(response.headers()[REFERRER_POLICY], "no-referrer");
    }
}

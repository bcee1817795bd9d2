//! `[partner.touchpoint]`: a partner's entry in the touchpoint directory — its onboarding
//! pages (production and pre-production, AID.02 7.1: "the MSP will provide this information
//! to the CMP for pre-production and production environment") and the redirect domains
//! agreed for it — validated into a [`Touchpoint`]. The domain rules themselves live in
//! [`crate::touchpoints::urls`].

use super::raw::RawTouchpoint;
use super::ConfigError;
use crate::touchpoints::urls::{self, DomainPattern};
use url::Url;

/// Longest display name shown on refusal pages.
pub const NAME_MAX: usize = 80;

/// A partner's validated touchpoint entry.
#[derive(Debug, Clone)]
pub struct Touchpoint {
    /// What users are told the partner is called.
    pub name: String,
    /// The production onboarding page.
    pub login_url: Url,
    /// The pre-production onboarding page, if registered.
    pub preproduction_login_url: Option<Url>,
    /// The agreed redirect domains.
    pub redirect_domains: Vec<DomainPattern>,
}

/// Which of a partner's pages a redirect goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// `login_url` (the default).
    Production,
    /// `preproduction_login_url` (`env=preproduction`).
    Preproduction,
}

impl Environment {
    /// The `env` query value: `production` or `preproduction`.
    pub fn parse(text: &str) -> Option<Environment> {
        match text {
            "production" => Some(Environment::Production),
            "preproduction" => Some(Environment::Preproduction),
            _ => None,
        }
    }
}

impl Touchpoint {
    /// The onboarding page for `env`, if registered.
    pub fn page(&self, env: Environment) -> Option<&Url> {
        match env {
            Environment::Production => Some(&self.login_url),
            Environment::Preproduction => self.preproduction_login_url.as_ref(),
        }
    }
}

/// Validates one `[partner.touchpoint]` table of partner `id`; problems go to `errors`
/// located at `at` (e.g. `partner[2] (cmpone).touchpoint`).
pub(super) fn touchpoint(
    raw: &RawTouchpoint,
    id: &str,
    file: &str,
    at: &str,
    errors: &mut ConfigError,
) -> Option<Touchpoint> {
    let before = errors.problems.len();
    let name = raw.name.clone().unwrap_or_else(|| id.to_owned());
    if name.trim().is_empty()
        || name.chars().count() > NAME_MAX
        || name.chars().any(char::is_control)
    {
        errors.push(
            file,
            &format!("{at}.name"),
            format_args!("must be 1-{NAME_MAX} printable characters"),
        );
    }
    let page = |text: &str, key: &str, errors: &mut ConfigError| {
        urls::parse_page(text)
            .map_err(|e| errors.push(file, &format!("{at}.{key}"), e))
            .ok()
    };
    let login_url = page(&raw.login_url, "login_url", errors);
    let preproduction_login_url = raw
        .preproduction_login_url
        .as_deref()
        .and_then(|text| page(text, "preproduction_login_url", errors));
    if raw.redirect_domains.is_empty() {
        errors.push(
            file,
            &format!("{at}.redirect_domains"),
            "at least one agreed domain is needed (remove the table to leave the directory)",
        );
    }
    let mut redirect_domains = Vec::new();
    for text in &raw.redirect_domains {
        match DomainPattern::parse(text) {
            Ok(pattern) if redirect_domains.contains(&pattern) => errors.push(
                file,
                &format!("{at}.redirect_domains"),
                format_args!("`{text}` is listed twice"),
            ),
            Ok(pattern) => redirect_domains.push(pattern),
            Err(e) => errors.push(file, &format!("{at}.redirect_domains"), e),
        }
    }
    if errors.problems.len() > before {
        return None;
    }
    Some(Touchpoint {
        name,
        login_url: login_url?,
        preproduction_login_url,
        redirect_domains,
    })
}

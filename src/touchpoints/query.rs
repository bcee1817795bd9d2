//! The query string of a touchpoint request, read once: `application/x-www-form-urlencoded`
//! pairs (as browsers and the spec's examples write them), each name one of the endpoint's
//! parameters, given at most once, with a bounded value free of control characters — so an
//! encoded CR/LF (`%0d%0a`) never reaches a header or a page.
//!
//! [`Query::parse`] never fails: it keeps the well-formed values and every problem, so the
//! walk can still learn `from` (and offer the way back to that partner's page) before it
//! refuses an otherwise broken query with [`Query::check`]. A repeated parameter keeps no
//! value at all: the hub never picks one of two.

use super::refusal::{ParamProblem, Refusal};

/// Longest raw query the hub reads, in bytes.
pub const QUERY_MAX: usize = 16 * 1024;

/// The longest value of each parameter, in characters.
fn max_len(name: &str) -> usize {
    match name {
        "id" => crate::account_id::ACCOUNT_ID_MAX,
        "redirect_uri" => super::urls::REDIRECT_URI_MAX,
        "error" => 512,
        "code" => 3,
        "env" => 16,
        _ => 64,
    }
}

/// The parameters of one request.
#[derive(Debug, Default)]
pub struct Query {
    values: Vec<(&'static str, String)>,
    problems: Vec<Refusal>,
}

impl Query {
    /// Reads `raw` (the part after `?`), accepting the names in `known`.
    pub fn parse(raw: Option<&str>, known: &[&'static str]) -> Query {
        let mut query = Query::default();
        let raw = raw.unwrap_or_default();
        if raw.len() > QUERY_MAX {
            query.problems.push(Refusal::QueryTooLong);
            return query;
        }
        for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            let Some(known) = known.iter().copied().find(|k| *k == name) else {
                query.note(Refusal::parameter(&name, ParamProblem::Unknown));
                continue;
            };
            let seen = query.values.iter().any(|(n, _)| *n == known)
                || query.problems.iter().any(|p| p.is_about(known));
            if seen {
                // Repeated (well-formed or not): no value is kept, one problem is.
                query.values.retain(|(n, _)| *n != known);
                query.problems.retain(|p| !p.is_about(known));
                query.note(Refusal::parameter(known, ParamProblem::Duplicate));
                continue;
            }
            // Bytes that are not UTF-8 were decoded to U+FFFD.
            let problem = if value.chars().any(|c| c.is_control() || c == '\u{FFFD}') {
                Some(ParamProblem::Unprintable)
            } else if value.is_empty() {
                Some(ParamProblem::Empty)
            } else if value.chars().count() > max_len(known) {
                Some(ParamProblem::TooLong)
            } else {
                None
            };
            match problem {
                Some(problem) => query.note(Refusal::parameter(known, problem)),
                None => query.values.push((known, value.into_owned())),
            }
        }
        query
    }

    fn note(&mut self, refusal: Refusal) {
        self.problems.push(refusal);
    }

    /// The value of `name`, when given once and well-formed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`; refuses when it is absent or was malformed.
    pub fn require(&self, name: &'static str) -> Result<&str, Refusal> {
        if let Some(value) = self.get(name) {
            return Ok(value);
        }
        match self
            .problems
            .iter()
            .find(|p| p.is_about(name) || **p == Refusal::QueryTooLong)
        {
            Some(problem) => Err(problem.clone()),
            None => Err(Refusal::parameter(name, ParamProblem::Missing)),
        }
    }

    /// Refuses when any parameter was unknown, repeated or malformed.
    pub fn check(&self) -> Result<(), Refusal> {
        match self.problems.first() {
            Some(problem) => Err(problem.clone()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["from", "id", "redirect_uri", "error"];

    fn problem(raw: &str) -> Option<Refusal> {
        Query::parse(Some(raw), KNOWN).check().err()
    }

    #[test]
    fn values_are_form_decoded() {
        let q = Query::parse(
            Some("from=cmpone&redirect_uri=https%3A%2F%2Fclient.example.com%2Freturn%3Ffoo%3Dbar&error=a+b%20c"),
            KNOWN,
        );
        assert!(q.check().is_ok());
        assert_eq!(q.get("from"), Some("cmpone"));
        assert_eq!(
            q.get("redirect_uri"),
            Some("https://client.example.com/return?foo=bar")
        );
        assert_eq!(q.get("error"), Some("a b c"));
        assert_eq!(
            q.require("id"),
            Err(Refusal::parameter("id", ParamProblem::Missing))
        );
    }

    #[test]
    fn duplicates_unknowns_and_empties_are_refused() {
        assert_eq!(
            problem("from=a&from=b"),
            Some(Refusal::parameter("from", ParamProblem::Duplicate))
        );
        assert_eq!(
            problem("from=a&utm_source=x"),
            Some(Refusal::parameter("utm_source", ParamProblem::Unknown))
        );
        assert_eq!(
            problem("from="),
            Some(Refusal::parameter("from", ParamProblem::Empty))
        );
        let q = Query::parse(Some("from=a&id=x&id=y"), KNOWN);
        assert_eq!(q.require("from"), Ok("a"), "from is still known");
        assert!(q.check().is_err());
        for raw in [
            "from=a&from=a",
            "from=a&from=",
            "from=&from=a",
            "from=a&from=b&from=c",
        ] {
            let q = Query::parse(Some(raw), KNOWN);
            assert_eq!(q.get("from"), None, "{raw}: no value is picked");
            assert_eq!(
                q.require("from"),
                Err(Refusal::parameter("from", ParamProblem::Duplicate)),
                "{raw}"
            );
        }
    }

    #[test]
    fn control_characters_and_bad_utf8_are_refused() {
        for raw in [
            "error=x%0d%0aSet-Cookie:%20a=b",
            "error=%00",
            "error=%7f",
            "error=%c2%85",
            "error=%ff",
            "redirect_uri=https://a.example/%0a",
        ] {
            let p = problem(raw);
            assert!(
                matches!(
                    p,
                    Some(Refusal::Parameter {
                        problem: ParamProblem::Unprintable,
                        ..
                    })
                ),
                "{raw}: {p:?}"
            );
        }
    }

    #[test]
    fn lengths_are_capped() {
        let long = format!("error={}", "x".repeat(513));
        assert_eq!(
            problem(&long),
            Some(Refusal::parameter("error", ParamProblem::TooLong))
        );
        let huge = "x".repeat(QUERY_MAX + 1);
        assert_eq!(problem(&huge), Some(Refusal::QueryTooLong));
        let long_name = format!("{}=1", "n".repeat(100));
        match problem(&long_name) {
            Some(Refusal::Parameter { name, .. }) => assert_eq!(name.len(), 40),
            other => panic!("{other:?}"),
        }
        match problem("%0aforged%20log%20line=1") {
            Some(Refusal::Parameter { name, .. }) => {
                assert_eq!(name, "\u{FFFD}forged log line", "no line break survives")
            }
            other => panic!("{other:?}"),
        }
    }
}

//! Secrets in configuration files: given literally, as `env:NAME`, or as `file:PATH`.
//!
//! A [`Secret`] never prints its value: `Debug` and `Display` show where it came from.
//! Comparison with a presented credential runs in constant time for equal lengths.

use std::fmt;
use std::path::Path;

/// A resolved secret value and where it came from (for messages).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: Vec<u8>,
    origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    Literal,
    Env(String),
    File(String),
}

impl Secret {
    /// Resolves `spec`: `env:NAME` reads the environment, `file:PATH` reads a file (one
    /// trailing newline stripped, relative paths against `base`), anything else is literal.
    pub fn resolve(spec: &str, base: &Path) -> Result<Secret, String> {
        let (value, origin) = if let Some(name) = spec.strip_prefix("env:") {
            let value = std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set"))?;
            (value.into_bytes(), Origin::Env(name.to_owned()))
        } else if let Some(path) = spec.strip_prefix("file:") {
            let full = base.join(path);
            let mut value = std::fs::read(&full)
                .map_err(|e| format!("cannot read secret file {}: {e}", full.display()))?;
            if value.last() == Some(&b'\n') {
                value.pop();
                if value.last() == Some(&b'\r') {
                    value.pop();
                }
            }
            (value, Origin::File(path.to_owned()))
        } else {
            (spec.as_bytes().to_vec(), Origin::Literal)
        };
        if value.is_empty() {
            return Err("the secret is empty".into());
        }
        Ok(Secret { value, origin })
    }

    /// A literal secret (tests, generated configs).
    pub fn literal(value: &str) -> Secret {
        Secret {
            value: value.as_bytes().to_vec(),
            origin: Origin::Literal,
        }
    }

    /// The secret's bytes; callers must not log them.
    pub fn expose(&self) -> &[u8] {
        &self.value
    }

    /// The secret as text, when it is UTF-8 (credentials that go into headers).
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }

    /// Constant-time comparison with a presented value.
    pub fn matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(&self.value, presented)
    }
}

/// Compares two byte strings without an early exit on the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({self})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::Literal => f.write_str("<literal>"),
            Origin::Env(name) => write!(f, "env:{name}"),
            Origin::File(path) => write!(f, "file:{path}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_env_and_file_resolve() {
        let base = std::env::temp_dir();
        assert_eq!(Secret::resolve("abc", &base).unwrap().expose(), b"abc");
        std::env::set_var("AIDHUB_SECRET_TEST", "fromenv");
        let s = Secret::resolve("env:AIDHUB_SECRET_TEST", &base).unwrap();
        assert_eq!(s.expose(), b"fromenv");
        assert_eq!(format!("{s:?}"), "Secret(env:AIDHUB_SECRET_TEST)");
        let path = base.join(format!("aidhub-secret-{}", std::process::id()));
        std::fs::write(&path, "fromfile\n").unwrap();
        let spec = format!("file:{}", path.display());
        assert_eq!(Secret::resolve(&spec, &base).unwrap().expose(), b"fromfile");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn missing_sources_and_empty_values_are_refused() {
        let base = std::env::temp_dir();
        assert!(Secret::resolve("env:AIDHUB_SURELY_UNSET_VAR", &base).is_err());
        assert!(Secret::resolve("file:/nonexistent/aidhub", &base).is_err());
        assert!(Secret::resolve("", &base).is_err());
    }

    #[test]
    fn debug_never_prints_the_value() {
        let s = Secret::literal("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert!(s.matches(b"hunter2"));
        assert!(!s.matches(b"hunter3"));
        assert!(!s.matches(b"hunter"));
    }
}

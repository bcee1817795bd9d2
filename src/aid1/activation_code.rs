//! The SGP.22 activation code (AID.02 1.3 refers to SGP.22 4.1), checked by hand against
//! its grammar:
//!
//! ```text
//! [LPA:]1$<SM-DP+ FQDN>$<matching id>[$[<SM-DP+ OID>][$[<"1">][$[<CI key id>][$<delete flag>]]]]
//! ```
//!
//! An activation code is a credential (whoever holds it can download the profile), so
//! [`ActivationCode`] never prints it and parse errors never quote it.
//!
//! Decisions: the whole code is at most [`ACTIVATION_CODE_MAX`] characters (no source gives
//! a limit; real ones are well under 255); the `LPA:` prefix is upper-case only; the address
//! is a dotted host name of letters, digits and hyphens (no scheme, port, or trailing dot);
//! the matching id is `[0-9A-Z-]*` and may be empty; the OID is dotted decimal with at least
//! two arcs; the confirmation flag, when not empty, is `1`; the two SGP.22 v3 fields are
//! accepted loosely (a CI key indicator of printable ASCII, empty only before a delete flag;
//! a delete flag of `0` or `1`).

/// The longest activation code accepted, in bytes.
pub const ACTIVATION_CODE_MAX: usize = 512;

/// A syntactically valid activation code. Its `Debug` prints `ActivationCode(<redacted>)`;
/// it has no `Display`; [`ActivationCode::expose`] is the only way to the text.
#[derive(Clone, PartialEq, Eq)]
pub struct ActivationCode {
    text: String,
    smdp: String,
}

impl ActivationCode {
    /// Checks `text` against the SGP.22 grammar. The error is a reason without the input.
    pub fn parse(text: &str) -> Result<ActivationCode, String> {
        if text.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if text.len() > ACTIVATION_CODE_MAX {
            return Err(format!("longer than {ACTIVATION_CODE_MAX} characters"));
        }
        let body = text.strip_prefix("LPA:").unwrap_or(text);
        let fields: Vec<&str> = body.split('$').collect();
        if fields.len() < 3 {
            return Err("needs a format, an SM-DP+ address and a matching id".to_owned());
        }
        if fields.len() > 7 {
            return Err("has more than 7 '$'-separated fields".to_owned());
        }
        let field = |i: usize| fields.get(i).copied();
        if field(0) != Some("1") {
            return Err("the format field must be 1".to_owned());
        }
        let smdp = field(1).unwrap_or_default();
        check_fqdn(smdp)?;
        let matching_id = field(2).unwrap_or_default();
        if !matching_id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase() || b == b'-')
        {
            return Err("the matching id may contain only 0-9, A-Z and '-'".to_owned());
        }
        if let Some(oid) = field(3) {
            if !oid.is_empty() && !is_oid(oid) {
                return Err("the SM-DP+ OID must be dotted decimal".to_owned());
            }
        }
        if let Some(flag) = field(4) {
            if !flag.is_empty() && flag != "1" {
                return Err("the confirmation code flag must be 1 or empty".to_owned());
            }
        }
        if let Some(ci) = field(5) {
            let ci_ok = if ci.is_empty() {
                fields.len() == 7
            } else {
                ci.len() <= 128 && ci.bytes().all(|b| b.is_ascii_graphic())
            };
            if !ci_ok {
                return Err("the CI key indicator must be printable ASCII".to_owned());
            }
        }
        if let Some(delete) = field(6) {
            if delete != "0" && delete != "1" {
                return Err("the delete notification flag must be 0 or 1".to_owned());
            }
        }
        Ok(ActivationCode {
            text: text.to_owned(),
            smdp: smdp.to_owned(),
        })
    }

    /// The SM-DP+ address (not secret: it names the operator's server).
    pub fn smdp_address(&self) -> &str {
        &self.smdp
    }

    /// The activation code as received. It is a credential: never log or store it in clear.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Debug for ActivationCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActivationCode(<redacted>)")
    }
}

/// A host name of at least two dot-separated labels of letters, digits and inner hyphens,
/// each 1–63 characters, 253 in all.
fn check_fqdn(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the SM-DP+ address must not be empty".to_owned());
    }
    if host.len() > 253 {
        return Err("the SM-DP+ address is longer than 253 characters".to_owned());
    }
    let mut labels = 0;
    for label in host.split('.') {
        labels += 1;
        if label.is_empty() || label.len() > 63 {
            return Err("the SM-DP+ address has an empty or over-long label".to_owned());
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(
                "the SM-DP+ address must be a host name (letters, digits, '-', '.')".to_owned(),
            );
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("an SM-DP+ address label may not start or end with '-'".to_owned());
        }
    }
    if labels < 2 {
        return Err("the SM-DP+ address must be a fully qualified domain name".to_owned());
    }
    Ok(())
}

/// Dotted decimal with at least two arcs, each non-empty.
fn is_oid(text: &str) -> bool {
    let mut arcs = 0;
    for arc in text.split('.') {
        arcs += 1;
        if arc.is_empty() || !arc.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    arcs >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_codes() {
        for code in [
            "1$VR-01-43-CUST.SC.MY-ESIM.COM$DEF30A27E3CEFD34FA24B4A38D9681A5",
            "LPA:1$SMDP.EXAMPLE.COM$04386-AGYFT-A74Y8-3F815",
            "1$SMDP.EXAMPLE.COM$04386-AGYFT-A74Y8-3F815$$1",
            "1$smdp.example.com$$1.3.6.1.4.1.31746",
            "1$SMDP.EXAMPLE.COM$04386-AGYFT-A74Y8-3F815$1.3.6.1.4.1.31746$1",
            "1$SMDP.EXAMPLE.COM$04386-AGYFT-A74Y8-3F815$1.3.6.1.4.1.31746",
            "1$SMDP.EXAMPLE.COM$ABC$",
            "1$SMDP.EXAMPLE.COM$ABC$$$F54172BDF9C0A6D0",
            "1$SMDP.EXAMPLE.COM$ABC$$1$F54172BDF9C0A6D0$1",
            "1$SMDP.EXAMPLE.COM$ABC$$$$0",
        ] {
            assert!(ActivationCode::parse(code).is_ok(), "{code}");
        }
    }

    #[test]
    fn invalid_codes() {
        let too_long = format!("1$SMDP.EXAMPLE.COM${}", "A".repeat(ACTIVATION_CODE_MAX));
        for code in [
            "",
            "1$",
            "LPA:1$",
            "1$SMDP.EXAMPLE.COM",
            "2$SMDP.EXAMPLE.COM$ABC",
            "free text",
            "xyz14390lojij",
            "1$https://smdp.example.com$ABC",
            "1$SMDP.EXAMPLE.COM:443$ABC",
            "1$SMDP.EXAMPLE.COM$abc lowercase",
            "1$SMDP.EXAMPLE.COM$abc",
            "1$SMDP..EXAMPLE.COM$ABC",
            "1$SMDP.EXAMPLE.COM.$ABC",
            "1$.EXAMPLE.COM$ABC",
            "1$-SMDP.EXAMPLE.COM$ABC",
            "1$SMDP$ABC",
            "1$$ABC",
            "1$SMDP.EXAMPLE.COM$ABC$$2",
            "1$SMDP.EXAMPLE.COM$ABC$$yes",
            "1$SMDP.EXAMPLE.COM$ABC$1..3",
            "1$SMDP.EXAMPLE.COM$ABC$1",
            "1$SMDP.EXAMPLE.COM$ABC$1.3$1$CI$2",
            "1$SMDP.EXAMPLE.COM$ABC$1.3$1$$",
            "1$SMDP.EXAMPLE.COM$ABC$1.3$1$C I",
            "1$SMDP.EXAMPLE.COM$ABC$1.3$1$CI$1$extra",
            "lpa:1$SMDP.EXAMPLE.COM$ABC",
            " 1$SMDP.EXAMPLE.COM$ABC",
            &"$".repeat(26),
            &too_long,
        ] {
            assert!(ActivationCode::parse(code).is_err(), "{code}");
        }
    }

    #[test]
    fn errors_never_quote_the_code() {
        for code in [
            "1$SMDP.EXAMPLE.COM$SECRETabc",
            "1$SECRET$X",
            "9$SECRET.COM$X",
        ] {
            let reason = ActivationCode::parse(code).unwrap_err();
            assert!(!reason.contains("SECRET"), "{reason}");
        }
    }

    #[test]
    fn debug_is_redacted_and_address_is_exposed() {
        let code = ActivationCode::parse("LPA:1$SMDP.EXAMPLE.COM$04386-AGYFT").unwrap();
        assert_eq!(format!("{code:?}"), "ActivationCode(<redacted>)");
        assert_eq!(code.smdp_address(), "SMDP.EXAMPLE.COM");
        assert_eq!(code.expose(), "LPA:1$SMDP.EXAMPLE.COM$04386-AGYFT");
    }

    #[test]
    fn never_panics_on_odd_input() {
        for code in ["$", "$$$$$$$", "1$\u{e9}.com$A", "LPA:", "1$a.b$\u{0}"] {
            let _ = ActivationCode::parse(code);
        }
    }
}

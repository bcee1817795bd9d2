//! Partner identities: how a client certificate names a partner of the routing table.
//!
//! `routes.toml` lists each partner's identities in one of four forms — `cn:NAME` (subject
//! common name), `dns:NAME` (DNS subject alternative name), `uri:URI` (URI SAN) and
//! `sha256:HEX` (fingerprint of the DER certificate). Right after the handshake the hub reads
//! the peer's certificate once into [`CertIdentities`]; every request then resolves those
//! against the current snapshot's [`IdentityIndex`], so a partner removed by a reload is
//! refused on existing connections too.

use crate::FastMap;
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// One identity form from `routes.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// Subject common name, compared exactly.
    Cn(String),
    /// DNS SAN, compared case-insensitively (stored lowercase).
    Dns(String),
    /// URI SAN, compared exactly.
    Uri(String),
    /// SHA-256 of the DER certificate.
    Sha256([u8; 32]),
}

impl Identity {
    /// Parses `cn:…`, `dns:…`, `uri:…` or `sha256:<64 hex digits, colons allowed>`.
    pub fn parse(text: &str) -> Result<Identity, String> {
        let (form, value) = text
            .split_once(':')
            .ok_or_else(|| format!("`{text}` has no form prefix (cn:, dns:, uri:, sha256:)"))?;
        if value.is_empty() {
            return Err(format!("`{text}` has an empty value"));
        }
        match form {
            "cn" => Ok(Identity::Cn(value.to_owned())),
            "dns" => Ok(Identity::Dns(value.to_ascii_lowercase())),
            "uri" => Ok(Identity::Uri(value.to_owned())),
            "sha256" => {
                let digits: String = value.chars().filter(|c| *c != ':').collect();
                let bytes = hex::decode(&digits)
                    .map_err(|_| format!("`{text}`: the fingerprint is not hexadecimal"))?;
                let array: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| format!("`{text}`: a SHA-256 fingerprint has 64 hex digits"))?;
                Ok(Identity::Sha256(array))
            }
            other => Err(format!(
                "`{text}`: unknown identity form `{other}` (use cn:, dns:, uri: or sha256:)"
            )),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Cn(v) => write!(f, "cn:{v}"),
            Identity::Dns(v) => write!(f, "dns:{v}"),
            Identity::Uri(v) => write!(f, "uri:{v}"),
            Identity::Sha256(v) => write!(f, "sha256:{}", hex::encode(v)),
        }
    }
}

/// Everything a certificate can be matched by, read once per connection.
#[derive(Clone, Debug, Default)]
pub struct CertIdentities {
    forms: Vec<Identity>,
}

impl CertIdentities {
    /// Reads the identities of a DER certificate. A certificate x509-parser cannot read has
    /// only its fingerprint.
    pub fn from_der(der: &[u8]) -> CertIdentities {
        let mut forms = vec![Identity::Sha256(Sha256::digest(der).into())];
        if let Ok((_, cert)) = X509Certificate::from_der(der) {
            for cn in cert.subject().iter_common_name() {
                if let Ok(text) = cn.as_str() {
                    forms.push(Identity::Cn(text.to_owned()));
                }
            }
            if let Ok(Some(san)) = cert.subject_alternative_name() {
                for name in &san.value.general_names {
                    match name {
                        GeneralName::DNSName(dns) => {
                            forms.push(Identity::Dns(dns.to_ascii_lowercase()))
                        }
                        GeneralName::URI(uri) => forms.push(Identity::Uri((*uri).to_owned())),
                        _ => {}
                    }
                }
            }
        }
        CertIdentities { forms }
    }

    /// The fingerprint, for logs (`sha256:…`).
    pub fn fingerprint(&self) -> String {
        self.forms
            .first()
            .map(|f| f.to_string())
            .unwrap_or_default()
    }
}

/// What a certificate resolved to.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved<'a> {
    /// Exactly one partner.
    Partner(&'a str),
    /// No partner lists any of the certificate's identities.
    Unknown,
    /// Identities of the certificate name different partners.
    Ambiguous,
}

/// Identity → partner id, built once per configuration snapshot.
#[derive(Clone, Debug, Default)]
pub struct IdentityIndex {
    map: FastMap<Identity, Arc<str>>,
}

impl IdentityIndex {
    /// Adds a partner's identity; returns the partner already holding it, if any.
    pub fn insert(&mut self, identity: Identity, partner: Arc<str>) -> Option<Arc<str>> {
        match self.map.get(&identity) {
            Some(existing) if **existing != *partner => Some(existing.clone()),
            Some(_) => None,
            None => {
                self.map.insert(identity, partner);
                None
            }
        }
    }

    /// Resolves a certificate to its one partner.
    pub fn resolve(&self, cert: &CertIdentities) -> Resolved<'_> {
        let mut found: Option<&str> = None;
        for form in &cert.forms {
            if let Some(partner) = self.map.get(form) {
                match found {
                    Some(previous) if previous != &**partner => return Resolved::Ambiguous,
                    _ => found = Some(partner),
                }
            }
        }
        found.map_or(Resolved::Unknown, Resolved::Partner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(
            Identity::parse("cn:msp1").unwrap(),
            Identity::Cn("msp1".into())
        );
        assert_eq!(
            Identity::parse("dns:MSP1.Example").unwrap(),
            Identity::Dns("msp1.example".into())
        );
        assert_eq!(
            Identity::parse("uri:urn:aidhub:partner:x").unwrap(),
            Identity::Uri("urn:aidhub:partner:x".into())
        );
        let hex = "ab".repeat(32);
        assert!(matches!(
            Identity::parse(&format!("sha256:{hex}")),
            Ok(Identity::Sha256(_))
        ));
        let colons: Vec<String> = (0..32).map(|_| "AB".to_string()).collect();
        assert!(Identity::parse(&format!("sha256:{}", colons.join(":"))).is_ok());
    }

    #[test]
    fn refuses_bad_forms() {
        for bad in ["msp1", "cn:", "ip:1.2.3.4", "sha256:abcd", "sha256:zz"] {
            assert!(Identity::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolves_one_unknown_or_ambiguous() {
        let mut index = IdentityIndex::default();
        assert!(index
            .insert(Identity::Cn("a".into()), Arc::from("pa"))
            .is_none());
        assert!(index
            .insert(Identity::Dns("b.example".into()), Arc::from("pb"))
            .is_none());
        assert_eq!(
            index.insert(Identity::Cn("a".into()), Arc::from("pb")),
            Some(Arc::from("pa"))
        );
        let cert = |forms: Vec<Identity>| CertIdentities { forms };
        assert_eq!(
            index.resolve(&cert(vec![Identity::Cn("a".into())])),
            Resolved::Partner("pa")
        );
        assert_eq!(
            index.resolve(&cert(vec![Identity::Cn("z".into())])),
            Resolved::Unknown
        );
        assert_eq!(
            index.resolve(&cert(vec![
                Identity::Cn("a".into()),
                Identity::Dns("b.example".into())
            ])),
            Resolved::Ambiguous
        );
    }
}

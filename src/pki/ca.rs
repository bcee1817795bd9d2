//! The CA: creating one, re-loading the one on disk, and signing leaf certificates and CRLs
//! with it; the leaf profiles; and the one-off helpers for tests ([`issue`], [`revoke`],
//! [`foreign_leaf`]).
//!
//! rcgen 0.13 signs only with a `Certificate`, so a CA on disk is re-loaded by parsing
//! `ca.pem` back into parameters (rcgen's `x509-parser` feature) and self-signing them again
//! with `ca.key`. The result has the same subject, key and subject key identifier as
//! `ca.pem`, so what it signs chains to the file on disk; the re-made CA certificate itself
//! is never written.

use super::{
    ca_cert, ca_key, files, partner_dns, partner_uri, LeafSpec, PkiError, CRL_NEXT_UPDATE_DAYS,
    DEFAULT_HOSTS, HUB_CLIENT_DNS, HUB_COMMON_NAME,
};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateRevocationListParams,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::path::Path;
use time::{Duration, OffsetDateTime};

/// Subject common name of the development CA.
pub(super) const CA_COMMON_NAME: &str = "aidhub development CA";
const FOREIGN_CA_COMMON_NAME: &str = "foreign development CA (trusted by nobody)";
/// Certificates start this long before they are made, for peers whose clock runs behind.
pub(super) const BACKDATE: Duration = Duration::minutes(5);

/// A CA ready to sign. No `Debug`: it holds the private key.
pub(super) struct Ca {
    cert: Certificate,
    key: KeyPair,
}

/// A freshly signed certificate and its key. No `Debug`: it holds the private key.
pub(super) struct Signed {
    pub(super) cert_pem: String,
    pub(super) key_pem: String,
    /// `sha256:<hex>` of the DER certificate, the form `routes.toml` identities use.
    pub(super) fingerprint: String,
}

/// What goes into a leaf certificate besides its key, serial and validity.
#[derive(Clone, Debug)]
pub(super) struct Profile {
    common_name: String,
    sans: Vec<SanType>,
    client: bool,
    server: bool,
}

impl Ca {
    /// A new self-signed CA valid from now (less [`BACKDATE`]) for `days`.
    pub(super) fn create(common_name: &str, days: u32, what: &str) -> Result<Ca, PkiError> {
        let generate = |source| PkiError::Generate {
            what: what.to_owned(),
            source,
        };
        let key = KeyPair::generate().map_err(generate)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name_only(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(days.into());
        params.serial_number = Some(serial(&key));
        let cert = params.self_signed(&key).map_err(generate)?;
        Ok(Ca { cert, key })
    }

    /// Re-loads the CA in `dir` (see the module docs).
    pub(super) fn load(dir: &Path) -> Result<Ca, PkiError> {
        let (cert_path, key_path) = (ca_cert(dir), ca_key(dir));
        let parse = |path: &Path| {
            let what = path.display().to_string();
            move |source| PkiError::Parse { what, source }
        };
        let key = KeyPair::from_pem(&files::read(&key_path)?).map_err(parse(&key_path))?;
        let params = CertificateParams::from_ca_cert_pem(&files::read(&cert_path)?)
            .map_err(parse(&cert_path))?;
        let unusable = |reason: &str| PkiError::Unusable {
            path: cert_path.clone(),
            reason: reason.to_owned(),
        };
        if !matches!(params.is_ca, IsCa::Ca(_)) {
            return Err(unusable("not a CA certificate (no basicConstraints cA)"));
        }
        // Written by `create`: the SHA-256 key id of the CA's public key.
        if let KeyIdMethod::PreSpecified(id) = &params.key_identifier_method {
            if *id != key_id(&key) {
                return Err(unusable(
                    "its subject key identifier is not ca.key's SHA-256 key id: \
                     ca.key belongs to another certificate (or ca.pem was not made here)",
                ));
            }
        }
        let cert = params
            .self_signed(&key)
            .map_err(|source| PkiError::Generate {
                what: cert_path.display().to_string(),
                source,
            })?;
        Ok(Ca { cert, key })
    }

    pub(super) fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    pub(super) fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    pub(super) fn fingerprint(&self) -> String {
        fingerprint(self.cert.der())
    }

    /// When the CA expires; leaves should not outlive it.
    pub(super) fn not_after(&self) -> OffsetDateTime {
        self.cert.params().not_after
    }

    /// Signs a new leaf certificate over a new key; `what` names it in errors.
    pub(super) fn sign(
        &self,
        profile: &Profile,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        what: &str,
    ) -> Result<Signed, PkiError> {
        let generate = |source| PkiError::Generate {
            what: what.to_owned(),
            source,
        };
        let key = KeyPair::generate().map_err(generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name_only(&profile.common_name);
        params.subject_alt_names = profile.sans.clone();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = [
            (profile.client, ExtendedKeyUsagePurpose::ClientAuth),
            (profile.server, ExtendedKeyUsagePurpose::ServerAuth),
        ]
        .into_iter()
        .filter_map(|(wanted, usage)| wanted.then_some(usage))
        .collect();
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(serial(&key));
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(generate)?;
        Ok(Signed {
            fingerprint: fingerprint(cert.der()),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A CRL revoking `serials`, current for [`CRL_NEXT_UPDATE_DAYS`].
    fn revocation_list(&self, serials: Vec<SerialNumber>, what: &str) -> Result<String, PkiError> {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - BACKDATE,
            next_update: now + Duration::days(CRL_NEXT_UPDATE_DAYS),
            // Increases with time, as a CRL number should.
            crl_number: SerialNumber::from_slice(&now.unix_timestamp_nanos().to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: serials
                .into_iter()
                .map(|serial_number| RevokedCertParams {
                    serial_number,
                    revocation_time: now - BACKDATE,
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: self.cert.params().key_identifier_method.clone(),
        };
        let generate = |source| PkiError::Generate {
            what: what.to_owned(),
            source,
        };
        params
            .signed_by(&self.cert, &self.key)
            .and_then(|crl| crl.pem())
            .map_err(generate)
    }
}

impl Profile {
    /// CN "aidhub", SANs = `hosts`, serverAuth.
    pub(super) fn hub_server(hosts: &[String]) -> Result<Profile, PkiError> {
        Ok(Profile {
            common_name: HUB_COMMON_NAME.to_owned(),
            sans: host_sans(hosts)?,
            client: false,
            server: true,
        })
    }

    /// CN "aidhub", DNS hub.aidhub.test, clientAuth.
    pub(super) fn hub_client() -> Result<Profile, PkiError> {
        Ok(Profile {
            common_name: HUB_COMMON_NAME.to_owned(),
            sans: vec![dns_san(HUB_CLIENT_DNS)?],
            client: true,
            server: false,
        })
    }

    /// CN `id`, DNS `<id>.partners.aidhub.test`, URI `urn:aidhub:partner:<id>`, clientAuth.
    pub(super) fn partner_client(id: &str) -> Result<Profile, PkiError> {
        Ok(Profile {
            common_name: id.to_owned(),
            sans: vec![dns_san(&partner_dns(id))?, uri_san(&partner_uri(id))?],
            client: true,
            server: false,
        })
    }

    /// CN "`id` upstream", SANs = `hosts`, serverAuth.
    pub(super) fn partner_server(id: &str, hosts: &[String]) -> Result<Profile, PkiError> {
        Ok(Profile {
            common_name: format!("{id} upstream"),
            sans: host_sans(hosts)?,
            client: false,
            server: true,
        })
    }

    fn from_spec(spec: &LeafSpec) -> Result<Profile, PkiError> {
        let dns = spec.dns.iter().map(|host| host_san(host));
        let uris = spec.uris.iter().map(|uri| uri_san(uri));
        Ok(Profile {
            common_name: spec.common_name.clone(),
            sans: dns.chain(uris).collect::<Result<_, _>>()?,
            client: spec.client,
            server: spec.server,
        })
    }
}

/// Issues one extra certificate signed by the CA in `dir`, exactly as `spec` says (an
/// expired one too); nothing is written. Returns `(cert_pem, key_pem)`.
pub fn issue(dir: &Path, spec: &LeafSpec) -> Result<(String, String), PkiError> {
    let profile = Profile::from_spec(spec)?;
    let what = format!("certificate {:?}", spec.common_name);
    let signed = Ca::load(dir)?.sign(&profile, spec.not_before, spec.not_after, &what)?;
    Ok((signed.cert_pem, signed.key_pem))
}

/// Writes to `out` (replacing it, creating its directory) a CRL signed by the CA in `dir`
/// that revokes the given PEM certificates by serial number, and returns the CRL's PEM.
/// Its `nextUpdate` is [`CRL_NEXT_UPDATE_DAYS`] away.
pub fn revoke(dir: &Path, revoked_cert_pems: &[&str], out: &Path) -> Result<String, PkiError> {
    let ca = Ca::load(dir)?;
    let serials = revoked_cert_pems
        .iter()
        .enumerate()
        .map(|(index, pem)| serial_of(pem, index))
        .collect::<Result<_, _>>()?;
    let pem = ca.revocation_list(serials, &out.display().to_string())?;
    files::write_replace(out, &pem)?;
    Ok(pem)
}

/// A certificate from a throwaway CA that nobody trusts, named like partner
/// `common_name`'s client certificate and also valid as a server for [`DEFAULT_HOSTS`].
/// Returns `(cert_pem, key_pem)`.
pub fn foreign_leaf(common_name: &str) -> Result<(String, String), PkiError> {
    let what = format!("foreign certificate {common_name:?}");
    let ca = Ca::create(FOREIGN_CA_COMMON_NAME, 1, &what)?;
    let mut profile = Profile::partner_client(common_name)?;
    profile.sans.extend(host_sans(&[])?);
    profile.server = true;
    let now = OffsetDateTime::now_utc();
    let signed = ca.sign(&profile, now - BACKDATE, now + Duration::days(1), &what)?;
    Ok((signed.cert_pem, signed.key_pem))
}

/// The serial number of a PEM certificate, as a CRL entry must repeat it.
fn serial_of(pem: &str, index: usize) -> Result<SerialNumber, PkiError> {
    let what = format!("revoked certificate #{}", index + 1);
    // Despite its name this reads any certificate; only the serial is used.
    let params = CertificateParams::from_ca_cert_pem(pem).map_err(|source| PkiError::Parse {
        what: what.clone(),
        source,
    })?;
    params.serial_number.ok_or_else(|| PkiError::Invalid {
        what,
        reason: "has no serial number".to_owned(),
    })
}

/// A random, positive, 16-byte serial. The key pair was just drawn from the system RNG, so
/// hashing its public key (with the clock, in case a key is ever reused) is a random draw;
/// clearing the top bit keeps it positive and setting the next one keeps it 16 bytes long.
fn serial(key: &KeyPair) -> SerialNumber {
    let digest = Sha256::new()
        .chain_update(key.public_key_der())
        .chain_update(
            OffsetDateTime::now_utc()
                .unix_timestamp_nanos()
                .to_be_bytes(),
        )
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// RFC 7093 method 1, as rcgen's `KeyIdMethod::Sha256` computes it.
fn key_id(key: &KeyPair) -> Vec<u8> {
    Sha256::digest(key.public_key_der())[..20].to_vec()
}

fn fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

fn common_name_only(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

fn host_sans(hosts: &[String]) -> Result<Vec<SanType>, PkiError> {
    if hosts.is_empty() {
        return DEFAULT_HOSTS.iter().map(|host| host_san(host)).collect();
    }
    hosts.iter().map(|host| host_san(host)).collect()
}

/// An IP SAN if `host` parses as an address, a DNS SAN otherwise.
fn host_san(host: &str) -> Result<SanType, PkiError> {
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(SanType::IpAddress(ip)),
        Err(_) => dns_san(host),
    }
}

fn dns_san(name: &str) -> Result<SanType, PkiError> {
    let invalid = |reason: String| PkiError::Invalid {
        what: format!("DNS name {name:?}"),
        reason,
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(invalid("empty or contains whitespace".to_owned()));
    }
    let name = name.try_into().map_err(|err| invalid(format!("{err}")))?;
    Ok(SanType::DnsName(name))
}

fn uri_san(uri: &str) -> Result<SanType, PkiError> {
    let uri = uri.try_into().map_err(|err| PkiError::Invalid {
        what: format!("URI {uri:?}"),
        reason: format!("{err}"),
    })?;
    Ok(SanType::URI(uri))
}

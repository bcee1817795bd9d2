//! TLS for both sides of the hub, with rustls only.
//!
//! * [`server_config`] builds the partner-facing server configuration: TLS 1.2 and 1.3 with
//!   forward-secret suites only (rustls offers no others), client certificates required and
//!   verified against the configured trust anchors and revocation lists, and — in the same
//!   verifier — the certificate's identity resolved against the routing table, so an unknown
//!   partner is refused during the handshake, before any HTTP is read. ALPN offers h2 and
//!   http/1.1.
//! * [`browser_config`] builds the browser-facing server configuration: the same versions
//!   and ALPN, no client certificate (browsers follow touchpoint redirects anonymously).
//! * [`client_config`] builds one upstream client configuration per partner: its own trust
//!   anchors, the hub's client certificate, the same protocol versions.

use crate::identity::{CertIdentities, IdentityIndex, Resolved};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use std::path::Path;
use std::sync::Arc;

/// The crypto provider used everywhere (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The protocol versions the hub speaks.
pub static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Reads every certificate of a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut bytes.as_slice()).collect();
    let certs = certs.map_err(|e| format!("{}: not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut bytes.as_slice())
        .map_err(|e| format!("{}: not PEM: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no private key in the file", path.display()))
}

/// Builds a root store from PEM files.
pub fn read_roots(paths: &[impl AsRef<Path>]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for path in paths {
        for cert in read_certs(path.as_ref())? {
            roots.add(cert).map_err(|e| {
                format!(
                    "{}: not a usable trust anchor: {e}",
                    path.as_ref().display()
                )
            })?;
        }
    }
    Ok(roots)
}

/// Reads CRLs, PEM or DER.
pub fn read_crls(
    paths: &[impl AsRef<Path>],
) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let mut out = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if bytes.starts_with(b"-----") {
            for crl in rustls_pemfile::crls(&mut bytes.as_slice()) {
                out.push(crl.map_err(|e| format!("{}: not a PEM CRL: {e}", path.display()))?);
            }
        } else {
            out.push(CertificateRevocationListDer::from(bytes));
        }
    }
    Ok(out)
}

/// Partner-facing server configuration.
pub fn server_config(
    cert: &Path,
    key: &Path,
    partner_ca: &[impl AsRef<Path>],
    crls: &[impl AsRef<Path>],
    identities: Arc<IdentityIndex>,
) -> Result<rustls::ServerConfig, String> {
    let roots = read_roots(partner_ca)?;
    let crls = read_crls(crls)?;
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .with_crls(crls)
        // A CRL revokes what it lists; partners whose CA publishes no CRL here still pass,
        // so adding one CA's CRL never locks out the partners of another.
        .allow_unknown_revocation_status()
        .build()
        .map_err(|e| format!("partner trust anchors: {e}"))?;
    let verifier = Arc::new(PartnerVerifier { inner, identities });
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(cert)?, read_key(key)?)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Browser-facing server configuration: server authentication only.
pub fn browser_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(read_certs(cert)?, read_key(key)?)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Upstream client configuration: the partner's trust anchors and the hub's client certificate.
pub fn client_config(
    ca: &[impl AsRef<Path>],
    cert: &Path,
    key: &Path,
) -> Result<rustls::ClientConfig, String> {
    let roots = read_roots(ca)?;
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    // ALPN is left to the HTTP connector, which offers what it is built to speak.
    Ok(config)
}

/// Upstream client configuration without a client certificate (TS.43 carriers that do not
/// ask for mutual TLS).
pub fn client_config_anonymous(ca: &[impl AsRef<Path>]) -> Result<rustls::ClientConfig, String> {
    let roots = read_roots(ca)?;
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Device-facing server configuration (TS.43): server TLS only (devices have no client
/// certificates), TLS 1.2 and 1.3, forward-secret suites only (ECDHE in TLS 1.2, every
/// TLS 1.3 suite; rustls offers nothing else and never compresses), ALPN h2 and http/1.1.
pub fn device_server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(read_certs(cert)?, read_key(key)?)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Web PKI verification, then the routing table: a certificate that names no partner (or
/// several) fails the handshake with `access_denied`.
#[derive(Debug)]
struct PartnerVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    identities: Arc<IdentityIndex>,
}

impl ClientCertVerifier for PartnerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        match self
            .identities
            .resolve(&CertIdentities::from_der(end_entity))
        {
            Resolved::Partner(_) => Ok(verified),
            Resolved::Unknown | Resolved::Ambiguous => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

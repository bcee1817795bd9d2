//! The PKI end to end: files on disk, what a second run keeps, and that rustls's webpki
//! verifiers accept and refuse what they should.

use super::*;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "aidhub-pki-{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            time::OffsetDateTime::now_utc().unix_timestamp_nanos()
        );
        let path = std::env::temp_dir().join(name);
        fs::create_dir_all(&path).unwrap();
        TempDir(path.join("certs"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(self.0.parent().unwrap());
    }
}

fn hub_hosts() -> Vec<String> {
    ["localhost", "127.0.0.1", "aidhub.test"]
        .map(String::from)
        .to_vec()
}

/// Runs `ensure` for `ids` (default hosts) and returns the summary and the progress lines.
fn run(dir: &Path, ids: &[&str]) -> Result<(PkiSummary, Vec<String>), PkiError> {
    let hosts = hub_hosts();
    let partners: Vec<_> = ids
        .iter()
        .map(|id| PartnerCerts { id, hosts: &[] })
        .collect();
    let req = PkiRequest {
        dir,
        hub_hosts: &hosts,
        partners: &partners,
        days: 825,
    };
    let mut lines = Vec::new();
    let summary = ensure(&req, &mut |line: &str| lines.push(line.to_owned()))?;
    Ok((summary, lines))
}

fn all_files(dir: &Path, ids: &[&str]) -> Vec<PathBuf> {
    let mut files = vec![ca_cert(dir), ca_key(dir)];
    let mut push = |(cert, key): (PathBuf, PathBuf)| files.extend([cert, key]);
    push(hub_server(dir));
    push(hub_client(dir));
    for id in ids {
        push(partner_client(dir, id));
        push(partner_server(dir, id));
    }
    files
}

fn der(pem: &str) -> CertificateDer<'static> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
}

fn der_file(path: &Path) -> CertificateDer<'static> {
    der(&fs::read_to_string(path).unwrap())
}

fn roots(dir: &Path) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(der_file(&ca_cert(dir))).unwrap();
    Arc::new(roots)
}

fn client_verifier(
    dir: &Path,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Arc<dyn ClientCertVerifier> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    WebPkiClientVerifier::builder_with_provider(roots(dir), provider)
        .with_crls(crls)
        .build()
        .unwrap()
}

fn server_verifier(dir: &Path) -> Arc<WebPkiServerVerifier> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    WebPkiServerVerifier::builder_with_provider(roots(dir), provider)
        .build()
        .unwrap()
}

fn verify_client(
    verifier: &dyn ClientCertVerifier,
    cert: &CertificateDer<'_>,
) -> Result<(), rustls::Error> {
    verifier
        .verify_client_cert(cert, &[], UnixTime::now())
        .map(drop)
}

fn verify_server(dir: &Path, cert: &CertificateDer<'_>, name: &str) -> Result<(), rustls::Error> {
    let name = ServerName::try_from(name.to_owned()).unwrap();
    server_verifier(dir)
        .verify_server_cert(cert, &[], &name, &[], UnixTime::now())
        .map(drop)
}

/// (CN, DNS SANs, URI SANs, IP SANs) as x509-parser reads them.
fn names(pem: &str) -> (String, Vec<String>, Vec<String>, Vec<Vec<u8>>) {
    let der = der(pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let cn = cert.subject().iter_common_name().next().unwrap();
    let (mut dns, mut uris, mut ips) = (vec![], vec![], vec![]);
    if let Some(san) = cert.subject_alternative_name().unwrap() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(v) => dns.push(v.to_string()),
                GeneralName::URI(v) => uris.push(v.to_string()),
                GeneralName::IPAddress(v) => ips.push(v.to_vec()),
                other => panic!("unexpected SAN {other:?}"),
            }
        }
    }
    (cn.as_str().unwrap().to_owned(), dns, uris, ips)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

#[test]
fn ensure_creates_every_file() {
    let tmp = TempDir::new();
    let (summary, lines) = run(&tmp.0, &["acme", "telco"]).unwrap();
    let expected = all_files(&tmp.0, &["acme", "telco"]);
    assert_eq!(summary.written, expected);
    assert!(summary.kept.is_empty());
    assert_eq!(lines.len(), expected.len());
    assert!(lines.iter().all(|line| line.starts_with("wrote ")));
    for path in &expected {
        let text = read(path);
        if path.extension().unwrap() == "key" {
            let key = rustls_pemfile::private_key(&mut text.as_bytes()).unwrap();
            assert!(matches!(
                key,
                Some(rustls::pki_types::PrivateKeyDer::Pkcs8(_))
            ));
        } else {
            der(&text);
        }
    }
}

#[test]
fn second_ensure_keeps_everything_and_writes_nothing() {
    let tmp = TempDir::new();
    run(&tmp.0, &["acme"]).unwrap();
    let files = all_files(&tmp.0, &["acme"]);
    let before: Vec<_> = files.iter().map(|path| read(path)).collect();

    let (summary, lines) = run(&tmp.0, &["acme"]).unwrap();
    assert!(summary.written.is_empty());
    assert_eq!(summary.kept, files);
    assert!(lines.iter().all(|line| line.starts_with("kept ")));
    let after: Vec<_> = files.iter().map(|path| read(path)).collect();
    assert_eq!(before, after);
}

#[test]
fn adding_a_partner_writes_only_its_two_files_signed_by_the_kept_ca() {
    let tmp = TempDir::new();
    run(&tmp.0, &["acme"]).unwrap();
    let ca_before = read(&ca_cert(&tmp.0));

    let (summary, _) = run(&tmp.0, &["acme", "telco"]).unwrap();
    let (client, client_key) = partner_client(&tmp.0, "telco");
    let (server, server_key) = partner_server(&tmp.0, "telco");
    assert_eq!(
        summary.written,
        vec![client.clone(), client_key, server.clone(), server_key]
    );
    assert_eq!(read(&ca_cert(&tmp.0)), ca_before);

    // Signed by the re-loaded CA, they chain to the ca.pem on disk.
    verify_client(&*client_verifier(&tmp.0, vec![]), &der_file(&client)).unwrap();
    verify_server(&tmp.0, &der_file(&server), "localhost").unwrap();
}

#[test]
fn every_leaf_verifies_against_ca_pem() {
    let tmp = TempDir::new();
    run(&tmp.0, &["acme", "telco"]).unwrap();
    let clients = client_verifier(&tmp.0, vec![]);
    let dir = &tmp.0;

    verify_client(&*clients, &der_file(&hub_client(dir).0)).unwrap();
    for name in ["localhost", "127.0.0.1", "aidhub.test"] {
        verify_server(dir, &der_file(&hub_server(dir).0), name).unwrap();
    }
    for id in ["acme", "telco"] {
        verify_client(&*clients, &der_file(&partner_client(dir, id).0)).unwrap();
        for name in DEFAULT_HOSTS {
            verify_server(dir, &der_file(&partner_server(dir, id).0), name).unwrap();
        }
    }

    // Extended key usages keep each certificate to its side.
    let hub_server_cert = der_file(&hub_server(dir).0);
    assert!(verify_client(&*clients, &hub_server_cert).is_err());
    let acme_client = der_file(&partner_client(dir, "acme").0);
    assert!(verify_server(dir, &acme_client, "localhost").is_err());
    assert!(verify_server(dir, &hub_server_cert, "elsewhere.test").is_err());
}

#[test]
fn issued_leaf_from_reloaded_ca_verifies() {
    let tmp = TempDir::new();
    run(&tmp.0, &[]).unwrap();
    let (cert, key) = issue(&tmp.0, &LeafSpec::partner_client("acme")).unwrap();
    verify_client(&*client_verifier(&tmp.0, vec![]), &der(&cert)).unwrap();
    assert!(rustls_pemfile::private_key(&mut key.as_bytes())
        .unwrap()
        .is_some());
}

#[test]
fn revoked_client_cert_fails_and_another_passes() {
    let tmp = TempDir::new();
    run(&tmp.0, &["acme"]).unwrap();
    let (second, _) = issue(&tmp.0, &LeafSpec::partner_client("acme")).unwrap();
    let first = read(&partner_client(&tmp.0, "acme").0);

    let out = tmp.0.join("crl").join("revoked.pem");
    let pem = revoke(&tmp.0, &[&first], &out).unwrap();
    assert_eq!(read(&out), pem);
    let crls = rustls_pemfile::crls(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let verifier = client_verifier(&tmp.0, crls);

    let err = verify_client(&*verifier, &der(&first)).unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
        ),
        "{err:?}"
    );
    verify_client(&*verifier, &der(&second)).unwrap();
}

#[test]
fn foreign_leaf_fails() {
    let tmp = TempDir::new();
    run(&tmp.0, &["acme"]).unwrap();
    let (cert, _) = foreign_leaf("acme").unwrap();
    assert!(verify_client(&*client_verifier(&tmp.0, vec![]), &der(&cert)).is_err());
    assert!(verify_server(&tmp.0, &der(&cert), "localhost").is_err());
}

#[test]
fn expired_leaf_fails() {
    let tmp = TempDir::new();
    run(&tmp.0, &[]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let spec = LeafSpec {
        not_before: now - time::Duration::days(10),
        not_after: now - time::Duration::days(1),
        ..LeafSpec::partner_client("acme")
    };
    let (cert, _) = issue(&tmp.0, &spec).unwrap();
    let err = verify_client(&*client_verifier(&tmp.0, vec![]), &der(&cert)).unwrap_err();
    assert!(format!("{err:?}").contains("Expired"), "{err:?}");
}

#[test]
fn x509_parser_reads_the_names_set() {
    let tmp = TempDir::new();
    run(&tmp.0, &["acme"]).unwrap();
    let dir = &tmp.0;

    let (cn, dns, uris, ips) = names(&read(&partner_client(dir, "acme").0));
    assert_eq!(cn, "acme");
    assert_eq!(dns, ["acme.partners.aidhub.test"]);
    assert_eq!(uris, ["urn:aidhub:partner:acme"]);
    assert!(ips.is_empty());

    let (cn, dns, _, ips) = names(&read(&partner_server(dir, "acme").0));
    assert_eq!(cn, "acme upstream");
    assert_eq!(dns, ["localhost"]);
    assert_eq!(ips, [vec![127, 0, 0, 1]]);

    let (cn, dns, _, ips) = names(&read(&hub_server(dir).0));
    assert_eq!(cn, "aidhub");
    assert_eq!(dns, ["localhost", "aidhub.test"]);
    assert_eq!(ips, [vec![127, 0, 0, 1]]);

    let (cn, dns, uris, _) = names(&read(&hub_client(dir).0));
    assert_eq!(
        (cn.as_str(), dns, uris.len()),
        ("aidhub", vec![HUB_CLIENT_DNS.to_owned()], 0)
    );

    let (cn, ..) = names(&read(&ca_cert(dir)));
    assert_eq!(cn, "aidhub development CA");

    let spec = LeafSpec {
        common_name: "someone".into(),
        dns: vec!["chosen.example".into()],
        uris: vec!["urn:example:chosen".into()],
        ..LeafSpec::partner_client("x")
    };
    let (cert, _) = issue(dir, &spec).unwrap();
    let (cn, dns, uris, _) = names(&cert);
    assert_eq!(
        (cn.as_str(), dns, uris),
        (
            "someone",
            vec!["chosen.example".to_owned()],
            vec!["urn:example:chosen".to_owned()]
        )
    );
}

#[test]
fn serials_are_positive_and_distinct() {
    let tmp = TempDir::new();
    run(&tmp.0, &["acme", "telco"]).unwrap();
    let mut serials: Vec<_> = all_files(&tmp.0, &["acme", "telco"])
        .iter()
        .filter(|path| path.extension().unwrap() == "pem")
        .map(|path| {
            let der = der_file(path);
            let (_, cert) = X509Certificate::from_der(&der).unwrap();
            let raw = cert.raw_serial().to_vec();
            assert_eq!(raw.len(), 16, "{}", path.display());
            assert!(raw[0] & 0x80 == 0 && raw[0] != 0, "{}", path.display());
            raw
        })
        .collect();
    let count = serials.len();
    serials.dedup();
    assert_eq!(serials.len(), count);
}

#[cfg(unix)]
#[test]
fn keys_are_private_and_certs_readable() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new();
    run(&tmp.0, &["acme"]).unwrap();
    for path in all_files(&tmp.0, &["acme"]) {
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        if path.extension().unwrap() == "key" {
            assert_eq!(mode, 0o600, "{}", path.display());
        } else {
            // 0644 less the umask: readable by the owner, writable by nobody else.
            assert!(mode & 0o400 != 0 && mode & 0o022 == 0, "{}", path.display());
        }
    }
}

#[test]
fn a_certificate_without_its_key_stops_ensure_before_any_write() {
    let tmp = TempDir::new();
    run(&tmp.0, &["acme"]).unwrap();
    let (cert, key) = partner_client(&tmp.0, "acme");
    fs::remove_file(&key).unwrap();

    let err = run(&tmp.0, &["acme", "telco"]).unwrap_err();
    assert!(
        matches!(&err, PkiError::HalfPair { present, missing } if *present == cert && *missing == key),
        "{err}"
    );
    assert!(!partner_client(&tmp.0, "telco").0.exists());
}

#[test]
fn leaves_without_their_ca_are_refused() {
    let tmp = TempDir::new();
    run(&tmp.0, &["acme"]).unwrap();
    fs::remove_file(ca_cert(&tmp.0)).unwrap();
    fs::remove_file(ca_key(&tmp.0)).unwrap();

    let err = run(&tmp.0, &["acme"]).unwrap_err();
    assert!(matches!(err, PkiError::OrphanLeaf { .. }), "{err}");
    assert!(!ca_cert(&tmp.0).exists());
}

#[test]
fn a_ca_key_from_elsewhere_is_refused() {
    let tmp = TempDir::new();
    let other = TempDir::new();
    run(&tmp.0, &[]).unwrap();
    run(&other.0, &[]).unwrap();
    fs::copy(ca_key(&other.0), ca_key(&tmp.0)).unwrap();

    let err = run(&tmp.0, &["acme"]).unwrap_err();
    assert!(matches!(err, PkiError::Unusable { .. }), "{err}");
    assert!(err.to_string().contains("ca.pem"), "{err}");
}

#[test]
fn bad_requests_are_refused_before_any_write() {
    let tmp = TempDir::new();
    for ids in [&["../escape"][..], &[""], &["a b"], &["acme", "acme"]] {
        let err = run(&tmp.0, ids).unwrap_err();
        assert!(matches!(err, PkiError::Invalid { .. }), "{ids:?}: {err}");
    }
    let bad_host = [String::from("bad host")];
    let req = PkiRequest {
        dir: &tmp.0,
        hub_hosts: &bad_host,
        partners: &[],
        days: 1,
    };
    assert!(matches!(
        ensure(&req, &mut |_| {}),
        Err(PkiError::Invalid { .. })
    ));
    assert!(!tmp.0.exists());
}

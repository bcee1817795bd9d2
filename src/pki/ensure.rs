//! `aidhub certs`: the plan of every file a request implies, checked as a whole before
//! anything is written, then one walk that keeps what exists and signs what is missing.

use super::ca::{Ca, Profile, BACKDATE, CA_COMMON_NAME};
use super::files::{self, Access};
use super::{
    ca_cert, ca_key, hub_client, hub_server, partner_client, partner_server, PkiError, PkiRequest,
    PkiSummary, CA_MIN_DAYS,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// Longest partner id accepted (it ends up in a DNS label).
const MAX_PARTNER_ID_LEN: usize = 63;

/// Creates what is missing and never overwrites: an existing CA is kept and signs the new
/// leaf certificates, so adding a partner later just adds its two certificates. Calls
/// `progress` with one human line per file written or kept.
///
/// Everything is checked before the first write: the request itself, and that no
/// certificate is on disk without its key (or the other way round), nor any leaf without
/// the CA that signed it.
pub fn ensure(req: &PkiRequest, progress: &mut dyn FnMut(&str)) -> Result<PkiSummary, PkiError> {
    let leaves = plan(req)?;
    let (ca_pem, ca_key_path) = (ca_cert(req.dir), ca_key(req.dir));
    let ca_present = files::pair_present(&ca_pem, &ca_key_path)?;
    if !ca_present {
        if let Some(orphan) = leaves.iter().find(|leaf| leaf.present) {
            return Err(PkiError::OrphanLeaf {
                path: orphan.cert.clone(),
                ca: ca_pem,
            });
        }
    }

    let mut report = Report {
        summary: PkiSummary::default(),
        progress,
    };
    let ca = if ca_present {
        report.kept(&ca_pem);
        report.kept(&ca_key_path);
        Ca::load(req.dir)?
    } else {
        let days = req.days.max(CA_MIN_DAYS);
        let ca = Ca::create(CA_COMMON_NAME, days, &ca_pem.display().to_string())?;
        files::create_dir(req.dir)?;
        files::write_new(&ca_pem, &ca.cert_pem(), Access::Public)?;
        report.wrote(&ca_pem, &format!("{}, valid {days} days", ca.fingerprint()));
        files::write_new(&ca_key_path, &ca.key_pem(), Access::Secret)?;
        report.wrote(&ca_key_path, "private key");
        ca
    };

    let now = OffsetDateTime::now_utc();
    let not_before = now - BACKDATE;
    let not_after = (now + Duration::days(req.days.into())).min(ca.not_after());
    for leaf in &leaves {
        if leaf.present {
            report.kept(&leaf.cert);
            report.kept(&leaf.key);
            continue;
        }
        let what = leaf.cert.display().to_string();
        let signed = ca.sign(&leaf.profile, not_before, not_after, &what)?;
        if let Some(parent) = leaf.cert.parent() {
            files::create_dir(parent)?;
        }
        files::write_new(&leaf.cert, &signed.cert_pem, Access::Public)?;
        report.wrote(&leaf.cert, &signed.fingerprint);
        files::write_new(&leaf.key, &signed.key_pem, Access::Secret)?;
        report.wrote(&leaf.key, "private key");
    }
    Ok(report.summary)
}

/// A leaf certificate the request calls for, and whether it is already on disk.
struct Planned {
    cert: PathBuf,
    key: PathBuf,
    profile: Profile,
    present: bool,
}

/// Every leaf of the request in order: hub server, hub client, then each partner's client
/// and server certificate.
fn plan(req: &PkiRequest) -> Result<Vec<Planned>, PkiError> {
    if req.days == 0 {
        return Err(PkiError::Invalid {
            what: "days".to_owned(),
            reason: "must be at least 1".to_owned(),
        });
    }
    let mut wanted = vec![
        (hub_server(req.dir), Profile::hub_server(req.hub_hosts)?),
        (hub_client(req.dir), Profile::hub_client()?),
    ];
    let mut seen = HashSet::new();
    for partner in req.partners {
        check_partner_id(partner.id)?;
        if !seen.insert(partner.id) {
            return Err(invalid_id(partner.id, "listed twice"));
        }
        let id = partner.id;
        wanted.push((partner_client(req.dir, id), Profile::partner_client(id)?));
        let server = Profile::partner_server(id, partner.hosts)?;
        wanted.push((partner_server(req.dir, id), server));
    }
    wanted
        .into_iter()
        .map(|((cert, key), profile)| {
            Ok(Planned {
                present: files::pair_present(&cert, &key)?,
                cert,
                key,
                profile,
            })
        })
        .collect()
}

/// A partner id names files and goes into a DNS name and a URI: ASCII letters, digits,
/// `-`, `_` and `.`, starting with a letter or digit.
fn check_partner_id(id: &str) -> Result<(), PkiError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if id.is_empty() || id.len() > MAX_PARTNER_ID_LEN {
        return Err(invalid_id(id, "must be 1 to 63 characters"));
    }
    if !id.starts_with(|c: char| c.is_ascii_alphanumeric()) || !id.chars().all(allowed) {
        return Err(invalid_id(
            id,
            "only ASCII letters, digits, '-', '_' and '.' are allowed, starting with a letter or digit",
        ));
    }
    Ok(())
}

fn invalid_id(id: &str, reason: &str) -> PkiError {
    PkiError::Invalid {
        what: format!("partner id {id:?}"),
        reason: reason.to_owned(),
    }
}

/// The summary being built, and the progress callback told about each file.
struct Report<'p> {
    summary: PkiSummary,
    progress: &'p mut dyn FnMut(&str),
}

impl Report<'_> {
    fn wrote(&mut self, path: &Path, note: &str) {
        (self.progress)(&format!("wrote {} ({note})", path.display()));
        self.summary.written.push(path.to_owned());
    }

    fn kept(&mut self, path: &Path) {
        (self.progress)(&format!("kept  {} (already there)", path.display()));
        self.summary.kept.push(path.to_owned());
    }
}

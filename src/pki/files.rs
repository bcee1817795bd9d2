//! Reading PKI files and writing them without ever replacing one: keys private, certificates
//! world-readable.

use super::PkiError;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Who may read a file we write.
#[derive(Clone, Copy, Debug)]
pub(super) enum Access {
    /// Private keys: mode 0600 on unix.
    Secret,
    /// Certificates and CRLs: mode 0644 on unix (less whatever the umask removes).
    Public,
}

/// Whether a certificate and its key are on disk. One without the other is an error: the
/// certificate cannot be re-made for a lost key, nor a key for a kept certificate.
pub(super) fn pair_present(cert: &Path, key: &Path) -> Result<bool, PkiError> {
    match (exists(cert)?, exists(key)?) {
        (true, true) => Ok(true),
        (false, false) => Ok(false),
        (true, false) => Err(half_pair(cert, key)),
        (false, true) => Err(half_pair(key, cert)),
    }
}

pub(super) fn exists(path: &Path) -> Result<bool, PkiError> {
    path.try_exists().map_err(|source| PkiError::Io {
        path: path.to_owned(),
        action: "checking whether it exists",
        source,
    })
}

pub(super) fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        action: "reading",
        source,
    })
}

/// Creates `path` with `contents`; fails if it already exists.
pub(super) fn write_new(path: &Path, contents: &str, access: Access) -> Result<(), PkiError> {
    let io_error = |source| PkiError::Io {
        path: path.to_owned(),
        action: "writing",
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(match access {
            Access::Secret => 0o600,
            Access::Public => 0o644,
        });
    }
    #[cfg(not(unix))]
    let _ = access;
    let mut file = options.open(path).map_err(io_error)?;
    file.write_all(contents.as_bytes()).map_err(io_error)
}

/// Writes `path`, replacing what was there (CRLs are re-issued, not kept).
pub(super) fn write_replace(path: &Path, contents: &str) -> Result<(), PkiError> {
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    fs::write(path, contents).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        action: "writing",
        source,
    })
}

pub(super) fn create_dir(path: &Path) -> Result<(), PkiError> {
    if path.as_os_str().is_empty() {
        return Ok(());
    }
    fs::create_dir_all(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        action: "creating directory",
        source,
    })
}

fn half_pair(present: &Path, missing: &Path) -> PkiError {
    PkiError::HalfPair {
        present: present.to_owned(),
        missing: missing.to_owned(),
    }
}

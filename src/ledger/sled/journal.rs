//! The journal: an append-only file beside sled's own files (`<ledger path>/journal`) that
//! makes a durable write durable with one `write` and one `fdatasync`, instead of a sled
//! flush (which costs far more: it seals and writes sled's I/O buffer from sled's thread
//! pool, waking all of its threads, then syncs).
//!
//! Every record a durable round puts into sled is also appended here, and synced before the
//! round's waiters are woken. Now and then the writer flushes sled and empties the journal
//! (a checkpoint): everything in the journal was put into sled before that flush. Opening
//! the ledger replays the journal into sled, in order, flushes, and empties it.
//!
//! A record is `len: u32 LE`, `crc32(payload): u32 LE`, then the payload: tree (1 byte),
//! key length (`u16 LE`), key, kind (1 byte: 0 put, 1 delete), value (the rest). A crash
//! while appending leaves a torn record at the end, never acknowledged (its round's waiters
//! wait for the sync): replay stops at the first record that is short or fails its
//! checksum, and the checkpoint after replay removes it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sled::IVec;

use super::behind::TreeId;
use crate::ledger::LedgerError;

/// The journal file of the ledger in `dir`.
pub(super) fn path(dir: &Path) -> PathBuf {
    dir.join("journal")
}

/// One journalled change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub tree: TreeId,
    pub key: IVec,
    /// `None`: the key was removed.
    pub value: Option<IVec>,
}

/// The open journal, appended to by the writer thread only.
pub(super) struct Journal {
    file: File,
    path: PathBuf,
    /// Bytes appended since the last checkpoint.
    len: u64,
    buf: Vec<u8>,
}

fn storage(path: &Path, e: std::io::Error) -> LedgerError {
    LedgerError::Storage(format!("{}: {e}", path.display()))
}

impl Journal {
    /// Opens (creating) the journal at `path`, for appending.
    pub(super) fn open(path: PathBuf) -> Result<Journal, LedgerError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| storage(&path, e))?;
        let len = file.metadata().map_err(|e| storage(&path, e))?.len();
        Ok(Journal {
            file,
            path,
            len,
            buf: Vec::new(),
        })
    }

    /// Bytes appended since the last checkpoint.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Adds `entry` to the next [`Journal::sync`].
    pub(super) fn push(&mut self, entry: &Entry) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 8]);
        self.buf.push(entry.tree as u8);
        let key_len = u16::try_from(entry.key.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&key_len.to_le_bytes());
        self.buf
            .extend_from_slice(&entry.key[..usize::from(key_len)]);
        match &entry.value {
            Some(value) => {
                self.buf.push(0);
                self.buf.extend_from_slice(value);
            }
            None => self.buf.push(1),
        }
        let payload = &self.buf[start + 8..];
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let crc = crc32fast::hash(payload);
        self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
        self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }

    /// Appends what was pushed, in one write, and waits until it is on disk; whether there
    /// was anything to write.
    pub(super) fn sync(&mut self) -> Result<bool, LedgerError> {
        if self.buf.is_empty() {
            return Ok(false);
        }
        let result = self
            .file
            .write_all(&self.buf)
            .and_then(|()| self.file.sync_data());
        self.len += self.buf.len() as u64;
        self.buf.clear();
        result.map(|()| true).map_err(|e| storage(&self.path, e))
    }

    /// Empties the journal: call only after a sled flush that covers every record in it.
    pub(super) fn clear(&mut self) -> Result<(), LedgerError> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| storage(&self.path, e))?;
        self.len = 0;
        Ok(())
    }
}

/// The records of the journal at `path`, up to the first torn or corrupt one (none when
/// there is no journal).
pub(super) fn read(path: &Path) -> Result<Vec<Entry>, LedgerError> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut file) => file.read_to_end(&mut bytes).map_err(|e| storage(path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(storage(path, e)),
    };
    let mut entries = Vec::new();
    let mut rest = &bytes[..];
    while let Some(entry) = next(&mut rest) {
        entries.push(entry);
    }
    if !rest.is_empty() {
        tracing::warn!(
            journal = %path.display(),
            ignored_bytes = rest.len(),
            "the ledger journal ends in a torn record (a crash while appending, never acknowledged); ignored"
        );
    }
    Ok(entries)
}

/// Decodes the record at the front of `rest` and moves past it; `None` (leaving `rest`)
/// when it is short, fails its checksum or does not decode.
fn next(rest: &mut &[u8]) -> Option<Entry> {
    let (head, body) = rest.split_first_chunk::<8>()?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().ok()?);
    let payload = body.get(..len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let (&tree, payload) = payload.split_first()?;
    let tree = match tree {
        0 => TreeId::Federations,
        1 => TreeId::Requests,
        2 => TreeId::Profiles,
        _ => return None,
    };
    let (key_len, payload) = payload.split_first_chunk::<2>()?;
    let key_len = usize::from(u16::from_le_bytes(*key_len));
    let key = payload.get(..key_len)?;
    let (&kind, value) = payload.get(key_len..)?.split_first()?;
    let value = match kind {
        0 => Some(IVec::from(value)),
        1 => None,
        _ => return None,
    };
    *rest = &body[len..];
    Some(Entry {
        tree,
        key: IVec::from(key),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tree: TreeId, key: &[u8], value: Option<&[u8]>) -> Entry {
        Entry {
            tree,
            key: IVec::from(key),
            value: value.map(IVec::from),
        }
    }

    #[test]
    fn records_come_back_in_order_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path());
        assert!(read(&path).unwrap().is_empty(), "no journal yet");
        let written = vec![
            entry(TreeId::Federations, &[1; 16], Some(b"\x01{\"a\":1}")),
            entry(TreeId::Requests, &[2; 16], None),
            entry(TreeId::Profiles, &[3; 36], Some(b"")),
        ];
        let mut journal = Journal::open(path.clone()).unwrap();
        for e in &written[..2] {
            journal.push(e);
        }
        journal.sync().unwrap();
        journal.push(&written[2]);
        journal.sync().unwrap();
        assert_eq!(read(&path).unwrap(), written);
        assert_eq!(journal.len(), std::fs::metadata(&path).unwrap().len());

        // A crash while appending: half a record at the end.
        let mut tail = Journal::open(path.clone()).unwrap();
        tail.push(&entry(TreeId::Federations, &[4; 16], Some(b"torn")));
        let half = tail.buf.len() / 2;
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&tail.buf[..half]).unwrap();
        assert_eq!(read(&path).unwrap(), written);

        // A flipped bit in the last whole record stops the replay before it.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = journal.len() as usize - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(&path).unwrap(), written[..2]);

        journal.clear().unwrap();
        assert!(read(&path).unwrap().is_empty());
        assert_eq!(journal.len(), 0);
    }
}

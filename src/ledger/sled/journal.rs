//! The journal: a file beside sled's own files (`<ledger path>/journal`) that makes a
//! durable write durable with one `write` and one `fdatasync`, instead of a sled flush (which
//! costs far more: it seals and writes sled's I/O buffer from sled's thread pool, waking all
//! of its threads, then syncs).
//!
//! Every record a durable round puts into sled is also written here, and synced before the
//! round's waiters are woken. Now and then the writer flushes sled and starts the journal
//! over (a checkpoint): everything in it was put into sled before that flush. Opening the
//! ledger replays the journal into sled, in order, flushes, and starts it over.
//!
//! The file is allocated once ([`CAPACITY`], written with zeros) and then only overwritten,
//! so a sync moves data blocks and never the file's size or extents: no metadata commit per
//! sync. It starts with a header block naming the current epoch (`magic`, `epoch: u64 LE`,
//! `crc32` of both); a checkpoint bumps the epoch and writes records from the start again.
//! A record is `len: u32 LE`, `crc32(payload): u32 LE`, then the payload: epoch (`u64 LE`),
//! tree (1 byte), key length (`u16 LE`), key, kind (1 byte: 0 put, 1 delete), value (the
//! rest). Replay reads records of the header's epoch until one is short, fails its checksum
//! or belongs to an older epoch (what a previous round of the file left behind). A crash
//! while appending leaves a torn record, never acknowledged (its round's waiters wait for
//! the sync): replay stops before it. A header that does not check (a crash while writing it,
//! right after the sled flush of a checkpoint) means there is nothing to replay: everything
//! the journal held is already in sled.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sled::IVec;

use super::behind::TreeId;
use crate::ledger::LedgerError;

/// The journal's size on disk; a round that would not fit checkpoints first.
pub(super) const CAPACITY: u64 = 4 << 20;
/// Where records start (the header has a block to itself).
const START: u64 = 4096;
const MAGIC: &[u8; 8] = b"AIDHUBJ1";

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

/// The open journal, written by the writer thread only.
pub(super) struct Journal {
    file: File,
    path: PathBuf,
    epoch: u64,
    /// Where the next record goes.
    end: u64,
    buf: Vec<u8>,
}

fn storage(path: &Path, e: std::io::Error) -> LedgerError {
    LedgerError::Storage(format!("{}: {e}", path.display()))
}

fn header(epoch: u64) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&epoch.to_le_bytes());
    let crc = crc32fast::hash(&h[..16]);
    h[16..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The epoch a header names, if it checks.
fn epoch_of(header: &[u8]) -> Option<u64> {
    let h: &[u8; 20] = header.get(..20)?.try_into().ok()?;
    let crc = u32::from_le_bytes(h[16..].try_into().ok()?);
    (&h[..8] == MAGIC && crc32fast::hash(&h[..16]) == crc)
        .then(|| u64::from_le_bytes(h[8..16].try_into().unwrap_or_default()))
}

impl Journal {
    /// Opens the journal at `path` for a new epoch (after [`read`] replayed the old one),
    /// creating and allocating the file when it is missing or short.
    pub(super) fn open(path: PathBuf, previous_epoch: u64) -> Result<Journal, LedgerError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| storage(&path, e))?;
        let len = file.metadata().map_err(|e| storage(&path, e))?.len();
        if len < CAPACITY {
            // Real blocks, not a sparse file: later syncs then never allocate.
            let zeros = vec![0u8; 1 << 20];
            let mut written = 0;
            while written < CAPACITY {
                file.write_all_at(&zeros, written)
                    .map_err(|e| storage(&path, e))?;
                written += zeros.len() as u64;
            }
            file.sync_all().map_err(|e| storage(&path, e))?;
        }
        let mut journal = Journal {
            file,
            path,
            epoch: previous_epoch,
            end: START,
            buf: Vec::new(),
        };
        journal.restart()?;
        Ok(journal)
    }

    /// Bytes written in this epoch.
    pub(super) fn len(&self) -> u64 {
        self.end - START
    }

    /// Whether what was pushed still fits in this epoch.
    pub(super) fn fits(&self) -> bool {
        self.end + self.buf.len() as u64 <= CAPACITY
    }

    /// Adds `entry` to the next [`Journal::sync`].
    pub(super) fn push(&mut self, entry: &Entry) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 8]);
        self.buf.extend_from_slice(&self.epoch.to_le_bytes());
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

    /// Writes what was pushed, in one write, and waits until it is on disk; whether there
    /// was anything to write. The caller checkpoints first when it does not [`fit`].
    ///
    /// [`fit`]: Journal::fits
    pub(super) fn sync(&mut self) -> Result<bool, LedgerError> {
        if self.buf.is_empty() {
            return Ok(false);
        }
        let result = self
            .file
            .write_all_at(&self.buf, self.end)
            .and_then(|()| self.file.sync_data());
        self.end += self.buf.len() as u64;
        self.buf.clear();
        result.map(|()| true).map_err(|e| storage(&self.path, e))
    }

    /// Starts a new epoch: call only after a sled flush that covers every record synced so
    /// far. Records pushed but not synced are kept for the new epoch.
    pub(super) fn restart(&mut self) -> Result<(), LedgerError> {
        self.epoch += 1;
        self.file
            .write_all_at(&header(self.epoch), 0)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| storage(&self.path, e))?;
        self.end = START;
        // Pushed records carry the old epoch: renumber them.
        let pending = std::mem::take(&mut self.buf);
        let mut rest = &pending[..];
        while let Some(entry) = next(&mut rest, None) {
            self.push(&entry.1);
        }
        Ok(())
    }
}

/// The epoch of the journal at `path` and its records, up to the first torn, corrupt or
/// stale one (none, epoch 0, when there is no journal or its header does not check).
pub(super) fn read(path: &Path) -> Result<(u64, Vec<Entry>), LedgerError> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut file) => file.read_to_end(&mut bytes).map_err(|e| storage(path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, Vec::new())),
        Err(e) => return Err(storage(path, e)),
    };
    let Some(epoch) = epoch_of(&bytes) else {
        if bytes.iter().any(|&b| b != 0) {
            tracing::warn!(
                journal = %path.display(),
                "the ledger journal's header does not check (a crash during a checkpoint, after sled was flushed): nothing to replay"
            );
        }
        return Ok((0, Vec::new()));
    };
    let mut entries = Vec::new();
    let mut rest = bytes.get(START as usize..).unwrap_or_default();
    while let Some((_, entry)) = next(&mut rest, Some(epoch)) {
        entries.push(entry);
    }
    Ok((epoch, entries))
}

/// Decodes the record at the front of `rest` (of `epoch`, when given) and moves past it;
/// `None` (leaving `rest`) when it is short, fails its checksum, is of another epoch or does
/// not decode.
fn next(rest: &mut &[u8], epoch: Option<u64>) -> Option<(u64, Entry)> {
    let (head, body) = rest.split_first_chunk::<8>()?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().ok()?);
    let payload = body.get(..len).filter(|p| !p.is_empty())?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let (record_epoch, payload) = payload.split_first_chunk::<8>()?;
    let record_epoch = u64::from_le_bytes(*record_epoch);
    if epoch.is_some_and(|e| e != record_epoch) {
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
    Some((
        record_epoch,
        Entry {
            tree,
            key: IVec::from(key),
            value,
        },
    ))
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
    fn records_come_back_in_order_and_a_torn_or_stale_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path());
        assert_eq!(read(&path).unwrap(), (0, Vec::new()), "no journal yet");
        let written = vec![
            entry(TreeId::Federations, &[1; 16], Some(b"\x01{\"a\":1}")),
            entry(TreeId::Requests, &[2; 16], None),
            entry(TreeId::Profiles, &[3; 36], Some(b"")),
        ];
        let mut journal = Journal::open(path.clone(), 0).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), CAPACITY);
        for e in &written[..2] {
            journal.push(e);
        }
        assert!(journal.sync().unwrap());
        assert!(!journal.sync().unwrap(), "nothing pushed, nothing written");
        journal.push(&written[2]);
        journal.sync().unwrap();
        assert_eq!(read(&path).unwrap(), (1, written.clone()));

        // A crash while appending: half a record after the last one.
        let mut torn = Journal::open(dir.path().join("scratch"), 0).unwrap();
        torn.push(&entry(TreeId::Federations, &[4; 16], Some(b"torn")));
        let half = &torn.buf[..torn.buf.len() / 2];
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(half, journal.end).unwrap();
        assert_eq!(read(&path).unwrap(), (1, written.clone()));

        // A new epoch: the old records are stale, the new ones replay.
        journal.restart().unwrap();
        assert_eq!(read(&path).unwrap(), (2, Vec::new()));
        journal.push(&written[1]);
        journal.sync().unwrap();
        assert_eq!(read(&path).unwrap(), (2, written[1..2].to_vec()));

        // A reopened journal goes on from the epoch it is given.
        let (epoch, _) = read(&path).unwrap();
        let reopened = Journal::open(path.clone(), epoch).unwrap();
        assert_eq!(read(&path).unwrap(), (3, Vec::new()));
        assert_eq!(reopened.len(), 0);

        // A header that does not check: nothing to replay.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"garbage", 0).unwrap();
        assert_eq!(read(&path).unwrap(), (0, Vec::new()));
    }

    #[test]
    fn records_pushed_before_a_restart_move_to_the_new_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path());
        let mut journal = Journal::open(path.clone(), 0).unwrap();
        let e = entry(TreeId::Requests, &[9; 16], Some(b"x"));
        journal.push(&e);
        journal.restart().unwrap();
        journal.sync().unwrap();
        assert_eq!(read(&path).unwrap(), (2, vec![e]));
    }
}

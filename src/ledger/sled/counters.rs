//! Live record counts, so that `stats` costs O(1).
//!
//! Rebuilt by one scan when the database is opened, then moved by every committed write
//! (after its compare-and-swap succeeded, never inside a retried step). Between a write
//! and its count a concurrent `stats` may be one off; restarts start exact again.

use std::sync::atomic::{AtomicI64, Ordering};

use sled::Tree;

use crate::ledger::codec::{decode, Record, Slot};
use crate::ledger::{LedgerError, LedgerStats};

/// Live record counts by [`Slot`].
#[derive(Default)]
pub(super) struct Counters([AtomicI64; Slot::ALL.len()]);

impl Counters {
    pub(super) fn add(&self, slot: Slot, delta: i64) {
        self.0[slot.index()].fetch_add(delta, Ordering::Relaxed);
    }

    /// A committed write replaced a record counted in `old` by one counted in `new`.
    pub(super) fn moved(&self, old: Option<Slot>, new: Option<Slot>) {
        if old != new {
            old.into_iter().for_each(|s| self.add(s, -1));
            new.into_iter().for_each(|s| self.add(s, 1));
        }
    }

    pub(super) fn count<T: Record>(&self, tree: &Tree) -> Result<(), LedgerError> {
        for entry in tree.iter() {
            let (key, value) = entry?;
            self.add(decode::<T>(&key, &value)?.slot(), 1);
        }
        Ok(())
    }

    pub(super) fn snapshot(&self) -> LedgerStats {
        let mut stats = LedgerStats::default();
        for slot in Slot::ALL {
            let n = self.0[slot.index()].load(Ordering::Relaxed);
            *slot.field(&mut stats) = u64::try_from(n).unwrap_or(0);
        }
        stats
    }
}

//! Which keys the ledger may hold: a Bloom filter over every key sled has or is about to
//! get, so that a lookup of a key the ledger has never seen (a new request id, a new token)
//! answers "absent" without walking sled. It only ever errs towards "maybe": such a key is
//! then looked up in sled as before.
//!
//! Filled from sled's keys when the ledger opens and with every key a write adds; removals
//! stay in it (a removed key costs a lookup). Sized for 16 bits per key present at opening,
//! at least [`MIN_BITS`]: past that, false positives grow and lookups fall back to sled more
//! often, until the next start sizes it again.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use super::behind::TreeId;

/// The smallest filter (1 MiB): about 1 % false positives up to 800 000 keys.
const MIN_BITS: usize = 1 << 23;
/// Bits set per key.
const HASHES: u64 = 4;

/// A concurrent Bloom filter of (tree, key) pairs.
pub(super) struct KeyFilter {
    bits: Box<[AtomicU64]>,
    mask: u64,
    hasher: foldhash::quality::RandomState,
}

impl KeyFilter {
    /// A filter for about `keys` keys.
    pub(super) fn with_capacity(keys: usize) -> KeyFilter {
        let bits = keys.saturating_mul(16).max(MIN_BITS).next_power_of_two();
        KeyFilter {
            bits: (0..bits / 64).map(|_| AtomicU64::new(0)).collect(),
            mask: (bits - 1) as u64,
            hasher: foldhash::quality::RandomState::default(),
        }
    }

    fn positions(&self, tree: TreeId, key: &[u8]) -> impl Iterator<Item = (usize, u64)> + '_ {
        let h = self.hasher.hash_one((tree as u8, key));
        let (h1, h2) = (h, (h >> 32) | 1);
        (0..HASHES).map(move |i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) & self.mask;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        })
    }

    /// Notes that `key` is (or is about to be) in `tree`.
    pub(super) fn insert(&self, tree: TreeId, key: &[u8]) {
        for (word, bit) in self.positions(tree, key) {
            if self.bits[word].load(Ordering::Relaxed) & bit == 0 {
                self.bits[word].fetch_or(bit, Ordering::Relaxed);
            }
        }
    }

    /// False when `key` was certainly never inserted for `tree`.
    pub(super) fn may_contain(&self, tree: TreeId, key: &[u8]) -> bool {
        self.positions(tree, key)
            .all(|(word, bit)| self.bits[word].load(Ordering::Relaxed) & bit != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_keys_are_always_found_and_others_mostly_not() {
        let filter = KeyFilter::with_capacity(10_000);
        let keys: Vec<[u8; 16]> = (0..10_000u128).map(|i| i.to_be_bytes()).collect();
        for key in &keys {
            filter.insert(TreeId::Requests, key);
        }
        assert!(keys.iter().all(|k| filter.may_contain(TreeId::Requests, k)));
        let misses = (10_000..110_000u128)
            .filter(|i| filter.may_contain(TreeId::Requests, &i.to_be_bytes()))
            .count();
        assert!(misses < 1_000, "{misses} false positives in 100 000");
        // The tree is part of the key.
        let other = keys
            .iter()
            .filter(|k| filter.may_contain(TreeId::Federations, *k))
            .count();
        assert!(other < 100, "{other}");
    }
}

//! Which keys the ledger may hold: a Bloom filter over every key sled has or is about to
//! get, so that a lookup of a key the ledger has never seen (a new request id, a new token)
//! answers "absent" without walking sled. It only ever errs towards "maybe": such a key is
//! then looked up in sled as before.
//!
//! Filled from sled's keys when the ledger opens and with every key a write adds; removals
//! stay in it (a removed key costs a lookup). Sized for 16 bits per key present at opening,
//! at least [`MIN_BITS`]: past that, false positives grow and lookups fall back to sled more
//! often, until the next start sizes it again.
//!
//! Blocked: all of a key's bits lie in one 64-byte block, one cache line, so an insert or a
//! lookup touches one line of the filter instead of [`HASHES`] lines scattered over a
//! mebibyte, each a likely cache miss on the request path.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use super::behind::TreeId;

/// The smallest filter (1 MiB): about 1 % false positives up to 800 000 keys.
const MIN_BITS: usize = 1 << 23;
/// The largest filter (16 GiB): the hash's upper 28 bits choose the block.
const MAX_BITS: u64 = 1 << 37;
/// Bits set per key.
const HASHES: u32 = 4;
/// Bits of the hash that place one of a key's bits in its block (512 bits).
const BIT_INDEX: u32 = 9;

/// One cache line of the filter.
#[repr(align(64))]
struct Block([AtomicU64; 8]);

/// A concurrent Bloom filter of (tree, key) pairs.
pub(super) struct KeyFilter {
    blocks: Box<[Block]>,
    mask: u64,
    hasher: foldhash::quality::RandomState,
}

impl KeyFilter {
    /// A filter for about `keys` keys.
    pub(super) fn with_capacity(keys: usize) -> KeyFilter {
        let bits = (keys as u64)
            .saturating_mul(16)
            .clamp(MIN_BITS as u64, MAX_BITS)
            .next_power_of_two();
        let blocks = (bits / 512) as usize;
        KeyFilter {
            blocks: (0..blocks)
                .map(|_| Block(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            mask: (blocks - 1) as u64,
            hasher: foldhash::quality::RandomState::default(),
        }
    }

    /// The key's block, and its bits there as (word, bit) pairs: the hash's low 36 bits
    /// place the four bits, its upper 28 choose the block.
    fn positions(&self, tree: TreeId, key: &[u8]) -> (&Block, impl Iterator<Item = (usize, u64)>) {
        let h = self.hasher.hash_one((tree as u8, key));
        let block = &self.blocks[((h >> (HASHES * BIT_INDEX)) & self.mask) as usize];
        let bits = (0..HASHES).map(move |i| {
            let bit = (h >> (i * BIT_INDEX)) & ((1 << BIT_INDEX) - 1);
            ((bit / 64) as usize, 1u64 << (bit % 64))
        });
        (block, bits)
    }

    /// Notes that `key` is (or is about to be) in `tree`.
    pub(super) fn insert(&self, tree: TreeId, key: &[u8]) {
        let (block, bits) = self.positions(tree, key);
        for (word, bit) in bits {
            if block.0[word].load(Ordering::Relaxed) & bit == 0 {
                block.0[word].fetch_or(bit, Ordering::Relaxed);
            }
        }
    }

    /// False when `key` was certainly never inserted for `tree`.
    pub(super) fn may_contain(&self, tree: TreeId, key: &[u8]) -> bool {
        let (block, mut bits) = self.positions(tree, key);
        bits.all(|(word, bit)| block.0[word].load(Ordering::Relaxed) & bit != 0)
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

    /// At the load it is sized for (16 bits per key) the false positives stay near a plain
    /// Bloom filter's 0.24 %: 0.27 % in theory with 512-bit blocks, where the keys per block
    /// vary.
    #[test]
    fn a_filter_at_its_sized_load_answers_maybe_for_few_absent_keys() {
        let keys = MIN_BITS / 16;
        let filter = KeyFilter::with_capacity(keys);
        assert_eq!(filter.blocks.len() * 512, MIN_BITS);
        for i in 0..keys as u128 {
            filter.insert(TreeId::Federations, &i.to_le_bytes());
        }
        let probes = 200_000;
        let misses = (keys as u128..(keys + probes) as u128)
            .filter(|i| filter.may_contain(TreeId::Federations, &i.to_le_bytes()))
            .count();
        eprintln!("{misses} false positives in {probes}");
        assert!(
            misses < probes / 200,
            "{misses} false positives in {probes}"
        );
    }
}

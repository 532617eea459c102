//! The connection table's indexes of live connections: each entry is a slot alone (4 bytes,
//! where a map from key to slot takes 16 with its key), hashed and compared through the key of
//! the connection in that slot, which the caller reads for it (`key_of`). The table keeps every
//! indexed slot's connection in place until it is unindexed, so that key is always there.

use std::hash::{BuildHasher as _, Hash};

use foldhash::fast::FixedState;
use hashbrown::hash_table::{Entry, HashTable};

#[derive(Debug, Default)]
pub(super) struct SlotIndex {
    slots: HashTable<u32>,
    state: FixedState,
}

impl SlotIndex {
    /// The slot indexed under `key`.
    pub(super) fn get<K: Hash + Eq>(
        &self,
        key: &K,
        key_of: impl Fn(u32) -> Option<K>,
    ) -> Option<u32> {
        let hash = self.state.hash_one(key);
        self.slots.find(hash, |&slot| key_of(slot).as_ref() == Some(key)).copied()
    }

    /// Calls `f` with each slot that may be indexed under `key` (the one that is, and in about
    /// one call in ten another whose hash shares its 7-bit tag) without reading any slot's
    /// key: for prefetching.
    pub(super) fn candidates<K: Hash>(&self, key: &K, mut f: impl FnMut(u32)) {
        let hash = self.state.hash_one(key);
        let _ = self.slots.find(hash, |&slot| {
            f(slot);
            false
        });
    }

    /// Index `slot` under `key`, in place of a slot indexed under the same key.
    pub(super) fn insert<K: Hash + Eq>(
        &mut self,
        key: &K,
        slot: u32,
        key_of: impl Fn(u32) -> Option<K>,
    ) {
        let state = &self.state;
        let hash = state.hash_one(key);
        let rehash = |&s: &u32| key_of(s).map_or(0, |k| state.hash_one(&k));
        match self.slots.entry(hash, |&s| key_of(s).as_ref() == Some(key), rehash) {
            Entry::Occupied(mut e) => *e.get_mut() = slot,
            Entry::Vacant(e) => {
                e.insert(slot);
            }
        }
    }

    /// Stop indexing `slot` under `key`, if it is.
    pub(super) fn remove<K: Hash>(&mut self, key: &K, slot: u32) {
        let hash = self.state.hash_one(key);
        if let Ok(e) = self.slots.find_entry(hash, |&s| s == slot) {
            e.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SlotIndex;

    #[test]
    fn candidates_include_the_slot_indexed_under_a_key() {
        // Keys 1000 apart: slot s holds key keys[s].
        let keys: Vec<u64> = (0..5_000u64).map(|i| 0xffff_8880_0000_0000 + i * 1000).collect();
        let key_of = |slot: u32| keys.get(slot as usize).copied();
        let mut index = SlotIndex::default();
        for (slot, key) in keys.iter().enumerate() {
            index.insert(key, slot as u32, key_of);
        }
        let mut extra = 0;
        for (slot, key) in keys.iter().enumerate() {
            let mut found = Vec::new();
            index.candidates(key, |s| found.push(s));
            assert!(found.contains(&(slot as u32)), "slot {slot} not among {found:?}");
            extra += found.len() - 1;
        }
        // Other slots come only from a 7-bit tag shared within the group of 16 probed: about
        // one lookup in ten.
        assert!(extra < keys.len() / 4, "{extra} other candidates for {} keys", keys.len());
        let mut none = Vec::new();
        index.candidates(&1u64, |s| none.push(s));
        assert!(none.len() <= 2, "{none:?} for a key never indexed");
    }
}

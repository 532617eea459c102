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

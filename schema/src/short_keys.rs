//! A map from short byte strings to small values, for the per-thread syllable caches of the
//! analysers (the index's tokenizer, the topic rules).
//!
//! Those caches are looked up once per syllable of every petition, and their tables outgrow the
//! core's first-level cache (thousands of syllables with their case variants), so a look-up is
//! bound by its loads. A `HashMap<Box<str>, _>` reads a control group, a bucket and the key's heap
//! block (and the value's); here the key is packed into a `u128` held in the bucket next to the
//! value, and compared as one integer. A Vietnamese syllable is at most 9 bytes of UTF-8
//! (`nghiễng`).

use std::collections::HashMap;

/// Keys longer than this are not stored ([`ShortKeyMap::insert`] refuses them): callers compute
/// what they would have cached instead.
pub const MAX_KEY: usize = 15;

/// A map from byte strings of 1 to [`MAX_KEY`] bytes to `V`, each key packed into a `u128` (its
/// bytes, zeros, its length in the last byte) and held in the table itself.
///
/// At its limit the map is cleared, which bounds a cache that junk text could otherwise grow
/// without end. The hash is foldhash with random seeds per map: keys come from citizens' text,
/// and with a fixed hash anyone could write petitions whose syllables all collide.
#[derive(Debug, Clone)]
pub struct ShortKeyMap<V> {
    map: HashMap<u128, V, foldhash::fast::RandomState>,
    max_entries: usize,
}

impl<V: Copy> ShortKeyMap<V> {
    /// A map that holds up to `max_entries` keys before it starts over.
    pub fn with_max_entries(max_entries: usize) -> ShortKeyMap<V> {
        ShortKeyMap { map: HashMap::default(), max_entries: max_entries.max(1) }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }

    pub fn get(&self, key: &[u8]) -> Option<V> {
        self.map.get(&pack(key)?).copied()
    }

    /// [`ShortKeyMap::get`] of `text[from..to]`: the key is read with one 16-byte load where
    /// `text` goes on that far (almost always), which is what a tokenizer looking up each
    /// syllable of a text wants.
    pub fn get_in(&self, text: &[u8], from: usize, to: usize) -> Option<V> {
        let len = to - from;
        if len == 0 || len > MAX_KEY {
            return None;
        }
        let packed = match text.get(from..from + 16) {
            Some(window) => {
                let window = u128::from_le_bytes(window.try_into().expect("16 bytes"));
                window & ((1 << (len * 8)) - 1) | (len as u128) << 120
            }
            None => pack(&text[from..to])?,
        };
        self.map.get(&packed).copied()
    }

    /// Stores `value` under `key` (replacing any value it had); false, and nothing stored, when
    /// the key is empty or longer than [`MAX_KEY`].
    pub fn insert(&mut self, key: &[u8], value: V) -> bool {
        let Some(packed) = pack(key) else {
            return false;
        };
        if self.map.len() >= self.max_entries && !self.map.contains_key(&packed) {
            self.map.clear();
        }
        self.map.insert(packed, value);
        true
    }
}

/// A key as 16 bytes: its bytes, zeros, and its length in the last byte. Built with shifts
/// rather than copied into a buffer, which would cost a call and a stalled load.
fn pack(key: &[u8]) -> Option<u128> {
    if key.is_empty() || key.len() > MAX_KEY {
        return None;
    }
    let mut packed = (key.len() as u128) << 120;
    for (at, &byte) in key.iter().enumerate() {
        packed |= u128::from(byte) << (at * 8);
    }
    Some(packed)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn keeps_what_a_hash_map_keeps_until_it_starts_over() {
        let mut map = ShortKeyMap::with_max_entries(5_000);
        let mut reference = HashMap::new();
        let syllables = ["đất", "Đất", "ĐẤT", "dat", "nghiễng", "người", "a", "123456789012345"];
        for round in 0..3_000u32 {
            let key = format!("{}{}", syllables[round as usize % syllables.len()], round % 700);
            let key = &key.as_bytes()[..key.len().min(MAX_KEY)];
            assert!(map.insert(key, round));
            reference.insert(key.to_vec(), round);
            assert_eq!(map.len(), reference.len());
        }
        for (key, value) in &reference {
            assert_eq!(map.get(key), Some(*value));
        }
        assert_eq!(map.get(b"absent"), None);
        // Looked up inside a longer text, near its end too (no 16-byte window there).
        let text = b"xx nghi\xe1\xbb\x85ng yy a";
        let mut inside = ShortKeyMap::with_max_entries(8);
        inside.insert("nghiễng".as_bytes(), 7u32);
        inside.insert(b"a", 1);
        assert_eq!(inside.get_in(text, 3, 12), Some(7));
        assert_eq!(inside.get_in(text, 3, 11), None);
        assert_eq!(inside.get_in(text, text.len() - 1, text.len()), Some(1));
        assert_eq!(inside.get_in(text, 0, 1), None);
        assert_eq!(map.get(b""), None);
        // Keys that do not fit are refused, and found nowhere.
        assert!(!map.insert(b"0123456789abcdef", 1));
        assert!(!map.insert(b"", 1));
        assert_eq!(map.get(b"0123456789abcdef"), None);
        // A key is not a prefix of a longer one, nor equal to it padded with zeros.
        let mut small = ShortKeyMap::with_max_entries(4);
        small.insert(b"ab", 1u32);
        assert_eq!(small.get(b"a"), None);
        assert_eq!(small.get(b"ab\0"), None);
    }

    #[test]
    fn starts_over_at_its_limit() {
        let mut map = ShortKeyMap::with_max_entries(100);
        for n in 0..10_000u32 {
            map.insert(n.to_string().as_bytes(), n);
            assert!(map.len() <= 100);
            // The last key is always there.
            assert_eq!(map.get(n.to_string().as_bytes()), Some(n));
        }
    }
}

//! The requests a pool session has sent and not yet had answered, by request id.
//!
//! A session numbers its requests itself, one after another, and pools answer them nearly in
//! the order they were sent. So the entries live in a window indexed by `id - base`: sending
//! appends, an answer takes its slot, and the answered slots at the front are dropped. Every
//! share passes through here twice (sent, answered); a hash map put each entry at a random
//! place in a large table, and taking it out again was one of the hub's costliest steps per
//! share. The window keeps the entries of one burst side by side, in the order the answers
//! come back.
//!
//! A request the pool leaves unanswered while it answers later ones would hold the window open
//! behind it. The window is therefore bounded: an entry pushed out of it waits in a small map
//! of stragglers until it is answered or expires, so memory stays bounded whatever the pool
//! does.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// Most entries the window holds; older unanswered ones move to the stragglers.
const MAX_WINDOW: usize = 1 << 16;

/// Requests in flight by id (see the module doc).
#[derive(Debug)]
pub(crate) struct InFlight<T> {
    /// The id of `window[0]`.
    base: u64,
    /// Slot `i` is request `base + i`: `None` once answered (or never sent by this session).
    /// The front slot is always `Some` (answered slots at the front are dropped).
    window: VecDeque<Option<T>>,
    /// Entries in `window` that are `Some`.
    in_window: usize,
    /// Unanswered requests older than the window (or not in sequence).
    stragglers: HashMap<u64, T, BuildHasherDefault<IdHasher>>,
    max_window: usize,
}

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        Self::with_window(MAX_WINDOW)
    }
}

impl<T> InFlight<T> {
    /// A table whose window holds at most `max_window` entries (at least 1).
    pub fn with_window(max_window: usize) -> Self {
        Self {
            base: 0,
            window: VecDeque::new(),
            in_window: 0,
            stragglers: HashMap::default(),
            max_window: max_window.max(1),
        }
    }

    /// Request `id` was sent. Ids come from one counter, so this is normally the next slot of
    /// the window; an id out of sequence (the counter wrapped, an id given twice) is kept
    /// among the stragglers instead, where it is still found by id.
    pub fn insert(&mut self, id: u64, value: T) {
        if self.window.is_empty() {
            self.base = id;
        }
        let next = self.base.checked_add(self.window.len() as u64);
        if next != Some(id) {
            self.stragglers.insert(id, value);
            return;
        }
        self.window.push_back(Some(value));
        self.in_window += 1;
        while self.window.len() > self.max_window {
            if let Some(Some(old)) = self.window.pop_front() {
                self.in_window -= 1;
                self.stragglers.insert(self.base, old);
            }
            self.base = self.base.wrapping_add(1);
            self.trim_front();
        }
    }

    /// The answer to request `id` came: its entry, taken out.
    pub fn remove(&mut self, id: u64) -> Option<T> {
        if let Some(i) = self.slot_of(id) {
            let value = self.window[i].take();
            if value.is_some() {
                self.in_window -= 1;
                self.trim_front();
                return value;
            }
        }
        self.stragglers.remove(&id)
    }

    pub fn get(&self, id: u64) -> Option<&T> {
        match self.slot_of(id).and_then(|i| self.window[i].as_ref()) {
            Some(v) => Some(v),
            None => self.stragglers.get(&id),
        }
    }

    /// Every entry with its id: the stragglers first, then the window in sending order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        let base = self.base;
        self.stragglers.iter().map(|(id, v)| (*id, v)).chain(
            self.window
                .iter()
                .enumerate()
                .filter_map(move |(i, v)| Some((base.wrapping_add(i as u64), v.as_ref()?))),
        )
    }

    /// Takes every entry out (the session is over).
    pub fn take_all(&mut self) -> Vec<T> {
        let mut all: Vec<T> = self.stragglers.drain().map(|(_, v)| v).collect();
        all.extend(self.window.drain(..).flatten());
        self.in_window = 0;
        all
    }

    pub fn len(&self) -> usize {
        self.in_window + self.stragglers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Gives the window's memory back when it is empty and was grown by a burst.
    pub fn release_memory(&mut self) {
        if self.window.is_empty() && self.window.capacity() > 1024 {
            self.window = VecDeque::new();
        }
        if self.stragglers.is_empty() && self.stragglers.capacity() > 64 {
            self.stragglers = HashMap::default();
        }
    }

    fn slot_of(&self, id: u64) -> Option<usize> {
        let i = usize::try_from(id.checked_sub(self.base)?).ok()?;
        (i < self.window.len()).then_some(i)
    }

    fn trim_front(&mut self) {
        while matches!(self.window.front(), Some(None)) {
            self.window.pop_front();
            self.base = self.base.wrapping_add(1);
        }
    }
}

/// Hasher for the session's own request ids (the stragglers' keys): Fibonacci hashing, which
/// maps sequential ids to distinct buckets and fills the high bits the table's tags use. The
/// ids are never chosen by the pool, so they need no keyed hash.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by `u64` keys; an FNV-style byte loop keeps other keys correct.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn answers_in_order_leave_nothing_behind() {
        let mut f = InFlight::default();
        for id in 10..20u64 {
            f.insert(id, id * 2);
        }
        assert_eq!(f.len(), 10);
        for id in 10..20u64 {
            assert_eq!(f.remove(id), Some(id * 2));
        }
        assert!(f.is_empty());
        assert_eq!(
            f.window.len(),
            0,
            "answered slots are dropped from the front"
        );
        assert_eq!(f.remove(15), None, "an answer never counts twice");
    }

    #[test]
    fn an_unanswered_request_moves_out_of_a_full_window_and_is_still_found() {
        let mut f = InFlight::with_window(4);
        f.insert(100, "silent");
        for id in 101..110u64 {
            f.insert(id, "answered");
            assert_eq!(f.remove(id), Some("answered"));
        }
        assert!(f.window.len() <= 4, "the window stays bounded");
        assert_eq!(f.get(100), Some(&"silent"));
        assert_eq!(f.remove(100), Some("silent"));
        assert!(f.is_empty());
    }

    #[test]
    fn ids_out_of_sequence_are_kept_by_id() {
        let mut f = InFlight::default();
        f.insert(5, 'a');
        f.insert(7, 'b'); // skips 6
        f.insert(6, 'c');
        assert_eq!(f.len(), 3);
        assert_eq!(f.remove(7), Some('b'));
        assert_eq!(f.remove(5), Some('a'));
        assert_eq!(f.remove(6), Some('c'));
        assert!(f.is_empty());
        f.insert(u64::MAX, 'z');
        f.insert(10, 'y'); // the counter wrapped
        assert_eq!(f.remove(u64::MAX), Some('z'));
        assert_eq!(f.remove(10), Some('y'));
    }

    proptest! {
        /// Whatever the order of sends and answers (and answers to ids never sent), the table
        /// holds exactly what a plain map would.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((0u8..4, 0u64..48), 0..400), window in 1usize..16) {
            let mut f = InFlight::with_window(window);
            let mut model: BTreeMap<u64, u64> = BTreeMap::new();
            let mut next = 1_000u64;
            for (op, x) in ops {
                match op {
                    0 | 1 => {
                        f.insert(next, next ^ 0xabc);
                        model.insert(next, next ^ 0xabc);
                        next += 1;
                    }
                    2 => {
                        let id = next.saturating_sub(x + 1);
                        prop_assert_eq!(f.remove(id), model.remove(&id));
                    }
                    _ => {
                        let id = next.saturating_sub(x + 1);
                        prop_assert_eq!(f.get(id), model.get(&id));
                    }
                }
                prop_assert_eq!(f.len(), model.len());
                prop_assert!(f.window.len() <= window);
                prop_assert!(!matches!(f.window.front(), Some(None)));
            }
            let mut listed: Vec<(u64, u64)> = f.iter().map(|(id, v)| (id, *v)).collect();
            listed.sort_unstable();
            prop_assert_eq!(listed, model.clone().into_iter().collect::<Vec<_>>());
            let mut all = f.take_all();
            all.sort_unstable();
            let mut values: Vec<u64> = model.into_values().collect();
            values.sort_unstable();
            prop_assert_eq!(all, values);
            prop_assert!(f.is_empty());
        }
    }
}

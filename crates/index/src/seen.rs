//! The set of rows a running scan found on disk, kept in memory by row id.
//!
//! A bit per row id below [`DENSE_LIMIT`] (row ids are handed out in order, so
//! they stay close to the number of rows ever written: 100 000 files take
//! 12.5 KB); any id beyond that, which only a hand-edited database would hold,
//! goes to an ordered set. Marking a row is a bit flip instead of a B-tree
//! insert into a temporary table for every entry of every scan.

use std::collections::BTreeSet;

/// Row ids below this are kept as bits (at most 8 MiB of bitmap).
const DENSE_LIMIT: i64 = 1 << 26;

/// A row of the `files` table, as found by
/// [`Writer::stored_state`](crate::Writer::stored_state); only good for marking
/// it seen ([`Writer::mark_seen_row`](crate::Writer::mark_seen_row)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowId(pub(crate) i64);

#[derive(Debug, Default)]
pub(crate) struct Seen {
    bits: Vec<u64>,
    far: BTreeSet<i64>,
}

impl Seen {
    pub(crate) fn clear(&mut self) {
        self.bits = Vec::new();
        self.far.clear();
    }

    pub(crate) fn insert(&mut self, id: i64) {
        match dense(id) {
            Some((word, bit)) => {
                if self.bits.len() <= word {
                    self.bits.resize(word + 1, 0);
                }
                if let Some(w) = self.bits.get_mut(word) {
                    *w |= bit;
                }
            }
            None => {
                self.far.insert(id);
            }
        }
    }

    pub(crate) fn contains(&self, id: i64) -> bool {
        match dense(id) {
            Some((word, bit)) => self.bits.get(word).is_some_and(|w| w & bit != 0),
            None => self.far.contains(&id),
        }
    }
}

fn dense(id: i64) -> Option<(usize, u64)> {
    if (0..DENSE_LIMIT).contains(&id) {
        let word = usize::try_from(id / 64).ok()?;
        Some((word, 1u64 << (id % 64)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_far_ids() {
        let mut s = Seen::default();
        let ids = [
            0,
            1,
            63,
            64,
            1000,
            DENSE_LIMIT - 1,
            DENSE_LIMIT,
            -5,
            i64::MAX,
            i64::MIN,
        ];
        for &id in &ids {
            assert!(!s.contains(id), "{id}");
            s.insert(id);
            assert!(s.contains(id), "{id}");
        }
        assert!(!s.contains(2) && !s.contains(65) && !s.contains(DENSE_LIMIT + 1));
        assert!(s.bits.len() <= usize::try_from(DENSE_LIMIT / 64).unwrap());
        s.clear();
        assert!(ids.iter().all(|&id| !s.contains(id)));
    }
}

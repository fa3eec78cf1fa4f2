//! Version vectors: which peer changed a file how many times.

use std::cmp::Ordering;

use keys::ShortId;

/// How two version vectors relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionOrdering {
    /// The same version.
    Equal,
    /// The left side has seen everything the right side has, and more: it wins.
    Greater,
    /// The right side dominates.
    Lesser,
    /// Each side has changes the other has not seen: a conflict.
    Concurrent,
}

impl VersionOrdering {
    /// The ordering seen from the other side.
    pub const fn reverse(self) -> Self {
        match self {
            Self::Greater => Self::Lesser,
            Self::Lesser => Self::Greater,
            other => other,
        }
    }
}

/// A version vector: for each peer that changed the file, how many changes it made.
///
/// Kept sorted by peer with no zero counters, so equal vectors have one
/// representation (and one encoding). A peer absent from the vector has counter 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct VersionVector(Vec<(ShortId, u64)>);

impl VersionVector {
    /// The empty vector (no changes by anyone).
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Builds a vector from pairs, which must be strictly increasing by peer and
    /// have non-zero counters; returns the first offending peer otherwise.
    pub fn from_sorted(entries: Vec<(ShortId, u64)>) -> Result<Self, ShortId> {
        let mut prev: Option<ShortId> = None;
        for &(peer, counter) in &entries {
            if counter == 0 || prev.is_some_and(|p| p >= peer) {
                return Err(peer);
            }
            prev = Some(peer);
        }
        Ok(Self(entries))
    }

    /// The entries, sorted by peer.
    pub fn entries(&self) -> &[(ShortId, u64)] {
        &self.0
    }

    /// Number of peers with a non-zero counter.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no peer has changed anything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The counter of `peer` (0 when absent).
    pub fn get(&self, peer: ShortId) -> u64 {
        match self.0.binary_search_by_key(&peer, |&(p, _)| p) {
            Ok(i) => self.0.get(i).map_or(0, |&(_, c)| c),
            Err(_) => 0,
        }
    }

    /// Records one more change by `peer`. Saturates at `u64::MAX` (unreachable
    /// in practice: one change per nanosecond for 584 years).
    pub fn increment(&mut self, peer: ShortId) {
        match self.0.binary_search_by_key(&peer, |&(p, _)| p) {
            Ok(i) => {
                if let Some(entry) = self.0.get_mut(i) {
                    entry.1 = entry.1.saturating_add(1);
                }
            }
            Err(i) => self.0.insert(i, (peer, 1)),
        }
    }

    /// This vector with one more change by `peer`.
    #[must_use]
    pub fn incremented(mut self, peer: ShortId) -> Self {
        self.increment(peer);
        self
    }

    /// The pointwise maximum: a version that has seen both.
    #[must_use]
    pub fn merge(&self, other: &Self) -> Self {
        let mut out = Vec::with_capacity(self.0.len().max(other.0.len()));
        let (mut a, mut b) = (self.0.iter().peekable(), other.0.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(&&(pa, ca)), Some(&&(pb, cb))) => match pa.cmp(&pb) {
                    Ordering::Less => {
                        out.push((pa, ca));
                        a.next();
                    }
                    Ordering::Greater => {
                        out.push((pb, cb));
                        b.next();
                    }
                    Ordering::Equal => {
                        out.push((pa, ca.max(cb)));
                        a.next();
                        b.next();
                    }
                },
                (Some(&&x), None) => {
                    out.push(x);
                    a.next();
                }
                (None, Some(&&x)) => {
                    out.push(x);
                    b.next();
                }
                (None, None) => break,
            }
        }
        Self(out)
    }

    /// How `self` relates to `other`.
    pub fn compare(&self, other: &Self) -> VersionOrdering {
        let (mut greater, mut lesser) = (false, false);
        let (mut a, mut b) = (self.0.iter().peekable(), other.0.iter().peekable());
        loop {
            let step = match (a.peek(), b.peek()) {
                (Some(&&(pa, ca)), Some(&&(pb, cb))) => match pa.cmp(&pb) {
                    Ordering::Less => {
                        a.next();
                        Ordering::Greater
                    }
                    Ordering::Greater => {
                        b.next();
                        Ordering::Less
                    }
                    Ordering::Equal => {
                        a.next();
                        b.next();
                        ca.cmp(&cb)
                    }
                },
                (Some(_), None) => {
                    a.next();
                    Ordering::Greater
                }
                (None, Some(_)) => {
                    b.next();
                    Ordering::Less
                }
                (None, None) => break,
            };
            match step {
                Ordering::Greater => greater = true,
                Ordering::Less => lesser = true,
                Ordering::Equal => {}
            }
        }
        match (greater, lesser) {
            (false, false) => VersionOrdering::Equal,
            (true, false) => VersionOrdering::Greater,
            (false, true) => VersionOrdering::Lesser,
            (true, true) => VersionOrdering::Concurrent,
        }
    }

    /// Whether `self` has seen everything `other` has (Greater or Equal).
    pub fn dominates(&self, other: &Self) -> bool {
        matches!(
            self.compare(other),
            VersionOrdering::Greater | VersionOrdering::Equal
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn arb_vv() -> impl Strategy<Value = VersionVector> {
        proptest::collection::btree_map(0u64..6, 1u64..5, 0..5)
            .prop_map(|m| VersionVector(m.into_iter().map(|(p, c)| (ShortId(p), c)).collect()))
    }

    #[test]
    fn basic_ordering() {
        let (a, b) = (ShortId(1), ShortId(2));
        let v0 = VersionVector::new();
        let v1 = v0.clone().incremented(a);
        let v2 = v1.clone().incremented(b);
        let v3 = v1.clone().incremented(a);
        assert_eq!(v0.compare(&v0), VersionOrdering::Equal);
        assert_eq!(v1.compare(&v0), VersionOrdering::Greater);
        assert_eq!(v0.compare(&v1), VersionOrdering::Lesser);
        assert_eq!(v2.compare(&v3), VersionOrdering::Concurrent);
        assert_eq!(v2.merge(&v3).entries(), &[(a, 2), (b, 1)]);
        assert_eq!(v3.get(a), 2);
        assert_eq!(v3.get(b), 0);
    }

    #[test]
    fn from_sorted_rejects_duplicates_and_zeroes() {
        let dup = vec![(ShortId(1), 1), (ShortId(1), 2)];
        assert_eq!(VersionVector::from_sorted(dup), Err(ShortId(1)));
        let zero = vec![(ShortId(1), 0)];
        assert_eq!(VersionVector::from_sorted(zero), Err(ShortId(1)));
        let unsorted = vec![(ShortId(2), 1), (ShortId(1), 1)];
        assert_eq!(VersionVector::from_sorted(unsorted), Err(ShortId(1)));
    }

    proptest! {
        #[test]
        fn merge_commutes(a in arb_vv(), b in arb_vv()) {
            prop_assert_eq!(a.merge(&b), b.merge(&a));
        }

        #[test]
        fn merge_associates(a in arb_vv(), b in arb_vv(), c in arb_vv()) {
            prop_assert_eq!(a.merge(&b).merge(&c), a.merge(&b.merge(&c)));
        }

        #[test]
        fn merge_is_idempotent(a in arb_vv(), b in arb_vv()) {
            prop_assert_eq!(a.merge(&a), a.clone());
            let m = a.merge(&b);
            prop_assert_eq!(m.merge(&b), m.clone());
        }

        #[test]
        fn merge_dominates_both(a in arb_vv(), b in arb_vv()) {
            let m = a.merge(&b);
            prop_assert!(m.dominates(&a) && m.dominates(&b));
        }

        #[test]
        fn compare_is_antisymmetric(a in arb_vv(), b in arb_vv()) {
            prop_assert_eq!(a.compare(&b), b.compare(&a).reverse());
            prop_assert_eq!(a.compare(&b) == VersionOrdering::Equal, a == b);
        }

        #[test]
        fn compare_matches_pointwise(a in arb_vv(), b in arb_vv()) {
            let peers: std::collections::BTreeSet<_> =
                a.entries().iter().chain(b.entries()).map(|&(p, _)| p).collect();
            let ge = peers.iter().all(|&p| a.get(p) >= b.get(p));
            let le = peers.iter().all(|&p| a.get(p) <= b.get(p));
            let want = match (ge, le) {
                (true, true) => VersionOrdering::Equal,
                (true, false) => VersionOrdering::Greater,
                (false, true) => VersionOrdering::Lesser,
                (false, false) => VersionOrdering::Concurrent,
            };
            prop_assert_eq!(a.compare(&b), want);
        }

        #[test]
        fn increment_dominates(a in arb_vv(), p in 0u64..8) {
            let b = a.clone().incremented(ShortId(p));
            prop_assert_eq!(b.compare(&a), VersionOrdering::Greater);
            prop_assert!(VersionVector::from_sorted(b.entries().to_vec()).is_ok());
        }

        #[test]
        fn compare_is_transitive(a in arb_vv(), b in arb_vv(), c in arb_vv()) {
            if a.dominates(&b) && b.dominates(&c) {
                prop_assert!(a.dominates(&c));
            }
        }
    }
}

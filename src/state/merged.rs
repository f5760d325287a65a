//! The closed buckets of a store in one ordered stream, from its two
//! homes: the packs compaction writes and the buckets saved one by one
//! since. Both are sorted by start; a bucket's own record wins over a
//! packed copy of the same start (none is written twice today, but a
//! reader should not depend on it).

use std::iter::Peekable;

use super::StoreError;
use crate::window::Bucket;

/// [`Iterator`] of buckets oldest first, merging two sorted streams.
pub(super) struct MergeByStart<P: Iterator, S: Iterator> {
    packed: Peekable<P>,
    singles: Peekable<S>,
}

type Item = Result<Bucket, StoreError>;

impl<P, S> MergeByStart<P, S>
where
    P: Iterator<Item = Item>,
    S: Iterator<Item = Item>,
{
    pub(super) fn new(packed: P, singles: S) -> Self {
        MergeByStart {
            packed: packed.peekable(),
            singles: singles.peekable(),
        }
    }
}

/// Which stream gives the next bucket.
enum Next {
    Packed,
    Single,
    /// Both hold the same start: the single one, the packed copy dropped.
    SingleOverPacked,
}

impl<P, S> Iterator for MergeByStart<P, S>
where
    P: Iterator<Item = Item>,
    S: Iterator<Item = Item>,
{
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        let next = match (self.packed.peek(), self.singles.peek()) {
            (None, None) => return None,
            // An error comes out as soon as it is met.
            (Some(Err(_)), _) | (Some(_), None) => Next::Packed,
            (_, Some(Err(_))) | (None, Some(_)) => Next::Single,
            (Some(Ok(packed)), Some(Ok(single))) => match packed.start.cmp(&single.start) {
                std::cmp::Ordering::Less => Next::Packed,
                std::cmp::Ordering::Greater => Next::Single,
                std::cmp::Ordering::Equal => Next::SingleOverPacked,
            },
        };
        match next {
            Next::Packed => self.packed.next(),
            Next::Single => self.singles.next(),
            Next::SingleOverPacked => {
                self.packed.next();
                self.singles.next()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(start: i64, total_posts: u64) -> Item {
        Ok(Bucket {
            start,
            total_posts,
            ..Bucket::default()
        })
    }

    fn merged(packed: Vec<Item>, singles: Vec<Item>) -> Vec<(i64, u64)> {
        MergeByStart::new(packed.into_iter(), singles.into_iter())
            .map(|b| b.map(|b| (b.start, b.total_posts)).expect("no error"))
            .collect()
    }

    #[test]
    fn buckets_come_oldest_first_and_a_single_wins_over_its_packed_copy() {
        // (packed, singles, what comes out: (start, total_posts)).
        type Case = (Vec<Item>, Vec<Item>, Vec<(i64, u64)>);
        let cases: [Case; 5] = [
            (vec![], vec![], vec![]),
            (
                vec![bucket(0, 1), bucket(10, 1)],
                vec![],
                vec![(0, 1), (10, 1)],
            ),
            (vec![], vec![bucket(0, 2)], vec![(0, 2)]),
            (
                vec![bucket(0, 1), bucket(20, 1)],
                vec![bucket(10, 2), bucket(30, 2)],
                vec![(0, 1), (10, 2), (20, 1), (30, 2)],
            ),
            (
                vec![bucket(0, 1), bucket(10, 1), bucket(20, 1)],
                vec![bucket(10, 2), bucket(40, 2)],
                vec![(0, 1), (10, 2), (20, 1), (40, 2)],
            ),
        ];
        for (packed, singles, expected) in cases {
            assert_eq!(merged(packed, singles), expected);
        }
    }

    #[test]
    fn an_error_comes_out_in_its_place() {
        let damaged = || {
            Err(StoreError::Corrupt {
                what: "pack".into(),
                detail: "fails its checksum".into(),
            })
        };
        let out: Vec<Item> = MergeByStart::new(
            vec![bucket(0, 1), damaged()].into_iter(),
            vec![bucket(5, 2)].into_iter(),
        )
        .collect();
        assert_eq!(out.len(), 3);
        assert!(
            out[0].is_ok() && out[1].is_err() && out[2].is_ok(),
            "{out:?}"
        );
    }
}

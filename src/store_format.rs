//! Reading what an older store format wrote. The windows' types (buckets,
//! the discovered names) and the sources' clocks are saved in postcard,
//! where a record is its
//! fields in order: a field added or retyped makes the older bytes
//! unreadable as the new type. Rather than a copy of each type in each old
//! layout, the few fields that changed read differently while a record of
//! an older format is being read ([`reading_format`]): an author held by
//! id reads as its digest ([`crate::window::AuthorId`], format 7), and a field
//! added in a later format reads as empty without taking any bytes
//! ([`AddedIn`]: the servers of format 8, a source's usual delay of
//! format 9, a held-back author's last use and copied text of format 10).

use std::cell::Cell;

use serde::{Deserialize, Deserializer, Serialize};

thread_local! {
    /// The store format of the records being read; `None`: this build's.
    static READING: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Runs `read` with every record it deserialises read in the layout of
/// store format `format` (the mode ends with it, on every path out).
pub fn reading_format<T>(format: u32, read: impl FnOnce() -> T) -> T {
    struct Reset(Option<u32>);
    impl Drop for Reset {
        fn drop(&mut self) {
            READING.set(self.0);
        }
    }
    let _reset = Reset(READING.replace(Some(format)));
    read()
}

/// Whether the records being read were written before store format
/// `format`.
pub(crate) fn reading_before(format: u32) -> bool {
    READING.get().is_some_and(|reading| reading < format)
}

/// A field added in store format `IN`: saved as the value itself; read as
/// its default (taking no bytes) from a record of an older format, and
/// from JSON without it (with `#[serde(default)]` on the field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AddedIn<const IN: u32, T>(pub T);

/// The servers that vouch for authors ([`crate::window::ServiceCounts::servers`]).
pub type AddedIn8<T> = AddedIn<8, T>;

/// A source's usual delay behind the arrival clock
/// ([`crate::source::delay::UsualDelay`]).
pub type AddedIn9<T> = AddedIn<9, T>;

/// When a discovered name's held-back author last used it, and their
/// copied text ([`crate::window::HeldBack`]).
pub type AddedIn10<T> = AddedIn<10, T>;

impl<'de, const IN: u32, T: Deserialize<'de> + Default> Deserialize<'de> for AddedIn<IN, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if reading_before(IN) {
            Ok(AddedIn(T::default()))
        } else {
            T::deserialize(deserializer).map(AddedIn)
        }
    }
}

impl<const IN: u32, T> std::ops::Deref for AddedIn<IN, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<const IN: u32, T> std::ops::DerefMut for AddedIn<IN, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Before {
        a: u32,
        b: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct After {
        a: u32,
        b: String,
        #[serde(default)]
        added: AddedIn8<Vec<u64>>,
    }

    /// A record written before the field existed reads with it empty,
    /// in postcard (no bytes for it) and JSON (no key); one written
    /// since reads it back; and the mode ends with the read, even one
    /// that fails.
    #[test]
    fn a_field_added_in_8_reads_as_empty_from_older_records() {
        let old = Before {
            a: 7,
            b: "x".into(),
        };
        let bytes = postcard::to_allocvec(&old).expect("encode");
        let read: After =
            reading_format(7, || postcard::from_bytes(&bytes)).expect("an old record reads");
        assert_eq!((read.a, read.b.as_str(), read.added.len()), (7, "x", 0));
        assert!(
            postcard::from_bytes::<After>(&bytes).is_err(),
            "outside the mode the field's bytes are missing"
        );
        let json = serde_json::to_vec(&old).expect("json");
        let read: After = reading_format(1, || serde_json::from_slice(&json)).expect("json");
        assert_eq!(read.added.len(), 0);

        let new = After {
            a: 1,
            b: "y".into(),
            added: AddedIn(vec![3, 4]),
        };
        let bytes = postcard::to_allocvec(&new).expect("encode");
        assert_eq!(postcard::from_bytes::<After>(&bytes).expect("decode"), new);
        assert_eq!(
            reading_format(8, || postcard::from_bytes::<After>(&bytes)).expect("decode"),
            new
        );
        let failed = reading_format(7, || postcard::from_bytes::<After>(&[0xff]));
        assert!(failed.is_err());
        assert!(!reading_before(8), "the mode ended with the failed read");
    }
}

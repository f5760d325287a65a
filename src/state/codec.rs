//! How a record becomes bytes and back: the one place that knows the
//! encoding (JSON today; issue 15 changes it here).
//!
//! Checksummed records (buckets, baselines, the checkpoint) carry a tag,
//! a version and an xxh3 of their bytes in front, so damage at rest is
//! found when they are read. Outbox records are plain JSON (they always
//! were; a damaged one is reported when it is read).
//!
//! Writing is checked: a record is read back before it is stored, so a
//! value JSON cannot hold (a non-finite number becomes `null`) is an error
//! at the write that made it, not a store that cannot be opened at the
//! next start.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

/// Prefix of a checksummed record: tag, version, then 8 bytes of xxh3.
const RECORD_TAG: &[u8; 2] = b"#1";

/// `value` as plain JSON, checked to read back as the same type.
pub fn encode_plain<T>(what: &str, value: &T) -> Result<Vec<u8>, StoreError>
where
    T: Serialize + DeserializeOwned,
{
    let unwritable = |detail: String| StoreError::Unwritable {
        what: what.to_owned(),
        detail,
    };
    let bytes = serde_json::to_vec(value).map_err(|e| unwritable(e.to_string()))?;
    serde_json::from_slice::<T>(&bytes)
        .map_err(|e| unwritable(format!("it would not read back ({e})")))?;
    Ok(bytes)
}

/// `value` as a checksummed record.
pub fn encode<T>(what: &str, value: &T) -> Result<Vec<u8>, StoreError>
where
    T: Serialize + DeserializeOwned,
{
    let json = encode_plain(what, value)?;
    let mut out = Vec::with_capacity(json.len() + 10);
    out.extend_from_slice(RECORD_TAG);
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&json).to_le_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// A checksummed record's JSON, if its checksum holds (records from before
/// checksums, plain JSON objects, are taken as they are).
pub fn open(bytes: &[u8]) -> Option<&[u8]> {
    match bytes.strip_prefix(RECORD_TAG) {
        Some(rest) if rest.len() >= 8 => {
            let (sum, json) = rest.split_at(8);
            let want = u64::from_le_bytes(sum.try_into().ok()?);
            (xxhash_rust::xxh3::xxh3_64(json) == want).then_some(json)
        }
        Some(_) => None,
        None => bytes.first().is_some_and(|b| *b == b'{').then_some(bytes),
    }
}

/// Reads a record's JSON (after [`open`], or an outbox record).
pub fn decode<T: DeserializeOwned>(what: &str, json: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(json).map_err(|source| StoreError::Corrupt {
        what: what.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_record_reads_back_and_damage_is_seen() {
        let value: BTreeMap<i64, f64> = [(1, 2.5), (-3, 0.0)].into();
        let bytes = encode("test", &value).expect("encode");
        let json = open(&bytes).expect("checksum holds");
        assert_eq!(
            decode::<BTreeMap<i64, f64>>("test", json).expect("decode"),
            value
        );
        let mut damaged = bytes.clone();
        let last = damaged.len() - 2;
        damaged[last] ^= 1;
        assert!(
            open(&damaged).is_none(),
            "a flipped byte fails the checksum"
        );
        assert_eq!(open(br#"{"old":1}"#), Some(br#"{"old":1}"#.as_slice()));
        assert_eq!(
            open(b"\0\0\0\0\0\0\0\x07"),
            None,
            "a cursor is not a record"
        );
    }

    #[test]
    fn a_value_json_cannot_hold_is_an_error_not_null() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let value: BTreeMap<i64, f64> = [(1, bad)].into();
            match encode("baseline of x", &value) {
                Err(StoreError::Unwritable { what, detail }) => {
                    assert_eq!(what, "baseline of x");
                    assert!(detail.contains("read back"), "{detail}");
                }
                other => panic!("{bad} must not be written: {other:?}"),
            }
        }
    }
}

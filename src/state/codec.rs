//! How a record becomes bytes and back: the one place that knows the
//! encodings.
//!
//! **Records** (buckets, baselines, the checkpoint with the detector's
//! snapshot) are written on every closed bucket, so their encoding is on the
//! hot path: [postcard](https://docs.rs/postcard), a compact binary form
//! that holds every value exactly (floats bit for bit, non-finite ones
//! included), so nothing needs reading back to be trusted. Each carries a
//! tag naming its encoding and an xxh3 of its bytes in front, so damage at
//! rest is found when it is read. Records written before this encoding
//! (JSON, tag `#1`, store format 1) are still read; they are replaced as
//! they are written again.
//!
//! Postcard is not self-describing: a record's layout is its type's field
//! order. A change to a stored type's fields is a change of format: bump
//! [`super::FORMAT`] and teach [`super::migrate`] the step (a new tag here
//! keeps the old records readable).
//!
//! **Outbox records** (alerts, retry states, dead letters) are plain JSON,
//! written once per alert and read by people (`outagewatch alerts`); JSON
//! cannot hold every value (a non-finite number becomes `null`), so they
//! are read back before they are stored, and such a value is an error at
//! the write that made it, not a store that cannot be opened at the next
//! start.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

/// Prefix of a record: tag, then 8 bytes of xxh3 of the body.
const POSTCARD_TAG: &[u8; 2] = b"#2";
/// Records of store format 1, read only.
const JSON_TAG: &[u8; 2] = b"#1";
const HEADER: usize = 10;

/// A record's body once its checksum holds, in the encoding it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    Postcard(&'a [u8]),
    Json(&'a [u8]),
}

/// `value` as a checksummed record.
pub fn encode<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(POSTCARD_TAG);
    out.extend_from_slice(&[0; 8]);
    let mut out = postcard::to_extend(value, out).map_err(|e| StoreError::Unwritable {
        what: what.to_owned(),
        detail: e.to_string(),
    })?;
    let sum = xxhash_rust::xxh3::xxh3_64(&out[HEADER..]).to_le_bytes();
    out[2..HEADER].copy_from_slice(&sum);
    Ok(out)
}

/// The bytes `value` takes in a record's body (its header aside).
pub fn encoded_len<T: Serialize>(value: &T) -> Result<usize, StoreError> {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default()).map_err(|e| {
        StoreError::Unwritable {
            what: "a record".into(),
            detail: e.to_string(),
        }
    })
}

/// A record's body, if its checksum holds (records from before checksums,
/// plain JSON objects, are taken as they are).
pub fn open(bytes: &[u8]) -> Option<Body<'_>> {
    if let Some(rest) = bytes.strip_prefix(POSTCARD_TAG) {
        checked(rest).map(Body::Postcard)
    } else if let Some(rest) = bytes.strip_prefix(JSON_TAG) {
        checked(rest).map(Body::Json)
    } else {
        bytes
            .first()
            .is_some_and(|b| *b == b'{')
            .then_some(Body::Json(bytes))
    }
}

/// The body after a record's checksum, if it holds.
fn checked(rest: &[u8]) -> Option<&[u8]> {
    let (sum, body) = rest.split_at_checked(8)?;
    let want = u64::from_le_bytes(sum.try_into().ok()?);
    (xxhash_rust::xxh3::xxh3_64(body) == want).then_some(body)
}

/// Reads a record's body (after [`open`]).
pub fn decode<T: DeserializeOwned>(what: &str, body: Body<'_>) -> Result<T, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        what: what.to_owned(),
        detail,
    };
    match body {
        Body::Postcard(bytes) => {
            let (value, rest) =
                postcard::take_from_bytes(bytes).map_err(|e| corrupt(e.to_string()))?;
            if !rest.is_empty() {
                return Err(corrupt(format!(
                    "{} bytes left over after the record",
                    rest.len()
                )));
            }
            Ok(value)
        }
        Body::Json(json) => decode_plain(what, json),
    }
}

/// `value` as plain JSON (outbox records), checked to read back as the
/// same type.
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

/// Reads a plain JSON record (the outbox's).
pub fn decode_plain<T: DeserializeOwned>(what: &str, json: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(json).map_err(|e| StoreError::Corrupt {
        what: what.to_owned(),
        detail: e.to_string(),
    })
}

/// A record as store format 1 wrote it (JSON behind tag `#1`), for the
/// tests of reading old stores.
#[cfg(test)]
pub fn encode_format_1<T: Serialize>(value: &T) -> Vec<u8> {
    let json = serde_json::to_vec(value).expect("JSON");
    let mut bytes = JSON_TAG.to_vec();
    bytes.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&json).to_le_bytes());
    bytes.extend_from_slice(&json);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_record_reads_back_and_damage_is_seen() {
        let value: BTreeMap<i64, f64> = [(1, 2.5), (-3, 0.0)].into();
        let bytes = encode("test", &value).expect("encode");
        let body = open(&bytes).expect("checksum holds");
        assert!(matches!(body, Body::Postcard(_)));
        assert_eq!(
            decode::<BTreeMap<i64, f64>>("test", body).expect("decode"),
            value
        );
        for at in [0, 1, 5, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 1;
            assert!(
                open(&damaged).is_none_or(|b| decode::<BTreeMap<i64, f64>>("t", b).is_err()),
                "a flipped byte at {at} is seen"
            );
        }
        assert!(open(&bytes[..9]).is_none(), "a cut header is damage");
        assert_eq!(
            open(br#"{"old":1}"#),
            Some(Body::Json(br#"{"old":1}"#.as_slice()))
        );
        assert_eq!(
            open(b"\0\0\0\0\0\0\0\x07"),
            None,
            "a cursor is not a record"
        );
    }

    /// Format 1 wrote JSON behind tag `#1`; those records still read.
    #[test]
    fn a_json_record_of_format_1_still_reads() {
        let bytes = encode_format_1(&serde_json::json!({"1": 2.5, "-3": 0.0}));
        assert!(bytes.starts_with(b"#1"));
        let body = open(&bytes).expect("checksum holds");
        let value: BTreeMap<i64, f64> = decode("old", body).expect("decode");
        assert_eq!(value, [(1, 2.5), (-3, 0.0)].into());
    }

    /// Non-finite numbers and the last bit of a float survive (JSON turned
    /// a NaN into `null`; the detector's state must come back exactly).
    #[test]
    fn every_float_reads_back_bit_for_bit() {
        let floats = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.1 + 0.2,
            f64::MIN_POSITIVE,
            -0.0,
        ];
        let bytes = encode("floats", &floats.to_vec()).expect("encode");
        let back: Vec<f64> = decode("floats", open(&bytes).expect("open")).expect("decode");
        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&floats));
    }

    #[test]
    fn trailing_bytes_and_the_wrong_type_are_corrupt_records_naming_what() {
        let bytes = encode("pair", &(7u8, 9u8)).expect("encode");
        match decode::<u8>("bucket 42", open(&bytes).expect("open")) {
            Err(StoreError::Corrupt { what, detail }) => {
                assert_eq!(what, "bucket 42");
                assert!(detail.contains("left over"), "{detail}");
            }
            other => panic!("must be corrupt: {other:?}"),
        }
        // Postcard is not self-describing: a record of another type is
        // seen only when its bytes cannot be that type (here a length of
        // 3 with no text after it); the store's format number guards the
        // rest.
        let bytes = encode("count", &3u8).expect("encode");
        assert!(matches!(
            decode::<String>("baseline of x", open(&bytes).expect("open")),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_value_json_cannot_hold_is_an_error_in_the_outbox_not_null() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let value: BTreeMap<i64, f64> = [(1, bad)].into();
            match encode_plain("alert", &value) {
                Err(StoreError::Unwritable { what, detail }) => {
                    assert_eq!(what, "alert");
                    assert!(detail.contains("read back"), "{detail}");
                }
                other => panic!("{bad} must not be written: {other:?}"),
            }
        }
    }
}

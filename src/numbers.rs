//! Checked numbers for configuration keys and flags.
//!
//! A duration or rate from a file or a flag is written by a person, maybe a
//! careless one: `inf`, `1e300`, `-1` or `0` must be a clear error naming
//! the key, never a panic deep inside (`Duration::from_secs_f64(inf)`
//! panics) and never a busy loop (`status_secs = 0`). Every such key is
//! read through one of these helpers, with its bounds in its declaration;
//! the README's "Limits" section lists them.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// `value` if it is finite and within `min..=max`, else why not.
pub fn check_f64(value: f64, min: f64, max: f64) -> Result<f64, String> {
    if !value.is_finite() {
        return Err(format!("must be a finite number, got {value}"));
    }
    if !(min..=max).contains(&value) {
        return Err(format!("must be from {min} to {max}, got {value}"));
    }
    Ok(value)
}

/// `value` if it is within `min..=max`, else why not.
pub fn check_int<T: PartialOrd + std::fmt::Display + Copy>(
    value: T,
    min: T,
    max: T,
) -> Result<T, String> {
    if !(min..=max).contains(&value) {
        return Err(format!("must be from {min} to {max}, got {value}"));
    }
    Ok(value)
}

/// Serde `deserialize_with` for a float key bounded to
/// `MIN_MILLI / 1000 ..= MAX_MILLI / 1000` (const generics cannot be
/// floats, so bounds are in thousandths). Integers are accepted too
/// (`watchdog_secs = 30`).
pub fn float<'de, D, const MIN_MILLI: i64, const MAX_MILLI: i64>(d: D) -> Result<f64, D::Error>
where
    D: Deserializer<'de>,
{
    let value = f64::deserialize(d)?;
    check_f64(value, MIN_MILLI as f64 / 1000.0, MAX_MILLI as f64 / 1000.0)
        .map_err(serde::de::Error::custom)
}

/// Serde `deserialize_with` for an integer key bounded to `MIN..=MAX`,
/// stored as any integer type `T` the bounds fit in.
pub fn int<'de, D, T, const MIN: i64, const MAX: i64>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    let value = i64::deserialize(d)?;
    let value = check_int(value, MIN, MAX).map_err(serde::de::Error::custom)?;
    T::try_from(value).map_err(|_| serde::de::Error::custom(format!("{value} is out of range")))
}

/// [`int`] for a key that may be left out (`Option`; the struct's
/// `#[serde(default)]` gives `None` when it is).
pub fn int_opt<'de, D, T, const MIN: i64, const MAX: i64>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    int::<D, T, MIN, MAX>(d).map(Some)
}

/// Serde `deserialize_with` for a duration written in seconds (a float
/// key, bounded like [`float`]), so the settings that use it hold a
/// `Duration` and are read straight from the file.
pub fn secs<'de, D, const MIN_MILLI: i64, const MAX_MILLI: i64>(d: D) -> Result<Duration, D::Error>
where
    D: Deserializer<'de>,
{
    let value = float::<D, MIN_MILLI, MAX_MILLI>(d)?;
    // Finite and within the bounds: the conversion cannot fail.
    Duration::try_from_secs_f64(value).map_err(serde::de::Error::custom)
}

/// Serde `deserialize_with` for a duration written in whole milliseconds,
/// bounded to `MIN..=MAX` ms like [`int`].
pub fn millis<'de, D, const MIN: i64, const MAX: i64>(d: D) -> Result<Duration, D::Error>
where
    D: Deserializer<'de>,
{
    int::<D, u64, MIN, MAX>(d).map(Duration::from_millis)
}

/// Serde `serialize_with` for a [`secs`] key: seconds as a float.
pub fn as_secs<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(value.as_secs_f64())
}

/// Serde `serialize_with` for a [`millis`] key: whole milliseconds.
pub fn as_millis<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
}

/// A number from a flag, finite and within `min..=max`.
fn parse_bounded(text: &str, min: f64, max: f64) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    check_f64(value, min, max)
}

/// Clap value parser for `--speed`: a finite factor from 0.01 to 10 000.
pub fn parse_speed(text: &str) -> Result<f64, String> {
    parse_bounded(text, SPEED_MIN, SPEED_MAX)
}

/// Clap value parser for a watchdog in seconds: 1 to 3600.
pub fn parse_watchdog(text: &str) -> Result<f64, String> {
    parse_bounded(text, 1.0, 3600.0)
}

/// Clap value parser for `record --commit-secs`: 0.1 to 3600.
pub fn parse_commit_secs(text: &str) -> Result<f64, String> {
    parse_bounded(text, 0.1, 3600.0)
}

/// Clap value parser for `replay --tail-idle-secs`: 0.1 to 3600.
pub fn parse_tail_idle(text: &str) -> Result<f64, String> {
    parse_bounded(text, 0.1, 3600.0)
}

/// Bounds of `replay --speed`.
pub const SPEED_MIN: f64 = 0.01;
pub const SPEED_MAX: f64 = 10_000.0;

/// A rate or expectation as people read it (alerts, the API): three
/// decimals are plenty and keep the output stable to read (an expectation
/// of 0.2 a minute summed over buckets prints 0.20000000000000004).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// [`round3`] for serde's `serialize_with`.
pub fn serialize_round3<S: serde::Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round3(*x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_and_out_of_range_are_errors() {
        for bad in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e300, -1.0, 0.0] {
            assert!(check_f64(bad, 0.1, 10.0).is_err(), "{bad}");
        }
        assert_eq!(check_f64(0.1, 0.1, 10.0), Ok(0.1));
        assert_eq!(check_f64(10.0, 0.1, 10.0), Ok(10.0));
        assert!(check_int(0, 1, 5).is_err());
        assert_eq!(check_int(5, 1, 5), Ok(5));
    }

    #[test]
    fn speed_is_bounded() {
        for bad in ["1e-30", "inf", "NaN", "0", "-2", "1e300", "fast", ""] {
            assert!(parse_speed(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_speed("1000"), Ok(1000.0));
        assert_eq!(parse_speed("0.5"), Ok(0.5));
    }
}

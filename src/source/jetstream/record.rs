//! A commit's record, read in the same pass as its frame: the raw text of
//! the four fields a post is made of is kept, everything else is skipped,
//! and the fields are parsed only for a post create. (Reading the record
//! as one raw value and parsing it again scanned every post's record
//! twice, embeds and reply references included.)
//!
//! Any JSON value is accepted as a record, since a record of another
//! collection must never make its frame malformed; what would be wrong
//! with it as a post record (not an object, a field given twice, a field
//! of the wrong type) is reported only when it is a post's.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Unexpected, Visitor};
use serde_json::value::RawValue;

/// The raw fields of a record (see the module's documentation).
#[derive(Default)]
pub(super) struct Record<'a> {
    text: Option<&'a RawValue>,
    langs: Option<&'a RawValue>,
    facets: Option<&'a RawValue>,
    tags: Option<&'a RawValue>,
    /// Why it cannot be a post record, whatever its fields say.
    fault: Option<String>,
}

/// A post record's fields, parsed.
pub(super) struct PostFields {
    pub text: Option<String>,
    pub langs: Vec<String>,
    /// Its `tags` and the tags of its facets, in that order.
    pub tags: Vec<String>,
}

#[derive(Deserialize)]
struct Facet<'a> {
    #[serde(default, borrow)]
    features: Vec<Feature<'a>>,
}

#[derive(Deserialize)]
struct Feature<'a> {
    #[serde(rename = "$type", default, borrow)]
    kind: Cow<'a, str>,
    tag: Option<String>,
}

const TAG_FEATURE: &str = "app.bsky.richtext.facet#tag";

impl Record<'_> {
    /// The record read as a post's: an error saying what is wrong with it
    /// (a `bad post record`).
    pub(super) fn post(&self) -> Result<PostFields, String> {
        if let Some(fault) = &self.fault {
            return Err(fault.clone());
        }
        let text: Option<String> = parse(self.text, "text")?.flatten();
        let langs: Vec<String> = parse(self.langs, "langs")?.unwrap_or_default();
        let facets: Vec<Facet<'_>> = parse(self.facets, "facets")?.unwrap_or_default();
        let mut tags: Vec<String> = parse(self.tags, "tags")?.unwrap_or_default();
        tags.extend(
            facets
                .into_iter()
                .flat_map(|facet| facet.features)
                .filter(|feature| feature.kind == TAG_FEATURE)
                .filter_map(|feature| feature.tag),
        );
        Ok(PostFields { text, langs, tags })
    }
}

/// One raw field parsed as `T`, the field named in the error.
fn parse<'a, T: Deserialize<'a>>(
    raw: Option<&'a RawValue>,
    field: &str,
) -> Result<Option<T>, String> {
    raw.map(|raw| serde_json::from_str(raw.get()).map_err(|e| format!("`{field}`: {e}")))
        .transpose()
}

impl<'de: 'a, 'a> Deserialize<'de> for Record<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RecordVisitor(std::marker::PhantomData))
    }
}

struct RecordVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'a> RecordVisitor<'a> {
    /// A record that is not an object: fine for another collection.
    fn not_an_object(unexpected: Unexpected<'_>) -> Record<'a> {
        let error: serde_json::Error = de::Error::invalid_type(unexpected, &"an object");
        Record {
            fault: Some(error.to_string()),
            ..Record::default()
        }
    }
}

impl<'de: 'a, 'a> Visitor<'de> for RecordVisitor<'a> {
    type Value = Record<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Record<'a>, M::Error> {
        let mut record = Record::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let slot = match key.as_ref() {
                "text" => &mut record.text,
                "langs" => &mut record.langs,
                "facets" => &mut record.facets,
                "tags" => &mut record.tags,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let raw: &'de RawValue = map.next_value()?;
            if slot.replace(raw).is_some() && record.fault.is_none() {
                record.fault = Some(format!("duplicate field `{key}`"));
            }
        }
        Ok(record)
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Record<'a>, S::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Self::not_an_object(Unexpected::Seq))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Record<'a>, E> {
        Ok(Self::not_an_object(Unexpected::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Record<'a>, E> {
        Ok(Self::not_an_object(Unexpected::Signed(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Record<'a>, E> {
        Ok(Self::not_an_object(Unexpected::Unsigned(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Record<'a>, E> {
        Ok(Self::not_an_object(Unexpected::Float(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Record<'a>, E> {
        Ok(Self::not_an_object(Unexpected::Str(v)))
    }

    fn visit_unit<E>(self) -> Result<Record<'a>, E> {
        Ok(Self::not_an_object(Unexpected::Unit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(record: &str) -> Result<PostFields, String> {
        let record: Record<'_> = serde_json::from_str(record).expect("any value is a record");
        record.post()
    }

    #[test]
    fn a_post_record_gives_its_text_langs_and_tags() {
        let fields = post(
            r##"{"text":"is #TwitterDown","embed":{"images":[{"alt":"x"}]},"langs":["en"],"tags":["outage"],"facets":[{"features":[{"$type":"app.bsky.richtext.facet#tag","tag":"TwitterDown"},{"$type":"app.bsky.richtext.facet#link","uri":"https://x.com"}]}]}"##,
        )
        .expect("a post record");
        assert_eq!(fields.text.as_deref(), Some("is #TwitterDown"));
        assert_eq!(fields.langs, ["en"]);
        assert_eq!(fields.tags, ["outage", "TwitterDown"]);
    }

    /// Whatever a record holds, it reads; what is wrong with it as a post
    /// record is said when it is asked for as one.
    #[test]
    fn any_value_reads_and_faults_show_only_as_a_post() {
        let cases = [
            (r#"5"#, "invalid type: integer `5`, expected an object"),
            (
                r#"[1,{"text":"x"}]"#,
                "invalid type: sequence, expected an object",
            ),
            (
                r#""text""#,
                "invalid type: string \"text\", expected an object",
            ),
            (r#"true"#, "invalid type: boolean `true`"),
            (r#"{"text":"a","text":"b"}"#, "duplicate field `text`"),
            (
                r#"{"text":5}"#,
                "`text`: invalid type: integer `5`, expected a string",
            ),
            (
                r#"{"text":"a","langs":null}"#,
                "`langs`: invalid type: null",
            ),
            (
                r#"{"text":"a","facets":[{"features":5}]}"#,
                "`facets`: invalid type",
            ),
        ];
        for (record, expected) in cases {
            let error = match post(record) {
                Ok(_) => panic!("{record} is no post record"),
                Err(error) => error,
            };
            assert!(error.contains(expected), "{record}: `{error}`");
        }
        let fields = post(r#"{"text":null,"subject":{"uri":"at://x"}}"#).expect("reads");
        assert_eq!(
            fields.text, None,
            "a record without text (the caller's error)"
        );
    }
}

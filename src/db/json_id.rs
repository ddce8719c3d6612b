//! Row ids in JSON: decimal strings. Ids carry the clock in their high bits
//! (see [`super::new_row_id`]), so they pass 2^53, past what a JavaScript
//! number holds exactly; a browser would round them to another row's id.
//! Numbers are still accepted where clients send ids back, for clients that
//! kept the old form.
//!
//! Use with `#[serde(with = "crate::db::json_id")]` and
//! `#[schema(value_type = String)]`.

use serde::{de, Deserializer, Serializer};
use std::fmt;

pub fn serialize<S: Serializer>(id: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(IdVisitor)
}

struct IdVisitor;

impl de::Visitor<'_> for IdVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an id: a decimal string (or an integer)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        v.parse()
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Row {
        #[serde(with = "super")]
        id: i64,
    }

    #[test]
    fn strings_out_strings_or_numbers_in() {
        let big = (1i64 << 53) + 1;
        let out = serde_json::to_string(&Row { id: big }).unwrap();
        assert_eq!(out, format!(r#"{{"id":"{big}"}}"#));
        let back: Row = serde_json::from_str(&out).unwrap();
        assert_eq!(back.id, big);
        let old: Row = serde_json::from_str(&format!(r#"{{"id":{big}}}"#)).unwrap();
        assert_eq!(old.id, big);
        for bad in [
            r#"{"id":"12a"}"#,
            r#"{"id":1.5}"#,
            r#"{"id":18446744073709551615}"#,
        ] {
            assert!(serde_json::from_str::<Row>(bad).is_err(), "{bad}");
        }
    }
}

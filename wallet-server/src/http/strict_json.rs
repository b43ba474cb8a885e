//! A JSON request body that refuses a key given twice in one object, at any depth.
//!
//! serde_json keeps the last of repeated keys, so `{"amount":"100","amount":"200"}` charged 200
//! while a proxy, a log or a WAF that reads the first value saw 100. RFC 8259 leaves repeated
//! names to the reader; a payment system must not let two readers see two requests. Every
//! handler that takes a body extracts it as [`StrictJson`]; a repeat is a 400 `invalid_request`
//! that names the key, before anything is done.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON value in which no object repeats a key.
#[derive(Debug, Clone, PartialEq)]
pub struct StrictJson(pub Value);

impl StrictJson {
    pub fn into_inner(self) -> Value {
        self.0
    }
}

impl std::ops::Deref for StrictJson {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.0
    }
}

impl<'de> Deserialize<'de> for StrictJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<StrictJson, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictJson)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        StrictJson::deserialize(deserializer).map(StrictJson::into_inner)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictJson(item)) = sequence.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format_args!(
                    "the key {key:?} appears twice in one object; send each field once"
                )));
            }
            let StrictJson(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Value, String> {
        serde_json::from_str::<StrictJson>(text).map(StrictJson::into_inner).map_err(|error| error.to_string())
    }

    #[test]
    fn a_repeated_key_is_refused_at_any_depth_and_named() {
        for text in [
            r#"{"amount":"100","amount":"200"}"#,
            r#"{"a":{"b":1,"c":2,"b":3}}"#,
            r#"[{"x":1},{"amount":1,"amount":1}]"#,
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.contains("appears twice"), "{text}: {error}");
        }
        assert!(parse(r#"{"amount":"1","amount":"2"}"#).unwrap_err().contains("\"amount\""));
    }

    #[test]
    fn bodies_without_repeats_parse_as_serde_json_does() {
        for text in [r#"{"amount":"100","to":{"amount":"1"}}"#, r#"[1,-2,3.5,true,null,"x",{}]"#, "7", r#""s""#] {
            assert_eq!(parse(text).unwrap(), serde_json::from_str::<Value>(text).unwrap(), "{text}");
        }
    }
}

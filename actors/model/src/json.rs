//! Request bodies parsed as JSON the way Kubernetes' strict decoder sees them: a field given
//! twice in one object is reported (`duplicate field "spec.replicas"`), not silently resolved
//! to its last value, so `fieldValidation=Strict` can refuse it and `Warn` can say so.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A parsed body and the dotted paths of the fields it repeats (first repetition of each).
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub value: Value,
    pub duplicates: Vec<String>,
}

/// Parses `bytes` as one JSON value, collecting duplicate fields. Nesting is bounded by
/// serde_json's recursion limit (128), as for any body.
pub fn parse(bytes: &[u8]) -> Result<Parsed, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut duplicates = Vec::new();
    let value = Node {
        path: String::new(),
        duplicates: &mut duplicates,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(Parsed { value, duplicates })
}

/// The message Kubernetes' strict decoding gives for a duplicate.
pub fn duplicate_message(path: &str) -> String {
    format!("duplicate field \"{path}\"")
}

struct Node<'a> {
    path: String,
    duplicates: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Node {
            path: format!("{}[{}]", self.path, out.len()),
            duplicates: &mut *self.duplicates,
        })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = join(&self.path, &key);
            let v = map.next_value_seed(Node {
                path: path.clone(),
                duplicates: &mut *self.duplicates,
            })?;
            if out.insert(key, v).is_some() && !self.duplicates.contains(&path) {
                self.duplicates.push(path);
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicates_are_found_at_any_depth_and_the_last_value_wins() {
        let p = parse(
            br#"{"spec":{"replicas":1,"replicas":2,"template":{"spec":{"containers":[{"name":"a","name":"b"}]}}},"kind":"X"}"#,
        )
        .unwrap();
        assert_eq!(
            p.duplicates,
            vec![
                "spec.replicas".to_string(),
                "spec.template.spec.containers[0].name".to_string()
            ]
        );
        assert_eq!(p.value["spec"]["replicas"], 2);
        assert_eq!(
            duplicate_message("spec.replicas"),
            "duplicate field \"spec.replicas\""
        );
    }

    #[test]
    fn plain_json_parses_as_serde_json_does() {
        let text = br#"{"a":[1,-2,3.5,true,null,"s"],"b":{"c":{}},"d":18446744073709551615}"#;
        let p = parse(text).unwrap();
        assert!(p.duplicates.is_empty());
        let expected: Value = serde_json::from_slice(text).unwrap();
        assert_eq!(p.value, expected);
        assert!(parse(b"{\"a\":1} trailing").is_err());
        assert!(parse(b"").is_err());
        assert_eq!(parse(b"[]").unwrap().value, json!([]));
    }
}

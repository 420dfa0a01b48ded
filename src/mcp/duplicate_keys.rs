//! JSON with a key twice: parsers keep the last value, so the checks could see one value while
//! the write carries another. A message with a duplicate key anywhere is refused instead.

use std::{collections::HashSet, fmt};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The path of the first key that appears twice in one object (`params.arguments.ROLE`), or
/// `None` when there is none (or the text is not JSON, which the parser itself reports).
pub fn first_duplicate(text: &str) -> Option<String> {
    let mut path = Vec::new();
    let mut found = None;
    let mut reader = serde_json::Deserializer::from_str(text);
    let walk = Walk {
        path: &mut path,
        found: &mut found,
    };
    walk.deserialize(&mut reader).ok()?;
    found
}

/// The refusal, naming the key.
pub fn duplicate_message(path: &str) -> String {
    format!(
        "Invalid request: the key {path:?} appears twice in one object, so which value counts \
         would be a guess; nothing was done. Send each key once."
    )
}

struct Walk<'a> {
    path: &'a mut Vec<String>,
    found: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) && self.found.is_none() {
                let mut at = self.path.clone();
                at.push(key.clone());
                *self.found = Some(at.join("."));
            }
            self.path.push(key);
            map.next_value_seed(Walk {
                path: self.path,
                found: self.found,
            })?;
            self.path.pop();
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        loop {
            self.path.push(index.to_string());
            let more = seq.next_element_seed(Walk {
                path: self.path,
                found: self.found,
            })?;
            self.path.pop();
            if more.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_key_given_twice_at_any_depth() {
        assert_eq!(
            first_duplicate(r#"{"a": 1, "b": {"c": [1, {"d": 2}]}}"#),
            None
        );
        assert_eq!(
            first_duplicate(
                r#"{"params": {"arguments": {"ROLE": "K", "GROUP_ID": 77, "ROLE": "E"}}}"#
            ),
            Some("params.arguments.ROLE".to_owned())
        );
        assert_eq!(
            first_duplicate(r#"{"x": [{"k": 1}, {"k": 1, "k": 2}]}"#),
            Some("x.1.k".to_owned())
        );
        assert_eq!(
            first_duplicate(r#"{"a": "\u0041", "\u0061": 1}"#),
            Some("a".to_owned())
        );
        assert_eq!(first_duplicate("not json"), None);
    }
}

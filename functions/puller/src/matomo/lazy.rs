//! A JSON document parsed only where it is changed: objects and arrays are expanded one level at a
//! time on demand, every other value stays a borrowed slice of the original text and is written
//! back byte for byte. A Matomo visit is about 5 KB of which the puller reads a dozen fields and
//! rewrites a few; building a full `serde_json::Value` tree for it cost four times more than the
//! rest of the work together.

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// A JSON value: untouched text, replacement text, or an expanded object or array.
#[derive(Debug, Clone)]
pub enum Node<'a> {
    Raw(&'a RawValue),
    Json(String),
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
    Array(Vec<Node<'a>>),
}

/// An object key, borrowed from the text unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// One level of an object: keys and their raw values, in document order.
struct Fields<'a>(Vec<(Cow<'a, str>, Node<'a>)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    fields.push((key, Node::Raw(value)));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

impl<'a> Node<'a> {
    /// Expands a raw object or array one level (other values are left as they are).
    pub fn expand(&mut self) {
        if let Node::Raw(raw) = self {
            let text: &'a str = raw.get();
            match text.as_bytes().first() {
                Some(b'{') => {
                    if let Ok(Fields(fields)) = serde_json::from_str::<Fields<'a>>(text) {
                        *self = Node::Object(fields);
                    }
                }
                Some(b'[') => {
                    if let Ok(items) = serde_json::from_str::<Vec<&'a RawValue>>(text) {
                        *self = Node::Array(items.into_iter().map(Node::Raw).collect());
                    }
                }
                _ => {}
            }
        }
    }

    /// The value under `key` of an (expanded) object.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match self {
            Node::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node<'a>> {
        match self {
            Node::Object(fields) => fields.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets `key` (replacing its value, or appending it) in an expanded object.
    pub fn set(&mut self, key: &str, value: Node<'a>) {
        if let Node::Object(fields) = self {
            match fields.iter_mut().find(|(k, _)| k == key) {
                Some((_, existing)) => *existing = value,
                None => fields.push((Cow::Owned(key.to_string()), value)),
            }
        }
    }

    /// The value as a small `serde_json::Value` (for the few fields that are read).
    pub fn value(&self) -> Option<serde_json::Value> {
        match self {
            Node::Raw(raw) => serde_json::from_str(raw.get()).ok(),
            Node::Json(text) => serde_json::from_str(text).ok(),
            _ => None,
        }
    }

    /// A JSON string node.
    pub fn string(text: &str) -> Node<'a> {
        Node::Json(serde_json::Value::String(text.to_string()).to_string())
    }

    /// Writes the document: untouched values as they came, the rest re-encoded.
    pub fn write(&self, out: &mut String) {
        match self {
            Node::Raw(raw) => out.push_str(raw.get()),
            Node::Json(text) => out.push_str(text),
            Node::Object(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_key(key, out);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
            Node::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
        }
    }
}

fn write_key(key: &str, out: &mut String) {
    if key.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(key);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::String(key.to_string()).to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn untouched_parts_round_trip_and_changes_are_written() {
        let text = r#"{"a":1,"b":{"c":[1,2,{"d":"x\"y"}]},"e\n":"é","f":null}"#;
        let raw: &RawValue = serde_json::from_str(text).unwrap();
        let mut node = Node::Raw(raw);
        let mut out = String::new();
        node.write(&mut out);
        assert_eq!(out, text);
        node.expand();
        node.get_mut("b").unwrap().expand();
        node.set("a", Node::string("hashed"));
        node.set("g", Node::Json("true".into()));
        let mut out = String::new();
        node.write(&mut out);
        let parsed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, json!({"a": "hashed", "b": {"c": [1, 2, {"d": "x\"y"}]}, "e\n": "é", "f": null, "g": true}));
        assert_eq!(node.get("f").unwrap().value(), Some(Value::Null));
    }
}

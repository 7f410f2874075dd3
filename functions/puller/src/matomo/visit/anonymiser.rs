//! Replaces configured values of a visit by their keyed hash.

use super::row::*;
use serde_json::Value;
use serde_json::value::RawValue;
use tributary_domain::signing::SigningKey;

/// Dotted paths as a tree of keys: `actionDetails.url` is `url` under `actionDetails`.
#[derive(Debug, Clone, Default)]
pub(super) struct PathTree {
    /// The value reached here is replaced as a whole (deeper paths under it add nothing).
    pub(super) hashed: bool,
    children: Vec<(String, PathTree)>,
}

impl PathTree {
    fn insert(&mut self, path: &str) {
        let mut node = self;
        for key in path.split('.') {
            let index = match node.children.iter().position(|(k, _)| k == key) {
                Some(index) => index,
                None => {
                    node.children.push((key.to_string(), PathTree::default()));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[index].1;
        }
        node.hashed = true;
    }

    pub(super) fn child(&self, key: &str) -> Option<&PathTree> {
        self.children.iter().find(|(k, _)| k == key).map(|(_, child)| child)
    }
}

/// Replaces configured values by their keyed hash (HMAC-SHA256, hex): the same value always gives
/// the same hash, so visits still join on it, but the value cannot be read back without the key.
#[derive(Clone)]
pub struct Anonymiser {
    key: SigningKey,
    /// A path that crosses an array applies to every item.
    pub(super) paths: PathTree,
}

/// Always anonymised, whatever the configuration says.
pub const ALWAYS_ANONYMISED: [&str; 1] = ["visitIp"];

impl Anonymiser {
    pub fn new(key: &[u8], columns: &[String]) -> Self {
        let key = SigningKey::new(key);
        let mut paths = PathTree::default();
        for column in ALWAYS_ANONYMISED.into_iter().chain(columns.iter().map(String::as_str)) {
            paths.insert(column);
        }
        Self { key, paths }
    }

    pub fn hash(&self, text: &str) -> String {
        let mut out = String::with_capacity(64);
        self.push_hash(text, &mut out);
        out
    }

    fn push_hash(&self, text: &str, out: &mut String) {
        let mut digits = [0u8; 64];
        // 32 bytes make exactly 64 hex digits, all ASCII: neither step can fail.
        if hex::encode_to_slice(self.key.sign(&[text.as_bytes()]), &mut digits).is_ok()
            && let Ok(digits) = std::str::from_utf8(&digits)
        {
            out.push_str(digits);
        }
    }

    /// The JSON text that replaces `raw`; `None` when there is nothing to hide.
    pub(super) fn replacement(&self, raw: &RawValue) -> Option<String> {
        let text = raw.get();
        // The common case, a string without escapes, is hashed without decoding.
        if let Some(inner) = plain_string(text) {
            if inner.is_empty() {
                return None;
            }
            let mut out = String::with_capacity(66);
            out.push('"');
            self.push_hash(inner, &mut out);
            out.push('"');
            return Some(out);
        }
        match serde_json::from_str::<Value>(text) {
            Ok(value) => self.replaced(value).map(|value| value.to_string()),
            // Valid JSON that `Value` cannot hold (a number beyond f64): hidden all the same.
            Err(_) => Some(Value::String(self.hash(text)).to_string()),
        }
    }

    /// The hashed form of a value; `None` when there is nothing to hide.
    fn replaced(&self, value: Value) -> Option<Value> {
        match value {
            // Matomo's anonymous tokens also answer `false` for hidden fields.
            Value::Null | Value::Bool(false) => None,
            Value::String(text) if text.is_empty() => None,
            Value::String(text) => Some(Value::String(self.hash(&text))),
            Value::Array(items) => {
                Some(Value::Array(items.into_iter().map(|item| self.replaced(item.clone()).unwrap_or(item)).collect()))
            }
            other => Some(Value::String(self.hash(&other.to_string()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_hmac_sha256_in_hex_so_lake_rows_keep_joining() {
        // RFC 4231 test case 2: the hash of a value must not change between releases, or visits
        // pulled before and after would no longer join on it.
        let anonymiser = Anonymiser::new(b"Jefe", &[]);
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(anonymiser.hash("what do ya want for nothing?"), expected);
        assert_eq!(anonymiser.hash("what do ya want for nothing?"), expected, "the same again with the same key");
    }
}

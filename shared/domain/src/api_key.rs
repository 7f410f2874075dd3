//! API keys for `/api/v1`: clients send `Authorization: Bearer <key>`; only the keys' SHA-256
//! hashes are stored (an SSM parameter), so a leaked parameter does not leak a usable key. Each
//! hash may carry a name (`ops-alice:<hash>`): what changes something (a re-drive, a rebuild, a
//! replay) is recorded with the name of the key that asked.
//!
//! Create a key: `openssl rand -hex 24`; its hash: `printf %s "$KEY" | sha256sum`.

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeysError {
    #[error("no API key hash is configured")]
    Empty,
    #[error("entry {0} is not a SHA-256 hash (64 hexadecimal digits)")]
    NotAHash(usize),
    #[error("entry {0}: a key's name is 1-64 of A-Z a-z 0-9 . _ -")]
    BadName(usize),
    #[error("entry {0} repeats the hash or the name of an earlier entry")]
    Repeated(usize),
}

#[derive(Debug, thiserror::Error)]
pub enum LoadApiKeysError {
    #[error("reading the API key hashes failed: {0}")]
    Secrets(#[from] crate::ports::PortError),
    #[error("parameter {param}: {source}")]
    Keys { param: String, source: ApiKeysError },
}

/// The API keys whose hashes the SSM parameter `param` holds.
pub async fn load_api_keys(param: &str, source: &impl crate::ports::SecretSource) -> Result<ApiKeys, LoadApiKeysError> {
    let param = param.to_string();
    let values = source.get_secrets(std::slice::from_ref(&param)).await?;
    let text = values.get(&param).map(String::as_str).unwrap_or_default();
    ApiKeys::parse(text).map_err(|source| LoadApiKeysError::Keys { param, source })
}

/// The API keys of `param`, re-read once older than `max_age` (see [`crate::secrets`]): a key
/// whose hash is removed stops working on warm instances within that age.
pub async fn refreshing_api_keys<S>(
    param: &str,
    source: S,
    max_age: jiff::SignedDuration,
    now: jiff::Timestamp,
) -> Result<crate::secrets::Refreshing<ApiKeys>, LoadApiKeysError>
where
    S: crate::ports::SecretSource + Clone + 'static,
{
    let keys = load_api_keys(param, &source).await?;
    let param = param.to_string();
    Ok(crate::secrets::Refreshing::new(keys, now, max_age, move || {
        let (param, source) = (param.clone(), source.clone());
        async move { load_api_keys(&param, &source).await.map_err(|e| e.to_string()) }
    }))
}

#[derive(Clone)]
pub struct ApiKeys {
    /// Each key's hash and name.
    keys: Vec<([u8; 32], String)>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} hashes)", self.keys.len())
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl ApiKeys {
    /// Entries separated by commas, spaces or new lines (several during a rotation), each a hex
    /// SHA-256 hash, or `name:hash`. A hash without a name is named `key-` and its first 8 digits.
    pub fn parse(text: &str) -> Result<Self, ApiKeysError> {
        let keys = text
            .split([',', ' ', '\n', '\r', '\t'])
            .filter(|entry| !entry.is_empty())
            .enumerate()
            .map(|(index, entry)| {
                let (name, hex_hash) = match entry.split_once(':') {
                    Some((name, hash)) if valid_name(name) => (Some(name), hash),
                    Some(_) => return Err(ApiKeysError::BadName(index)),
                    None => (None, entry),
                };
                let mut hash = [0u8; 32];
                hex::decode_to_slice(hex_hash, &mut hash).map_err(|_| ApiKeysError::NotAHash(index))?;
                let name = name.map_or_else(|| format!("key-{}", &hex_hash[..8]), str::to_string);
                Ok((hash, name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(ApiKeysError::Empty);
        }
        // A name must say which key it was: each hash and each name once.
        for (index, (hash, name)) in keys.iter().enumerate() {
            if keys[..index].iter().any(|(other_hash, other_name)| other_hash == hash || other_name == name) {
                return Err(ApiKeysError::Repeated(index));
            }
        }
        Ok(Self { keys })
    }

    /// The name of the key an `Authorization` header value carries, if it is a known one. Every
    /// stored hash is compared in constant time, so timing tells nothing about which bytes matched.
    pub fn identify(&self, authorization: Option<&str>) -> Option<&str> {
        let key = authorization.and_then(bearer_token)?;
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        // The matching index is selected without a branch on the comparison (hashes are unique).
        let mut found = subtle::CtOption::new(0u32, subtle::Choice::from(0));
        for (index, (hash, _)) in self.keys.iter().enumerate() {
            let this = subtle::CtOption::new(u32::try_from(index).unwrap_or(u32::MAX), hash.ct_eq(&presented));
            found = subtle::CtOption::conditional_select(&found, &this, this.is_some());
        }
        Option::<u32>::from(found).and_then(|index| self.keys.get(index as usize)).map(|(_, name)| name.as_str())
    }

    /// Whether an `Authorization` header value carries a known key.
    pub fn authorizes(&self, authorization: Option<&str>) -> bool {
        self.identify(authorization).is_some()
    }
}

/// The token of a `Bearer` authorization (scheme case-insensitive).
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_whose_hash_is_listed_are_authorized() {
        let hash = hex::encode(Sha256::digest(b"k1"));
        let keys = ApiKeys::parse(&format!("{hash}, {}", "ab".repeat(32))).unwrap();
        assert!(keys.authorizes(Some("Bearer k1")));
        assert!(keys.authorizes(Some("bearer   k1 ")));
        assert!(!keys.authorizes(Some("Bearer k2")));
        assert!(!keys.authorizes(Some("Basic k1")));
        assert!(!keys.authorizes(None));
        assert_eq!(ApiKeys::parse(" ,").unwrap_err(), ApiKeysError::Empty);
        assert_eq!(ApiKeys::parse("abc").unwrap_err(), ApiKeysError::NotAHash(0));
        assert!(!format!("{keys:?}").contains(&hash), "hashes stay out of logs");
    }

    #[test]
    fn a_key_is_known_by_its_name() {
        let hash = |key: &str| hex::encode(Sha256::digest(key.as_bytes()));
        let keys = ApiKeys::parse(&format!("ops-alice:{}\n{}", hash("k1"), hash("k2"))).unwrap();
        assert_eq!(keys.identify(Some("Bearer k1")), Some("ops-alice"));
        assert_eq!(keys.identify(Some("Bearer k2")), Some(format!("key-{}", &hash("k2")[..8]).as_str()));
        assert_eq!(keys.identify(Some("Bearer k3")), None);
        // A space separates entries: `bad` alone is an entry, and not a hash.
        assert_eq!(ApiKeys::parse(&format!("bad name:{}", hash("k1"))).unwrap_err(), ApiKeysError::NotAHash(0));
        assert_eq!(ApiKeys::parse(&format!("bad/name:{}", hash("k1"))).unwrap_err(), ApiKeysError::BadName(0));
        assert_eq!(ApiKeys::parse(&format!("a:{0},b:{0}", hash("k1"))).unwrap_err(), ApiKeysError::Repeated(1));
        assert_eq!(
            ApiKeys::parse(&format!("a:{},a:{}", hash("k1"), hash("k2"))).unwrap_err(),
            ApiKeysError::Repeated(1)
        );
    }
}

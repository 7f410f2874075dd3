//! Values built from secrets (verifiers, API key hashes, tokens), re-read once they are older than
//! a maximum age, so that a revoked or rotated secret stops working on warm instances within that
//! age instead of living as long as the instance.
//!
//! The age is measured with the `now` each request hands in (the handlers' clock), so tests move
//! time themselves. A failed re-read keeps the values in use (an SSM outage must not lock every
//! client out) and is tried again [`RETRY_AFTER_FAILURE`] later; it is logged as a warning. So a key
//! is revoked by removing it from its parameter (which keeps the others), not by deleting or
//! blanking the parameter: an unreadable parameter keeps the last values in use, loudly.

use crate::config::{ConfigError, Env};
use jiff::{SignedDuration, Timestamp};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::RwLock;

/// The environment variable of the maximum age, in seconds.
pub const MAX_AGE_VARIABLE: &str = "SECRETS_MAX_AGE_SECONDS";
/// Default maximum age: five minutes.
pub const DEFAULT_MAX_AGE: SignedDuration = SignedDuration::from_secs(300);
/// After a failed re-read, the next try comes this much later.
pub const RETRY_AFTER_FAILURE: SignedDuration = SignedDuration::from_secs(30);

/// `SECRETS_MAX_AGE_SECONDS` (10 to 86 400), five minutes when unset.
pub fn max_age_from_env(env: &impl Env) -> Result<SignedDuration, ConfigError> {
    let seconds: i64 = env.parsed_or(MAX_AGE_VARIABLE, DEFAULT_MAX_AGE.as_secs())?;
    if !(10..=86_400).contains(&seconds) {
        return Err(ConfigError::invalid(MAX_AGE_VARIABLE, "must be 10 to 86400"));
    }
    Ok(SignedDuration::from_secs(seconds))
}

type Reload<T> = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<T, String>> + Send>> + Send + Sync>;

struct Loaded<T> {
    value: Arc<T>,
    /// When the value was loaded, or when a re-read was last tried.
    checked_at: Timestamp,
    /// How long until the next re-read, from `checked_at`.
    valid_for: SignedDuration,
}

/// A value re-built from its secrets once older than its maximum age.
pub struct Refreshing<T> {
    state: RwLock<Loaded<T>>,
    max_age: SignedDuration,
    reload: Option<Reload<T>>,
}

impl<T: Send + Sync + 'static> Refreshing<T> {
    /// `value`, loaded at `loaded_at`, re-built with `reload` once older than `max_age`.
    pub fn new<F, Fut>(value: T, loaded_at: Timestamp, max_age: SignedDuration, reload: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, String>> + Send + 'static,
    {
        Self {
            state: RwLock::new(Loaded { value: Arc::new(value), checked_at: loaded_at, valid_for: max_age }),
            max_age,
            reload: Some(Box::new(move || Box::pin(reload()))),
        }
    }

    /// A value that is never re-read (tests and benchmarks that do not exercise rotation).
    pub fn fixed(value: T) -> Self {
        Self {
            state: RwLock::new(Loaded {
                value: Arc::new(value),
                checked_at: Timestamp::MIN,
                valid_for: SignedDuration::MAX,
            }),
            max_age: SignedDuration::MAX,
            reload: None,
        }
    }

    /// The value as of `now`: re-read first when it is older than the maximum age.
    pub async fn current(&self, now: Timestamp) -> Arc<T> {
        let fresh =
            |loaded: &Loaded<T>| loaded.checked_at.saturating_add(loaded.valid_for).is_ok_and(|until| now < until);
        {
            let loaded = self.state.read().await;
            if fresh(&loaded) || self.reload.is_none() {
                return loaded.value.clone();
            }
        }
        let mut loaded = self.state.write().await;
        // Another request may have re-read it while this one waited for the lock.
        if fresh(&loaded) {
            return loaded.value.clone();
        }
        let Some(reload) = &self.reload else { return loaded.value.clone() };
        match reload().await {
            Ok(value) => {
                *loaded = Loaded { value: Arc::new(value), checked_at: now, valid_for: self.max_age };
                tracing::info!("secrets re-read");
            }
            Err(error) => {
                tracing::warn!(error, "re-reading secrets failed; the values in use are kept");
                loaded.checked_at = now;
                loaded.valid_for = RETRY_AFTER_FAILURE;
            }
        }
        loaded.value.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[tokio::test]
    async fn a_value_is_re_read_once_older_than_its_age_and_kept_when_the_re_read_fails() {
        let stored = Arc::new(Mutex::new(Ok::<&str, &str>("v1")));
        let reads = Arc::new(AtomicU32::new(0));
        let (source, counter) = (stored.clone(), reads.clone());
        let value = Refreshing::new("v1".to_string(), at(0), SignedDuration::from_secs(300), move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let answer = *source.lock().unwrap();
            async move { answer.map(str::to_string).map_err(str::to_string) }
        });
        *stored.lock().unwrap() = Ok("v2");
        assert_eq!(*value.current(at(299)).await, "v1", "still within its age");
        assert_eq!(reads.load(Ordering::SeqCst), 0);
        assert_eq!(*value.current(at(300)).await, "v2");
        assert_eq!(*value.current(at(500)).await, "v2");
        assert_eq!(reads.load(Ordering::SeqCst), 1, "one re-read per age");
        *stored.lock().unwrap() = Err("SSM unavailable");
        assert_eq!(*value.current(at(600)).await, "v2", "a failed re-read keeps the value");
        assert_eq!(*value.current(at(620)).await, "v2");
        assert_eq!(reads.load(Ordering::SeqCst), 2, "tried again only after a pause");
        *stored.lock().unwrap() = Ok("v3");
        assert_eq!(*value.current(at(630)).await, "v3");
        let fixed = Refreshing::fixed(1);
        assert_eq!(*fixed.current(Timestamp::MAX).await, 1);
    }

    #[test]
    fn the_age_comes_from_the_environment() {
        let env = |value: &str| std::collections::HashMap::from([(MAX_AGE_VARIABLE.to_string(), value.to_string())]);
        assert_eq!(max_age_from_env(&std::collections::HashMap::new()).unwrap(), DEFAULT_MAX_AGE);
        assert_eq!(max_age_from_env(&env("60")).unwrap(), SignedDuration::from_secs(60));
        assert!(max_age_from_env(&env("5")).unwrap_err().to_string().contains(MAX_AGE_VARIABLE));
    }
}

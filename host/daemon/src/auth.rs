//! Who is calling, and whether they may submit now: bearer tokens mapped to
//! users (or, with no tokens configured, loopback clients only), and the
//! submission quotas (sliding windows per user and overall, kept in the store
//! so they hold across hosts; concurrent runs per user, per host). Owns no
//! run state.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use weft::clock::Clock;
use weft::config::QuotaConfig;
use weft::limiter::RateConfig;
use weft::store::{RunRecord, RunStore};

/// The user of a request (set by the auth layer).
#[derive(Debug, Clone)]
pub(crate) struct User(pub String);

/// The user name of loopback clients when no tokens are configured.
pub(crate) const LOCAL_USER: &str = "local";

/// Maps bearer tokens to users.
pub(crate) struct Auth {
    /// SHA-256 of each token → its user. Looking up a hash keeps the token
    /// comparison from leaking timing about the token itself.
    tokens: HashMap<[u8; 32], String>,
    /// The users who may act on the daemon itself.
    operators: std::collections::HashSet<String>,
}

impl Auth {
    pub(crate) fn new(tokens: &[(String, String)], operators: &[String]) -> Self {
        Auth {
            tokens: tokens
                .iter()
                .map(|(token, user)| (Sha256::digest(token.as_bytes()).into(), user.clone()))
                .collect(),
            operators: operators.iter().cloned().collect(),
        }
    }

    /// Refuse (403) unless `user` may act on the daemon itself: an operator
    /// named in the configuration, or, with no tokens, the loopback user.
    pub(crate) fn operator(&self, user: &User) -> Result<(), ApiError> {
        let local = !self.has_tokens() && user.0 == LOCAL_USER;
        if local || self.operators.contains(&user.0) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("user `{}` is not an operator of this daemon", user.0),
        ))
    }

    /// True when tokens are configured.
    pub(crate) fn has_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The user making a request from `peer` with `headers`.
    pub(crate) fn user(&self, headers: &HeaderMap, peer: SocketAddr) -> Result<User, ApiError> {
        if !self.has_tokens() {
            return if peer.ip().is_loopback() {
                Ok(User(LOCAL_USER.to_string()))
            } else {
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "this daemon has no tokens configured and accepts only loopback clients",
                ))
            };
        }
        let unauthorized = |why: &str| {
            ApiError::new(StatusCode::UNAUTHORIZED, why).header(header::WWW_AUTHENTICATE, "Bearer")
        };
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing `Authorization: Bearer <token>` header"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
        let hash: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        self.tokens
            .get(&hash)
            .map(|u| User(u.clone()))
            .ok_or_else(|| unauthorized("unknown token"))
    }
}

/// A run the user may see: their own (and, for loopback use without tokens,
/// runs started from the CLI). Others' runs are answered as unknown.
pub(crate) fn visible_run(run: &RunRecord, user: &User) -> bool {
    owned_by(run.owner.as_deref(), user)
}

/// Whether a run of `owner` (`None`: started from the CLI) is `user`'s.
pub(crate) fn owned_by(owner: Option<&str>, user: &User) -> bool {
    match owner {
        Some(owner) => owner == user.0,
        None => user.0 == LOCAL_USER,
    }
}

/// Submission quotas. The sliding windows live in the store, admitted
/// atomically there, so they hold across every host sharing it.
pub(crate) struct Quotas {
    config: QuotaConfig,
    store: Arc<dyn RunStore>,
    clock: Arc<dyn Clock>,
}

/// A refused submission.
pub(crate) struct Refusal {
    pub reason: &'static str,
    pub message: String,
    pub retry_after_s: u64,
}

impl Quotas {
    pub(crate) fn new(
        config: QuotaConfig,
        store: Arc<dyn RunStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Quotas {
            config,
            store,
            clock,
        }
    }

    /// The most runs a user may have running at once: checked by the store
    /// as it records the run ([`weft::Submission::max_running`]).
    pub(crate) fn concurrent_runs(&self) -> Option<usize> {
        self.config.concurrent_runs
    }

    /// The most schedules a user may have.
    pub(crate) fn max_schedules(&self) -> usize {
        self.config
            .schedules
            .unwrap_or(crate::schedules::DEFAULT_MAX_SCHEDULES)
    }

    /// The refusal when `user` already has `running` runs running.
    pub(crate) fn too_many_running(&self, user: &str, running: usize) -> Refusal {
        let max = self.config.concurrent_runs.unwrap_or(running);
        Refusal {
            reason: "concurrent_runs",
            message: format!("user `{user}` already has {running} runs running (limit {max})"),
            retry_after_s: 1,
        }
    }

    /// Admit one submission of `user` by the submission windows.
    pub(crate) async fn admit(&self, user: &str) -> Result<(), Refusal> {
        let checks: [(Option<RateConfig>, String, &'static str, String); 2] = [
            (
                self.config.submissions,
                format!("quota:user\u{1f}{user}"),
                "submissions",
                format!("user `{user}`"),
            ),
            (
                self.config.global_submissions,
                "quota:global".to_string(),
                "global_submissions",
                "all users together".to_string(),
            ),
        ];
        for (rate, id, reason, scope) in checks {
            if let Some(rate) = rate {
                // A refusal by the second window after the first admitted errs
                // on the safe side (one submission counted that did not happen).
                self.window(&id, rate, reason, &scope).await?;
            }
        }
        Ok(())
    }

    /// Admit one submission by window `rate` kept under `id` in the store
    /// (so it holds across hosts); `reason` and `scope` name it in the
    /// refusal.
    pub(crate) async fn window(
        &self,
        id: &str,
        rate: RateConfig,
        reason: &'static str,
        scope: &str,
    ) -> Result<(), Refusal> {
        let wait = self
            .store
            .rate_acquire(id, self.clock.now_ms(), rate.per_ms, rate.max)
            .await
            .map_err(|e| Refusal {
                reason: "store",
                message: format!("cannot check the submission quota: {e}"),
                retry_after_s: 1,
            })?;
        match wait {
            None => Ok(()),
            Some(wait_ms) => Err(Refusal {
                reason,
                message: format!(
                    "submission quota of {scope} used up: {} per {} ms",
                    rate.max, rate.per_ms
                ),
                retry_after_s: wait_ms.div_ceil(1000).max(1),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use weft::clock::ManualClock;

    fn quotas(config: QuotaConfig) -> (Quotas, Arc<ManualClock>) {
        let clock = ManualClock::at(5_000_000);
        let store = Arc::new(weft::store::MemoryStore::new());
        (Quotas::new(config, store, clock.clone()), clock)
    }

    #[tokio::test]
    async fn a_user_window_refuses_with_the_exact_wait_and_reopens_on_time() {
        let (q, clock) = quotas(QuotaConfig {
            submissions: Some(RateConfig {
                max: 2,
                per_ms: 60_000,
            }),
            ..QuotaConfig::default()
        });
        assert!(q.admit("alice").await.is_ok());
        clock.advance(Duration::from_secs(10));
        assert!(q.admit("alice").await.is_ok());
        let refused = q.admit("alice").await.err().unwrap();
        assert_eq!(refused.reason, "submissions");
        assert_eq!(
            refused.retry_after_s, 50,
            "the first leaves the window at +60 s"
        );
        assert!(q.admit("bob").await.is_ok(), "each user has a window");
        clock.advance(Duration::from_millis(49_500));
        assert_eq!(q.admit("alice").await.err().unwrap().retry_after_s, 1);
        clock.advance(Duration::from_millis(501));
        assert!(q.admit("alice").await.is_ok());
    }

    #[tokio::test]
    async fn the_global_window_counts_every_user() {
        let (q, clock) = quotas(QuotaConfig {
            global_submissions: Some(RateConfig {
                max: 3,
                per_ms: 1_000,
            }),
            ..QuotaConfig::default()
        });
        for user in ["a", "b", "c"] {
            assert!(q.admit(user).await.is_ok());
        }
        let refused = q.admit("d").await.err().unwrap();
        assert_eq!(refused.reason, "global_submissions");
        assert_eq!(refused.retry_after_s, 1);
        clock.advance(Duration::from_millis(1_001));
        assert!(q.admit("d").await.is_ok());
    }
}

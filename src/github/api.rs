//! The GitHub REST API through octocrab, with the retries GitHub asks
//! for. octocrab's own retry layer is switched off: it retries a POST
//! after a 5xx, which can leave two comments; here each caller decides
//! what may be repeated, and every wait is bounded.
//!
//! Rules (docs.github.com, "Rate limits for the REST API" and "Best
//! practices"): on 429, or 403 with rate-limit signs, wait `retry-after`
//! seconds when given; else, when `x-ratelimit-remaining` is 0, until
//! `x-ratelimit-reset`; else back off exponentially. 5xx and transport
//! failures back off too. The sum of waits is capped; past it the call
//! fails with an error that says what was not done.

use std::time::{Duration, Instant};

use http::{HeaderMap, Method, StatusCode};
use octocrab::Octocrab;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::GithubError;

/// How long one request may take, connect to last byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The identity regress sends (GitHub rejects requests without one).
const USER_AGENT: &str = concat!("regress/", env!("CARGO_PKG_VERSION"));

/// The API version the requests are written against.
const API_VERSION: &str = "2022-11-28";

/// How hard to try before giving up.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub attempts: u32,
    /// The first back-off; each later one doubles.
    pub first_backoff: Duration,
    /// No single back-off is longer.
    pub max_backoff: Duration,
    /// The sum of all waits of one call; a longer wait asked for by GitHub
    /// (a rate-limit reset an hour away) fails the call at once.
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    /// Six attempts, 1 s doubling to 16 s, two minutes of waiting in all:
    /// enough for GitHub's usual 5xx blips and a secondary rate limit's
    /// typical `retry-after: 60`, short enough not to hold a CI job.
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(16),
            max_total_wait: Duration::from_secs(120),
        }
    }
}

/// One response: status, headers and the body as text.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// The body as `T`; `what` names the call in the error.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, GithubError> {
        serde_json::from_str(&self.body).map_err(|e| GithubError::Decode {
            what: what.to_string(),
            message: e.to_string(),
        })
    }

    /// GitHub's `message` from an error body, else the status.
    pub fn message(&self) -> String {
        #[derive(serde::Deserialize)]
        struct Message {
            message: String,
        }
        serde_json::from_str::<Message>(&self.body)
            .map(|m| m.message)
            .unwrap_or_else(|_| self.status.to_string())
    }

    fn header(&self, name: &str) -> Option<u64> {
        self.headers.get(name)?.to_str().ok()?.trim().parse().ok()
    }

    /// Whether this is GitHub saying "too many requests": 429, or 403
    /// with a rate-limit header or message (primary or secondary limit).
    fn rate_limited(&self) -> bool {
        self.status == StatusCode::TOO_MANY_REQUESTS
            || (self.status == StatusCode::FORBIDDEN
                && (self.headers.contains_key("retry-after")
                    || self.header("x-ratelimit-remaining") == Some(0)
                    || self.message().to_lowercase().contains("rate limit")))
    }

    /// The wait GitHub asks for, if it asks.
    fn asked_wait(&self) -> Option<Duration> {
        if let Some(secs) = self.header("retry-after") {
            return Some(Duration::from_secs(secs));
        }
        if self.header("x-ratelimit-remaining") == Some(0) {
            let reset = self.header("x-ratelimit-reset")?;
            let now = chrono::Utc::now().timestamp().max(0) as u64;
            // One second past the reset: the reset is a whole second.
            return Some(Duration::from_secs(reset.saturating_sub(now) + 1));
        }
        None
    }
}

/// What one attempt came to.
pub enum Attempt<T> {
    Done(T),
    /// Worth another try; the wait GitHub asked for, if any.
    Retry {
        reason: String,
        wait: Option<Duration>,
    },
    Fail(GithubError),
}

/// A client for one GitHub API (github.com or an Enterprise Server).
pub struct Api {
    octo: Octocrab,
    runtime: tokio::runtime::Runtime,
    policy: RetryPolicy,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Api").field("policy", &self.policy).finish()
    }
}

impl Api {
    /// A client for the API at `base` (`https://api.github.com`, or
    /// `https://ghe.example.com/api/v3`: the path is kept) with a token.
    pub fn new(base: &str, token: String, policy: RetryPolicy) -> Result<Api, GithubError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| GithubError::Client(e.to_string()))?;
        // The client's connector is built inside the runtime it runs on.
        let octo = runtime.block_on(async {
            Octocrab::builder()
                .base_uri(base.trim_end_matches('/'))
                .map_err(|_| {
                    GithubError::Client(format!(
                        "GITHUB_API_URL `{base}` is not a URL; it looks like https://api.github.com"
                    ))
                })?
                .personal_token(token)
                .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
                .set_connect_timeout(Some(REQUEST_TIMEOUT))
                .set_read_timeout(Some(REQUEST_TIMEOUT))
                .set_write_timeout(Some(REQUEST_TIMEOUT))
                .add_header(http::header::USER_AGENT, USER_AGENT.to_string())
                .add_header(
                    http::header::ACCEPT,
                    "application/vnd.github+json".to_string(),
                )
                .add_header(
                    http::HeaderName::from_static("x-github-api-version"),
                    API_VERSION.to_string(),
                )
                .build()
                .map_err(|e| GithubError::Client(e.to_string()))
        })?;
        Ok(Api {
            octo,
            runtime,
            policy,
        })
    }

    /// One request, no retry. `path` is relative to the API's base
    /// (`/repos/o/r/issues/1/comments?per_page=100`).
    pub fn once<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Reply, String> {
        self.runtime.block_on(async {
            let request = http::Request::builder().method(method).uri(path);
            let request = self
                .octo
                .build_request(request, body)
                .map_err(|e| e.to_string())?;
            let call = async {
                let response = self
                    .octo
                    .execute(request)
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                let headers = response.headers().clone();
                let body = self
                    .octo
                    .body_to_string(response)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<Reply, String>(Reply {
                    status,
                    headers,
                    body,
                })
            };
            match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())),
            }
        })
    }

    /// How one reply should be treated by a call that may be repeated.
    pub fn classify(reply: Reply, what: &str) -> Attempt<Reply> {
        if reply.status.is_success() {
            return Attempt::Done(reply);
        }
        if reply.rate_limited() {
            return Attempt::Retry {
                reason: format!("rate limited ({}: {})", reply.status, reply.message()),
                wait: reply.asked_wait(),
            };
        }
        if reply.status.is_server_error() {
            return Attempt::Retry {
                reason: format!("{}: {}", reply.status, reply.message()),
                wait: None,
            };
        }
        Attempt::Fail(GithubError::Api {
            what: what.to_string(),
            status: reply.status.as_u16(),
            message: reply.message(),
        })
    }

    /// A request that may be repeated (GET, PATCH, and creating a check
    /// run), retried as the policy allows.
    pub fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        what: &str,
    ) -> Result<Reply, GithubError> {
        self.retrying(what, || match self.once(method.clone(), path, body) {
            Ok(reply) => Api::classify(reply, what),
            Err(reason) => Attempt::Retry { reason, wait: None },
        })
    }

    /// Runs `attempt` until it is done or fails, waiting between tries as
    /// the policy and GitHub say; `what` names the call in the error.
    pub fn retrying<T>(
        &self,
        what: &str,
        mut attempt: impl FnMut() -> Attempt<T>,
    ) -> Result<T, GithubError> {
        let started = Instant::now();
        let mut waited = Duration::ZERO;
        let mut backoff = self.policy.first_backoff;
        for n in 1..=self.policy.attempts {
            let (reason, asked) = match attempt() {
                Attempt::Done(value) => return Ok(value),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry { reason, wait } => (reason, wait),
            };
            let gave_up = |last: String| GithubError::GaveUp {
                what: what.to_string(),
                attempts: n,
                elapsed: started.elapsed(),
                last,
            };
            if n == self.policy.attempts {
                return Err(gave_up(reason));
            }
            let wait = match asked {
                Some(w) => w,
                None => {
                    let w = jitter(backoff);
                    backoff = (backoff * 2).min(self.policy.max_backoff);
                    w
                }
            };
            if waited + wait > self.policy.max_total_wait {
                return Err(gave_up(format!(
                    "{reason}; the next try would be {} s away, past the {} s this command waits in all",
                    wait.as_secs_f64().ceil(),
                    self.policy.max_total_wait.as_secs()
                )));
            }
            // Inside the runtime: a sleep needs its timer at creation.
            self.runtime
                .block_on(async { tokio::time::sleep(wait).await });
            waited += wait;
        }
        unreachable!("the last attempt returns")
    }
}

/// A back-off between 75 % and 125 % of `d`, so that sixteen shards
/// retrying together do not hit the API in step.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.75 + fastrand::f64() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, headers: &[(&'static str, &str)], body: &str) -> Reply {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, v.parse().unwrap());
        }
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: body.to_string(),
        }
    }

    #[test]
    fn rate_limits_are_told_from_permission_errors() {
        assert!(reply(429, &[], "").rate_limited());
        assert!(reply(403, &[("retry-after", "3")], "").rate_limited());
        assert!(reply(403, &[("x-ratelimit-remaining", "0")], "").rate_limited());
        assert!(reply(
            403,
            &[],
            r#"{"message":"You have exceeded a secondary rate limit"}"#
        )
        .rate_limited());
        // A plain 403 is a missing permission: not retried.
        assert!(!reply(
            403,
            &[],
            r#"{"message":"Resource not accessible by integration"}"#
        )
        .rate_limited());
    }

    #[test]
    fn waits_follow_retry_after_then_the_reset() {
        assert_eq!(
            reply(429, &[("retry-after", "7")], "").asked_wait(),
            Some(Duration::from_secs(7))
        );
        let reset = (chrono::Utc::now().timestamp() + 30).to_string();
        let wait = reply(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ],
            "",
        )
        .asked_wait()
        .unwrap();
        assert!((29..=32).contains(&wait.as_secs()), "{wait:?}");
        assert_eq!(reply(502, &[], "").asked_wait(), None);
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(4));
            assert!(j >= Duration::from_secs(3) && j <= Duration::from_secs(5));
        }
    }
}

//! The HTTP layer both APIs share: one `reqwest` client, retries with exponential backoff on
//! what is transient (429, 408, 5xx, refused or reset connections, timeouts), and Google's JSON
//! error bodies turned into [`PushError::Api`].

use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;

use crate::error::{PushError, Result, status_text};

/// How long to wait to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one request may take (a chunk of [`crate::storage::CHUNK_SIZE`] at 30 KB/s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest error body quoted when it is not Google's JSON.
const MAX_QUOTED_BODY: usize = 300;

/// When and how often to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubled each time.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 7, initial_backoff: Duration::from_millis(500), max_backoff: Duration::from_secs(32) }
    }
}

impl RetryPolicy {
    /// A policy of `attempts` attempts, the first retry after `initial_backoff`.
    pub fn new(attempts: u32, initial_backoff: Duration, max_backoff: Duration) -> RetryPolicy {
        RetryPolicy { attempts: attempts.max(1), initial_backoff, max_backoff }
    }

    /// The wait before retry number `retry` (0 for the first), or the server's `Retry-After`.
    pub(crate) fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let doubled = self.initial_backoff.saturating_mul(1u32 << retry.min(16));
        retry_after.unwrap_or(doubled).min(self.max_backoff)
    }
}

/// Whether a status is worth retrying.
pub(crate) fn transient_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT || status.is_server_error()
}

/// Whether a transport error is worth retrying: the connection failed, was reset or timed out.
pub(crate) fn transient_error(err: &reqwest::Error) -> bool {
    err.is_connect() || err.is_timeout() || err.is_request() || err.is_body()
}

/// The shared client.
#[derive(Clone, Debug)]
pub(crate) struct Http {
    pub(crate) client: reqwest::Client,
    pub(crate) retry: RetryPolicy,
}

impl Http {
    pub(crate) fn new(retry: RetryPolicy) -> Result<Http> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("unikernel-mkimage/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PushError::Transport { what: "starting the HTTP client".into(), detail: error_chain(&e) })?;
        Ok(Http { client, retry })
    }

    /// Sends the request `make` builds, again on transient failures; returns the last response
    /// whatever its status (callers read errors with [`api_error`]).
    pub(crate) async fn send(&self, what: &str, make: impl Fn() -> RequestBuilder) -> Result<Response> {
        let mut retry = 0;
        loop {
            let last = retry + 1 >= self.retry.attempts;
            match make().send().await {
                Ok(response) if transient_status(response.status()) && !last => {
                    let after = retry_after(&response);
                    tokio::time::sleep(self.retry.backoff(retry, after)).await;
                }
                Ok(response) => return Ok(response),
                Err(err) if transient_error(&err) && !last => {
                    tokio::time::sleep(self.retry.backoff(retry, None)).await;
                }
                Err(err) => return Err(PushError::Transport { what: what.into(), detail: error_chain(&err) }),
            }
            retry += 1;
        }
    }

    /// Sends and reads a JSON answer; an error status becomes [`PushError::Api`].
    pub(crate) async fn json(&self, what: &str, make: impl Fn() -> RequestBuilder) -> Result<Value> {
        let response = self.send(what, make).await?;
        if !response.status().is_success() {
            return Err(api_error(what, response).await);
        }
        read_json(what, response).await
    }
}

/// Reads a successful response's JSON body.
pub(crate) async fn read_json(what: &str, response: Response) -> Result<Value> {
    let text =
        response.text().await.map_err(|e| PushError::Transport { what: what.into(), detail: error_chain(&e) })?;
    serde_json::from_str(&text).map_err(|e| PushError::Protocol { what: what.into(), detail: format!("not JSON: {e}") })
}

/// The server's `Retry-After`, in seconds, if it sent one.
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// An error response as one line: Google's `error.message` (with the failing permission or
/// quota as the server words it), else the start of the body.
pub(crate) async fn api_error(what: &str, response: Response) -> PushError {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    PushError::Api { what: what.into(), status, status_text: status_text(status), message: error_message(&body) }
}

/// The message in a Google JSON error body, or the body itself, shortened.
pub(crate) fn error_message(body: &str) -> String {
    if let Ok(json) = serde_json::from_str::<Value>(body) {
        let error = json.get("error").unwrap_or(&json);
        if let Some(message) = error.get("message").and_then(Value::as_str) {
            return message.to_string();
        }
        if let Some(message) = error.as_str() {
            return message.to_string();
        }
    }
    let body = body.trim();
    if body.is_empty() {
        return "(no message)".into();
    }
    let mut end = body.len().min(MAX_QUOTED_BODY);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].replace(['\r', '\n'], " ")
}

/// An error and its causes on one line.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_error_bodies_give_their_message() {
        let body = r#"{"error":{"code":403,"message":"Required 'compute.images.create' permission for 'projects/p/global/images/x'","errors":[{"reason":"forbidden"}]}}"#;
        assert_eq!(error_message(body), "Required 'compute.images.create' permission for 'projects/p/global/images/x'");
        assert_eq!(error_message("upstream\nconnect error"), "upstream connect error");
        assert_eq!(error_message(""), "(no message)");
        assert_eq!(error_message(&"é".repeat(400)).len(), 300);
    }

    #[test]
    fn backoff_doubles_up_to_the_limit_and_honours_retry_after() {
        let policy = RetryPolicy::new(5, Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(policy.backoff(0, None), Duration::from_millis(100));
        assert_eq!(policy.backoff(2, None), Duration::from_millis(400));
        assert_eq!(policy.backoff(9, None), Duration::from_secs(1));
        assert_eq!(policy.backoff(0, Some(Duration::from_secs(30))), Duration::from_secs(1));
        assert!(transient_status(StatusCode::SERVICE_UNAVAILABLE));
        assert!(transient_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(!transient_status(StatusCode::FORBIDDEN));
    }
}

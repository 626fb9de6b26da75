//! Compute Engine's v1 REST API, the parts a push needs: get, insert and delete a global image,
//! and wait for a global operation. Inserts and deletes carry a `requestId`, so a retry after a
//! lost answer cannot act twice.

use reqwest::StatusCode;
use serde_json::Value;

use crate::error::{PushError, Result};
use crate::http::{Http, api_error};
use crate::plan::encode_component;

/// Operation status once it has finished.
const DONE: &str = "DONE";
/// How many `wait` calls (each up to about two minutes on the server) before giving up.
const MAX_WAITS: u32 = 60;

/// Compute Engine at an endpoint.
#[derive(Debug)]
pub(crate) struct Compute<'a> {
    pub(crate) http: &'a Http,
    /// The v1 root, ending in `/compute/v1/`.
    pub(crate) base: &'a str,
    pub(crate) token: String,
}

impl Compute<'_> {
    fn images_url(&self, project: &str) -> String {
        format!("{}projects/{}/global/images", self.base, encode_component(project))
    }

    /// The image, or `None` when there is none of that name.
    pub(crate) async fn image(&self, project: &str, name: &str) -> Result<Option<Value>> {
        let what = format!("looking up image {name} in project {project}");
        let url = format!("{}/{}", self.images_url(project), encode_component(name));
        let response = self.http.send(&what, || self.http.client.get(&url).bearer_auth(&self.token)).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(api_error(&what, response).await);
        }
        crate::http::read_json(&what, response).await.map(Some)
    }

    /// Starts creating the image; returns the operation.
    pub(crate) async fn insert(&self, project: &str, resource: &Value) -> Result<Value> {
        let name = resource.get("name").and_then(Value::as_str).unwrap_or_default();
        let what = format!("creating image {name} in project {project}");
        let url = self.images_url(project);
        let request_id = uuid::Uuid::new_v4().to_string();
        self.http
            .json(&what, || {
                self.http.client.post(&url).query(&[("requestId", &request_id)]).bearer_auth(&self.token).json(resource)
            })
            .await
    }

    /// Starts deleting the image; returns the operation.
    pub(crate) async fn delete(&self, project: &str, name: &str) -> Result<Value> {
        let what = format!("deleting image {name} in project {project}");
        let url = format!("{}/{}", self.images_url(project), encode_component(name));
        let request_id = uuid::Uuid::new_v4().to_string();
        self.http
            .json(&what, || self.http.client.delete(&url).query(&[("requestId", &request_id)]).bearer_auth(&self.token))
            .await
    }

    /// Waits until the global operation is done; its errors become [`PushError::Operation`].
    pub(crate) async fn wait(&self, project: &str, operation: Value, what: &str) -> Result<Value> {
        let mut operation = operation;
        for _ in 0..MAX_WAITS {
            if operation.get("status").and_then(Value::as_str) == Some(DONE) {
                return match operation_errors(&operation) {
                    Some(errors) => Err(PushError::Operation { what: what.into(), errors }),
                    None => Ok(operation),
                };
            }
            let name = operation
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| PushError::Protocol { what: what.into(), detail: "the operation has no name".into() })?;
            let url = format!(
                "{}projects/{}/global/operations/{}/wait",
                self.base,
                encode_component(project),
                encode_component(name)
            );
            operation = self.http.json(what, || self.http.client.post(&url).bearer_auth(&self.token)).await?;
        }
        Err(PushError::Operation { what: what.into(), errors: "the operation did not finish in time".into() })
    }
}

/// The messages of a finished operation's errors, joined, or `None` when it succeeded.
pub(crate) fn operation_errors(operation: &Value) -> Option<String> {
    let mut messages = Vec::new();
    if let Some(errors) = operation.pointer("/error/errors").and_then(Value::as_array) {
        for error in errors {
            let message = error.get("message").and_then(Value::as_str);
            let code = error.get("code").and_then(Value::as_str);
            match (code, message) {
                (Some(code), Some(message)) => messages.push(format!("{message} ({code})")),
                (None, Some(message)) => messages.push(message.to_string()),
                (Some(code), None) => messages.push(code.to_string()),
                (None, None) => {}
            }
        }
    }
    if messages.is_empty() && operation.get("error").is_some() {
        messages.push("the operation failed without a message".into());
    }
    if messages.is_empty() {
        let status = operation.get("httpErrorStatusCode").and_then(Value::as_u64).unwrap_or(0);
        if status >= 400 {
            let message = operation.get("httpErrorMessage").and_then(Value::as_str).unwrap_or("error");
            messages.push(format!("{message} (HTTP {status})"));
        }
    }
    (!messages.is_empty()).then(|| messages.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operation_errors_are_read_as_the_server_words_them() {
        let ok = json!({ "status": "DONE", "name": "op" });
        assert_eq!(operation_errors(&ok), None);
        let failed = json!({ "status": "DONE", "error": { "errors": [
            { "code": "INVALID_FIELD_VALUE", "message": "Invalid value for field 'resource.rawDisk.source'" },
            { "message": "second" }
        ]}});
        assert_eq!(
            operation_errors(&failed).unwrap(),
            "Invalid value for field 'resource.rawDisk.source' (INVALID_FIELD_VALUE); second"
        );
        let http = json!({ "status": "DONE", "httpErrorStatusCode": 403, "httpErrorMessage": "FORBIDDEN" });
        assert_eq!(operation_errors(&http).unwrap(), "FORBIDDEN (HTTP 403)");
    }
}

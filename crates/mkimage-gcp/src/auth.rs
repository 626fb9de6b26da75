//! Credentials: an access token from `CLOUDSDK_AUTH_ACCESS_TOKEN` (gcloud's variable), or
//! Application Default Credentials in the order Google's libraries search them (the
//! `GOOGLE_APPLICATION_CREDENTIALS` file, gcloud's user credentials file, the metadata server),
//! obtained through Google's own `google-cloud-auth`. Also the project the credentials name.
//!
//! Read from the process environment, as Google's libraries do.

use std::path::PathBuf;

use google_cloud_auth::credentials::{AccessTokenCredentials, Builder};

use crate::error::{PushError, Result};

/// gcloud's variable holding an access token to use as is.
pub const ACCESS_TOKEN_VAR: &str = "CLOUDSDK_AUTH_ACCESS_TOKEN";
/// The variable naming a credentials file.
pub const CREDENTIALS_VAR: &str = "GOOGLE_APPLICATION_CREDENTIALS";
/// Where gcloud writes user credentials (`gcloud auth application-default login`), under `$HOME`.
pub const GCLOUD_CREDENTIALS_PATH: &str = ".config/gcloud/application_default_credentials.json";
/// The variable that moves the metadata server (honoured by `google-cloud-auth` too).
pub const METADATA_HOST_VAR: &str = "GCE_METADATA_HOST";
/// The metadata server's usual host.
pub const METADATA_HOST: &str = "metadata.google.internal";
/// The OAuth scope the calls need.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Where the credentials came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialSource {
    /// `CLOUDSDK_AUTH_ACCESS_TOKEN`.
    AccessToken,
    /// A credentials file: `GOOGLE_APPLICATION_CREDENTIALS` (`from_env`) or gcloud's.
    File {
        /// Its path.
        path: PathBuf,
        /// Named by `GOOGLE_APPLICATION_CREDENTIALS`.
        from_env: bool,
        /// Its `type` (`service_account`, `authorized_user`, `external_account`...).
        kind: String,
    },
    /// The metadata server of the VM this runs on.
    MetadataServer {
        /// Its host.
        host: String,
    },
}

impl std::fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialSource::AccessToken => write!(f, "access token from {ACCESS_TOKEN_VAR}"),
            CredentialSource::File { path, from_env: true, kind } => {
                write!(f, "{kind} credentials from {CREDENTIALS_VAR}={}", path.display())
            }
            CredentialSource::File { path, from_env: false, kind } => {
                write!(f, "{kind} credentials from {}", path.display())
            }
            CredentialSource::MetadataServer { host } => write!(f, "the metadata server at {host}"),
        }
    }
}

/// Credentials, ready to give access tokens.
#[derive(Debug)]
pub struct Auth {
    source: CredentialSource,
    tokens: Tokens,
    /// The project the credentials file names (`project_id`, else `quota_project_id`).
    file_project: Option<String>,
    /// Where the search looked before settling, for error messages.
    looked: Vec<String>,
}

#[derive(Debug)]
enum Tokens {
    Static(String),
    /// Application Default Credentials, built when first needed (inside the runtime, which
    /// `google-cloud-auth` requires).
    Adc,
}

impl Auth {
    /// Finds credentials as gcloud and Google's libraries do.
    ///
    /// # Errors
    /// [`PushError::NoCredentials`] when a credentials file is named but unreadable or not
    /// credentials. (Without a file, the metadata server is tried when a token is first needed.)
    pub fn discover() -> Result<Auth> {
        if let Some(token) = std::env::var(ACCESS_TOKEN_VAR).ok().filter(|t| !t.trim().is_empty()) {
            return Ok(Auth {
                source: CredentialSource::AccessToken,
                tokens: Tokens::Static(token.trim().to_string()),
                file_project: None,
                looked: Vec::new(),
            });
        }
        let mut looked = Vec::new();
        let file = match std::env::var_os(CREDENTIALS_VAR).filter(|p| !p.is_empty()) {
            Some(path) => Some((PathBuf::from(path), true)),
            None => {
                looked.push(format!("{CREDENTIALS_VAR} is unset"));
                let path = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(GCLOUD_CREDENTIALS_PATH));
                match path {
                    Some(path) if path.exists() => Some((path, false)),
                    Some(path) => {
                        looked.push(format!("{} does not exist", path.display()));
                        None
                    }
                    None => {
                        looked.push("HOME is unset".into());
                        None
                    }
                }
            }
        };
        let no_credentials = |looked: String| PushError::NoCredentials { looked };
        let (source, file_project) = match file {
            Some((path, from_env)) => {
                let named =
                    if from_env { format!("{CREDENTIALS_VAR}={}", path.display()) } else { path.display().to_string() };
                let text =
                    std::fs::read_to_string(&path).map_err(|e| no_credentials(format!("cannot read {named}: {e}")))?;
                let json: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| no_credentials(format!("{named} is not a JSON credentials file: {e}")))?;
                let field = |name: &str| json.get(name).and_then(serde_json::Value::as_str).map(str::to_string);
                let kind = field("type")
                    .ok_or_else(|| no_credentials(format!("{named} has no \"type\"; it is not a credentials file")))?;
                let project = field("project_id").or_else(|| field("quota_project_id"));
                (CredentialSource::File { path, from_env, kind }, project)
            }
            None => {
                let host = std::env::var(METADATA_HOST_VAR).unwrap_or_else(|_| METADATA_HOST.into());
                (CredentialSource::MetadataServer { host }, None)
            }
        };
        Ok(Auth { source, tokens: Tokens::Adc, file_project, looked })
    }

    /// Credentials holding one fixed access token (tests, tokens obtained elsewhere).
    pub fn from_access_token(token: impl Into<String>) -> Auth {
        Auth {
            source: CredentialSource::AccessToken,
            tokens: Tokens::Static(token.into()),
            file_project: None,
            looked: Vec::new(),
        }
    }

    /// Where the credentials came from.
    pub fn source(&self) -> &CredentialSource {
        &self.source
    }

    /// The project the credentials file names, if any.
    pub fn file_project(&self) -> Option<&str> {
        self.file_project.as_deref()
    }

    /// An access token for the `Authorization` header.
    pub(crate) async fn token(&self) -> Result<String> {
        match &self.tokens {
            Tokens::Static(token) => Ok(token.clone()),
            Tokens::Adc => {
                let credentials: AccessTokenCredentials = Builder::default()
                    .with_scopes([SCOPE])
                    .build_access_token_credentials()
                    .map_err(|e| PushError::NoCredentials {
                        looked: format!("{}: {}", self.source, crate::http::error_chain(&e)),
                    })?;
                credentials.access_token().await.map(|t| t.token).map_err(|e| {
                    let mut looked = self.looked.clone();
                    let cause = crate::http::error_chain(&e);
                    match &self.source {
                        CredentialSource::MetadataServer { host } => {
                            looked.push(format!("the metadata server at {host} gave no token ({cause})"));
                        }
                        source => looked.push(format!("{source} gave no token: {cause}")),
                    }
                    PushError::NoCredentials { looked: looked.join(", ") }
                })
            }
        }
    }
}

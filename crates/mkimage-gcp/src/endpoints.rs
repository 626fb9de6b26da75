//! Where requests go: Google's public endpoints, or the emulator and private endpoints named by
//! the ecosystem's own variables (`STORAGE_EMULATOR_HOST` as Google's client libraries read it,
//! `CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE` as gcloud reads it).

use crate::error::{PushError, Result};

/// Cloud Storage's JSON API host.
pub const STORAGE_ENDPOINT: &str = "https://storage.googleapis.com";
/// Compute Engine's v1 API root.
pub const COMPUTE_ENDPOINT: &str = "https://compute.googleapis.com/compute/v1/";
/// The variable naming a Cloud Storage emulator (`host:port` or a URL).
pub const STORAGE_EMULATOR_HOST: &str = "STORAGE_EMULATOR_HOST";
/// gcloud's variable for another Compute Engine endpoint (a URL ending in `/compute/v1/`).
pub const COMPUTE_OVERRIDE: &str = "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE";
/// The path every Compute Engine v1 root ends with.
const COMPUTE_V1_SUFFIX: &str = "/compute/v1/";

/// The roots of the two APIs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoints {
    /// Cloud Storage root, without a trailing slash (`https://storage.googleapis.com`).
    pub storage: String,
    /// Whether Cloud Storage is an emulator (requests carry no credentials, as Google's
    /// libraries do with `STORAGE_EMULATOR_HOST`).
    pub storage_emulator: bool,
    /// Compute Engine v1 root, ending in `/compute/v1/`.
    pub compute: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints { storage: STORAGE_ENDPOINT.into(), storage_emulator: false, compute: COMPUTE_ENDPOINT.into() }
    }
}

impl Endpoints {
    /// The endpoints the environment names; `var` reads a variable (`std::env::var` in the CLI).
    ///
    /// # Errors
    /// [`PushError::Environment`] when a variable is set to something that is not an endpoint.
    pub fn from_env(var: &dyn Fn(&str) -> Option<String>) -> Result<Endpoints> {
        let mut endpoints = Endpoints::default();
        if let Some(host) = var(STORAGE_EMULATOR_HOST).filter(|v| !v.is_empty()) {
            let url = if host.contains("://") { host.clone() } else { format!("http://{host}") };
            let url = url.trim_end_matches('/').to_string();
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.ends_with("://") {
                return Err(PushError::Environment {
                    variable: STORAGE_EMULATOR_HOST,
                    value: host,
                    reason: "expected host:port or an http(s) URL",
                });
            }
            endpoints.storage = url;
            endpoints.storage_emulator = true;
        }
        if let Some(url) = var(COMPUTE_OVERRIDE).filter(|v| !v.is_empty()) {
            let with_slash = if url.ends_with('/') { url.clone() } else { format!("{url}/") };
            if !(with_slash.starts_with("http://") || with_slash.starts_with("https://"))
                || !with_slash.ends_with(COMPUTE_V1_SUFFIX)
            {
                return Err(PushError::Environment {
                    variable: COMPUTE_OVERRIDE,
                    value: url,
                    reason: "expected an http(s) URL ending in /compute/v1/",
                });
            }
            endpoints.compute = with_slash;
        }
        Ok(endpoints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn defaults_are_googles() {
        let e = Endpoints::from_env(&env(&[])).unwrap();
        assert_eq!(e, Endpoints::default());
        assert!(!e.storage_emulator);
    }

    #[test]
    fn emulator_and_override_are_read_as_the_ecosystem_writes_them() {
        let e = Endpoints::from_env(&env(&[
            ("STORAGE_EMULATOR_HOST", "127.0.0.1:4443"),
            ("CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE", "http://127.0.0.1:9/compute/v1"),
        ]))
        .unwrap();
        assert_eq!(e.storage, "http://127.0.0.1:4443");
        assert!(e.storage_emulator);
        assert_eq!(e.compute, "http://127.0.0.1:9/compute/v1/");
        let e = Endpoints::from_env(&env(&[("STORAGE_EMULATOR_HOST", "https://gcs.local/")])).unwrap();
        assert_eq!(e.storage, "https://gcs.local");
    }

    #[test]
    fn malformed_values_are_refused_naming_the_variable() {
        let err =
            Endpoints::from_env(&env(&[("CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE", "http://x/v1/")])).unwrap_err();
        assert!(err.to_string().starts_with("CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE=\"http://x/v1/\""), "{err}");
        assert!(Endpoints::from_env(&env(&[("STORAGE_EMULATOR_HOST", "ftp://x")])).is_err());
    }
}

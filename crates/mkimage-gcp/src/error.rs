//! The errors of a push: one variant per thing that can fail, each worded so that its
//! `Display` (with its causes) is the one line a user needs.

/// Why a push (or its plan) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// An option cannot be sent to GCE as given (a bad image name, label or bucket).
    #[error("{what} {value:?} is not valid: {reason}")]
    InvalidOption {
        /// What the value is ("image name", "label key"...).
        what: &'static str,
        /// The value given.
        value: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A guest OS feature that the image cannot honour.
    #[error("guest OS feature {feature} cannot be declared: {reason}")]
    Feature {
        /// The feature.
        feature: String,
        /// Why not.
        reason: &'static str,
    },
    /// The source could not be inspected.
    #[error(transparent)]
    Inspect(#[from] mkimage_core::inspect::InspectError),
    /// The source is not a tarball GCE would import and boot.
    #[error("{source_name} is not ready for GCE: {reason}")]
    NotReady {
        /// The source, as the user named it.
        source_name: String,
        /// The first failed check and its detail.
        reason: String,
    },
    /// Reading the source failed.
    #[error("cannot read {source_name}")]
    Read {
        /// The source, as the user named it.
        source_name: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No credentials were found.
    #[error("no Google Cloud credentials: {looked}")]
    NoCredentials {
        /// Where they were looked for, and what each place said.
        looked: String,
    },
    /// No project was given or found.
    #[error(
        "no Google Cloud project: none given, CLOUDSDK_CORE_PROJECT and GOOGLE_CLOUD_PROJECT are unset, and {looked}"
    )]
    NoProject {
        /// What the credentials said.
        looked: String,
    },
    /// An environment variable holds something unusable.
    #[error("{variable}={value:?} is not usable: {reason}")]
    Environment {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// The server answered a request with an error.
    #[error("{what}: {status_text} (HTTP {status}): {message}")]
    Api {
        /// What was being done ("uploading gs://b/o").
        what: String,
        /// The HTTP status.
        status: u16,
        /// The status in words ("permission denied").
        status_text: &'static str,
        /// The server's own message.
        message: String,
    },
    /// The request could not be made or its answer not read, after the retries.
    #[error("{what}: {detail}")]
    Transport {
        /// What was being done.
        what: String,
        /// The cause in words, with its chain.
        detail: String,
    },
    /// The server's answer could not be understood.
    #[error("{what}: unexpected answer from the server: {detail}")]
    Protocol {
        /// What was being done.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// The object exists with other content and replacing it was not asked for.
    #[error("{url} already exists with other content (generation {generation}, {size} bytes); it is not replaced")]
    ObjectExists {
        /// `gs://bucket/object`.
        url: String,
        /// Its generation.
        generation: String,
        /// Its size.
        size: u64,
    },
    /// The image exists and replacing it was not asked for.
    #[error("image {name} already exists in project {project}; it is not replaced")]
    ImageExists {
        /// The image name.
        name: String,
        /// The project.
        project: String,
    },
    /// What the server stored differs from what was sent.
    #[error("{url}: the server stored {stored}, but {sent} was sent; the object was deleted")]
    Checksum {
        /// `gs://bucket/object`.
        url: String,
        /// What was sent ("crc32c AAAAAA==, md5 ...").
        sent: String,
        /// What the server reported.
        stored: String,
    },
    /// A Compute Engine operation ended with errors.
    #[error("{what} failed: {errors}")]
    Operation {
        /// What the operation did.
        what: String,
        /// The server's error messages, joined.
        errors: String,
    },
    /// The push was interrupted; the upload session was cancelled.
    #[error("interrupted; {cleanup}")]
    Interrupted {
        /// What was undone.
        cleanup: String,
    },
}

/// A push result.
pub type Result<T, E = PushError> = std::result::Result<T, E>;

/// HTTP status codes in words, as a user reads them.
pub(crate) fn status_text(status: u16) -> &'static str {
    match status {
        400 => "bad request",
        401 => "not authenticated (the credentials were refused)",
        403 => "permission denied",
        404 => "not found",
        409 => "conflict",
        412 => "precondition failed (changed meanwhile)",
        429 => "rate limited or out of quota",
        500..=599 => "server error",
        _ => "error",
    }
}

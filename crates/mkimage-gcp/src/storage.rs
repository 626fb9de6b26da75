//! Cloud Storage's JSON API, the parts a push needs: an object's metadata, and a resumable
//! upload (start a session, send chunks, ask how much the server holds after a failure, finish,
//! cancel). The protocol is Google's "resumable uploads" for the JSON API.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::error::{PushError, Result};
use crate::http::{Http, api_error, error_chain, read_json, transient_error, transient_status};
use crate::plan::encode_component;

/// Bytes per chunk: a multiple of the 256 KiB every chunk but the last must be.
pub const CHUNK_SIZE: usize = 32 * CHUNK_GRANULE;
/// What every chunk but the last is a multiple of.
pub const CHUNK_GRANULE: usize = 256 * 1024;
/// HTTP status of an unfinished resumable upload ("Resume Incomplete").
const RESUME_INCOMPLETE: u16 = 308;
/// Content type of a GCE tarball.
pub const CONTENT_TYPE: &str = "application/gzip";

/// CRC32C and MD5 of some bytes, as Cloud Storage reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digests {
    /// Size in bytes.
    pub size: u64,
    /// CRC32C (Castagnoli).
    pub crc32c: u32,
    /// MD5.
    pub md5: [u8; 16],
}

impl Digests {
    /// `crc32c` as Cloud Storage writes it: base64 of the big-endian bytes.
    pub fn crc32c_base64(&self) -> String {
        BASE64.encode(self.crc32c.to_be_bytes())
    }

    /// `md5Hash` as Cloud Storage writes it: base64.
    pub fn md5_base64(&self) -> String {
        BASE64.encode(self.md5)
    }

    /// "N bytes, crc32c X, md5 Y".
    pub fn describe(&self) -> String {
        format!("{} bytes, crc32c {}, md5 {}", self.size, self.crc32c_base64(), self.md5_base64())
    }
}

/// Computes [`Digests`] over a stream of bytes.
#[derive(Clone, Default)]
pub struct Hasher {
    size: u64,
    crc32c: u32,
    md5: md5::Md5,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher").field("size", &self.size).finish_non_exhaustive()
    }
}

impl Hasher {
    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        use md5::Digest;
        self.size += bytes.len() as u64;
        self.crc32c = crc32c::crc32c_append(self.crc32c, bytes);
        self.md5.update(bytes);
    }

    /// The digests of everything added.
    pub fn finish(self) -> Digests {
        use md5::Digest;
        Digests { size: self.size, crc32c: self.crc32c, md5: self.md5.finalize().into() }
    }
}

/// An object as the server describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its bucket, as the server names it.
    pub bucket: String,
    /// Its name.
    pub name: String,
    /// Its generation (a number, kept as the server's string).
    pub generation: String,
    /// Size in bytes.
    pub size: u64,
    /// CRC32C, if reported.
    pub crc32c: Option<u32>,
    /// MD5, if reported (composite objects have none).
    pub md5: Option<[u8; 16]>,
}

impl ObjectInfo {
    fn from_json(what: &str, json: &Value) -> Result<ObjectInfo> {
        let protocol = |detail: &str| PushError::Protocol { what: what.into(), detail: detail.into() };
        let text = |name: &str| json.get(name).and_then(Value::as_str);
        let number = |name: &str| {
            json.get(name).and_then(|v| v.as_str().and_then(|s| s.parse::<u64>().ok()).or_else(|| v.as_u64()))
        };
        let generation = json
            .get("generation")
            .and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_u64().map(|n| n.to_string())))
            .ok_or_else(|| protocol("the object has no generation"))?;
        let size = number("size").ok_or_else(|| protocol("the object has no size"))?;
        let crc32c = text("crc32c")
            .map(|s| {
                let bytes = BASE64.decode(s).ok().and_then(|b| <[u8; 4]>::try_from(b).ok());
                bytes.map(u32::from_be_bytes).ok_or_else(|| protocol("crc32c is not 4 bytes of base64"))
            })
            .transpose()?;
        let md5 = text("md5Hash")
            .map(|s| {
                let bytes = BASE64.decode(s).ok().and_then(|b| <[u8; 16]>::try_from(b).ok());
                bytes.ok_or_else(|| protocol("md5Hash is not 16 bytes of base64"))
            })
            .transpose()?;
        let bucket = text("bucket").unwrap_or_default().to_string();
        let name = text("name").unwrap_or_default().to_string();
        Ok(ObjectInfo { bucket, name, generation, size, crc32c, md5 })
    }

    /// Whether the object holds exactly the bytes `digests` describes (size and every checksum
    /// the server reports agree, and it reports at least one).
    pub fn matches(&self, digests: &Digests) -> bool {
        self.size == digests.size
            && (self.crc32c.is_some() || self.md5.is_some())
            && self.crc32c.is_none_or(|c| c == digests.crc32c)
            && self.md5.is_none_or(|m| m == digests.md5)
    }

    /// `crc32c` as Cloud Storage writes it (base64 of the big-endian bytes), if reported.
    pub fn crc32c_base64(&self) -> Option<String> {
        self.crc32c.map(|c| BASE64.encode(c.to_be_bytes()))
    }

    /// `md5Hash` as Cloud Storage writes it (base64), if reported.
    pub fn md5_base64(&self) -> Option<String> {
        self.md5.map(|m| BASE64.encode(m))
    }

    /// What the server reports, in words.
    pub fn describe(&self) -> String {
        let crc = self.crc32c_base64().unwrap_or_else(|| "none".into());
        let md5 = self.md5_base64().unwrap_or_else(|| "none".into());
        format!("{} bytes, crc32c {crc}, md5 {md5}", self.size)
    }
}

/// Cloud Storage, at an endpoint, with or without credentials.
#[derive(Debug)]
pub(crate) struct Storage<'a> {
    pub(crate) http: &'a Http,
    pub(crate) base: &'a str,
    pub(crate) token: Option<String>,
}

/// Where a resumable upload stands.
#[derive(Debug)]
pub(crate) enum Progress {
    /// The server holds this many bytes.
    Persisted(u64),
    /// The upload finished; the object.
    Done(ObjectInfo),
}

impl Storage<'_> {
    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    fn object_url(&self, bucket: &str, object: &str) -> String {
        format!("{}/storage/v1/b/{}/o/{}", self.base, encode_component(bucket), encode_component(object))
    }

    /// The object's metadata, or `None` when there is no such object (the bucket must exist).
    pub(crate) async fn object(&self, bucket: &str, object: &str) -> Result<Option<ObjectInfo>> {
        let what = format!("looking up gs://{bucket}/{object}");
        let url = self.object_url(bucket, object);
        let response = self.http.send(&what, || self.authorize(self.http.client.get(&url))).await?;
        if response.status() == StatusCode::NOT_FOUND {
            // Either the object or the bucket is missing; ask which.
            let bucket_url = format!("{}/storage/v1/b/{}", self.base, encode_component(bucket));
            let what_bucket = format!("looking up bucket {bucket}");
            let answer = self.http.send(&what_bucket, || self.authorize(self.http.client.get(&bucket_url))).await?;
            if answer.status() == StatusCode::NOT_FOUND {
                return Err(PushError::Api {
                    what: format!("uploading to gs://{bucket}"),
                    status: 404,
                    status_text: crate::error::status_text(404),
                    message: format!("bucket {bucket} does not exist (or is not visible to these credentials)"),
                });
            }
            if !answer.status().is_success() {
                return Err(api_error(&what_bucket, answer).await);
            }
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(api_error(&what, response).await);
        }
        let json = read_json(&what, response).await?;
        ObjectInfo::from_json(&what, &json).map(Some)
    }

    /// Deletes the object generation `generation` (after a failed verification).
    pub(crate) async fn delete(&self, bucket: &str, object: &str, generation: &str) -> Result<()> {
        let what = format!("deleting gs://{bucket}/{object}");
        let url = self.object_url(bucket, object);
        let response = self
            .http
            .send(&what, || self.authorize(self.http.client.delete(&url).query(&[("generation", generation)])))
            .await?;
        if response.status().is_success() || response.status() == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(api_error(&what, response).await)
        }
    }

    /// Starts a resumable upload that creates the object only if its generation is still
    /// `if_generation_match` (0: only if it does not exist). `known` digests, when given, are
    /// sent for the server to check. Returns the session URL.
    pub(crate) async fn start(
        &self,
        bucket: &str,
        object: &str,
        if_generation_match: &str,
        known: Option<&Digests>,
    ) -> Result<String> {
        let what = format!("starting the upload to gs://{bucket}/{object}");
        let url = format!("{}/upload/storage/v1/b/{}/o", self.base, encode_component(bucket));
        let mut metadata = json!({ "name": object, "contentType": CONTENT_TYPE });
        if let Some(d) = known {
            metadata["crc32c"] = Value::from(d.crc32c_base64());
            metadata["md5Hash"] = Value::from(d.md5_base64());
        }
        let response = self
            .http
            .send(&what, || {
                let mut request = self
                    .http
                    .client
                    .post(&url)
                    .query(&[("uploadType", "resumable"), ("name", object), ("ifGenerationMatch", if_generation_match)])
                    .header("X-Upload-Content-Type", CONTENT_TYPE)
                    .json(&metadata);
                if let Some(d) = known {
                    request = request.header("X-Upload-Content-Length", d.size);
                }
                self.authorize(request)
            })
            .await?;
        if !response.status().is_success() {
            return Err(api_error(&what, response).await);
        }
        let location = response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok());
        location
            .map(str::to_string)
            .ok_or_else(|| PushError::Protocol { what, detail: "no Location header with the session URL".into() })
    }

    /// Sends `data`, the bytes from `offset`; `total` is the object's size when this is the last
    /// chunk. One attempt: the caller asks [`Storage::status`] and resends after a failure.
    pub(crate) async fn put(
        &self,
        what: &str,
        session: &str,
        offset: u64,
        data: &[u8],
        total: Option<u64>,
    ) -> Result<Progress, Attempt> {
        let total_text = total.map_or("*".to_string(), |t| t.to_string());
        let range = if data.is_empty() {
            format!("bytes */{total_text}")
        } else {
            format!("bytes {}-{}/{total_text}", offset, offset + data.len() as u64 - 1)
        };
        let request = self.http.client.put(session).header(reqwest::header::CONTENT_RANGE, range).body(data.to_vec());
        self.progress(what, request).await
    }

    /// Asks how much of the upload the server holds (or whether it finished).
    pub(crate) async fn status(&self, what: &str, session: &str) -> Result<Progress, Attempt> {
        let request =
            self.http.client.put(session).header(reqwest::header::CONTENT_RANGE, "bytes */*").body(Vec::new());
        self.progress(what, request).await
    }

    async fn progress(&self, what: &str, request: reqwest::RequestBuilder) -> Result<Progress, Attempt> {
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) if transient_error(&err) => return Err(Attempt::Transient(error_chain(&err))),
            Err(err) => {
                return Err(Attempt::Failed(PushError::Transport { what: what.into(), detail: error_chain(&err) }));
            }
        };
        let status = response.status();
        if status.as_u16() == RESUME_INCOMPLETE {
            let persisted = match response.headers().get(reqwest::header::RANGE).and_then(|v| v.to_str().ok()) {
                None => 0,
                Some(range) => parse_range_end(range).map(|end| end + 1).ok_or_else(|| {
                    Attempt::Failed(PushError::Protocol { what: what.into(), detail: format!("bad Range {range:?}") })
                })?,
            };
            return Ok(Progress::Persisted(persisted));
        }
        if status.is_success() {
            let json = read_json(what, response).await.map_err(Attempt::Failed)?;
            return ObjectInfo::from_json(what, &json).map(Progress::Done).map_err(Attempt::Failed);
        }
        if transient_status(status) {
            return Err(Attempt::Transient(format!("HTTP {}", status.as_u16())));
        }
        Err(Attempt::Failed(api_error(what, response).await))
    }

    /// Cancels the session, so that nothing of it remains (best effort: an unfinished session
    /// never becomes an object, and the server forgets it after a week).
    pub(crate) async fn cancel(&self, session: &str) -> bool {
        match self.http.client.delete(session).send().await {
            // Cloud Storage answers 499 to a cancelled session.
            Ok(response) => {
                response.status().as_u16() == 499
                    || response.status().is_success()
                    || response.status() == StatusCode::NOT_FOUND
            }
            Err(_) => false,
        }
    }
}

/// A failed chunk request.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// Worth asking the status and resending (the cause in words).
    Transient(String),
    /// Final.
    Failed(PushError),
}

/// The last byte in a `Range: bytes=0-N` header.
fn parse_range_end(range: &str) -> Option<u64> {
    let (start, end) = range.strip_prefix("bytes=")?.split_once('-')?;
    (start == "0").then_some(())?;
    end.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_written_as_cloud_storage_writes_them() {
        let mut hasher = Hasher::default();
        hasher.update(b"hello ");
        hasher.update(b"world");
        let d = hasher.finish();
        assert_eq!(d.size, 11);
        // Values gsutil hash reports for "hello world".
        assert_eq!(d.crc32c_base64(), "yZRlqg==");
        assert_eq!(d.md5_base64(), "XrY7u+Ae7tCTyyK7j1rNww==");
    }

    #[test]
    fn objects_match_on_size_and_every_reported_checksum() {
        let mut hasher = Hasher::default();
        hasher.update(b"hello world");
        let d = hasher.finish();
        let json =
            json!({ "generation": "17", "size": "11", "crc32c": "yZRlqg==", "md5Hash": "XrY7u+Ae7tCTyyK7j1rNww==" });
        let info = ObjectInfo::from_json("t", &json).unwrap();
        assert!(info.matches(&d));
        assert_eq!(info.generation, "17");
        let other = ObjectInfo { crc32c: Some(1), ..info.clone() };
        assert!(!other.matches(&d));
        let none = ObjectInfo { crc32c: None, md5: None, ..info.clone() };
        assert!(!none.matches(&d), "nothing to compare is not a match");
        let composite = ObjectInfo { md5: None, ..info };
        assert!(composite.matches(&d));
        assert!(ObjectInfo::from_json("t", &json!({ "generation": "1", "size": "1", "crc32c": "!!" })).is_err());
    }

    #[test]
    fn ranges_are_read_as_the_last_byte_held() {
        assert_eq!(parse_range_end("bytes=0-262143"), Some(262143));
        assert_eq!(parse_range_end("bytes=5-9"), None);
        assert_eq!(parse_range_end("0-9"), None);
    }

    #[test]
    fn chunks_are_whole_granules() {
        assert_eq!(CHUNK_SIZE % CHUNK_GRANULE, 0);
    }
}

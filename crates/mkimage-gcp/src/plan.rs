//! The push plan: options and an inspection report in, everything a push will send out (object
//! name and URL, the image resource, labels, guest OS features, warnings, the equivalent gcloud
//! commands). Pure: no I/O, no clock, no environment; unit-tested here.

use mkimage_core::Firmware;
use mkimage_core::inspect::{CheckName, Container, Report};
use serde_json::{Map, Value, json};

use crate::error::{PushError, Result};

/// The only architecture a Multiboot 1 x86 kernel runs on.
pub const ARCHITECTURE: &str = "X86_64";
/// The guest OS feature that makes GCE boot the image under UEFI.
pub const UEFI_COMPATIBLE: &str = "UEFI_COMPATIBLE";
/// Guest OS features that need the image to boot under UEFI (Confidential VM).
pub const NEEDS_UEFI: [&str; 4] = [UEFI_COMPATIBLE, "SEV_CAPABLE", "SEV_SNP_CAPABLE", "TDX_CAPABLE"];
/// The guest OS feature for Google's virtual NIC, which Solo5 has no driver for.
pub const GVNIC: &str = "GVNIC";
/// Label carrying the first characters of the kernel's SHA-256.
pub const LABEL_KERNEL_SHA256: &str = "kernel-sha256";
/// How many hex digits of the kernel's SHA-256 the label keeps (label values hold at most 63).
pub const KERNEL_SHA256_LABEL_DIGITS: usize = 32;
/// Label carrying the version of the tool that pushed the image.
pub const LABEL_TOOL_VERSION: &str = "unikernel-mkimage";
/// Most labels a resource may carry.
pub const MAX_LABELS: usize = 64;
/// Longest label key or value, in characters.
pub const MAX_LABEL_LEN: usize = 63;
/// Longest image or family name.
pub const MAX_IMAGE_NAME_LEN: usize = 63;
/// Longest object name, in bytes.
pub const MAX_OBJECT_NAME_LEN: usize = 1024;
/// Bucket names are 3 to 63 characters (222 with dots, each part at most 63).
pub const BUCKET_NAME_LEN: std::ops::RangeInclusive<usize> = 3..=63;
/// Longest dotted bucket name.
pub const MAX_DOTTED_BUCKET_NAME_LEN: usize = 222;
/// Longest image description.
pub const MAX_DESCRIPTION_LEN: usize = 2048;
/// Where Compute Engine reads image sources from.
pub const STORAGE_SOURCE_BASE: &str = "https://storage.googleapis.com";

/// What the user asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushOptions {
    /// The Cloud Storage bucket.
    pub bucket: String,
    /// The object name; [`None`]: `IMAGE.tar.gz`.
    pub object: Option<String>,
    /// The image name.
    pub image: String,
    /// The image family.
    pub family: Option<String>,
    /// The image description.
    pub description: Option<String>,
    /// Labels, in the order given; a later key wins.
    pub labels: Vec<(String, String)>,
    /// Guest OS features asked for, besides those the image implies.
    pub guest_os_features: Vec<String>,
    /// Where the image is stored (a region or multi-region).
    pub storage_location: Option<String>,
    /// Replace an existing object with other content and an existing image of that name.
    pub replace: bool,
}

impl PushOptions {
    /// Options for pushing to `bucket` as image `image`, the rest defaulted.
    pub fn new(bucket: impl Into<String>, image: impl Into<String>) -> PushOptions {
        PushOptions { bucket: bucket.into(), image: image.into(), ..PushOptions::default() }
    }

    /// The object name: the one given, or `IMAGE.tar.gz`.
    pub fn object_name(&self) -> String {
        self.object.clone().unwrap_or_else(|| format!("{}.tar.gz", self.image))
    }

    /// Checks every name, label and feature against GCE's rules, before anything is read or
    /// sent.
    ///
    /// # Errors
    /// [`PushError::InvalidOption`] naming the value and the rule it breaks.
    pub fn validate(&self) -> Result<()> {
        check_bucket(&self.bucket)?;
        check_object(&self.object_name())?;
        check_resource_name("image name", &self.image)?;
        if let Some(family) = &self.family {
            check_resource_name("image family", family)?;
        }
        if let Some(description) = &self.description
            && description.chars().count() > MAX_DESCRIPTION_LEN
        {
            return Err(invalid("description", description, "longer than 2048 characters"));
        }
        for (key, value) in &self.labels {
            check_label(key, value)?;
        }
        for feature in &self.guest_os_features {
            if feature.is_empty() || !feature.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(invalid("guest OS feature", feature, "features are upper-case names such as GVNIC"));
            }
        }
        if let Some(location) = &self.storage_location
            && (location.is_empty() || !location.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(invalid("storage location", location, "a region or multi-region such as us-central1 or eu"));
        }
        Ok(())
    }
}

/// Everything a push sends, decided before anything is sent.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PushPlan {
    /// The project.
    pub project: String,
    /// The bucket.
    pub bucket: String,
    /// The object name.
    pub object: String,
    /// The image name.
    pub image: String,
    /// The `images.insert` request body.
    pub image_resource: Value,
    /// Guest OS features declared, in order.
    pub guest_os_features: Vec<String>,
    /// Things the user should know (a feature the kernel cannot use...).
    pub warnings: Vec<String>,
    /// Replace existing object and image.
    pub replace: bool,
}

impl PushPlan {
    /// Plans a push of the tarball described by `report` into `project`.
    ///
    /// # Errors
    /// [`PushError::InvalidOption`] for options GCE would refuse, [`PushError::NotReady`] when
    /// the report is not of a tarball GCE would import and boot, [`PushError::Feature`] when a
    /// feature needs UEFI and the image has no UEFI loader.
    pub fn new(options: &PushOptions, report: &Report, project: &str, source_name: &str) -> Result<PushPlan> {
        options.validate()?;
        check_resource_name_like("project", project)?;
        if let Some(reason) = not_ready_reason(report) {
            return Err(PushError::NotReady { source_name: source_name.into(), reason });
        }
        let uefi = report.firmware.contains(&Firmware::Uefi);
        let mut features: Vec<String> = Vec::new();
        let mut warnings = Vec::new();
        if uefi {
            features.push(UEFI_COMPATIBLE.into());
        }
        for feature in &options.guest_os_features {
            if NEEDS_UEFI.contains(&feature.as_str()) && !uefi {
                return Err(PushError::Feature {
                    feature: feature.clone(),
                    reason: "it makes GCE boot the image under UEFI, and the image has no UEFI loader (build it with \
                             the UEFI loader)",
                });
            }
            if feature == GVNIC && !features.contains(feature) {
                warnings.push(
                    "GVNIC declared: Solo5 has no gVNIC driver, so a unikernel on a VM that uses gVNIC has no network"
                        .into(),
                );
            }
            if !features.contains(feature) {
                features.push(feature.clone());
            }
        }
        let mut labels = Map::new();
        if let Some(kernel) = &report.kernel {
            let digits = kernel.sha256.get(..KERNEL_SHA256_LABEL_DIGITS).unwrap_or(&kernel.sha256);
            labels.insert(LABEL_KERNEL_SHA256.into(), Value::from(digits));
        }
        labels.insert(LABEL_TOOL_VERSION.into(), Value::from(label_value_of_version(mkimage_core::TOOL_VERSION)));
        for (key, value) in &options.labels {
            labels.insert(key.clone(), Value::from(value.as_str()));
        }
        if labels.len() > MAX_LABELS {
            return Err(invalid("labels", &labels.len().to_string(), "an image carries at most 64 labels"));
        }
        let object = options.object_name();
        let mut resource = Map::new();
        resource.insert("name".into(), Value::from(options.image.as_str()));
        resource.insert("rawDisk".into(), json!({ "source": source_url(&options.bucket, &object) }));
        if let Some(family) = &options.family {
            resource.insert("family".into(), Value::from(family.as_str()));
        }
        if let Some(description) = &options.description {
            resource.insert("description".into(), Value::from(description.as_str()));
        }
        resource.insert("labels".into(), Value::Object(labels));
        resource.insert("architecture".into(), Value::from(ARCHITECTURE));
        if !features.is_empty() {
            let list: Vec<Value> = features.iter().map(|f| json!({ "type": f })).collect();
            resource.insert("guestOsFeatures".into(), Value::Array(list));
        }
        if let Some(location) = &options.storage_location {
            resource.insert("storageLocations".into(), json!([location]));
        }
        Ok(PushPlan {
            project: project.into(),
            bucket: options.bucket.clone(),
            object,
            image: options.image.clone(),
            image_resource: Value::Object(resource),
            guest_os_features: features,
            warnings,
            replace: options.replace,
        })
    }

    /// `gs://bucket/object`.
    pub fn object_url(&self) -> String {
        format!("gs://{}/{}", self.bucket, self.object)
    }

    /// The image's resource path, `projects/P/global/images/NAME`.
    pub fn image_path(&self) -> String {
        format!("projects/{}/global/images/{}", self.project, self.image)
    }

    /// The gcloud commands that would do the same, one per line (`SOURCE` as given).
    pub fn gcloud_commands(&self, source: &str) -> Vec<String> {
        let mut copy = vec!["gcloud".to_string(), "storage".into(), "cp".into(), shell_quote(source)];
        copy.push(shell_quote(&self.object_url()));
        let mut create = vec![
            "gcloud".to_string(),
            "compute".into(),
            "images".into(),
            "create".into(),
            shell_quote(&self.image),
            format!("--project={}", shell_quote(&self.project)),
            format!("--source-uri={}", shell_quote(&self.object_url())),
        ];
        let field = |name: &str| self.image_resource.get(name).and_then(Value::as_str);
        if let Some(family) = field("family") {
            create.push(format!("--family={}", shell_quote(family)));
        }
        if let Some(description) = field("description") {
            create.push(format!("--description={}", shell_quote(description)));
        }
        if let Some(Value::Object(labels)) = self.image_resource.get("labels") {
            let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect();
            create.push(format!("--labels={}", shell_quote(&pairs.join(","))));
        }
        create.push(format!("--architecture={ARCHITECTURE}"));
        if !self.guest_os_features.is_empty() {
            create.push(format!("--guest-os-features={}", self.guest_os_features.join(",")));
        }
        if let Some(Value::Array(locations)) = self.image_resource.get("storageLocations")
            && let Some(location) = locations.first().and_then(Value::as_str)
        {
            create.push(format!("--storage-location={}", shell_quote(location)));
        }
        let mut lines = Vec::new();
        if self.replace {
            lines.push(format!(
                "gcloud compute images delete {} --project={} --quiet",
                shell_quote(&self.image),
                shell_quote(&self.project)
            ));
        }
        lines.push(copy.join(" "));
        lines.push(create.join(" "));
        lines
    }
}

/// Why a report is not of a tarball GCE would import and boot, or `None` when it is.
pub fn not_ready_reason(report: &Report) -> Option<String> {
    if report.gce_ready() {
        return None;
    }
    if !matches!(report.container, Container::Tarball(_)) {
        return Some("it is a raw disk image, not a GCE tarball".into());
    }
    let order = CheckName::GCE_RULES.iter().chain(&[CheckName::PartitionTable, CheckName::BootablePartition]);
    for &name in order {
        match report.checks.iter().find(|c| c.name == name) {
            Some(check) if !check.ok => return Some(format!("check {} failed: {}", name.as_str(), check.detail)),
            None => return Some(format!("check {} could not be made", name.as_str())),
            Some(_) => {}
        }
    }
    Some("the disk holds neither BIOS boot code nor a UEFI loader".into())
}

/// The HTTPS URL Compute Engine reads an object from.
pub fn source_url(bucket: &str, object: &str) -> String {
    format!("{STORAGE_SOURCE_BASE}/{bucket}/{}", encode_path_segment_keep_slash(object))
}

/// A tool version as a label value: lower case, dots become dashes (`0.1.0` → `0-1-0`).
fn label_value_of_version(version: &str) -> String {
    version.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
}

/// Percent-encodes an object name for a URL path, keeping `/` (as `gcloud` shows them).
pub(crate) fn encode_path_segment_keep_slash(name: &str) -> String {
    name.split('/').map(encode_component).collect::<Vec<_>>().join("/")
}

/// Percent-encodes one URL component (everything but unreserved characters).
pub(crate) fn encode_component(text: &str) -> String {
    const SET: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    percent_encoding::utf8_percent_encode(text, SET).to_string()
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', "'\\''")) }
}

fn invalid(what: &'static str, value: &str, reason: &'static str) -> PushError {
    PushError::InvalidOption { what, value: value.into(), reason }
}

/// Image and family names: `[a-z]([-a-z0-9]{0,61}[a-z0-9])?`.
fn check_resource_name(what: &'static str, name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_IMAGE_NAME_LEN
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            what,
            name,
            "1 to 63 characters: lower-case letters, digits and dashes, starting with a letter, not ending with a dash",
        ))
    }
}

/// Project IDs: lower-case letters, digits, dashes (and `domain:` prefixes), nothing that would
/// change a URL path.
fn check_resource_name_like(what: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:".contains(&b));
    if ok { Ok(()) } else { Err(invalid(what, name, "lower-case letters, digits, dashes, dots and colons")) }
}

/// Bucket names, as Cloud Storage defines them.
fn check_bucket(name: &str) -> Result<()> {
    const RULE: &str = "3 to 63 characters (222 with dots): lower-case letters, digits, dashes, underscores and \
                        dots, starting and ending with a letter or digit";
    let bytes = name.as_bytes();
    let limit = if name.contains('.') { MAX_DOTTED_BUCKET_NAME_LEN } else { *BUCKET_NAME_LEN.end() };
    let ok = bytes.len() >= *BUCKET_NAME_LEN.start()
        && bytes.len() <= limit
        && bytes.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && name.split('.').all(|part| !part.is_empty() && part.len() <= *BUCKET_NAME_LEN.end());
    if ok { Ok(()) } else { Err(invalid("bucket name", name, RULE)) }
}

/// Object names, as Cloud Storage defines them.
fn check_object(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_OBJECT_NAME_LEN {
        return Err(invalid("object name", name, "1 to 1024 bytes"));
    }
    if name.contains(['\r', '\n']) || name.chars().any(char::is_control) {
        return Err(invalid("object name", name, "no control characters"));
    }
    if name == "." || name == ".." || name.starts_with(".well-known/acme-challenge/") {
        return Err(invalid("object name", name, "reserved by Cloud Storage"));
    }
    Ok(())
}

/// Label keys `[a-z][a-z0-9_-]{0,62}` and values `[a-z0-9_-]{0,63}` (lower-case letters of
/// any script count as letters).
fn check_label(key: &str, value: &str) -> Result<()> {
    let allowed = |c: char| c.is_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' || c.is_numeric();
    let key_ok = key.chars().next().is_some_and(char::is_lowercase)
        && key.chars().count() <= MAX_LABEL_LEN
        && key.chars().all(allowed);
    if !key_ok {
        return Err(invalid(
            "label key",
            key,
            "1 to 63 characters: lower-case letters, digits, dashes and underscores, starting with a letter",
        ));
    }
    if value.chars().count() > MAX_LABEL_LEN || !value.chars().all(allowed) {
        return Err(invalid(
            "label value",
            value,
            "at most 63 characters: lower-case letters, digits, dashes and underscores",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkimage_core::{ImageBuilder, Kernel};

    /// A report of a real tarball built from the test kernel, with the given firmware.
    fn report(firmware: Firmware) -> Report {
        let kernel = Kernel::from_bytes("hello.elf", mkimage_core::testkit::multiboot_kernel(b"hello"));
        let image = ImageBuilder::new(kernel).firmware(firmware).build().unwrap();
        let mut tarball = Vec::new();
        image.write_gce(&mut tarball).unwrap();
        mkimage_core::inspect::inspect_tarball(&tarball[..], "hello.tar.gz").unwrap()
    }

    #[test]
    fn hybrid_images_are_uefi_compatible_and_labelled() {
        let report = report(Firmware::Hybrid);
        let mut options = PushOptions::new("my-bucket", "hello-1");
        options.family = Some("hello".into());
        options.labels = vec![("team".into(), "unikernels".into())];
        let plan = PushPlan::new(&options, &report, "my-project", "hello.tar.gz").unwrap();
        assert_eq!(plan.object, "hello-1.tar.gz");
        assert_eq!(plan.object_url(), "gs://my-bucket/hello-1.tar.gz");
        assert_eq!(plan.guest_os_features, ["UEFI_COMPATIBLE"]);
        let r = &plan.image_resource;
        assert_eq!(r["rawDisk"]["source"], "https://storage.googleapis.com/my-bucket/hello-1.tar.gz");
        assert_eq!(r["architecture"], "X86_64");
        assert_eq!(r["family"], "hello");
        let sha = &report.kernel.as_ref().unwrap().sha256;
        assert_eq!(r["labels"]["kernel-sha256"], sha[..32]);
        assert_eq!(r["labels"]["unikernel-mkimage"], mkimage_core::TOOL_VERSION.replace('.', "-"));
        assert_eq!(r["labels"]["team"], "unikernels");
        assert_eq!(r["guestOsFeatures"], json!([{ "type": "UEFI_COMPATIBLE" }]));
        assert!(plan.warnings.is_empty());
    }

    #[test]
    fn bios_images_declare_no_uefi_and_refuse_features_that_need_it() {
        let report = report(Firmware::Bios);
        let options = PushOptions::new("b-1", "img");
        let plan = PushPlan::new(&options, &report, "p", "x").unwrap();
        assert!(plan.guest_os_features.is_empty());
        assert!(plan.image_resource.get("guestOsFeatures").is_none());
        for feature in NEEDS_UEFI {
            let mut options = options.clone();
            options.guest_os_features = vec![feature.into()];
            let err = PushPlan::new(&options, &report, "p", "x").unwrap_err();
            assert!(matches!(err, PushError::Feature { .. }), "{feature}: {err}");
        }
    }

    #[test]
    fn gvnic_is_declared_with_a_warning_and_features_are_not_repeated() {
        let report = report(Firmware::Hybrid);
        let mut options = PushOptions::new("b-1", "img");
        options.guest_os_features = vec!["GVNIC".into(), "UEFI_COMPATIBLE".into(), "GVNIC".into()];
        let plan = PushPlan::new(&options, &report, "p", "x").unwrap();
        assert_eq!(plan.guest_os_features, ["UEFI_COMPATIBLE", "GVNIC"]);
        assert_eq!(plan.warnings.len(), 1);
        assert!(plan.warnings[0].contains("gVNIC driver"));
    }

    #[test]
    fn user_labels_override_the_defaults() {
        let report = report(Firmware::Bios);
        let mut options = PushOptions::new("b-1", "img");
        options.labels = vec![("kernel-sha256".into(), "mine".into())];
        let plan = PushPlan::new(&options, &report, "p", "x").unwrap();
        assert_eq!(plan.image_resource["labels"]["kernel-sha256"], "mine");
    }

    #[test]
    fn raw_images_and_failed_checks_are_not_ready() {
        let kernel = Kernel::from_bytes("k", mkimage_core::testkit::multiboot_kernel(b"k"));
        let image = ImageBuilder::new(kernel).build().unwrap();
        let mut raw = std::io::Cursor::new(Vec::new());
        image.write_raw(&mut raw).unwrap();
        raw.set_position(0);
        let report = mkimage_core::inspect::inspect_raw(raw, "disk.raw").unwrap();
        let err = PushPlan::new(&PushOptions::new("b-1", "img"), &report, "p", "disk.raw").unwrap_err();
        assert_eq!(err.to_string(), "disk.raw is not ready for GCE: it is a raw disk image, not a GCE tarball");
    }

    #[test]
    fn names_follow_gce_rules() {
        let ok = |f: fn(&mut PushOptions)| {
            let mut o = PushOptions::new("my-bucket", "img");
            f(&mut o);
            o.validate()
        };
        assert!(ok(|_| {}).is_ok());
        assert!(ok(|o| o.image = "Img".into()).is_err());
        assert!(ok(|o| o.image = "img-".into()).is_err());
        assert!(ok(|o| o.image = "1img".into()).is_err());
        assert!(ok(|o| o.image = "a".repeat(64)).is_err());
        assert!(ok(|o| o.image = "a".repeat(63)).is_ok());
        assert!(ok(|o| o.bucket = "ab".into()).is_err());
        assert!(ok(|o| o.bucket = "My-Bucket".into()).is_err());
        assert!(ok(|o| o.bucket = "a.b.example.com".into()).is_ok());
        assert!(ok(|o| o.bucket = "-ab".into()).is_err());
        assert!(ok(|o| o.object = Some("dir/x.tar.gz".into())).is_ok());
        assert!(ok(|o| o.object = Some("a\nb".into())).is_err());
        assert!(ok(|o| o.object = Some(String::new())).is_err());
        assert!(ok(|o| o.family = Some("Fam".into())).is_err());
        assert!(ok(|o| o.labels = vec![("Key".into(), "v".into())]).is_err());
        assert!(ok(|o| o.labels = vec![("key".into(), "V".into())]).is_err());
        assert!(ok(|o| o.labels = vec![("key".into(), String::new())]).is_ok());
        assert!(ok(|o| o.labels = vec![("k".into(), "x".repeat(64))]).is_err());
        assert!(ok(|o| o.guest_os_features = vec!["gvnic".into()]).is_err());
        assert!(ok(|o| o.storage_location = Some("us central".into())).is_err());
        assert!(ok(|o| o.storage_location = Some("europe-west1".into())).is_ok());
    }

    #[test]
    fn gcloud_commands_say_the_same() {
        let report = report(Firmware::Hybrid);
        let mut options = PushOptions::new("my-bucket", "img");
        options.description = Some("it's mine".into());
        options.storage_location = Some("eu".into());
        options.replace = true;
        let plan = PushPlan::new(&options, &report, "proj", "x").unwrap();
        let lines = plan.gcloud_commands("out dir/x.tar.gz");
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "gcloud compute images delete img --project=proj --quiet");
        assert_eq!(lines[1], "gcloud storage cp 'out dir/x.tar.gz' gs://my-bucket/img.tar.gz");
        assert!(
            lines[2]
                .starts_with("gcloud compute images create img --project=proj --source-uri=gs://my-bucket/img.tar.gz")
        );
        assert!(lines[2].contains("--description='it'\\''s mine'"), "{}", lines[2]);
        assert!(lines[2].contains("--guest-os-features=UEFI_COMPATIBLE"));
        assert!(lines[2].contains("--architecture=X86_64 "));
        assert!(lines[2].ends_with("--storage-location=eu"));
    }

    #[test]
    fn object_names_are_escaped_in_urls() {
        assert_eq!(source_url("b", "a dir/ü.tar.gz"), "https://storage.googleapis.com/b/a%20dir/%C3%BC.tar.gz");
        assert_eq!(encode_component("a/b c"), "a%2Fb%20c");
    }
}

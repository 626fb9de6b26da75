//! `unikernel-mkimage push gce`: upload a GCE tarball to Cloud Storage and create a Compute
//! Engine image from it, through `mkimage-gcp`. Steps go to standard error, one line each (with
//! upload progress on a terminal); the image's selfLink, or the JSON result, to standard output.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use mkimage_core::inspect;
use mkimage_core::size::format_size;
use mkimage_gcp::{
    Auth, CredentialSource, Endpoints, Event, Outcome, Publisher, PushError, PushOptions, PushPlan, RetryPolicy,
    Source, project_offline,
};
use serde_json::{Value, json};
use unikernel_mkimage::{EXIT_FAILURE, interrupted, print_error, printable as p};

/// Exit status of a usage error (an option GCE would refuse).
const EXIT_USAGE: u8 = 2;
/// The program name in messages.
const PROGRAM: &str = "unikernel-mkimage";

#[derive(clap::Args, Debug)]
pub(crate) struct PushArgs {
    #[command(subcommand)]
    target: PushTarget,
}

#[derive(clap::Subcommand, Debug)]
enum PushTarget {
    /// Upload a GCE tarball to Cloud Storage and create a Compute Engine image from it.
    #[command(after_help = GCE_EXAMPLES)]
    Gce(GceArgs),
}

const GCE_EXAMPLES: &str = "\
Examples:
  unikernel-mkimage push gce hello.tar.gz --bucket my-images --image hello-v1 --family hello
  unikernel-mkimage build hello.virtio -o - --format gce | unikernel-mkimage push gce - --bucket b --image hello-v2
  unikernel-mkimage push gce hello.tar.gz --bucket b --image hello-v1 --dry-run

Credentials: CLOUDSDK_AUTH_ACCESS_TOKEN, else Application Default Credentials (the
GOOGLE_APPLICATION_CREDENTIALS file, gcloud's application_default_credentials.json, the
metadata server). Project: --project, CLOUDSDK_CORE_PROJECT, GOOGLE_CLOUD_PROJECT, the
credentials. STORAGE_EMULATOR_HOST and CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE move the
endpoints.

Exit status: 0 done; 1 failed (nothing half-made is left); 2 an option GCE would refuse;
130/143 interrupted (the upload is cancelled).";

#[derive(clap::Args, Debug)]
struct GceArgs {
    /// A GCE tarball (.tar.gz); - reads one from standard input.
    source: PathBuf,
    /// The Cloud Storage bucket to upload to.
    #[arg(long, value_name = "BUCKET")]
    bucket: String,
    /// The name of the image to create.
    #[arg(long, value_name = "NAME")]
    image: String,
    /// The project [default: CLOUDSDK_CORE_PROJECT, GOOGLE_CLOUD_PROJECT, or the credentials'].
    #[arg(long, value_name = "PROJECT")]
    project: Option<String>,
    /// The object name in the bucket [default: IMAGE.tar.gz].
    #[arg(long, value_name = "OBJECT")]
    object: Option<String>,
    /// The image family.
    #[arg(long, value_name = "FAMILY")]
    family: Option<String>,
    /// The image description.
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    /// A label (repeatable); kernel-sha256 and unikernel-mkimage are added unless given.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// A guest OS feature to declare (repeatable, or comma-separated); UEFI_COMPATIBLE is
    /// added when the image carries the UEFI loader.
    #[arg(long = "guest-os-feature", value_name = "FEATURE", value_delimiter = ',')]
    guest_os_features: Vec<String>,
    /// Where the image is stored (a region or multi-region) [default: GCE's choice].
    #[arg(long, value_name = "REGION")]
    storage_location: Option<String>,
    /// Replace an object of that name with other content, and delete an image of that name
    /// first.
    #[arg(long)]
    replace: bool,
    /// Print what would be done, and do nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the result as JSON on standard output.
    #[arg(long)]
    json: bool,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    Ok((key.to_string(), value.to_string()))
}

pub(crate) fn push(args: PushArgs) -> ExitCode {
    let PushTarget::Gce(args) = args.target;
    match gce(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = exit_code(&err);
            let message = with_hint(&err);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&json!({ "error": message })).unwrap_or_default());
            }
            print_error(PROGRAM, &message);
            code
        }
    }
}

fn exit_code(err: &PushError) -> ExitCode {
    match err {
        PushError::InvalidOption { .. } => ExitCode::from(EXIT_USAGE),
        PushError::Interrupted { .. } => {
            let signal = interrupted().unwrap_or(2);
            ExitCode::from(u8::try_from(128 + signal).unwrap_or(EXIT_FAILURE))
        }
        _ => ExitCode::from(EXIT_FAILURE),
    }
}

/// The library's message, plus the option that would help.
fn with_hint(err: &PushError) -> String {
    let message = unikernel_mkimage::chain(err);
    let hint = match err {
        PushError::ObjectExists { .. } => "; give --replace to overwrite it, or another --object",
        PushError::ImageExists { .. } => "; give --replace to delete it first, or another --image",
        PushError::NoProject { .. } => "; give --project",
        PushError::NotReady { reason, .. } if reason.contains("raw disk image") => {
            " (build one with --format gce or an output ending in .tar.gz)"
        }
        PushError::Feature { .. } => " (build with --firmware hybrid or uefi)",
        _ => "",
    };
    format!("{message}{hint}")
}

fn options(args: &GceArgs) -> PushOptions {
    let mut options = PushOptions::new(&args.bucket, &args.image);
    options.object = args.object.clone();
    options.family = args.family.clone();
    options.description = args.description.clone();
    options.labels = args.labels.clone();
    options.guest_os_features = args.guest_os_features.iter().map(|f| f.trim().to_ascii_uppercase()).collect();
    options.storage_location = args.storage_location.clone();
    options.replace = args.replace;
    options
}

fn step(text: &str) {
    eprintln!("{PROGRAM}: {}", p(text));
}

fn gce(args: &GceArgs) -> Result<(), PushError> {
    let options = options(args);
    options.validate()?;
    let stdin = args.source.as_os_str() == "-";
    let source_name = if stdin { "standard input".to_string() } else { args.source.display().to_string() };
    if args.dry_run {
        return dry_run(args, &options, stdin, &source_name);
    }
    let endpoints = Endpoints::from_env(&|name| std::env::var(name).ok())?;
    let auth = Auth::discover()?;
    let publisher = Publisher::new(auth, endpoints, RetryPolicy::default())?;
    let (project, from) = publisher.project(args.project.as_deref())?;
    step(&format!("project {project} ({from}); credentials: {}", publisher.auth().source()));
    let source = if stdin {
        Source::Stream { reader: Box::new(std::io::stdin()), name: source_name.clone() }
    } else {
        Source::File(args.source.clone())
    };
    let mut progress = ProgressLine::new();
    let mut events = |event: Event| match event {
        Event::Step(text) => {
            progress.clear();
            step(&text);
        }
        Event::Warning(text) => {
            progress.clear();
            eprintln!("{PROGRAM}: warning: {}", p(&text));
        }
        Event::Uploaded { sent, total } => progress.show(sent, total),
        _ => {}
    };
    let outcome = publisher.push(source, &options, &project, &mut events, &|| interrupted().is_some());
    progress.clear();
    let outcome = outcome?;
    step(&format!("created image {}", outcome.plan.image_path()));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result_json(&outcome, &source_name)).unwrap_or_default());
    } else {
        println!("{}", outcome.self_link());
    }
    Ok(())
}

/// Inspects the source and prints the plan; sends nothing.
fn dry_run(args: &GceArgs, options: &PushOptions, stdin: bool, source_name: &str) -> Result<(), PushError> {
    let report = if stdin {
        inspect::inspect_stream(std::io::stdin().lock(), source_name)?
    } else {
        inspect::inspect_path(&args.source)?
    };
    // The project without asking the network: flag, environment, credentials file.
    let auth = match project_offline(args.project.as_deref(), None) {
        Some(_) => None,
        None => Some(Auth::discover()?),
    };
    let (project, _) = project_offline(args.project.as_deref(), auth.as_ref()).ok_or_else(|| PushError::NoProject {
        looked: match auth.as_ref().map(Auth::source) {
            Some(CredentialSource::MetadataServer { host }) => {
                format!("only the metadata server at {host} could say, and a dry run sends no request")
            }
            Some(source) => format!("the credentials ({source}) name none"),
            None => "no credentials name one".into(),
        },
    })?;
    let plan = PushPlan::new(options, &report, &project, source_name)?;
    let endpoints = Endpoints::from_env(&|name| std::env::var(name).ok())?;
    let gcloud = plan.gcloud_commands(if stdin { "-" } else { source_name });
    if args.json {
        let value = json!({
            "dry_run": true,
            "source": source_name,
            "project": plan.project,
            "object": { "url": plan.object_url(), "source_url": plan.image_resource["rawDisk"]["source"] },
            "image_resource": plan.image_resource,
            "replace": plan.replace,
            "endpoints": { "storage": endpoints.storage, "compute": endpoints.compute },
            "gcloud": gcloud,
            "warnings": plan.warnings,
        });
        println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
        return Ok(());
    }
    for warning in &plan.warnings {
        eprintln!("{PROGRAM}: warning: {}", p(warning));
    }
    let mut text = String::new();
    text.push_str("Dry run: nothing is uploaded or created.\n");
    text.push_str(&format!("Upload:   {} to {}\n", p(source_name), p(&plan.object_url())));
    text.push_str(&format!("Storage:  {}\n", endpoints.storage));
    text.push_str(&format!("Compute:  {}\n", endpoints.compute));
    if plan.replace {
        text.push_str(&format!(
            "Replace:  an image {} is deleted first; an object with other content is overwritten\n",
            p(&plan.image_path())
        ));
    }
    text.push_str(&format!("Image:    {} with this resource:\n", p(&plan.image_path())));
    let resource = serde_json::to_string_pretty(&plan.image_resource).unwrap_or_default();
    for line in resource.lines() {
        text.push_str(&format!("  {}\n", p(line)));
    }
    text.push_str("The same with gcloud:\n");
    for line in &gcloud {
        text.push_str(&format!("  {}\n", p(line)));
    }
    print!("{text}");
    Ok(())
}

fn result_json(outcome: &Outcome, source_name: &str) -> Value {
    let o = &outcome.object;
    json!({
        "dry_run": false,
        "source": source_name,
        "project": outcome.plan.project,
        "object": {
            "url": outcome.plan.object_url(),
            "uploaded": outcome.uploaded,
            "generation": o.generation,
            "size": o.size,
            "crc32c": o.crc32c_base64(),
            "md5": o.md5_base64(),
        },
        "image": {
            "name": outcome.plan.image,
            "self_link": outcome.self_link(),
            "replaced": outcome.replaced_image,
            "guest_os_features": outcome.plan.guest_os_features,
            "resource": outcome.image,
        },
        "warnings": outcome.plan.warnings,
    })
}

/// Upload progress on one terminal line, redrawn; nothing when standard error is not a terminal.
struct ProgressLine {
    terminal: bool,
    shown: bool,
    started: Instant,
}

impl ProgressLine {
    fn new() -> ProgressLine {
        ProgressLine { terminal: std::io::stderr().is_terminal(), shown: false, started: Instant::now() }
    }

    fn show(&mut self, sent: u64, total: Option<u64>) {
        if !self.terminal {
            return;
        }
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = format_size((sent as f64 / seconds) as u64);
        let of = total.map_or(String::new(), |t| format!(" of {}", format_size(t)));
        eprint!("\r\x1b[K{PROGRAM}: uploaded {}{of} ({rate}/s)", format_size(sent));
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_key_equals_value() {
        assert_eq!(parse_label("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_label("a="), Ok(("a".into(), String::new())));
        assert!(parse_label("ab").is_err());
    }
}

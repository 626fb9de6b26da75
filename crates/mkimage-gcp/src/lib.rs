//! Publishing GCE tarballs made by `unikernel-mkimage` (or anyone's that `mkimage-core`'s
//! inspection finds ready for GCE): a resumable, verified upload to Cloud Storage and a Compute
//! Engine image with the right guest OS features, without Google's Cloud SDK.
//!
//! The flow is plan, then act: [`PushPlan::new`] decides everything that will be sent from the
//! options and the tarball's inspection report, without I/O; [`Publisher::push`] carries it out.
//! Network code lives here only; `mkimage-core` has none.
//!
//! ```
//! use mkimage_gcp::{PushOptions, PushPlan};
//! use mkimage_core::{ImageBuilder, Kernel};
//!
//! let kernel = Kernel::from_bytes("hello.bin", mkimage_core::testkit::multiboot_kernel(b"hi"));
//! let mut tarball = Vec::new();
//! ImageBuilder::new(kernel).build()?.write_gce(&mut tarball)?;
//! let report = mkimage_core::inspect::inspect_tarball(&tarball[..], "hello.tar.gz")?;
//!
//! let mut options = PushOptions::new("my-bucket", "hello-v1");
//! options.family = Some("hello".into());
//! let plan = PushPlan::new(&options, &report, "my-project", "hello.tar.gz")?;
//! assert_eq!(plan.object_url(), "gs://my-bucket/hello-v1.tar.gz");
//! // A hybrid image carries the UEFI loader, so GCE may boot it under UEFI (Shielded VM).
//! assert_eq!(plan.guest_os_features, ["UEFI_COMPATIBLE"]);
//! assert_eq!(plan.image_resource["architecture"], "X86_64");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod auth;
mod compute;
pub mod endpoints;
pub mod error;
mod http;
pub mod plan;
mod push;
pub mod storage;

pub use auth::{Auth, CredentialSource};
pub use endpoints::Endpoints;
pub use error::PushError;
pub use http::RetryPolicy;
pub use plan::{PushOptions, PushPlan};
pub use push::{Event, Outcome, PROJECT_VARS, ProjectSource, Publisher, Source, project_offline};

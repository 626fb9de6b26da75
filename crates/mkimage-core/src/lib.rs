//! # mkimage-core
//!
//! Turns a Multiboot unikernel (such as a Solo5 `virtio` or MirageOS build) into a bootable disk
//! image, written raw or as the `disk.raw`-in-a-`.tar.gz` tarball Google Compute Engine imports.
//!
//! Building happens in two steps:
//!
//! 1. **Plan** ([`ImageBuilder::plan`]): pure computation from the kernel bytes and the options
//!    to a [`Plan`]: partition layout, filesystem geometry, where every file's sectors lie, the
//!    command line and the identifiers. No I/O.
//! 2. **Write** ([`ImageBuilder::build`] then [`Image::write_raw_file`], [`Image::write_raw`] or
//!    [`Image::write_gce`]): the assembled image places bytes into any `Write + Seek` (raw) or
//!    any `Write` (tarball, so it can stream straight into an upload).
//!
//! Output is reproducible: the same kernel bytes and options give the same image bytes, on any
//! machine, at any time. Nothing reads a clock or a random source; the one timestamp comes from
//! [`Timestamp`] (usually `SOURCE_DATE_EPOCH`), and identifiers are derived from the inputs
//! (see [`ident`]).
//!
//! ```
//! use mkimage_core::{ImageBuilder, Kernel};
//! # let bytes = mkimage_core::testkit::multiboot_kernel(&[0x90; 1000]);
//! let image = ImageBuilder::new(Kernel::from_bytes("unikernel.bin", bytes))
//!     .args(["--ipv4=10.0.0.2/24"])
//!     .build()?;
//! let mut tarball = Vec::new();
//! image.write_gce(&mut tarball)?;
//! assert_eq!(&tarball[..2], &[0x1f, 0x8b]); // gzip
//! # Ok::<(), mkimage_core::Error>(())
//! ```
#![deny(missing_docs)]
#![warn(clippy::missing_errors_doc, clippy::missing_panics_doc)]

/// The library example in README.md (the same as the repository README's), compiled as a
/// doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub mod boot;
mod builder;
pub mod bytes;
mod error;
pub mod fat;
pub mod ident;
mod image;
pub mod inspect;
mod kernel;
pub mod layout;
pub mod multiboot;
pub mod output;
pub mod partition;
mod plan;
pub mod size;
mod sparse;
#[doc(hidden)]
pub mod testkit;
mod time;

pub use boot::Firmware;
pub use builder::ImageBuilder;
pub use error::Error;
pub use ident::Identifiers;
pub use image::{DataExtent, Image};
pub use kernel::{Kernel, MAX_KERNEL_SIZE};
pub use layout::{Layout, PartitionTable, TableLayout};
pub use partition::{BIOS_BOOT_PARTITION_NAME, ESP_PARTITION_NAME};
pub use plan::{INFO_FILE_NAME, MAX_CMDLINE_LEN, Plan, TOOL_VERSION};
pub use time::{DEFAULT_EPOCH, FAT_MAX_EPOCH, FatDateTime, Timestamp};

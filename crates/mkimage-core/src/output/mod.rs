//! Outputs: the forms an assembled [`crate::Image`] is written in.
//!
//! - [`raw`]: the disk itself, to any `Write + Seek` or sparsely into a file.
//! - [`gce`]: the tarball Google Compute Engine imports, to any `Write`, compressed by the
//!   deterministic parallel gzip in `pgzip`.
//! - [`tar`]: the tar header layout shared by the tarball writer and the inspector.

pub mod gce;
mod pgzip;
pub mod raw;
pub mod tar;

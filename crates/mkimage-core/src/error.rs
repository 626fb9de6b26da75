//! The library's error type: one variant per failure a caller may want to tell apart, each with
//! a message that names the input and the problem.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while planning or writing an image.
///
/// Display messages do not repeat the underlying cause; walk [`std::error::Error::source`] for it
/// (the command-line tool prints the whole chain on one line).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The kernel file could not be opened or read.
    #[error("cannot read kernel {}", path.display())]
    KernelRead {
        /// The kernel path.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: io::Error,
    },
    /// The kernel path names something other than a regular file (a directory, FIFO, device...).
    #[error("kernel {} is not a regular file (it is a {kind})", path.display())]
    KernelNotAFile {
        /// The kernel path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// The kernel file changed (size or modification time) while it was being read.
    #[error("kernel {} changed while it was being read; build again once it is complete", path.display())]
    KernelChanged {
        /// The kernel path.
        path: PathBuf,
    },
    /// The kernel is empty.
    #[error("kernel {name} is empty")]
    KernelEmpty {
        /// The kernel's name.
        name: String,
    },
    /// The kernel is larger than this tool can load.
    #[error("kernel {name} is {size} bytes; the largest supported kernel is {max} bytes")]
    KernelTooLarge {
        /// The kernel's name.
        name: String,
        /// Its size in bytes.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The kernel file's name is not valid UTF-8, so it cannot be its name on the disk; give the
    /// kernel a name ([`crate::ImageBuilder::name`]).
    #[error("kernel {kernel}: the file name is not valid UTF-8, so it cannot be stored as the kernel's name")]
    KernelNameNotUtf8 {
        /// The kernel (its path, made printable).
        kernel: String,
    },
    /// The kernel name cannot be stored on the FAT filesystem or used on the command line.
    #[error("kernel {kernel}: the name {name:?} cannot be used: {reason}")]
    InvalidName {
        /// The kernel (its path when read from a file).
        kernel: String,
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The kernel is not a Multiboot kernel this loader can boot.
    #[error("kernel {name}")]
    InvalidKernel {
        /// The kernel's name (its path when read from a file).
        name: String,
        /// What is wrong with it.
        #[source]
        source: crate::multiboot::KernelError,
    },
    /// The kernel requires a video mode (Multiboot header flag 2) that the image's boot stages
    /// cannot set.
    #[error("kernel {kernel} requires {request} (Multiboot header flag 2), but {reason}")]
    UnsupportedVideoMode {
        /// The kernel (its path when read from a file).
        kernel: String,
        /// The mode it requires, in words.
        request: String,
        /// Why it cannot be set.
        reason: &'static str,
        /// Whether a UEFI-only image ([`crate::Firmware::Uefi`]) could set it.
        uefi_only_would_work: bool,
    },
    /// The boot record would not fit in its reserved sectors.
    #[error("the boot record needs {len} bytes; at most {max} fit")]
    BootRecordTooLarge {
        /// Bytes needed.
        len: usize,
        /// Bytes available.
        max: usize,
    },
    /// The kernel's command line is longer than the boot record can carry.
    #[error("kernel {kernel}: the command line is {len} bytes; at most {max} bytes fit in the boot record")]
    CommandLineTooLong {
        /// The kernel (its path when read from a file).
        kernel: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An argument for the kernel cannot be passed.
    #[error("kernel {kernel}: invalid argument: {reason}")]
    InvalidArgument {
        /// The kernel (its path when read from a file).
        kernel: String,
        /// Why.
        reason: &'static str,
    },
    /// A size given by the user could not be parsed.
    #[error("invalid size {text:?}: {reason}")]
    InvalidSize {
        /// What the user wrote.
        text: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A `SOURCE_DATE_EPOCH` value could not be parsed.
    #[error("invalid timestamp {value:?}: {reason}")]
    InvalidTimestamp {
        /// The value given.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The disk size is not a whole number of 512-byte sectors.
    #[error("disk size {size} bytes is not a multiple of 512 bytes")]
    DiskSizeNotSectorMultiple {
        /// The requested size.
        size: u64,
    },
    /// The disk size exceeds what MBR and FAT32 can address.
    #[error("disk size {} is larger than the supported maximum of {}", crate::size::format_size(*size), crate::size::format_size(*max))]
    DiskTooLarge {
        /// The requested size.
        size: u64,
        /// The largest supported size.
        max: u64,
    },
    /// The disk cannot hold the partition table, boot stage, filesystem and files.
    #[error("disk size {} is too small for kernel {kernel}: it needs at least {}", crate::size::format_size(*size), crate::size::format_size(*needed))]
    DiskTooSmall {
        /// The kernel (its path when read from a file).
        kernel: String,
        /// The requested size.
        size: u64,
        /// The smallest size that works (whole MiB).
        needed: u64,
    },
    /// GCE imports only disks whose size is a whole number of GiB.
    #[error("a GCE image needs a disk size that is a whole number of GiB; {} is not", crate::size::format_size(*size))]
    GceSizeNotWholeGib {
        /// The requested size.
        size: u64,
    },
    /// A read of an image's bytes reaches past the end of its disk.
    #[error("cannot read {len} bytes at offset {offset}: the disk is {size} bytes")]
    ReadOutsideDisk {
        /// Where the read starts.
        offset: u64,
        /// Bytes asked for.
        len: u64,
        /// The disk size.
        size: u64,
    },
    /// Writing the image to its destination failed.
    #[error("cannot write the image")]
    Write {
        /// What the destination reported.
        #[source]
        source: io::Error,
    },
    /// A consistency check between the plan and what was assembled failed. This is a bug in this
    /// tool; the message says which check.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

impl Error {
    /// Wraps an I/O error of the destination.
    pub(crate) fn write(source: io::Error) -> Self {
        Error::Write { source }
    }
}

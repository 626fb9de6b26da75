//! Inspecting a disk image: what is inside a raw image or a GCE tarball (partition table,
//! filesystem, kernel, command line, boot stage) and a list of checks of what this tool
//! promises (boot record consistent with the kernel on the filesystem, boot code present) and
//! of what GCE requires of a tarball.
//!
//! Works on images made by anything: a SYSLINUX image is described as such, garbage is refused
//! with an error. All reading goes through [`source::DiskSource`], and every parser here is
//! bounded (see [`source`], [`tables`], [`fat`], [`tarball`]): hostile input can neither make it
//! read outside the file, loop, nor allocate in proportion to a size it claims.
//!
//! [`analyse`](self) runs the steps in order, each in its own module: GCE's rules and the
//! table ([`checks`]), the filesystem (here), the boot loader and its record (`loader`), the
//! kernel (`kernel`).

pub mod checks;
pub mod fat;
mod kernel;
mod loader;
pub mod source;
pub mod tables;
pub mod tarball;

use std::io::{Read, Seek};
use std::path::Path;

pub use checks::{Check, CheckName};
use source::{DiskSource, RawSource, read_vec};

use crate::boot::Firmware;
use crate::boot::record::BootRecord;
use crate::bytes::SECTOR_SIZE;
use crate::multiboot::{self, LoadPlan};

/// gzip's magic bytes, which tell a tarball from a raw image.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Why an input is not a disk image at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A gzip stream that is not a readable tar archive.
    #[error("{path} is not a readable image tarball")]
    BadTarball {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A tarball without any file member.
    #[error("{path} holds no disk image file")]
    NoDiskInTarball {
        /// The path.
        path: String,
    },
    /// The path names something that is not an image file: a directory, a FIFO (opening it
    /// would wait for a writer), a socket or a character device.
    #[error("{path} is not an image file (it is a {kind}); to inspect a stream, give - and pipe it in")]
    NotAFile {
        /// The path.
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// No MBR boot signature: neither a partitioned disk nor a tarball.
    #[error("{path} is not a disk image: no partition table (no 55AA boot signature in its first sector)")]
    NotADiskImage {
        /// The path.
        path: String,
    },
}

/// How the image was packaged.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Container {
    /// A raw disk image.
    Raw,
    /// A gzip-compressed tar.
    Tarball(tarball::Archive),
}

impl Container {
    /// The stable name of the packaging: `"raw"` or `"gce-tarball"`.
    pub fn name(&self) -> &'static str {
        match self {
            Container::Raw => "raw",
            Container::Tarball(_) => "gce-tarball",
        }
    }

    /// The archive, for a tarball.
    pub fn tarball(&self) -> Option<&tarball::Archive> {
        match self {
            Container::Raw => None,
            Container::Tarball(archive) => Some(archive),
        }
    }
}

/// The filesystem holding the files.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Filesystem {
    /// Number of the partition it is in.
    pub partition: u32,
    /// FAT12, FAT16 or FAT32.
    pub fat_type: &'static str,
    /// Bytes per cluster.
    pub cluster_size: u64,
    /// Volume serial number.
    pub volume_id: u32,
    /// OEM name in the boot sector (SYSLINUX writes its own).
    pub oem: String,
    /// Root directory entries.
    pub files: Vec<fat::Entry>,
}

/// Which boot loader the image carries.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BootLoader {
    /// This tool's boot stages; the record when it decodes.
    UnikernelMkimage {
        /// Stage 2's version, when the image carries the BIOS stage.
        stage_version: Option<u16>,
        /// The UEFI loader's version, when the image carries it.
        uefi_loader_version: Option<u16>,
        /// The boot record (the BIOS stage's, else the UEFI loader's), or why it does not
        /// decode.
        record: Result<BootRecord, String>,
    },
    /// SYSLINUX (its files or boot sector were found).
    Syslinux,
    /// Boot code of another origin.
    Unknown,
    /// All-zero boot code.
    None,
}

impl BootLoader {
    /// The stable name of the kind: `"unikernel-mkimage"`, `"syslinux"`, `"unknown"`, `"none"`.
    pub fn kind(&self) -> &'static str {
        match self {
            BootLoader::UnikernelMkimage { .. } => "unikernel-mkimage",
            BootLoader::Syslinux => "syslinux",
            BootLoader::Unknown => "unknown",
            BootLoader::None => "none",
        }
    }

    /// The version of this tool's BIOS boot stage, when the image carries it.
    pub fn stage_version(&self) -> Option<u16> {
        match self {
            BootLoader::UnikernelMkimage { stage_version, .. } => *stage_version,
            _ => None,
        }
    }

    /// The version of this tool's UEFI loader, when the image carries it.
    pub fn uefi_loader_version(&self) -> Option<u16> {
        match self {
            BootLoader::UnikernelMkimage { uefi_loader_version, .. } => *uefi_loader_version,
            _ => None,
        }
    }

    /// This tool's boot record, or why it does not decode, when the boot stage is this tool's.
    pub fn record(&self) -> Option<&Result<BootRecord, String>> {
        match self {
            BootLoader::UnikernelMkimage { record, .. } => Some(record),
            _ => None,
        }
    }
}

/// The kernel as found on the filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KernelInfo {
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// Whether its clusters are consecutive.
    pub contiguous: bool,
    /// The Multiboot header, if found.
    pub header: Option<multiboot::Header>,
    /// The load plan, or why there is none.
    pub load: Result<LoadPlan, String>,
}

/// What an image holds and which checks hold.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Packaging.
    pub container: Container,
    /// Disk size in bytes.
    pub disk_size: u64,
    /// The partition table.
    pub table: tables::Table,
    /// The filesystem found, if any.
    pub filesystem: Option<Filesystem>,
    /// The boot loader.
    pub boot_loader: BootLoader,
    /// The firmware the disk boots from: [`Firmware::Bios`] when LBA 0 holds BIOS boot code,
    /// [`Firmware::Uefi`] when the filesystem holds `\EFI\BOOT\BOOTX64.EFI`, in that order
    /// (never [`Firmware::Hybrid`]; both mean hybrid).
    pub firmware: Vec<Firmware>,
    /// The kernel, if one was identified.
    pub kernel: Option<KernelInfo>,
    /// The kernel's command line, if known.
    pub cmdline: Option<String>,
    /// Checks, in a fixed order.
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether every check holds.
    pub fn all_ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// Whether the check `name` was made and holds.
    pub fn check_ok(&self, name: CheckName) -> bool {
        self.checks.iter().any(|c| c.name == name && c.ok)
    }

    /// Whether GCE would import this file and find something to boot: it is a tarball that
    /// follows GCE's rules, with a valid partition table, a bootable partition, and BIOS boot
    /// code or a UEFI loader.
    pub fn gce_ready(&self) -> bool {
        matches!(self.container, Container::Tarball(_))
            && CheckName::GCE_RULES.iter().all(|&n| self.check_ok(n))
            && self.check_ok(CheckName::PartitionTable)
            && self.check_ok(CheckName::BootablePartition)
            && !self.firmware.is_empty()
    }
}

/// Inspects the image at `path`: a GCE tarball if it starts with the gzip magic, else a raw
/// image (a regular file or a block device). Anything else is refused before it is opened.
///
/// # Errors
/// [`InspectError`] when the file cannot be read, is not an image file (a FIFO, a socket...),
/// or is not a disk image or image tarball at all. A disk that fails checks is a report, not an
/// error.
pub fn inspect_path(path: &Path) -> Result<Report, InspectError> {
    let name = path.display().to_string();
    let io = |source| InspectError::Io { path: name.clone(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if let Some(kind) = not_an_image_kind(&meta.file_type()) {
        return Err(InspectError::NotAFile { path: name, kind });
    }
    let file = std::fs::File::open(path).map_err(io)?;
    inspect_file(file, &name)
}

/// What a file type is when it cannot be an image file, or `None` when it can.
fn not_an_image_kind(ft: &std::fs::FileType) -> Option<&'static str> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_block_device() {
            return None;
        }
        if ft.is_fifo() {
            return Some("FIFO");
        }
        if ft.is_socket() {
            return Some("socket");
        }
        if ft.is_char_device() {
            return Some("character device");
        }
    }
    if ft.is_dir() {
        return Some("directory");
    }
    (!ft.is_file()).then_some("special file")
}

/// Inspects an open image file (or block device); `name` is used in errors.
fn inspect_file(mut file: std::fs::File, name: &str) -> Result<Report, InspectError> {
    let io = |source| InspectError::Io { path: name.into(), source };
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic).map_err(io)?;
    file.rewind().map_err(io)?;
    if n == 2 && magic == GZIP_MAGIC {
        let len = file.seek(std::io::SeekFrom::End(0)).map_err(io)?;
        file.rewind().map_err(io)?;
        unpack_and_analyse(file, Some(len), name)
    } else {
        inspect_raw(file, name)
    }
}

/// Inspects a stream (standard input, a pipe): it is first copied into a sparse temporary
/// file (zero blocks become holes), so memory stays bounded and a tarball's size is known.
///
/// # Errors
/// As [`inspect_path`], and when the temporary file cannot be written.
pub fn inspect_stream(mut reader: impl Read, name: &str) -> Result<Report, InspectError> {
    let io = |source| InspectError::Io { path: name.into(), source };
    let mut file = tempfile::tempfile().map_err(io)?;
    source::copy_sparse(&mut reader, &mut file).map_err(io)?;
    file.rewind().map_err(io)?;
    inspect_file(file, name)
}

/// Inspects a raw image; `name` is used in errors.
///
/// # Errors
/// [`InspectError`] when the reader fails or holds no partition table.
pub fn inspect_raw<R: Read + Seek>(reader: R, name: &str) -> Result<Report, InspectError> {
    let mut source = RawSource::new(reader).map_err(|source| InspectError::Io { path: name.into(), source })?;
    analyse(&mut source, Container::Raw, name)
}

/// Inspects a GCE tarball read as a stream; `name` is used in errors. Its disk is unpacked
/// into a sparse temporary file.
///
/// # Errors
/// [`InspectError`] when the stream is not a readable tarball, holds no disk, or the disk has no
/// partition table.
pub fn inspect_tarball<R: Read>(reader: R, name: &str) -> Result<Report, InspectError> {
    unpack_and_analyse(reader, None, name)
}

fn unpack_and_analyse(reader: impl Read, compressed_len: Option<u64>, name: &str) -> Result<Report, InspectError> {
    let mut disk = tempfile::tempfile().map_err(|source| InspectError::Io { path: name.into(), source })?;
    let (archive, found) = tarball::unpack(reader, compressed_len, &mut disk)
        .map_err(|source| InspectError::BadTarball { path: name.into(), source })?;
    if found.is_none() {
        return Err(InspectError::NoDiskInTarball { path: name.into() });
    }
    let mut source = RawSource::new(disk).map_err(|source| InspectError::Io { path: name.into(), source })?;
    analyse(&mut source, Container::Tarball(archive), name)
}

/// Runs every step on the disk and collects the report.
fn analyse(source: &mut dyn DiskSource, container: Container, name: &str) -> Result<Report, InspectError> {
    let disk_size = source.size();
    let table = tables::read_table(source).ok_or_else(|| InspectError::NotADiskImage { path: name.into() })?;
    let mut checks = Vec::new();
    if let Container::Tarball(archive) = &container {
        checks.extend(checks::gce_rules(archive, disk_size));
    }
    checks.extend(checks::table_checks(&table));
    let (volume, filesystem, fs_check) = find_filesystem(source, &table);
    checks.push(fs_check);
    let (boot_loader, stages, stage_checks) = loader::recognise(source, volume.as_ref(), filesystem.as_ref());
    checks.extend(stage_checks);
    let identified = kernel::identify(source, &boot_loader, volume.as_ref(), filesystem.as_ref());
    checks.extend(identified.checks);
    let found = identified.found.as_ref();
    let boot_partition = filesystem.as_ref().and_then(|f| u8::try_from(f.partition.checked_sub(1)?).ok());
    checks.push(loader::record_check(source, &boot_loader, &stages, found, boot_partition));
    let cmdline = identified.cmdline.as_deref();
    checks.push(kernel::build_info_check(source, volume.as_ref(), filesystem.as_ref(), found, cmdline));
    let kernel = identified.found.map(|f| f.info);
    let firmware = stages.boots_from();
    Ok(Report {
        container,
        disk_size,
        table,
        filesystem,
        boot_loader,
        firmware,
        kernel,
        cmdline: identified.cmdline,
        checks,
    })
}

/// The filesystem: the first partition holding a FAT volume, and the `filesystem` check (the
/// hidden-sectors field matches the partition, a FAT32 backup boot sector matches the primary).
fn find_filesystem(
    source: &mut dyn DiskSource,
    table: &tables::Table,
) -> (Option<fat::Volume>, Option<Filesystem>, Check) {
    for p in &table.partitions {
        if p.kind_name == tables::KIND_BIOS_BOOT || p.kind_name == tables::KIND_PROTECTIVE {
            continue;
        }
        let Some(base) = p.start.checked_mul(SECTOR_SIZE) else { continue };
        let Ok(v) = fat::Volume::open(source, base) else { continue };
        let filesystem = Filesystem {
            partition: p.number,
            fat_type: v.variant.name(),
            cluster_size: v.cluster_size(),
            volume_id: v.volume_id,
            oem: v.oem.clone(),
            files: v.root(source).unwrap_or_default(),
        };
        let hidden_ok = u64::from(v.hidden_sectors) == p.start;
        let backup_at = base + u64::from(crate::fat::FAT32_BACKUP_BOOT_SECTOR) * SECTOR_SIZE;
        let bpb_len = crate::fat::bpb::FAT32_BPB_LEN;
        let backup_ok = v.variant != fat::Variant::Fat32
            || read_vec(source, base, bpb_len).ok() == read_vec(source, backup_at, bpb_len).ok();
        let detail = format!(
            "{} in partition {}{}{}",
            v.variant.name(),
            p.number,
            if hidden_ok { "" } else { ", hidden-sectors field differs from the partition start" },
            if backup_ok { "" } else { ", backup boot sector differs" }
        );
        return (Some(v), Some(filesystem), Check::new(CheckName::Filesystem, hidden_ok && backup_ok, detail));
    }
    (None, None, Check::new(CheckName::Filesystem, false, "no FAT filesystem found"))
}

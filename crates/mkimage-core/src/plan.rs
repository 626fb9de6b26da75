//! The plan: everything decided about an image before any byte is placed, computed from the
//! kernel and the options without I/O. It holds the disk layout, the kernel's load plan, the
//! boot record every boot stage follows, the identifiers and the build-information text.

use crate::Error;
use crate::boot::record::{self, BootRecord, FileExtent};
use crate::boot::{Firmware, bios, uefi};
use crate::fat::plan::check_name;
use crate::ident::{Identifiers, Identity, sha256};
use crate::kernel::{Kernel, MAX_KERNEL_SIZE};
use crate::layout::{Layout, LayoutRequest, PartitionTable};
use crate::multiboot::{LoadPlan, VIDEO_MODE_GRAPHICS, VIDEO_MODE_TEXT, VideoMode};
use crate::time::Timestamp;

/// Longest command line, in bytes, excluding the terminating NUL.
pub const MAX_CMDLINE_LEN: usize = 4095;
/// Name of the human-readable file that records how the image was built.
pub const INFO_FILE_NAME: &str = "build-info.txt";
/// This tool's version, recorded in the image.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The options of a build, as [`crate::ImageBuilder`] collects them.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    /// Name of the kernel on the disk (default: the kernel's own).
    pub(crate) name: Option<String>,
    /// Arguments after the name on the command line.
    pub(crate) args: Vec<String>,
    /// Partitioning scheme.
    pub(crate) table: PartitionTable,
    /// The boot stages to carry.
    pub(crate) firmware: Firmware,
    /// Disk size in bytes.
    pub(crate) disk_size: u64,
    /// Timestamp recorded in the filesystem and the tarball.
    pub(crate) timestamp: Timestamp,
    /// Seed of the identifiers, instead of the content.
    pub(crate) seed: Option<Vec<u8>>,
    /// Whether the boot stage keeps quiet on success.
    pub(crate) quiet_boot: bool,
}

/// Everything decided about an image before any byte is placed: the disk layout, the command
/// line, the identifiers and the build-information text. Computing it does no I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Plan {
    /// Disk layout: partitions, filesystem geometry, where every file lies.
    pub layout: Layout,
    /// The command line the kernel receives: its name, then the arguments, space-separated.
    pub cmdline: String,
    /// SHA-256 of the kernel bytes.
    pub kernel_sha256: [u8; 32],
    /// The disk's identifiers (disk signature, GUIDs, volume id).
    pub ids: Identifiers,
    /// Timestamp recorded in the filesystem and the tarball.
    pub timestamp: Timestamp,
    /// Contents of the build-information file.
    pub info_text: String,
    /// Where the kernel's bytes go in memory and where it starts.
    pub load: LoadPlan,
    /// What the boot stages are told to do (the BIOS stage and the UEFI loader carry the same
    /// record).
    pub boot_record: BootRecord,
}

impl Plan {
    /// Plans the image of `kernel` with `options`.
    pub(crate) fn new(kernel: &Kernel, options: &Options) -> Result<Plan, Error> {
        let origin = || kernel.origin.clone();
        let name =
            options.name.as_deref().or(kernel.name()).ok_or_else(|| Error::KernelNameNotUtf8 { kernel: origin() })?;
        check_name(name).map_err(|reason| Error::InvalidName { kernel: origin(), name: name.to_owned(), reason })?;
        if crate::fat::plan::same_name(name, INFO_FILE_NAME) {
            return Err(Error::InvalidName {
                kernel: origin(),
                name: name.to_owned(),
                reason: "this name is taken by the build-information file",
            });
        }
        if options.firmware.uefi() && uefi::LOADER_DIRS.iter().any(|d| crate::fat::plan::same_name(name, d)) {
            return Err(Error::InvalidName {
                kernel: origin(),
                name: name.to_owned(),
                reason: "this name is taken by the UEFI loader's directory",
            });
        }
        let bytes = kernel.bytes();
        if bytes.is_empty() {
            return Err(Error::KernelEmpty { name: kernel.origin.clone() });
        }
        if bytes.len() as u64 > MAX_KERNEL_SIZE {
            return Err(Error::KernelTooLarge {
                name: kernel.origin.clone(),
                size: bytes.len() as u64,
                max: MAX_KERNEL_SIZE,
            });
        }
        let load =
            LoadPlan::new(bytes).map_err(|source| Error::InvalidKernel { name: kernel.origin.clone(), source })?;
        if let Some(video) = load.header.video {
            check_video(video, options.firmware).map_err(|reason| Error::UnsupportedVideoMode {
                kernel: origin(),
                request: describe_video(video),
                reason,
                uefi_only_would_work: check_video(video, Firmware::Uefi).is_ok(),
            })?;
        }
        let cmdline =
            std::iter::once(name).chain(options.args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ");
        if cmdline.contains('\0') {
            return Err(Error::InvalidArgument {
                kernel: origin(),
                reason: "an argument contains a NUL byte, which cannot be passed on a command line",
            });
        }
        if cmdline.len() > MAX_CMDLINE_LEN {
            return Err(Error::CommandLineTooLong {
                kernel: kernel.origin.clone(),
                len: cmdline.len(),
                max: MAX_CMDLINE_LEN,
            });
        }
        let kernel_sha256 = sha256(bytes);
        let identity = match &options.seed {
            Some(seed) => Identity::from_seed(seed),
            None => Identity::from_content(
                &kernel_sha256,
                &cmdline,
                options.table.name(),
                options.firmware.name(),
                options.disk_size,
            ),
        };
        let info = BuildInfo { name, size: bytes.len() as u64, sha: &kernel_sha256, cmdline: &cmdline, load: &load };
        let info_text = build_info(&info, options.table, options.firmware);
        let layout = Layout::plan(&LayoutRequest {
            table: options.table,
            firmware: options.firmware,
            disk_size: options.disk_size,
            kernel_name: name,
            kernel_size: bytes.len() as u64,
            info_name: INFO_FILE_NAME,
            info_size: info_text.len() as u64,
        })
        .map_err(|e| match e {
            // Name the kernel as the user knows it (its path), not by its name on the disk.
            Error::DiskTooSmall { size, needed, .. } => Error::DiskTooSmall { kernel: origin(), size, needed },
            other => other,
        })?;
        let boot_record = boot_record_for(&layout, &load, bytes, name, &cmdline, options.quiet_boot)?;
        let ids = identity.identifiers();
        Ok(Plan { layout, cmdline, kernel_sha256, ids, timestamp: options.timestamp, info_text, load, boot_record })
    }
}

/// Whether the image's boot stages can set the video mode a kernel requires, or why not.
fn check_video(video: VideoMode, firmware: Firmware) -> Result<(), &'static str> {
    match video.mode_type {
        VIDEO_MODE_GRAPHICS if firmware.bios() => Err(
            "only the UEFI loader can set a graphics mode, and this image also carries the BIOS stage, which cannot",
        ),
        VIDEO_MODE_GRAPHICS => Ok(()),
        VIDEO_MODE_TEXT if firmware.uefi() => Err("UEFI firmware has no text mode to give it"),
        VIDEO_MODE_TEXT => Err("the BIOS stage sets no video mode"),
        _ => Err("that mode type is undefined"),
    }
}

/// The video mode a kernel requires, in words.
fn describe_video(video: VideoMode) -> String {
    let preference = |n: u32| if n == 0 { "any".to_string() } else { n.to_string() };
    match video.mode_type {
        VIDEO_MODE_GRAPHICS => format!(
            "a graphics mode ({} x {} pixels, {} bits per pixel)",
            preference(video.width),
            preference(video.height),
            preference(video.depth)
        ),
        VIDEO_MODE_TEXT => {
            format!("EGA text mode ({} x {} characters)", preference(video.width), preference(video.height))
        }
        other => format!("video mode type {other}"),
    }
}

/// The boot record for a planned layout: the kernel file is one contiguous extent.
fn boot_record_for(
    layout: &Layout,
    load: &LoadPlan,
    kernel: &[u8],
    name: &str,
    cmdline: &str,
    quiet: bool,
) -> Result<BootRecord, Error> {
    let kernel_lba = layout.kernel.sectors.start;
    let extent = FileExtent { file_offset: 0, lba: kernel_lba, len: kernel.len() as u64 };
    let (runs, _) = record::plan_runs(load, &[extent]);
    let checksum = record::load_checksum(runs.iter().map(|(run, offset)| {
        let start = *offset as usize;
        &kernel[start..start + run.len as usize]
    }));
    let file = KernelOnDisk { name, size: kernel.len() as u32, lba: kernel_lba, checksum };
    let record = record_for(load, &file, cmdline, quiet, layout.fat_partition_index(), layout.firmware);
    // The boot stages refuse what this check refuses; never write such a record.
    record
        .check_plan(layout.firmware.allowed_record_flags())
        .map_err(|e| Error::Internal(format!("planned record: {e}")))?;
    Ok(record)
}

/// The kernel file as a boot record describes it.
pub(crate) struct KernelOnDisk<'a> {
    /// Its name on the filesystem.
    pub(crate) name: &'a str,
    /// Its size.
    pub(crate) size: u32,
    /// Its first LBA (the file is contiguous).
    pub(crate) lba: u64,
    /// The [`record::load_checksum`] of the bytes its runs load.
    pub(crate) checksum: (u32, u32),
}

/// The boot record this version writes for a kernel with load plan `load`, stored contiguously
/// as `file`, booted with `cmdline` from partition index `boot_partition` by the stages of
/// `firmware`. The builder and the inspector (which checks images against it) both build
/// records here. The record holds stage 2's CRC-32 when the image carries stage 2 (0
/// otherwise), and the kernel's graphics request when only the UEFI loader boots it.
pub(crate) fn record_for(
    load: &LoadPlan,
    file: &KernelOnDisk<'_>,
    cmdline: &str,
    quiet: bool,
    boot_partition: u8,
    firmware: Firmware,
) -> BootRecord {
    let extent = FileExtent { file_offset: 0, lba: file.lba, len: u64::from(file.size) };
    let (runs, zeros) = record::plan_runs(load, &[extent]);
    let video = load.header.video.filter(|_| !firmware.bios());
    let mut flags = if quiet { record::FLAG_QUIET } else { 0 };
    if video.is_some() {
        flags |= record::FLAG_VIDEO;
    }
    BootRecord {
        flags,
        entry: load.entry,
        runs: runs.into_iter().map(|(run, _)| run).collect(),
        zeros,
        cmdline: cmdline.to_owned(),
        kernel_name: file.name.to_owned(),
        loader_name: loader_name(),
        boot_partition,
        checksum: file.checksum,
        kernel_size: file.size,
        stage2_crc: if firmware.bios() { bios::stage2_crc() } else { 0 },
        kernel_lba: file.lba,
        video: video.unwrap_or_default(),
    }
}

/// The boot loader name this version passes to kernels.
pub(crate) fn loader_name() -> String {
    format!("unikernel-mkimage {TOOL_VERSION}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The lines of the build-information file a reader checks, by the text that starts them.
pub(crate) mod info_field {
    /// The kernel's name.
    pub(crate) const KERNEL_FILE: &str = "kernel file: ";
    /// The kernel's size, then " bytes".
    pub(crate) const KERNEL_SIZE: &str = "kernel size: ";
    /// The kernel's SHA-256, lower-case hex.
    pub(crate) const KERNEL_SHA256: &str = "kernel sha256: ";
    /// The command line.
    pub(crate) const COMMAND_LINE: &str = "command line: ";

    /// The value of the first line of `text` that starts with `field`.
    pub(crate) fn value<'a>(text: &'a str, field: &str) -> Option<&'a str> {
        text.lines().find_map(|line| line.strip_prefix(field))
    }
}

/// What the build-information file says about the kernel.
struct BuildInfo<'a> {
    name: &'a str,
    size: u64,
    sha: &'a [u8; 32],
    cmdline: &'a str,
    load: &'a LoadPlan,
}

/// The boot stages of `firmware`, in words, with their versions.
fn describe_firmware(firmware: Firmware) -> String {
    let mut stages = Vec::new();
    if firmware.bios() {
        stages.push(format!("bios (boot stage {})", bios::stage_version()));
    }
    if firmware.uefi() {
        stages.push(format!("uefi (loader {})", uefi::loader_version()));
    }
    stages.join(", ")
}

/// The text of the build-information file.
fn build_info(info: &BuildInfo<'_>, table: PartitionTable, firmware: Firmware) -> String {
    use info_field::*;
    let load = info.load;
    let mut text = format!(
        "This disk was made by unikernel-mkimage {TOOL_VERSION}.\n\
         {KERNEL_FILE}{}\n\
         {KERNEL_SIZE}{} bytes\n\
         {KERNEL_SHA256}{}\n\
         {COMMAND_LINE}{}\n\
         partition table: {table}\n\
         firmware: {}\n\
         kernel format: {}, entry point {:#010x}\n",
        info.name,
        info.size,
        hex(info.sha),
        info.cmdline,
        describe_firmware(firmware),
        load.format,
        load.entry,
    );
    for s in &load.segments {
        text.push_str(&format!(
            "load: file bytes {:#x}+{:#x} to {:#010x}, {:#x} bytes in memory\n",
            s.file_offset, s.file_size, s.addr, s.mem_size
        ));
    }
    if let Some(video) = load.header.video {
        text.push_str(&format!("video: {}\n", describe_video(video)));
    }
    text
}

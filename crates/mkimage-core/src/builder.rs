//! The public entry point: a [`Kernel`] and an [`ImageBuilder`] that plans ([`Plan`], pure) and
//! assembles ([`Image`]) a disk image.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Error;
use crate::bootstage::{self, BootRecord, FileExtent};
use crate::fat_plan::check_name;
use crate::ident::{Identity, sha256};
use crate::image::Image;
use crate::layout::{DEFAULT_DISK_SIZE, Layout, LayoutRequest, PartitionTable};
use crate::multiboot::LoadPlan;
use crate::time::Timestamp;

/// Largest kernel accepted: 1 GiB. A Multiboot kernel loads below 4 GiB next to the firmware
/// and the loader, and is held in memory while the image is written.
pub const MAX_KERNEL_SIZE: u64 = 1 << 30;
/// Longest command line, in bytes, excluding the terminating NUL.
pub const MAX_CMDLINE_LEN: usize = 4095;
/// Name of the human-readable file that records how the image was built.
pub const INFO_FILE_NAME: &str = "build-info.txt";
/// This tool's version, recorded in the image.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A kernel to put on the disk: its bytes and the file name it gets on the FAT filesystem.
#[derive(Clone, Debug)]
pub struct Kernel {
    name: String,
    /// What errors call the kernel: its path when read from a file, else its name.
    origin: String,
    bytes: Arc<Vec<u8>>,
}

impl Kernel {
    /// A kernel from bytes in memory, stored under `name`.
    pub fn from_bytes(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        let name = name.into();
        Kernel { origin: name.clone(), name, bytes: Arc::new(bytes.into()) }
    }

    /// A kernel read to its end from `reader`, stored under `name`. Reads at most
    /// [`MAX_KERNEL_SIZE`] + 1 bytes, so an endless reader is refused rather than exhausting
    /// memory.
    pub fn from_reader(name: impl Into<String>, reader: impl Read) -> Result<Self, Error> {
        let name = name.into();
        let mut bytes = Vec::new();
        reader
            .take(MAX_KERNEL_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::KernelRead { path: PathBuf::from(&name), source })?;
        Ok(Kernel { origin: name.clone(), name, bytes: Arc::new(bytes) })
    }

    /// A kernel read from a file, stored under the file's base name. Refuses anything but a
    /// regular file, and a file that changes while it is read.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let read_err = |source| Error::KernelRead { path: path.to_owned(), source };
        // Look before opening: opening a FIFO for reading would block until a writer appears.
        let before = std::fs::metadata(path).map_err(read_err)?;
        check_regular(path, &before)?;
        let mut file = File::open(path).map_err(read_err)?;
        let opened = file.metadata().map_err(read_err)?;
        check_regular(path, &opened)?;
        if opened.len() > MAX_KERNEL_SIZE {
            return Err(Error::KernelTooLarge {
                name: path.display().to_string(),
                size: opened.len(),
                max: MAX_KERNEL_SIZE,
            });
        }
        let mut bytes = Vec::with_capacity(opened.len() as usize);
        (&mut file).take(MAX_KERNEL_SIZE + 1).read_to_end(&mut bytes).map_err(read_err)?;
        let after = file.metadata().map_err(read_err)?;
        let unchanged = bytes.len() as u64 == opened.len()
            && after.len() == opened.len()
            && after.modified().ok() == opened.modified().ok()
            && same_change_time(&opened, &after);
        if !unchanged {
            return Err(Error::KernelChanged { path: path.to_owned() });
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::InvalidName {
                kernel: path.display().to_string(),
                name: path.display().to_string(),
                reason: "the file name is not valid UTF-8; give one with --name",
            })?
            .to_owned();
        Ok(Kernel { name, origin: path.display().to_string(), bytes: Arc::new(bytes) })
    }

    /// The name the kernel is stored under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What error messages call the kernel: the path it was read from, or its name.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The kernel bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(unix)]
fn same_change_time(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.ctime(), a.ctime_nsec()) == (b.ctime(), b.ctime_nsec())
}

#[cfg(not(unix))]
fn same_change_time(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    true
}

fn check_regular(path: &Path, meta: &std::fs::Metadata) -> Result<(), Error> {
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok(());
    }
    let kind = if ft.is_dir() { "directory" } else { file_kind_unix(&ft) };
    Err(Error::KernelNotAFile { path: path.to_owned(), kind })
}

#[cfg(unix)]
fn file_kind_unix(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

#[cfg(not(unix))]
fn file_kind_unix(_: &std::fs::FileType) -> &'static str {
    "special file"
}

/// Everything decided about an image before any byte is placed: the disk layout, the command
/// line, the identifiers and the build-information text. Computing it does no I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Disk layout: partitions, filesystem geometry, where every file lies.
    pub layout: Layout,
    /// The command line the kernel receives: its name, then the arguments, space-separated.
    pub cmdline: String,
    /// SHA-256 of the kernel bytes.
    pub kernel_sha256: [u8; 32],
    /// Root of the image's identifiers.
    pub identity: Identity,
    /// Timestamp recorded in the filesystem and the tarball.
    pub timestamp: Timestamp,
    /// Contents of the build-information file.
    pub info_text: String,
    /// Where the kernel's bytes go in memory and where it starts.
    pub load: LoadPlan,
    /// What stage 2 is told to do.
    pub boot_record: BootRecord,
}

/// Builds a disk image for a kernel.
///
/// ```
/// use mkimage_core::{ImageBuilder, Kernel, PartitionTable, Timestamp};
/// # let kernel_bytes = mkimage_core::testkit::multiboot_kernel(b"hello");
/// let kernel = Kernel::from_bytes("hello.bin", kernel_bytes);
/// let image = ImageBuilder::new(kernel)
///     .args(["--verbose"])
///     .partition_table(PartitionTable::Gpt)
///     .disk_size(64 << 20)
///     .timestamp(Timestamp::from_unix(1_700_000_000))
///     .build()?;
/// assert_eq!(image.plan().cmdline, "hello.bin --verbose");
/// let mut raw = std::io::Cursor::new(Vec::new());
/// image.write_raw(&mut raw)?;
/// assert_eq!(raw.get_ref().len(), 64 << 20);
/// # Ok::<(), mkimage_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ImageBuilder {
    kernel: Kernel,
    name: Option<String>,
    args: Vec<String>,
    table: PartitionTable,
    disk_size: u64,
    timestamp: Timestamp,
    seed: Option<Vec<u8>>,
    quiet_boot: bool,
}

impl ImageBuilder {
    /// Starts a build of `kernel` with the defaults: MBR, 1 GiB, the kernel's own name, no
    /// arguments, the default timestamp and identifiers derived from the content.
    pub fn new(kernel: Kernel) -> Self {
        ImageBuilder {
            kernel,
            name: None,
            args: Vec::new(),
            table: PartitionTable::default(),
            disk_size: DEFAULT_DISK_SIZE,
            timestamp: Timestamp::default(),
            seed: None,
            quiet_boot: false,
        }
    }

    /// Stores the kernel under `name` instead of the kernel's own name (this is also the first
    /// word of the command line).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Arguments passed to the kernel after its name.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Partitioning scheme (default MBR).
    pub fn partition_table(mut self, table: PartitionTable) -> Self {
        self.table = table;
        self
    }

    /// Disk size in bytes (default 1 GiB).
    pub fn disk_size(mut self, bytes: u64) -> Self {
        self.disk_size = bytes;
        self
    }

    /// Timestamp recorded in the filesystem and tarball (default [`Timestamp::default`]).
    pub fn timestamp(mut self, timestamp: Timestamp) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// Derives the disk's identifiers from `seed` instead of from the content.
    pub fn identity_seed(mut self, seed: impl AsRef<[u8]>) -> Self {
        self.seed = Some(seed.as_ref().to_vec());
        self
    }

    /// Whether the boot stage skips its start line on the serial console (failures are always
    /// reported).
    pub fn quiet_boot(mut self, quiet: bool) -> Self {
        self.quiet_boot = quiet;
        self
    }

    fn stored_name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.kernel.name())
    }

    /// Plans the image without writing anything.
    pub fn plan(&self) -> Result<Plan, Error> {
        let name = self.stored_name();
        let origin = || self.kernel.origin.clone();
        check_name(name).map_err(|reason| Error::InvalidName { kernel: origin(), name: name.to_owned(), reason })?;
        if name == INFO_FILE_NAME {
            return Err(Error::InvalidName {
                kernel: origin(),
                name: name.to_owned(),
                reason: "this name is taken by the build-information file",
            });
        }
        let bytes = self.kernel.bytes();
        if bytes.is_empty() {
            return Err(Error::KernelEmpty { name: self.kernel.origin.clone() });
        }
        if bytes.len() as u64 > MAX_KERNEL_SIZE {
            return Err(Error::KernelTooLarge {
                name: self.kernel.origin.clone(),
                size: bytes.len() as u64,
                max: MAX_KERNEL_SIZE,
            });
        }
        let load =
            LoadPlan::new(bytes).map_err(|source| Error::InvalidKernel { name: self.kernel.origin.clone(), source })?;
        let cmdline = std::iter::once(name).chain(self.args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ");
        if cmdline.contains('\0') {
            return Err(Error::InvalidArgument {
                kernel: origin(),
                reason: "an argument contains a NUL byte, which cannot be passed on a command line",
            });
        }
        if cmdline.len() > MAX_CMDLINE_LEN {
            return Err(Error::CommandLineTooLong {
                kernel: self.kernel.origin.clone(),
                len: cmdline.len(),
                max: MAX_CMDLINE_LEN,
            });
        }
        let kernel_sha256 = sha256(bytes);
        let identity = match &self.seed {
            Some(seed) => Identity::from_seed(seed),
            None => Identity::from_content(&kernel_sha256, &cmdline, self.table.name(), self.disk_size),
        };
        let info_text = build_info(name, bytes.len() as u64, &kernel_sha256, &cmdline, self.table, &load);
        let layout = Layout::plan(&LayoutRequest {
            table: self.table,
            disk_size: self.disk_size,
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
        let boot_record = boot_record(&layout, &load, bytes, name, &cmdline, self.quiet_boot)?;
        Ok(Plan { layout, cmdline, kernel_sha256, identity, timestamp: self.timestamp, info_text, load, boot_record })
    }

    /// Plans and assembles the image.
    pub fn build(self) -> Result<Image, Error> {
        let plan = self.plan()?;
        Image::assemble(plan, &self.kernel.bytes)
    }
}

/// The boot record for a planned layout: the kernel file is one contiguous extent.
fn boot_record(
    layout: &Layout,
    load: &LoadPlan,
    kernel: &[u8],
    name: &str,
    cmdline: &str,
    quiet: bool,
) -> Result<BootRecord, Error> {
    let extent = FileExtent { file_offset: 0, lba: layout.kernel.sectors.start, len: kernel.len() as u64 };
    let (runs, zeros) = bootstage::plan_runs(load, &[extent]);
    let checksum = bootstage::load_checksum(runs.iter().map(|(run, offset)| {
        let start = *offset as usize;
        &kernel[start..start + run.len as usize]
    }));
    Ok(BootRecord {
        flags: if quiet { bootstage::FLAG_QUIET } else { 0 },
        entry: load.entry,
        runs: runs.into_iter().map(|(run, _)| run).collect(),
        zeros,
        cmdline: cmdline.to_owned(),
        kernel_name: name.to_owned(),
        loader_name: format!("unikernel-mkimage {TOOL_VERSION}"),
        boot_partition: layout.fat_partition_index,
        checksum,
        kernel_size: kernel.len() as u32,
        stage2_crc: crc32fast::hash(&bootstage::stage2_sectors()),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The text of the build-information file.
fn build_info(name: &str, size: u64, sha: &[u8; 32], cmdline: &str, table: PartitionTable, load: &LoadPlan) -> String {
    let mut text = format!(
        "This disk was made by unikernel-mkimage {TOOL_VERSION} (boot stage {}).\n\
         kernel file: {name}\n\
         kernel size: {size} bytes\n\
         kernel sha256: {}\n\
         command line: {cmdline}\n\
         partition table: {table}\n\
         kernel format: {}, entry point {:#010x}\n",
        bootstage::stage_version(),
        hex(sha),
        load.format,
        load.entry,
    );
    for s in &load.segments {
        text.push_str(&format!(
            "load: file bytes {:#x}+{:#x} to {:#010x}, {:#x} bytes in memory\n",
            s.file_offset, s.file_size, s.addr, s.mem_size
        ));
    }
    text
}

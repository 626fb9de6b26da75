//! The public entry point for building: an [`ImageBuilder`] collects the options, plans the
//! image ([`ImageBuilder::plan`], pure) and assembles it ([`ImageBuilder::build`]).

use crate::Error;
use crate::boot::Firmware;
use crate::image::Image;
use crate::kernel::Kernel;
use crate::layout::{DEFAULT_DISK_SIZE, PartitionTable};
use crate::plan::{Options, Plan};
use crate::time::Timestamp;

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
    options: Options,
}

impl ImageBuilder {
    /// Starts a build of `kernel` with the defaults: MBR, both firmwares (BIOS and UEFI), 1 GiB,
    /// the kernel's own name, no arguments, the default timestamp and identifiers derived from
    /// the content.
    pub fn new(kernel: Kernel) -> Self {
        let options = Options {
            name: None,
            args: Vec::new(),
            table: PartitionTable::default(),
            firmware: Firmware::default(),
            disk_size: DEFAULT_DISK_SIZE,
            timestamp: Timestamp::default(),
            seed: None,
            quiet_boot: false,
        };
        ImageBuilder { kernel, options }
    }

    /// Stores the kernel under `name` instead of the kernel's own name (this is also the first
    /// word of the command line).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.name = Some(name.into());
        self
    }

    /// Arguments passed to the kernel after its name.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.options.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Partitioning scheme (default MBR).
    pub fn partition_table(mut self, table: PartitionTable) -> Self {
        self.options.table = table;
        self
    }

    /// The firmware the image boots from (default [`Firmware::Hybrid`], both): which boot
    /// stages it carries. A kernel that requires a graphics mode needs [`Firmware::Uefi`].
    pub fn firmware(mut self, firmware: Firmware) -> Self {
        self.options.firmware = firmware;
        self
    }

    /// Disk size in bytes (default 1 GiB).
    pub fn disk_size(mut self, bytes: u64) -> Self {
        self.options.disk_size = bytes;
        self
    }

    /// Timestamp recorded in the filesystem and tarball (default [`Timestamp::default`]).
    pub fn timestamp(mut self, timestamp: Timestamp) -> Self {
        self.options.timestamp = timestamp;
        self
    }

    /// Derives the disk's identifiers from `seed` instead of from the content.
    pub fn identity_seed(mut self, seed: impl AsRef<[u8]>) -> Self {
        self.options.seed = Some(seed.as_ref().to_vec());
        self
    }

    /// Whether the boot stage skips its start line on the serial console (failures are always
    /// reported).
    pub fn quiet_boot(mut self, quiet: bool) -> Self {
        self.options.quiet_boot = quiet;
        self
    }

    /// Plans the image without writing anything.
    ///
    /// # Errors
    /// Every [`Error`] of planning: the kernel (empty, too large, not a Multiboot kernel this loader
    /// can boot, a name FAT cannot store), the command line, the disk size.
    pub fn plan(&self) -> Result<Plan, Error> {
        Plan::new(&self.kernel, &self.options)
    }

    /// Plans and assembles the image.
    ///
    /// # Errors
    /// What [`ImageBuilder::plan`] returns, and [`Error::Internal`] if the filesystem writer does not
    /// place the files where the plan says (a bug, never a wrong image).
    pub fn build(self) -> Result<Image, Error> {
        let plan = self.plan()?;
        Image::assemble(plan, &self.kernel.bytes)
    }
}

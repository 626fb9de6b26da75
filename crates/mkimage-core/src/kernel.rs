//! The kernel as input: its bytes and the name it gets on the disk, read from memory, from any
//! reader, or from a file (refusing anything but a regular file, and a file that changes while
//! it is read).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Error;

/// Largest kernel accepted: 1 GiB. A Multiboot kernel loads below 4 GiB next to the firmware
/// and the loader, and is held in memory while the image is written.
pub const MAX_KERNEL_SIZE: u64 = 1 << 30;

/// A kernel to put on the disk: its bytes and the file name it gets on the FAT filesystem.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// `None` when read from a file whose name is not valid UTF-8: the build then needs a name.
    pub(crate) name: Option<String>,
    /// What errors call the kernel: its path when read from a file, else its name.
    pub(crate) origin: String,
    pub(crate) bytes: Arc<Vec<u8>>,
}

impl Kernel {
    /// A kernel from bytes in memory, stored under `name`.
    pub fn from_bytes(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        let name = name.into();
        Kernel { origin: name.clone(), name: Some(name), bytes: Arc::new(bytes.into()) }
    }

    /// A kernel read to its end from `reader`, stored under `name`. Reads at most
    /// [`MAX_KERNEL_SIZE`] + 1 bytes, so an endless reader is refused rather than exhausting
    /// memory.
    ///
    /// # Errors
    /// [`Error::KernelRead`] when the reader fails.
    pub fn from_reader(name: impl Into<String>, reader: impl Read) -> Result<Self, Error> {
        let name = name.into();
        let mut bytes = Vec::new();
        reader
            .take(MAX_KERNEL_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::KernelRead { path: PathBuf::from(&name), source })?;
        Ok(Kernel { origin: name.clone(), name: Some(name), bytes: Arc::new(bytes) })
    }

    /// A kernel read from a file, stored under the file's base name (a name that is not valid
    /// UTF-8 must be replaced with [`crate::ImageBuilder::name`]). Refuses anything but a
    /// regular file, and a file that changes while it is read. Files that report a size of 0
    /// but have content (pseudo-files such as those in `/proc`) are read to their end.
    ///
    /// # Errors
    /// [`Error::KernelRead`], [`Error::KernelNotAFile`], [`Error::KernelTooLarge`] or
    /// [`Error::KernelChanged`].
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
        // A pseudo-file reports size 0 whatever it holds; only its times can tell a change.
        let size_known = opened.len() != 0;
        let unchanged = (!size_known || (bytes.len() as u64 == opened.len() && after.len() == opened.len()))
            && after.modified().ok() == opened.modified().ok()
            && same_change_time(&opened, &after);
        if !unchanged {
            return Err(Error::KernelChanged { path: path.to_owned() });
        }
        let name = path.file_name().and_then(|n| n.to_str()).map(str::to_owned);
        Ok(Kernel { name, origin: path.display().to_string(), bytes: Arc::new(bytes) })
    }

    /// The name the kernel is stored under, unless it came from a file whose name is not
    /// valid UTF-8.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
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

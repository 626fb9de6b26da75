//! Where a built image goes, decided before anything is written, and how it is written there.
//!
//! | OUTPUT | what happens |
//! |---|---|
//! | `-` | the image is streamed to standard output |
//! | missing | a temporary file next to it, renamed into place when complete |
//! | a regular file | refused, or with `--force` replaced the same way (atomically) |
//! | a symbolic link | followed: what it points to decides, and is what gets written or replaced; the link stays |
//! | a FIFO or character device | the image is streamed into it (nothing is replaced, so no `--force` is needed) |
//! | a block device | with `--force`, the raw image is written into it in place, every byte, like `dd`; the rest of a larger device is left as it was |
//! | a directory, a socket, a link to nothing | refused |
//!
//! Nothing that is not a regular file is ever unlinked or renamed over. The kernel is never an
//! output. A temporary file is named `.unikernel-mkimage-<OUTPUT name>-<random>.partial`, is
//! locked while its build runs, and is removed on failure or SIGINT/SIGTERM; one left by a
//! build that was killed outright (SIGKILL, power loss) is removed by the next build into the
//! same directory once it is a minute old and no build holds its lock.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use mkimage_core::Image;

use crate::{Failure, Format, register_temp, unregister_temp};

/// Prefix of this tool's temporary files.
const TEMP_PREFIX: &str = ".unikernel-mkimage-";
/// Suffix of this tool's temporary files.
const TEMP_SUFFIX: &str = ".partial";
/// Age after which an unlocked temporary file of ours is taken for a leftover.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// Where an image goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A new or replaced regular file: written to a temporary file next to `path`, then renamed
    /// to `path` (for a symbolic link, the file it points to).
    File {
        /// The final path.
        path: PathBuf,
        /// Whether an existing file may be replaced.
        replace: bool,
    },
    /// A block device, written in place.
    BlockDevice(PathBuf),
    /// A FIFO or character device, written as a stream.
    Stream(PathBuf),
    /// Standard output.
    Stdout,
}

impl Destination {
    /// Whether the image goes to standard output (so messages must go to standard error).
    pub fn is_stdout(&self) -> bool {
        *self == Destination::Stdout
    }
}

/// The I/O error's own words, without the paths some libraries add (a temporary file's random
/// name means nothing to the user).
pub fn os_error(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
        None => err.to_string(),
    }
}

/// Decides where the image for `kernel` goes, refusing what would clobber something: a
/// directory, the kernel itself, an existing file (without `force`), a block device (without
/// `force`, or for a tarball), a socket, a link to nothing.
pub fn prepare(output: &Path, kernel: &Path, format: Format, force: bool) -> Result<Destination, Failure> {
    if output.as_os_str() == "-" {
        return Ok(Destination::Stdout);
    }
    let shown = output.display();
    let link = std::fs::symlink_metadata(output).ok().filter(|m| m.file_type().is_symlink());
    let meta = match std::fs::metadata(output) {
        Ok(meta) => meta,
        Err(_) if link.is_some() => {
            return Err(Failure(format!("output {shown} is a symbolic link to a file that does not exist")));
        }
        // With --force, a file another build creates meanwhile may be replaced too.
        Err(_) => return Ok(Destination::File { path: output.to_owned(), replace: force }),
    };
    if crate::same_file(output, kernel) {
        return Err(Failure(format!("output {shown} is the kernel itself; the input is never overwritten")));
    }
    let ft = meta.file_type();
    if ft.is_dir() {
        return Err(Failure(format!("output {shown} is a directory")));
    }
    if ft.is_file() {
        if !force {
            return Err(Failure(format!("output {shown} already exists (use --force to replace it)")));
        }
        let path = if link.is_some() {
            std::fs::canonicalize(output).unwrap_or_else(|_| output.to_owned())
        } else {
            output.to_owned()
        };
        return Ok(Destination::File { path, replace: true });
    }
    special(output, &ft, format, force)
}

#[cfg(unix)]
fn special(output: &Path, ft: &std::fs::FileType, format: Format, force: bool) -> Result<Destination, Failure> {
    use std::os::unix::fs::FileTypeExt;
    let shown = output.display();
    if ft.is_block_device() {
        if format != Format::Raw {
            return Err(Failure(format!(
                "output {shown} is a block device; write a raw image into it (--format raw), not a tarball"
            )));
        }
        if !force {
            return Err(Failure(format!(
                "output {shown} is a block device; writing the image into it destroys what it holds (use --force)"
            )));
        }
        return Ok(Destination::BlockDevice(output.to_owned()));
    }
    if ft.is_fifo() || ft.is_char_device() {
        return Ok(Destination::Stream(output.to_owned()));
    }
    Err(Failure(format!("output {shown} is a socket or another special file, which cannot be written")))
}

#[cfg(not(unix))]
fn special(output: &Path, _: &std::fs::FileType, _: Format, _: bool) -> Result<Destination, Failure> {
    Err(Failure(format!("output {} is not a regular file", output.display())))
}

/// Writes `image` in `format` to `dest`. Returns the bytes written.
pub fn write(image: &Image, dest: &Destination, format: Format) -> Result<u64, Failure> {
    match dest {
        Destination::File { path, replace } => write_file(image, path, format, *replace),
        Destination::BlockDevice(path) => write_device(image, path),
        Destination::Stream(path) => {
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Failure(format!("cannot open {}: {}", path.display(), os_error(&e))))?;
            write_stream(image, file, format, path)
        }
        Destination::Stdout => write_stream(image, std::io::stdout().lock(), format, Path::new("standard output")),
    }
}

fn write_failure(path: &Path, err: mkimage_core::Error) -> Failure {
    let cause = match &err {
        mkimage_core::Error::Write { source } => os_error(source),
        other => crate::chain(other),
    };
    Failure(format!("cannot write {}: {cause}", path.display()))
}

fn write_stream(image: &Image, out: impl Write, format: Format, path: &Path) -> Result<u64, Failure> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    let written = match format {
        Format::Raw => image.write_raw(&mut out),
        Format::Gce => image.write_gce(&mut out),
    }
    .map_err(|e| write_failure(path, e))?;
    out.flush().map_err(|e| Failure(format!("cannot write {}: {}", path.display(), os_error(&e))))?;
    Ok(written)
}

fn write_device(image: &Image, path: &Path) -> Result<u64, Failure> {
    let fail = |what: &str, e: std::io::Error| Failure(format!("{what} {}: {}", path.display(), os_error(&e)));
    let mut device = OpenOptions::new().write(true).open(path).map_err(|e| fail("cannot open", e))?;
    let size = device.seek(SeekFrom::End(0)).map_err(|e| fail("cannot size", e))?;
    if size < image.disk_size() {
        return Err(Failure(format!(
            "output {} holds {size} bytes, less than the {}-byte image",
            path.display(),
            image.disk_size()
        )));
    }
    device.seek(SeekFrom::Start(0)).map_err(|e| fail("cannot write", e))?;
    let written = image.write_raw(&mut device).map_err(|e| write_failure(path, e))?;
    device.sync_all().map_err(|e| fail("cannot flush", e))?;
    Ok(written)
}

/// The directory a file at `path` is in.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes the image to a temporary file next to `path` and renames it into place, so that
/// `path` is either the complete image or untouched, and nothing is left behind on failure or
/// on SIGINT/SIGTERM.
fn write_file(image: &Image, path: &Path, format: Format, replace: bool) -> Result<u64, Failure> {
    let dir = parent_dir(path);
    remove_stale_leftovers(dir);
    let fail = |what: &str, e: &std::io::Error| Failure(format!("{what} {}: {}", path.display(), os_error(e)));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut temp = tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}{}-", name.replace(['/', '\0'], "_")))
        .suffix(TEMP_SUFFIX)
        .permissions(crate::default_permissions())
        .tempfile_in(dir)
        .map_err(|e| fail("cannot create a temporary file next to", &e))?;
    let temp_path = temp.path().to_owned();
    register_temp(&temp_path);
    let result = (|| {
        // Held until the file is closed: tells other builds this leftover is alive.
        let _ = temp.as_file().try_lock();
        let written = match format {
            Format::Raw => image.write_raw_file(temp.as_file_mut()),
            Format::Gce => image.write_gce(std::io::BufWriter::new(temp.as_file_mut())),
        }
        .map_err(|e| write_failure(path, e))?;
        temp.as_file().sync_all().map_err(|e| fail("cannot flush", &e))?;
        let persisted = if replace { temp.persist(path) } else { temp.persist_noclobber(path) };
        persisted.map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                Failure(format!("output {} already exists (use --force to replace it)", path.display()))
            } else {
                fail("cannot move the finished image to", &e.error)
            }
        })?;
        Ok::<u64, Failure>(written)
    })();
    unregister_temp(&temp_path);
    result
}

/// Removes temporary files of ours in `dir` that no build holds and that are over a minute
/// old: what a build killed outright left behind.
fn remove_stale_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with(TEMP_PREFIX) || !name.ends_with(TEMP_SUFFIX) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        let old = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).is_some_and(|age| age > STALE_AFTER);
        if !meta.is_file() || !old {
            continue;
        }
        let unlocked = File::open(&path).is_ok_and(|f| f.try_lock().is_ok());
        if unlocked {
            let _ = std::fs::remove_file(&path);
        }
    }
}

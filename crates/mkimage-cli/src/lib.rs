//! Pieces shared by the two command-line programs, `unikernel-mkimage` and the drop-in
//! `solo5-virtio-mkimage`: writing an image to its destination safely, turning errors into one
//! line, and cleaning up temporary files when a signal ends the process.

pub mod dropin;
pub mod output;
pub mod qemu;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mkimage_core::Error;

/// Exit status of a failed command.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status after SIGINT (128 + 2), as shells report it.
pub const EXIT_SIGINT: i32 = 130;
/// Exit status after SIGTERM (128 + 15).
pub const EXIT_SIGTERM: i32 = 143;

/// An error for the user: one line, the cause chain included.
#[derive(Debug)]
pub struct Failure(pub String);

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure(chain(&err))
    }
}

/// Text from an image, a kernel or a command line made safe to print on a terminal: control
/// characters (C0, DEL, C1) and Unicode bidirectional controls are shown as escapes (`\x1b`,
/// `\u{202e}`), and backslashes are doubled so that the escapes are unambiguous. Nothing printed
/// through it can move the cursor, retitle or clear the terminal, or reorder what follows.
///
/// ```
/// assert_eq!(unikernel_mkimage::printable("a\x1b]0;x\x07b"), "a\\x1b]0;x\\x07b");
/// assert_eq!(unikernel_mkimage::printable("plain: ü"), "plain: ü");
/// ```
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c == '\\' || c.is_control() || is_bidi_control(c);
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c.is_control() && u32::from(c) < 0x100 => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Unicode's bidirectional formatting characters (marks, embeddings, overrides, isolates).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Prints an error line for `program` on standard error, made safe to print.
pub fn print_error(program: &str, message: &str) {
    eprintln!("{program}: error: {}", printable(message));
}

/// An error and its causes, joined with ": " on one line.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The output format of a build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A raw disk image (sparse file).
    Raw,
    /// The GCE tarball.
    Gce,
}

/// Temporary files to remove, and whether a signal arrived, shared with the signal thread.
static CLEANUP: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// How the process reacts to SIGINT and SIGTERM after [`handle_signals`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnSignal {
    /// Remove registered temporary files and exit at once (128 + signal).
    Exit,
    /// Remove registered temporary files and record the signal for [`interrupted`] to report;
    /// the main thread decides when to stop (used while a child process runs).
    Record,
}

static SIGNALLED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Installs the SIGINT/SIGTERM handling. Idempotent enough for a CLI: call once.
pub fn handle_signals(mode: OnSignal) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            remove_registered();
            SIGNALLED.store(signal, std::sync::atomic::Ordering::SeqCst);
            if mode == OnSignal::Exit {
                std::process::exit(128 + signal);
            }
        }
    });
}

/// The signal that arrived, if any (in [`OnSignal::Record`] mode).
pub fn interrupted() -> Option<i32> {
    match SIGNALLED.load(std::sync::atomic::Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Registers a temporary file to remove if a signal ends the process.
pub fn register_temp(path: &Path) {
    if let Ok(mut list) = CLEANUP.lock() {
        list.push(path.to_owned());
    }
}

/// Forgets a temporary file (it was renamed into place or removed).
pub fn unregister_temp(path: &Path) {
    if let Ok(mut list) = CLEANUP.lock() {
        list.retain(|p| p != path);
    }
}

fn remove_registered() {
    if let Ok(list) = CLEANUP.lock() {
        for path in list.iter() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Whether two paths name the same file.
#[cfg(unix)]
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether two paths name the same file.
#[cfg(not(unix))]
pub fn same_file(a: &Path, b: &Path) -> bool {
    std::fs::canonicalize(a).ok().is_some_and(|a| std::fs::canonicalize(b).ok() == Some(a))
}

/// Permissions of a newly created output, before the umask: read-write for everyone, as for any
/// file a program creates.
#[cfg(unix)]
pub fn default_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o666)
}

/// Permissions of a newly created output.
#[cfg(not(unix))]
pub fn default_permissions() -> std::fs::Permissions {
    std::fs::metadata(".").map(|m| m.permissions()).expect("current directory is readable")
}

/// Extensions of disk-image and archive formats this tool does not write.
const FOREIGN_EXTENSIONS: [&str; 14] =
    [".qcow2", ".qcow", ".vmdk", ".vdi", ".vhd", ".vhdx", ".iso", ".tar", ".gz", ".xz", ".bz2", ".zst", ".zip", ".7z"];

/// The extension of `output`, when it promises a format this tool does not write (`.qcow2`,
/// `.vmdk`, `.tar`, `.gz` other than `.tar.gz`...).
pub fn foreign_extension(output: &Path) -> Option<&'static str> {
    if infer_format(output) == Format::Gce {
        return None;
    }
    let name = output.file_name().map(|n| n.as_encoded_bytes().to_ascii_lowercase()).unwrap_or_default();
    FOREIGN_EXTENSIONS.iter().copied().find(|ext| name.ends_with(ext.as_bytes()))
}

/// Infers the format from the output's name (whatever its encoding): `*.tar.gz` and `*.tgz` are
/// GCE tarballs.
pub fn infer_format(output: &Path) -> Format {
    let name = output.file_name().map(|n| n.as_encoded_bytes().to_ascii_lowercase()).unwrap_or_default();
    if name.ends_with(b".tar.gz") || name.ends_with(b".tgz") { Format::Gce } else { Format::Raw }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(infer_format(Path::new("x.tar.gz")), Format::Gce);
        assert_eq!(infer_format(Path::new("dir/X.TGZ")), Format::Gce);
        assert_eq!(infer_format(Path::new("disk.raw")), Format::Raw);
        assert_eq!(infer_format(Path::new("disk.gz")), Format::Raw);
        assert_eq!(infer_format(Path::new("")), Format::Raw);
    }

    #[test]
    fn foreign_extensions_are_named() {
        assert_eq!(foreign_extension(Path::new("disk.qcow2")), Some(".qcow2"));
        assert_eq!(foreign_extension(Path::new("x.TAR")), Some(".tar"));
        assert_eq!(foreign_extension(Path::new("x.gz")), Some(".gz"));
        assert_eq!(foreign_extension(Path::new("x.tar.gz")), None);
        assert_eq!(foreign_extension(Path::new("x.tgz")), None);
        assert_eq!(foreign_extension(Path::new("disk.raw")), None);
        assert_eq!(foreign_extension(Path::new("disk.img")), None);
        assert_eq!(foreign_extension(Path::new("-")), None);
    }

    #[test]
    fn cause_chains_are_one_line() {
        let err = Error::KernelRead {
            path: "k".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory"),
        };
        assert_eq!(Failure::from(err).0, "cannot read kernel k: No such file or directory");
    }
}

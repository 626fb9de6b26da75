//! Identifying the kernel an image boots: the one this tool's boot record names, or the one a
//! SYSLINUX configuration names; reading it from the filesystem and planning its load.

use super::checks::{Check, CheckName};
use super::fat::{Entry, Volume};
use super::source::DiskSource;
use super::{BootLoader, Filesystem, KernelInfo};
use crate::ident::sha256;
use crate::kernel::MAX_KERNEL_SIZE;
use crate::multiboot::{self, LoadPlan};

/// Largest configuration file read (syslinux.cfg).
const MAX_CONFIG_READ: u64 = 64 * 1024;
/// SYSLINUX's configuration file.
const SYSLINUX_CONFIG: &str = "syslinux.cfg";
/// SYSLINUX's Multiboot module, which takes the kernel as its first argument.
const SYSLINUX_MBOOT: &str = "mboot.c32";

/// The kernel found, its bytes and directory entry.
pub(super) struct Found {
    /// What the report says about it.
    pub(super) info: KernelInfo,
    /// Its bytes.
    pub(super) bytes: Vec<u8>,
    /// Its directory entry.
    pub(super) entry: Entry,
}

/// What identifying the kernel produced: the kernel (if readable), its command line, and the
/// `kernel_file` and `kernel_multiboot` checks.
pub(super) struct Identified {
    /// The kernel.
    pub(super) found: Option<Found>,
    /// Its command line, if known.
    pub(super) cmdline: Option<String>,
    /// `kernel_file`, `kernel_multiboot`.
    pub(super) checks: [Check; 2],
}

/// Finds the kernel the boot loader names and reads it from the filesystem.
pub(super) fn identify(
    source: &mut dyn DiskSource,
    loader: &BootLoader,
    volume: Option<&Volume>,
    filesystem: Option<&Filesystem>,
) -> Identified {
    let files = filesystem.map_or(&[][..], |f| &f.files[..]);
    let (name, cmdline) = match loader {
        BootLoader::UnikernelMkimage { record: Ok(r), .. } => (Some(r.kernel_name.clone()), Some(r.cmdline.clone())),
        BootLoader::Syslinux => {
            let config = files
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(SYSLINUX_CONFIG))
                .and_then(|e| volume.and_then(|v| v.read(source, e, MAX_CONFIG_READ).ok()));
            match config.and_then(|c| syslinux_kernel(&String::from_utf8_lossy(&c))) {
                Some((n, c)) => (Some(n), Some(c)),
                None => (None, None),
            }
        }
        _ => (None, None),
    };
    let (found, file_check) = match (volume, &name) {
        (_, None) => (None, Check::new(CheckName::KernelFile, false, "no kernel identified")),
        (volume, Some(name)) => match files.iter().find(|f| f.name.eq_ignore_ascii_case(name) && !f.directory) {
            None => (None, Check::new(CheckName::KernelFile, false, format!("{name} is not on the filesystem"))),
            Some(entry) => match volume.map(|v| read_kernel(source, v, entry)) {
                Some(Ok(found)) => {
                    let detail = format!("{} ({} bytes)", found.info.name, found.info.size);
                    (Some(found), Check::new(CheckName::KernelFile, true, detail))
                }
                Some(Err(e)) => (None, Check::new(CheckName::KernelFile, false, format!("{name}: {e}"))),
                None => (None, Check::new(CheckName::KernelFile, false, format!("{name} is not on the filesystem"))),
            },
        },
    };
    let multiboot_check = match found.as_ref().map(|f| &f.info.load) {
        Some(Ok(plan)) => Check::new(
            CheckName::KernelMultiboot,
            true,
            format!("{}, entry {:#010x}, {} segment(s)", plan.format, plan.entry, plan.segments.len()),
        ),
        Some(Err(e)) => Check::new(CheckName::KernelMultiboot, false, e.clone()),
        None => Check::new(CheckName::KernelMultiboot, false, "no kernel to check"),
    };
    Identified { found, cmdline, checks: [file_check, multiboot_check] }
}

/// Reads the kernel file and describes it.
fn read_kernel(source: &mut dyn DiskSource, volume: &Volume, entry: &Entry) -> Result<Found, String> {
    let bytes = volume.read(source, entry, MAX_KERNEL_SIZE)?;
    let (contiguous, _) = volume.contiguous(source, entry).unwrap_or((false, 0));
    let info = KernelInfo {
        name: entry.name.clone(),
        size: u64::from(entry.size),
        sha256: sha256(&bytes).iter().map(|b| format!("{b:02x}")).collect(),
        contiguous,
        header: multiboot::find_header(&bytes).ok(),
        load: LoadPlan::new(&bytes).map_err(|e| e.to_string()),
    };
    Ok(Found { info, bytes, entry: entry.clone() })
}

/// The SYSLINUX configuration's boot line: (kernel file, command line) from
/// `APPEND -aout NAME ARGS` (mboot.c32) or `KERNEL NAME` plus `APPEND ARGS`.
fn syslinux_kernel(config: &str) -> Option<(String, String)> {
    let mut kernel = None;
    let mut append = None;
    for line in config.lines() {
        let mut words = line.split_whitespace();
        match words.next().map(str::to_ascii_uppercase).as_deref() {
            Some("KERNEL") => kernel = words.next().map(str::to_owned),
            Some("APPEND") => append = Some(words.map(str::to_owned).collect::<Vec<_>>()),
            _ => {}
        }
    }
    let kernel = kernel?;
    let append = append.unwrap_or_default();
    if kernel.eq_ignore_ascii_case(SYSLINUX_MBOOT) {
        let args: Vec<&String> = append.iter().skip_while(|a| a.starts_with('-')).collect();
        let name = args.first()?.to_string();
        let cmdline = args.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
        return Some((name, cmdline));
    }
    let cmdline = std::iter::once(kernel.clone()).chain(append).collect::<Vec<_>>().join(" ");
    Some((kernel, cmdline))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslinux_config_lines() {
        let cfg = "SERIAL 0 115200\nDEFAULT unikernel\nLABEL unikernel\n  KERNEL mboot.c32\n  APPEND -aout unikernel.bin --x=1 y\n";
        assert_eq!(syslinux_kernel(cfg), Some(("unikernel.bin".into(), "unikernel.bin --x=1 y".into())));
        assert_eq!(syslinux_kernel("KERNEL vmlinuz\nAPPEND quiet"), Some(("vmlinuz".into(), "vmlinuz quiet".into())));
        assert_eq!(syslinux_kernel("DEFAULT x"), None);
    }
}

//! Identifying the kernel an image boots: the one this tool's boot record names, or the one a
//! SYSLINUX configuration names; reading it from the filesystem a chunk at a time (its SHA-256,
//! its load plan through [`KernelBytes`]) so that memory does not grow with the kernel; and
//! checking it against what `build-info.txt` recorded.

use sha2::{Digest, Sha256};

use super::checks::{Check, CheckName};
use super::fat::{Entry, Volume};
use super::source::DiskSource;
use super::{BootLoader, Filesystem, KernelInfo};
use crate::multiboot::{self, KernelBytes, LoadPlan};
use crate::plan::{INFO_FILE_NAME, info_field};

/// Largest configuration file read (syslinux.cfg, build-info.txt).
const MAX_CONFIG_READ: u64 = 64 * 1024;
/// Bytes hashed per step.
const CHUNK: usize = 1 << 20;
/// SYSLINUX's configuration file.
const SYSLINUX_CONFIG: &str = "syslinux.cfg";
/// SYSLINUX's Multiboot module, which takes the kernel as its first argument.
const SYSLINUX_MBOOT: &str = "mboot.c32";

/// The kernel found: what the report says about it, its directory entry, where it starts.
pub(super) struct Found {
    /// What the report says about it.
    pub(super) info: KernelInfo,
    /// Its directory entry.
    pub(super) entry: Entry,
    /// The LBA of its first cluster.
    pub(super) first_lba: u64,
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

/// A file on a FAT volume, readable at any offset through its cluster chain.
struct FileOnVolume<'a> {
    source: &'a mut dyn DiskSource,
    volume: &'a Volume,
    chain: Vec<u32>,
    size: u64,
}

impl KernelBytes for FileOnVolume<'_> {
    fn len(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Option<()> {
        if offset.checked_add(buf.len() as u64)? > self.size {
            return None;
        }
        let cluster_size = self.volume.cluster_size();
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let cluster = *self.chain.get(usize::try_from(at / cluster_size).ok()?)?;
            let within = at % cluster_size;
            let n = ((cluster_size - within) as usize).min(buf.len() - done);
            let disk_offset = self.volume.cluster_lba(cluster) * crate::bytes::SECTOR_SIZE + within;
            self.source.read_at(disk_offset, &mut buf[done..done + n]).ok()?;
            done += n;
        }
        Some(())
    }
}

/// Reads the kernel file a chunk at a time and describes it.
fn read_kernel(source: &mut dyn DiskSource, volume: &Volume, entry: &Entry) -> Result<Found, String> {
    let size = u64::from(entry.size);
    let clusters = size.div_ceil(volume.cluster_size()).max(1);
    let chain = volume.chain(source, entry.first_cluster, clusters)?;
    if (chain.len() as u64) < clusters {
        return Err(format!("{}: cluster chain is shorter than the file", entry.name));
    }
    let contiguous = chain.windows(2).all(|w| w[1] == w[0] + 1);
    let first_lba = volume.cluster_lba(chain[0]);
    let mut file = FileOnVolume { source, volume, chain, size };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK.min(size as usize)];
    let mut done = 0u64;
    while done < size {
        let n = (size - done).min(CHUNK as u64) as usize;
        file.read_at(done, &mut buf[..n]).ok_or_else(|| format!("{}: cannot read its clusters", entry.name))?;
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    let prefix_len = size.min(multiboot::SEARCH_LIMIT as u64) as usize;
    let mut prefix = vec![0u8; prefix_len];
    file.read_at(0, &mut prefix);
    let info = KernelInfo {
        name: entry.name.clone(),
        size,
        sha256: hasher.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        contiguous,
        header: multiboot::find_header(&prefix).ok(),
        load: LoadPlan::from_source(&mut file).map_err(|e| e.to_string()),
    };
    Ok(Found { info, entry: entry.clone(), first_lba })
}

/// The `build_info` check: `build-info.txt` records the kernel's size, SHA-256 and command
/// line, and they match the kernel found and the boot record's command line.
pub(super) fn build_info_check(
    source: &mut dyn DiskSource,
    volume: Option<&Volume>,
    filesystem: Option<&Filesystem>,
    found: Option<&Found>,
    cmdline: Option<&str>,
) -> Check {
    let result = (|| {
        let files = filesystem.map_or(&[][..], |f| &f.files[..]);
        let entry = files.iter().find(|f| f.name.eq_ignore_ascii_case(INFO_FILE_NAME)).ok_or("no build-info.txt")?;
        let volume = volume.ok_or("no filesystem")?;
        let bytes = volume.read(source, entry, MAX_CONFIG_READ)?;
        let text = String::from_utf8_lossy(&bytes);
        let found = found.ok_or("no kernel to compare")?;
        let field =
            |name| info_field::value(&text, name).ok_or(format!("build-info.txt has no \"{}\" line", name.trim()));
        let size = field(info_field::KERNEL_SIZE)?;
        if size != format!("{} bytes", found.info.size) {
            return Err(format!(
                "build-info.txt records a kernel of {size}, but {} is {} bytes",
                found.info.name, found.info.size
            ));
        }
        if field(info_field::KERNEL_SHA256)? != found.info.sha256 {
            return Err(format!("the SHA-256 of {} differs from the one build-info.txt records", found.info.name));
        }
        if cmdline.is_some_and(|c| field(info_field::COMMAND_LINE).ok() != Some(c)) {
            return Err("build-info.txt records another command line than the boot record's".into());
        }
        Ok(format!("{}'s size and SHA-256 match build-info.txt", found.info.name))
    })();
    Check::from_result(CheckName::BuildInfo, result)
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

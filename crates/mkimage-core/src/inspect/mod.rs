//! Inspecting a disk image: what is inside a raw image or a GCE tarball (partition table,
//! filesystem, kernel, command line, boot stage) and a list of checks of what this tool
//! promises (boot record consistent with the kernel on the filesystem, boot code present) and
//! of what GCE requires of a tarball.
//!
//! Works on images made by anything: a SYSLINUX image is described as such, garbage is refused
//! with an error. All reading goes through [`source::DiskSource`], and every parser here is
//! bounded (see [`source`], [`tables`], [`fat`], [`tarball`]): hostile input can neither make it
//! read outside the file, loop, nor allocate in proportion to a size it claims.

pub mod fat;
pub mod source;
pub mod tables;
pub mod tarball;

use std::io::{Read, Seek};
use std::path::Path;

use crate::bootstage::{self, BootRecord, STAGE2_SECTORS};
use crate::ident::sha256;
use crate::multiboot::{self, LoadPlan};
use crate::size::GIB;
use source::{DiskSource, RawSource, read_vec};

/// Largest file read from an image's filesystem (the kernel).
const MAX_FILE_READ: u64 = crate::MAX_KERNEL_SIZE;
/// Largest configuration file read (syslinux.cfg).
const MAX_CONFIG_READ: u64 = 64 * 1024;
/// Bytes per sector.
const SECTOR: u64 = 512;

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
    /// No MBR boot signature: neither a partitioned disk nor a tarball.
    #[error("{path} is not a disk image: no partition table (no 55AA boot signature in its first sector)")]
    NotADiskImage {
        /// The path.
        path: String,
    },
}

/// How the image was packaged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Container {
    /// A raw disk image.
    Raw,
    /// A gzip-compressed tar.
    Tarball(tarball::Archive),
}

/// The filesystem holding the files.
#[derive(Clone, Debug, PartialEq, Eq)]
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
pub enum BootLoader {
    /// This tool's boot stage; the record when it decodes.
    UnikernelMkimage {
        /// Stage 2's version.
        stage_version: u16,
        /// The boot record, or why it does not decode.
        record: Result<BootRecord, String>,
    },
    /// SYSLINUX (its files or boot sector were found).
    Syslinux,
    /// Boot code of another origin.
    Unknown,
    /// All-zero boot code.
    None,
}

/// The kernel as found on the filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// One check and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Stable identifier.
    pub name: &'static str,
    /// Whether it holds.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// What an image holds and which checks hold.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// The kernel, if one was identified.
    pub kernel: Option<KernelInfo>,
    /// The kernel's command line, if known.
    pub cmdline: Option<String>,
    /// Checks, in a fixed order.
    pub checks: Vec<Check>,
}

/// Names of the checks that make up GCE's import rules.
const GCE_RULES: [&str; 4] = ["gce_single_member", "gce_member_name", "gce_format", "gce_size"];

impl Report {
    /// Whether every check holds.
    pub fn all_ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// Whether GCE would import this file and find something to boot: it is a tarball that
    /// follows GCE's rules, with a valid partition table, a bootable partition and boot code.
    pub fn gce_ready(&self) -> bool {
        let ok = |name: &str| self.checks.iter().any(|c| c.name == name && c.ok);
        matches!(self.container, Container::Tarball(_))
            && GCE_RULES.iter().all(|n| ok(n))
            && ok("partition_table")
            && ok("bootable_partition")
            && !matches!(self.boot_loader, BootLoader::None)
    }
}

/// Inspects the image at `path`: a GCE tarball if it starts with the gzip magic, else a raw
/// image.
pub fn inspect_path(path: &Path) -> Result<Report, InspectError> {
    let name = path.display().to_string();
    let io = |source| InspectError::Io { path: name.clone(), source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic).map_err(io)?;
    file.rewind().map_err(io)?;
    if n == 2 && magic == [0x1f, 0x8b] {
        inspect_tarball(std::io::BufReader::new(file), &name)
    } else {
        inspect_raw(file, &name)
    }
}

/// Inspects a raw image; `name` is used in errors.
pub fn inspect_raw<R: Read + Seek>(reader: R, name: &str) -> Result<Report, InspectError> {
    let mut source = RawSource::new(reader).map_err(|source| InspectError::Io { path: name.into(), source })?;
    analyse(&mut source, Container::Raw, name)
}

/// Inspects a GCE tarball read as a stream; `name` is used in errors.
pub fn inspect_tarball<R: Read>(reader: R, name: &str) -> Result<Report, InspectError> {
    let (archive, disk) =
        tarball::read(reader).map_err(|source| InspectError::BadTarball { path: name.into(), source })?;
    let mut disk = disk.ok_or_else(|| InspectError::NoDiskInTarball { path: name.into() })?;
    analyse(&mut disk, Container::Tarball(archive), name)
}

fn check(checks: &mut Vec<Check>, name: &'static str, ok: bool, detail: impl Into<String>) {
    checks.push(Check { name, ok, detail: detail.into() });
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
    if kernel.eq_ignore_ascii_case("mboot.c32") {
        let args: Vec<&String> = append.iter().skip_while(|a| a.starts_with('-')).collect();
        let name = args.first()?.to_string();
        let cmdline = args.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
        return Some((name, cmdline));
    }
    let cmdline = std::iter::once(kernel.clone()).chain(append).collect::<Vec<_>>().join(" ");
    Some((kernel, cmdline))
}

fn analyse(source: &mut dyn DiskSource, container: Container, name: &str) -> Result<Report, InspectError> {
    let disk_size = source.size();
    let table = tables::read_table(source).ok_or_else(|| InspectError::NotADiskImage { path: name.into() })?;
    let mut checks = Vec::new();

    if let Container::Tarball(archive) = &container {
        let files: Vec<&tarball::Member> = archive.members.iter().collect();
        check(&mut checks, "gce_single_member", files.len() == 1, format!("{} member(s)", files.len()));
        let disk_member = files.iter().find(|m| m.name == "disk.raw");
        check(
            &mut checks,
            "gce_member_name",
            files.first().is_some_and(|m| m.name == "disk.raw"),
            format!("first member: {}", files.first().map_or("none", |m| m.name.as_str())),
        );
        let member = disk_member.or(files.first()).copied();
        let format_ok =
            member.is_some_and(|m| m.format == tarball::Format::OldGnu && !m.atime_or_ctime) && !archive.pax_headers;
        let detail = match member {
            Some(m) => format!(
                "{} format{}{}{}",
                m.format.name(),
                if m.sparse { ", sparse" } else { "" },
                if archive.pax_headers { ", PAX headers" } else { "" },
                if m.atime_or_ctime { ", atime/ctime set" } else { "" }
            ),
            None => "no member".into(),
        };
        check(&mut checks, "gce_format", format_ok, detail);
        check(
            &mut checks,
            "gce_size",
            disk_size > 0 && disk_size.is_multiple_of(GIB),
            format!(
                "{} bytes{}",
                disk_size,
                if disk_size.is_multiple_of(GIB) { "" } else { ", not a whole number of GiB" }
            ),
        );
    }

    let table_ok = table.problems.is_empty() && !table.partitions.is_empty();
    let table_detail = if table.problems.is_empty() {
        format!("{}, {} partition(s)", table.kind.to_uppercase(), table.partitions.len())
    } else {
        table.problems.join("; ")
    };
    check(&mut checks, "partition_table", table_ok, table_detail);
    let bootable = table.partitions.iter().find(|p| p.bootable || p.kind_name == "EFI system");
    check(
        &mut checks,
        "bootable_partition",
        bootable.is_some(),
        bootable.map_or("none marked bootable".to_string(), |p| format!("partition {}", p.number)),
    );

    // The filesystem: the first partition holding a FAT volume.
    let mut filesystem = None;
    let mut volume = None;
    for p in &table.partitions {
        if p.kind_name == "BIOS boot" || p.kind_name == "GPT protective" {
            continue;
        }
        let Some(base) = p.start.checked_mul(SECTOR) else { continue };
        if let Ok(v) = fat::Volume::open(source, base) {
            let files = v.root(source).unwrap_or_default();
            filesystem = Some(Filesystem {
                partition: p.number,
                fat_type: v.variant.name(),
                cluster_size: v.cluster_size(),
                volume_id: v.volume_id,
                oem: v.oem.clone(),
                files,
            });
            let hidden_ok = u64::from(v.hidden_sectors) == p.start;
            let backup_ok = v.variant != fat::Variant::Fat32
                || read_vec(source, base, 90).ok() == read_vec(source, base + 6 * SECTOR, 90).ok();
            check(
                &mut checks,
                "filesystem",
                hidden_ok && backup_ok,
                format!(
                    "{} in partition {}{}{}",
                    v.variant.name(),
                    p.number,
                    if hidden_ok { "" } else { ", hidden-sectors field differs from the partition start" },
                    if backup_ok { "" } else { ", backup boot sector differs" }
                ),
            );
            volume = Some(v);
            break;
        }
    }
    if volume.is_none() {
        check(&mut checks, "filesystem", false, "no FAT filesystem found");
    }

    // The boot loader: our MBR code (identical up to the patched fields), SYSLINUX, or other.
    let mbr = read_vec(source, 0, SECTOR as usize).unwrap_or_default();
    let ours = mbr.len() == 512
        && mbr[..bootstage::MBR_DAP_COUNT_OFFSET] == bootstage::MBR_CODE[..bootstage::MBR_DAP_COUNT_OFFSET];
    let files = filesystem.as_ref().map(|f| f.files.clone()).unwrap_or_default();
    let has_file = |n: &str| files.iter().any(|f| f.name.eq_ignore_ascii_case(n));
    let mut boot_area = None;
    let boot_loader = if ours {
        let lba = u64::from_le_bytes(
            mbr[bootstage::MBR_DAP_LBA_OFFSET..bootstage::MBR_DAP_LBA_OFFSET + 8].try_into().unwrap_or_default(),
        );
        boot_area = Some(lba);
        let stage2 = lba.checked_mul(SECTOR).and_then(|o| read_vec(source, o, (STAGE2_SECTORS * SECTOR) as usize).ok());
        let record_bytes = lba
            .checked_add(STAGE2_SECTORS)
            .and_then(|l| l.checked_mul(SECTOR))
            .and_then(|o| read_vec(source, o, bootstage::BOOT_RECORD_MAX).ok());
        let stage_version = stage2.as_ref().map_or(0, |s| u16::from_le_bytes([s[12], s[13]]));
        let record = match (&stage2, record_bytes) {
            (Some(s), Some(r)) => BootRecord::decode(&r).map_err(|e| e.to_string()).and_then(|rec| {
                if &s[4..12] != bootstage::STAGE2_SIGNATURE {
                    Err("stage 2 is missing from the boot area".into())
                } else if crc32fast::hash(s) != rec.stage2_crc {
                    Err("stage 2 does not match its checksum in the boot record".into())
                } else {
                    Ok(rec)
                }
            }),
            _ => Err("the boot area lies outside the disk".into()),
        };
        BootLoader::UnikernelMkimage { stage_version, record }
    } else if has_file("ldlinux.sys") || filesystem.as_ref().is_some_and(|f| f.oem == "SYSLINUX") {
        BootLoader::Syslinux
    } else if mbr.len() == 512 && mbr[..440].iter().all(|&b| b == 0) {
        BootLoader::None
    } else {
        BootLoader::Unknown
    };
    let boot_code_detail = match &boot_loader {
        BootLoader::UnikernelMkimage { stage_version, .. } => {
            format!("unikernel-mkimage boot stage {stage_version}, boot area at LBA {}", boot_area.unwrap_or(0))
        }
        BootLoader::Syslinux => "no unikernel-mkimage boot code; SYSLINUX found".into(),
        BootLoader::Unknown => "boot code of unknown origin".into(),
        BootLoader::None => "no boot code".into(),
    };
    check(&mut checks, "boot_code", matches!(boot_loader, BootLoader::UnikernelMkimage { .. }), boot_code_detail);

    // The kernel: the record's, or SYSLINUX's configured one.
    let record = match &boot_loader {
        BootLoader::UnikernelMkimage { record: Ok(r), .. } => Some(r.clone()),
        _ => None,
    };
    let (kernel_name, cmdline) = match (&record, &boot_loader) {
        (Some(r), _) => (Some(r.kernel_name.clone()), Some(r.cmdline.clone())),
        (None, BootLoader::Syslinux) => {
            let config = files
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case("syslinux.cfg"))
                .and_then(|e| volume.as_ref().and_then(|v| v.read(source, e, MAX_CONFIG_READ).ok()));
            match config.and_then(|c| syslinux_kernel(&String::from_utf8_lossy(&c))) {
                Some((n, c)) => (Some(n), Some(c)),
                None => (None, None),
            }
        }
        _ => (None, None),
    };
    let mut kernel = None;
    let mut kernel_bytes = None;
    if let (Some(v), Some(kname)) = (&volume, &kernel_name)
        && let Some(entry) = files.iter().find(|f| f.name.eq_ignore_ascii_case(kname) && !f.directory)
    {
        match v.read(source, entry, MAX_FILE_READ) {
            Ok(bytes) => {
                let (contiguous, _) = v.contiguous(source, entry).unwrap_or((false, 0));
                let header = multiboot::find_header(&bytes).ok();
                let load = LoadPlan::new(&bytes).map_err(|e| e.to_string());
                kernel = Some(KernelInfo {
                    name: entry.name.clone(),
                    size: u64::from(entry.size),
                    sha256: sha256(&bytes).iter().map(|b| format!("{b:02x}")).collect(),
                    contiguous,
                    header,
                    load,
                });
                kernel_bytes = Some((bytes, entry.clone()));
            }
            Err(e) => check(&mut checks, "kernel_file", false, format!("{kname}: {e}")),
        }
    }
    match (&kernel, &kernel_name) {
        (Some(k), _) => check(&mut checks, "kernel_file", true, format!("{} ({} bytes)", k.name, k.size)),
        (None, Some(n)) if !checks.iter().any(|c| c.name == "kernel_file") => {
            check(&mut checks, "kernel_file", false, format!("{n} is not on the filesystem"))
        }
        (None, None) => check(&mut checks, "kernel_file", false, "no kernel identified"),
        _ => {}
    }
    match &kernel {
        Some(KernelInfo { load: Ok(plan), .. }) => check(
            &mut checks,
            "kernel_multiboot",
            true,
            format!("{}, entry {:#010x}, {} segment(s)", plan.format, plan.entry, plan.segments.len()),
        ),
        Some(KernelInfo { load: Err(e), .. }) => check(&mut checks, "kernel_multiboot", false, e.clone()),
        None => check(&mut checks, "kernel_multiboot", false, "no kernel to check"),
    }

    // The boot record against the kernel on the filesystem.
    let record_check = match (&boot_loader, &record, &kernel_bytes, &kernel) {
        (BootLoader::UnikernelMkimage { record: Err(e), .. }, ..) => Err(e.clone()),
        (BootLoader::UnikernelMkimage { .. }, Some(rec), Some((bytes, entry)), Some(info)) => {
            verify_record(source, volume.as_ref(), rec, bytes, entry, info)
        }
        (BootLoader::UnikernelMkimage { .. }, ..) => Err("the boot record's kernel is not readable".into()),
        (BootLoader::Syslinux, ..) => Err("no unikernel-mkimage boot record; SYSLINUX found".into()),
        _ => Err("no unikernel-mkimage boot record".into()),
    };
    match record_check {
        Ok(detail) => check(&mut checks, "boot_record", true, detail),
        Err(detail) => check(&mut checks, "boot_record", false, detail),
    }
    Ok(Report { container, disk_size, table, filesystem, boot_loader, kernel, cmdline, checks })
}

/// Checks that the boot record loads exactly the kernel file: the runs read the file's sectors
/// at the right offsets, the checksum matches the bytes on disk, the entry point and zero
/// ranges follow the kernel's load plan, and the command line starts with the file's name.
fn verify_record(
    source: &mut dyn DiskSource,
    volume: Option<&fat::Volume>,
    rec: &BootRecord,
    bytes: &[u8],
    entry: &fat::Entry,
    info: &KernelInfo,
) -> Result<String, String> {
    let volume = volume.ok_or("no filesystem")?;
    let (contiguous, first_lba) = volume.contiguous(source, entry).ok_or("the kernel's cluster chain is broken")?;
    if !contiguous {
        return Err("the kernel's clusters are not contiguous, but the boot record assumes they are".into());
    }
    let plan = info.load.as_ref().map_err(|e| format!("the kernel has no load plan: {e}"))?;
    let extent = bootstage::FileExtent { file_offset: 0, lba: first_lba, len: bytes.len() as u64 };
    let (runs, zeros) = bootstage::plan_runs(plan, &[extent]);
    let expected: Vec<bootstage::Run> = runs.iter().map(|(r, _)| *r).collect();
    if expected != rec.runs {
        return Err("the boot record's runs do not match the kernel file's location and load plan".into());
    }
    if zeros != rec.zeros || plan.entry != rec.entry {
        return Err("the boot record's entry point or bss ranges do not match the kernel".into());
    }
    // Checksum over the bytes as they are on disk now.
    let mut on_disk = Vec::with_capacity(rec.runs.len());
    for run in &rec.runs {
        let start = run
            .lba
            .checked_mul(SECTOR)
            .and_then(|o| o.checked_add(u64::from(run.skip)))
            .ok_or("run outside the disk")?;
        on_disk.push(read_vec(source, start, run.len as usize).map_err(|_| "a run lies outside the disk".to_string())?);
    }
    if bootstage::load_checksum(on_disk.iter().map(Vec::as_slice)) != rec.checksum {
        return Err("the kernel's bytes on disk do not match the boot record's checksum".into());
    }
    if rec.kernel_size as usize != bytes.len() {
        return Err("the kernel's size differs from the boot record's".into());
    }
    let first_word = rec.cmdline.split(' ').next().unwrap_or_default();
    if !first_word.eq_ignore_ascii_case(&entry.name) {
        return Err(format!("the command line starts with {first_word:?}, not the kernel's name {:?}", entry.name));
    }
    Ok(format!("loads {} run(s) of {} to {:#010x}, checksum matches", rec.runs.len(), entry.name, rec.entry))
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

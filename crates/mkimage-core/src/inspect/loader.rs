//! Recognising the boot loader an image carries (this tool's boot stage, SYSLINUX, something
//! else, nothing), and checking this tool's boot record against the kernel file it should load.

use super::checks::{Check, CheckName};
use super::fat::{self, Volume};
use super::source::{DiskSource, read_vec};
use super::{BootLoader, Filesystem, KernelInfo};
use crate::boot::bios::{self, STAGE2_SECTORS};
use crate::boot::record::{self, BOOT_RECORD_MAX, BootRecord};
use crate::bytes::{SECTOR_BYTES, SECTOR_SIZE};
use crate::partition::mbr;

/// SYSLINUX's installer file, and the OEM name it writes in the boot sector.
const SYSLINUX_FILE: &str = "ldlinux.sys";
/// The OEM name SYSLINUX writes in the boot sector.
const SYSLINUX_OEM: &str = "SYSLINUX";

/// What the MBR and the filesystem say about the boot loader, and the `boot_code` check.
pub(super) fn recognise(source: &mut dyn DiskSource, filesystem: Option<&Filesystem>) -> (BootLoader, Check) {
    let lba0 = read_vec(source, 0, SECTOR_BYTES).unwrap_or_default();
    // Our MBR code, identical up to the fields the builder patches.
    let ours = lba0.len() == SECTOR_BYTES
        && lba0[..bios::MBR_DAP_COUNT.offset()] == bios::MBR_CODE[..bios::MBR_DAP_COUNT.offset()];
    let has_file = |name: &str| filesystem.is_some_and(|f| f.files.iter().any(|e| e.name.eq_ignore_ascii_case(name)));
    let (loader, detail) = if ours {
        let lba = bios::MBR_DAP_LBA.get(&lba0).unwrap_or(0);
        let (stage_version, record) = read_boot_area(source, lba);
        let detail = format!("unikernel-mkimage boot stage {stage_version}, boot area at LBA {lba}");
        (BootLoader::UnikernelMkimage { stage_version, record }, detail)
    } else if has_file(SYSLINUX_FILE) || filesystem.is_some_and(|f| f.oem == SYSLINUX_OEM) {
        (BootLoader::Syslinux, "no unikernel-mkimage boot code; SYSLINUX found".into())
    } else if lba0.len() == SECTOR_BYTES && lba0[..mbr::BOOT_CODE_LEN].iter().all(|&b| b == 0) {
        (BootLoader::None, "no boot code".into())
    } else {
        (BootLoader::Unknown, "boot code of unknown origin".into())
    };
    let ok = matches!(loader, BootLoader::UnikernelMkimage { .. });
    (loader, Check::new(CheckName::BootCode, ok, detail))
}

/// Stage 2's version and the boot record from the boot area at `lba`, the record checked
/// against stage 2.
fn read_boot_area(source: &mut dyn DiskSource, lba: u64) -> (u16, Result<BootRecord, String>) {
    let stage2 =
        lba.checked_mul(SECTOR_SIZE).and_then(|o| read_vec(source, o, (STAGE2_SECTORS * SECTOR_SIZE) as usize).ok());
    let record_bytes = lba
        .checked_add(STAGE2_SECTORS)
        .and_then(|l| l.checked_mul(SECTOR_SIZE))
        .and_then(|o| read_vec(source, o, BOOT_RECORD_MAX).ok());
    let stage_version = stage2.as_deref().and_then(|s| bios::STAGE2_VERSION.get(s)).unwrap_or(0);
    let record = match (&stage2, record_bytes) {
        (Some(s), Some(r)) => BootRecord::decode(&r).map_err(|e| e.to_string()).and_then(|rec| {
            if s[bios::STAGE2_SIGNATURE_AT] != bios::STAGE2_SIGNATURE[..] {
                Err("stage 2 is missing from the boot area".into())
            } else if crc32fast::hash(s) != rec.stage2_crc {
                Err("stage 2 does not match its checksum in the boot record".into())
            } else {
                Ok(rec)
            }
        }),
        _ => Err("the boot area lies outside the disk".into()),
    };
    (stage_version, record)
}

/// The `boot_record` check: for this tool's loader, whether its record loads exactly the
/// kernel file on the filesystem.
pub(super) fn record_check(
    source: &mut dyn DiskSource,
    loader: &BootLoader,
    volume: Option<&Volume>,
    kernel: Option<(&KernelInfo, &[u8], &fat::Entry)>,
) -> Check {
    let result = match (loader, kernel) {
        (BootLoader::UnikernelMkimage { record: Err(e), .. }, _) => Err(e.clone()),
        (BootLoader::UnikernelMkimage { record: Ok(rec), .. }, Some((info, bytes, entry))) => {
            verify_record(source, volume, rec, bytes, entry, info)
        }
        (BootLoader::UnikernelMkimage { .. }, None) => Err("the boot record's kernel is not readable".into()),
        (BootLoader::Syslinux, _) => Err("no unikernel-mkimage boot record; SYSLINUX found".into()),
        _ => Err("no unikernel-mkimage boot record".into()),
    };
    Check::from_result(CheckName::BootRecord, result)
}

/// Checks that the boot record loads exactly the kernel file: the runs read the file's sectors
/// at the right offsets, the checksum matches the bytes on disk, the entry point and zero
/// ranges follow the kernel's load plan, and the command line starts with the file's name.
fn verify_record(
    source: &mut dyn DiskSource,
    volume: Option<&Volume>,
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
    let extent = record::FileExtent { file_offset: 0, lba: first_lba, len: bytes.len() as u64 };
    let (runs, zeros) = record::plan_runs(plan, &[extent]);
    let expected: Vec<record::Run> = runs.iter().map(|(r, _)| *r).collect();
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
            .checked_mul(SECTOR_SIZE)
            .and_then(|o| o.checked_add(u64::from(run.skip)))
            .ok_or("run outside the disk")?;
        on_disk.push(read_vec(source, start, run.len as usize).map_err(|_| "a run lies outside the disk".to_string())?);
    }
    if record::load_checksum(on_disk.iter().map(Vec::as_slice)) != rec.checksum {
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

//! Recognising the boot loader an image carries (this tool's boot stage, of this version or
//! another; SYSLINUX; something else; nothing), and checking this tool's boot code and boot
//! record against what this version writes for the kernel found on the filesystem, byte for
//! byte.

use super::checks::{Check, CheckName};
use super::kernel::Found;
use super::source::{DiskSource, read_vec};
use super::{BootLoader, Filesystem};
use crate::boot::bios::{self, STAGE2_SECTORS};
use crate::boot::record::{self, BOOT_RECORD_MAX, BootRecord, LoadChecksum};
use crate::bytes::{SECTOR_BYTES, SECTOR_SIZE};
use crate::partition::mbr;
use crate::plan::{KernelOnDisk, loader_name, record_for};

/// SYSLINUX's installer file.
const SYSLINUX_FILE: &str = "ldlinux.sys";
/// The OEM name SYSLINUX writes in the boot sector.
const SYSLINUX_OEM: &str = "SYSLINUX";
/// Bytes read per step when checksumming runs on the disk.
const CHUNK: usize = 1 << 20;

/// The parts of this tool's boot code found on a disk.
pub(super) struct BootArea {
    /// LBA 0.
    lba0: Vec<u8>,
    /// The boot area's first LBA (from the MBR's disk address packet).
    lba: u64,
    /// Stage 2's sectors.
    stage2: Vec<u8>,
    /// The boot record's sectors.
    record: Vec<u8>,
}

impl BootArea {
    /// Whether stage 2 declares this version's boot stage.
    fn this_version(&self) -> bool {
        bios::STAGE2_VERSION.get(&self.stage2) == Some(bios::stage_version())
    }
}

/// This tool's boot area, when LBA 0's disk address packet leads to a stage 2.
fn find_boot_area(source: &mut dyn DiskSource, lba0: &[u8]) -> Option<BootArea> {
    let lba = bios::MBR_DAP_LBA.get(lba0)?;
    let stage2 = read_vec(source, lba.checked_mul(SECTOR_SIZE)?, (STAGE2_SECTORS * SECTOR_SIZE) as usize).ok()?;
    if stage2[bios::STAGE2_SIGNATURE_AT] != bios::STAGE2_SIGNATURE[..] {
        return None;
    }
    let record_at = lba.checked_add(STAGE2_SECTORS)?.checked_mul(SECTOR_SIZE)?;
    let record = read_vec(source, record_at, BOOT_RECORD_MAX).ok()?;
    Some(BootArea { lba0: lba0.to_vec(), lba, stage2, record })
}

/// What LBA 0, the boot area and the filesystem say about the boot loader, and the
/// `boot_code` check: for this version's boot stage, the MBR code and stage 2 must be exactly
/// what this version writes.
pub(super) fn recognise(
    source: &mut dyn DiskSource,
    filesystem: Option<&Filesystem>,
) -> (BootLoader, Option<BootArea>, Check) {
    let lba0 = read_vec(source, 0, SECTOR_BYTES).unwrap_or_default();
    let has_file = |name: &str| filesystem.is_some_and(|f| f.files.iter().any(|e| e.name.eq_ignore_ascii_case(name)));
    if let Some(area) = find_boot_area(source, &lba0) {
        let stage_version = bios::STAGE2_VERSION.get(&area.stage2).unwrap_or(0);
        let record = BootRecord::decode(&area.record).map_err(|e| e.to_string());
        let check = boot_code_check(&area, stage_version);
        return (BootLoader::UnikernelMkimage { stage_version, record }, Some(area), check);
    }
    let (loader, detail) = if has_file(SYSLINUX_FILE) || filesystem.is_some_and(|f| f.oem == SYSLINUX_OEM) {
        (BootLoader::Syslinux, "no unikernel-mkimage boot code; SYSLINUX found")
    } else if lba0.len() == SECTOR_BYTES && lba0[..mbr::BOOT_CODE_LEN].iter().all(|&b| b == 0) {
        (BootLoader::None, "no boot code")
    } else {
        (BootLoader::Unknown, "boot code of unknown origin")
    };
    (loader, None, Check::new(CheckName::BootCode, false, detail))
}

/// The first offset where `found` differs from `expected`.
fn first_difference(found: &[u8], expected: &[u8]) -> Option<usize> {
    found.iter().zip(expected).position(|(a, b)| a != b).or((found.len() != expected.len()).then_some(0))
}

/// Names the MBR code field at `offset`, for messages.
fn mbr_field(offset: usize) -> &'static str {
    match offset {
        o if (bios::MBR_STAGE2_CRC.offset()..bios::MBR_STAGE2_CRC.end()).contains(&o) => " (stage 2's CRC-32)",
        o if (bios::MBR_DAP_COUNT.offset()..bios::MBR_DAP_COUNT.end()).contains(&o) => {
            " (the INT 13h read's sector count)"
        }
        o if (bios::MBR_DAP_LBA.offset()..bios::MBR_DAP_LBA.end()).contains(&o) => " (the boot area's LBA)",
        o if o >= bios::MBR_DAP_OFFSET => " (the INT 13h disk address packet)",
        _ => "",
    }
}

fn boot_code_check(area: &BootArea, stage_version: u16) -> Check {
    let prefix = format!("unikernel-mkimage boot stage {stage_version}, boot area at LBA {}", area.lba);
    if !area.this_version() {
        return Check::new(
            CheckName::BootCode,
            true,
            format!("{prefix}; made by another version, so its code was not compared with this version's"),
        );
    }
    let result = bios::patched_mbr_code(area.lba).map_err(|e| e.to_string()).and_then(|mbr_code| {
        if let Some(at) = first_difference(&area.lba0[..mbr::BOOT_CODE_LEN], &mbr_code) {
            return Err(format!(
                "{prefix}: the MBR boot code differs from this version's at byte {at:#x}{}",
                mbr_field(at)
            ));
        }
        if let Some(at) = first_difference(&area.stage2, &bios::stage2_sectors()) {
            return Err(format!("{prefix}: stage 2 differs from this version's at byte {at:#x}"));
        }
        Ok(format!("{prefix}; MBR code and stage 2 are this version's, byte for byte"))
    });
    Check::from_result(CheckName::BootCode, result)
}

/// The `boot_record` check: for this tool's loader, whether its record loads exactly the
/// kernel file on the filesystem; for this version's records, whether every byte is what this
/// version writes for that kernel.
pub(super) fn record_check(
    source: &mut dyn DiskSource,
    loader: &BootLoader,
    area: Option<&BootArea>,
    kernel: Option<&Found>,
    boot_partition: Option<u8>,
) -> Check {
    let result = match (loader, area, kernel) {
        (BootLoader::UnikernelMkimage { record: Err(e), .. }, ..) => Err(e.clone()),
        (BootLoader::UnikernelMkimage { record: Ok(rec), .. }, Some(area), Some(found)) => {
            let plan_ok = rec.check_plan(record::FLAG_QUIET).map_err(|e| e.to_string());
            plan_ok.and_then(|()| verify_record(source, rec, found)).and_then(|checksum| {
                let same_version = area.this_version() && rec.loader_name == loader_name();
                if !same_version {
                    return Ok(format!(
                        "loads {} run(s) of {} to {:#010x}, checksum matches; written by {}, so not compared \
                         byte for byte with this version's record",
                        rec.runs.len(),
                        found.entry.name,
                        rec.entry,
                        rec.loader_name
                    ));
                }
                compare_record(rec, area, found, checksum, boot_partition)
            })
        }
        (BootLoader::UnikernelMkimage { .. }, ..) => Err("the boot record's kernel is not readable".into()),
        (BootLoader::Syslinux, ..) => Err("no unikernel-mkimage boot record; SYSLINUX found".into()),
        _ => Err("no unikernel-mkimage boot record".into()),
    };
    Check::from_result(CheckName::BootRecord, result)
}

/// Compares the record's sectors with what this version writes for the kernel found.
fn compare_record(
    rec: &BootRecord,
    area: &BootArea,
    found: &Found,
    checksum: (u32, u32),
    boot_partition: Option<u8>,
) -> Result<String, String> {
    let plan = found.info.load.as_ref().map_err(|e| format!("the kernel has no load plan: {e}"))?;
    let file = KernelOnDisk { name: &found.entry.name, size: found.entry.size, lba: found.first_lba, checksum };
    let quiet = rec.flags & record::FLAG_QUIET != 0;
    let expected = record_for(plan, &file, &rec.cmdline, quiet, boot_partition.unwrap_or(0));
    let mut bytes = expected.encode().map_err(|e| e.to_string())?;
    bytes.resize(BOOT_RECORD_MAX, 0);
    if let Some(at) = first_difference(&area.record, &bytes) {
        return Err(format!(
            "the boot record differs at byte {at:#x} from what this version writes for {}",
            found.entry.name
        ));
    }
    Ok(format!(
        "loads {} run(s) of {} to {:#010x}, checksum matches; every byte is what this version writes",
        rec.runs.len(),
        found.entry.name,
        rec.entry
    ))
}

/// Checks that the boot record loads exactly the kernel file: the runs read the file's sectors
/// at the right offsets, the checksum matches the bytes on disk, the entry point and zero
/// ranges follow the kernel's load plan, and the command line starts with the file's name.
/// Returns the checksum of the bytes on disk.
fn verify_record(source: &mut dyn DiskSource, rec: &BootRecord, found: &Found) -> Result<(u32, u32), String> {
    let (info, entry) = (&found.info, &found.entry);
    if !info.contiguous {
        return Err("the kernel's clusters are not contiguous, but the boot record assumes they are".into());
    }
    let plan = info.load.as_ref().map_err(|e| format!("the kernel has no load plan: {e}"))?;
    let extent = record::FileExtent { file_offset: 0, lba: found.first_lba, len: u64::from(entry.size) };
    let (runs, zeros) = record::plan_runs(plan, &[extent]);
    let expected: Vec<record::Run> = runs.iter().map(|(r, _)| *r).collect();
    if expected != rec.runs {
        return Err("the boot record's runs do not match the kernel file's location and load plan".into());
    }
    if zeros != rec.zeros || plan.entry != rec.entry {
        return Err("the boot record's entry point or bss ranges do not match the kernel".into());
    }
    // Checksum over the bytes as they are on disk now, a chunk at a time.
    let mut sum = LoadChecksum::default();
    let mut buf = vec![0u8; CHUNK];
    for run in &rec.runs {
        let start = run.lba.checked_mul(SECTOR_SIZE).and_then(|o| o.checked_add(u64::from(run.skip)));
        let start = start.ok_or("a run lies outside the disk")?;
        let mut done = 0u64;
        while done < u64::from(run.len) {
            let n = (u64::from(run.len) - done).min(CHUNK as u64) as usize;
            source.read_at(start + done, &mut buf[..n]).map_err(|_| "a run lies outside the disk".to_string())?;
            sum.update(&buf[..n]);
            done += n as u64;
        }
        sum.end_run();
    }
    if sum.value() != rec.checksum {
        return Err("the kernel's bytes on disk do not match the boot record's checksum".into());
    }
    if rec.kernel_size != entry.size {
        return Err("the kernel's size differs from the boot record's".into());
    }
    let first_word = rec.cmdline.split(' ').next().unwrap_or_default();
    if !first_word.eq_ignore_ascii_case(&entry.name) {
        return Err(format!("the command line starts with {first_word:?}, not the kernel's name {:?}", entry.name));
    }
    Ok(sum.value())
}

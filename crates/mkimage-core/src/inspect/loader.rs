//! Recognising the boot loaders an image carries (this tool's BIOS stage and UEFI loader, of
//! this version or another; SYSLINUX; something else; nothing), the firmware it boots from, and
//! checking this tool's boot code, UEFI loader and boot record against what this version writes
//! for the kernel found on the filesystem, byte for byte.

use super::checks::{Check, CheckName};
use super::kernel::Found;
use super::source::{DiskSource, read_vec};
use super::{BootLoader, Filesystem, fat};
use crate::boot::bios::{self, STAGE2_SECTORS};
use crate::boot::record::{BOOT_RECORD_MAX, BootRecord, LoadChecksum};
use crate::boot::{Firmware, record, uefi};
use crate::bytes::{SECTOR_BYTES, SECTOR_SIZE};
use crate::partition::mbr;
use crate::plan::{KernelOnDisk, loader_name, record_for};

/// SYSLINUX's installer file.
const SYSLINUX_FILE: &str = "ldlinux.sys";
/// The OEM name SYSLINUX writes in the boot sector.
const SYSLINUX_OEM: &str = "SYSLINUX";
/// Bytes read per step when checksumming runs on the disk.
const CHUNK: usize = 1 << 20;
/// Most bytes of a `BOOTX64.EFI` read (this tool's is a few dozen KiB).
const LOADER_READ_LIMIT: u64 = 1 << 20;
/// The loader's path as the firmware writes it, for messages.
const LOADER_PATH_SHOWN: &str = "/EFI/BOOT/BOOTX64.EFI";

/// The parts of this tool's BIOS stage found on a disk.
pub(super) struct BootArea {
    /// The boot area's first LBA (from the MBR's disk address packet).
    lba: u64,
    /// Stage 2's sectors.
    stage2: Vec<u8>,
    /// The boot record's sectors.
    record: Vec<u8>,
}

impl BootArea {
    /// Stage 2's version.
    fn version(&self) -> u16 {
        bios::STAGE2_VERSION.get(&self.stage2).unwrap_or(0)
    }
}

/// This tool's boot stages as found on a disk.
pub(super) struct Stages {
    /// LBA 0.
    lba0: Vec<u8>,
    /// The BIOS stage.
    bios: Option<BootArea>,
    /// The UEFI loader file, when it is this tool's.
    uefi: Option<Vec<u8>>,
    /// Whether `\EFI\BOOT\BOOTX64.EFI` exists (this tool's or not).
    efi_file: bool,
}

impl Stages {
    /// The firmware choice this tool's stages make, if any of them is there.
    fn firmware(&self) -> Option<Firmware> {
        match (self.bios.is_some(), self.uefi.is_some()) {
            (true, true) => Some(Firmware::Hybrid),
            (true, false) => Some(Firmware::Bios),
            (false, true) => Some(Firmware::Uefi),
            (false, false) => None,
        }
    }

    /// The record the stages follow, as stored: the BIOS stage's sectors, else the UEFI
    /// loader's record area.
    fn record_bytes(&self) -> Option<&[u8]> {
        if let Some(area) = &self.bios {
            return Some(&area.record);
        }
        let range = uefi::record_range().ok()?;
        self.uefi.as_ref().and_then(|file| file.get(range))
    }

    /// Whether the stage holding the record is this version's.
    fn this_version(&self) -> bool {
        match (&self.bios, &self.uefi) {
            (Some(area), _) => area.version() == bios::stage_version(),
            (None, Some(file)) => uefi::LOADER_VERSION.get(file) == Some(uefi::loader_version()),
            (None, None) => false,
        }
    }

    /// Whether LBA 0 holds this version's MBR code of a UEFI-only image.
    fn says_uefi_only(&self) -> bool {
        self.lba0.get(..mbr::BOOT_CODE_LEN) == Some(&bios::NO_BIOS_CODE[..])
    }

    /// The firmware the disk boots from: BIOS when LBA 0 holds boot code that is not the
    /// UEFI-only notice; UEFI when `\EFI\BOOT\BOOTX64.EFI` exists.
    pub(super) fn boots_from(&self) -> Vec<Firmware> {
        let code = self.lba0.get(..mbr::BOOT_CODE_LEN).unwrap_or_default();
        let bios = code.iter().any(|&b| b != 0) && !self.says_uefi_only();
        [(bios, Firmware::Bios), (self.efi_file, Firmware::Uefi)]
            .into_iter()
            .filter_map(|(present, f)| present.then_some(f))
            .collect()
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
    Some(BootArea { lba, stage2, record })
}

/// Whether `file` is this tool's UEFI loader (of any version).
fn is_our_loader(file: &[u8]) -> bool {
    file.starts_with(b"MZ")
        && file.get(uefi::HEADER_AT..uefi::HEADER_AT + uefi::LOADER_SIGNATURE.len())
            == Some(&uefi::LOADER_SIGNATURE[..])
}

/// What LBA 0, the boot area and the filesystem say about the boot loaders, and the
/// `boot_code` and `uefi_loader` checks: this version's stages must be exactly what this
/// version writes.
pub(super) fn recognise(
    source: &mut dyn DiskSource,
    volume: Option<&fat::Volume>,
    filesystem: Option<&Filesystem>,
) -> (BootLoader, Stages, [Check; 2]) {
    let lba0 = read_vec(source, 0, SECTOR_BYTES).unwrap_or_default();
    let bios = find_boot_area(source, &lba0);
    let efi_entry = match (volume, filesystem) {
        (Some(v), Some(f)) => v.lookup(source, &f.files, uefi::LOADER_PATH).ok().flatten().filter(|e| !e.directory),
        _ => None,
    };
    let efi_bytes = match (volume, &efi_entry) {
        (Some(v), Some(entry)) => v.read(source, entry, LOADER_READ_LIMIT).ok(),
        _ => None,
    };
    let uefi = efi_bytes.filter(|b| is_our_loader(b));
    let stages = Stages { lba0, bios, uefi, efi_file: efi_entry.is_some() };
    let checks = [boot_code_check(&stages, filesystem), uefi_loader_check(&stages)];
    let loader = if stages.bios.is_some() || stages.uefi.is_some() {
        let record = stages
            .record_bytes()
            .ok_or_else(|| "the boot record is not readable".to_string())
            .and_then(|bytes| BootRecord::decode(bytes).map_err(|e| e.to_string()));
        BootLoader::UnikernelMkimage {
            stage_version: stages.bios.as_ref().map(BootArea::version),
            uefi_loader_version: stages.uefi.as_ref().and_then(|f| uefi::LOADER_VERSION.get(f)),
            record,
        }
    } else if is_syslinux(filesystem) {
        BootLoader::Syslinux
    } else if stages.lba0.len() == SECTOR_BYTES && stages.lba0[..mbr::BOOT_CODE_LEN].iter().all(|&b| b == 0) {
        BootLoader::None
    } else {
        BootLoader::Unknown
    };
    (loader, stages, checks)
}

fn is_syslinux(filesystem: Option<&Filesystem>) -> bool {
    filesystem
        .is_some_and(|f| f.oem == SYSLINUX_OEM || f.files.iter().any(|e| e.name.eq_ignore_ascii_case(SYSLINUX_FILE)))
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

/// The `boot_code` check: this tool's BIOS stage, this version's byte for byte, or this
/// version's notice that the disk boots only from UEFI.
fn boot_code_check(stages: &Stages, filesystem: Option<&Filesystem>) -> Check {
    let Some(area) = &stages.bios else {
        let (ok, detail) = if stages.says_uefi_only() {
            (true, "no BIOS boot stage: the MBR code (this version's) says the disk boots only from UEFI firmware")
        } else if is_syslinux(filesystem) {
            (false, "no unikernel-mkimage boot code; SYSLINUX found")
        } else if stages.lba0.len() == SECTOR_BYTES && stages.lba0[..mbr::BOOT_CODE_LEN].iter().all(|&b| b == 0) {
            (false, "no boot code")
        } else {
            (false, "boot code of unknown origin")
        };
        return Check::new(CheckName::BootCode, ok, detail);
    };
    let stage_version = area.version();
    let prefix = format!("unikernel-mkimage boot stage {stage_version}, boot area at LBA {}", area.lba);
    if stage_version != bios::stage_version() {
        return Check::new(
            CheckName::BootCode,
            true,
            format!("{prefix}; made by another version, so its code was not compared with this version's"),
        );
    }
    let result = bios::patched_mbr_code(area.lba).map_err(|e| e.to_string()).and_then(|mbr_code| {
        if let Some(at) = first_difference(&stages.lba0[..mbr::BOOT_CODE_LEN], &mbr_code) {
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

/// The `uefi_loader` check: this tool's UEFI loader, this version's byte for byte outside its
/// boot record, and carrying the same record as the BIOS stage when there is one.
fn uefi_loader_check(stages: &Stages) -> Check {
    let Some(file) = &stages.uefi else {
        let (ok, detail) = if stages.efi_file {
            (false, format!("{LOADER_PATH_SHOWN} is not unikernel-mkimage's UEFI loader"))
        } else if stages.says_uefi_only() {
            (false, "no UEFI loader, though the MBR code says the disk boots only from UEFI firmware".to_string())
        } else {
            (true, "no UEFI loader (the disk does not boot from UEFI firmware)".to_string())
        };
        return Check::new(CheckName::UefiLoader, ok, detail);
    };
    let version = uefi::LOADER_VERSION.get(file).unwrap_or(0);
    let prefix = format!("unikernel-mkimage UEFI loader {version} at {LOADER_PATH_SHOWN}");
    if version != uefi::loader_version() {
        return Check::new(
            CheckName::UefiLoader,
            true,
            format!("{prefix}; made by another version, so its code was not compared with this version's"),
        );
    }
    let result = uefi::record_range().map_err(|e| e.to_string()).and_then(|range| {
        let code = uefi::LOADER_CODE;
        if file.len() != code.len() {
            return Err(format!("{prefix}: it is {} bytes; this version's is {}", file.len(), code.len()));
        }
        let outside = |b: &[u8]| [b[..range.start].to_vec(), b[range.end..].to_vec()].concat();
        if let Some(at) = first_difference(&outside(file), &outside(code)) {
            let at = if at < range.start { at } else { at + range.len() };
            return Err(format!("{prefix}: its code differs from this version's at byte {at:#x}"));
        }
        if let Some(area) = &stages.bios
            && let Some(at) = first_difference(&file[range.clone()], &area.record)
        {
            return Err(format!("{prefix}: its boot record differs from the BIOS stage's at byte {at:#x}"));
        }
        let with = if stages.bios.is_some() { ", with the BIOS stage's boot record" } else { "" };
        Ok(format!("{prefix}; this version's, byte for byte{with}"))
    });
    Check::from_result(CheckName::UefiLoader, result)
}

/// The `boot_record` check: for this tool's stages, whether their record loads exactly the
/// kernel file on the filesystem; for this version's records, whether every byte is what this
/// version writes for that kernel.
pub(super) fn record_check(
    source: &mut dyn DiskSource,
    loader: &BootLoader,
    stages: &Stages,
    kernel: Option<&Found>,
    boot_partition: Option<u8>,
) -> Check {
    let result = match (loader, stages.firmware(), stages.record_bytes(), kernel) {
        (BootLoader::UnikernelMkimage { record: Err(e), .. }, ..) => Err(e.clone()),
        (BootLoader::UnikernelMkimage { record: Ok(rec), .. }, Some(firmware), Some(stored), Some(found)) => {
            let plan_ok = rec.check_plan(firmware.allowed_record_flags()).map_err(|e| e.to_string());
            plan_ok.and_then(|()| verify_record(source, rec, found)).and_then(|checksum| {
                let same_version = stages.this_version() && rec.loader_name == loader_name();
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
                let expected = ExpectedRecord { firmware, boot_partition: boot_partition.unwrap_or(0), checksum };
                compare_record(rec, stored, found, &expected)
            })
        }
        (BootLoader::UnikernelMkimage { .. }, ..) => Err("the boot record's kernel is not readable".into()),
        (BootLoader::Syslinux, ..) => Err("no unikernel-mkimage boot record; SYSLINUX found".into()),
        _ => Err("no unikernel-mkimage boot record".into()),
    };
    Check::from_result(CheckName::BootRecord, result)
}

/// What the record this version writes depends on besides the kernel.
struct ExpectedRecord {
    firmware: Firmware,
    boot_partition: u8,
    checksum: (u32, u32),
}

/// Compares the stored record with what this version writes for the kernel found.
fn compare_record(rec: &BootRecord, stored: &[u8], found: &Found, expected: &ExpectedRecord) -> Result<String, String> {
    let plan = found.info.load.as_ref().map_err(|e| format!("the kernel has no load plan: {e}"))?;
    let file = KernelOnDisk {
        name: &found.entry.name,
        size: found.entry.size,
        lba: found.first_lba,
        checksum: expected.checksum,
    };
    let quiet = rec.flags & record::FLAG_QUIET != 0;
    let record = record_for(plan, &file, &rec.cmdline, quiet, expected.boot_partition, expected.firmware);
    let mut bytes = record.encode().map_err(|e| e.to_string())?;
    bytes.resize(BOOT_RECORD_MAX, 0);
    if let Some(at) = first_difference(stored, &bytes) {
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

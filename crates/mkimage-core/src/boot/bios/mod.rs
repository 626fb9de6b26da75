//! The BIOS boot stage: the MBR code and stage 2, x86 real-mode code assembled from `mbr.asm`
//! and `stage2.asm` in this directory (contracts at the top of each), committed as `*.bin` and
//! embedded here, so the crate builds without an assembler. `nobios.asm` is the MBR code of
//! UEFI-only images, which only says so.
//!
//! Boot flow: the BIOS runs the MBR code, which reads the *boot area* (stage 2 followed by the
//! boot record; in the MBR gap or the GPT BIOS boot partition) to 0000:8000 and jumps to stage 2.
//! Stage 2 checks the record, reads the kernel's sectors (the record's runs) and copies them to
//! their physical addresses, zeroes the zero ranges (bss), checks a checksum of everything it
//! loaded, and enters the kernel the Multiboot 1 way.

use crate::Error;
use crate::boot::record::{BOOT_RECORD_MAX, RECORD_VERSION};
use crate::bytes::{Le, SECTOR_BYTES, SECTOR_SIZE};
use crate::partition::mbr::BOOT_CODE_LEN;

/// The MBR boot code: the first 440 bytes of LBA 0.
pub const MBR_CODE: &[u8; BOOT_CODE_LEN] = include_bytes!("mbr.bin");
/// The MBR code of a UEFI-only image (`nobios.asm`): one line saying that the disk boots only
/// from UEFI firmware, then INT 18h, so the BIOS tries its next boot device.
pub const NO_BIOS_CODE: &[u8; BOOT_CODE_LEN] = include_bytes!("nobios.bin");
/// Stage 2's code, before padding to [`STAGE2_SECTORS`].
pub const STAGE2_CODE: &[u8] = include_bytes!("stage2.bin");
/// Offset in the MBR code of the INT 13h disk address packet the MBR code reads stage 2 with.
pub const MBR_DAP_OFFSET: usize = 0x1a8;
/// The CRC-32 of stage 2's sectors, which the MBR code checks before running it.
pub const MBR_STAGE2_CRC: Le<u32> = Le::at(MBR_DAP_OFFSET - 4);
/// The value the assembled MBR code holds at [`MBR_STAGE2_CRC`] until patched ("CRC?").
pub const MBR_CRC_PLACEHOLDER: u32 = 0x3f43_5243;
/// The DAP's length byte (16).
const MBR_DAP_SIZE: Le<u8> = Le::at(MBR_DAP_OFFSET);
/// The DAP's sector count, patched to [`BOOT_AREA_SECTORS`].
pub const MBR_DAP_COUNT: Le<u16> = Le::at(MBR_DAP_OFFSET + 2);
/// The DAP's LBA, patched to the first LBA of the boot area.
pub const MBR_DAP_LBA: Le<u64> = Le::at(MBR_DAP_OFFSET + 8);
/// Length of an INT 13h extended-read disk address packet.
const DAP_LEN: u8 = 16;
/// The value the assembled MBR code holds at [`MBR_DAP_LBA`] until patched ("FUKM_LBA"),
/// checked before patching so that a stale offset cannot corrupt the code.
pub const MBR_LBA_PLACEHOLDER: u64 = 0x4142_4c5f_4d4b_5546;
/// Sectors reserved for stage 2's code.
pub const STAGE2_SECTORS: u64 = 16;
/// Sectors reserved for the boot record.
pub const BOOT_RECORD_SECTORS: u64 = BOOT_RECORD_MAX as u64 / SECTOR_SIZE;
/// Sectors of the boot area: stage 2 followed by the boot record.
pub const BOOT_AREA_SECTORS: u64 = STAGE2_SECTORS + BOOT_RECORD_SECTORS;
/// Signature stage 2 carries at [`STAGE2_SIGNATURE_AT`] (checked by the MBR code).
pub const STAGE2_SIGNATURE: &[u8; 8] = b"UKMKSTG2";
/// Where stage 2's signature lies.
pub const STAGE2_SIGNATURE_AT: std::ops::Range<usize> = 4..12;
/// Stage 2's version.
pub const STAGE2_VERSION: Le<u16> = Le::at(12);
/// The boot-record format stage 2 reads.
pub const STAGE2_RECORD_VERSION: Le<u16> = Le::at(14);
/// Most sectors stage 2 reads per INT 13h call (so that a run's sector count can be any u32).
pub const MAX_SECTORS_PER_READ: u32 = 127;

/// The version of the embedded boot stage, as stage 2 declares it.
pub fn stage_version() -> u16 {
    STAGE2_VERSION.get(STAGE2_CODE).unwrap_or(0)
}

/// Stage 2 padded to its reserved sectors, as written to the disk.
pub fn stage2_sectors() -> Vec<u8> {
    let mut bytes = STAGE2_CODE.to_vec();
    bytes.resize(STAGE2_SECTORS as usize * SECTOR_BYTES, 0);
    bytes
}

/// The MBR code with the boot area's location and stage 2's CRC-32 patched in.
///
/// # Errors
/// [`Error::Internal`] if the embedded MBR code has no patch fields where this module expects
/// them (a stale `mbr.bin`).
pub fn patched_mbr_code(boot_area_lba: u64) -> Result<[u8; BOOT_CODE_LEN], Error> {
    let mut code = *MBR_CODE;
    if MBR_DAP_LBA.get(&code) != Some(MBR_LBA_PLACEHOLDER)
        || MBR_DAP_SIZE.get(&code) != Some(DAP_LEN)
        || MBR_STAGE2_CRC.get(&code) != Some(MBR_CRC_PLACEHOLDER)
    {
        return Err(Error::Internal("the embedded MBR code has no patch fields where expected".into()));
    }
    MBR_DAP_COUNT.put(&mut code, BOOT_AREA_SECTORS as u16);
    MBR_DAP_LBA.put(&mut code, boot_area_lba);
    MBR_STAGE2_CRC.put(&mut code, stage2_crc());
    Ok(code)
}

/// CRC-32 of stage 2's sectors as written (recorded in the MBR code and the boot record).
pub fn stage2_crc() -> u32 {
    crc32fast::hash(&stage2_sectors())
}

/// Checks that the embedded stage 2 is what this module expects (signature, record format,
/// size).
///
/// # Errors
/// [`Error::Internal`] if the embedded stage 2 does not match this module.
pub fn check_stage2() -> Result<(), Error> {
    let signature_ok = STAGE2_CODE.get(STAGE2_SIGNATURE_AT) == Some(&STAGE2_SIGNATURE[..]);
    let fits = STAGE2_CODE.len() as u64 <= STAGE2_SECTORS * SECTOR_SIZE;
    if !signature_ok || STAGE2_RECORD_VERSION.get(STAGE2_CODE) != Some(RECORD_VERSION) || !fits {
        return Err(Error::Internal("the embedded stage 2 does not match this library".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_boot_code_is_consistent() {
        check_stage2().unwrap();
        assert_eq!(stage_version(), 2);
        let code = patched_mbr_code(64).unwrap();
        assert_eq!(MBR_DAP_COUNT.get(&code), Some(32));
        assert_eq!(MBR_DAP_LBA.get(&code), Some(64));
        assert_eq!(MBR_STAGE2_CRC.get(&code), Some(crc32fast::hash(&stage2_sectors())));
        assert_eq!(stage2_sectors().len(), 8192);
    }

    /// The record offsets named in `record::field` are the ones stage 2 reads: every
    /// `R_NAME equ RECORD + 0xNN` line of its source is compared with the constant.
    #[test]
    fn record_offsets_match_stage2_source() {
        let required = ["R_VERSION", "R_TOTAL_LEN", "R_CRC", "R_FLAGS", "R_RUNS", "R_STAGE2_CRC", "R_KERNEL_LBA"];
        crate::boot::record::check_source_offsets(include_str!("stage2.asm"), "stage2.asm", &required);
    }
}

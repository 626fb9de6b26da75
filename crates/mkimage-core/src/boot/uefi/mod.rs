//! The UEFI loader: an x86-64 EFI application assembled from `bootx64.asm` in this directory
//! (contract at its top), committed as `bootx64.bin` and embedded here, so the crate builds
//! without an assembler.
//!
//! Boot flow: the firmware's boot manager runs `\EFI\BOOT\BOOTX64.EFI` from the FAT partition
//! (the removable-media path, the one GCE's firmware looks for). The loader checks the boot
//! record it carries in its last [`RECORD_MAX`] bytes (the same record the BIOS stage follows),
//! reads the kernel file through the firmware's file system, checks the checksum, reserves the
//! kernel's memory, leaves the firmware with ExitBootServices, copies the kernel into place and
//! enters it the Multiboot 1 way from 32-bit protected mode.

use crate::Error;
use crate::boot::record::{BOOT_RECORD_MAX, RECORD_VERSION};
use crate::bytes::Le;

/// The loader as assembled, with an all-zero boot record.
pub const LOADER_CODE: &[u8] = include_bytes!("bootx64.bin");
/// The loader's path on the FAT filesystem, from its root (`\EFI\BOOT\BOOTX64.EFI`).
pub const LOADER_PATH: &str = "EFI/BOOT/BOOTX64.EFI";
/// The directories holding the loader, in the order they are created.
pub const LOADER_DIRS: [&str; 2] = ["EFI", "EFI/BOOT"];
/// Where the loader header lies in the file: the start of its `.text` section.
pub const HEADER_AT: usize = 0x1000;
/// Signature at the start of the loader header.
pub const LOADER_SIGNATURE: &[u8; 8] = b"UKMKEFI1";
/// The loader's version.
pub const LOADER_VERSION: Le<u16> = Le::at(HEADER_AT + 8);
/// The boot-record format the loader reads.
pub const LOADER_RECORD_VERSION: Le<u16> = Le::at(HEADER_AT + 10);
/// Offset of the boot record in the file.
pub const LOADER_RECORD_OFFSET: Le<u32> = Le::at(HEADER_AT + 12);
/// Bytes reserved for the boot record.
pub const LOADER_RECORD_LEN: Le<u32> = Le::at(HEADER_AT + 16);
/// Bytes reserved for the record in the loader file.
pub const RECORD_MAX: usize = BOOT_RECORD_MAX;

/// The embedded loader's version.
pub fn loader_version() -> u16 {
    LOADER_VERSION.get(LOADER_CODE).unwrap_or(0)
}

/// Where the boot record lies in the loader file, checked against the embedded loader: its
/// signature, record format and record area (the last [`RECORD_MAX`] bytes).
///
/// # Errors
/// [`Error::Internal`] if the embedded loader does not match this module (a stale
/// `bootx64.bin`).
pub fn record_range() -> Result<std::ops::Range<usize>, Error> {
    let stale = || Error::Internal("the embedded UEFI loader does not match this library".into());
    let signature = LOADER_CODE.get(HEADER_AT..HEADER_AT + LOADER_SIGNATURE.len()).ok_or_else(stale)?;
    let offset = LOADER_RECORD_OFFSET.get(LOADER_CODE).ok_or_else(stale)? as usize;
    let len = LOADER_RECORD_LEN.get(LOADER_CODE).ok_or_else(stale)? as usize;
    if signature != LOADER_SIGNATURE
        || LOADER_RECORD_VERSION.get(LOADER_CODE) != Some(RECORD_VERSION)
        || len != RECORD_MAX
        || offset.checked_add(len) != Some(LOADER_CODE.len())
        || LOADER_CODE[offset..].iter().any(|&b| b != 0)
    {
        return Err(stale());
    }
    Ok(offset..offset + len)
}

/// The loader file as written to the image: the embedded loader with `record` (an encoded boot
/// record, at most [`RECORD_MAX`] bytes) in its record area.
///
/// # Errors
/// [`Error::Internal`] for a stale embedded loader; [`Error::BootRecordTooLarge`] if the record
/// does not fit.
pub fn loader_file(record: &[u8]) -> Result<Vec<u8>, Error> {
    let range = record_range()?;
    if record.len() > range.len() {
        return Err(Error::BootRecordTooLarge { len: record.len(), max: range.len() });
    }
    let mut file = LOADER_CODE.to_vec();
    file[range.start..range.start + record.len()].copy_from_slice(record);
    Ok(file)
}

/// The size of the loader file.
pub const fn loader_size() -> u64 {
    LOADER_CODE.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_loader_is_consistent() {
        let range = record_range().unwrap();
        assert_eq!(range.end, LOADER_CODE.len());
        assert_eq!(loader_version(), 1);
        assert_eq!(&LOADER_CODE[..2], b"MZ");
        let file = loader_file(&[0xab; 100]).unwrap();
        assert_eq!(file.len(), LOADER_CODE.len());
        assert_eq!(&file[range.start..range.start + 100], &[0xab; 100][..]);
        assert!(file[range.start + 100..].iter().all(|&b| b == 0));
        assert!(loader_file(&vec![0; RECORD_MAX + 1]).is_err());
    }

    /// The record offsets named in `record::field` are the ones the loader reads: every
    /// `R_NAME equ 0xNN` line of its source is compared with the constant.
    #[test]
    fn record_offsets_match_loader_source() {
        let required = ["R_VERSION", "R_TOTAL_LEN", "R_CRC", "R_FLAGS", "R_RUNS", "R_KERNEL_LBA", "R_VIDEO_WIDTH"];
        crate::boot::record::check_source_offsets(include_str!("bootx64.asm"), "bootx64.asm", &required);
    }
}

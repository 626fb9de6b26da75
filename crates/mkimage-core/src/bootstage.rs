//! The BIOS boot stage: MBR boot code, stage 2 and the boot record that tells stage 2 what to
//! load. This module owns their on-disk sizes; the boot code itself arrives with the boot-stage
//! work, and until then the reserved areas stay zero.

/// Sectors reserved for stage 2's code.
pub const STAGE2_SECTORS: u64 = 16;
/// Sectors reserved for the boot record.
pub const BOOT_RECORD_SECTORS: u64 = 16;
/// Sectors of the boot area: stage 2 followed by the boot record.
pub const BOOT_AREA_SECTORS: u64 = STAGE2_SECTORS + BOOT_RECORD_SECTORS;

//! Partition-table writers: the MBR of the MBR layout, and the protective MBR plus primary and
//! backup GPT of the GPT layout. They place bytes where the [`Layout`] says; every value comes
//! from the layout or the plan's identifiers.

use std::collections::BTreeMap;

use ::gpt as gpt_crate;

use super::{gpt, mbr};
use crate::Error;
use crate::ident::{Guid, Identifiers};
use crate::layout::{GptLayout, Layout, TableLayout};
use crate::sparse::SparseDisk;

/// Heads per cylinder of the conventional translated geometry used for CHS fields.
const CHS_HEADS: u64 = 255;
/// Sectors per track of the conventional translated geometry.
const CHS_SECTORS: u64 = 63;
/// Highest cylinder a CHS field can encode; addresses beyond it are written as the maximum.
const CHS_MAX_CYLINDER: u64 = 1023;

/// The CHS address of an LBA in the conventional 255-head, 63-sector geometry, saturating at
/// the largest encodable address, as partitioning tools write for LBA-addressed disks.
fn chs(lba: u64) -> mbrman::CHS {
    let cylinder = lba / (CHS_HEADS * CHS_SECTORS);
    if cylinder > CHS_MAX_CYLINDER {
        return mbrman::CHS::new(CHS_MAX_CYLINDER as u16, (CHS_HEADS - 1) as u8, CHS_SECTORS as u8);
    }
    let head = (lba / CHS_SECTORS) % CHS_HEADS;
    let sector = lba % CHS_SECTORS + 1;
    mbrman::CHS::new(cylinder as u16, head as u8, sector as u8)
}

fn partition_error(what: &str, err: impl std::fmt::Display) -> Error {
    Error::Internal(format!("writing the {what}: {err}"))
}

/// Writes the partition table(s) of `layout` with `boot_code` in LBA 0.
pub(crate) fn write_partition_table(
    disk: &mut SparseDisk,
    layout: &Layout,
    ids: &Identifiers,
    boot_code: &[u8; mbr::BOOT_CODE_LEN],
) -> Result<(), Error> {
    match &layout.table {
        TableLayout::Mbr => write_mbr(disk, layout, ids, boot_code),
        TableLayout::Gpt(gpt_layout) => write_gpt(disk, layout, gpt_layout, ids, boot_code),
    }
}

fn write_mbr(
    disk: &mut SparseDisk,
    layout: &Layout,
    ids: &Identifiers,
    boot_code: &[u8; mbr::BOOT_CODE_LEN],
) -> Result<(), Error> {
    let mut header = mbrman::MBRHeader::new(ids.mbr_disk_signature.to_le_bytes());
    header.bootstrap_code = *boot_code;
    let part = layout.fat_partition;
    let start = u32::try_from(part.start).map_err(|e| partition_error("MBR", e))?;
    let count = u32::try_from(part.count).map_err(|e| partition_error("MBR", e))?;
    header.partition_1 = mbrman::MBRPartitionEntry {
        boot: mbr::ACTIVE,
        first_chs: chs(part.start),
        sys: layout.fat.geometry.fat_type.mbr_partition_type(),
        last_chs: chs(part.end() - 1),
        starting_lba: start,
        sectors: count,
    };
    header.write_into(disk).map_err(|e| partition_error("MBR", e))
}

/// A GPT partition entry of ours.
fn gpt_partition(
    type_guid: gpt_crate::partition_types::Type,
    guid: Guid,
    range: crate::layout::SectorRange,
    flags: u64,
    name: &str,
) -> gpt_crate::partition::Partition {
    gpt_crate::partition::Partition {
        part_type_guid: type_guid,
        part_guid: uuid::Uuid::from_bytes(guid),
        first_lba: range.start,
        last_lba: range.end() - 1,
        flags,
        name: name.to_owned(),
    }
}

fn write_gpt(
    disk: &mut SparseDisk,
    layout: &Layout,
    gpt_layout: &GptLayout,
    ids: &Identifiers,
    boot_code: &[u8; mbr::BOOT_CODE_LEN],
) -> Result<(), Error> {
    // The ESP is marked bootable for legacy BIOS only when the image carries the BIOS stage.
    let esp_flags = if gpt_layout.bios_boot.is_some() { gpt::ATTR_LEGACY_BIOS_BOOTABLE } else { 0 };
    let esp = gpt_partition(
        gpt_crate::partition_types::EFI,
        ids.gpt_esp,
        layout.fat_partition,
        esp_flags,
        gpt::ESP_PARTITION_NAME,
    );
    let partitions = match gpt_layout.bios_boot {
        Some(range) => {
            let bios_boot = gpt_partition(
                gpt_crate::partition_types::BIOS,
                ids.gpt_bios_boot,
                range,
                gpt::ATTR_REQUIRED | gpt::ATTR_NO_BLOCK_IO,
                gpt::BIOS_BOOT_PARTITION_NAME,
            );
            BTreeMap::from([(1, bios_boot), (2, esp)])
        }
        None => BTreeMap::from([(1, esp)]),
    };
    let mut gpt_disk = gpt_crate::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt_crate::disk::LogicalBlockSize::Lb512)
        .create_from_device(&mut *disk, Some(uuid::Uuid::from_bytes(ids.gpt_disk)))
        .map_err(|e| partition_error("GPT", e))?;
    gpt_disk.update_partitions(partitions).map_err(|e| partition_error("GPT", e))?;
    let header = gpt_disk.header();
    if header.first_usable != gpt_layout.first_usable || header.last_usable != gpt_layout.last_usable {
        return Err(partition_error(
            "GPT",
            format!(
                "usable range {}..={} differs from the plan's {}..={}",
                header.first_usable, header.last_usable, gpt_layout.first_usable, gpt_layout.last_usable
            ),
        ));
    }
    gpt_disk.write().map_err(|e| partition_error("GPT", e))?;
    // The protective partition covers the whole disk after LBA 0, capped at 32 bits.
    let covered = u32::try_from(layout.total_sectors() - 1).unwrap_or(u32::MAX);
    let mut pmbr = gpt_crate::mbr::ProtectiveMBR::with_lb_size(covered);
    pmbr.set_bootcode(*boot_code);
    pmbr.set_disk_signature(ids.mbr_disk_signature.to_le_bytes());
    pmbr.overwrite_lba0(disk).map_err(|e| partition_error("protective MBR", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chs_follows_the_conventional_geometry() {
        let c = chs(0);
        assert_eq!((c.cylinder, c.head, c.sector), (0, 0, 1));
        let c = chs(2048);
        assert_eq!((c.cylinder, c.head, c.sector), (0, 32, 33));
        let c = chs(255 * 63);
        assert_eq!((c.cylinder, c.head, c.sector), (1, 0, 1));
        let c = chs(1 << 31);
        assert_eq!((c.cylinder, c.head, c.sector), (1023, 254, 63));
    }
}

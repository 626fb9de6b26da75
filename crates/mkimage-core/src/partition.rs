//! Partition-table writers: the MBR of the MBR layout, and the protective MBR plus primary and
//! backup GPT of the GPT layout. They place bytes where the [`Layout`] says; every value comes
//! from the layout or the image identity.

use std::collections::BTreeMap;

use crate::Error;
use crate::ident::{Guid, Identity};
use crate::layout::{Layout, PartitionTable};
use crate::sparse::SparseDisk;

/// "Active" flag of an MBR partition entry: the BIOS-era marker of the partition to boot.
pub const MBR_ACTIVE: u8 = 0x80;
/// Heads per cylinder of the conventional translated geometry used for CHS fields.
const CHS_HEADS: u64 = 255;
/// Sectors per track of the conventional translated geometry.
const CHS_SECTORS: u64 = 63;
/// Highest cylinder a CHS field can encode; addresses beyond it are written as the maximum.
const CHS_MAX_CYLINDER: u64 = 1023;
/// GPT partition name of the BIOS boot partition.
pub const BIOS_BOOT_PARTITION_NAME: &str = "BIOS boot partition";
/// GPT partition name of the EFI system partition.
pub const ESP_PARTITION_NAME: &str = "EFI system partition";
/// GPT partition attribute bit 2, "legacy BIOS bootable": marks the partition BIOS boot code
/// should boot, the GPT counterpart of the MBR active flag.
pub const GPT_ATTR_LEGACY_BIOS_BOOTABLE: u64 = 1 << 2;
/// GPT partition attribute bit 0, "required partition": the BIOS boot partition must not be
/// removed or reused, or the disk stops booting.
pub const GPT_ATTR_REQUIRED: u64 = 1 << 0;
/// GPT partition attribute bit 1, "no block I/O protocol": firmware should not expose the BIOS
/// boot partition (raw boot code) as a block device.
pub const GPT_ATTR_NO_BLOCK_IO: u64 = 1 << 1;

/// Identity labels of the GUIDs a GPT carries.
pub const GUID_LABEL_DISK: &str = "gpt disk";
/// Identity label of the BIOS boot partition's unique GUID.
pub const GUID_LABEL_BIOS_BOOT: &str = "gpt partition bios-boot";
/// Identity label of the EFI system partition's unique GUID.
pub const GUID_LABEL_ESP: &str = "gpt partition esp";

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
    identity: &Identity,
    boot_code: &[u8; crate::bootstage::MBR_CODE_LEN],
) -> Result<(), Error> {
    let signature = identity.mbr_disk_signature().to_le_bytes();
    match layout.table {
        PartitionTable::Mbr => {
            let mut header = mbrman::MBRHeader::new(signature);
            header.bootstrap_code = *boot_code;
            let part = layout.fat_partition;
            let start = u32::try_from(part.start).map_err(|e| partition_error("MBR", e))?;
            let count = u32::try_from(part.count).map_err(|e| partition_error("MBR", e))?;
            header.partition_1 = mbrman::MBRPartitionEntry {
                boot: MBR_ACTIVE,
                first_chs: chs(part.start),
                sys: layout.fat.geometry.fat_type.mbr_partition_type(),
                last_chs: chs(part.end() - 1),
                starting_lba: start,
                sectors: count,
            };
            header.write_into(disk).map_err(|e| partition_error("MBR", e))?;
        }
        PartitionTable::Gpt => {
            let gpt_layout = layout.gpt.as_ref().ok_or_else(|| partition_error("GPT", "layout has no GPT"))?;
            let uuid = |guid: Guid| uuid::Uuid::from_bytes(guid);
            let mut partitions = BTreeMap::new();
            partitions.insert(
                1,
                gpt::partition::Partition {
                    part_type_guid: gpt::partition_types::BIOS,
                    part_guid: uuid(identity.guid(GUID_LABEL_BIOS_BOOT)),
                    first_lba: gpt_layout.bios_boot.start,
                    last_lba: gpt_layout.bios_boot.end() - 1,
                    flags: GPT_ATTR_REQUIRED | GPT_ATTR_NO_BLOCK_IO,
                    name: BIOS_BOOT_PARTITION_NAME.to_owned(),
                },
            );
            partitions.insert(
                2,
                gpt::partition::Partition {
                    part_type_guid: gpt::partition_types::EFI,
                    part_guid: uuid(identity.guid(GUID_LABEL_ESP)),
                    first_lba: layout.fat_partition.start,
                    last_lba: layout.fat_partition.end() - 1,
                    flags: GPT_ATTR_LEGACY_BIOS_BOOTABLE,
                    name: ESP_PARTITION_NAME.to_owned(),
                },
            );
            let mut gpt_disk = gpt::GptConfig::new()
                .writable(true)
                .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
                .create_from_device(&mut *disk, Some(uuid(identity.guid(GUID_LABEL_DISK))))
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
            let mut pmbr = gpt::mbr::ProtectiveMBR::with_lb_size(covered);
            pmbr.set_bootcode(*boot_code);
            pmbr.set_disk_signature(signature);
            pmbr.overwrite_lba0(disk).map_err(|e| partition_error("protective MBR", e))?;
        }
    }
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

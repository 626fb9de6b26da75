//! Disk layout planning: where the partition table, the boot stage, the FAT partition and every
//! file of the FAT filesystem lie on the disk. Pure arithmetic, no I/O.
//!
//! ```text
//! MBR layout                          GPT layout
//! LBA 0      MBR: boot code, table    LBA 0        protective MBR: boot code, 0xEE entry
//! LBA 1..    boot stage (stage 2,     LBA 1        primary GPT header
//!            boot record) in the gap  LBA 2..33    primary partition entries (128 x 128 B)
//! LBA 2048.. FAT partition, to the    LBA 64..2047 BIOS boot partition: the boot stage
//!            last sector of the disk  LBA 2048..   EFI system partition: FAT
//!                                     (to a 1 MiB boundary)
//!                                     last 33      backup entries and backup header
//! ```
//!
//! The BIOS stage (the boot area, and on GPT the BIOS boot partition) is there when the
//! [`Firmware`] includes BIOS; the UEFI loader, `EFI/BOOT/BOOTX64.EFI` on the FAT filesystem,
//! when it includes UEFI. The FAT partition starts at LBA 2048 either way.

use crate::Error;
use crate::boot::{Firmware, uefi};
use crate::bytes::SECTOR_SIZE;
use crate::fat::plan::{FatGeometry, FatPlan, PlannedFile};
use crate::size::{GIB, MIB, TIB};

/// First LBA of the partition holding the filesystem: 1 MiB, the alignment every modern
/// partitioning tool uses.
pub const FAT_PARTITION_LBA: u64 = 2048;
/// First LBA of the boot-stage area in the MBR layout (the gap after the MBR).
pub const MBR_BOOT_AREA_LBA: u64 = 1;
/// First LBA of the BIOS boot partition in the GPT layout. After the 33 sectors of the primary
/// GPT, rounded up to a 32 KiB boundary.
pub const BIOS_BOOT_PARTITION_LBA: u64 = 64;
/// Sectors occupied by a GPT partition entry array (128 entries of 128 bytes).
pub const GPT_ENTRY_SECTORS: u64 =
    crate::partition::gpt::ENTRIES * crate::partition::gpt::MIN_ENTRY_SIZE as u64 / SECTOR_SIZE;
/// Sectors the backup GPT occupies at the end of the disk (entries plus header).
pub const GPT_BACKUP_SECTORS: u64 = GPT_ENTRY_SECTORS + 1;
/// Largest disk supported: 2 TiB, the limit of 32-bit sector numbers in the MBR and in FAT32.
pub const MAX_DISK_SIZE: u64 = 2 * TIB;
/// Default disk size: 1 GiB, like the tool this one replaces.
pub const DEFAULT_DISK_SIZE: u64 = GIB;
/// Sectors reserved for the boot stage (stage 2 code and boot record) in either layout.
pub const BOOT_AREA_SECTORS: u64 = crate::boot::bios::BOOT_AREA_SECTORS;

/// Partitioning scheme of the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PartitionTable {
    /// A classic MBR with one bootable FAT partition.
    #[default]
    Mbr,
    /// A GUID partition table with a BIOS boot partition and an EFI system partition.
    Gpt,
}

impl PartitionTable {
    /// The lower-case name used on the command line and in identity derivation.
    pub const fn name(self) -> &'static str {
        match self {
            PartitionTable::Mbr => "mbr",
            PartitionTable::Gpt => "gpt",
        }
    }
}

impl std::fmt::Display for PartitionTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A run of sectors: `start` and `count` in 512-byte LBAs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SectorRange {
    /// First LBA.
    pub start: u64,
    /// Number of sectors.
    pub count: u64,
}

impl SectorRange {
    /// One past the last LBA.
    pub const fn end(&self) -> u64 {
        self.start + self.count
    }

    /// Byte offset of the first sector.
    pub const fn byte_offset(&self) -> u64 {
        self.start * SECTOR_SIZE
    }

    /// Length in bytes.
    pub const fn byte_len(&self) -> u64 {
        self.count * SECTOR_SIZE
    }
}

/// Where a GPT's structures lie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GptLayout {
    /// LBA of the primary header (1).
    pub primary_header: u64,
    /// Primary partition entry array.
    pub primary_entries: SectorRange,
    /// Backup partition entry array.
    pub backup_entries: SectorRange,
    /// LBA of the backup header (the last sector).
    pub backup_header: u64,
    /// First LBA a partition may use.
    pub first_usable: u64,
    /// Last LBA a partition may use.
    pub last_usable: u64,
    /// The BIOS boot partition (holds the boot stage), when the image carries the BIOS stage.
    pub bios_boot: Option<SectorRange>,
}

/// A file on the FAT filesystem, placed on the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileLocation {
    /// The file as the FAT plan places it (clusters).
    pub file: PlannedFile,
    /// The sectors holding its clusters, absolute LBAs (contiguous by construction).
    pub sectors: SectorRange,
}

/// The partition table's own structures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TableLayout {
    /// An MBR: LBA 0 alone.
    Mbr,
    /// A GPT, with its headers, entry arrays and (for the BIOS stage) BIOS boot partition.
    Gpt(GptLayout),
}

impl TableLayout {
    /// The GPT structures, for a GPT.
    pub const fn gpt(&self) -> Option<&GptLayout> {
        match self {
            TableLayout::Mbr => None,
            TableLayout::Gpt(gpt) => Some(gpt),
        }
    }

    /// The partitioning scheme.
    pub const fn kind(&self) -> PartitionTable {
        match self {
            TableLayout::Mbr => PartitionTable::Mbr,
            TableLayout::Gpt(_) => PartitionTable::Gpt,
        }
    }
}

/// The complete disk layout.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Layout {
    /// The partition table and where its structures lie.
    pub table: TableLayout,
    /// Disk size in bytes (a multiple of 512).
    pub disk_size: u64,
    /// The boot stages the image carries.
    pub firmware: Firmware,
    /// Where the BIOS boot stage (stage 2 and boot record) goes, when the image carries it.
    pub boot_area: Option<SectorRange>,
    /// The partition holding the FAT filesystem.
    pub fat_partition: SectorRange,
    /// The FAT filesystem's geometry and files.
    pub fat: FatPlan,
    /// The kernel file (the first file of the plan).
    pub kernel: FileLocation,
    /// The build-information text file (the second file).
    pub info: FileLocation,
    /// The UEFI loader, [`uefi::LOADER_PATH`] (the third file), when the image carries it.
    pub loader: Option<FileLocation>,
}

/// What the layout planner needs to know.
#[derive(Clone, Copy, Debug)]
pub struct LayoutRequest<'a> {
    /// Partitioning scheme.
    pub table: PartitionTable,
    /// The boot stages to carry.
    pub firmware: Firmware,
    /// Disk size in bytes.
    pub disk_size: u64,
    /// Kernel file name on the FAT filesystem.
    pub kernel_name: &'a str,
    /// Kernel size in bytes.
    pub kernel_size: u64,
    /// Build-information file name.
    pub info_name: &'a str,
    /// Build-information file size in bytes.
    pub info_size: u64,
}

impl Layout {
    /// Checks a disk size on its own: a whole number of sectors, at most [`MAX_DISK_SIZE`].
    ///
    /// # Errors
    /// [`Error::DiskSizeNotSectorMultiple`] or [`Error::DiskTooLarge`].
    pub fn check_disk_size(size: u64) -> Result<(), Error> {
        if !size.is_multiple_of(SECTOR_SIZE) {
            return Err(Error::DiskSizeNotSectorMultiple { size });
        }
        if size > MAX_DISK_SIZE {
            return Err(Error::DiskTooLarge { size, max: MAX_DISK_SIZE });
        }
        Ok(())
    }

    /// Plans the layout, or explains why the disk cannot hold it.
    ///
    /// # Errors
    /// As [`Layout::check_disk_size`], and [`Error::DiskTooSmall`] with the smallest size that
    /// would do.
    pub fn plan(req: &LayoutRequest<'_>) -> Result<Layout, Error> {
        Self::check_disk_size(req.disk_size)?;
        Self::try_plan(req).ok_or_else(|| Error::DiskTooSmall {
            kernel: req.kernel_name.to_owned(),
            size: req.disk_size,
            needed: Self::minimum_disk_size(req),
        })
    }

    /// The smallest whole number of MiB that holds the request (or `MAX_DISK_SIZE + 1` if even
    /// the largest disk cannot).
    pub fn minimum_disk_size(req: &LayoutRequest<'_>) -> u64 {
        // Lower bound: the content itself plus the 1 MiB before the partition.
        let content_mib = (req.kernel_size.saturating_add(req.info_size).saturating_add(uefi::loader_size())) / MIB + 2;
        let mut mib = content_mib;
        while mib * MIB <= MAX_DISK_SIZE {
            if Self::try_plan(&LayoutRequest { disk_size: mib * MIB, ..*req }).is_some() {
                return mib * MIB;
            }
            // Overheads are a small fraction of the size: step by at least 1 MiB, at most 1/64.
            mib += (mib / 64).max(1);
        }
        MAX_DISK_SIZE + 1
    }

    fn try_plan(req: &LayoutRequest<'_>) -> Option<Layout> {
        let total = req.disk_size / SECTOR_SIZE;
        let bios = req.firmware.bios();
        let (fat_partition, boot_area, table) = match req.table {
            PartitionTable::Mbr => {
                let part = SectorRange { start: FAT_PARTITION_LBA, count: total.checked_sub(FAT_PARTITION_LBA)? };
                let boot = bios.then_some(SectorRange { start: MBR_BOOT_AREA_LBA, count: BOOT_AREA_SECTORS });
                (part, boot, TableLayout::Mbr)
            }
            PartitionTable::Gpt => {
                let backup_entries_start = total.checked_sub(GPT_BACKUP_SECTORS)?;
                let last_usable = backup_entries_start.checked_sub(1)?;
                let bios_boot = bios.then_some(SectorRange {
                    start: BIOS_BOOT_PARTITION_LBA,
                    count: FAT_PARTITION_LBA - BIOS_BOOT_PARTITION_LBA,
                });
                // End the ESP on a 1 MiB boundary too (partitioning tools flag unaligned ends);
                // the at most 1 MiB left before the backup GPT stays unallocated.
                let esp_end = (last_usable + 1) / FAT_PARTITION_LBA * FAT_PARTITION_LBA;
                let esp = SectorRange { start: FAT_PARTITION_LBA, count: esp_end.checked_sub(FAT_PARTITION_LBA)? };
                let gpt = GptLayout {
                    primary_header: crate::partition::gpt::PRIMARY_HEADER_LBA,
                    primary_entries: SectorRange { start: 2, count: GPT_ENTRY_SECTORS },
                    backup_entries: SectorRange { start: backup_entries_start, count: GPT_ENTRY_SECTORS },
                    backup_header: total - 1,
                    first_usable: 2 + GPT_ENTRY_SECTORS,
                    last_usable,
                    bios_boot,
                };
                let boot = bios_boot.map(|b| SectorRange { start: b.start, count: BOOT_AREA_SECTORS });
                (esp, boot, TableLayout::Gpt(gpt))
            }
        };
        let fat_sectors = u32::try_from(fat_partition.count).ok()?;
        let geometry = FatGeometry::choose(fat_sectors)?;
        let mut files = vec![(req.kernel_name, req.kernel_size), (req.info_name, req.info_size)];
        if req.firmware.uefi() {
            files.push((uefi::LOADER_PATH, uefi::loader_size()));
        }
        let fat = FatPlan::place(geometry, &files)?;
        let locate = |file: &PlannedFile| FileLocation {
            file: file.clone(),
            sectors: SectorRange {
                start: fat_partition.start + u64::from(geometry.cluster_sector(file.first_cluster)),
                count: u64::from(file.clusters) * u64::from(geometry.sectors_per_cluster),
            },
        };
        let kernel = locate(&fat.files[0]);
        let info = locate(&fat.files[1]);
        let loader = fat.files.get(2).map(locate);
        Some(Layout {
            table,
            disk_size: req.disk_size,
            firmware: req.firmware,
            boot_area,
            fat_partition,
            fat,
            kernel,
            info,
            loader,
        })
    }

    /// Sectors on the disk.
    pub const fn total_sectors(&self) -> u64 {
        self.disk_size / SECTOR_SIZE
    }

    /// The partitioning scheme.
    pub const fn partition_table(&self) -> PartitionTable {
        self.table.kind()
    }

    /// Index of the FAT partition in the partition table (0-based), as reported to the kernel
    /// in the Multiboot `boot_device` field: the only MBR entry, or the GPT entry after the BIOS
    /// boot partition (the first when there is none).
    pub const fn fat_partition_index(&self) -> u8 {
        match self.table {
            TableLayout::Gpt(GptLayout { bios_boot: Some(_), .. }) => 1,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fat::plan::FatType;

    fn req(table: PartitionTable, disk_size: u64, kernel_size: u64) -> LayoutRequest<'static> {
        LayoutRequest {
            table,
            firmware: Firmware::Bios,
            disk_size,
            kernel_name: "unikernel.bin",
            kernel_size,
            info_name: "build-info.txt",
            info_size: 200,
        }
    }

    #[test]
    fn mbr_layout_of_one_gib() {
        let l = Layout::plan(&req(PartitionTable::Mbr, GIB, 225_408)).unwrap();
        assert_eq!(l.fat_partition, SectorRange { start: 2048, count: 2_097_152 - 2048 });
        let boot_area = l.boot_area.unwrap();
        assert_eq!(boot_area.start, 1);
        assert!(boot_area.end() <= FAT_PARTITION_LBA);
        assert!(l.loader.is_none());
        assert_eq!(l.fat_partition_index(), 0);
        assert_eq!(l.fat.geometry.fat_type, FatType::Fat32);
        // The kernel follows the root directory cluster.
        let g = &l.fat.geometry;
        assert_eq!(l.kernel.sectors.start, 2048 + u64::from(g.first_data_sector()) + 8);
        assert_eq!(l.kernel.sectors.count, 56 * 8);
        assert_eq!(l.table, TableLayout::Mbr);
    }

    #[test]
    fn gpt_layout_of_one_gib() {
        let l = Layout::plan(&req(PartitionTable::Gpt, GIB, 225_408)).unwrap();
        let TableLayout::Gpt(gpt) = l.table else { panic!("not a GPT layout") };
        let total = GIB / 512;
        assert_eq!(gpt.primary_entries, SectorRange { start: 2, count: 32 });
        assert_eq!(gpt.first_usable, 34);
        assert_eq!(gpt.backup_header, total - 1);
        assert_eq!(gpt.backup_entries, SectorRange { start: total - 33, count: 32 });
        assert_eq!(gpt.last_usable, total - 34);
        let bios_boot = gpt.bios_boot.unwrap();
        assert_eq!(bios_boot, SectorRange { start: 64, count: 1984 });
        assert_eq!(l.fat_partition, SectorRange { start: 2048, count: total - 2048 - 2048 });
        assert_eq!(l.fat_partition.end() % 2048, 0);
        assert_eq!(l.boot_area.unwrap().start, 64);
        assert!(l.boot_area.unwrap().end() <= bios_boot.end());
        assert_eq!(l.fat_partition_index(), 1);
        // Partitions do not overlap each other or the GPT structures.
        assert!(gpt.first_usable <= bios_boot.start);
        assert!(l.fat_partition.end() <= gpt.backup_entries.start);
    }

    #[test]
    fn kernel_stays_inside_the_partition_for_many_sizes() {
        for table in [PartitionTable::Mbr, PartitionTable::Gpt] {
            for disk_mib in [4u64, 5, 8, 33, 34, 35, 64, 100, 260, 261, 262, 300, 1024, 4096, 10240] {
                for kernel in [1u64, 511, 512, 513, 4096, 225_408, 1 << 20] {
                    let Ok(l) = Layout::plan(&req(table, disk_mib * MIB, kernel)) else {
                        assert!(disk_mib <= 5, "{table} {disk_mib} MiB {kernel}");
                        continue;
                    };
                    assert!(l.kernel.sectors.start >= l.fat_partition.start);
                    assert!(l.info.sectors.end() <= l.fat_partition.end());
                    assert!(l.kernel.sectors.byte_len() >= kernel);
                    assert!(l.kernel.sectors.end() <= l.info.sectors.start);
                    let boot_area = l.boot_area.unwrap();
                    assert!(boot_area.start >= 1 && boot_area.end() <= l.fat_partition.start);
                }
            }
        }
    }

    #[test]
    fn firmware_decides_the_boot_stages() {
        let hybrid =
            Layout::plan(&LayoutRequest { firmware: Firmware::Hybrid, ..req(PartitionTable::Gpt, GIB, 5000) }).unwrap();
        assert_eq!(hybrid.boot_area.unwrap().start, 64);
        assert_eq!(hybrid.fat_partition_index(), 1);
        let loader = hybrid.loader.as_ref().unwrap();
        assert_eq!(loader.file.name, "EFI/BOOT/BOOTX64.EFI");
        assert!(loader.sectors.start > hybrid.info.sectors.start);
        assert!(loader.sectors.end() <= hybrid.fat_partition.end());
        // The kernel lies where a BIOS-only image has it.
        let bios = Layout::plan(&req(PartitionTable::Gpt, GIB, 5000)).unwrap();
        assert_eq!(bios.kernel, hybrid.kernel);
        let uefi =
            Layout::plan(&LayoutRequest { firmware: Firmware::Uefi, ..req(PartitionTable::Gpt, GIB, 5000) }).unwrap();
        assert!(uefi.boot_area.is_none());
        assert!(uefi.table.gpt().unwrap().bios_boot.is_none());
        assert_eq!(uefi.fat_partition_index(), 0);
        assert_eq!(uefi.fat_partition, hybrid.fat_partition);
        let uefi_mbr =
            Layout::plan(&LayoutRequest { firmware: Firmware::Uefi, ..req(PartitionTable::Mbr, GIB, 5000) }).unwrap();
        assert!(uefi_mbr.boot_area.is_none());
        assert!(uefi_mbr.loader.is_some());
    }

    #[test]
    fn too_small_disks_report_the_minimum() {
        let small = req(PartitionTable::Mbr, 2 * MIB, 64 * MIB);
        match Layout::plan(&small) {
            Err(Error::DiskTooSmall { size, needed, .. }) => {
                assert_eq!(size, 2 * MIB);
                assert!(needed > 64 * MIB && needed < 70 * MIB, "{needed}");
                assert!(Layout::plan(&LayoutRequest { disk_size: needed, ..small }).is_ok());
                assert!(Layout::plan(&LayoutRequest { disk_size: needed - MIB, ..small }).is_err());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(Layout::plan(&req(PartitionTable::Gpt, 0, 1)), Err(Error::DiskTooSmall { .. })));
    }

    #[test]
    fn sizes_outside_the_supported_range_are_refused() {
        assert!(matches!(
            Layout::plan(&req(PartitionTable::Mbr, GIB + 1, 1)),
            Err(Error::DiskSizeNotSectorMultiple { .. })
        ));
        assert!(matches!(
            Layout::plan(&req(PartitionTable::Mbr, MAX_DISK_SIZE + 512, 1)),
            Err(Error::DiskTooLarge { .. })
        ));
        let l = Layout::plan(&req(PartitionTable::Mbr, MAX_DISK_SIZE, 1)).unwrap();
        assert_eq!(l.fat_partition.end(), 1 << 32);
        let l = Layout::plan(&req(PartitionTable::Gpt, MAX_DISK_SIZE, 1)).unwrap();
        assert_eq!(l.fat.geometry.cluster_size(), 32 * 1024);
    }
}

//! FAT filesystems: the on-disk layout (boot sector fields, FSInfo, directory entries, FAT
//! entry values and the cluster counts that decide the FAT type) named once; the [`plan`]ner
//! that predicts where `fatfs` puts every file; and the writer (`write`) that runs `fatfs` and
//! checks it against the plan. The inspector reads volumes through the same names.

pub mod plan;
pub(crate) mod write;

/// Fewest clusters a FAT16 volume has (fewer make it FAT12).
pub const FAT16_MIN_CLUSTERS: u32 = 4085;
/// Fewest clusters a FAT32 volume has (fewer make it FAT16).
pub const FAT32_MIN_CLUSTERS: u32 = 65_525;
/// Most clusters a FAT32 volume may have.
pub const FAT32_MAX_CLUSTERS: u32 = 0x0FFF_FFF4;
/// First cluster number of the data area (FAT entries 0 and 1 are reserved).
pub const FIRST_DATA_CLUSTER: u32 = 2;
/// Sector of the FSInfo structure on FAT32, relative to the volume.
pub const FAT32_FSINFO_SECTOR: u32 = 1;
/// Sector of the backup boot sector on FAT32, relative to the volume.
pub const FAT32_BACKUP_BOOT_SECTOR: u32 = 6;
/// Bits of a FAT32 entry that hold the value (the top four are reserved).
pub const FAT32_ENTRY_MASK: u32 = 0x0fff_ffff;
/// Smallest FAT32 entry value marking the end of a cluster chain.
pub const FAT32_EOC_MIN: u32 = 0x0fff_fff8;
/// Smallest FAT16 entry value marking the end of a cluster chain.
pub const FAT16_EOC_MIN: u32 = 0xfff8;
/// Smallest FAT12 entry value marking the end of a cluster chain.
pub const FAT12_EOC_MIN: u32 = 0xff8;

/// Fields of the boot sector (BIOS parameter block and the extended fields after it).
pub mod bpb {
    use crate::bytes::Le;
    /// OEM name (8 bytes of text).
    pub const OEM_NAME: std::ops::Range<usize> = 3..11;
    /// Bytes per sector.
    pub const BYTES_PER_SECTOR: Le<u16> = Le::at(0x0b);
    /// Sectors per cluster.
    pub const SECTORS_PER_CLUSTER: Le<u8> = Le::at(0x0d);
    /// Reserved sectors before the first FAT.
    pub const RESERVED_SECTORS: Le<u16> = Le::at(0x0e);
    /// Number of FATs.
    pub const FAT_COUNT: Le<u8> = Le::at(0x10);
    /// Entries of the fixed root directory (FAT12/16).
    pub const ROOT_ENTRIES: Le<u16> = Le::at(0x11);
    /// Total sectors when they fit in 16 bits, else 0.
    pub const TOTAL_SECTORS_16: Le<u16> = Le::at(0x13);
    /// Sectors per FAT (FAT12/16), else 0.
    pub const SECTORS_PER_FAT_16: Le<u16> = Le::at(0x16);
    /// Sectors before the volume on the disk.
    pub const HIDDEN_SECTORS: Le<u32> = Le::at(0x1c);
    /// Total sectors when they do not fit in 16 bits.
    pub const TOTAL_SECTORS_32: Le<u32> = Le::at(0x20);
    /// Sectors per FAT (FAT32).
    pub const SECTORS_PER_FAT_32: Le<u32> = Le::at(0x24);
    /// First cluster of the root directory (FAT32).
    pub const ROOT_CLUSTER: Le<u32> = Le::at(0x2c);
    /// Volume serial number (FAT12/16).
    pub const VOLUME_ID_16: Le<u32> = Le::at(0x27);
    /// Volume serial number (FAT32).
    pub const VOLUME_ID_32: Le<u32> = Le::at(0x43);
    /// Bytes at the start of a FAT32 boot sector that the backup must repeat (up to the file
    /// system type string).
    pub const FAT32_BPB_LEN: usize = 90;

    /// Total sectors: the 16-bit field, or the 32-bit one when it is zero.
    pub fn total_sectors(sector: &[u8]) -> u32 {
        match TOTAL_SECTORS_16.get(sector).unwrap_or(0) {
            0 => TOTAL_SECTORS_32.get(sector).unwrap_or(0),
            n => u32::from(n),
        }
    }

    /// Sectors per FAT: the 16-bit field, or the 32-bit one when it is zero.
    pub fn sectors_per_fat(sector: &[u8]) -> u32 {
        match SECTORS_PER_FAT_16.get(sector).unwrap_or(0) {
            0 => SECTORS_PER_FAT_32.get(sector).unwrap_or(0),
            n => u32::from(n),
        }
    }
}

/// Fields of the FAT32 FSInfo sector.
pub mod fsinfo {
    use crate::bytes::Le;
    /// Free clusters.
    pub const FREE_COUNT: Le<u32> = Le::at(488);
    /// Where the allocator should look next.
    pub const NEXT_FREE: Le<u32> = Le::at(492);
}

/// Directory entries: the 8.3 entry and the long-name entries before it.
pub mod dir {
    use crate::bytes::Le;
    /// Bytes per directory entry.
    pub const ENTRY_SIZE: u32 = 32;
    /// The 8.3 name: 8 bytes of name, 3 of extension, space-padded.
    pub const SHORT_NAME: std::ops::Range<usize> = 0..11;
    /// Length of the name part of [`SHORT_NAME`].
    pub const SHORT_BASE_LEN: usize = 8;
    /// Attribute byte.
    pub const ATTRIBUTES: Le<u8> = Le::at(11);
    /// High 16 bits of the first cluster (FAT32).
    pub const FIRST_CLUSTER_HIGH: Le<u16> = Le::at(20);
    /// Low 16 bits of the first cluster.
    pub const FIRST_CLUSTER_LOW: Le<u16> = Le::at(26);
    /// File size in bytes.
    pub const FILE_SIZE: Le<u32> = Le::at(28);
    /// First byte of an entry after the last one in use.
    pub const END_MARKER: u8 = 0x00;
    /// First byte of a deleted entry.
    pub const DELETED_MARKER: u8 = 0xe5;
    /// Attribute: directory.
    pub const ATTR_DIRECTORY: u8 = 0x10;
    /// Attribute: volume label.
    pub const ATTR_VOLUME_ID: u8 = 0x08;
    /// Attribute combination marking a long-name entry.
    pub const ATTR_LONG_NAME: u8 = 0x0f;
    /// The attribute bits that decide whether an entry is a long-name entry.
    pub const ATTR_LONG_NAME_MASK: u8 = 0x3f;
    /// Long-name entry: sequence number (low bits) and last-entry flag.
    pub const LFN_ORDER: Le<u8> = Le::at(0);
    /// Long-name entry: flag of the last (first stored) entry of a chain.
    pub const LFN_LAST: u8 = 0x40;
    /// Long-name entry: bits of the sequence number.
    pub const LFN_ORDER_MASK: u8 = 0x1f;
    /// Long-name entry: checksum of the 8.3 name it belongs to.
    pub const LFN_CHECKSUM: Le<u8> = Le::at(13);
    /// UTF-16 code units of a long name held by one long-name entry.
    pub const LFN_CHARS_PER_ENTRY: usize = 13;
    /// Offsets of those code units in a long-name entry.
    pub const LFN_CHAR_OFFSETS: [usize; LFN_CHARS_PER_ENTRY] = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

    /// The checksum of an 8.3 name that its long-name entries record.
    pub fn short_name_checksum(short: &[u8]) -> u8 {
        short.iter().fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
    }
}

//! Partition tables: the on-disk layout of the MBR ([`mbr`]) and of the GUID partition table
//! ([`gpt`]), named once and shared by the writer (`write`, built on `mbrman` and `gpt`) and
//! the inspector's reader.

pub(crate) mod write;

/// Partition attribute and name constants, re-exported where callers expect them.
pub use gpt::{
    ATTR_LEGACY_BIOS_BOOTABLE, ATTR_NO_BLOCK_IO, ATTR_REQUIRED, BIOS_BOOT_PARTITION_NAME, ESP_PARTITION_NAME,
};

/// Layout of LBA 0 of an MBR-partitioned disk (also the protective MBR of a GPT disk).
pub mod mbr {
    use crate::bytes::Le;

    /// Bytes of boot code at the start of the sector.
    pub const BOOT_CODE_LEN: usize = 440;
    /// The 32-bit disk signature.
    pub const DISK_SIGNATURE: Le<u32> = Le::at(440);
    /// Offset of the first of the four partition entries.
    pub const TABLE_OFFSET: usize = 446;
    /// Bytes per partition entry.
    pub const ENTRY_LEN: usize = 16;
    /// Number of primary partition entries.
    pub const ENTRIES: usize = 4;
    /// Where the boot signature lies (also in a FAT boot sector).
    pub const BOOT_SIGNATURE_AT: std::ops::Range<usize> = 510..512;
    /// The boot signature.
    pub const BOOT_SIGNATURE: [u8; 2] = [0x55, 0xAA];
    /// Status byte of an entry: the BIOS-era marker of the partition to boot.
    pub const ACTIVE: u8 = 0x80;
    /// Partition type: FAT32 addressed by LBA.
    pub const TYPE_FAT32_LBA: u8 = 0x0c;
    /// Partition type: FAT16 addressed by LBA.
    pub const TYPE_FAT16_LBA: u8 = 0x0e;
    /// Partition type: GPT protective partition.
    pub const TYPE_PROTECTIVE: u8 = 0xee;
    /// Partition type: EFI system partition.
    pub const TYPE_EFI_SYSTEM: u8 = 0xef;

    /// Fields of a partition entry, from the start of the entry.
    pub mod entry {
        use crate::bytes::Le;
        /// Status ([`super::ACTIVE`] or 0).
        pub const STATUS: Le<u8> = Le::at(0);
        /// Partition type.
        pub const TYPE: Le<u8> = Le::at(4);
        /// First LBA.
        pub const START_LBA: Le<u32> = Le::at(8);
        /// Number of sectors.
        pub const SECTORS: Le<u32> = Le::at(12);
    }

    /// Offset of partition entry `index` (0-based) in LBA 0.
    pub const fn entry_offset(index: usize) -> usize {
        TABLE_OFFSET + index * ENTRY_LEN
    }
}

/// Layout of a GUID partition table: header, entries, the types and attributes this tool uses.
pub mod gpt {
    use crate::bytes::Le;

    /// Header signature.
    pub const SIGNATURE: &[u8; 8] = b"EFI PART";
    /// LBA of the primary header.
    pub const PRIMARY_HEADER_LBA: u64 = 1;
    /// Smallest valid header size.
    pub const MIN_HEADER_SIZE: usize = 92;
    /// Smallest valid entry size.
    pub const MIN_ENTRY_SIZE: u32 = 128;
    /// Entries in each array this tool writes (the UEFI minimum array size).
    pub const ENTRIES: u64 = 128;

    /// Header fields.
    pub mod header {
        use crate::bytes::Le;
        /// Size of the header in bytes.
        pub const SIZE: Le<u32> = Le::at(12);
        /// CRC-32 of the header with this field zero.
        pub const CRC: Le<u32> = Le::at(16);
        /// LBA of this header.
        pub const MY_LBA: Le<u64> = Le::at(24);
        /// LBA of the other header.
        pub const ALTERNATE_LBA: Le<u64> = Le::at(32);
        /// First LBA a partition may use.
        pub const FIRST_USABLE: Le<u64> = Le::at(40);
        /// Last LBA a partition may use.
        pub const LAST_USABLE: Le<u64> = Le::at(48);
        /// Disk GUID (16 bytes, mixed-endian).
        pub const DISK_GUID: std::ops::Range<usize> = 56..72;
        /// First LBA of the entry array.
        pub const ENTRIES_LBA: Le<u64> = Le::at(72);
        /// Number of entries.
        pub const ENTRY_COUNT: Le<u32> = Le::at(80);
        /// Size of one entry.
        pub const ENTRY_SIZE: Le<u32> = Le::at(84);
        /// CRC-32 of the entry array.
        pub const ENTRIES_CRC: Le<u32> = Le::at(88);
    }

    /// Entry fields.
    pub mod entry {
        use crate::bytes::Le;
        /// Partition type GUID.
        pub const TYPE_GUID: std::ops::Range<usize> = 0..16;
        /// Unique partition GUID.
        pub const UNIQUE_GUID: std::ops::Range<usize> = 16..32;
        /// First LBA.
        pub const FIRST_LBA: Le<u64> = Le::at(32);
        /// Last LBA (inclusive).
        pub const LAST_LBA: Le<u64> = Le::at(40);
        /// Attribute bits.
        pub const ATTRIBUTES: Le<u64> = Le::at(48);
        /// Name, UTF-16LE, NUL-padded.
        pub const NAME: std::ops::Range<usize> = 56..128;
    }

    /// Type GUID of an EFI system partition.
    pub const TYPE_EFI_SYSTEM: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
    /// Type GUID of a BIOS boot partition.
    pub const TYPE_BIOS_BOOT: &str = "21686148-6449-6e6f-744e-656564454649";
    /// Type GUID of a Microsoft basic data partition.
    pub const TYPE_BASIC_DATA: &str = "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7";
    /// Type GUID of a Linux filesystem partition.
    pub const TYPE_LINUX_FILESYSTEM: &str = "0fc63daf-8483-4772-8e79-3d69d8477de4";

    /// Attribute bit 0, "required partition": the BIOS boot partition must not be removed or
    /// reused, or the disk stops booting.
    pub const ATTR_REQUIRED: u64 = 1 << 0;
    /// Attribute bit 1, "no block I/O protocol": firmware should not expose the BIOS boot
    /// partition (raw boot code) as a block device.
    pub const ATTR_NO_BLOCK_IO: u64 = 1 << 1;
    /// Attribute bit 2, "legacy BIOS bootable": marks the partition BIOS boot code should boot,
    /// the GPT counterpart of the MBR active flag.
    pub const ATTR_LEGACY_BIOS_BOOTABLE: u64 = 1 << 2;
    /// Name of the BIOS boot partition.
    pub const BIOS_BOOT_PARTITION_NAME: &str = "BIOS boot partition";
    /// Name of the EFI system partition.
    pub const ESP_PARTITION_NAME: &str = "EFI system partition";

    /// Formats a GUID stored in GPT's mixed-endian layout (`bytes` holds at least 16 bytes) the
    /// canonical way: `8-4-4-4-12` lower-case hex, as [`crate::ident::format_guid`] does.
    pub fn format_guid(bytes: &[u8]) -> String {
        if bytes.len() < 16 {
            return String::new();
        }
        let d1 = Le::<u32>::at(0).get(bytes).unwrap_or(0);
        let d2 = Le::<u16>::at(4).get(bytes).unwrap_or(0);
        let d3 = Le::<u16>::at(6).get(bytes).unwrap_or(0);
        let tail: String = bytes.iter().skip(8).take(8).map(|b| format!("{b:02x}")).collect();
        format!("{d1:08x}-{d2:04x}-{d3:04x}-{}-{}", &tail[..4], &tail[4..])
    }
}

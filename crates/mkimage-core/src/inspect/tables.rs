//! Reading partition tables: the four primary MBR entries and a GUID partition table (primary
//! and backup headers, entry arrays, CRCs). Bounded: at most [`MAX_GPT_ENTRIES`] entries are
//! read, whatever a header claims.

use super::source::{DiskSource, read_vec};
use crate::bytes::{SECTOR_BYTES, SECTOR_SIZE};
use crate::partition::gpt::{self, format_guid as gpt_guid};
use crate::partition::mbr;

/// Most GPT entries read.
pub const MAX_GPT_ENTRIES: u32 = 1024;
/// Largest GPT entry size accepted.
const MAX_GPT_ENTRY_SIZE: u32 = 1024;
/// Alignment GPT entry sizes must have.
const GPT_ENTRY_SIZE_ALIGN: u32 = 8;
/// Type name of an EFI system partition.
pub const KIND_EFI_SYSTEM: &str = "EFI system";
/// Type name of a BIOS boot partition.
pub const KIND_BIOS_BOOT: &str = "BIOS boot";
/// Type name of a GPT protective partition.
pub const KIND_PROTECTIVE: &str = "GPT protective";

/// One partition, whatever the table.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Partition {
    /// 1-based number as partitioning tools show it.
    pub number: u32,
    /// First LBA.
    pub start: u64,
    /// Sectors.
    pub sectors: u64,
    /// MBR type byte as hex (`"0x0c"`) or GPT type GUID (lower-case).
    pub kind: String,
    /// Human-readable type, when known.
    pub kind_name: &'static str,
    /// MBR active flag or GPT "legacy BIOS bootable" attribute.
    pub bootable: bool,
    /// GPT partition name (`None` for MBR).
    pub name: Option<String>,
    /// GPT unique partition GUID, lower-case (`None` for MBR).
    pub guid: Option<String>,
}

/// A parsed partition table.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Table {
    /// `"mbr"` or `"gpt"`.
    pub kind: &'static str,
    /// MBR disk signature (`0x` and 8 hex digits) or GPT disk GUID (lower-case).
    pub disk_id: String,
    /// Partitions in table order.
    pub partitions: Vec<Partition>,
    /// Problems found (CRC mismatches, partitions outside the disk, ...).
    pub problems: Vec<String>,
}

fn mbr_type_name(kind: u8) -> &'static str {
    match kind {
        0x01 => "FAT12",
        0x04 | 0x06 => "FAT16",
        0x0b => "FAT32 (CHS)",
        mbr::TYPE_FAT32_LBA => "FAT32 (LBA)",
        mbr::TYPE_FAT16_LBA => "FAT16 (LBA)",
        0x05 | 0x0f => "extended",
        0x83 => "Linux",
        mbr::TYPE_PROTECTIVE => KIND_PROTECTIVE,
        mbr::TYPE_EFI_SYSTEM => KIND_EFI_SYSTEM,
        _ => "other",
    }
}

fn gpt_type_name(guid: &str) -> &'static str {
    match guid {
        gpt::TYPE_EFI_SYSTEM => KIND_EFI_SYSTEM,
        gpt::TYPE_BIOS_BOOT => KIND_BIOS_BOOT,
        gpt::TYPE_BASIC_DATA => "Microsoft basic data",
        gpt::TYPE_LINUX_FILESYSTEM => "Linux filesystem",
        _ => "other",
    }
}

/// Reads the partition table of `source`: a GPT when LBA 0 holds a protective entry, else the
/// MBR. `None` when LBA 0 has no boot signature (not a partitioned disk).
pub fn read_table(source: &mut dyn DiskSource) -> Option<Table> {
    let lba0 = read_vec(source, 0, SECTOR_BYTES).ok()?;
    if lba0[mbr::BOOT_SIGNATURE_AT] != mbr::BOOT_SIGNATURE {
        return None;
    }
    let total = source.size() / SECTOR_SIZE;
    let mut table = Table {
        kind: "mbr",
        disk_id: format!("0x{:08x}", mbr::DISK_SIGNATURE.get(&lba0).unwrap_or(0)),
        partitions: Vec::new(),
        problems: Vec::new(),
    };
    let mut protective = false;
    for i in 0..mbr::ENTRIES {
        let e = &lba0[mbr::entry_offset(i)..mbr::entry_offset(i + 1)];
        let field = |f: crate::bytes::Le<u32>| u64::from(f.get(e).unwrap_or(0));
        let (kind, start, sectors) =
            (mbr::entry::TYPE.get(e).unwrap_or(0), field(mbr::entry::START_LBA), field(mbr::entry::SECTORS));
        let status = mbr::entry::STATUS.get(e).unwrap_or(0);
        if kind == 0 || sectors == 0 {
            continue;
        }
        protective |= kind == mbr::TYPE_PROTECTIVE;
        if status != 0 && status != mbr::ACTIVE {
            table.problems.push(format!("partition {}: invalid boot flag {status:#04x}", i + 1));
        }
        if start + sectors > total && kind != mbr::TYPE_PROTECTIVE {
            table.problems.push(format!("partition {} extends beyond the end of the disk", i + 1));
        }
        table.partitions.push(Partition {
            number: i as u32 + 1,
            start,
            sectors,
            kind: format!("0x{kind:02x}"),
            kind_name: mbr_type_name(kind),
            bootable: status == mbr::ACTIVE,
            name: None,
            guid: None,
        });
    }
    if !protective {
        return Some(table);
    }
    Some(read_gpt(source, total).unwrap_or_else(|problem| Table {
        kind: "gpt",
        disk_id: String::new(),
        partitions: Vec::new(),
        problems: vec![problem],
    }))
}

/// A validated GPT header.
struct GptHeader {
    disk_guid: String,
    entries_lba: u64,
    entries: u32,
    entry_size: u32,
    entries_crc: u32,
    first_usable: u64,
    last_usable: u64,
    alternate: u64,
}

fn read_gpt_header(source: &mut dyn DiskSource, lba: u64) -> Result<GptHeader, String> {
    use gpt::header;
    let h = read_vec(source, lba * SECTOR_SIZE, SECTOR_BYTES).map_err(|e| format!("GPT header at LBA {lba}: {e}"))?;
    if &h[..gpt::SIGNATURE.len()] != gpt::SIGNATURE {
        return Err(format!("no GPT header at LBA {lba}"));
    }
    let size = header::SIZE.get(&h).unwrap_or(0) as usize;
    if !(gpt::MIN_HEADER_SIZE..=SECTOR_BYTES).contains(&size) {
        return Err(format!("GPT header at LBA {lba} has an invalid size"));
    }
    let mut copy = h[..size].to_vec();
    header::CRC.put(&mut copy, 0);
    if Some(crc32fast::hash(&copy)) != header::CRC.get(&h) {
        return Err(format!("GPT header at LBA {lba} has a bad CRC"));
    }
    if header::MY_LBA.get(&h) != Some(lba) {
        return Err(format!("GPT header at LBA {lba} does not record its own location"));
    }
    let get64 = |f: crate::bytes::Le<u64>| f.get(&h).unwrap_or(0);
    let get32 = |f: crate::bytes::Le<u32>| f.get(&h).unwrap_or(0);
    Ok(GptHeader {
        disk_guid: gpt_guid(&h[header::DISK_GUID]),
        entries_lba: get64(header::ENTRIES_LBA),
        entries: get32(header::ENTRY_COUNT),
        entry_size: get32(header::ENTRY_SIZE),
        entries_crc: get32(header::ENTRIES_CRC),
        first_usable: get64(header::FIRST_USABLE),
        last_usable: get64(header::LAST_USABLE),
        alternate: get64(header::ALTERNATE_LBA),
    })
}

fn read_gpt_entries(source: &mut dyn DiskSource, h: &GptHeader) -> Result<Vec<u8>, String> {
    if h.entries > MAX_GPT_ENTRIES
        || h.entry_size < gpt::MIN_ENTRY_SIZE
        || h.entry_size > MAX_GPT_ENTRY_SIZE
        || !h.entry_size.is_multiple_of(GPT_ENTRY_SIZE_ALIGN)
    {
        return Err("GPT entry array has an unsupported shape".into());
    }
    let len = h.entries as usize * h.entry_size as usize;
    let offset = h.entries_lba.checked_mul(SECTOR_SIZE).ok_or("GPT entry array lies outside the disk")?;
    let bytes = read_vec(source, offset, len).map_err(|_| "GPT entry array lies outside the disk".to_string())?;
    if crc32fast::hash(&bytes) != h.entries_crc {
        return Err("GPT entry array has a bad CRC".into());
    }
    Ok(bytes)
}

fn read_gpt(source: &mut dyn DiskSource, total: u64) -> Result<Table, String> {
    let primary = read_gpt_header(source, gpt::PRIMARY_HEADER_LBA)?;
    let entries = read_gpt_entries(source, &primary)?;
    let mut problems = Vec::new();
    if primary.alternate != total - 1 {
        problems.push(format!("backup GPT header expected at LBA {}, header says {}", total - 1, primary.alternate));
    }
    match read_gpt_header(source, total - 1) {
        Ok(backup) => match read_gpt_entries(source, &backup) {
            Ok(b) if b == entries && backup.disk_guid == primary.disk_guid => {}
            Ok(_) => problems.push("backup GPT differs from the primary".into()),
            Err(e) => problems.push(format!("backup {e}")),
        },
        Err(e) => problems.push(format!("backup: {e}")),
    }
    let mut partitions = Vec::new();
    for (i, e) in entries.chunks_exact(primary.entry_size as usize).enumerate() {
        use gpt::entry;
        if e[entry::TYPE_GUID].iter().all(|&b| b == 0) {
            continue;
        }
        let (first, last) = (entry::FIRST_LBA.get(e).unwrap_or(0), entry::LAST_LBA.get(e).unwrap_or(0));
        if last < first || first < primary.first_usable || last > primary.last_usable {
            problems.push(format!("partition {} lies outside the usable area", i + 1));
        }
        let name_units: Vec<u16> =
            e[entry::NAME].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0).collect();
        let kind = gpt_guid(&e[entry::TYPE_GUID]);
        let attributes = entry::ATTRIBUTES.get(e).unwrap_or(0);
        partitions.push(Partition {
            number: i as u32 + 1,
            start: first,
            sectors: last.saturating_sub(first).saturating_add(1),
            kind_name: gpt_type_name(&kind),
            kind,
            bootable: attributes & gpt::ATTR_LEGACY_BIOS_BOOTABLE != 0,
            name: Some(String::from_utf16_lossy(&name_units)),
            guid: Some(gpt_guid(&e[entry::UNIQUE_GUID])),
        });
    }
    Ok(Table { kind: "gpt", disk_id: primary.disk_guid, partitions, problems })
}

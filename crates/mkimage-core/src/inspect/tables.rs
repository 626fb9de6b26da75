//! Reading partition tables: the four primary MBR entries and a GUID partition table (primary
//! and backup headers, entry arrays, CRCs). Bounded: at most [`MAX_GPT_ENTRIES`] entries are
//! read, whatever a header claims.

use super::source::{DiskSource, read_vec};

/// Offset of the first MBR partition entry.
const MBR_TABLE: usize = 446;
/// Bytes per MBR partition entry.
const MBR_ENTRY: usize = 16;
/// MBR type of a GPT protective partition.
pub const MBR_TYPE_PROTECTIVE: u8 = 0xee;
/// GPT header signature.
const GPT_SIGNATURE: &[u8; 8] = b"EFI PART";
/// Most GPT entries read.
pub const MAX_GPT_ENTRIES: u32 = 1024;
/// Largest GPT entry size accepted.
const MAX_GPT_ENTRY_SIZE: u32 = 1024;
/// Bytes per sector.
const SECTOR: u64 = 512;

/// One partition, whatever the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// 1-based number as partitioning tools show it.
    pub number: u32,
    /// First LBA.
    pub start: u64,
    /// Sectors.
    pub sectors: u64,
    /// MBR type byte as hex (`"0x0c"`) or GPT type GUID.
    pub kind: String,
    /// Human-readable type, when known.
    pub kind_name: &'static str,
    /// MBR active flag or GPT "legacy BIOS bootable" attribute.
    pub bootable: bool,
    /// GPT partition name (empty for MBR).
    pub name: String,
    /// GPT unique partition GUID (empty for MBR).
    pub guid: String,
}

/// A parsed partition table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// `"mbr"` or `"gpt"`.
    pub kind: &'static str,
    /// MBR disk signature (hex) or GPT disk GUID.
    pub disk_id: String,
    /// Partitions in table order.
    pub partitions: Vec<Partition>,
    /// Problems found (CRC mismatches, partitions outside the disk, ...).
    pub problems: Vec<String>,
}

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64le(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

/// Formats a GUID stored in GPT's mixed-endian layout.
fn gpt_guid(b: &[u8]) -> String {
    format!(
        "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
        u32le(b, 0),
        u16le(b, 4),
        u16le(b, 6),
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

fn mbr_type_name(kind: u8) -> &'static str {
    match kind {
        0x01 => "FAT12",
        0x04 | 0x06 => "FAT16",
        0x0b => "FAT32 (CHS)",
        0x0c => "FAT32 (LBA)",
        0x0e => "FAT16 (LBA)",
        0x05 | 0x0f => "extended",
        0x83 => "Linux",
        MBR_TYPE_PROTECTIVE => "GPT protective",
        0xef => "EFI system",
        _ => "other",
    }
}

fn gpt_type_name(guid: &str) -> &'static str {
    match guid {
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" => "EFI system",
        "21686148-6449-6E6F-744E-656564454649" => "BIOS boot",
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" => "Microsoft basic data",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4" => "Linux filesystem",
        _ => "other",
    }
}

/// Reads the partition table of `source`: a GPT when LBA 0 holds a protective entry, else the
/// MBR. `None` when LBA 0 has no boot signature (not a partitioned disk).
pub fn read_table(source: &mut dyn DiskSource) -> Option<Table> {
    let lba0 = read_vec(source, 0, SECTOR as usize).ok()?;
    if lba0[510..512] != [0x55, 0xAA] {
        return None;
    }
    let total = source.size() / SECTOR;
    let mut mbr = Table {
        kind: "mbr",
        disk_id: format!("0x{:08x}", u32le(&lba0, 440)),
        partitions: Vec::new(),
        problems: Vec::new(),
    };
    let mut protective = false;
    for i in 0..4 {
        let e = &lba0[MBR_TABLE + i * MBR_ENTRY..MBR_TABLE + (i + 1) * MBR_ENTRY];
        let (kind, start, sectors) = (e[4], u64::from(u32le(e, 8)), u64::from(u32le(e, 12)));
        if kind == 0 || sectors == 0 {
            continue;
        }
        protective |= kind == MBR_TYPE_PROTECTIVE;
        if e[0] != 0 && e[0] != 0x80 {
            mbr.problems.push(format!("partition {}: invalid boot flag {:#04x}", i + 1, e[0]));
        }
        if start + sectors > total && kind != MBR_TYPE_PROTECTIVE {
            mbr.problems.push(format!("partition {} extends beyond the end of the disk", i + 1));
        }
        mbr.partitions.push(Partition {
            number: i as u32 + 1,
            start,
            sectors,
            kind: format!("0x{kind:02x}"),
            kind_name: mbr_type_name(kind),
            bootable: e[0] == 0x80,
            name: String::new(),
            guid: String::new(),
        });
    }
    if !protective {
        return Some(mbr);
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
    let h = read_vec(source, lba * SECTOR, SECTOR as usize).map_err(|e| format!("GPT header at LBA {lba}: {e}"))?;
    if &h[..8] != GPT_SIGNATURE {
        return Err(format!("no GPT header at LBA {lba}"));
    }
    let size = u32le(&h, 12) as usize;
    if !(92..=SECTOR as usize).contains(&size) {
        return Err(format!("GPT header at LBA {lba} has an invalid size"));
    }
    let mut copy = h[..size].to_vec();
    copy[16..20].fill(0);
    if crc32fast::hash(&copy) != u32le(&h, 16) {
        return Err(format!("GPT header at LBA {lba} has a bad CRC"));
    }
    if u64le(&h, 24) != lba {
        return Err(format!("GPT header at LBA {lba} does not record its own location"));
    }
    Ok(GptHeader {
        disk_guid: gpt_guid(&h[56..72]),
        entries_lba: u64le(&h, 72),
        entries: u32le(&h, 80),
        entry_size: u32le(&h, 84),
        entries_crc: u32le(&h, 88),
        first_usable: u64le(&h, 40),
        last_usable: u64le(&h, 48),
        alternate: u64le(&h, 32),
    })
}

fn read_gpt_entries(source: &mut dyn DiskSource, h: &GptHeader) -> Result<Vec<u8>, String> {
    if h.entries > MAX_GPT_ENTRIES
        || h.entry_size < 128
        || h.entry_size > MAX_GPT_ENTRY_SIZE
        || !h.entry_size.is_multiple_of(8)
    {
        return Err("GPT entry array has an unsupported shape".into());
    }
    let len = h.entries as usize * h.entry_size as usize;
    let offset = h.entries_lba.checked_mul(SECTOR).ok_or("GPT entry array lies outside the disk")?;
    let bytes = read_vec(source, offset, len).map_err(|_| "GPT entry array lies outside the disk".to_string())?;
    if crc32fast::hash(&bytes) != h.entries_crc {
        return Err("GPT entry array has a bad CRC".into());
    }
    Ok(bytes)
}

fn read_gpt(source: &mut dyn DiskSource, total: u64) -> Result<Table, String> {
    let primary = read_gpt_header(source, 1)?;
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
        if e[..16].iter().all(|&b| b == 0) {
            continue;
        }
        let (first, last) = (u64le(e, 32), u64le(e, 40));
        if last < first || first < primary.first_usable || last > primary.last_usable {
            problems.push(format!("partition {} lies outside the usable area", i + 1));
        }
        let name_units: Vec<u16> =
            e[56..128].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0).collect();
        let kind = gpt_guid(&e[..16]);
        let attributes = u64le(e, 48);
        partitions.push(Partition {
            number: i as u32 + 1,
            start: first,
            sectors: last.saturating_sub(first).saturating_add(1),
            kind_name: gpt_type_name(&kind),
            kind,
            bootable: attributes & (1 << 2) != 0,
            name: String::from_utf16_lossy(&name_units),
            guid: gpt_guid(&e[16..32]),
        });
    }
    Ok(Table { kind: "gpt", disk_id: primary.disk_guid, partitions, problems })
}

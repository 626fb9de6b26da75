//! Reading a FAT12/16/32 filesystem for inspection: the boot sector, directories (with long
//! names), paths and files' contents. Every walk is bounded: cluster chains by the volume's
//! cluster count (so a cyclic chain ends), directories by [`MAX_DIR_ENTRIES`], file reads by
//! the caller's limit.

use super::source::{DiskSource, read_vec};
use crate::bytes::{Le, SECTOR_BYTES, SECTOR_SIZE};
use crate::fat::{self, bpb, dir};
use crate::partition::mbr::{BOOT_SIGNATURE, BOOT_SIGNATURE_AT};

/// Most directory entries examined.
pub const MAX_DIR_ENTRIES: usize = 65_536;
/// Most path components [`Volume::lookup`] follows.
pub const MAX_PATH_DEPTH: usize = 8;
/// Most FAT copies a volume may declare.
const MAX_FATS: u32 = 4;
/// Bytes of a directory entry, as a `usize`.
const DIR_ENTRY: usize = dir::ENTRY_SIZE as usize;

/// The FAT variant, by cluster count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Variant {
    /// 12-bit entries.
    Fat12,
    /// 16-bit entries.
    Fat16,
    /// 32-bit entries.
    Fat32,
}

impl Variant {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Fat12 => "FAT12",
            Variant::Fat16 => "FAT16",
            Variant::Fat32 => "FAT32",
        }
    }
}

/// A mounted (read-only) FAT volume.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Volume {
    /// Byte offset of the partition on the disk.
    pub base: u64,
    /// FAT variant.
    pub variant: Variant,
    /// Sectors per cluster.
    pub sectors_per_cluster: u32,
    /// Reserved sectors.
    pub reserved: u32,
    /// Number of FATs.
    pub fats: u32,
    /// Sectors per FAT.
    pub fat_sectors: u32,
    /// Fixed root directory entries (FAT12/16).
    pub root_entries: u32,
    /// Total sectors.
    pub total_sectors: u32,
    /// Root directory cluster (FAT32).
    pub root_cluster: u32,
    /// Hidden-sectors field of the boot sector.
    pub hidden_sectors: u32,
    /// Volume serial number.
    pub volume_id: u32,
    /// OEM name (bytes 3..11 of the boot sector).
    pub oem: String,
    /// Clusters in the data area.
    pub clusters: u32,
}

/// A root directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// Long name if present and intact, else the 8.3 name.
    pub name: String,
    /// Size in bytes.
    pub size: u32,
    /// First cluster.
    pub first_cluster: u32,
    /// Whether it is a directory.
    pub directory: bool,
}

impl Volume {
    /// Reads the boot sector of the partition at byte `base`. Errors describe why it is not a
    /// FAT volume this reader understands.
    ///
    /// # Errors
    /// Why this is not a FAT volume this reader understands.
    pub fn open(source: &mut dyn DiskSource, base: u64) -> Result<Volume, String> {
        let b = read_vec(source, base, SECTOR_BYTES).map_err(|e| format!("cannot read the boot sector: {e}"))?;
        if b[BOOT_SIGNATURE_AT] != BOOT_SIGNATURE {
            return Err("no boot sector signature".into());
        }
        if bpb::BYTES_PER_SECTOR.get(&b) != Some(SECTOR_SIZE as u16) {
            return Err("sector size is not 512 bytes".into());
        }
        let spc = u32::from(bpb::SECTORS_PER_CLUSTER.get(&b).unwrap_or(0));
        if spc == 0 || !spc.is_power_of_two() {
            return Err("invalid sectors per cluster".into());
        }
        let field16 = |f: Le<u16>| u32::from(f.get(&b).unwrap_or(0));
        let reserved = field16(bpb::RESERVED_SECTORS);
        let fats = u32::from(bpb::FAT_COUNT.get(&b).unwrap_or(0));
        let root_entries = field16(bpb::ROOT_ENTRIES);
        let total = bpb::total_sectors(&b);
        let fat_sectors = bpb::sectors_per_fat(&b);
        if reserved == 0 || fats == 0 || fats > MAX_FATS || fat_sectors == 0 || total == 0 {
            return Err("boot sector geometry is invalid".into());
        }
        let root_sectors = (root_entries * dir::ENTRY_SIZE).div_ceil(SECTOR_SIZE as u32);
        let meta = u64::from(reserved) + u64::from(fats) * u64::from(fat_sectors) + u64::from(root_sectors);
        if meta >= u64::from(total) {
            return Err("boot sector geometry leaves no data area".into());
        }
        let clusters = ((u64::from(total) - meta) / u64::from(spc)) as u32;
        let variant = if clusters < fat::FAT16_MIN_CLUSTERS {
            Variant::Fat12
        } else if clusters < fat::FAT32_MIN_CLUSTERS {
            Variant::Fat16
        } else {
            Variant::Fat32
        };
        let fat32 = variant == Variant::Fat32;
        let end = base + u64::from(total) * SECTOR_SIZE;
        if end > source.size() {
            return Err("the filesystem extends beyond the end of the disk".into());
        }
        let field32 = |f: Le<u32>| f.get(&b).unwrap_or(0);
        Ok(Volume {
            base,
            variant,
            sectors_per_cluster: spc,
            reserved,
            fats,
            fat_sectors,
            root_entries,
            total_sectors: total,
            root_cluster: if fat32 { field32(bpb::ROOT_CLUSTER) } else { 0 },
            hidden_sectors: field32(bpb::HIDDEN_SECTORS),
            volume_id: field32(if fat32 { bpb::VOLUME_ID_32 } else { bpb::VOLUME_ID_16 }),
            oem: String::from_utf8_lossy(&b[bpb::OEM_NAME]).trim_end().to_string(),
            clusters,
        })
    }

    /// Bytes per cluster.
    pub fn cluster_size(&self) -> u64 {
        u64::from(self.sectors_per_cluster) * SECTOR_SIZE
    }

    /// First sector of the fixed root directory (FAT12/16), relative to the volume.
    fn root_dir_sector(&self) -> u64 {
        u64::from(self.reserved) + u64::from(self.fats) * u64::from(self.fat_sectors)
    }

    fn first_data_sector(&self) -> u64 {
        self.root_dir_sector() + u64::from((self.root_entries * dir::ENTRY_SIZE).div_ceil(SECTOR_SIZE as u32))
    }

    /// Absolute LBA of the first sector of `cluster`.
    pub fn cluster_lba(&self, cluster: u32) -> u64 {
        self.base / SECTOR_SIZE
            + self.first_data_sector()
            + u64::from(cluster - fat::FIRST_DATA_CLUSTER) * u64::from(self.sectors_per_cluster)
    }

    fn valid_cluster(&self, cluster: u32) -> bool {
        cluster >= fat::FIRST_DATA_CLUSTER && cluster - fat::FIRST_DATA_CLUSTER < self.clusters
    }

    /// The FAT entry of `cluster` in FAT copy 0.
    fn entry(&self, source: &mut dyn DiskSource, cluster: u32) -> Option<u32> {
        let fat = self.base + u64::from(self.reserved) * SECTOR_SIZE;
        let read16 =
            |source: &mut dyn DiskSource, at: u64| Le::<u16>::at(0).get(&read_vec(source, at, 2).ok()?).map(u32::from);
        match self.variant {
            Variant::Fat32 => {
                let b = read_vec(source, fat + u64::from(cluster) * 4, 4).ok()?;
                Some(Le::<u32>::at(0).get(&b)? & fat::FAT32_ENTRY_MASK)
            }
            Variant::Fat16 => read16(source, fat + u64::from(cluster) * 2),
            Variant::Fat12 => {
                // 12-bit entries: entry n starts at byte n * 3 / 2, in the low or high 12 bits.
                let v = read16(source, fat + u64::from(cluster) * 3 / 2)?;
                Some(if cluster.is_multiple_of(2) { v & 0xfff } else { v >> 4 })
            }
        }
    }

    fn end_of_chain(&self, value: u32) -> bool {
        value
            >= match self.variant {
                Variant::Fat32 => fat::FAT32_EOC_MIN,
                Variant::Fat16 => fat::FAT16_EOC_MIN,
                Variant::Fat12 => fat::FAT12_EOC_MIN,
            }
    }

    /// The cluster chain from `first`, at most `limit` clusters. Errors on a free or invalid
    /// cluster in the chain, and on a cluster met twice (a cycle), so the walk is bounded by the
    /// clusters actually chained in the FAT.
    ///
    /// # Errors
    /// Why the chain is broken: an invalid or free cluster in it, a loop, an unreadable FAT.
    pub fn chain(&self, source: &mut dyn DiskSource, first: u32, limit: u64) -> Result<Vec<u32>, String> {
        let mut chain = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut cluster = first;
        loop {
            if !self.valid_cluster(cluster) {
                return Err(format!("cluster chain reaches invalid cluster {cluster}"));
            }
            if !seen.insert(cluster) {
                return Err("cluster chain loops".into());
            }
            chain.push(cluster);
            if chain.len() as u64 >= limit {
                return Ok(chain);
            }
            let next = self.entry(source, cluster).ok_or("cannot read the FAT")?;
            if self.end_of_chain(next) {
                return Ok(chain);
            }
            cluster = next;
        }
    }

    /// The root directory's entries (files and directories, not labels or deleted entries).
    ///
    /// # Errors
    /// Why the root directory cannot be read.
    pub fn root(&self, source: &mut dyn DiskSource) -> Result<Vec<Entry>, String> {
        let raw = match self.variant {
            Variant::Fat32 => {
                let limit = (MAX_DIR_ENTRIES as u64 * u64::from(dir::ENTRY_SIZE)).div_ceil(self.cluster_size());
                let chain = self.chain(source, self.root_cluster, limit)?;
                let mut bytes = Vec::new();
                for c in chain {
                    let cluster = read_vec(source, self.cluster_lba(c) * SECTOR_SIZE, self.cluster_size() as usize)
                        .map_err(|e| e.to_string())?;
                    bytes.extend_from_slice(&cluster);
                }
                bytes
            }
            _ => {
                let at = self.base + self.root_dir_sector() * SECTOR_SIZE;
                read_vec(source, at, self.root_entries.min(MAX_DIR_ENTRIES as u32) as usize * DIR_ENTRY)
                    .map_err(|e| e.to_string())?
            }
        };
        Ok(parse_dir(&raw, self.variant == Variant::Fat32))
    }

    /// A subdirectory's entries (`.` and `..` excluded).
    ///
    /// # Errors
    /// Why the directory cannot be read: not a directory, a broken chain.
    pub fn dir(&self, source: &mut dyn DiskSource, entry: &Entry) -> Result<Vec<Entry>, String> {
        if !entry.directory {
            return Err(format!("{} is not a directory", entry.name));
        }
        let limit = (MAX_DIR_ENTRIES as u64 * u64::from(dir::ENTRY_SIZE)).div_ceil(self.cluster_size());
        let chain = self.chain(source, entry.first_cluster, limit)?;
        let mut bytes = Vec::new();
        for c in chain {
            let cluster = read_vec(source, self.cluster_lba(c) * SECTOR_SIZE, self.cluster_size() as usize)
                .map_err(|e| e.to_string())?;
            bytes.extend_from_slice(&cluster);
        }
        let mut entries = parse_dir(&bytes, self.variant == Variant::Fat32);
        entries.retain(|e| e.name != "." && e.name != "..");
        Ok(entries)
    }

    /// The entry at `path` (components separated by `/`, compared as FAT compares names, without
    /// regard to ASCII case), starting from the root directory's entries `root`; `None` when a
    /// component is missing. At most [`MAX_PATH_DEPTH`] components are followed.
    ///
    /// # Errors
    /// Why a directory on the path cannot be read.
    pub fn lookup(&self, source: &mut dyn DiskSource, root: &[Entry], path: &str) -> Result<Option<Entry>, String> {
        let mut entries = root.to_vec();
        let components: Vec<&str> = path.split('/').collect();
        if components.len() > MAX_PATH_DEPTH {
            return Ok(None);
        }
        for (i, name) in components.iter().enumerate() {
            let Some(found) = entries.iter().find(|e| e.name.eq_ignore_ascii_case(name)).cloned() else {
                return Ok(None);
            };
            if i + 1 == components.len() {
                return Ok(Some(found));
            }
            if !found.directory {
                return Ok(None);
            }
            entries = self.dir(source, &found)?;
        }
        Ok(None)
    }

    /// Reads a file's contents, at most `limit` bytes; errors if the chain is broken or too
    /// short for the size.
    ///
    /// # Errors
    /// Why the file cannot be read: a broken chain, or one shorter than the file.
    pub fn read(&self, source: &mut dyn DiskSource, entry: &Entry, limit: u64) -> Result<Vec<u8>, String> {
        let size = u64::from(entry.size).min(limit);
        if size == 0 {
            return Ok(Vec::new());
        }
        let clusters = size.div_ceil(self.cluster_size());
        let chain = self.chain(source, entry.first_cluster, clusters)?;
        if (chain.len() as u64) < clusters {
            return Err(format!("{}: cluster chain is shorter than the file", entry.name));
        }
        let mut out = Vec::with_capacity(size as usize);
        for c in chain {
            let n = (size - out.len() as u64).min(self.cluster_size()) as usize;
            out.extend_from_slice(&read_vec(source, self.cluster_lba(c) * SECTOR_SIZE, n).map_err(|e| e.to_string())?);
        }
        Ok(out)
    }
}

/// Parses raw directory entries, assembling long names (verified against their 8.3 entry's
/// checksum; a broken chain falls back to the 8.3 name).
fn parse_dir(raw: &[u8], fat32: bool) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut lfn: Vec<(u8, [u16; dir::LFN_CHARS_PER_ENTRY])> = Vec::new();
    let mut lfn_sum = 0u8;
    for e in raw.chunks_exact(DIR_ENTRY).take(MAX_DIR_ENTRIES) {
        match e[0] {
            dir::END_MARKER => break,
            dir::DELETED_MARKER => {
                lfn.clear();
                continue;
            }
            _ => {}
        }
        let attr = dir::ATTRIBUTES.get(e).unwrap_or(0);
        if attr & dir::ATTR_LONG_NAME_MASK == dir::ATTR_LONG_NAME {
            let order = dir::LFN_ORDER.get(e).unwrap_or(0);
            if order & dir::LFN_LAST != 0 {
                lfn.clear();
                lfn_sum = dir::LFN_CHECKSUM.get(e).unwrap_or(0);
            }
            let mut units = [0u16; dir::LFN_CHARS_PER_ENTRY];
            for (slot, &p) in units.iter_mut().zip(&dir::LFN_CHAR_OFFSETS) {
                *slot = Le::<u16>::at(p).get(e).unwrap_or(0);
            }
            lfn.push((order & dir::LFN_ORDER_MASK, units));
            continue;
        }
        if attr & dir::ATTR_VOLUME_ID != 0 {
            lfn.clear();
            continue;
        }
        let short_name = &e[dir::SHORT_NAME];
        let short = {
            let (base, ext) = short_name.split_at(dir::SHORT_BASE_LEN);
            let base = String::from_utf8_lossy(base).trim_end().to_string();
            let ext = String::from_utf8_lossy(ext).trim_end().to_string();
            if ext.is_empty() { base } else { format!("{base}.{ext}") }
        };
        let long = (!lfn.is_empty() && lfn_sum == dir::short_name_checksum(short_name)).then(|| {
            lfn.sort_by_key(|(order, _)| *order);
            let units: Vec<u16> =
                lfn.iter().flat_map(|(_, u)| u.iter().copied()).take_while(|&u| u != 0 && u != 0xffff).collect();
            String::from_utf16_lossy(&units)
        });
        lfn.clear();
        // The high half of the first cluster exists on FAT32 only.
        let high = if fat32 { u32::from(dir::FIRST_CLUSTER_HIGH.get(e).unwrap_or(0)) << 16 } else { 0 };
        entries.push(Entry {
            name: long.filter(|n| !n.is_empty()).unwrap_or(short),
            size: dir::FILE_SIZE.get(e).unwrap_or(0),
            first_cluster: high | u32::from(dir::FIRST_CLUSTER_LOW.get(e).unwrap_or(0)),
            directory: attr & dir::ATTR_DIRECTORY != 0,
        });
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_the_specification_example() {
        // The checksum of "KERNEL  BIN" computed by the reference rotate-and-add.
        let mut sum = 0u8;
        for &b in b"KERNEL  BIN" {
            sum = (if sum & 1 != 0 { 0x80u8 } else { 0 }).wrapping_add(sum >> 1).wrapping_add(b);
        }
        assert_eq!(dir::short_name_checksum(b"KERNEL  BIN"), sum);
    }

    #[test]
    fn directory_parsing_tolerates_garbage() {
        let mut raw = vec![0xffu8; 32 * 8];
        raw[32 * 7] = 0;
        let entries = parse_dir(&raw, true);
        assert!(entries.len() <= 8);
    }
}

//! Reading a FAT12/16/32 filesystem for inspection: the boot sector, the root directory (with
//! long names) and files' contents. Every walk is bounded: cluster chains by the volume's
//! cluster count (so a cyclic chain ends), directories by [`MAX_DIR_ENTRIES`], file reads by
//! the caller's limit.

use super::source::{DiskSource, read_vec};

/// Bytes per sector this reader handles.
const SECTOR: u64 = 512;
/// Most directory entries examined.
pub const MAX_DIR_ENTRIES: usize = 65_536;
/// Directory entry attribute: long-name entry.
const ATTR_LFN: u8 = 0x0f;
/// Directory entry attribute: volume label.
const ATTR_VOLUME: u8 = 0x08;
/// Directory entry attribute: directory.
const ATTR_DIRECTORY: u8 = 0x10;

/// The FAT variant, by cluster count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

fn u16le(b: &[u8], at: usize) -> u32 {
    u32::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Volume {
    /// Reads the boot sector of the partition at byte `base`. Errors describe why it is not a
    /// FAT volume this reader understands.
    pub fn open(source: &mut dyn DiskSource, base: u64) -> Result<Volume, String> {
        let b = read_vec(source, base, SECTOR as usize).map_err(|e| format!("cannot read the boot sector: {e}"))?;
        if b[510..512] != [0x55, 0xAA] {
            return Err("no boot sector signature".into());
        }
        if u16le(&b, 11) != SECTOR as u32 {
            return Err("sector size is not 512 bytes".into());
        }
        let spc = u32::from(b[13]);
        if spc == 0 || !spc.is_power_of_two() {
            return Err("invalid sectors per cluster".into());
        }
        let reserved = u16le(&b, 14);
        let fats = u32::from(b[16]);
        let root_entries = u16le(&b, 17);
        let total = match u16le(&b, 19) {
            0 => u32le(&b, 32),
            n => n,
        };
        let fat_sectors = match u16le(&b, 22) {
            0 => u32le(&b, 36),
            n => n,
        };
        if reserved == 0 || fats == 0 || fats > 4 || fat_sectors == 0 || total == 0 {
            return Err("boot sector geometry is invalid".into());
        }
        let root_sectors = (root_entries * 32).div_ceil(SECTOR as u32);
        let meta = u64::from(reserved) + u64::from(fats) * u64::from(fat_sectors) + u64::from(root_sectors);
        if meta >= u64::from(total) {
            return Err("boot sector geometry leaves no data area".into());
        }
        let clusters = ((u64::from(total) - meta) / u64::from(spc)) as u32;
        let variant = if clusters < 4085 {
            Variant::Fat12
        } else if clusters < 65_525 {
            Variant::Fat16
        } else {
            Variant::Fat32
        };
        let fat32 = variant == Variant::Fat32;
        let end = base + u64::from(total) * SECTOR;
        if end > source.size() {
            return Err("the filesystem extends beyond the end of the disk".into());
        }
        Ok(Volume {
            base,
            variant,
            sectors_per_cluster: spc,
            reserved,
            fats,
            fat_sectors,
            root_entries,
            total_sectors: total,
            root_cluster: if fat32 { u32le(&b, 44) } else { 0 },
            hidden_sectors: u32le(&b, 28),
            volume_id: u32le(&b, if fat32 { 67 } else { 39 }),
            oem: String::from_utf8_lossy(&b[3..11]).trim_end().to_string(),
            clusters,
        })
    }

    /// Bytes per cluster.
    pub fn cluster_size(&self) -> u64 {
        u64::from(self.sectors_per_cluster) * SECTOR
    }

    fn first_data_sector(&self) -> u64 {
        u64::from(self.reserved)
            + u64::from(self.fats) * u64::from(self.fat_sectors)
            + u64::from((self.root_entries * 32).div_ceil(SECTOR as u32))
    }

    /// Absolute LBA of the first sector of `cluster`.
    pub fn cluster_lba(&self, cluster: u32) -> u64 {
        self.base / SECTOR + self.first_data_sector() + u64::from(cluster - 2) * u64::from(self.sectors_per_cluster)
    }

    fn valid_cluster(&self, cluster: u32) -> bool {
        cluster >= 2 && cluster - 2 < self.clusters
    }

    /// The FAT entry of `cluster` in FAT copy 0.
    fn entry(&self, source: &mut dyn DiskSource, cluster: u32) -> Option<u32> {
        let fat = self.base + u64::from(self.reserved) * SECTOR;
        match self.variant {
            Variant::Fat32 => {
                let b = read_vec(source, fat + u64::from(cluster) * 4, 4).ok()?;
                Some(u32le(&b, 0) & 0x0fff_ffff)
            }
            Variant::Fat16 => {
                let b = read_vec(source, fat + u64::from(cluster) * 2, 2).ok()?;
                Some(u16le(&b, 0))
            }
            Variant::Fat12 => {
                let at = u64::from(cluster) * 3 / 2;
                let b = read_vec(source, fat + at, 2).ok()?;
                let v = u16le(&b, 0);
                Some(if cluster.is_multiple_of(2) { v & 0xfff } else { v >> 4 })
            }
        }
    }

    fn end_of_chain(&self, value: u32) -> bool {
        match self.variant {
            Variant::Fat32 => value >= 0x0fff_fff8,
            Variant::Fat16 => value >= 0xfff8,
            Variant::Fat12 => value >= 0xff8,
        }
    }

    /// The cluster chain from `first`, at most `limit` clusters. Errors on a free or invalid
    /// cluster in the chain, and on a cluster met twice (a cycle), so the walk is bounded by the
    /// clusters actually chained in the FAT.
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
    pub fn root(&self, source: &mut dyn DiskSource) -> Result<Vec<Entry>, String> {
        let raw = match self.variant {
            Variant::Fat32 => {
                let limit = (MAX_DIR_ENTRIES as u64 * 32).div_ceil(self.cluster_size());
                let chain = self.chain(source, self.root_cluster, limit)?;
                let mut bytes = Vec::new();
                for c in chain {
                    let cluster = read_vec(source, self.cluster_lba(c) * SECTOR, self.cluster_size() as usize)
                        .map_err(|e| e.to_string())?;
                    bytes.extend_from_slice(&cluster);
                }
                bytes
            }
            _ => {
                let at = self.base
                    + (u64::from(self.reserved) + u64::from(self.fats) * u64::from(self.fat_sectors)) * SECTOR;
                read_vec(source, at, self.root_entries.min(MAX_DIR_ENTRIES as u32) as usize * 32)
                    .map_err(|e| e.to_string())?
            }
        };
        Ok(parse_dir(&raw, self.variant == Variant::Fat32))
    }

    /// Reads a file's contents, at most `limit` bytes; errors if the chain is broken or too
    /// short for the size.
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
            out.extend_from_slice(&read_vec(source, self.cluster_lba(c) * SECTOR, n).map_err(|e| e.to_string())?);
        }
        Ok(out)
    }

    /// Whether a file's clusters are consecutive, and its first LBA.
    pub fn contiguous(&self, source: &mut dyn DiskSource, entry: &Entry) -> Option<(bool, u64)> {
        let clusters = u64::from(entry.size).div_ceil(self.cluster_size()).max(1);
        let chain = self.chain(source, entry.first_cluster, clusters).ok()?;
        let contiguous = chain.windows(2).all(|w| w[1] == w[0] + 1);
        Some((contiguous, self.cluster_lba(chain[0])))
    }
}

/// Checksum of an 8.3 name, as long-name entries record it.
fn lfn_checksum(short: &[u8]) -> u8 {
    short.iter().fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

/// Parses raw directory entries, assembling long names (verified against their 8.3 entry's
/// checksum; a broken chain falls back to the 8.3 name).
fn parse_dir(raw: &[u8], fat32: bool) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut lfn: Vec<(u8, [u16; 13])> = Vec::new();
    let mut lfn_sum = 0u8;
    for e in raw.chunks_exact(32).take(MAX_DIR_ENTRIES) {
        match e[0] {
            0x00 => break,
            0xe5 => {
                lfn.clear();
                continue;
            }
            _ => {}
        }
        let attr = e[11];
        if attr & 0x3f == ATTR_LFN {
            if e[0] & 0x40 != 0 {
                lfn.clear();
                lfn_sum = e[13];
            }
            let mut units = [0u16; 13];
            let positions = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
            for (slot, &p) in units.iter_mut().zip(&positions) {
                *slot = u16::from_le_bytes([e[p], e[p + 1]]);
            }
            lfn.push((e[0] & 0x1f, units));
            continue;
        }
        if attr & ATTR_VOLUME != 0 {
            lfn.clear();
            continue;
        }
        let short = {
            let base = String::from_utf8_lossy(&e[0..8]).trim_end().to_string();
            let ext = String::from_utf8_lossy(&e[8..11]).trim_end().to_string();
            if ext.is_empty() { base } else { format!("{base}.{ext}") }
        };
        let long = (!lfn.is_empty() && lfn_sum == lfn_checksum(&e[0..11])).then(|| {
            lfn.sort_by_key(|(order, _)| *order);
            let units: Vec<u16> =
                lfn.iter().flat_map(|(_, u)| u.iter().copied()).take_while(|&u| u != 0 && u != 0xffff).collect();
            String::from_utf16_lossy(&units)
        });
        lfn.clear();
        // The high half of the first cluster exists on FAT32 only.
        let high = if fat32 { u16le(e, 20) << 16 } else { 0 };
        entries.push(Entry {
            name: long.filter(|n| !n.is_empty()).unwrap_or(short),
            size: u32le(e, 28),
            first_cluster: high | u16le(e, 26),
            directory: attr & ATTR_DIRECTORY != 0,
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
        assert_eq!(lfn_checksum(b"KERNEL  BIN"), sum);
    }

    #[test]
    fn directory_parsing_tolerates_garbage() {
        let mut raw = vec![0xffu8; 32 * 8];
        raw[32 * 7] = 0;
        let entries = parse_dir(&raw, true);
        assert!(entries.len() <= 8);
    }
}

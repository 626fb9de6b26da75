//! FAT planning: the geometry of the filesystem (FAT type, cluster size, where the tables, root
//! directory and data area lie) and the clusters every file will occupy, computed without I/O.
//!
//! The writer formats the partition with the `fatfs` crate. This module mirrors, formula for
//! formula, how `fatfs` 0.3.6 lays a volume out and allocates clusters on a fresh volume, so that
//! the plan can say where the kernel's bytes will be before any byte is written; the writer then
//! checks that `fatfs` did exactly what the plan says and fails loudly otherwise. The choices that
//! are ours (not `fatfs`'s) are the cluster size and therefore the FAT type: FAT32 wherever the
//! partition can hold the 65,525 clusters FAT32 requires, FAT16 below that.

use super::dir::{ENTRY_SIZE as DIR_ENTRY_SIZE, LFN_CHARS_PER_ENTRY};
use super::{FAT16_MIN_CLUSTERS, FAT32_MAX_CLUSTERS, FAT32_MIN_CLUSTERS, FIRST_DATA_CLUSTER};
use crate::partition::mbr;
use crate::size::{GIB, KIB, MIB};

/// Bytes per sector, as the `u32` the FAT arithmetic uses.
const SECTOR_SIZE: u32 = crate::bytes::SECTOR_SIZE as u32;
/// Longest file name, in bytes, that `fatfs` accepts.
pub const MAX_NAME_BYTES: usize = 255;
/// Number of FAT copies.
pub const FAT_COPIES: u8 = 2;
/// Reserved sectors `fatfs` puts before the first FAT of a FAT32 volume (boot sector, FSInfo,
/// backup boot sector).
pub const FAT32_RESERVED_SECTORS: u16 = 8;
/// Reserved sectors before the first FAT of a FAT16 volume (the boot sector).
pub const FAT16_RESERVED_SECTORS: u16 = 1;
/// Root directory entries of a FAT16 volume (the fixed-size root directory region).
pub const FAT16_ROOT_ENTRIES: u16 = 512;
/// First cluster of the FAT32 root directory.
pub const FAT32_ROOT_CLUSTER: u32 = 2;
/// Largest cluster size used.
pub const MAX_CLUSTER_SIZE: u32 = 32 * KIB as u32;

/// The FAT variant of a volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FatType {
    /// 16-bit FAT entries, fixed-size root directory.
    Fat16,
    /// 32-bit FAT entries (28 used), root directory in clusters.
    Fat32,
}

impl FatType {
    /// Bits per FAT entry.
    pub const fn entry_bits(self) -> u32 {
        match self {
            FatType::Fat16 => 16,
            FatType::Fat32 => 32,
        }
    }

    /// The MBR partition type byte for a partition holding this filesystem, addressed by LBA.
    pub const fn mbr_partition_type(self) -> u8 {
        match self {
            FatType::Fat16 => mbr::TYPE_FAT16_LBA,
            FatType::Fat32 => mbr::TYPE_FAT32_LBA,
        }
    }
}

impl std::fmt::Display for FatType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FatType::Fat16 => "FAT16",
            FatType::Fat32 => "FAT32",
        })
    }
}

/// Where the parts of a FAT volume lie, in sectors relative to the start of the partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FatGeometry {
    /// FAT16 or FAT32.
    pub fat_type: FatType,
    /// Sectors in the volume.
    pub total_sectors: u32,
    /// Sectors per cluster (a power of two).
    pub sectors_per_cluster: u32,
    /// Sectors before the first FAT.
    pub reserved_sectors: u32,
    /// Sectors in each FAT copy.
    pub sectors_per_fat: u32,
    /// Entries of the fixed root directory (0 on FAT32).
    pub root_dir_entries: u32,
}

impl FatGeometry {
    /// Computes the geometry `fatfs` gives a volume of `total_sectors` with the given cluster size,
    /// or `None` when that combination does not make a FAT16 or FAT32 volume.
    ///
    /// `fatfs` tries FAT32, then FAT16, then FAT12, and keeps the first whose cluster count fits
    /// the type; the FAT size is the smallest that can map every cluster, rounding towards a larger
    /// FAT (see `determine_sectors_per_fat` in `fatfs`'s `boot_sector.rs`).
    pub fn for_volume(total_sectors: u32, sectors_per_cluster: u32) -> Option<FatGeometry> {
        [FatType::Fat32, FatType::Fat16]
            .into_iter()
            .find_map(|fat_type| Self::try_type(total_sectors, sectors_per_cluster, fat_type))
    }

    fn try_type(total_sectors: u32, sectors_per_cluster: u32, fat_type: FatType) -> Option<FatGeometry> {
        let (reserved, root_entries) = match fat_type {
            FatType::Fat32 => (u32::from(FAT32_RESERVED_SECTORS), 0),
            FatType::Fat16 => (u32::from(FAT16_RESERVED_SECTORS), u32::from(FAT16_ROOT_ENTRIES)),
        };
        let root_dir_sectors = (root_entries * DIR_ENTRY_SIZE).div_ceil(SECTOR_SIZE);
        // fatfs refuses volumes without room for at least 8 sectors of FAT and data.
        if u64::from(total_sectors) <= u64::from(reserved) + u64::from(root_dir_sectors) + 8 {
            return None;
        }
        let t0 = u64::from(total_sectors - reserved - root_dir_sectors);
        let t1 = t0 + 2 * u64::from(sectors_per_cluster);
        let bits_per_cluster = sectors_per_cluster * SECTOR_SIZE * 8;
        let t2 = u64::from(bits_per_cluster / fat_type.entry_bits() + u32::from(FAT_COPIES));
        let sectors_per_fat = u32::try_from(t1.div_ceil(t2)).ok()?;
        let used =
            u64::from(reserved) + u64::from(root_dir_sectors) + u64::from(sectors_per_fat) * u64::from(FAT_COPIES);
        let data_sectors = u64::from(total_sectors).checked_sub(used)?;
        let clusters = u32::try_from(data_sectors / u64::from(sectors_per_cluster)).ok()?;
        let fits = match fat_type {
            FatType::Fat16 => (FAT16_MIN_CLUSTERS..FAT32_MIN_CLUSTERS).contains(&clusters),
            FatType::Fat32 => (FAT32_MIN_CLUSTERS..=FAT32_MAX_CLUSTERS).contains(&clusters),
        };
        fits.then_some(FatGeometry {
            fat_type,
            total_sectors,
            sectors_per_cluster,
            reserved_sectors: reserved,
            sectors_per_fat,
            root_dir_entries: root_entries,
        })
    }

    /// Chooses the geometry for a partition of `total_sectors`: FAT32 with the conventional cluster
    /// size for the volume size (smaller clusters if needed to reach FAT32's minimum cluster
    /// count), else FAT16 with the smallest cluster size that makes a valid FAT16 volume. `None`
    /// when the partition is too small even for FAT16.
    pub fn choose(total_sectors: u32) -> Option<FatGeometry> {
        let bytes = u64::from(total_sectors) * u64::from(SECTOR_SIZE);
        let preferred = preferred_fat32_cluster_size(bytes);
        let fat32 = std::iter::successors(Some(preferred), |&size| (size > SECTOR_SIZE).then_some(size / 2))
            .filter_map(|size| Self::for_volume(total_sectors, size / SECTOR_SIZE))
            .find(|g| g.fat_type == FatType::Fat32);
        fat32.or_else(|| {
            std::iter::successors(Some(SECTOR_SIZE), |&size| (size < MAX_CLUSTER_SIZE).then_some(size * 2))
                .filter_map(|size| Self::for_volume(total_sectors, size / SECTOR_SIZE))
                .find(|g| g.fat_type == FatType::Fat16)
        })
    }

    /// Bytes per cluster.
    pub const fn cluster_size(&self) -> u32 {
        self.sectors_per_cluster * SECTOR_SIZE
    }

    /// Sectors of the fixed root directory region (0 on FAT32).
    pub const fn root_dir_sectors(&self) -> u32 {
        (self.root_dir_entries * DIR_ENTRY_SIZE).div_ceil(SECTOR_SIZE)
    }

    /// First sector of the first FAT.
    pub const fn first_fat_sector(&self) -> u32 {
        self.reserved_sectors
    }

    /// First sector of the fixed root directory region (FAT16).
    pub const fn root_dir_sector(&self) -> u32 {
        self.reserved_sectors + self.sectors_per_fat * FAT_COPIES as u32
    }

    /// First sector of the data area (cluster 2).
    pub const fn first_data_sector(&self) -> u32 {
        self.root_dir_sector() + self.root_dir_sectors()
    }

    /// Clusters in the data area.
    pub const fn total_clusters(&self) -> u32 {
        (self.total_sectors - self.first_data_sector()) / self.sectors_per_cluster
    }

    /// First sector of a data cluster, relative to the partition.
    pub const fn cluster_sector(&self, cluster: u32) -> u32 {
        self.first_data_sector() + (cluster - FIRST_DATA_CLUSTER) * self.sectors_per_cluster
    }

    /// Directory entries a file of this cluster size holds per cluster.
    pub const fn dir_entries_per_cluster(&self) -> u32 {
        self.cluster_size() / DIR_ENTRY_SIZE
    }
}

/// The conventional FAT32 cluster size for a volume of `bytes` (Microsoft's defaults, which
/// `fatfs` and mkfs.fat follow up to 8 GiB): 512 bytes up to 260 MiB, 4 KiB up to 8 GiB, then
/// doubling with every doubling of the volume, at most 32 KiB.
pub fn preferred_fat32_cluster_size(bytes: u64) -> u32 {
    if bytes <= 260 * MIB {
        SECTOR_SIZE
    } else if bytes <= 8 * GIB {
        4 * KIB as u32
    } else if bytes <= 16 * GIB {
        8 * KIB as u32
    } else if bytes <= 32 * GIB {
        16 * KIB as u32
    } else {
        MAX_CLUSTER_SIZE
    }
}

/// Directory entries `fatfs` writes for a file name: it always writes a long-name chain (13
/// UTF-16 units per entry) followed by the 8.3 entry, whether or not the name is a valid 8.3 name.
pub fn dir_entries_for_name(name: &str) -> u32 {
    let units = name.encode_utf16().count();
    units.div_ceil(LFN_CHARS_PER_ENTRY) as u32 + 1
}

/// Whether FAT (as `fatfs` compares names: character by character, upper-cased) takes `a` and
/// `b` for the same name.
pub fn same_name(a: &str, b: &str) -> bool {
    a.chars().flat_map(char::to_uppercase).eq(b.chars().flat_map(char::to_uppercase))
}

/// Checks that `fatfs` will accept `name` as a file name in the root directory, returning why not.
///
/// # Errors
/// Why the name cannot be stored, in words.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return Err("FAT long names are limited to 255 bytes");
    }
    if name == "." || name == ".." {
        return Err("'.' and '..' are reserved directory names");
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Err("FAT drops trailing dots and spaces, so the name would not be stored as given");
    }
    for c in name.chars() {
        let allowed =
            c.is_ascii_alphanumeric() || ('\u{80}'..='\u{FFFF}').contains(&c) || "$%'-_@~`!(){}.+,;=[]^#&".contains(c);
        if c == ' ' || c.is_whitespace() {
            return Err("the name contains whitespace, which would split the kernel's command line");
        }
        if !allowed {
            return Err(
                "the name contains a character FAT cannot store (allowed: letters, digits and $%'-_@~`!(){}.+,;=[]^#&)",
            );
        }
    }
    Ok(())
}

/// A file as the plan places it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlannedFile {
    /// Path from the root directory, components separated by `/` (a name alone for a file in
    /// the root directory).
    pub name: String,
    /// Length in bytes.
    pub size: u64,
    /// First cluster (the file occupies `clusters` consecutive clusters from here).
    pub first_cluster: u32,
    /// Clusters occupied.
    pub clusters: u32,
}

/// A directory as the plan places it (created before the first file inside it).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlannedDir {
    /// Path from the root directory, components separated by `/`.
    pub path: String,
    /// Its clusters, in chain order (the first holds its `.` and `..` entries).
    pub clusters: Vec<u32>,
}

/// The contents of a planned volume: geometry, directories and files.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FatPlan {
    /// Volume geometry.
    pub geometry: FatGeometry,
    /// Clusters of the root directory, in chain order (FAT32; empty on FAT16).
    pub root_dir_clusters: Vec<u32>,
    /// Directories below the root, in creation order.
    pub dirs: Vec<PlannedDir>,
    /// Files in creation order.
    pub files: Vec<PlannedFile>,
    /// Cluster the allocator would hand out next (recorded in FSInfo).
    pub next_free_cluster: u32,
}

/// The directories leading to `path`, shortest first (`"EFI/BOOT/X"` gives `"EFI"`,
/// `"EFI/BOOT"`). The writer creates the missing ones in this order, as the plan does.
pub fn parent_dirs(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(at, _)| &path[..at])
}

/// The parent directory of `path`, or `None` for the root directory.
pub fn parent_dir(path: &str) -> Option<&str> {
    path.rfind('/').map(|at| &path[..at])
}

/// The last component of `path`.
pub fn base_name(path: &str) -> &str {
    path.rfind('/').map_or(path, |at| &path[at + 1..])
}

/// Directory entries a new directory starts with: `.` and `..`, each of which `fatfs` 0.3.6
/// writes with a long-name entry too (the writer removes those afterwards, see `write.rs`; the
/// allocation has already happened by then).
const NEW_DIR_ENTRIES: u32 = 4;

/// Allocation state of one directory while planning.
struct DirState {
    /// Entries in use.
    used: u32,
    /// Clusters, in chain order (empty for the fixed FAT16 root directory).
    clusters: Vec<u32>,
}

/// The allocator's state while planning.
struct Allocator {
    geometry: FatGeometry,
    next: u32,
}

impl Allocator {
    fn take(&mut self) -> Option<u32> {
        let cluster = self.next;
        self.next = self.next.checked_add(1)?;
        Some(cluster)
    }

    /// Adds `count` entries to `dir`, extending its chain one cluster at a time at the next free
    /// cluster, as `fatfs` does; `None` when the fixed root directory is full.
    fn add_entries(&mut self, dir: &mut DirState, count: u32, fixed_capacity: Option<u32>) -> Option<()> {
        dir.used = dir.used.checked_add(count)?;
        match fixed_capacity {
            Some(capacity) => (dir.used <= capacity).then_some(()),
            None => {
                let needed = dir.used.div_ceil(self.geometry.dir_entries_per_cluster());
                while (dir.clusters.len() as u32) < needed {
                    let c = self.take()?;
                    dir.clusters.push(c);
                }
                Some(())
            }
        }
    }
}

impl FatPlan {
    /// Places `files` (path, size) on a fresh volume of the given geometry, in order, exactly as
    /// `fatfs` allocates. Each directory on a file's path that does not exist yet is created
    /// first: its cluster is allocated, then its entries are written in its parent (extending
    /// the parent by a cluster at the next free cluster when they do not fit; a FAT16 root
    /// directory has a fixed size), then its `.` and `..` entries. Then the file's entries are
    /// written in its directory, and its data takes consecutive clusters. `None` when the
    /// volume is too small.
    pub fn place(geometry: FatGeometry, files: &[(&str, u64)]) -> Option<FatPlan> {
        let mut alloc = Allocator { geometry, next: FIRST_DATA_CLUSTER };
        let fixed_root = (geometry.fat_type == FatType::Fat16).then_some(geometry.root_dir_entries);
        let mut root = DirState { used: 0, clusters: Vec::new() };
        if geometry.fat_type == FatType::Fat32 {
            root.clusters.push(alloc.take()?);
        }
        let mut dirs: Vec<(String, DirState)> = Vec::new();
        let mut placed = Vec::with_capacity(files.len());
        let cluster_size = u64::from(geometry.cluster_size());
        for &(path, size) in files {
            for dir in parent_dirs(path) {
                if dirs.iter().any(|(p, _)| p == dir) {
                    continue;
                }
                let first = alloc.take()?;
                let entries = dir_entries_for_name(base_name(dir));
                Self::add_to_parent(&mut alloc, &mut root, fixed_root, &mut dirs, parent_dir(dir), entries)?;
                let mut state = DirState { used: 0, clusters: vec![first] };
                alloc.add_entries(&mut state, NEW_DIR_ENTRIES, None)?;
                dirs.push((dir.to_owned(), state));
            }
            let entries = dir_entries_for_name(base_name(path));
            Self::add_to_parent(&mut alloc, &mut root, fixed_root, &mut dirs, parent_dir(path), entries)?;
            let clusters = u32::try_from(size.div_ceil(cluster_size)).ok()?;
            let first_cluster = if clusters == 0 { 0 } else { alloc.next };
            alloc.next = alloc.next.checked_add(clusters)?;
            placed.push(PlannedFile { name: path.to_owned(), size, first_cluster, clusters });
        }
        // Clusters 2..next are in use; `next` must still be a cluster number of this volume or
        // one past the last.
        if alloc.next - FIRST_DATA_CLUSTER > geometry.total_clusters() {
            return None;
        }
        Some(FatPlan {
            geometry,
            root_dir_clusters: root.clusters,
            dirs: dirs.into_iter().map(|(path, state)| PlannedDir { path, clusters: state.clusters }).collect(),
            files: placed,
            next_free_cluster: alloc.next,
        })
    }

    fn add_to_parent(
        alloc: &mut Allocator,
        root: &mut DirState,
        fixed_root: Option<u32>,
        dirs: &mut [(String, DirState)],
        parent: Option<&str>,
        entries: u32,
    ) -> Option<()> {
        match parent {
            None => alloc.add_entries(root, entries, fixed_root),
            Some(p) => {
                let (_, state) = dirs.iter_mut().find(|(path, _)| path == p)?;
                alloc.add_entries(state, entries, None)
            }
        }
    }

    /// The planned file at `path`.
    pub fn file(&self, path: &str) -> Option<&PlannedFile> {
        self.files.iter().find(|f| f.name == path)
    }

    /// Clusters in use (directories and files).
    pub fn used_clusters(&self) -> u32 {
        self.next_free_cluster - FIRST_DATA_CLUSTER
    }

    /// Free clusters after the build (recorded in FSInfo).
    pub fn free_clusters(&self) -> u32 {
        self.geometry.total_clusters() - self.used_clusters()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB_SECTORS: u32 = (MIB / SECTOR_SIZE as u64) as u32;

    #[test]
    fn one_gib_partition_is_fat32_with_4k_clusters() {
        let total = (GIB / 512) as u32 - 2048;
        let g = FatGeometry::choose(total).unwrap();
        assert_eq!(g.fat_type, FatType::Fat32);
        assert_eq!(g.cluster_size(), 4096);
        assert_eq!(g.reserved_sectors, 8);
        // 2 FATs of 4 bytes per cluster, for ~262,000 clusters.
        assert_eq!(g.sectors_per_fat, 2043);
        assert_eq!(g.first_data_sector(), 8 + 2 * 2043);
        assert!(g.total_clusters() >= FAT32_MIN_CLUSTERS);
        // Every cluster has a FAT entry, plus the two reserved ones.
        assert!(u64::from(g.sectors_per_fat) * 512 / 4 >= u64::from(g.total_clusters()) + 2);
    }

    #[test]
    fn small_partitions_fall_back_to_fat16_then_fail() {
        let g = FatGeometry::choose(30 * MIB_SECTORS).unwrap();
        assert_eq!(g.fat_type, FatType::Fat16);
        assert_eq!(g.cluster_size(), 512);
        let g = FatGeometry::choose(40 * MIB_SECTORS).unwrap();
        assert_eq!(g.fat_type, FatType::Fat32);
        assert_eq!(g.cluster_size(), 512);
        let g = FatGeometry::choose(3 * MIB_SECTORS).unwrap();
        assert_eq!(g.fat_type, FatType::Fat16);
        assert!(FatGeometry::choose(MIB_SECTORS).is_none());
        assert!(FatGeometry::choose(0).is_none());
    }

    #[test]
    fn fat32_threshold_is_where_clusters_reach_the_minimum() {
        // Find the smallest FAT32 volume and check its neighbour below is FAT16.
        let first_fat32 = (1..=80 * MIB_SECTORS)
            .step_by(64)
            .find(|&s| FatGeometry::choose(s).is_some_and(|g| g.fat_type == FatType::Fat32))
            .unwrap();
        let below = FatGeometry::choose(first_fat32 - 64).unwrap();
        assert_eq!(below.fat_type, FatType::Fat16);
        let g = FatGeometry::choose(first_fat32).unwrap();
        assert!(g.total_clusters() >= FAT32_MIN_CLUSTERS);
    }

    #[test]
    fn geometry_invariants_hold_across_sizes() {
        let mut sectors = 5000u32;
        while sectors < u32::MAX / 2 {
            if let Some(g) = FatGeometry::choose(sectors) {
                let clusters = g.total_clusters();
                let entry_bytes = u64::from(g.fat_type.entry_bits() / 8);
                assert!(u64::from(g.sectors_per_fat) * 512 >= (u64::from(clusters) + 2) * entry_bytes, "{sectors}");
                assert!(g.first_data_sector() < g.total_sectors);
                assert!(g.cluster_size().is_power_of_two() && g.cluster_size() <= MAX_CLUSTER_SIZE);
                match g.fat_type {
                    FatType::Fat16 => {
                        assert!((FAT16_MIN_CLUSTERS..FAT32_MIN_CLUSTERS).contains(&clusters))
                    }
                    FatType::Fat32 => {
                        assert!((FAT32_MIN_CLUSTERS..=FAT32_MAX_CLUSTERS).contains(&clusters))
                    }
                }
            } else {
                assert!(sectors < 5 * MIB_SECTORS, "no geometry for {sectors} sectors");
            }
            sectors = sectors + sectors / 7 + 1;
        }
    }

    #[test]
    fn cluster_size_follows_convention() {
        assert_eq!(preferred_fat32_cluster_size(260 * MIB), 512);
        assert_eq!(preferred_fat32_cluster_size(260 * MIB + 1), 4096);
        assert_eq!(preferred_fat32_cluster_size(8 * GIB), 4096);
        assert_eq!(preferred_fat32_cluster_size(8 * GIB + 1), 8192);
        assert_eq!(preferred_fat32_cluster_size(32 * GIB), 16384);
        assert_eq!(preferred_fat32_cluster_size(2 << 40), 32768);
    }

    #[test]
    fn dir_entries_count_long_name_chains() {
        assert_eq!(dir_entries_for_name("A"), 2);
        assert_eq!(dir_entries_for_name("KERNEL.BIN"), 2);
        assert_eq!(dir_entries_for_name("abcdefghijklm"), 2);
        assert_eq!(dir_entries_for_name("abcdefghijklmn"), 3);
        assert_eq!(dir_entries_for_name(&"x".repeat(255)), 21);
        assert_eq!(dir_entries_for_name("ü"), 2);
    }

    #[test]
    fn names_compare_as_fat_compares_them() {
        assert!(same_name("Build-Info.TXT", "build-info.txt"));
        assert!(same_name("buıld-info.txt", "BUILD-INFO.TXT")); // dotless i upper-cases to I
        assert!(!same_name("build-info.txt.", "build-info.txt"));
    }

    #[test]
    fn names_are_checked() {
        for good in ["unikernel.bin", "test_hello.virtio", "a", "K~1", "ünïcode", "x".repeat(255).as_str()] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a b",
            "a\tb",
            "x/y",
            "x\\y",
            "a:b",
            "a*",
            "q?",
            "<>",
            "\"",
            "a|b",
            "trail.",
            "x".repeat(256).as_str(),
            "\u{1F600}",
            "nul\0",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn files_are_placed_consecutively_after_the_root_directory() {
        let g = FatGeometry::choose((GIB / 512) as u32 - 2048).unwrap();
        let plan = FatPlan::place(g, &[("unikernel.bin", 225_408), ("build-info.txt", 300)]).unwrap();
        assert_eq!(plan.root_dir_clusters, vec![2]);
        assert_eq!(plan.files[0].first_cluster, 3);
        assert_eq!(plan.files[0].clusters, 56); // 225,408 / 4096 rounded up
        assert_eq!(plan.files[1].first_cluster, 59);
        assert_eq!(plan.files[1].clusters, 1);
        assert_eq!(plan.next_free_cluster, 60);
        assert_eq!(plan.free_clusters(), g.total_clusters() - 58);
    }

    #[test]
    fn long_names_extend_the_fat32_root_directory() {
        // 512-byte clusters hold 16 entries; a 200-character name needs 17.
        let g = FatGeometry::choose(64 * MIB_SECTORS).unwrap();
        assert_eq!(g.cluster_size(), 512);
        let long = "a".repeat(200);
        let plan = FatPlan::place(g, &[(&long, 10_000), ("build-info.txt", 10)]).unwrap();
        assert_eq!(plan.root_dir_clusters, vec![2, 3]);
        assert_eq!(plan.files[0].first_cluster, 4);
        // 195 characters: exactly 16 entries; the next file's entries extend after the data.
        let name = "a".repeat(195);
        let plan = FatPlan::place(g, &[(&name, 10_000), ("build-info.txt", 10)]).unwrap();
        assert_eq!(plan.files[0].first_cluster, 3);
        assert_eq!(plan.root_dir_clusters, vec![2, 23]);
        assert_eq!(plan.files[1].first_cluster, 24);
    }

    #[test]
    fn fat16_places_data_at_cluster_two() {
        let g = FatGeometry::choose(20 * MIB_SECTORS).unwrap();
        assert_eq!(g.fat_type, FatType::Fat16);
        let plan = FatPlan::place(g, &[("k", 1), ("i", 1)]).unwrap();
        assert!(plan.root_dir_clusters.is_empty());
        assert_eq!(plan.files[0].first_cluster, 2);
        assert_eq!(plan.files[1].first_cluster, 3);
    }

    #[test]
    fn directories_are_created_before_their_files() {
        let g = FatGeometry::choose((GIB / 512) as u32 - 2048).unwrap();
        let files = [("unikernel.bin", 225_408), ("build-info.txt", 300), ("EFI/BOOT/BOOTX64.EFI", 28_672)];
        let plan = FatPlan::place(g, &files).unwrap();
        assert_eq!(plan.files[1].first_cluster, 59);
        // EFI takes the next cluster, then BOOT, then the loader's seven 4 KiB clusters.
        assert_eq!(plan.dirs.len(), 2);
        assert_eq!((plan.dirs[0].path.as_str(), plan.dirs[0].clusters.as_slice()), ("EFI", &[60][..]));
        assert_eq!((plan.dirs[1].path.as_str(), plan.dirs[1].clusters.as_slice()), ("EFI/BOOT", &[61][..]));
        assert_eq!(plan.files[2].first_cluster, 62);
        assert_eq!(plan.files[2].clusters, 7);
        assert_eq!(plan.next_free_cluster, 69);
        assert_eq!(plan.root_dir_clusters, vec![2]);
        assert_eq!(plan.file("EFI/BOOT/BOOTX64.EFI"), Some(&plan.files[2]));
        assert_eq!(parent_dirs("EFI/BOOT/BOOTX64.EFI").collect::<Vec<_>>(), ["EFI", "EFI/BOOT"]);
        assert_eq!(parent_dir("EFI/BOOT/BOOTX64.EFI"), Some("EFI/BOOT"));
        assert_eq!(parent_dir("k"), None);
        assert_eq!(base_name("EFI/BOOT/BOOTX64.EFI"), "BOOTX64.EFI");
    }

    #[test]
    fn a_directory_is_allocated_before_the_root_grows_for_it() {
        // 512-byte clusters hold 16 entries: a 156-character name takes 13 (with its 8.3
        // entry), the info file 3, so the EFI entries need a second root cluster, which
        // fatfs allocates after the directory's own cluster.
        let g = FatGeometry::choose(64 * MIB_SECTORS).unwrap();
        let name = "a".repeat(156);
        let plan = FatPlan::place(g, &[(&name, 512), ("build-info.txt", 10), ("EFI/X", 1)]).unwrap();
        assert_eq!(plan.files[0].first_cluster, 3);
        assert_eq!(plan.files[1].first_cluster, 4);
        assert_eq!(plan.dirs[0].clusters, vec![5]);
        assert_eq!(plan.root_dir_clusters, vec![2, 6]);
        assert_eq!(plan.files[2].first_cluster, 7);
    }

    #[test]
    fn too_large_files_do_not_fit() {
        let g = FatGeometry::choose(20 * MIB_SECTORS).unwrap();
        let capacity = u64::from(g.total_clusters()) * u64::from(g.cluster_size());
        assert!(FatPlan::place(g, &[("k", capacity - 512)]).is_some());
        assert!(FatPlan::place(g, &[("k", capacity - 512), ("i", 1024)]).is_none());
        assert!(FatPlan::place(g, &[("k", u64::MAX)]).is_none());
    }
}

//! FAT writer: formats the planned partition with `fatfs`, stores the kernel, the
//! build-information file and the UEFI loader (creating its directories), then fixes what
//! `fatfs` cannot be told or gets wrong (the hidden-sectors field, the FSInfo counters, and the
//! `.` and `..` entries of new directories, to which `fatfs` 0.3.6 gives long-name entries
//! that put them out of their slots) and checks the result against the plan.

use std::cell::Cell;
use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;

use super::plan::{FAT_COPIES, FatGeometry, FatType, PlannedDir, parent_dir, parent_dirs};
use super::{
    FAT16_EOC_MIN, FAT32_BACKUP_BOOT_SECTOR, FAT32_ENTRY_MASK, FAT32_EOC_MIN, FAT32_FSINFO_SECTOR, bpb, dir, fsinfo,
};
use crate::Error;
use crate::bytes::{Le, LeInt, SECTOR_BYTES, SECTOR_SIZE};
use crate::layout::Layout;
use crate::sparse::{Slice, SparseDisk};
use crate::time::{FatDateTime, Timestamp};

/// Media descriptor of a fixed disk.
const MEDIA_FIXED_DISK: u8 = 0xf8;
/// The 8.3 name of a directory's `.` entry.
const DOT: &[u8] = b".          ";
/// The 8.3 name of a directory's `..` entry.
const DOT_DOT: &[u8] = b"..         ";
/// BIOS drive number of the first hard disk, recorded in the boot sector.
const DRIVE_FIRST_HARD_DISK: u8 = 0x80;
/// Sectors per track recorded in the BPB (the conventional translated geometry).
const BPB_SECTORS_PER_TRACK: u16 = 63;
/// Heads recorded in the BPB.
const BPB_HEADS: u16 = 255;

thread_local! {
    /// The time every directory entry gets while this thread assembles a filesystem.
    static BUILD_TIME: Cell<Option<fatfs::DateTime>> = const { Cell::new(None) };
}

/// Gives `fatfs` the build timestamp instead of the wall clock. `fatfs` wants a `&'static`
/// provider, so the value travels through a thread-local set for the duration of one write.
#[derive(Debug)]
struct BuildTimeProvider;

static BUILD_TIME_PROVIDER: BuildTimeProvider = BuildTimeProvider;

impl fatfs::TimeProvider for BuildTimeProvider {
    fn get_current_date(&self) -> fatfs::Date {
        self.get_current_date_time().date
    }

    fn get_current_date_time(&self) -> fatfs::DateTime {
        BUILD_TIME.with(Cell::get).unwrap_or_else(|| to_fatfs(Timestamp::default().fat_date_time()))
    }
}

/// Sets the build time for the current thread and clears it when dropped.
struct BuildTimeGuard;

impl BuildTimeGuard {
    fn set(ts: Timestamp) -> Self {
        BUILD_TIME.with(|t| t.set(Some(to_fatfs(ts.fat_date_time()))));
        BuildTimeGuard
    }
}

impl Drop for BuildTimeGuard {
    fn drop(&mut self) {
        BUILD_TIME.with(|t| t.set(None));
    }
}

fn to_fatfs(dt: FatDateTime) -> fatfs::DateTime {
    fatfs::DateTime {
        date: fatfs::Date { year: dt.year, month: dt.month, day: dt.day },
        time: fatfs::Time { hour: dt.hour, min: dt.minute, sec: dt.second, millis: 0 },
    }
}

fn fat_error(step: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Internal(format!("FAT filesystem: {step}: {e}"))
}

/// Writes the FAT filesystem of `layout` onto `disk`: the kernel bytes (verified in place, not
/// stored), then `others`, the contents of the plan's other files in order (the
/// build-information file, the UEFI loader).
pub(crate) fn write_fat(
    disk: &mut SparseDisk,
    layout: &Layout,
    kernel: &Arc<Vec<u8>>,
    others: &[&[u8]],
    volume_id: u32,
    timestamp: Timestamp,
) -> Result<(), Error> {
    let part = layout.fat_partition;
    let geometry = layout.fat.geometry;
    disk.set_window(layout.kernel.sectors.byte_offset(), Arc::clone(kernel));
    {
        let _time = BuildTimeGuard::set(timestamp);
        let mut slice = Slice::new(disk, part.byte_offset(), part.byte_len());
        let options = fatfs::FormatVolumeOptions::new()
            .bytes_per_sector(SECTOR_SIZE as u16)
            .total_sectors(geometry.total_sectors)
            .bytes_per_cluster(geometry.cluster_size())
            .fats(FAT_COPIES)
            .media(MEDIA_FIXED_DISK)
            .sectors_per_track(BPB_SECTORS_PER_TRACK)
            .heads(BPB_HEADS)
            .drive_num(DRIVE_FIRST_HARD_DISK)
            .volume_id(volume_id);
        // No volume label: fatfs then records the FAT "NO NAME" value in the boot sector and,
        // unlike with a label, adds no volume-label entry to the root directory (which the
        // plan's directory-entry count does not include).
        fatfs::format_volume(&mut slice, options).map_err(fat_error("format"))?;
        slice.seek(SeekFrom::Start(0)).map_err(fat_error("rewind"))?;
        let fs = fatfs::FileSystem::new(&mut slice, fatfs::FsOptions::new().time_provider(&BUILD_TIME_PROVIDER))
            .map_err(fat_error("mount"))?;
        {
            let root = fs.root_dir();
            let contents = std::iter::once(kernel.as_slice()).chain(others.iter().copied());
            if layout.fat.files.len() != others.len() + 1 {
                return Err(Error::Internal("the FAT plan and the files to write differ in number".into()));
            }
            let mut created: Vec<&str> = Vec::new();
            for (file, data) in layout.fat.files.iter().zip(contents) {
                // Directories in the order the plan creates them (see `FatPlan::place`).
                for dir in parent_dirs(&file.name) {
                    if !created.contains(&dir) {
                        root.create_dir(dir).map_err(fat_error("create directory"))?;
                        created.push(dir);
                    }
                }
                let mut handle = root.create_file(&file.name).map_err(fat_error("create file"))?;
                handle.write_all(data).map_err(fat_error("write file"))?;
                handle.flush().map_err(fat_error("close file"))?;
            }
        }
        fs.unmount().map_err(fat_error("unmount"))?;
    }
    if !disk.window_complete() {
        return Err(Error::Internal("the kernel was not written completely into its planned clusters".into()));
    }
    let base = part.byte_offset();
    let hidden = u32::try_from(part.start).map_err(|e| Error::Internal(e.to_string()))?;
    let mut sectors = vec![0];
    if geometry.fat_type == FatType::Fat32 {
        sectors.push(FAT32_BACKUP_BOOT_SECTOR);
    }
    for sector in sectors {
        patch_sector(disk, base + u64::from(sector) * SECTOR_SIZE, &[(bpb::HIDDEN_SECTORS, hidden)])?;
    }
    if geometry.fat_type == FatType::Fat32 {
        let fields =
            [(fsinfo::FREE_COUNT, layout.fat.free_clusters()), (fsinfo::NEXT_FREE, layout.fat.next_free_cluster)];
        patch_sector(disk, base + u64::from(FAT32_FSINFO_SECTOR) * SECTOR_SIZE, &fields)?;
    }
    for planned in &layout.fat.dirs {
        fix_dot_entries(disk, layout, planned)?;
    }
    verify(disk, layout)
}

/// The first cluster of the directory `path`'s parent as its `..` entry records it: 0 for the
/// root directory (FAT's convention, also on FAT32), else the parent's first cluster.
fn parent_cluster(layout: &Layout, path: &str) -> u32 {
    parent_dir(path)
        .and_then(|p| layout.fat.dirs.iter().find(|d| d.path == p))
        .and_then(|d| d.clusters.first().copied())
        .unwrap_or(0)
}

/// Rewrites the first cluster of a directory `fatfs` created so that `.` and `..` are its first
/// two entries, without long-name entries, and `..` of a directory in the root records cluster
/// 0. The other entries keep their order; the slots freed at the end become free (end of
/// directory when the directory has one cluster, deleted entries when more follow).
fn fix_dot_entries(disk: &mut SparseDisk, layout: &Layout, planned: &PlannedDir) -> Result<(), Error> {
    let g = &layout.fat.geometry;
    let first =
        *planned.clusters.first().ok_or_else(|| Error::Internal("a planned directory has no cluster".into()))?;
    let at = layout.fat_partition.byte_offset() + u64::from(g.cluster_sector(first)) * SECTOR_SIZE;
    let mut cluster = vec![0u8; g.cluster_size() as usize];
    disk.read_at(at, &mut cluster);
    let entry_size = dir::ENTRY_SIZE as usize;
    let dot_sums = [dir::short_name_checksum(DOT), dir::short_name_checksum(DOT_DOT)];
    let mut kept: Vec<[u8; 32]> = Vec::new();
    let mut dots: [Option<[u8; 32]>; 2] = [None, None];
    let entries: Vec<&[u8]> = cluster.chunks_exact(entry_size).take_while(|e| e[0] != dir::END_MARKER).collect();
    for (i, e) in entries.iter().enumerate() {
        let entry: [u8; 32] = (*e).try_into().map_err(|_| Error::Internal("directory entry size".into()))?;
        let attr = dir::ATTRIBUTES.get(e).unwrap_or(0);
        let is_lfn = attr & dir::ATTR_LONG_NAME_MASK == dir::ATTR_LONG_NAME;
        let short = &e[dir::SHORT_NAME];
        if !is_lfn && (short == DOT || short == DOT_DOT) {
            dots[usize::from(short == DOT_DOT)] = Some(entry);
            continue;
        }
        // A long-name entry for "." or "..": its checksum is theirs and the 8.3 entry it
        // precedes is one of them.
        let owner = entries[i..]
            .iter()
            .find(|n| dir::ATTRIBUTES.get(n).unwrap_or(0) & dir::ATTR_LONG_NAME_MASK != dir::ATTR_LONG_NAME);
        let for_dot = owner.is_some_and(|n| &n[dir::SHORT_NAME] == DOT || &n[dir::SHORT_NAME] == DOT_DOT);
        if is_lfn && for_dot && dot_sums.contains(&dir::LFN_CHECKSUM.get(e).unwrap_or(0)) {
            continue;
        }
        kept.push(entry);
    }
    let (Some(dot), Some(mut dot_dot)) = (dots[0], dots[1]) else {
        return Err(Error::Internal(format!("directory {} has no . and .. entries", planned.path)));
    };
    let parent = parent_cluster(layout, &planned.path);
    dir::FIRST_CLUSTER_HIGH.put(&mut dot_dot, (parent >> 16) as u16);
    dir::FIRST_CLUSTER_LOW.put(&mut dot_dot, parent as u16);
    let more_clusters = planned.clusters.len() > 1;
    let used: Vec<[u8; 32]> = [dot, dot_dot].into_iter().chain(kept).collect();
    let mut rewritten = vec![0u8; cluster.len()];
    for (i, slot) in rewritten.chunks_exact_mut(entry_size).enumerate() {
        match used.get(i) {
            Some(entry) => slot.copy_from_slice(entry),
            None if more_clusters => slot[0] = dir::DELETED_MARKER,
            None => {}
        }
    }
    disk.write_at(at, &rewritten).map_err(fat_error("directory fix-up"))
}

/// Sets 32-bit fields of the sector at byte `at`.
fn patch_sector(disk: &mut SparseDisk, at: u64, fields: &[(Le<u32>, u32)]) -> Result<(), Error> {
    let mut sector = read_sector(disk, at);
    for &(field, value) in fields {
        field.put(&mut sector, value);
    }
    disk.write_at(at, &sector).map_err(fat_error("boot sector fix-up"))
}

fn read_sector(disk: &SparseDisk, at: u64) -> [u8; SECTOR_BYTES] {
    let mut sector = [0u8; SECTOR_BYTES];
    disk.read_at(at, &mut sector);
    sector
}

fn read_le<T: LeInt>(disk: &SparseDisk, at: u64) -> T {
    let mut b = [0u8; 8];
    disk.read_at(at, &mut b[..T::WIDTH]);
    T::from_le(&b[..T::WIDTH])
}

/// The boot sector fields that define the geometry, as written.
fn geometry_on_disk(sector: &[u8]) -> [u32; 6] {
    let field16 = |f: Le<u16>| u32::from(f.get(sector).unwrap_or(0));
    [
        field16(bpb::BYTES_PER_SECTOR),
        u32::from(bpb::SECTORS_PER_CLUSTER.get(sector).unwrap_or(0)),
        field16(bpb::RESERVED_SECTORS),
        field16(bpb::ROOT_ENTRIES),
        bpb::total_sectors(sector),
        bpb::sectors_per_fat(sector),
    ]
}

/// Reads FAT entry `cluster` of FAT copy `copy`.
fn fat_entry(disk: &SparseDisk, base: u64, g: &FatGeometry, copy: u32, cluster: u32) -> u32 {
    let fat_start = base + u64::from(g.first_fat_sector() + copy * g.sectors_per_fat) * SECTOR_SIZE;
    match g.fat_type {
        FatType::Fat32 => read_le::<u32>(disk, fat_start + u64::from(cluster) * 4) & FAT32_ENTRY_MASK,
        FatType::Fat16 => u32::from(read_le::<u16>(disk, fat_start + u64::from(cluster) * 2)),
    }
}

/// Checks that what `fatfs` wrote matches the plan: the geometry in the boot sector(s), and the
/// cluster chains of the root directory and of both files, in every FAT copy.
fn verify(disk: &SparseDisk, layout: &Layout) -> Result<(), Error> {
    let g = &layout.fat.geometry;
    let base = layout.fat_partition.byte_offset();
    let expected = [
        SECTOR_SIZE as u32,
        g.sectors_per_cluster,
        g.reserved_sectors,
        g.root_dir_entries,
        g.total_sectors,
        g.sectors_per_fat,
    ];
    let mut boot_sectors = vec![base];
    if g.fat_type == FatType::Fat32 {
        boot_sectors.push(base + u64::from(FAT32_BACKUP_BOOT_SECTOR) * SECTOR_SIZE);
    }
    for at in boot_sectors {
        let sector = read_sector(disk, at);
        let found = geometry_on_disk(&sector);
        if found != expected {
            return Err(Error::Internal(format!(
                "FAT boot sector geometry {found:?} differs from the plan {expected:?}"
            )));
        }
        if bpb::HIDDEN_SECTORS.get(&sector) != Some(layout.fat_partition.start as u32) {
            return Err(Error::Internal("FAT hidden-sectors field differs from the partition start".into()));
        }
    }
    let eoc = match g.fat_type {
        FatType::Fat32 => FAT32_EOC_MIN,
        FatType::Fat16 => FAT16_EOC_MIN,
    };
    let mut chains: Vec<(&str, Vec<u32>)> = Vec::new();
    if g.fat_type == FatType::Fat32 {
        chains.push(("root directory", layout.fat.root_dir_clusters.clone()));
    }
    for planned in &layout.fat.dirs {
        chains.push((planned.path.as_str(), planned.clusters.clone()));
    }
    for file in &layout.fat.files {
        chains.push((file.name.as_str(), (file.first_cluster..file.first_cluster + file.clusters).collect()));
    }
    for copy in 0..u32::from(FAT_COPIES) {
        for (what, chain) in &chains {
            for (i, &cluster) in chain.iter().enumerate() {
                let value = fat_entry(disk, base, g, copy, cluster);
                let ok = match chain.get(i + 1) {
                    Some(&next) => value == next,
                    None => value >= eoc,
                };
                if !ok {
                    return Err(Error::Internal(format!(
                        "FAT copy {copy}: cluster chain of {what} differs from the plan at cluster {cluster}"
                    )));
                }
            }
        }
        // The first cluster after everything planned must be free.
        if layout.fat.next_free_cluster - super::FIRST_DATA_CLUSTER < g.total_clusters()
            && fat_entry(disk, base, g, copy, layout.fat.next_free_cluster) != 0
        {
            return Err(Error::Internal(format!("FAT copy {copy}: a cluster beyond the plan is in use")));
        }
    }
    Ok(())
}

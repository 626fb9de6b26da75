//! FAT writer: formats the planned partition with `fatfs`, stores the kernel and the
//! build-information file, then fixes what `fatfs` cannot be told (the hidden-sectors field and
//! the FSInfo counters) and checks the result against the plan.

use std::cell::Cell;
use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;

use super::plan::{FAT_COPIES, FatGeometry, FatType};
use super::{
    FAT16_EOC_MIN, FAT32_BACKUP_BOOT_SECTOR, FAT32_ENTRY_MASK, FAT32_EOC_MIN, FAT32_FSINFO_SECTOR, bpb, fsinfo,
};
use crate::Error;
use crate::bytes::{Le, LeInt, SECTOR_BYTES, SECTOR_SIZE};
use crate::layout::Layout;
use crate::sparse::{Slice, SparseDisk};
use crate::time::{FatDateTime, Timestamp};

/// Media descriptor of a fixed disk.
const MEDIA_FIXED_DISK: u8 = 0xf8;
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
/// stored) and the build-information file.
pub(crate) fn write_fat(
    disk: &mut SparseDisk,
    layout: &Layout,
    kernel: &Arc<Vec<u8>>,
    info: &[u8],
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
            for (file, data) in [(&layout.kernel.file, kernel.as_slice()), (&layout.info.file, info)] {
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
    verify(disk, layout)
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
    for file in [&layout.kernel.file, &layout.info.file] {
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

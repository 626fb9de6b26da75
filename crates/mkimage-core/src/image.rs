//! An assembled image. Assembly runs the partition-table, filesystem and boot-stage writers
//! against an in-memory [`SparseDisk`]; the result holds only metadata sectors plus a
//! reference to the kernel bytes, so its size is independent of the disk size. The writers
//! that turn it into files and streams live in [`crate::output`].

use std::sync::Arc;

use crate::Error;
use crate::boot::{bios, uefi};
use crate::bytes::SECTOR_SIZE;
use crate::plan::Plan;
use crate::sparse::SparseDisk;

/// Bytes handed to a sink per call when copying image data out.
pub(crate) const COPY_CHUNK: usize = 1 << 20;

/// A byte range of the disk that holds data; everything outside these ranges is zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DataExtent {
    /// Byte offset on the disk (a multiple of 512).
    pub offset: u64,
    /// Length in bytes (a multiple of 512).
    pub len: u64,
}

impl DataExtent {
    /// One past the last byte.
    pub const fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// A complete disk image, ready to be written any number of times.
#[derive(Debug)]
pub struct Image {
    plan: Plan,
    disk: SparseDisk,
    extents: Vec<DataExtent>,
}

impl Image {
    /// Assembles the image `plan` describes from the kernel bytes.
    pub(crate) fn assemble(plan: Plan, kernel: &Arc<Vec<u8>>) -> Result<Image, Error> {
        let layout = &plan.layout;
        let mut disk = SparseDisk::new(layout.disk_size);
        let boot_code = match layout.boot_area {
            Some(area) => {
                bios::check_stage2()?;
                bios::patched_mbr_code(area.start)?
            }
            None => *bios::NO_BIOS_CODE,
        };
        crate::partition::write::write_partition_table(&mut disk, layout, &plan.ids, &boot_code)?;
        let record = plan.boot_record.encode()?;
        if let Some(area) = layout.boot_area {
            let internal = |e: std::io::Error| Error::Internal(format!("writing the boot stage: {e}"));
            disk.write_at(area.byte_offset(), &bios::stage2_sectors()).map_err(internal)?;
            disk.write_at(area.byte_offset() + bios::STAGE2_SECTORS * SECTOR_SIZE, &record).map_err(internal)?;
        }
        let loader = layout.loader.as_ref().map(|_| uefi::loader_file(&record)).transpose()?;
        let mut others = vec![plan.info_text.as_bytes()];
        others.extend(loader.as_deref());
        crate::fat::write::write_fat(&mut disk, layout, kernel, &others, plan.ids.fat_volume_id, plan.timestamp)?;
        let extents = disk.data_extents().into_iter().map(|(offset, len)| DataExtent { offset, len }).collect();
        Ok(Image { plan, disk, extents })
    }

    /// The plan this image was built from.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Disk size in bytes.
    pub fn disk_size(&self) -> u64 {
        self.disk.size()
    }

    /// The ranges of the disk that hold data, in increasing order; the rest is zero.
    pub fn data_extents(&self) -> &[DataExtent] {
        &self.extents
    }

    /// Bytes of data (the total length of [`Image::data_extents`]).
    pub fn data_len(&self) -> u64 {
        self.extents.iter().map(|e| e.len).sum()
    }

    /// Copies disk bytes starting at `offset` into `buf`.
    ///
    /// # Errors
    /// [`Error::ReadOutsideDisk`] when the range reaches past the end of the disk (`buf` is then
    /// left as it was).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let len = buf.len() as u64;
        if offset.checked_add(len).is_none_or(|end| end > self.disk_size()) {
            return Err(Error::ReadOutsideDisk { offset, len, size: self.disk_size() });
        }
        self.disk.read_at(offset, buf);
        Ok(())
    }

    /// [`Image::read_at`] for ranges the crate knows lie inside the disk.
    pub(crate) fn read_inside(&self, offset: u64, buf: &mut [u8]) {
        debug_assert!(offset + buf.len() as u64 <= self.disk_size());
        self.disk.read_at(offset, buf);
    }

    /// Calls `sink` with the image's data, extent by extent, in chunks of at most 1 MiB:
    /// `(disk offset, bytes)`.
    pub(crate) fn for_each_chunk(
        &self,
        mut sink: impl FnMut(u64, &[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut buf = vec![0u8; COPY_CHUNK];
        for extent in &self.extents {
            let mut offset = extent.offset;
            while offset < extent.end() {
                let n = (extent.end() - offset).min(COPY_CHUNK as u64) as usize;
                self.disk.read_at(offset, &mut buf[..n]);
                sink(offset, &buf[..n])?;
                offset += n as u64;
            }
        }
        Ok(())
    }
}

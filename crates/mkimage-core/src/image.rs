//! An assembled image and its raw writers. Assembly runs the partition-table, filesystem and
//! boot-stage writers against an in-memory [`SparseDisk`]; the result holds only metadata
//! sectors plus a reference to the kernel bytes, so its size is independent of the disk size.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;

use crate::Error;
use crate::builder::Plan;
use crate::sparse::SparseDisk;

/// Bytes written per call when copying image data to a destination.
const COPY_CHUNK: usize = 1 << 20;

/// A byte range of the disk that holds data; everything outside these ranges is zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
        crate::bootstage::check_stage2()?;
        let boot_code = crate::bootstage::patched_mbr_code(layout.boot_area.start)?;
        crate::partition::write_partition_table(&mut disk, layout, &plan.identity, &boot_code)?;
        let record = plan.boot_record.encode()?;
        let boot_area = layout.boot_area.byte_offset();
        let internal = |e: std::io::Error| Error::Internal(format!("writing the boot stage: {e}"));
        disk.write_at(boot_area, &crate::bootstage::stage2_sectors()).map_err(internal)?;
        disk.write_at(boot_area + crate::bootstage::STAGE2_SECTORS * crate::layout::SECTOR, &record)
            .map_err(internal)?;
        crate::fat_write::write_fat(
            &mut disk,
            layout,
            kernel,
            plan.info_text.as_bytes(),
            plan.identity.fat_volume_id(),
            plan.timestamp,
        )?;
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

    /// Copies disk bytes starting at `offset` into `buf`. Panics if the range is outside the disk.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) {
        assert!(
            offset.checked_add(buf.len() as u64).is_some_and(|end| end <= self.disk_size()),
            "read outside the disk"
        );
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

    /// Writes every byte of the disk, zeros included, from the current position of `out`.
    /// Correct for any destination, whatever it held before; writes the full disk size.
    /// Returns the number of bytes written.
    pub fn write_raw<W: Write + Seek>(&self, mut out: W) -> Result<u64, Error> {
        let base = out.stream_position().map_err(Error::write)?;
        let zeros = vec![0u8; COPY_CHUNK];
        let mut pos = 0u64;
        let fill = |out: &mut W, from: u64, to: u64| -> std::io::Result<()> {
            let mut at = from;
            while at < to {
                let n = (to - at).min(COPY_CHUNK as u64) as usize;
                out.write_all(&zeros[..n])?;
                at += n as u64;
            }
            Ok(())
        };
        self.for_each_chunk(|offset, data| {
            fill(&mut out, pos, offset)?;
            out.write_all(data)?;
            pos = offset + data.len() as u64;
            Ok(())
        })
        .map_err(Error::write)?;
        fill(&mut out, pos, self.disk_size()).map_err(Error::write)?;
        out.seek(SeekFrom::Start(base + self.disk_size())).map_err(Error::write)?;
        out.flush().map_err(Error::write)?;
        Ok(self.disk_size())
    }

    /// Writes only the data extents, seeking over the zero ranges, then makes sure the
    /// destination reaches the full disk size. The destination must read as zeros wherever
    /// nothing is written (a new file, a fresh zero-filled buffer); use [`Image::write_raw`]
    /// otherwise. Offsets are relative to the position of `out` on entry. Returns the number of
    /// data bytes written.
    pub fn write_raw_sparse<W: Write + Seek>(&self, mut out: W) -> Result<u64, Error> {
        let base = out.stream_position().map_err(Error::write)?;
        self.for_each_chunk(|offset, data| {
            out.seek(SeekFrom::Start(base + offset))?;
            out.write_all(data)
        })
        .map_err(Error::write)?;
        let covered = self.extents.last().map_or(0, DataExtent::end);
        if covered < self.disk_size() {
            // Extend the destination to its full length with one zero byte at the very end.
            out.seek(SeekFrom::Start(base + self.disk_size() - 1)).map_err(Error::write)?;
            out.write_all(&[0]).map_err(Error::write)?;
        }
        out.flush().map_err(Error::write)?;
        Ok(self.data_len())
    }

    /// Writes the image into `file`, replacing its contents: truncates it, sets its length to the
    /// disk size (so the zero ranges are holes that take no space) and writes the data extents.
    /// Returns the number of data bytes written.
    pub fn write_raw_file(&self, file: &mut File) -> Result<u64, Error> {
        file.set_len(0).map_err(Error::write)?;
        file.set_len(self.disk_size()).map_err(Error::write)?;
        file.seek(SeekFrom::Start(0)).map_err(Error::write)?;
        self.for_each_chunk(|offset, data| {
            file.seek(SeekFrom::Start(offset))?;
            file.write_all(data)
        })
        .map_err(Error::write)?;
        file.flush().map_err(Error::write)?;
        Ok(self.data_len())
    }

    /// Writes the Google Compute Engine import tarball (see [`crate::gce`]) to `out`, which
    /// need not be seekable. Compression runs on all available cores; the bytes do not depend on
    /// how many there are. Returns the number of compressed bytes written.
    pub fn write_gce<W: Write + Send>(&self, out: W) -> Result<u64, Error> {
        crate::gce::write_tarball(self, out)
    }
}

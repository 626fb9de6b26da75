//! The Google Compute Engine import tarball: a gzip-compressed tar holding one member,
//! `disk.raw`, in the old-GNU format with a sparse (`'S'`) entry, the way
//! `tar --format=oldgnu -Sczf` writes it and as GCE's image import expects.
//!
//! Only the data extents of the disk travel: the sparse map lists them and the archive holds
//! their bytes, so time and memory scale with the kernel, never with the disk. Header fields
//! follow GNU tar 1.34 byte for byte where it matters to readers: octal fields with leading
//! zeros, the checksum as six octal digits, NUL and space, device numbers, atime and ctime left
//! empty, a final zero-length map entry at the disk size, and the archive padded to a whole
//! 10 KiB record. No PAX headers are ever written. The gzip header carries no name and
//! modification time 0.

use std::io::Write;

use ::tar::{GnuExtSparseHeader, GnuHeader, GnuSparseHeader};

use super::tar::{BLOCK, EXT_SPARSE_SLOTS, HEADER_SPARSE_SLOTS, RECORD, TYPE_GNU_SPARSE};
use crate::Error;
use crate::image::Image;
use crate::size::GIB;

/// The one member GCE accepts.
pub const MEMBER_NAME: &str = "disk.raw";
/// File mode of `disk.raw`.
pub const MEMBER_MODE: u32 = 0o644;
/// Owner and group name recorded (uid and gid are 0).
pub const OWNER_NAME: &str = "root";
/// gzip compression level. With the zlib-rs backend, level 9 compresses better than GNU
/// `gzip -6` (the old pipeline's `tar -z`) and still runs faster than it; level 6 is about 3%
/// larger (the benchmark, `crates/mkimage-bench`, measures both).
pub const GZIP_LEVEL: u32 = 9;

/// Checks that a disk size is acceptable to GCE (a whole, non-zero number of GiB).
///
/// # Errors
/// [`Error::GceSizeNotWholeGib`].
pub fn check_disk_size(size: u64) -> Result<(), Error> {
    if size == 0 || !size.is_multiple_of(GIB) {
        return Err(Error::GceSizeNotWholeGib { size });
    }
    Ok(())
}

/// Fills a tar checksum field the way GNU tar does: six octal digits, NUL, space.
fn set_gnu_checksum(header: &mut GnuHeader) {
    header.cksum = *b"        ";
    let sum: u32 = header.as_header().as_bytes().iter().map(|&b| u32::from(b)).sum();
    let digits = format!("{sum:06o}");
    header.cksum[..6].copy_from_slice(&digits.as_bytes()[digits.len() - 6..]);
    header.cksum[6] = 0;
    header.cksum[7] = b' ';
}

/// The sparse map of an image: its data extents plus GNU tar's closing zero-length entry at the
/// disk size when the disk ends in a hole.
fn sparse_map(image: &Image) -> Vec<(u64, u64)> {
    let mut map: Vec<(u64, u64)> = image.data_extents().iter().map(|e| (e.offset, e.len)).collect();
    if map.last().is_none_or(|&(offset, len)| offset + len < image.disk_size()) {
        map.push((image.disk_size(), 0));
    }
    map
}

/// The header blocks of the member: the old-GNU header and as many extension headers as the
/// sparse map needs.
fn header_blocks(image: &Image) -> Result<Vec<u8>, Error> {
    let map = sparse_map(image);
    let stored: u64 = map.iter().map(|&(_, len)| len).sum();
    let mut block = ::tar::Header::new_gnu();
    let header = block.as_gnu_mut().ok_or_else(|| Error::Internal("tar header is not GNU".into()))?;
    {
        let h = header.as_header_mut();
        h.set_path(MEMBER_NAME).map_err(|e| Error::Internal(format!("tar header: {e}")))?;
        h.set_mode(MEMBER_MODE);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(stored);
        h.set_mtime(image.plan().timestamp.unix());
        h.set_entry_type(::tar::EntryType::new(TYPE_GNU_SPARSE));
        h.set_username(OWNER_NAME).map_err(|e| Error::Internal(format!("tar header: {e}")))?;
        h.set_groupname(OWNER_NAME).map_err(|e| Error::Internal(format!("tar header: {e}")))?;
    }
    // GNU tar leaves the device numbers empty for regular files.
    header.dev_major = [0; 8];
    header.dev_minor = [0; 8];
    header.set_real_size(image.disk_size());
    let (first, rest) = map.split_at(map.len().min(HEADER_SPARSE_SLOTS));
    for (slot, &(offset, len)) in header.sparse.iter_mut().zip(first) {
        slot.set_offset(offset);
        slot.set_length(len);
    }
    header.set_is_extended(!rest.is_empty());
    set_gnu_checksum(header);
    let mut blocks = header.as_header().as_bytes().to_vec();
    let chunks: Vec<&[(u64, u64)]> = rest.chunks(EXT_SPARSE_SLOTS).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut ext = GnuExtSparseHeader::new();
        for (slot, &(offset, len)) in ext.sparse.iter_mut().zip(chunk.iter()) {
            let entry: &mut GnuSparseHeader = slot;
            entry.set_offset(offset);
            entry.set_length(len);
        }
        ext.set_is_extended(i + 1 < chunks.len());
        blocks.extend_from_slice(ext.as_bytes());
    }
    Ok(blocks)
}

/// The uncompressed tar stream of an image, readable at any offset (so that blocks can be
/// compressed in parallel): header blocks, then the data extents back to back, then the zero
/// blocks that end the archive and pad it to a whole record.
struct TarStream<'a> {
    image: &'a Image,
    headers: Vec<u8>,
    len: u64,
}

impl<'a> TarStream<'a> {
    fn new(image: &'a Image) -> Result<Self, Error> {
        let headers = header_blocks(image)?;
        // Data extents are whole sectors, so the member data already ends on a block boundary.
        let archive_len = headers.len() as u64 + image.data_len();
        debug_assert_eq!(archive_len % BLOCK as u64, 0);
        // Two zero blocks end the archive; pad to a whole record like GNU tar.
        let len = (archive_len + 2 * BLOCK as u64).div_ceil(RECORD) * RECORD;
        Ok(TarStream { image, headers, len })
    }
}

impl super::pgzip::Source for TarStream<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, mut offset: u64, mut buf: &mut [u8]) {
        // Headers.
        let h = self.headers.len() as u64;
        if offset < h {
            let n = (h - offset).min(buf.len() as u64) as usize;
            buf[..n].copy_from_slice(&self.headers[offset as usize..offset as usize + n]);
            buf = &mut buf[n..];
            offset += n as u64;
        }
        // Data: the extents in order, found by their position in the stream.
        let mut data_start = h;
        for extent in self.image.data_extents() {
            if buf.is_empty() {
                return;
            }
            let data_end = data_start + extent.len;
            if offset < data_end {
                let within = offset - data_start;
                let n = (data_end - offset).min(buf.len() as u64) as usize;
                self.image.read_inside(extent.offset + within, &mut buf[..n]);
                buf = &mut buf[n..];
                offset += n as u64;
            }
            data_start = data_end;
        }
        // The closing zero blocks.
        buf.fill(0);
    }
}

impl Image {
    /// Writes the Google Compute Engine import tarball (see [`crate::output::gce`]) to `out`,
    /// which need not be seekable. Compression runs on all available cores; the bytes do not
    /// depend on how many there are. Refuses, before writing anything, a disk size that is not a
    /// whole number of GiB. Returns the number of compressed bytes written.
    ///
    /// # Errors
    /// [`Error::GceSizeNotWholeGib`] before anything is written; [`Error::Write`] when `out` fails.
    pub fn write_gce<W: Write>(&self, out: W) -> Result<u64, Error> {
        check_disk_size(self.disk_size())?;
        let stream = TarStream::new(self)?;
        let (_, written) =
            super::pgzip::compress(&stream, out, GZIP_LEVEL, super::pgzip::default_threads()).map_err(Error::write)?;
        Ok(written)
    }
}

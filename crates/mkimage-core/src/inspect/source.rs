//! Where an inspected disk's bytes come from: a raw image read in place, or the data of a GCE
//! tarball held sparsely in memory (only non-zero 4 KiB blocks are kept, up to a fixed limit),
//! so that a hostile image can make the inspector neither read outside the file nor allocate
//! in proportion to a size the image merely claims.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};

/// Granularity of the in-memory store.
pub const BLOCK: u64 = 4096;
/// Most non-zero bytes kept from a tarball: room for the largest kernel and its filesystem.
pub const MAX_STORED: u64 = crate::MAX_KERNEL_SIZE + (64 << 20);

/// Random access to a disk's bytes. Reads beyond the disk's end fail.
pub trait DiskSource {
    /// Disk size in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` with the bytes at `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

fn out_of_range() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "read beyond the end of the disk")
}

/// A raw disk image readable in place.
#[derive(Debug)]
pub struct RawSource<R> {
    inner: R,
    size: u64,
}

impl<R: Read + Seek> RawSource<R> {
    /// Wraps a reader; its length is the disk size.
    pub fn new(mut inner: R) -> io::Result<Self> {
        let size = inner.seek(SeekFrom::End(0))?;
        Ok(RawSource { inner, size })
    }
}

impl<R: Read + Seek> DiskSource for RawSource<R> {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > self.size) {
            return Err(out_of_range());
        }
        self.inner.seek(SeekFrom::Start(offset))?;
        self.inner.read_exact(buf)
    }
}

/// A disk held sparsely in memory.
#[derive(Debug, Default)]
pub struct SparseSource {
    size: u64,
    blocks: BTreeMap<u64, Box<[u8]>>,
    stored: u64,
}

impl SparseSource {
    /// An all-zero disk of `size` bytes.
    pub fn new(size: u64) -> Self {
        SparseSource { size, blocks: BTreeMap::new(), stored: 0 }
    }

    /// Stores `data` at `offset` (keeping only its non-zero blocks). Fails beyond the disk's end
    /// or beyond [`MAX_STORED`] bytes in total.
    pub fn store(&mut self, mut offset: u64, mut data: &[u8]) -> io::Result<()> {
        if offset.checked_add(data.len() as u64).is_none_or(|end| end > self.size) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "data beyond the end of the disk"));
        }
        while !data.is_empty() {
            let block = offset / BLOCK;
            let within = (offset % BLOCK) as usize;
            let n = (BLOCK as usize - within).min(data.len());
            let (chunk, rest) = data.split_at(n);
            let zero = chunk.iter().all(|&b| b == 0);
            match self.blocks.get_mut(&block) {
                Some(stored) => stored[within..within + n].copy_from_slice(chunk),
                None if zero => {}
                None => {
                    if self.stored + BLOCK > MAX_STORED {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the image holds more data than the inspector keeps in memory",
                        ));
                    }
                    let mut stored = vec![0u8; BLOCK as usize].into_boxed_slice();
                    stored[within..within + n].copy_from_slice(chunk);
                    self.blocks.insert(block, stored);
                    self.stored += BLOCK;
                }
            }
            offset += n as u64;
            data = rest;
        }
        Ok(())
    }

    /// The stored (non-zero) blocks: disk offset and bytes, in increasing order.
    pub fn blocks(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.blocks.iter().map(|(&block, data)| (block * BLOCK, &data[..]))
    }

    /// Bytes of memory the stored blocks take.
    pub fn stored_bytes(&self) -> u64 {
        self.stored
    }
}

impl DiskSource for SparseSource {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, mut offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > self.size) {
            return Err(out_of_range());
        }
        let mut done = 0;
        while done < buf.len() {
            let block = offset / BLOCK;
            let within = (offset % BLOCK) as usize;
            let n = (BLOCK as usize - within).min(buf.len() - done);
            match self.blocks.get(&block) {
                Some(stored) => buf[done..done + n].copy_from_slice(&stored[within..within + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
            offset += n as u64;
        }
        Ok(())
    }
}

/// Reads `len` bytes at `offset` into a new vector (callers bound `len`).
pub fn read_vec(source: &mut dyn DiskSource, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    source.read_at(offset, &mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_source_keeps_only_non_zero_blocks() {
        let mut s = SparseSource::new(1 << 40);
        s.store(0, &vec![0u8; 1 << 20]).unwrap();
        assert_eq!(s.stored_bytes(), 0);
        s.store(4095, &[1, 2]).unwrap();
        assert_eq!(s.stored_bytes(), 2 * BLOCK);
        let mut buf = [0xAAu8; 8];
        s.read_at(4092, &mut buf).unwrap();
        assert_eq!(buf, [0, 0, 0, 1, 2, 0, 0, 0]);
        assert!(s.read_at((1 << 40) - 4, &mut buf).is_err());
        assert!(s.store((1 << 40) - 1, &[1, 1]).is_err());
    }

    #[test]
    fn raw_source_refuses_reads_past_the_end() {
        let mut r = RawSource::new(std::io::Cursor::new(vec![7u8; 1000])).unwrap();
        let mut buf = [0u8; 10];
        r.read_at(990, &mut buf).unwrap();
        assert!(r.read_at(991, &mut buf).is_err());
        assert!(r.read_at(u64::MAX - 2, &mut buf).is_err());
    }
}

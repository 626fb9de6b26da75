//! Where an inspected disk's bytes come from: a raw image, or the disk of a GCE tarball
//! unpacked into a sparse temporary file, read in place through [`DiskSource`], which refuses
//! reads outside the disk. Nothing is held in memory in proportion to the disk or its data.

use std::io::{self, Read, Seek, SeekFrom};

/// Random access to a disk's bytes. Reads beyond the disk's end fail.
pub trait DiskSource {
    /// Disk size in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` with the bytes at `offset`.
    ///
    /// # Errors
    /// An error of kind [`io::ErrorKind::UnexpectedEof`] when the range reaches past the disk, or
    /// what the underlying reader reports.
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
    ///
    /// # Errors
    /// What seeking to the end reports.
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

/// Block size at which zeros become holes when a stream is copied into a file.
const HOLE_BLOCK: usize = 4096;
/// Bytes copied per step.
const COPY_CHUNK: usize = 1 << 20;

/// Copies a stream into `file` (empty), leaving holes where whole blocks are zero. Returns the
/// bytes copied.
///
/// # Errors
/// What reading the stream or writing the file reports.
pub fn copy_sparse(reader: &mut impl Read, file: &mut std::fs::File) -> io::Result<u64> {
    use std::io::Write;
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut len = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            break;
        }
        for (i, block) in buf[..filled].chunks(HOLE_BLOCK).enumerate() {
            if block.iter().any(|&b| b != 0) {
                file.seek(SeekFrom::Start(len + (i * HOLE_BLOCK) as u64))?;
                file.write_all(block)?;
            }
        }
        len += filled as u64;
    }
    file.set_len(len)?;
    Ok(len)
}

/// Reads `len` bytes at `offset` into a new vector (callers bound `len`).
///
/// # Errors
/// As [`DiskSource::read_at`].
pub fn read_vec(source: &mut dyn DiskSource, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    source.read_at(offset, &mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_source_refuses_reads_past_the_end() {
        let mut r = RawSource::new(std::io::Cursor::new(vec![7u8; 1000])).unwrap();
        let mut buf = [0u8; 10];
        r.read_at(990, &mut buf).unwrap();
        assert!(r.read_at(991, &mut buf).is_err());
        assert!(r.read_at(u64::MAX - 2, &mut buf).is_err());
    }
}

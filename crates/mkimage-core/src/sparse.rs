//! The in-memory disk the image is assembled on: a sparse map of the sectors written so far over
//! an all-zero disk, plus one *verified window* where the kernel's bytes belong.
//!
//! Metadata (partition tables, FAT structures, boot stage) is small and lives in the map. The
//! kernel can be large, so its bytes are never copied here: when the filesystem writer stores the
//! kernel file, every write that lands in the window is compared with the kernel bytes the plan
//! put there and then dropped. A write that does not match, or a window not completely written,
//! means the filesystem writer did not place the file where the plan said; assembly then fails.
//! Reads of the window return the kernel bytes, so the device behaves like a real disk.
//!
//! Memory is proportional to the metadata written, never to the disk size: writing zeros over
//! never-written sectors stores nothing.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use crate::bytes::{SECTOR_BYTES, SECTOR_SIZE};

/// One stored sector.
type Sector = Box<[u8; SECTOR_BYTES]>;

/// Where the kernel belongs and how much of it has been written.
#[derive(Debug)]
struct Window {
    /// Byte offset on the disk of the first kernel byte.
    start: u64,
    /// One past the last byte of the window (the kernel padded to whole sectors).
    end: u64,
    /// The kernel bytes.
    data: Arc<Vec<u8>>,
    /// Bytes of the window written so far with the expected content.
    written: u64,
}

/// A sparse, in-memory disk of fixed size (see the module documentation).
#[derive(Debug)]
pub(crate) struct SparseDisk {
    size: u64,
    pos: u64,
    sectors: BTreeMap<u64, Sector>,
    window: Option<Window>,
}

impl SparseDisk {
    /// An all-zero disk of `size` bytes (a multiple of the sector size).
    pub(crate) fn new(size: u64) -> Self {
        debug_assert_eq!(size % SECTOR_SIZE, 0);
        SparseDisk { size, pos: 0, sectors: BTreeMap::new(), window: None }
    }

    /// Declares that `data` belongs at byte `offset` (sector-aligned): writes there are verified
    /// against it instead of stored.
    pub(crate) fn set_window(&mut self, offset: u64, data: Arc<Vec<u8>>) {
        debug_assert_eq!(offset % SECTOR_SIZE, 0);
        let end = offset + (data.len() as u64).div_ceil(SECTOR_SIZE) * SECTOR_SIZE;
        debug_assert!(!data.is_empty());
        debug_assert!(end <= self.size);
        self.window = Some(Window { start: offset, end, data, written: 0 });
    }

    /// Whether every byte of the window has been written (with the expected content).
    pub(crate) fn window_complete(&self) -> bool {
        self.window.as_ref().is_none_or(|w| w.written == w.data.len() as u64)
    }

    /// Disk size in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Writes `buf` at `offset` without moving the cursor.
    pub(crate) fn write_at(&mut self, mut offset: u64, mut buf: &[u8]) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= self.size)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past the end of the disk"))?;
        while offset < end {
            let sector = offset / SECTOR_SIZE;
            let in_sector = (offset % SECTOR_SIZE) as usize;
            let n = (SECTOR_BYTES - in_sector).min(buf.len());
            let (chunk, rest) = buf.split_at(n);
            if let Some(window) = self.window.as_mut().filter(|w| offset >= w.start && offset < w.end) {
                // Compare with the kernel bytes planned here (zeros in the padding after them).
                let from = (offset - window.start) as usize;
                let available = window.data.len().saturating_sub(from).min(chunk.len());
                let expected = &window.data[from.min(window.data.len())..from.min(window.data.len()) + available];
                let matches = chunk[..available] == *expected && chunk[available..].iter().all(|&b| b == 0);
                if !matches {
                    return Err(io::Error::other(format!(
                        "unexpected bytes written at disk offset {offset} inside the kernel's planned clusters"
                    )));
                }
                let data_end = window.start + window.data.len() as u64;
                window.written += (offset + n as u64).min(data_end).saturating_sub(offset);
            } else {
                self.store(sector, in_sector, chunk);
            }
            offset += n as u64;
            buf = rest;
        }
        Ok(())
    }

    fn store(&mut self, sector: u64, in_sector: usize, chunk: &[u8]) {
        match self.sectors.get_mut(&sector) {
            Some(stored) => {
                stored[in_sector..in_sector + chunk.len()].copy_from_slice(chunk);
                if stored.iter().all(|&b| b == 0) {
                    self.sectors.remove(&sector);
                }
            }
            None if chunk.iter().all(|&b| b == 0) => {}
            None => {
                let mut stored: Sector = Box::new([0; SECTOR_BYTES]);
                stored[in_sector..in_sector + chunk.len()].copy_from_slice(chunk);
                self.sectors.insert(sector, stored);
            }
        }
    }

    /// Reads `buf.len()` bytes at `offset` (within the disk) without moving the cursor.
    pub(crate) fn read_at(&self, mut offset: u64, buf: &mut [u8]) {
        let mut done = 0;
        while done < buf.len() {
            // Inside the window, copy as much of the kernel as the request covers at once.
            if let Some(w) = self.window.as_ref().filter(|w| offset >= w.start && offset < w.end) {
                let n = ((w.end - offset) as usize).min(buf.len() - done);
                let out = &mut buf[done..done + n];
                let from = (offset - w.start) as usize;
                let available = w.data.len().saturating_sub(from).min(n);
                out[..available].copy_from_slice(&w.data[from..from + available]);
                out[available..].fill(0);
                done += n;
                offset += n as u64;
                continue;
            }
            let sector = offset / SECTOR_SIZE;
            let in_sector = (offset % SECTOR_SIZE) as usize;
            let n = (SECTOR_BYTES - in_sector).min(buf.len() - done);
            let out = &mut buf[done..done + n];
            match self.sectors.get(&sector) {
                Some(stored) => out.copy_from_slice(&stored[in_sector..in_sector + n]),
                None => out.fill(0),
            }
            done += n;
            offset += n as u64;
        }
    }

    /// The byte ranges holding data (stored sectors and the window), merged where adjacent, in
    /// increasing order. Everything outside them is zero.
    pub(crate) fn data_extents(&self) -> Vec<(u64, u64)> {
        let mut extents: Vec<(u64, u64)> = Vec::new();
        let window = self.window.as_ref().map(|w| (w.start, w.end - w.start));
        let mut push = |start: u64, len: u64| match extents.last_mut() {
            Some((s, l)) if *s + *l == start => *l += len,
            _ => extents.push((start, len)),
        };
        let mut window_pending = window;
        for &sector in self.sectors.keys() {
            let offset = sector * SECTOR_SIZE;
            if let Some((ws, wl)) = window_pending.filter(|&(ws, _)| ws < offset) {
                push(ws, wl);
                window_pending = None;
            }
            push(offset, SECTOR_SIZE);
        }
        if let Some((ws, wl)) = window_pending {
            push(ws, wl);
        }
        extents
    }

    /// Number of sectors stored in the map (metadata), for memory accounting and tests.
    #[cfg(test)]
    pub(crate) fn stored_sectors(&self) -> usize {
        self.sectors.len()
    }
}

impl Read for SparseDisk {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.size.saturating_sub(self.pos)) as usize;
        self.read_at(self.pos, &mut buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for SparseDisk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_at(self.pos, buf)?;
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for SparseDisk {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = seek_within(self.pos, self.size, pos)?;
        Ok(self.pos)
    }
}

/// Computes a new cursor for a device of `size` bytes, refusing positions before the start.
fn seek_within(current: u64, size: u64, pos: SeekFrom) -> io::Result<u64> {
    let target = match pos {
        SeekFrom::Start(n) => Some(n),
        SeekFrom::End(d) => size.checked_add_signed(d),
        SeekFrom::Current(d) => current.checked_add_signed(d),
    };
    target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start of the device"))
}

/// A window of a [`SparseDisk`] seen as a device of its own: a partition, for the filesystem
/// writer, which addresses the partition from offset 0.
#[derive(Debug)]
pub(crate) struct Slice<'d> {
    disk: &'d mut SparseDisk,
    start: u64,
    len: u64,
    pos: u64,
}

impl<'d> Slice<'d> {
    /// The `len` bytes of `disk` from byte `start`.
    pub(crate) fn new(disk: &'d mut SparseDisk, start: u64, len: u64) -> Self {
        debug_assert!(start + len <= disk.size());
        Slice { disk, start, len, pos: 0 }
    }
}

impl Read for Slice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        self.disk.read_at(self.start + self.pos, &mut buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Slice<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pos.saturating_add(buf.len() as u64) > self.len {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "write past the end of the partition"));
        }
        self.disk.write_at(self.start + self.pos, buf)?;
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Slice<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = seek_within(self.pos, self.len, pos)?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fill_the_whole_buffer_with_zeros_where_nothing_was_written() {
        let mut disk = SparseDisk::new(8 * SECTOR_SIZE);
        disk.write_at(700, b"hello").unwrap();
        let mut buf = [0xAAu8; 1024];
        disk.read_at(200, &mut buf);
        assert!(buf[..500].iter().all(|&b| b == 0));
        assert_eq!(&buf[500..505], b"hello");
        assert!(buf[505..].iter().all(|&b| b == 0));
    }

    #[test]
    fn zero_writes_store_nothing_and_clear_sectors() {
        let mut disk = SparseDisk::new(1 << 30);
        disk.write_at(0, &vec![0u8; 1 << 20]).unwrap();
        assert_eq!(disk.stored_sectors(), 0);
        disk.write_at(1000, &[1, 2, 3]).unwrap();
        assert_eq!(disk.stored_sectors(), 1);
        disk.write_at(1000, &[0, 0, 0]).unwrap();
        assert_eq!(disk.stored_sectors(), 0);
        assert!(disk.data_extents().is_empty());
    }

    #[test]
    fn writes_spanning_sectors_and_partial_sectors() {
        let mut disk = SparseDisk::new(16 * SECTOR_SIZE);
        let data: Vec<u8> = (0..2000u32).map(|i| (i % 251 + 1) as u8).collect();
        disk.write_at(300, &data).unwrap();
        let mut back = vec![0xEEu8; 2000];
        disk.read_at(300, &mut back);
        assert_eq!(back, data);
        assert_eq!(disk.data_extents(), vec![(0, 5 * SECTOR_SIZE)]);
    }

    #[test]
    fn window_verifies_instead_of_storing() {
        let kernel: Vec<u8> = (0..1300u32).map(|i| (i % 7 + 1) as u8).collect();
        let mut disk = SparseDisk::new(64 * SECTOR_SIZE);
        disk.set_window(8 * SECTOR_SIZE, Arc::new(kernel.clone()));
        assert!(!disk.window_complete());
        disk.write_at(8 * SECTOR_SIZE, &kernel[..1000]).unwrap();
        assert!(!disk.window_complete());
        disk.write_at(8 * SECTOR_SIZE + 1000, &kernel[1000..]).unwrap();
        assert!(disk.window_complete());
        assert_eq!(disk.stored_sectors(), 0);
        // Reading the window gives the kernel, zero-padded to the sector.
        let mut back = vec![0xEEu8; 3 * SECTOR_SIZE as usize];
        disk.read_at(8 * SECTOR_SIZE, &mut back);
        assert_eq!(&back[..1300], &kernel[..]);
        assert!(back[1300..].iter().all(|&b| b == 0));
        // A wrong byte is refused.
        assert!(disk.write_at(8 * SECTOR_SIZE + 5, &[0xFF]).is_err());
        // Zeros in the padding are accepted; anything else is not.
        disk.write_at(8 * SECTOR_SIZE + 1300, &[0; 200]).unwrap();
        assert!(disk.write_at(8 * SECTOR_SIZE + 1400, &[1]).is_err());
    }

    #[test]
    fn extents_merge_window_and_metadata() {
        let kernel = vec![1u8; 1024];
        let mut disk = SparseDisk::new(64 * SECTOR_SIZE);
        disk.set_window(10 * SECTOR_SIZE, Arc::new(kernel));
        disk.write_at(0, &[1]).unwrap();
        disk.write_at(9 * SECTOR_SIZE, &[1]).unwrap();
        disk.write_at(12 * SECTOR_SIZE, &[1]).unwrap();
        disk.write_at(40 * SECTOR_SIZE, &[1]).unwrap();
        assert_eq!(
            disk.data_extents(),
            vec![(0, SECTOR_SIZE), (9 * SECTOR_SIZE, 4 * SECTOR_SIZE), (40 * SECTOR_SIZE, SECTOR_SIZE)]
        );
    }

    #[test]
    fn out_of_range_access_is_an_error() {
        let mut disk = SparseDisk::new(4 * SECTOR_SIZE);
        assert!(disk.write_at(4 * SECTOR_SIZE - 1, &[1, 2]).is_err());
        assert!(disk.seek(SeekFrom::Current(-1)).is_err());
        disk.seek(SeekFrom::End(0)).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(disk.read(&mut buf).unwrap(), 0);
        let mut slice = Slice::new(&mut disk, SECTOR_SIZE, 2 * SECTOR_SIZE);
        slice.seek(SeekFrom::Start(2 * SECTOR_SIZE - 1)).unwrap();
        assert!(slice.write(&[1, 2]).is_err());
        assert_eq!(slice.write(&[7]).unwrap(), 1);
        let mut byte = [0u8];
        disk.read_at(3 * SECTOR_SIZE - 1, &mut byte);
        assert_eq!(byte, [7]);
    }
}

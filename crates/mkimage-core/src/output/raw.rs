//! Raw disk images: every byte to any `Write + Seek`, only the data to a destination that
//! already reads as zeros, or into a file whose zero ranges become holes.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};

use crate::Error;
use crate::image::{COPY_CHUNK, DataExtent, Image};

impl Image {
    /// Writes every byte of the disk, zeros included, to `out` (a stream, a device, a file):
    /// correct for any destination, whatever it held before. Returns the number of bytes
    /// written (the disk size).
    ///
    /// # Errors
    /// [`Error::Write`] when the destination fails.
    pub fn write_raw<W: Write>(&self, mut out: W) -> Result<u64, Error> {
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
        out.flush().map_err(Error::write)?;
        Ok(self.disk_size())
    }

    /// Writes only the data extents, seeking over the zero ranges, then makes sure the
    /// destination reaches the full disk size. The destination must read as zeros wherever
    /// nothing is written (a new file, a fresh zero-filled buffer); use [`Image::write_raw`]
    /// otherwise. Offsets are relative to the position of `out` on entry. Returns the number of
    /// data bytes written.
    ///
    /// # Errors
    /// [`Error::Write`] when the destination fails.
    pub fn write_raw_sparse<W: Write + Seek>(&self, mut out: W) -> Result<u64, Error> {
        let base = out.stream_position().map_err(Error::write)?;
        self.for_each_chunk(|offset, data| {
            out.seek(SeekFrom::Start(base + offset))?;
            out.write_all(data)
        })
        .map_err(Error::write)?;
        let covered = self.data_extents().last().map_or(0, DataExtent::end);
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
    ///
    /// # Errors
    /// [`Error::Write`] when the file cannot be resized or written.
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
}

//! Any bytes as a raw disk image: the inspector must return a report or an error, never panic.
//!
//! The input describes a sparse disk compactly, so that the fuzzer can reach filesystems lying
//! megabytes into the disk: a little-endian u32 disk size in KiB, then records of a u32 sector
//! number, a u16 length and that many bytes placed at that sector. `make_seeds` writes real
//! images in this form.
#![no_main]

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};

use libfuzzer_sys::fuzz_target;

/// Bytes per sector of the input format.
const SECTOR: u64 = 512;

struct Disk {
    sectors: BTreeMap<u64, [u8; SECTOR as usize]>,
    size: u64,
    pos: u64,
}

impl Read for Disk {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.size.saturating_sub(self.pos)) as usize;
        let mut done = 0;
        while done < n {
            let at = self.pos + done as u64;
            let within = (at % SECTOR) as usize;
            let k = (SECTOR as usize - within).min(n - done);
            match self.sectors.get(&(at / SECTOR)) {
                Some(s) => buf[done..done + k].copy_from_slice(&s[within..within + k]),
                None => buf[done..done + k].fill(0),
            }
            done += k;
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Disk {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.pos = match pos {
            SeekFrom::Start(n) => n,
            SeekFrom::End(d) => self.size.checked_add_signed(d).ok_or_else(|| std::io::Error::other("seek"))?,
            SeekFrom::Current(d) => self.pos.checked_add_signed(d).ok_or_else(|| std::io::Error::other("seek"))?,
        };
        Ok(self.pos)
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let size = u64::from(u32::from_le_bytes([data[0], data[1], data[2], data[3]])) * 1024;
    let mut sectors: BTreeMap<u64, [u8; SECTOR as usize]> = BTreeMap::new();
    let mut rest = &data[4..];
    while rest.len() >= 6 {
        let sector = u64::from(u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]));
        let len = usize::from(u16::from_le_bytes([rest[4], rest[5]])).min(rest.len() - 6);
        for (i, chunk) in rest[6..6 + len].chunks(SECTOR as usize).enumerate() {
            let s = sectors.entry(sector + i as u64).or_insert([0; SECTOR as usize]);
            s[..chunk.len()].copy_from_slice(chunk);
        }
        rest = &rest[6 + len..];
    }
    let disk = Disk { sectors, size, pos: 0 };
    let _ = mkimage_core::inspect::inspect_raw(disk, "fuzz");
});

//! The BIOS boot stage: the MBR code and stage 2 (x86 machine code assembled from
//! `boot/mbr.asm` and `boot/stage2.asm`, committed as `boot/*.bin` and embedded here), and the
//! *boot record* that tells stage 2 what to load.
//!
//! Boot flow: the BIOS runs the MBR code, which reads the boot area (stage 2 followed by the
//! boot record; in the MBR gap or the GPT BIOS boot partition) to 0000:8000 and jumps to stage 2.
//! Stage 2 checks the record, reads the kernel's sectors (listed in the record as *runs*) and
//! copies them to their physical addresses, zeroes the *zero ranges* (bss), checks a checksum of
//! everything it loaded, and enters the kernel the Multiboot 1 way. The record format is
//! documented at the top of `boot/stage2.asm`; [`BootRecord::encode`] and [`BootRecord::decode`]
//! are its only writer and reader on the host.

use crate::Error;
use crate::layout::SECTOR;
use crate::multiboot::LoadPlan;

/// The MBR boot code: the first 440 bytes of LBA 0.
pub const MBR_CODE: &[u8; MBR_CODE_LEN] = include_bytes!("../boot/mbr.bin");
/// Stage 2's code, before padding to [`STAGE2_SECTORS`].
pub const STAGE2_CODE: &[u8] = include_bytes!("../boot/stage2.bin");
/// Bytes of MBR boot code (the rest of LBA 0 is disk signature and partition table).
pub const MBR_CODE_LEN: usize = 440;
/// Offset in the MBR code of the INT 13h disk address packet the MBR code reads stage 2 with.
pub const MBR_DAP_OFFSET: usize = 0x1a8;
/// Offset of the DAP's sector count (u16), patched to [`BOOT_AREA_SECTORS`].
pub const MBR_DAP_COUNT_OFFSET: usize = MBR_DAP_OFFSET + 2;
/// Offset of the DAP's LBA (u64), patched to the first LBA of the boot area.
pub const MBR_DAP_LBA_OFFSET: usize = MBR_DAP_OFFSET + 8;
/// The value the assembled MBR code holds at [`MBR_DAP_LBA_OFFSET`] until patched ("FUKM_LBA"),
/// checked before patching so that a stale offset cannot corrupt the code.
pub const MBR_LBA_PLACEHOLDER: u64 = 0x4142_4c5f_4d4b_5546;
/// Sectors reserved for stage 2's code.
pub const STAGE2_SECTORS: u64 = 16;
/// Sectors reserved for the boot record.
pub const BOOT_RECORD_SECTORS: u64 = 16;
/// Sectors of the boot area: stage 2 followed by the boot record.
pub const BOOT_AREA_SECTORS: u64 = STAGE2_SECTORS + BOOT_RECORD_SECTORS;
/// Largest boot record in bytes.
pub const BOOT_RECORD_MAX: usize = (BOOT_RECORD_SECTORS * SECTOR) as usize;
/// Signature stage 2 carries at offset 4 (checked by the MBR code).
pub const STAGE2_SIGNATURE: &[u8; 8] = b"UKMKSTG2";
/// Offset of stage 2's signature.
const STAGE2_SIGNATURE_OFFSET: usize = 4;
/// Offset of stage 2's version (u16).
const STAGE2_VERSION_OFFSET: usize = 12;
/// Offset of the boot-record format stage 2 reads (u16).
const STAGE2_RECORD_VERSION_OFFSET: usize = 14;
/// Signature at the start of a boot record.
pub const RECORD_SIGNATURE: &[u8; 8] = b"UKMKBREC";
/// Boot record format version written by this library.
pub const RECORD_VERSION: u16 = 1;
/// Bytes of the fixed boot record header.
pub const RECORD_HEADER_LEN: usize = 64;
/// Bytes of one run in the boot record.
pub const RUN_LEN: usize = 24;
/// Bytes of one zero range in the boot record.
pub const ZERO_RANGE_LEN: usize = 8;
/// Record flag: do not print the start line.
pub const FLAG_QUIET: u32 = 1;
/// Offset of the CRC-32 field in the record header.
const RECORD_CRC_OFFSET: usize = 0x10;
/// Most sectors stage 2 reads per INT 13h call (so that a run's sector count can be any u32).
pub const MAX_SECTORS_PER_READ: u32 = 127;

/// The version of the embedded boot stage, as stage 2 declares it.
pub fn stage_version() -> u16 {
    u16::from_le_bytes([STAGE2_CODE[STAGE2_VERSION_OFFSET], STAGE2_CODE[STAGE2_VERSION_OFFSET + 1]])
}

/// Stage 2 padded to its reserved sectors, as written to the disk.
pub fn stage2_sectors() -> Vec<u8> {
    let mut bytes = STAGE2_CODE.to_vec();
    bytes.resize((STAGE2_SECTORS * SECTOR) as usize, 0);
    bytes
}

/// A contiguous stretch of the kernel file on the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileExtent {
    /// Offset in the file (a multiple of 512).
    pub file_offset: u64,
    /// First LBA holding it.
    pub lba: u64,
    /// Bytes.
    pub len: u64,
}

/// Bytes read from consecutive sectors and copied to consecutive memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// First LBA to read.
    pub lba: u64,
    /// Physical address of the first byte copied.
    pub dest: u32,
    /// Bytes to skip at the start of the first sector.
    pub skip: u16,
    /// Bytes to copy.
    pub len: u32,
    /// Sectors to read: those covering `skip + len` bytes.
    pub sectors: u32,
}

/// Memory to fill with zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZeroRange {
    /// Physical address.
    pub dest: u32,
    /// Bytes.
    pub len: u32,
}

/// Everything stage 2 needs to know (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootRecord {
    /// Flags ([`FLAG_QUIET`]).
    pub flags: u32,
    /// Physical entry point.
    pub entry: u32,
    /// What to read and where to copy it, in order.
    pub runs: Vec<Run>,
    /// What to zero.
    pub zeros: Vec<ZeroRange>,
    /// The kernel's command line.
    pub cmdline: String,
    /// The kernel's file name (for the start line).
    pub kernel_name: String,
    /// The boot loader name passed to the kernel.
    pub loader_name: String,
    /// Index of the partition holding the kernel (Multiboot `boot_device` part1).
    pub boot_partition: u8,
    /// Checksum of the loaded bytes ([`load_checksum`]).
    pub checksum: (u32, u32),
    /// Kernel file size (for the start line).
    pub kernel_size: u32,
    /// CRC-32 of stage 2's sectors as written.
    pub stage2_crc: u32,
}

/// Why bytes are not a valid boot record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Too short to hold the header.
    #[error("boot record truncated")]
    Truncated,
    /// Wrong signature.
    #[error("no boot record signature")]
    BadSignature,
    /// A format this library does not read.
    #[error("boot record format {0} is not supported (this library reads format 1)")]
    UnsupportedVersion(u16),
    /// The CRC does not match.
    #[error("boot record checksum mismatch")]
    BadCrc,
    /// Lengths, counts or offsets are inconsistent.
    #[error("boot record is malformed: {0}")]
    Malformed(&'static str),
}

impl BootRecord {
    /// Serializes the record. Fails if it does not fit in [`BOOT_RECORD_MAX`] bytes.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let strings = [&self.cmdline, &self.kernel_name, &self.loader_name];
        let runs_offset = RECORD_HEADER_LEN;
        let zeros_offset = runs_offset + self.runs.len() * RUN_LEN;
        let mut string_offsets = [0usize; 3];
        let mut total = zeros_offset + self.zeros.len() * ZERO_RANGE_LEN;
        for (slot, s) in string_offsets.iter_mut().zip(strings) {
            *slot = total;
            total += s.len() + 1;
        }
        // Stage 2 also requires the last byte of the record area to be zero.
        if total >= BOOT_RECORD_MAX {
            return Err(Error::BootRecordTooLarge { len: total, max: BOOT_RECORD_MAX - 1 });
        }
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(RECORD_SIGNATURE);
        out.extend_from_slice(&RECORD_VERSION.to_le_bytes());
        out.extend_from_slice(&(RECORD_HEADER_LEN as u16).to_le_bytes());
        out.extend_from_slice(&(total as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // CRC, filled in below
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&self.entry.to_le_bytes());
        out.extend_from_slice(&(self.runs.len() as u16).to_le_bytes());
        out.extend_from_slice(&(self.zeros.len() as u16).to_le_bytes());
        for offset in [runs_offset, zeros_offset, string_offsets[0], string_offsets[1], string_offsets[2], 0] {
            out.extend_from_slice(&(offset as u16).to_le_bytes());
        }
        out.extend_from_slice(&[self.boot_partition, 0, 0, 0]);
        out.extend_from_slice(&self.checksum.0.to_le_bytes());
        out.extend_from_slice(&self.checksum.1.to_le_bytes());
        out.extend_from_slice(&self.kernel_size.to_le_bytes());
        out.extend_from_slice(&self.stage2_crc.to_le_bytes());
        debug_assert_eq!(out.len(), RECORD_HEADER_LEN);
        for run in &self.runs {
            out.extend_from_slice(&run.lba.to_le_bytes());
            out.extend_from_slice(&run.dest.to_le_bytes());
            out.extend_from_slice(&run.skip.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&run.len.to_le_bytes());
            out.extend_from_slice(&run.sectors.to_le_bytes());
        }
        for zero in &self.zeros {
            out.extend_from_slice(&zero.dest.to_le_bytes());
            out.extend_from_slice(&zero.len.to_le_bytes());
        }
        for s in strings {
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        debug_assert_eq!(out.len(), total);
        let crc = crc32fast::hash(&out);
        out[RECORD_CRC_OFFSET..RECORD_CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Parses a record (trailing bytes after its total length are ignored). Never panics and
    /// allocates at most in proportion to `bytes.len()`.
    pub fn decode(bytes: &[u8]) -> Result<BootRecord, RecordError> {
        let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        if bytes.len() < RECORD_HEADER_LEN {
            return Err(RecordError::Truncated);
        }
        if &bytes[..8] != RECORD_SIGNATURE {
            return Err(RecordError::BadSignature);
        }
        let version = u16_at(8).ok_or(RecordError::Truncated)?;
        if version != RECORD_VERSION {
            return Err(RecordError::UnsupportedVersion(version));
        }
        if u16_at(10) != Some(RECORD_HEADER_LEN as u16) {
            return Err(RecordError::Malformed("header length"));
        }
        let total = u32_at(12).ok_or(RecordError::Truncated)? as usize;
        if !(RECORD_HEADER_LEN..BOOT_RECORD_MAX).contains(&total) {
            return Err(RecordError::Malformed("total length"));
        }
        let record = bytes.get(..total).ok_or(RecordError::Truncated)?;
        let mut zeroed = record.to_vec();
        zeroed[RECORD_CRC_OFFSET..RECORD_CRC_OFFSET + 4].fill(0);
        if crc32fast::hash(&zeroed) != u32_at(RECORD_CRC_OFFSET).unwrap_or(0) {
            return Err(RecordError::BadCrc);
        }
        let field16 = |at| u16_at(at).map(usize::from).ok_or(RecordError::Truncated);
        let field32 = |at| u32_at(at).ok_or(RecordError::Truncated);
        let (run_count, zero_count) = (field16(0x1c)?, field16(0x1e)?);
        let (runs_at, zeros_at) = (field16(0x20)?, field16(0x22)?);
        let table = |at: usize, count: usize, len: usize| {
            record.get(at..at.checked_add(count * len)?).ok_or(RecordError::Malformed("table outside the record")).ok()
        };
        let runs_bytes = table(runs_at, run_count, RUN_LEN).ok_or(RecordError::Malformed("runs outside the record"))?;
        let zero_bytes = table(zeros_at, zero_count, ZERO_RANGE_LEN)
            .ok_or(RecordError::Malformed("zero ranges outside the record"))?;
        let runs = runs_bytes
            .chunks_exact(RUN_LEN)
            .map(|c| Run {
                lba: u64::from_le_bytes(c[0..8].try_into().unwrap_or_default()),
                dest: u32::from_le_bytes(c[8..12].try_into().unwrap_or_default()),
                skip: u16::from_le_bytes(c[12..14].try_into().unwrap_or_default()),
                len: u32::from_le_bytes(c[16..20].try_into().unwrap_or_default()),
                sectors: u32::from_le_bytes(c[20..24].try_into().unwrap_or_default()),
            })
            .collect();
        let zeros = zero_bytes
            .chunks_exact(ZERO_RANGE_LEN)
            .map(|c| ZeroRange {
                dest: u32::from_le_bytes(c[0..4].try_into().unwrap_or_default()),
                len: u32::from_le_bytes(c[4..8].try_into().unwrap_or_default()),
            })
            .collect();
        let string = |at: usize| -> Result<String, RecordError> {
            let tail = record.get(at..).ok_or(RecordError::Malformed("string outside the record"))?;
            let end = tail.iter().position(|&b| b == 0).ok_or(RecordError::Malformed("unterminated string"))?;
            String::from_utf8(tail[..end].to_vec()).map_err(|_| RecordError::Malformed("string is not UTF-8"))
        };
        Ok(BootRecord {
            flags: field32(0x14)?,
            entry: field32(0x18)?,
            runs,
            zeros,
            cmdline: string(field16(0x24)?)?,
            kernel_name: string(field16(0x26)?)?,
            loader_name: string(field16(0x28)?)?,
            boot_partition: record[0x2c],
            checksum: (field32(0x30)?, field32(0x34)?),
            kernel_size: field32(0x38)?,
            stage2_crc: field32(0x3c)?,
        })
    }
}

/// Splits the load plan's segments into runs over the file's extents on disk, and lists the
/// ranges to zero. Also returns, for each run, the file offset of its first byte (for the
/// checksum).
pub fn plan_runs(load: &LoadPlan, extents: &[FileExtent]) -> (Vec<(Run, u64)>, Vec<ZeroRange>) {
    let mut runs = Vec::new();
    let mut zeros = Vec::new();
    for segment in &load.segments {
        let (mut offset, end) = (segment.file_offset, segment.file_offset + segment.file_size);
        let mut dest = segment.addr;
        while offset < end {
            let Some(extent) = extents.iter().find(|e| offset >= e.file_offset && offset < e.file_offset + e.len)
            else {
                break; // the layout guarantees the extents cover the file
            };
            let in_extent = offset - extent.file_offset;
            let len = (end - offset).min(extent.len - in_extent);
            let lba = extent.lba + in_extent / SECTOR;
            let skip = (in_extent % SECTOR) as u16;
            let sectors = (u64::from(skip) + len).div_ceil(SECTOR) as u32;
            runs.push((Run { lba, dest: dest as u32, skip, len: len as u32, sectors }, offset));
            offset += len;
            dest += len;
        }
        if segment.mem_size > segment.file_size {
            zeros.push(ZeroRange {
                dest: (segment.addr + segment.file_size) as u32,
                len: (segment.mem_size - segment.file_size) as u32,
            });
        }
    }
    (runs, zeros)
}

/// The checksum stage 2 computes over the loaded bytes: for each run, each little-endian dword
/// of its bytes (the last zero-padded) is added to A, and A to B, modulo 2^32.
pub fn load_checksum<'a>(run_bytes: impl IntoIterator<Item = &'a [u8]>) -> (u32, u32) {
    let (mut a, mut b) = (0u32, 0u32);
    for bytes in run_bytes {
        let mut chunks = bytes.chunks_exact(4);
        for c in &mut chunks {
            a = a.wrapping_add(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            b = b.wrapping_add(a);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 4];
            last[..rest.len()].copy_from_slice(rest);
            a = a.wrapping_add(u32::from_le_bytes(last));
            b = b.wrapping_add(a);
        }
    }
    (a, b)
}

/// The MBR code with the boot area's location patched in.
pub fn patched_mbr_code(boot_area_lba: u64) -> Result<[u8; MBR_CODE_LEN], Error> {
    let mut code = *MBR_CODE;
    let placeholder =
        u64::from_le_bytes(code[MBR_DAP_LBA_OFFSET..MBR_DAP_LBA_OFFSET + 8].try_into().unwrap_or_default());
    if placeholder != MBR_LBA_PLACEHOLDER || code[MBR_DAP_OFFSET] != 16 {
        return Err(Error::Internal("the embedded MBR code has no disk address packet where expected".into()));
    }
    code[MBR_DAP_COUNT_OFFSET..MBR_DAP_COUNT_OFFSET + 2].copy_from_slice(&(BOOT_AREA_SECTORS as u16).to_le_bytes());
    code[MBR_DAP_LBA_OFFSET..MBR_DAP_LBA_OFFSET + 8].copy_from_slice(&boot_area_lba.to_le_bytes());
    Ok(code)
}

/// Checks that the embedded stage 2 is what this module expects (signature, record format,
/// size).
pub fn check_stage2() -> Result<(), Error> {
    let signature_ok =
        STAGE2_CODE.get(STAGE2_SIGNATURE_OFFSET..STAGE2_SIGNATURE_OFFSET + 8) == Some(&STAGE2_SIGNATURE[..]);
    let record_version = STAGE2_CODE
        .get(STAGE2_RECORD_VERSION_OFFSET..STAGE2_RECORD_VERSION_OFFSET + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]));
    if !signature_ok || record_version != Some(RECORD_VERSION) || STAGE2_CODE.len() as u64 > STAGE2_SECTORS * SECTOR {
        return Err(Error::Internal("the embedded stage 2 does not match this library".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multiboot::{Header, KernelFormat, Segment};

    fn record() -> BootRecord {
        BootRecord {
            flags: FLAG_QUIET,
            entry: 0x100040,
            runs: vec![Run { lba: 4100, dest: 0x100000, skip: 0x20, len: 0x13000, sectors: 153 }],
            zeros: vec![ZeroRange { dest: 0x113000, len: 0xb000 }],
            cmdline: "test_hello.virtio Hello_Solo5".into(),
            kernel_name: "test_hello.virtio".into(),
            loader_name: "unikernel-mkimage 0.1.0".into(),
            boot_partition: 1,
            checksum: (0x1234, 0x5678),
            kernel_size: 225_408,
            stage2_crc: 0xdeadbeef,
        }
    }

    #[test]
    fn record_round_trips() {
        let r = record();
        let bytes = r.encode().unwrap();
        assert_eq!(&bytes[..8], b"UKMKBREC");
        assert_eq!(BootRecord::decode(&bytes).unwrap(), r);
        // Trailing padding (the rest of the reserved sectors) is ignored.
        let mut padded = bytes.clone();
        padded.resize(BOOT_RECORD_MAX, 0);
        assert_eq!(BootRecord::decode(&padded).unwrap(), r);
    }

    #[test]
    fn record_layout_matches_stage2() {
        let bytes = record().encode().unwrap();
        let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!(u16_at(0x08), 1);
        assert_eq!(u16_at(0x0a), 64);
        assert_eq!(u32_at(0x0c) as usize, bytes.len());
        assert_eq!(u32_at(0x14), FLAG_QUIET);
        assert_eq!(u32_at(0x18), 0x100040);
        assert_eq!((u16_at(0x1c), u16_at(0x1e)), (1, 1));
        assert_eq!(u16_at(0x20), 64);
        assert_eq!(u16_at(0x22), 64 + 24);
        let run = 64;
        assert_eq!(u64::from_le_bytes(bytes[run..run + 8].try_into().unwrap()), 4100);
        assert_eq!(u32_at(run + 8), 0x100000);
        assert_eq!(u16_at(run + 12), 0x20);
        assert_eq!(u32_at(run + 16), 0x13000);
        assert_eq!(u32_at(run + 20), 153);
        let cmdline = u16_at(0x24) as usize;
        assert_eq!(&bytes[cmdline..cmdline + 18], b"test_hello.virtio ");
        assert_eq!(bytes[0x2c], 1);
        assert_eq!(u32_at(0x38), 225_408);
        assert_eq!(u32_at(0x3c), 0xdeadbeef);
        // CRC-32 (IEEE) over the record with the CRC field zero.
        let mut zeroed = bytes.clone();
        zeroed[0x10..0x14].fill(0);
        assert_eq!(u32_at(0x10), crc32fast::hash(&zeroed));
    }

    #[test]
    fn damaged_records_are_refused() {
        let bytes = record().encode().unwrap();
        assert_eq!(BootRecord::decode(&bytes[..10]), Err(RecordError::Truncated));
        let mut b = bytes.clone();
        b[0] = b'X';
        assert_eq!(BootRecord::decode(&b), Err(RecordError::BadSignature));
        let mut b = bytes.clone();
        b[8] = 2;
        assert_eq!(BootRecord::decode(&b), Err(RecordError::UnsupportedVersion(2)));
        let mut b = bytes.clone();
        let last = b.len() - 2;
        b[last] ^= 0x20;
        assert_eq!(BootRecord::decode(&b), Err(RecordError::BadCrc));
        let mut b = bytes.clone();
        b[12..16].copy_from_slice(&100_000u32.to_le_bytes());
        assert!(matches!(BootRecord::decode(&b), Err(RecordError::Malformed(_))));
        assert_eq!(BootRecord::decode(&bytes[..bytes.len() - 1]), Err(RecordError::Truncated));
    }

    #[test]
    fn oversized_records_are_refused() {
        let mut r = record();
        r.cmdline = "x".repeat(BOOT_RECORD_MAX);
        assert!(matches!(r.encode(), Err(Error::BootRecordTooLarge { .. })));
        // The longest command line the builder allows always fits with the most segments.
        let mut r = record();
        r.cmdline = "x".repeat(crate::MAX_CMDLINE_LEN);
        r.kernel_name = "k".repeat(255);
        r.runs = vec![r.runs[0]; crate::multiboot::MAX_LOAD_SEGMENTS];
        r.zeros = vec![r.zeros[0]; crate::multiboot::MAX_LOAD_SEGMENTS];
        assert!(r.encode().is_ok());
    }

    fn plan(segments: Vec<Segment>) -> LoadPlan {
        LoadPlan {
            header: Header { offset: 0, flags: 0 },
            format: KernelFormat::Elf32,
            entry: segments[0].addr as u32,
            segments,
        }
    }

    #[test]
    fn runs_follow_segments_and_extents() {
        let load = plan(vec![
            Segment { file_offset: 0x1000, file_size: 0x13000, addr: 0x100000, mem_size: 0x1e000 },
            Segment { file_offset: 0x14010, file_size: 0x10, addr: 0x1000000, mem_size: 0x10 },
        ]);
        // One contiguous extent.
        let (runs, zeros) = plan_runs(&load, &[FileExtent { file_offset: 0, lba: 5000, len: 0x20000 }]);
        assert_eq!(
            runs,
            vec![
                (Run { lba: 5000 + 8, dest: 0x100000, skip: 0, len: 0x13000, sectors: 0x98 }, 0x1000),
                (Run { lba: 5000 + 0xa0, dest: 0x1000000, skip: 0x10, len: 0x10, sectors: 1 }, 0x14010),
            ]
        );
        assert_eq!(zeros, vec![ZeroRange { dest: 0x113000, len: 0xb000 }]);
        // Two extents: the first segment is split where the file jumps on disk.
        let extents = [
            FileExtent { file_offset: 0, lba: 5000, len: 0x8000 },
            FileExtent { file_offset: 0x8000, lba: 9000, len: 0x18000 },
        ];
        let (runs, _) = plan_runs(&load, &extents);
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[0].0, Run { lba: 5008, dest: 0x100000, skip: 0, len: 0x7000, sectors: 0x38 });
        assert_eq!(runs[1].0, Run { lba: 9000, dest: 0x107000, skip: 0, len: 0xc000, sectors: 0x60 });
        assert_eq!(runs[1].1, 0x8000);
    }

    #[test]
    fn unaligned_runs_cover_their_bytes() {
        for offset in [0u64, 1, 3, 511, 512, 513, 4093] {
            for size in [1u64, 2, 511, 512, 513, 65024, 65025, 200_000] {
                let load = plan(vec![Segment { file_offset: offset, file_size: size, addr: 0x100000, mem_size: size }]);
                let (runs, _) = plan_runs(&load, &[FileExtent { file_offset: 0, lba: 100, len: 1 << 20 }]);
                assert_eq!(runs.len(), 1);
                let run = runs[0].0;
                assert_eq!(u64::from(run.skip), offset % 512);
                assert_eq!(run.lba, 100 + offset / 512);
                assert_eq!(u64::from(run.sectors) * 512, (u64::from(run.skip) + size).div_ceil(512) * 512);
            }
        }
    }

    #[test]
    fn checksum_definition() {
        assert_eq!(load_checksum([&[][..]]), (0, 0));
        assert_eq!(load_checksum([&[1, 0, 0, 0, 2, 0, 0, 0][..]]), (3, 4));
        // Partial dwords are zero-padded per run, not carried into the next run.
        assert_eq!(load_checksum([&[1u8][..], &[1u8][..]]), (2, 3));
        assert_eq!(load_checksum([&[0, 0, 0, 0x80, 0, 0, 0, 0x80][..]]), (0, 0x8000_0000));
    }

    #[test]
    fn embedded_boot_code_is_consistent() {
        check_stage2().unwrap();
        assert_eq!(stage_version(), 1);
        let code = patched_mbr_code(64).unwrap();
        assert_eq!(u16::from_le_bytes([code[MBR_DAP_COUNT_OFFSET], code[MBR_DAP_COUNT_OFFSET + 1]]), 32);
        assert_eq!(u64::from_le_bytes(code[MBR_DAP_LBA_OFFSET..MBR_DAP_LBA_OFFSET + 8].try_into().unwrap()), 64);
        assert_eq!(stage2_sectors().len(), 8192);
    }
}

//! The boot record: the one description of what to load that every boot stage follows (the
//! BIOS stage 2 today). The host computes it from the kernel's [`LoadPlan`] and the kernel
//! file's place on the disk: *runs* (bytes read from consecutive sectors and copied to
//! consecutive memory), *zero ranges* (bss), the entry point, the command line and a checksum
//! of everything loaded.
//!
//! The byte layout is documented at the top of `bios/stage2.asm`; [`field`], [`run_field`] and
//! [`zero_field`] name every offset once, and [`BootRecord::encode`] and [`BootRecord::decode`]
//! are the host's only writer and reader. The record's structs mirror format 2 field for field
//! and are open to construction (tests and tools craft records); a new field means a new
//! format version.

use crate::Error;
use crate::bytes::{Le, SECTOR_SIZE};
use crate::multiboot::LoadPlan;

/// Signature at the start of a boot record.
pub const RECORD_SIGNATURE: &[u8; 8] = b"UKMKBREC";
/// Boot record format version written by this library.
pub const RECORD_VERSION: u16 = 2;
/// Bytes of the fixed boot record header.
pub const RECORD_HEADER_LEN: usize = 96;
/// Bytes of one run in the boot record.
pub const RUN_LEN: usize = 24;
/// Bytes of one zero range in the boot record.
pub const ZERO_RANGE_LEN: usize = 8;
/// Largest boot record in bytes: the space every boot stage reserves for it (stage 2 reads it
/// to A000h-BFFFh).
pub const BOOT_RECORD_MAX: usize = 8192;
/// Record flag: do not print the start line.
pub const FLAG_QUIET: u32 = 1 << 0;
/// Record flag: the kernel requires a graphics mode ([`VideoRequest`]); only a boot stage that
/// can set one (UEFI, through GOP) may boot it.
pub const FLAG_VIDEO: u32 = 1 << 1;
/// Every flag this format defines; a boot stage refuses a record with any other bit set.
pub const KNOWN_FLAGS: u32 = FLAG_QUIET | FLAG_VIDEO;

/// Offsets of the header fields (the table at the top of `bios/stage2.asm`).
pub mod field {
    use crate::bytes::Le;
    /// The signature, [`super::RECORD_SIGNATURE`] (8 bytes).
    pub const SIGNATURE: std::ops::Range<usize> = 0..8;
    /// Format version.
    pub const VERSION: Le<u16> = Le::at(0x08);
    /// Header length, [`super::RECORD_HEADER_LEN`].
    pub const HEADER_LEN: Le<u16> = Le::at(0x0a);
    /// Total length of the record.
    pub const TOTAL_LEN: Le<u32> = Le::at(0x0c);
    /// CRC-32 of the record with this field zero.
    pub const CRC: Le<u32> = Le::at(0x10);
    /// Flags ([`super::FLAG_QUIET`]).
    pub const FLAGS: Le<u32> = Le::at(0x14);
    /// Physical entry point.
    pub const ENTRY: Le<u32> = Le::at(0x18);
    /// Number of runs.
    pub const RUN_COUNT: Le<u16> = Le::at(0x1c);
    /// Number of zero ranges.
    pub const ZERO_COUNT: Le<u16> = Le::at(0x1e);
    /// Offset of the runs.
    pub const RUNS: Le<u16> = Le::at(0x20);
    /// Offset of the zero ranges.
    pub const ZEROS: Le<u16> = Le::at(0x22);
    /// Offset of the command line (NUL-terminated).
    pub const CMDLINE: Le<u16> = Le::at(0x24);
    /// Offset of the kernel's file name (NUL-terminated).
    pub const KERNEL_NAME: Le<u16> = Le::at(0x26);
    /// Offset of the boot loader name (NUL-terminated).
    pub const LOADER_NAME: Le<u16> = Le::at(0x28);
    /// Index of the partition holding the kernel.
    pub const BOOT_PARTITION: Le<u8> = Le::at(0x2c);
    /// Checksum A over the loaded bytes.
    pub const SUM_A: Le<u32> = Le::at(0x30);
    /// Checksum B over the loaded bytes.
    pub const SUM_B: Le<u32> = Le::at(0x34);
    /// Kernel file size.
    pub const KERNEL_SIZE: Le<u32> = Le::at(0x38);
    /// CRC-32 of stage 2's sectors.
    pub const STAGE2_CRC: Le<u32> = Le::at(0x3c);
    /// First LBA of the kernel file (runs read only the file's own sectors).
    pub const KERNEL_LBA: Le<u64> = Le::at(0x40);
    /// Video request: Multiboot mode type (0, linear graphics).
    pub const VIDEO_MODE_TYPE: Le<u32> = Le::at(0x48);
    /// Video request: width in pixels (0: no preference).
    pub const VIDEO_WIDTH: Le<u32> = Le::at(0x4c);
    /// Video request: height in pixels (0: no preference).
    pub const VIDEO_HEIGHT: Le<u32> = Le::at(0x50);
    /// Video request: bits per pixel (0: no preference).
    pub const VIDEO_DEPTH: Le<u32> = Le::at(0x54);
}

/// Offsets of a run's fields, from the start of the run.
pub mod run_field {
    use crate::bytes::Le;
    /// First LBA to read.
    pub const LBA: Le<u64> = Le::at(0);
    /// Physical destination.
    pub const DEST: Le<u32> = Le::at(8);
    /// Bytes to skip in the first sector.
    pub const SKIP: Le<u16> = Le::at(12);
    /// Bytes to copy (after two reserved bytes).
    pub const LEN: Le<u32> = Le::at(16);
    /// Sectors to read.
    pub const SECTORS: Le<u32> = Le::at(20);
}

/// Offsets of a zero range's fields, from the start of the range.
pub mod zero_field {
    use crate::bytes::Le;
    /// Physical destination.
    pub const DEST: Le<u32> = Le::at(0);
    /// Bytes to zero.
    pub const LEN: Le<u32> = Le::at(4);
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

/// The graphics mode a kernel asks for (Multiboot header flag bit 2), as the record carries it:
/// the header's fields, unchanged.
pub type VideoRequest = crate::multiboot::VideoMode;

/// Everything a boot stage needs to know (see the module documentation).
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
    /// First LBA of the kernel file.
    pub kernel_lba: u64,
    /// The graphics mode the kernel requires (with [`FLAG_VIDEO`]; zero otherwise).
    pub video: VideoRequest,
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
    #[error("boot record format {0} is not supported (this library reads format 2)")]
    UnsupportedVersion(u16),
    /// The CRC does not match.
    #[error("boot record checksum mismatch")]
    BadCrc,
    /// Lengths, counts or offsets are inconsistent.
    #[error("boot record is malformed: {0}")]
    Malformed(&'static str),
}

/// The CRC-32 a record carries: over its bytes with the CRC field taken as zero.
fn record_crc(record: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&record[..field::CRC.offset()]);
    hasher.update(&[0; 4]);
    hasher.update(&record[field::CRC.end()..]);
    hasher.finalize()
}

/// Why a boot record's plan is unsafe to follow. The variants are the checks every boot stage
/// makes, in the order stage 2 makes them, with the words of its refusal lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A flag the boot stage does not know or cannot honour.
    #[error("boot record asks for features this boot stage lacks")]
    Flags,
    /// A run's fields are inconsistent or reach outside the kernel file (or there is no run, or
    /// no kernel).
    #[error("boot record invalid: a run does not read the kernel file's own sectors")]
    Run,
    /// A run or zero range lies below 1 MiB or beyond 4 GiB.
    #[error("boot record invalid: a load range lies below 1 MiB or beyond 4 GiB")]
    Range,
    /// Two ranges overlap.
    #[error("boot record invalid: two load ranges overlap")]
    Overlap,
    /// The entry point is not in the bytes a run loads.
    #[error("boot record invalid: the entry point is not in the loaded bytes")]
    Entry,
}

/// Lowest address a run or zero range may use: 1 MiB (below lie the firmware and the loaders).
pub const LOAD_MIN: u64 = 0x10_0000;
/// One past the highest address a range may use: 4 GiB.
pub const LOAD_END: u64 = 1 << 32;

impl BootRecord {
    /// Checks the record's plan as a boot stage does before following it, trusting nothing a
    /// correct CRC vouches for: only `allowed_flags`; every run reads only sectors of the kernel
    /// file, with `skip < 512`, a non-zero length and `sectors = ceil((skip + len) / 512)`;
    /// every range in [1 MiB, 4 GiB); no two non-empty ranges overlapping; the entry point in
    /// bytes a run loads. Errors come in stage 2's order.
    ///
    /// # Errors
    /// The first [`PlanError`] in stage 2's order.
    pub fn check_plan(&self, allowed_flags: u32) -> Result<(), PlanError> {
        if self.flags & !allowed_flags != 0 {
            return Err(PlanError::Flags);
        }
        let file_sectors = u64::from(self.kernel_size).div_ceil(SECTOR_SIZE);
        let kernel_end = self.kernel_lba.checked_add(file_sectors).ok_or(PlanError::Run)?;
        if self.kernel_size == 0 || self.runs.is_empty() {
            return Err(PlanError::Run);
        }
        for run in &self.runs {
            let needed = (u64::from(run.skip) + u64::from(run.len)).div_ceil(SECTOR_SIZE);
            let end = run.lba.checked_add(u64::from(run.sectors));
            let fits = run.lba >= self.kernel_lba && end.is_some_and(|e| e <= kernel_end);
            if u64::from(run.skip) >= SECTOR_SIZE || run.len == 0 || needed != u64::from(run.sectors) || !fits {
                return Err(PlanError::Run);
            }
        }
        let ranges: Vec<(u64, u64)> = self
            .runs
            .iter()
            .map(|r| (u64::from(r.dest), u64::from(r.len)))
            .chain(self.zeros.iter().map(|z| (u64::from(z.dest), u64::from(z.len))))
            .collect();
        for &(dest, len) in &ranges {
            if len > 0 && (dest < LOAD_MIN || dest + len > LOAD_END) {
                return Err(PlanError::Range);
            }
        }
        for (i, &(a, a_len)) in ranges.iter().enumerate() {
            for &(b, b_len) in &ranges[i + 1..] {
                if a_len > 0 && b_len > 0 && b < a + a_len && a < b + b_len {
                    return Err(PlanError::Overlap);
                }
            }
        }
        let entry = u64::from(self.entry);
        if !self.runs.iter().any(|r| entry >= u64::from(r.dest) && entry < u64::from(r.dest) + u64::from(r.len)) {
            return Err(PlanError::Entry);
        }
        Ok(())
    }

    /// Serializes the record. Fails if it does not fit in [`BOOT_RECORD_MAX`] bytes.
    ///
    /// # Errors
    /// [`Error::BootRecordTooLarge`] if the record does not fit in [`BOOT_RECORD_MAX`] bytes.
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
        // Every offset and count now fits its field: the record is under 8 KiB.
        let small = |n: usize| n as u16;
        let mut out = vec![0u8; total];
        out[field::SIGNATURE].copy_from_slice(RECORD_SIGNATURE);
        field::VERSION.put(&mut out, RECORD_VERSION);
        field::HEADER_LEN.put(&mut out, small(RECORD_HEADER_LEN));
        field::TOTAL_LEN.put(&mut out, total as u32);
        field::FLAGS.put(&mut out, self.flags);
        field::ENTRY.put(&mut out, self.entry);
        field::RUN_COUNT.put(&mut out, small(self.runs.len()));
        field::ZERO_COUNT.put(&mut out, small(self.zeros.len()));
        field::RUNS.put(&mut out, small(runs_offset));
        field::ZEROS.put(&mut out, small(zeros_offset));
        field::CMDLINE.put(&mut out, small(string_offsets[0]));
        field::KERNEL_NAME.put(&mut out, small(string_offsets[1]));
        field::LOADER_NAME.put(&mut out, small(string_offsets[2]));
        field::BOOT_PARTITION.put(&mut out, self.boot_partition);
        field::SUM_A.put(&mut out, self.checksum.0);
        field::SUM_B.put(&mut out, self.checksum.1);
        field::KERNEL_SIZE.put(&mut out, self.kernel_size);
        field::STAGE2_CRC.put(&mut out, self.stage2_crc);
        field::KERNEL_LBA.put(&mut out, self.kernel_lba);
        field::VIDEO_MODE_TYPE.put(&mut out, self.video.mode_type);
        field::VIDEO_WIDTH.put(&mut out, self.video.width);
        field::VIDEO_HEIGHT.put(&mut out, self.video.height);
        field::VIDEO_DEPTH.put(&mut out, self.video.depth);
        for (i, run) in self.runs.iter().enumerate() {
            let base = runs_offset + i * RUN_LEN;
            run_field::LBA.within(base).put(&mut out, run.lba);
            run_field::DEST.within(base).put(&mut out, run.dest);
            run_field::SKIP.within(base).put(&mut out, run.skip);
            run_field::LEN.within(base).put(&mut out, run.len);
            run_field::SECTORS.within(base).put(&mut out, run.sectors);
        }
        for (i, zero) in self.zeros.iter().enumerate() {
            let base = zeros_offset + i * ZERO_RANGE_LEN;
            zero_field::DEST.within(base).put(&mut out, zero.dest);
            zero_field::LEN.within(base).put(&mut out, zero.len);
        }
        for (s, at) in strings.into_iter().zip(string_offsets) {
            out[at..at + s.len()].copy_from_slice(s.as_bytes());
        }
        let crc = record_crc(&out);
        field::CRC.put(&mut out, crc);
        Ok(out)
    }

    /// Parses a record (trailing bytes after its total length are ignored). Never panics and
    /// allocates at most in proportion to `bytes.len()`.
    ///
    /// # Errors
    /// A [`RecordError`] saying what is wrong: too short, another signature or format, a bad CRC,
    /// or tables and strings outside the record.
    pub fn decode(bytes: &[u8]) -> Result<BootRecord, RecordError> {
        if bytes.len() < RECORD_HEADER_LEN {
            return Err(RecordError::Truncated);
        }
        if &bytes[field::SIGNATURE] != RECORD_SIGNATURE {
            return Err(RecordError::BadSignature);
        }
        let version = field::VERSION.get(bytes).ok_or(RecordError::Truncated)?;
        if version != RECORD_VERSION {
            return Err(RecordError::UnsupportedVersion(version));
        }
        if field::HEADER_LEN.get(bytes) != Some(RECORD_HEADER_LEN as u16) {
            return Err(RecordError::Malformed("header length"));
        }
        let total = field::TOTAL_LEN.get(bytes).ok_or(RecordError::Truncated)? as usize;
        if !(RECORD_HEADER_LEN..BOOT_RECORD_MAX).contains(&total) {
            return Err(RecordError::Malformed("total length"));
        }
        let record = bytes.get(..total).ok_or(RecordError::Truncated)?;
        if record_crc(record) != field::CRC.get(record).unwrap_or(0) {
            return Err(RecordError::BadCrc);
        }
        // The header lies within the record from here on.
        let get16 = |f: Le<u16>| usize::from(f.get(record).unwrap_or(0));
        let get32 = |f: Le<u32>| f.get(record).unwrap_or(0);
        let table = |at: usize, count: usize, len: usize, what: &'static str| {
            record.get(at..at + count * len).filter(|_| at >= RECORD_HEADER_LEN).ok_or(RecordError::Malformed(what))
        };
        let runs = table(get16(field::RUNS), get16(field::RUN_COUNT), RUN_LEN, "runs outside the record")?
            .chunks_exact(RUN_LEN)
            .map(|c| Run {
                lba: run_field::LBA.get(c).unwrap_or(0),
                dest: run_field::DEST.get(c).unwrap_or(0),
                skip: run_field::SKIP.get(c).unwrap_or(0),
                len: run_field::LEN.get(c).unwrap_or(0),
                sectors: run_field::SECTORS.get(c).unwrap_or(0),
            })
            .collect();
        let zeros =
            table(get16(field::ZEROS), get16(field::ZERO_COUNT), ZERO_RANGE_LEN, "zero ranges outside the record")?
                .chunks_exact(ZERO_RANGE_LEN)
                .map(|c| ZeroRange {
                    dest: zero_field::DEST.get(c).unwrap_or(0),
                    len: zero_field::LEN.get(c).unwrap_or(0),
                })
                .collect();
        let string = |f: Le<u16>| -> Result<String, RecordError> {
            let tail = record
                .get(get16(f)..)
                .filter(|_| get16(f) >= RECORD_HEADER_LEN)
                .ok_or(RecordError::Malformed("string outside the record"))?;
            let end = tail.iter().position(|&b| b == 0).ok_or(RecordError::Malformed("unterminated string"))?;
            String::from_utf8(tail[..end].to_vec()).map_err(|_| RecordError::Malformed("string is not UTF-8"))
        };
        Ok(BootRecord {
            flags: get32(field::FLAGS),
            entry: get32(field::ENTRY),
            runs,
            zeros,
            cmdline: string(field::CMDLINE)?,
            kernel_name: string(field::KERNEL_NAME)?,
            loader_name: string(field::LOADER_NAME)?,
            boot_partition: field::BOOT_PARTITION.get(record).unwrap_or(0),
            checksum: (get32(field::SUM_A), get32(field::SUM_B)),
            kernel_size: get32(field::KERNEL_SIZE),
            stage2_crc: get32(field::STAGE2_CRC),
            kernel_lba: field::KERNEL_LBA.get(record).unwrap_or(0),
            video: VideoRequest {
                mode_type: get32(field::VIDEO_MODE_TYPE),
                width: get32(field::VIDEO_WIDTH),
                height: get32(field::VIDEO_HEIGHT),
                depth: get32(field::VIDEO_DEPTH),
            },
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
            let lba = extent.lba + in_extent / SECTOR_SIZE;
            let skip = (in_extent % SECTOR_SIZE) as u16;
            let sectors = (u64::from(skip) + len).div_ceil(SECTOR_SIZE) as u32;
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

/// The checksum every boot stage computes over the loaded bytes: for each run, each
/// little-endian dword of its bytes (the last one zero-padded) is added to A, and A to B,
/// modulo 2^32. Fed in pieces of any size ([`LoadChecksum::update`]), each run closed with
/// [`LoadChecksum::end_run`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadChecksum {
    a: u32,
    b: u32,
    /// Bytes of a dword not yet complete.
    pending: [u8; 4],
    pending_len: usize,
}

impl LoadChecksum {
    fn add(&mut self, dword: [u8; 4]) {
        self.a = self.a.wrapping_add(u32::from_le_bytes(dword));
        self.b = self.b.wrapping_add(self.a);
    }

    /// Adds the next bytes of the current run.
    pub fn update(&mut self, mut bytes: &[u8]) {
        if self.pending_len > 0 {
            let n = (4 - self.pending_len).min(bytes.len());
            self.pending[self.pending_len..self.pending_len + n].copy_from_slice(&bytes[..n]);
            self.pending_len += n;
            bytes = &bytes[n..];
            if self.pending_len < 4 {
                return;
            }
            self.add(self.pending);
            self.pending_len = 0;
        }
        let mut chunks = bytes.chunks_exact(4);
        for c in &mut chunks {
            self.add([c[0], c[1], c[2], c[3]]);
        }
        let rest = chunks.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len();
    }

    /// Ends the current run: a partial last dword is zero-padded, not carried into the next run.
    pub fn end_run(&mut self) {
        if self.pending_len > 0 {
            self.pending[self.pending_len..].fill(0);
            self.add(self.pending);
            self.pending_len = 0;
        }
    }

    /// The checksum (A, B) of the runs ended so far.
    pub fn value(&self) -> (u32, u32) {
        (self.a, self.b)
    }
}

/// The [`LoadChecksum`] of whole runs.
pub fn load_checksum<'a>(run_bytes: impl IntoIterator<Item = &'a [u8]>) -> (u32, u32) {
    let mut sum = LoadChecksum::default();
    for bytes in run_bytes {
        sum.update(bytes);
        sum.end_run();
    }
    sum.value()
}

/// For the boot stages' tests: checks that every `R_NAME equ ... 0xNN` line of a stage's source
/// (`file`, its text `source`) names the offset `field` gives that field. Each name in `field`'s
/// table is checked when the source defines it, and at least `required` of them must be.
#[cfg(test)]
pub(crate) fn check_source_offsets(source: &str, file: &str, required: &[&str]) {
    let named = [
        ("R_VERSION", field::VERSION.offset()),
        ("R_HEADER_LEN", field::HEADER_LEN.offset()),
        ("R_TOTAL_LEN", field::TOTAL_LEN.offset()),
        ("R_CRC", field::CRC.offset()),
        ("R_FLAGS", field::FLAGS.offset()),
        ("R_ENTRY", field::ENTRY.offset()),
        ("R_RUN_COUNT", field::RUN_COUNT.offset()),
        ("R_ZERO_COUNT", field::ZERO_COUNT.offset()),
        ("R_RUNS", field::RUNS.offset()),
        ("R_ZEROS", field::ZEROS.offset()),
        ("R_CMDLINE", field::CMDLINE.offset()),
        ("R_KERNEL_NAME", field::KERNEL_NAME.offset()),
        ("R_LOADER_NAME", field::LOADER_NAME.offset()),
        ("R_BOOT_PART", field::BOOT_PARTITION.offset()),
        ("R_SUM_A", field::SUM_A.offset()),
        ("R_SUM_B", field::SUM_B.offset()),
        ("R_KERNEL_SIZE", field::KERNEL_SIZE.offset()),
        ("R_STAGE2_CRC", field::STAGE2_CRC.offset()),
        ("R_KERNEL_LBA", field::KERNEL_LBA.offset()),
        ("R_VIDEO_TYPE", field::VIDEO_MODE_TYPE.offset()),
        ("R_VIDEO_WIDTH", field::VIDEO_WIDTH.offset()),
        ("R_VIDEO_HEIGHT", field::VIDEO_HEIGHT.offset()),
    ];
    for name in required {
        assert!(named.iter().any(|(n, _)| n == name), "{name} is not a record field");
    }
    for (name, offset) in named {
        let Some(line) = source.lines().find(|l| l.split_whitespace().next() == Some(name)) else {
            assert!(!required.contains(&name), "{name} is not defined in {file}");
            continue;
        };
        let hex = line.split(';').next().unwrap_or(line).rsplit("0x").next().unwrap();
        let defined = usize::from_str_radix(hex.trim(), 16).unwrap_or_else(|e| panic!("{file}: {line}: {e}"));
        assert_eq!(defined, offset, "{file}: {name}");
    }
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
            kernel_lba: 4100,
            video: VideoRequest::default(),
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
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        assert_eq!(u16_at(0x08), 2);
        assert_eq!(u16_at(0x0a), 96);
        assert_eq!(u32_at(0x0c) as usize, bytes.len());
        assert_eq!(u32_at(0x14), FLAG_QUIET);
        assert_eq!(u32_at(0x18), 0x100040);
        assert_eq!((u16_at(0x1c), u16_at(0x1e)), (1, 1));
        assert_eq!(u16_at(0x20), 96);
        assert_eq!(u16_at(0x22), 96 + 24);
        let run = 96;
        assert_eq!(u64_at(run), 4100);
        assert_eq!(u32_at(run + 8), 0x100000);
        assert_eq!(u16_at(run + 12), 0x20);
        assert_eq!(u32_at(run + 16), 0x13000);
        assert_eq!(u32_at(run + 20), 153);
        let cmdline = u16_at(0x24) as usize;
        assert_eq!(&bytes[cmdline..cmdline + 18], b"test_hello.virtio ");
        assert_eq!(bytes[0x2c], 1);
        assert_eq!(u32_at(0x38), 225_408);
        assert_eq!(u32_at(0x3c), 0xdeadbeef);
        assert_eq!(u64_at(0x40), 4100);
        assert!(bytes[0x48..0x60].iter().all(|&b| b == 0));
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
        b[8] = 3;
        assert_eq!(BootRecord::decode(&b), Err(RecordError::UnsupportedVersion(3)));
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
    fn plans_are_checked_in_stage_2_order() {
        let good = record();
        let check = |r: &BootRecord| r.check_plan(FLAG_QUIET);
        assert_eq!(check(&good), Ok(()));
        let mut r = good.clone();
        r.flags |= FLAG_VIDEO;
        assert_eq!(check(&r), Err(PlanError::Flags));
        assert_eq!(r.check_plan(KNOWN_FLAGS), Ok(()));
        let mut r = good.clone();
        r.runs[0].skip = 512;
        assert_eq!(check(&r), Err(PlanError::Run));
        let mut r = good.clone();
        r.runs[0].sectors += 1;
        assert_eq!(check(&r), Err(PlanError::Run));
        let mut r = good.clone();
        r.runs[0].lba = r.kernel_lba - 1;
        assert_eq!(check(&r), Err(PlanError::Run));
        let mut r = good.clone();
        r.runs[0].lba += 400; // past the kernel's 441 sectors
        assert_eq!(check(&r), Err(PlanError::Run));
        let mut r = good.clone();
        r.runs[0].dest = 0x10000;
        assert_eq!(check(&r), Err(PlanError::Range));
        let mut r = good.clone();
        r.zeros[0].dest = 0xffff_f000;
        assert_eq!(check(&r), Err(PlanError::Range));
        let mut r = good.clone();
        r.zeros[0].dest = 0x100100;
        assert_eq!(check(&r), Err(PlanError::Overlap));
        let mut r = good.clone();
        r.entry = 0;
        assert_eq!(check(&r), Err(PlanError::Entry));
        let mut r = good.clone();
        r.runs[0].len = u32::MAX;
        assert_eq!(check(&r), Err(PlanError::Run));
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
            header: Header { offset: 0, flags: 0, video: None },
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
        // Pieces of any size give the same sum as the whole run.
        let run: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        for piece in [1, 2, 3, 5, 7, 64, 999] {
            let mut sum = LoadChecksum::default();
            run.chunks(piece).for_each(|c| sum.update(c));
            sum.end_run();
            assert_eq!(sum.value(), load_checksum([&run[..]]), "{piece}");
        }
    }
}

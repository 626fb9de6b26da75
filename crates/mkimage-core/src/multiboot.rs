//! Multiboot 1 kernels: finding and validating the header, and turning the kernel into a
//! [`LoadPlan`]: which bytes of the file go to which physical addresses, what to zero, where to
//! jump. Pure functions over a byte slice; every malformed input is a [`KernelError`], never a
//! panic.
//!
//! With the a.out kludge (header flag bit 16) the header's addresses decide, even when the file
//! is also an ELF file, as GRUB and SYSLINUX do. Without it the file must be an ELF32 or ELF64
//! executable for x86, whose `PT_LOAD` segments load at their physical addresses (`p_paddr`),
//! and whose entry point is translated from virtual to physical through the segment containing
//! it (as GRUB does for higher-half kernels).

/// Multiboot 1 header magic.
pub const HEADER_MAGIC: u32 = 0x1BAD_B002;
/// The header must lie wholly within this many bytes from the start of the file.
pub const SEARCH_LIMIT: usize = 8192;
/// Header alignment.
pub const HEADER_ALIGN: usize = 4;
/// Flag bit 0: align modules on page boundaries. Honoured trivially: no modules are loaded.
pub const FLAG_PAGE_ALIGN: u32 = 1 << 0;
/// Flag bit 1: provide memory information. Honoured: mem_lower/mem_upper and the memory map.
pub const FLAG_MEMORY_INFO: u32 = 1 << 1;
/// Flag bit 2: provide video mode information. Not honoured (the loader sets no video mode).
pub const FLAG_VIDEO_MODE: u32 = 1 << 2;
/// Flag bit 16: the header carries load addresses (the "a.out kludge").
pub const FLAG_AOUT_KLUDGE: u32 = 1 << 16;
/// Required-flag bits (0-15) this loader honours.
pub const SUPPORTED_REQUIRED_FLAGS: u32 = FLAG_PAGE_ALIGN | FLAG_MEMORY_INFO;
/// Mask of the required-flag bits: a loader must refuse a kernel setting one it cannot honour.
pub const REQUIRED_FLAGS_MASK: u32 = 0xFFFF;
/// Bytes of the header up to and including the checksum.
pub const HEADER_BASE_LEN: usize = 12;
/// Bytes of the header with the a.out kludge address fields.
pub const HEADER_KLUDGE_LEN: usize = 32;
/// Lowest physical address a kernel may occupy: 1 MiB. Below it lie the BIOS, the loader and
/// the Multiboot information the loader builds.
pub const MIN_LOAD_ADDR: u64 = 0x10_0000;
/// One past the highest physical address a kernel may occupy: 4 GiB (protected mode without
/// paging addresses 32 bits).
pub const MAX_LOAD_END: u64 = 1 << 32;
/// Most loadable segments a kernel may have (bounded by the boot record's size).
pub const MAX_LOAD_SEGMENTS: usize = 32;
/// Most program headers examined; more is certainly not a kernel.
pub const MAX_PROGRAM_HEADERS: usize = 1024;

/// ELF identification: magic bytes.
const ELF_MAGIC: [u8; 4] = [0x7F, b'E', b'L', b'F'];
/// `e_ident[EI_CLASS]` of a 32-bit ELF file.
const ELFCLASS32: u8 = 1;
/// `e_ident[EI_CLASS]` of a 64-bit ELF file.
const ELFCLASS64: u8 = 2;
/// `e_ident[EI_DATA]` of a little-endian ELF file.
const ELFDATA2LSB: u8 = 1;
/// `e_type` of an executable.
const ET_EXEC: u16 = 2;
/// `e_machine` of i386.
const EM_386: u16 = 3;
/// `e_machine` of x86-64.
const EM_X86_64: u16 = 62;
/// `p_type` of a loadable segment.
const PT_LOAD: u32 = 1;
/// Size of an ELF32 file header.
const ELF32_EHDR_LEN: usize = 52;
/// Size of an ELF64 file header.
const ELF64_EHDR_LEN: usize = 64;
/// Size of an ELF32 program header.
const ELF32_PHDR_LEN: usize = 32;
/// Size of an ELF64 program header.
const ELF64_PHDR_LEN: usize = 56;

/// Why a file is not a kernel this loader can boot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// No Multiboot magic anywhere in the search area.
    #[error("no Multiboot header in the first 8192 bytes (is this a Multiboot kernel?)")]
    NoHeader,
    /// The magic appears, but not on a 4-byte boundary.
    #[error("the Multiboot header at offset {offset:#x} is not 4-byte aligned")]
    HeaderMisaligned {
        /// File offset of the magic.
        offset: usize,
    },
    /// The magic appears only beyond the search area.
    #[error("the Multiboot header at offset {offset:#x} is beyond the first 8192 bytes, where loaders look")]
    HeaderBeyondSearchArea {
        /// File offset of the magic.
        offset: usize,
    },
    /// The header does not fit in the file or the search area.
    #[error("the Multiboot header at offset {offset:#x} is cut off: it needs {needed} bytes")]
    HeaderTruncated {
        /// File offset of the magic.
        offset: usize,
        /// Bytes the header needs.
        needed: usize,
    },
    /// Magic, flags and checksum do not sum to zero.
    #[error("the Multiboot header at offset {offset:#x} has a bad checksum")]
    BadChecksum {
        /// File offset of the magic.
        offset: usize,
    },
    /// The header requires features (flag bits 0-15) this loader does not provide.
    #[error("the kernel requires Multiboot features this loader does not provide: {}", describe_flags(*.flags))]
    UnsupportedRequiredFlags {
        /// The unsupported required bits.
        flags: u32,
    },
    /// a.out kludge: the header lies before the start of the load range.
    #[error("a.out kludge: header_addr {header_addr:#x} is below load_addr {load_addr:#x}")]
    HeaderBeforeLoadAddr {
        /// header_addr.
        header_addr: u32,
        /// load_addr.
        load_addr: u32,
    },
    /// a.out kludge: the load range would start before the beginning of the file.
    #[error("a.out kludge: load_addr {load_addr:#x} would start {} bytes before the beginning of the file", .before)]
    LoadBeforeFileStart {
        /// load_addr.
        load_addr: u32,
        /// How far before.
        before: u64,
    },
    /// a.out kludge: load_end_addr is not after load_addr.
    #[error("a.out kludge: load_end_addr {load_end_addr:#x} is not after load_addr {load_addr:#x}")]
    LoadEndBeforeLoadAddr {
        /// load_addr.
        load_addr: u32,
        /// load_end_addr.
        load_end_addr: u32,
    },
    /// a.out kludge: the load range extends past the end of the file.
    #[error("a.out kludge: the load range needs file bytes up to offset {end:#x}, but the file has {file_len:#x}")]
    LoadPastEndOfFile {
        /// File offset where the range ends.
        end: u64,
        /// File length.
        file_len: u64,
    },
    /// a.out kludge: bss_end_addr lies before load_end_addr.
    #[error("a.out kludge: bss_end_addr {bss_end_addr:#x} is before the end of the loaded data {load_end:#x}")]
    BssEndBeforeLoadEnd {
        /// bss_end_addr.
        bss_end_addr: u32,
        /// End of the loaded data.
        load_end: u64,
    },
    /// Without the kludge, the file must be ELF.
    #[error("the Multiboot header has no load addresses (flag bit 16) and the file is not ELF")]
    NotElf,
    /// The ELF header is cut off.
    #[error("ELF header is truncated")]
    ElfTruncated,
    /// Neither ELF32 nor ELF64.
    #[error("ELF class {0} is neither 32-bit (1) nor 64-bit (2)")]
    ElfBadClass(u8),
    /// Big-endian or unknown data encoding.
    #[error("ELF data encoding {0} is not little-endian (1)")]
    ElfNotLittleEndian(u8),
    /// Not for x86.
    #[error("ELF machine {0} is neither i386 (3) nor x86-64 (62)")]
    ElfBadMachine(u16),
    /// Not an executable.
    #[error("ELF type {0} is not an executable (2)")]
    ElfNotExecutable(u16),
    /// Program header entries of an unexpected size.
    #[error("ELF program header entries are {found} bytes; {expected} expected")]
    ElfBadProgramHeaderSize {
        /// e_phentsize.
        found: u16,
        /// The size for the class.
        expected: usize,
    },
    /// Too many program headers.
    #[error("ELF file has {0} program headers; at most 1024 are accepted")]
    ElfTooManyProgramHeaders(usize),
    /// The program header table lies outside the file.
    #[error("ELF program headers (offset {offset:#x}, {count} entries) lie outside the file")]
    ElfProgramHeadersOutOfFile {
        /// e_phoff.
        offset: u64,
        /// e_phnum.
        count: usize,
    },
    /// A segment's file size exceeds its memory size.
    #[error("ELF segment {index}: p_filesz {filesz:#x} exceeds p_memsz {memsz:#x}")]
    SegmentFileSizeExceedsMemSize {
        /// Program header index.
        index: usize,
        /// p_filesz.
        filesz: u64,
        /// p_memsz.
        memsz: u64,
    },
    /// A segment's file bytes lie outside the file.
    #[error("ELF segment {index}: its bytes (offset {offset:#x}, {filesz:#x} bytes) lie outside the file")]
    SegmentOutOfFile {
        /// Program header index.
        index: usize,
        /// p_offset.
        offset: u64,
        /// p_filesz.
        filesz: u64,
    },
    /// No loadable segment.
    #[error("ELF file has no loadable segment")]
    NoLoadableSegment,
    /// Too many loadable segments.
    #[error("the kernel has {count} loadable segments; at most {max} are supported")]
    TooManySegments {
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A load range starts below 1 MiB.
    #[error("the kernel would load at {addr:#x}, below 1 MiB, where the BIOS and the loader live")]
    LoadBelowOneMib {
        /// Start of the range.
        addr: u64,
    },
    /// A load range ends above 4 GiB.
    #[error("the kernel's range {start:#x}-{end:#x} extends beyond 4 GiB")]
    LoadAboveFourGib {
        /// Start of the range.
        start: u64,
        /// End of the range (exclusive).
        end: u64,
    },
    /// Two load ranges overlap.
    #[error("load ranges {a_start:#x}-{a_end:#x} and {b_start:#x}-{b_end:#x} overlap")]
    SegmentsOverlap {
        /// First range start.
        a_start: u64,
        /// First range end.
        a_end: u64,
        /// Second range start.
        b_start: u64,
        /// Second range end.
        b_end: u64,
    },
    /// The entry point is not inside the loaded bytes.
    #[error("the entry point {entry:#x} is not inside the kernel's loaded bytes")]
    EntryOutsideImage {
        /// The entry point (as given).
        entry: u64,
    },
}

fn describe_flags(flags: u32) -> String {
    let mut parts = Vec::new();
    if flags & FLAG_VIDEO_MODE != 0 {
        parts.push("video mode information (bit 2)".to_owned());
    }
    let unknown = flags & !FLAG_VIDEO_MODE;
    if unknown != 0 {
        parts.push(format!("undefined required flags {unknown:#06x}"));
    }
    parts.join(", ")
}

/// How the kernel's load addresses were determined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFormat {
    /// From the Multiboot header's address fields.
    AoutKludge,
    /// From ELF32 program headers.
    Elf32,
    /// From ELF64 program headers.
    Elf64,
}

impl std::fmt::Display for KernelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KernelFormat::AoutKludge => "Multiboot a.out kludge",
            KernelFormat::Elf32 => "ELF32",
            KernelFormat::Elf64 => "ELF64",
        })
    }
}

/// A range of the file loaded at a physical address, followed by zeroed memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Offset of the first byte in the file.
    pub file_offset: u64,
    /// Bytes copied from the file.
    pub file_size: u64,
    /// Physical address of the first byte.
    pub addr: u64,
    /// Bytes the segment occupies in memory (`file_size` plus zeroed bytes).
    pub mem_size: u64,
}

impl Segment {
    /// One past the last byte in memory.
    pub const fn end(&self) -> u64 {
        self.addr + self.mem_size
    }
}

/// The Multiboot header as found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// File offset of the magic.
    pub offset: usize,
    /// The flags field.
    pub flags: u32,
}

/// Where a kernel's bytes go and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// The Multiboot header.
    pub header: Header,
    /// How the addresses were determined.
    pub format: KernelFormat,
    /// Loaded ranges, sorted by address, non-overlapping, all within [1 MiB, 4 GiB).
    pub segments: Vec<Segment>,
    /// Physical entry point.
    pub entry: u32,
}

impl LoadPlan {
    /// Plans how to load `kernel`.
    pub fn new(kernel: &[u8]) -> Result<LoadPlan, KernelError> {
        let header = find_header(kernel)?;
        let unsupported = header.flags & REQUIRED_FLAGS_MASK & !SUPPORTED_REQUIRED_FLAGS;
        if unsupported != 0 {
            return Err(KernelError::UnsupportedRequiredFlags { flags: unsupported });
        }
        let (format, mut segments, entry) = if header.flags & FLAG_AOUT_KLUDGE != 0 {
            let (segment, entry) = plan_kludge(kernel, header)?;
            (KernelFormat::AoutKludge, vec![segment], entry)
        } else {
            plan_elf(kernel)?
        };
        segments.sort_by_key(|s| s.addr);
        for s in &segments {
            if s.addr < MIN_LOAD_ADDR {
                return Err(KernelError::LoadBelowOneMib { addr: s.addr });
            }
            if s.end() > MAX_LOAD_END {
                return Err(KernelError::LoadAboveFourGib { start: s.addr, end: s.end() });
            }
        }
        for pair in segments.windows(2) {
            if pair[0].end() > pair[1].addr {
                return Err(KernelError::SegmentsOverlap {
                    a_start: pair[0].addr,
                    a_end: pair[0].end(),
                    b_start: pair[1].addr,
                    b_end: pair[1].end(),
                });
            }
        }
        if segments.len() > MAX_LOAD_SEGMENTS {
            return Err(KernelError::TooManySegments { count: segments.len(), max: MAX_LOAD_SEGMENTS });
        }
        let in_loaded_bytes = |s: &Segment| entry >= s.addr && entry < s.addr + s.file_size;
        if !segments.iter().any(in_loaded_bytes) {
            return Err(KernelError::EntryOutsideImage { entry });
        }
        // Every address is now below 4 GiB.
        Ok(LoadPlan { header, format, segments, entry: entry as u32 })
    }

    /// Total bytes the kernel occupies in memory.
    pub fn memory_size(&self) -> u64 {
        self.segments.iter().map(|s| s.mem_size).sum()
    }
}

fn read_u16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(data.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn read_u64(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// Finds the first valid Multiboot header: magic at a 4-byte-aligned offset, the header wholly
/// within the file and the first 8192 bytes, and a correct checksum. When there is none, the
/// error describes the most telling near miss.
pub fn find_header(kernel: &[u8]) -> Result<Header, KernelError> {
    let magic = HEADER_MAGIC.to_le_bytes();
    let mut near_miss = None;
    let area = &kernel[..kernel.len().min(SEARCH_LIMIT)];
    for offset in (0..area.len().saturating_sub(3)).step_by(HEADER_ALIGN) {
        if area[offset..offset + 4] != magic {
            continue;
        }
        let (Some(flags), Some(checksum)) = (read_u32(area, offset + 4), read_u32(area, offset + 8)) else {
            near_miss.get_or_insert(KernelError::HeaderTruncated { offset, needed: HEADER_BASE_LEN });
            continue;
        };
        if HEADER_MAGIC.wrapping_add(flags).wrapping_add(checksum) != 0 {
            near_miss.get_or_insert(KernelError::BadChecksum { offset });
            continue;
        }
        let needed = if flags & FLAG_AOUT_KLUDGE != 0 { HEADER_KLUDGE_LEN } else { HEADER_BASE_LEN };
        if offset + needed > area.len() {
            return Err(KernelError::HeaderTruncated { offset, needed });
        }
        return Ok(Header { offset, flags });
    }
    if let Some(err) = near_miss {
        return Err(err);
    }
    // A magic straddling the end of the search area still tells what went wrong.
    if let Some(offset) = find_bytes(&kernel[..kernel.len().min(SEARCH_LIMIT + 3)], &magic)
        && offset % HEADER_ALIGN != 0
    {
        return Err(KernelError::HeaderMisaligned { offset });
    }
    if let Some(offset) = find_bytes(&kernel[SEARCH_LIMIT.min(kernel.len())..], &magic) {
        return Err(KernelError::HeaderBeyondSearchArea { offset: offset + SEARCH_LIMIT });
    }
    Err(KernelError::NoHeader)
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn plan_kludge(kernel: &[u8], header: Header) -> Result<(Segment, u64), KernelError> {
    let field = |i: usize| read_u32(kernel, header.offset + HEADER_BASE_LEN + 4 * i).unwrap_or(0);
    let (header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr) =
        (field(0), field(1), field(2), field(3), field(4));
    if header_addr < load_addr {
        return Err(KernelError::HeaderBeforeLoadAddr { header_addr, load_addr });
    }
    let back = u64::from(header_addr - load_addr);
    let file_offset = (header.offset as u64)
        .checked_sub(back)
        .ok_or_else(|| KernelError::LoadBeforeFileStart { load_addr, before: back - header.offset as u64 })?;
    let file_len = kernel.len() as u64;
    let file_size = if load_end_addr == 0 {
        file_len - file_offset
    } else {
        if load_end_addr <= load_addr {
            return Err(KernelError::LoadEndBeforeLoadAddr { load_addr, load_end_addr });
        }
        let size = u64::from(load_end_addr - load_addr);
        if file_offset + size > file_len {
            return Err(KernelError::LoadPastEndOfFile { end: file_offset + size, file_len });
        }
        size
    };
    let load_end = u64::from(load_addr) + file_size;
    let mem_size = if bss_end_addr == 0 {
        file_size
    } else {
        if u64::from(bss_end_addr) < load_end {
            return Err(KernelError::BssEndBeforeLoadEnd { bss_end_addr, load_end });
        }
        u64::from(bss_end_addr) - u64::from(load_addr)
    };
    let segment = Segment { file_offset, file_size, addr: u64::from(load_addr), mem_size };
    Ok((segment, u64::from(entry_addr)))
}

/// One ELF program header, widened to 64 bits.
struct ProgramHeader {
    kind: u32,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

fn plan_elf(kernel: &[u8]) -> Result<(KernelFormat, Vec<Segment>, u64), KernelError> {
    if kernel.len() < 16 || kernel[..4] != ELF_MAGIC {
        return Err(KernelError::NotElf);
    }
    let class = kernel[4];
    let (format, ehdr_len, phdr_len) = match class {
        ELFCLASS32 => (KernelFormat::Elf32, ELF32_EHDR_LEN, ELF32_PHDR_LEN),
        ELFCLASS64 => (KernelFormat::Elf64, ELF64_EHDR_LEN, ELF64_PHDR_LEN),
        other => return Err(KernelError::ElfBadClass(other)),
    };
    if kernel[5] != ELFDATA2LSB {
        return Err(KernelError::ElfNotLittleEndian(kernel[5]));
    }
    if kernel.len() < ehdr_len {
        return Err(KernelError::ElfTruncated);
    }
    let e_type = read_u16(kernel, 16).ok_or(KernelError::ElfTruncated)?;
    let machine = read_u16(kernel, 18).ok_or(KernelError::ElfTruncated)?;
    let expected_machine = if format == KernelFormat::Elf32 { EM_386 } else { EM_X86_64 };
    if machine != expected_machine && machine != EM_386 {
        return Err(KernelError::ElfBadMachine(machine));
    }
    if e_type != ET_EXEC {
        return Err(KernelError::ElfNotExecutable(e_type));
    }
    let (entry, phoff, phentsize, phnum) = if format == KernelFormat::Elf32 {
        (
            u64::from(read_u32(kernel, 24).ok_or(KernelError::ElfTruncated)?),
            u64::from(read_u32(kernel, 28).ok_or(KernelError::ElfTruncated)?),
            read_u16(kernel, 42).ok_or(KernelError::ElfTruncated)?,
            read_u16(kernel, 44).ok_or(KernelError::ElfTruncated)?,
        )
    } else {
        (
            read_u64(kernel, 24).ok_or(KernelError::ElfTruncated)?,
            read_u64(kernel, 32).ok_or(KernelError::ElfTruncated)?,
            read_u16(kernel, 54).ok_or(KernelError::ElfTruncated)?,
            read_u16(kernel, 56).ok_or(KernelError::ElfTruncated)?,
        )
    };
    let count = usize::from(phnum);
    if count > MAX_PROGRAM_HEADERS {
        return Err(KernelError::ElfTooManyProgramHeaders(count));
    }
    if count > 0 && usize::from(phentsize) != phdr_len {
        return Err(KernelError::ElfBadProgramHeaderSize { found: phentsize, expected: phdr_len });
    }
    let table_end = phoff.checked_add((count * phdr_len) as u64);
    if table_end.is_none_or(|end| end > kernel.len() as u64) {
        return Err(KernelError::ElfProgramHeadersOutOfFile { offset: phoff, count });
    }
    let mut headers = Vec::with_capacity(count);
    for i in 0..count {
        let at = phoff as usize + i * phdr_len;
        let ph = if format == KernelFormat::Elf32 {
            let f = |o: usize| u64::from(read_u32(kernel, at + o).unwrap_or(0));
            ProgramHeader { kind: f(0) as u32, offset: f(4), vaddr: f(8), paddr: f(12), filesz: f(16), memsz: f(20) }
        } else {
            let f = |o: usize| read_u64(kernel, at + o).unwrap_or(0);
            ProgramHeader {
                kind: read_u32(kernel, at).unwrap_or(0),
                offset: f(8),
                vaddr: f(16),
                paddr: f(24),
                filesz: f(32),
                memsz: f(40),
            }
        };
        headers.push(ph);
    }
    let mut segments = Vec::new();
    let mut entry_phys = None;
    for (index, ph) in headers.iter().enumerate() {
        if ph.kind != PT_LOAD || ph.memsz == 0 {
            continue;
        }
        if ph.filesz > ph.memsz {
            return Err(KernelError::SegmentFileSizeExceedsMemSize { index, filesz: ph.filesz, memsz: ph.memsz });
        }
        if ph.offset.checked_add(ph.filesz).is_none_or(|end| end > kernel.len() as u64) {
            return Err(KernelError::SegmentOutOfFile { index, offset: ph.offset, filesz: ph.filesz });
        }
        let Some(end) = ph.paddr.checked_add(ph.memsz) else {
            return Err(KernelError::LoadAboveFourGib { start: ph.paddr, end: u64::MAX });
        };
        if end > MAX_LOAD_END {
            return Err(KernelError::LoadAboveFourGib { start: ph.paddr, end });
        }
        // The entry point is virtual; translate it through the segment that contains it.
        if entry_phys.is_none() && entry >= ph.vaddr && entry - ph.vaddr < ph.filesz {
            entry_phys = Some(ph.paddr + (entry - ph.vaddr));
        }
        segments.push(Segment { file_offset: ph.offset, file_size: ph.filesz, addr: ph.paddr, mem_size: ph.memsz });
    }
    if segments.is_empty() {
        return Err(KernelError::NoLoadableSegment);
    }
    let entry = entry_phys.ok_or(KernelError::EntryOutsideImage { entry })?;
    Ok((format, segments, entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kludge header at `offset` in a zero-filled file of `len` bytes.
    fn kludge_file(len: usize, offset: usize, fields: [u32; 5]) -> Vec<u8> {
        let mut f = vec![0u8; len];
        let flags = FLAG_PAGE_ALIGN | FLAG_MEMORY_INFO | FLAG_AOUT_KLUDGE;
        put_header(&mut f, offset, flags);
        for (i, v) in fields.iter().enumerate() {
            f[offset + 12 + 4 * i..offset + 16 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        f
    }

    fn put_header(f: &mut [u8], offset: usize, flags: u32) {
        f[offset..offset + 4].copy_from_slice(&HEADER_MAGIC.to_le_bytes());
        f[offset + 4..offset + 8].copy_from_slice(&flags.to_le_bytes());
        let sum = 0u32.wrapping_sub(HEADER_MAGIC).wrapping_sub(flags);
        f[offset + 8..offset + 12].copy_from_slice(&sum.to_le_bytes());
    }

    /// The Solo5 `test_hello` layout from the brief: header at 0x1020, loads 0x100000..0x113000,
    /// bss to 0x11e000, entry 0x100040.
    #[test]
    fn solo5_style_kludge() {
        let f = kludge_file(0x14000, 0x1020, [0x100020, 0x100000, 0x113000, 0x11e000, 0x100040]);
        let plan = LoadPlan::new(&f).unwrap();
        assert_eq!(plan.format, KernelFormat::AoutKludge);
        assert_eq!(plan.header.offset, 0x1020);
        assert_eq!(
            plan.segments,
            vec![Segment { file_offset: 0x1000, file_size: 0x13000, addr: 0x100000, mem_size: 0x1e000 }]
        );
        assert_eq!(plan.entry, 0x100040);
    }

    #[test]
    fn kludge_load_end_zero_means_end_of_file() {
        let f = kludge_file(0x3000, 0, [0x200000, 0x200000, 0, 0, 0x200020]);
        let plan = LoadPlan::new(&f).unwrap();
        assert_eq!(plan.segments[0].file_size, 0x3000);
        assert_eq!(plan.segments[0].mem_size, 0x3000);
    }

    #[test]
    fn kludge_errors() {
        let e = |fields, len| LoadPlan::new(&kludge_file(len, 0x100, fields)).unwrap_err();
        assert!(matches!(e([0x100000, 0x100100, 0, 0, 0x100100], 0x1000), KernelError::HeaderBeforeLoadAddr { .. }));
        assert!(matches!(e([0x100200, 0x100000, 0, 0, 0x100200], 0x1000), KernelError::LoadBeforeFileStart { .. }));
        assert!(matches!(
            e([0x100100, 0x100000, 0x100000, 0, 0x100100], 0x1000),
            KernelError::LoadEndBeforeLoadAddr { .. }
        ));
        assert!(matches!(
            e([0x100100, 0x100000, 0x200000, 0, 0x100100], 0x1000),
            KernelError::LoadPastEndOfFile { .. }
        ));
        assert!(matches!(
            e([0x100100, 0x100000, 0x100800, 0x100400, 0x100100], 0x1000),
            KernelError::BssEndBeforeLoadEnd { .. }
        ));
        assert!(matches!(e([0x100100, 0x100000, 0, 0, 0x200000], 0x1000), KernelError::EntryOutsideImage { .. }));
        assert!(matches!(e([0x10100, 0x10000, 0, 0, 0x10100], 0x1000), KernelError::LoadBelowOneMib { .. }));
        assert!(matches!(
            e([0xffff_ff00, 0xffff_fe00, 0, 0x0000_0000, 0xffff_ff00], 0x1000),
            KernelError::LoadAboveFourGib { .. }
        ));
    }

    #[test]
    fn header_search() {
        let mut f = vec![0u8; 16384];
        assert_eq!(find_header(&f), Err(KernelError::NoHeader));
        put_header(&mut f, 8190, FLAG_MEMORY_INFO);
        assert_eq!(find_header(&f), Err(KernelError::HeaderMisaligned { offset: 8190 }));
        let mut f = vec![0u8; 16384];
        put_header(&mut f, 9000, FLAG_MEMORY_INFO);
        assert_eq!(find_header(&f), Err(KernelError::HeaderBeyondSearchArea { offset: 9000 }));
        let mut f = vec![0u8; 16384];
        put_header(&mut f, 8180, FLAG_AOUT_KLUDGE);
        assert_eq!(find_header(&f), Err(KernelError::HeaderTruncated { offset: 8180, needed: 32 }));
        let mut f = vec![0u8; 64];
        put_header(&mut f, 8, FLAG_MEMORY_INFO);
        f[16] ^= 1;
        assert_eq!(find_header(&f), Err(KernelError::BadChecksum { offset: 8 }));
        // A later valid header wins over an earlier broken one.
        put_header(&mut f, 32, FLAG_MEMORY_INFO);
        assert_eq!(find_header(&f), Ok(Header { offset: 32, flags: FLAG_MEMORY_INFO }));
        assert_eq!(find_header(&[]), Err(KernelError::NoHeader));
        assert_eq!(
            find_header(&HEADER_MAGIC.to_le_bytes()),
            Err(KernelError::HeaderTruncated { offset: 0, needed: 12 })
        );
    }

    #[test]
    fn required_flags_are_checked() {
        let mut f = vec![0u8; 64];
        put_header(&mut f, 0, FLAG_VIDEO_MODE | FLAG_AOUT_KLUDGE);
        let err = LoadPlan::new(&f).unwrap_err();
        assert_eq!(err, KernelError::UnsupportedRequiredFlags { flags: FLAG_VIDEO_MODE });
        assert!(err.to_string().contains("video mode"));
        put_header(&mut f, 0, 1 << 7);
        assert!(LoadPlan::new(&f).unwrap_err().to_string().contains("0x0080"));
    }

    /// An ELF file built field by field.
    struct Elf {
        class64: bool,
        entry: u64,
        segments: Vec<(u32, u64, u64, u64, u64, u64)>, // type, offset, vaddr, paddr, filesz, memsz
        len: usize,
        header_flags: u32,
    }

    impl Elf {
        fn bytes(&self) -> Vec<u8> {
            let mut f = vec![0u8; self.len];
            f[..4].copy_from_slice(&ELF_MAGIC);
            f[4] = if self.class64 { 2 } else { 1 };
            f[5] = 1;
            f[6] = 1;
            f[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
            let machine = if self.class64 { EM_X86_64 } else { EM_386 };
            f[18..20].copy_from_slice(&machine.to_le_bytes());
            let (phoff, phlen) = if self.class64 { (64usize, 56usize) } else { (52, 32) };
            if self.class64 {
                f[24..32].copy_from_slice(&self.entry.to_le_bytes());
                f[32..40].copy_from_slice(&(phoff as u64).to_le_bytes());
                f[54..56].copy_from_slice(&(phlen as u16).to_le_bytes());
                f[56..58].copy_from_slice(&(self.segments.len() as u16).to_le_bytes());
            } else {
                f[24..28].copy_from_slice(&(self.entry as u32).to_le_bytes());
                f[28..32].copy_from_slice(&(phoff as u32).to_le_bytes());
                f[42..44].copy_from_slice(&(phlen as u16).to_le_bytes());
                f[44..46].copy_from_slice(&(self.segments.len() as u16).to_le_bytes());
            }
            for (i, &(kind, off, vaddr, paddr, filesz, memsz)) in self.segments.iter().enumerate() {
                let at = phoff + i * phlen;
                f[at..at + 4].copy_from_slice(&kind.to_le_bytes());
                if self.class64 {
                    for (o, v) in [(8, off), (16, vaddr), (24, paddr), (32, filesz), (40, memsz)] {
                        f[at + o..at + o + 8].copy_from_slice(&v.to_le_bytes());
                    }
                } else {
                    for (o, v) in [(4, off), (8, vaddr), (12, paddr), (16, filesz), (20, memsz)] {
                        f[at + o..at + o + 4].copy_from_slice(&(v as u32).to_le_bytes());
                    }
                }
            }
            put_header(&mut f, 0x400, self.header_flags);
            f
        }
    }

    fn elf32() -> Elf {
        Elf {
            class64: false,
            entry: 0x100010,
            segments: vec![
                (PT_LOAD, 0x1000, 0x100000, 0x100000, 0x800, 0x800),
                (6, 0, 0, 0, 0, 0), // PT_PHDR: ignored
                (PT_LOAD, 0x2000, 0x1000000, 0x1000000, 0x100, 0x4000),
            ],
            len: 0x3000,
            header_flags: FLAG_MEMORY_INFO,
        }
    }

    #[test]
    fn elf32_segments_load_at_physical_addresses() {
        let plan = LoadPlan::new(&elf32().bytes()).unwrap();
        assert_eq!(plan.format, KernelFormat::Elf32);
        assert_eq!(plan.segments.len(), 2);
        assert_eq!(
            plan.segments[1],
            Segment { file_offset: 0x2000, file_size: 0x100, addr: 0x1000000, mem_size: 0x4000 }
        );
        assert_eq!(plan.entry, 0x100010);
    }

    #[test]
    fn elf64_higher_half_entry_is_translated() {
        let high = 0xffff_ffff_8000_0000u64;
        let elf = Elf {
            class64: true,
            entry: high + 0x100020,
            segments: vec![(PT_LOAD, 0x1000, high + 0x100000, 0x100000, 0x1000, 0x2000)],
            len: 0x2000,
            header_flags: FLAG_MEMORY_INFO,
        };
        let plan = LoadPlan::new(&elf.bytes()).unwrap();
        assert_eq!(plan.format, KernelFormat::Elf64);
        assert_eq!(plan.entry, 0x100020);
        assert_eq!(plan.segments[0].addr, 0x100000);
    }

    #[test]
    fn kludge_wins_over_elf() {
        let mut elf = elf32();
        elf.header_flags = FLAG_MEMORY_INFO | FLAG_AOUT_KLUDGE;
        let mut f = elf.bytes();
        for (i, v) in [0x300400u32, 0x300000, 0x301000, 0x302000, 0x300800].iter().enumerate() {
            f[0x40c + 4 * i..0x410 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        let plan = LoadPlan::new(&f).unwrap();
        assert_eq!(plan.format, KernelFormat::AoutKludge);
        assert_eq!(plan.entry, 0x300800);
    }

    #[test]
    fn elf_errors() {
        let err = |elf: &Elf| LoadPlan::new(&elf.bytes()).unwrap_err();
        let mut e = elf32();
        e.segments[2].4 = 0x5000;
        assert!(matches!(err(&e), KernelError::SegmentFileSizeExceedsMemSize { index: 2, .. }));
        let mut e = elf32();
        e.segments[2].1 = 0x2f01;
        assert!(matches!(err(&e), KernelError::SegmentOutOfFile { index: 2, .. }));
        let mut e = elf32();
        e.segments[2].3 = 0x100400;
        assert!(matches!(err(&e), KernelError::SegmentsOverlap { .. }));
        let mut e = elf32();
        e.segments[0].0 = 6;
        e.segments[2].0 = 6;
        assert_eq!(err(&e), KernelError::NoLoadableSegment);
        let mut e = elf32();
        e.entry = 0x1000200; // in the second segment's zeroed part, not its loaded bytes
        assert!(matches!(err(&e), KernelError::EntryOutsideImage { .. }));
        let mut e = elf32();
        e.segments[0].3 = 0x1000;
        e.segments[0].2 = 0x1000;
        e.entry = 0x1010;
        assert!(matches!(err(&e), KernelError::LoadBelowOneMib { .. }));
        let mut e = elf32();
        e.segments[2].3 = 0xffff_f000;
        assert!(matches!(err(&e), KernelError::LoadAboveFourGib { .. }));
        let mut f = elf32().bytes();
        f[5] = 2;
        assert_eq!(LoadPlan::new(&f).unwrap_err(), KernelError::ElfNotLittleEndian(2));
        let mut f = elf32().bytes();
        f[4] = 3;
        assert_eq!(LoadPlan::new(&f).unwrap_err(), KernelError::ElfBadClass(3));
        let mut f = elf32().bytes();
        f[18] = 40;
        assert_eq!(LoadPlan::new(&f).unwrap_err(), KernelError::ElfBadMachine(40));
        let mut f = elf32().bytes();
        f[16] = 3;
        assert_eq!(LoadPlan::new(&f).unwrap_err(), KernelError::ElfNotExecutable(3));
        let mut f = elf32().bytes();
        f[42] = 40;
        assert!(matches!(LoadPlan::new(&f).unwrap_err(), KernelError::ElfBadProgramHeaderSize { .. }));
        let mut f = elf32().bytes();
        f[28..32].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(matches!(LoadPlan::new(&f).unwrap_err(), KernelError::ElfProgramHeadersOutOfFile { .. }));
        let mut f = elf32().bytes();
        f[44..46].copy_from_slice(&2000u16.to_le_bytes());
        assert_eq!(LoadPlan::new(&f).unwrap_err(), KernelError::ElfTooManyProgramHeaders(2000));
        let mut f = vec![0u8; 0x1000];
        put_header(&mut f, 0, FLAG_MEMORY_INFO);
        assert_eq!(LoadPlan::new(&f).unwrap_err(), KernelError::NotElf);
        let mut f = elf32().bytes();
        f.truncate(40);
        put_header(&mut f, 20, FLAG_MEMORY_INFO);
        assert_eq!(LoadPlan::new(&f).unwrap_err(), KernelError::ElfTruncated);
    }

    #[test]
    fn too_many_segments() {
        let mut e = elf32();
        e.len = 0x40000;
        e.segments =
            (0..40u64).map(|i| (PT_LOAD, 0x1000, 0x100000 + i * 0x1000, 0x100000 + i * 0x1000, 0x10, 0x10)).collect();
        e.entry = 0x100000;
        assert!(matches!(LoadPlan::new(&e.bytes()).unwrap_err(), KernelError::TooManySegments { count: 40, max: 32 }));
    }
}

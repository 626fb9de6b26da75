//! Multiboot 1 kernels: finding and validating the header, and turning the kernel into a
//! [`LoadPlan`]: which bytes of the file go to which physical addresses, what to zero, where to
//! jump. Pure functions over a byte slice; every malformed input is a [`KernelError`], never a
//! panic.
//!
//! With the a.out kludge (header flag bit 16) the header's addresses decide, even when the file
//! is also an ELF file, as GRUB and SYSLINUX do. Without it the file must be an ELF32 or ELF64
//! executable for x86, whose `PT_LOAD` segments load at their physical addresses (`p_paddr`),
//! and whose entry point is translated from virtual to physical through the segment containing
//! it (as GRUB does for higher-half kernels); that part lives in [`elf`].

pub mod elf;

use crate::bytes::Le;

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
/// Flag bit 2: the kernel requires a video mode ([`VideoMode`]). Parsed here; only the UEFI
/// loader can honour it (with a graphics mode), which the planner decides.
pub const FLAG_VIDEO_MODE: u32 = 1 << 2;
/// Flag bit 16: the header carries load addresses (the "a.out kludge").
pub const FLAG_AOUT_KLUDGE: u32 = 1 << 16;
/// Required-flag bits (0-15) this parser understands (whether the video mode can be set depends
/// on the firmware the image is built for).
pub const SUPPORTED_REQUIRED_FLAGS: u32 = FLAG_PAGE_ALIGN | FLAG_MEMORY_INFO | FLAG_VIDEO_MODE;
/// Mask of the required-flag bits: a loader must refuse a kernel setting one it cannot honour.
pub const REQUIRED_FLAGS_MASK: u32 = 0xFFFF;
/// Bytes of the header up to and including the checksum.
pub const HEADER_BASE_LEN: usize = 12;
/// Bytes of the header with the a.out kludge address fields.
pub const HEADER_KLUDGE_LEN: usize = 32;
/// Bytes of the header with the video mode fields (which follow the address fields, present
/// or not).
pub const HEADER_VIDEO_LEN: usize = 48;
/// Video mode type: linear graphics.
pub const VIDEO_MODE_GRAPHICS: u32 = 0;
/// Video mode type: EGA text.
pub const VIDEO_MODE_TEXT: u32 = 1;
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

/// Fields of the Multiboot 1 header, from its start.
pub mod header {
    use crate::bytes::Le;
    /// [`super::HEADER_MAGIC`].
    pub const MAGIC: Le<u32> = Le::at(0);
    /// Flags: bits 0-15 required features, 16-31 optional.
    pub const FLAGS: Le<u32> = Le::at(4);
    /// Magic + flags + checksum = 0 (mod 2^32).
    pub const CHECKSUM: Le<u32> = Le::at(8);
    /// a.out kludge: physical address of the header itself.
    pub const HEADER_ADDR: Le<u32> = Le::at(12);
    /// a.out kludge: where the loaded part of the file starts.
    pub const LOAD_ADDR: Le<u32> = Le::at(16);
    /// a.out kludge: where it ends (0: at the end of the file).
    pub const LOAD_END_ADDR: Le<u32> = Le::at(20);
    /// a.out kludge: end of bss (0: no bss).
    pub const BSS_END_ADDR: Le<u32> = Le::at(24);
    /// a.out kludge: entry point.
    pub const ENTRY_ADDR: Le<u32> = Le::at(28);
    /// Video: mode type ([`super::VIDEO_MODE_GRAPHICS`] or [`super::VIDEO_MODE_TEXT`]).
    pub const MODE_TYPE: Le<u32> = Le::at(32);
    /// Video: width in pixels or columns (0: no preference).
    pub const WIDTH: Le<u32> = Le::at(36);
    /// Video: height in pixels or rows (0: no preference).
    pub const HEIGHT: Le<u32> = Le::at(40);
    /// Video: bits per pixel (0: no preference; 0 in text mode).
    pub const DEPTH: Le<u32> = Le::at(44);
}

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
    format!("undefined required flags {flags:#06x}")
}

/// How the kernel's load addresses were determined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
pub struct Header {
    /// File offset of the magic.
    pub offset: usize,
    /// The flags field.
    pub flags: u32,
    /// The video mode the kernel requires (flag bit 2), if it requires one.
    pub video: Option<VideoMode>,
}

/// The video mode a kernel's header requires (flag bit 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VideoMode {
    /// [`VIDEO_MODE_GRAPHICS`] or [`VIDEO_MODE_TEXT`] (other values are undefined).
    pub mode_type: u32,
    /// Width in pixels (graphics) or columns (text); 0 means no preference.
    pub width: u32,
    /// Height in pixels or rows; 0 means no preference.
    pub height: u32,
    /// Bits per pixel; 0 means no preference.
    pub depth: u32,
}

/// Where a kernel's bytes go and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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

/// Random access to a kernel file's bytes, so that a kernel can be planned without holding it
/// in memory (the inspector reads it from a filesystem). Planning reads at most the first
/// 8 KiB, the ELF program header table (at most 56 KiB) and, when no header is found, scans
/// the rest in bounded chunks.
pub trait KernelBytes {
    /// The file's length in bytes.
    fn len(&self) -> u64;
    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fills `buf` with the bytes at `offset`; `None` when they lie outside the file or cannot
    /// be read.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Option<()>;
}

impl KernelBytes for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Option<()> {
        let start = usize::try_from(offset).ok()?;
        buf.copy_from_slice(self.get(start..start.checked_add(buf.len())?)?);
        Some(())
    }
}

/// Reads `len` bytes at `offset` (callers bound `len`).
fn read_vec(kernel: &mut dyn KernelBytes, offset: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    kernel.read_at(offset, &mut buf)?;
    Some(buf)
}

/// Bytes scanned per step when looking for a misplaced header beyond the search area.
const SCAN_CHUNK: usize = 1 << 20;

impl LoadPlan {
    /// Plans how to load `kernel`.
    ///
    /// # Errors
    /// A [`KernelError`] saying why the kernel cannot be loaded.
    pub fn new(kernel: &[u8]) -> Result<LoadPlan, KernelError> {
        Self::from_source(&mut &*kernel)
    }

    /// Plans how to load the kernel `source` gives access to, reading only what planning needs.
    ///
    /// # Errors
    /// A [`KernelError`] saying why the kernel cannot be loaded (also when `source` cannot read a
    /// part planning needs).
    pub fn from_source(source: &mut dyn KernelBytes) -> Result<LoadPlan, KernelError> {
        let (prefix, header) = locate_header(source)?;
        let unsupported = header.flags & REQUIRED_FLAGS_MASK & !SUPPORTED_REQUIRED_FLAGS;
        if unsupported != 0 {
            return Err(KernelError::UnsupportedRequiredFlags { flags: unsupported });
        }
        let (format, mut segments, entry) = if header.flags & FLAG_AOUT_KLUDGE != 0 {
            let (segment, entry) = plan_kludge(&prefix, source.len(), header)?;
            (KernelFormat::AoutKludge, vec![segment], entry)
        } else {
            elf::plan_elf(source)?
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

/// Finds the first valid Multiboot header: magic at a 4-byte-aligned offset, the header wholly
/// within the file and the first 8192 bytes, and a correct checksum. When there is none, the
/// error describes the most telling near miss.
///
/// # Errors
/// A [`KernelError`] describing the most telling near miss, or [`KernelError::NoHeader`].
pub fn find_header(kernel: &[u8]) -> Result<Header, KernelError> {
    locate_header(&mut &*kernel).map(|(_, header)| header)
}

/// [`find_header`] on any kernel source. Returns the search area read (which holds the whole
/// header) with the header.
fn locate_header(kernel: &mut dyn KernelBytes) -> Result<(Vec<u8>, Header), KernelError> {
    let magic = HEADER_MAGIC.to_le_bytes();
    let mut near_miss = None;
    // The search area, and the three bytes after it that a straddling magic would reach.
    let prefix_len = kernel.len().min(SEARCH_LIMIT as u64 + 3) as usize;
    let prefix = read_vec(kernel, 0, prefix_len).ok_or(KernelError::NoHeader)?;
    let area = &prefix[..prefix.len().min(SEARCH_LIMIT)];
    for offset in (0..area.len().saturating_sub(3)).step_by(HEADER_ALIGN) {
        if area[offset..offset + 4] != magic {
            continue;
        }
        let at = |f: Le<u32>| f.within(offset).get(area);
        let (Some(flags), Some(checksum)) = (at(header::FLAGS), at(header::CHECKSUM)) else {
            near_miss.get_or_insert(KernelError::HeaderTruncated { offset, needed: HEADER_BASE_LEN });
            continue;
        };
        if HEADER_MAGIC.wrapping_add(flags).wrapping_add(checksum) != 0 {
            near_miss.get_or_insert(KernelError::BadChecksum { offset });
            continue;
        }
        let needed = if flags & FLAG_VIDEO_MODE != 0 {
            HEADER_VIDEO_LEN
        } else if flags & FLAG_AOUT_KLUDGE != 0 {
            HEADER_KLUDGE_LEN
        } else {
            HEADER_BASE_LEN
        };
        if offset + needed > area.len() {
            return Err(KernelError::HeaderTruncated { offset, needed });
        }
        let video = (flags & FLAG_VIDEO_MODE != 0).then(|| VideoMode {
            mode_type: at(header::MODE_TYPE).unwrap_or(0),
            width: at(header::WIDTH).unwrap_or(0),
            height: at(header::HEIGHT).unwrap_or(0),
            depth: at(header::DEPTH).unwrap_or(0),
        });
        return Ok((prefix, Header { offset, flags, video }));
    }
    if let Some(err) = near_miss {
        return Err(err);
    }
    // A magic straddling the end of the search area still tells what went wrong.
    if let Some(offset) = find_bytes(&prefix, &magic)
        && offset % HEADER_ALIGN != 0
    {
        return Err(KernelError::HeaderMisaligned { offset });
    }
    if let Some(offset) = scan_beyond_search_area(kernel, &magic) {
        return Err(KernelError::HeaderBeyondSearchArea { offset });
    }
    Err(KernelError::NoHeader)
}

/// The first offset at or after [`SEARCH_LIMIT`] where `magic` appears, read in bounded
/// chunks that overlap by the magic's length.
fn scan_beyond_search_area(kernel: &mut dyn KernelBytes, magic: &[u8]) -> Option<usize> {
    let mut at = SEARCH_LIMIT as u64;
    while at < kernel.len() {
        let len = (kernel.len() - at).min(SCAN_CHUNK as u64) as usize;
        let chunk = read_vec(kernel, at, len)?;
        if let Some(found) = find_bytes(&chunk, magic) {
            return usize::try_from(at).ok().map(|at| at + found);
        }
        if at + len as u64 >= kernel.len() {
            break;
        }
        at += (len - (magic.len() - 1)) as u64;
    }
    None
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Plans an a.out kludge kernel of `file_len` bytes from its header (in `prefix`).
fn plan_kludge(prefix: &[u8], file_len: u64, header: Header) -> Result<(Segment, u64), KernelError> {
    let field = |f: Le<u32>| f.within(header.offset).get(prefix).unwrap_or(0);
    let (header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr) = (
        field(header::HEADER_ADDR),
        field(header::LOAD_ADDR),
        field(header::LOAD_END_ADDR),
        field(header::BSS_END_ADDR),
        field(header::ENTRY_ADDR),
    );
    if header_addr < load_addr {
        return Err(KernelError::HeaderBeforeLoadAddr { header_addr, load_addr });
    }
    let back = u64::from(header_addr - load_addr);
    let file_offset = (header.offset as u64)
        .checked_sub(back)
        .ok_or_else(|| KernelError::LoadBeforeFileStart { load_addr, before: back - header.offset as u64 })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{KLUDGE_FLAGS, multiboot_header, place};

    /// A kludge header at `offset` in a zero-filled file of `len` bytes.
    fn kludge_file(len: usize, offset: usize, fields: [u32; 5]) -> Vec<u8> {
        let mut f = vec![0u8; len];
        place(&mut f, offset, &multiboot_header(KLUDGE_FLAGS, Some(fields)));
        f
    }

    fn put_header(f: &mut Vec<u8>, offset: usize, flags: u32) {
        place(f, offset, &multiboot_header(flags, None));
    }

    /// The layout of Solo5's `test_hello`: header at 0x1020, loads 0x100000..0x113000,
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
        assert_eq!(find_header(&f), Ok(Header { offset: 32, flags: FLAG_MEMORY_INFO, video: None }));
        assert_eq!(find_header(&[]), Err(KernelError::NoHeader));
        assert_eq!(
            find_header(&HEADER_MAGIC.to_le_bytes()),
            Err(KernelError::HeaderTruncated { offset: 0, needed: 12 })
        );
    }

    #[test]
    fn required_flags_are_checked() {
        let mut f = vec![0u8; 64];
        put_header(&mut f, 0, 1 << 7);
        let err = LoadPlan::new(&f).unwrap_err();
        assert_eq!(err, KernelError::UnsupportedRequiredFlags { flags: 1 << 7 });
        assert!(err.to_string().contains("0x0080"));
    }

    #[test]
    fn video_requests_are_read() {
        let mut f = vec![0u8; 64];
        put_header(&mut f, 0, FLAG_VIDEO_MODE | FLAG_AOUT_KLUDGE);
        for (field, value) in
            [(header::MODE_TYPE, 0), (header::WIDTH, 1024), (header::HEIGHT, 768), (header::DEPTH, 32)]
        {
            field.put(&mut f, value);
        }
        let h = find_header(&f).unwrap();
        assert_eq!(h.video, Some(VideoMode { mode_type: 0, width: 1024, height: 768, depth: 32 }));
        // The video fields must be inside the search area and the file.
        assert_eq!(find_header(&f[..40]), Err(KernelError::HeaderTruncated { offset: 0, needed: 48 }));
    }
}
